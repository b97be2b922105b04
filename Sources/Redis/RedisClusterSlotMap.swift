/// Which master serves each of the 16384 slots, as a node last told us.
///
/// Read from `CLUSTER SHARDS` (Redis 7) or, on older servers, `CLUSTER SLOTS`. It is a cache: a
/// node answering `MOVED` corrects one slot at once and makes the client read the whole map again
/// before its next command, since a resharding or a failover rarely moves one slot alone.
public struct RedisClusterSlotMap: Sendable, Equatable {
    /// Index into `masters` per slot; -1 when no master serves the slot.
    private var owners: [Int32]
    public private(set) var masters: [RedisClusterNode]

    public init() {
        owners = Array(repeating: -1, count: RedisKeySlot.count)
        masters = []
    }

    public func master(forSlot slot: Int) -> RedisClusterNode? {
        guard owners.indices.contains(slot) else { return nil }
        let index = owners[slot]
        return index < 0 ? nil : masters[Int(index)]
    }

    /// Slots without a master.
    public var uncoveredSlots: Int { owners.lazy.filter { $0 < 0 }.count }

    public mutating func assign(_ range: ClosedRange<Int>, to node: RedisClusterNode) {
        let index: Int
        if let known = masters.firstIndex(of: node) {
            index = known
        } else {
            masters.append(node)
            index = masters.count - 1
        }
        for slot in range.clamped(to: 0...(RedisKeySlot.count - 1)) { owners[slot] = Int32(index) }
    }

    // MARK: Reading a node's answer

    /// Reads a `CLUSTER SHARDS` reply (RESP2: each shard and each node a flat key/value array).
    /// `answeredBy` stands in for a node that reports no address of its own.
    public static func fromShards(_ reply: RedisValue, answeredBy: RedisClusterNode) throws(RedisError) -> Self {
        guard let shards = reply.array else { throw .unexpectedReply("CLUSTER SHARDS did not answer an array") }
        var map = Self()
        for shard in shards {
            let fields = Self.fields(shard)
            guard let bounds = fields["slots"]?.array?.compactMap(\.int), let nodes = fields["nodes"]?.array else {
                throw .unexpectedReply("CLUSTER SHARDS answered a shard without slots or nodes")
            }
            let master = nodes.lazy.map(Self.fields).first { $0["role"]?.string == "master" }
            guard let master, let port = master["port"]?.int, port > 0,
                  let host = Self.host(endpoint: master["endpoint"]?.string, ip: master["ip"]?.string, answeredBy: answeredBy)
            else { continue }  // a shard without a reachable master serves nothing for now
            let node = RedisClusterNode(host: host, port: Int(port))
            var i = 0
            while i + 1 < bounds.count {
                map.assign(Int(bounds[i])...Int(bounds[i + 1]), to: node)
                i += 2
            }
        }
        return map
    }

    /// Reads a `CLUSTER SLOTS` reply: `[start, end, [host, port, id, ...], replicas...]` per range.
    public static func fromSlots(_ reply: RedisValue, answeredBy: RedisClusterNode) throws(RedisError) -> Self {
        guard let ranges = reply.array else { throw .unexpectedReply("CLUSTER SLOTS did not answer an array") }
        var map = Self()
        for range in ranges {
            guard let parts = range.array, parts.count >= 3,
                  let start = parts[0].int, let end = parts[1].int, start <= end,
                  let master = parts[2].array, master.count >= 2, let port = master[1].int
            else { throw .unexpectedReply("CLUSTER SLOTS answered a range of an unknown shape") }
            guard port > 0, let host = Self.host(endpoint: master[0].string, ip: nil, answeredBy: answeredBy) else { continue }
            map.assign(Int(start)...Int(end), to: RedisClusterNode(host: host, port: Int(port)))
        }
        return map
    }

    /// The address to use: the announced endpoint; its IP when the endpoint is unknown (`?`); the
    /// node that answered when it is empty (the node's own address, which it may not know).
    private static func host(endpoint: String?, ip: String?, answeredBy: RedisClusterNode) -> String? {
        for candidate in [endpoint, ip] {
            guard let candidate, candidate != "?" else { continue }
            return candidate.isEmpty ? answeredBy.host : candidate
        }
        return nil
    }

    private static func fields(_ value: RedisValue) -> [String: RedisValue] {
        guard let items = value.array else { return [:] }
        var fields: [String: RedisValue] = [:]
        var i = 0
        while i + 1 < items.count {
            if let key = items[i].string { fields[key] = items[i + 1] }
            i += 2
        }
        return fields
    }
}

/// A `MOVED` or `ASK` redirection, or an error that asks to try again shortly.
enum RedisClusterRedirection: Equatable {
    /// The slot lives on `node` now: update the map and resend there.
    case moved(slot: Int, node: RedisClusterNode)
    /// The slot is migrating and this key is on `node`: send `ASKING` and the command there, once.
    case ask(slot: Int, node: RedisClusterNode)
    /// `TRYAGAIN` (a multi-key command during a migration) or `CLUSTERDOWN` (a failover settling):
    /// the command did not run; wait a little and send it again.
    case retryLater

    /// Reads an error reply. `from` is the node that answered, for a redirection without a host.
    init?(_ reply: RedisValue, from: RedisClusterNode) {
        guard let message = reply.errorMessage else { return nil }
        if message.hasPrefix("TRYAGAIN") || message.hasPrefix("CLUSTERDOWN") {
            self = .retryLater
            return
        }
        let parts = message.split(separator: " ")
        guard parts.count >= 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]),
              let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...])
        else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let node = RedisClusterNode(host: host.isEmpty ? from.host : host, port: port)
        self = parts[0] == "MOVED" ? .moved(slot: slot, node: node) : .ask(slot: slot, node: node)
    }
}
