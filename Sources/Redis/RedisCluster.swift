#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Redis Cluster client: each command goes to the master that serves its key's slot.
///
/// It keeps the slot map (`RedisClusterSlotMap`) so that a command takes one round trip to the
/// right node instead of a bounce through `MOVED`, and one `RedisConnection` per master, made when
/// first needed. The caller names the routing key of every command: keys are not guessed from
/// command names, so a new command or a script needs nothing from this type. A command with
/// several keys must keep them in one slot (hash tags, `P:{k}:...`), else it fails with
/// `RedisError.crossSlot`.
///
/// Topology changes are followed:
/// - `MOVED slot node`: the slot is assigned to `node`, the command is sent there, and the whole
///   map is read again before the next command;
/// - `ASK slot node` (a slot migrating): `ASKING` and the command are sent to `node`, once; the
///   map is left alone, since the slot still belongs to the old master until the migration ends;
/// - `TRYAGAIN`, `CLUSTERDOWN`, or a master that refuses connections (killed, failing over): the
///   map is read again from any reachable node, with the backoff of `configuration.retry`, and
///   the command is sent to whichever master serves the slot then. None of these ran the command,
///   so resending it is safe.
/// A link that breaks after a command was written is different: whether the command ran is
/// unknown, so it is thrown as `RedisError.connection` (the map is re-read before the next
/// command), exactly like a single `RedisConnection`, and the caller resends only what is safe to
/// repeat.
///
/// Like `RedisConnection`, it belongs to one task or thread.
public final class RedisCluster {
    public let configuration: RedisClusterConfiguration
    public private(set) var slotMap = RedisClusterSlotMap()
    private var connections: [RedisClusterNode: RedisConnection] = [:]
    private var mapIsStale = true
    /// The node connection a wait was written on (`startWait`), until its reply is read.
    private var waitingOn: RedisConnection?

    /// Times the slot map was read (for logs and tests).
    public private(set) var mapReads = 0
    /// Reconnects counted by node connections since closed.
    private var closedReconnects = 0

    /// `MOVED` and `ASK` redirections followed (for logs and tests).
    public private(set) var movedCount = 0
    public private(set) var askCount = 0

    /// Reads the slot map from the first seed that answers; throws when none does.
    public init(configuration: RedisClusterConfiguration) throws(RedisError) {
        guard !configuration.seeds.isEmpty else { throw .invalidConfiguration("a cluster needs at least one seed node") }
        self.configuration = configuration
        try refreshSlotMap()
    }

    public convenience init(url: String) throws(RedisError) {
        try self.init(configuration: RedisClusterConfiguration(url: url))
    }

    /// Closes every node connection; the next command reconnects.
    public func close() {
        for connection in connections.values {
            closedReconnects += connection.reconnectCount
            connection.close()
        }
        connections = [:]
        waitingOn = nil
    }

    /// How many times a node's broken link was replaced by a new one (for logs and metrics).
    public var reconnectCount: Int {
        closedReconnects + connections.values.reduce(0) { $0 + $1.reconnectCount }
    }

    // MARK: Commands

    /// Sends `command` to the master of `key`'s slot and returns its reply; an error reply is
    /// thrown (`RedisError.server`, or `.crossSlot`).
    @discardableResult
    public func send(_ command: RedisCommand, key: some RedisArgument) throws(RedisError) -> RedisValue {
        try execute([command], slots: [RedisKeySlot.slot(of: key)], blockingFor: nil)[0].throwingOnError()
    }

    /// Sends a command the server may hold for up to `seconds` (`BLMOVE`, `BLPOP`) to the master
    /// of `key`'s slot; the socket timeout is raised for the wait, as `RedisConnection` does.
    @discardableResult
    public func send(_ command: RedisCommand, key: some RedisArgument, blockingFor seconds: Double) throws(RedisError) -> RedisValue {
        try execute([command], slots: [RedisKeySlot.slot(of: key)], blockingFor: seconds)[0].throwingOnError()
    }

    /// Sends many commands, each to the master of its key's slot: the commands for one master go as
    /// one pipeline (in their order), and the replies come back in the order of `commands`.
    ///
    /// The group that holds the last command leaves last, once every other command is answered
    /// (redirections followed): a pipeline that ends with an acknowledgement (the worker's outbox,
    /// whose replies may live on other masters) never has it run before the rest was delivered.
    ///
    /// Error replies come back in their place, as with `RedisConnection.pipeline`; redirections and
    /// retryable errors are followed first, and only when they persist are they returned.
    public func pipeline(_ commands: [(command: RedisCommand, key: any RedisArgument)]) throws(RedisError) -> [RedisValue] {
        try execute(commands.map(\.command), slots: commands.map { Self.slot(of: $0.key) }, blockingFor: nil)
    }

    /// The configuration of a connection to one master, e.g. for a `RedisSubscriber`: a subscriber
    /// on any node of the cluster receives what is published on any other.
    public func subscriberConfiguration() throws(RedisError) -> RedisConfiguration {
        try refreshIfStale()
        guard let node = slotMap.masters.first ?? configuration.seeds.first else {
            throw .clusterUnavailable("no node known")
        }
        return configuration.nodeConfiguration(node)
    }

    /// The configuration of a connection to the master that serves `channel`'s slot, for a
    /// `RedisSubscriber` that `SSUBSCRIBE`s to it: a sharded message reaches only the nodes of
    /// its shard. The slot is the channel's, hash tag included (`P:{k}:balance` is in `{k}`'s).
    public func shardSubscriberConfiguration(channel: some RedisArgument) throws(RedisError) -> RedisConfiguration {
        try refreshIfStale()
        let slot = Self.slot(of: channel)
        guard let node = slotMap.master(forSlot: slot) else { throw .clusterUnavailable("no master serves slot \(slot)") }
        return configuration.nodeConfiguration(node)
    }

    // MARK: Routing

    /// Sends each command to its slot's master, follows redirections and retries, and returns
    /// the replies in order. `blockingFor` is only used with a single command.
    func execute(_ commands: [RedisCommand], slots: [Int], blockingFor: Double?) throws(RedisError) -> [RedisValue] {
        var replies = [RedisValue](repeating: .null, count: commands.count)
        var pending = Array(commands.indices)
        var redirections = 0
        var waits = 0
        var unreached: [Int: String] = [:]  // index -> why its master could not be reached
        var held: [Int] = []  // the last command's group, not sent yet
        while !pending.isEmpty {
            var again: [Int] = []
            var asks: [RedisClusterNode: [Int]] = [:]
            var mustWait = false
            var groups: [(node: RedisClusterNode, indices: [Int])] = []
            for index in pending {
                let node = try master(forSlot: slots[index])
                if let g = groups.firstIndex(where: { $0.node == node }) {
                    groups[g].indices.append(index)
                } else {
                    groups.append((node, [index]))
                }
            }
            // The last command's group waits until every other group is answered (see `pipeline`).
            held = []
            if groups.count > 1, let last = groups.firstIndex(where: { $0.indices.last == commands.count - 1 }) {
                held = groups.remove(at: last).indices
            }
            for group in groups {
                let got: [RedisValue]
                do {
                    let connection = try connected(group.node)
                    if let seconds = blockingFor, group.indices.count == 1 {
                        got = [try Self.reply { () throws(RedisError) in
                            try connection.send(commands[group.indices[0]], blockingFor: seconds)
                        }]
                    } else {
                        got = try connection.pipeline(group.indices.map { commands[$0] })
                    }
                } catch .clusterUnavailable(let message) {
                    // Nothing was sent to a master that cannot be reached: wait, re-read, resend.
                    again += group.indices
                    for index in group.indices { unreached[index] = message }
                    mustWait = true
                    continue
                } catch .connection(let message) {
                    mapIsStale = true  // the node may be gone: ask the cluster before the next command
                    throw .connection(message)
                } catch {
                    throw error
                }
                for (index, reply) in zip(group.indices, got) {
                    replies[index] = reply
                    unreached[index] = nil
                    switch RedisClusterRedirection(reply, from: group.node) {
                    case nil:
                        break
                    case .moved(let slot, let node):
                        movedCount += 1
                        slotMap.assign(slot...slot, to: node)
                        mapIsStale = true
                        again.append(index)
                    case .ask(_, let node):
                        askCount += 1
                        asks[node, default: []].append(index)
                    case .retryLater:
                        mapIsStale = true
                        mustWait = true
                        again.append(index)
                    }
                }
            }
            for (node, indices) in asks {
                again += try asking(node, commands: indices.map { commands[$0] }, blockingFor: blockingFor,
                                  into: &replies, unreached: &unreached, at: indices)
            }
            pending = (again + held).sorted()
            if pending.isEmpty { break }
            if again.isEmpty { continue }  // only the held group is left: it goes now
            if mustWait {
                waits += 1
                guard waits < max(1, configuration.retry.maxAttempts) else { break }
                Self.sleep(configuration.retry.delay(beforeAttempt: waits))
            } else {
                redirections += 1
                guard redirections <= configuration.maxRedirections else { break }
            }
        }
        if let stuck = pending.first(where: { unreached[$0] != nil }), let why = unreached[stuck] {
            throw .clusterUnavailable("slot \(slots[stuck]) after \(waits) waits: \(why)")
        }
        if let unsent = held.first {
            throw .clusterUnavailable("slot \(slots[unsent]): the pipeline's last commands were not sent, since earlier ones kept being redirected")
        }
        return replies
    }

    /// The wait goes to its key's master like any command; a redirection comes back as its
    /// reply (`finishWait`), and makes the map stale, so the next command follows it.
    public func startWait(_ command: RedisCommand) throws(RedisError) -> Int32 {
        let connection = try connected(try master(forSlot: Self.slot(routing: command)))
        do {
            let descriptor = try connection.startWait(command)
            waitingOn = connection
            return descriptor
        } catch .connection(let message) {
            mapIsStale = true
            throw .connection(message)
        }
    }

    public func finishWait() throws(RedisError) -> RedisValue {
        guard let connection = waitingOn else { throw .connection("no wait was started on this cluster client") }
        waitingOn = nil
        do {
            let reply = try connection.finishWait()
            if case .error = reply { mapIsStale = true }
            return reply
        } catch .connection(let message) {
            mapIsStale = true
            throw .connection(message)
        }
    }

    /// `ASKING` then the command, for each command, on `node`; returns the indices that must be
    /// sent again (a further redirection), having stored every reply.
    private func asking(_ node: RedisClusterNode, commands: [RedisCommand], blockingFor: Double?,
                        into replies: inout [RedisValue], unreached: inout [Int: String],
                        at indices: [Int]) throws(RedisError) -> [Int] {
        let connection: RedisConnection
        do {
            connection = try connected(node)
        } catch .clusterUnavailable(let message) {
            for index in indices { unreached[index] = message }
            return indices  // the importing node is down: the map is re-read and the command resent
        }
        var got: [RedisValue]
        if let seconds = blockingFor, commands.count == 1 {
            try connection.send(RedisCommand("ASKING"))
            got = [try Self.reply { () throws(RedisError) in try connection.send(commands[0], blockingFor: seconds) }]
        } else {
            let interleaved = commands.flatMap { [RedisCommand("ASKING"), $0] }
            got = try connection.pipeline(interleaved).enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        }
        var again: [Int] = []
        for (index, reply) in zip(indices, got) {
            replies[index] = reply
            unreached[index] = nil
            if let redirection = RedisClusterRedirection(reply, from: node) {
                if case .moved(let slot, let to) = redirection {
                    movedCount += 1
                    slotMap.assign(slot...slot, to: to)
                }
                mapIsStale = true
                again.append(index)
            }
        }
        return again
    }

    /// The master serving `slot`, re-reading the map first when it is stale or lacks the slot.
    private func master(forSlot slot: Int) throws(RedisError) -> RedisClusterNode {
        if mapIsStale || slotMap.master(forSlot: slot) == nil {
            try? refreshSlotMap()  // an unreachable cluster shows as a connection failure next
        }
        guard let node = slotMap.master(forSlot: slot) else {
            throw .clusterUnavailable("no master serves slot \(slot)")
        }
        return node
    }

    /// The connection to `node`, connected. A node that cannot be reached throws
    /// `clusterUnavailable` (nothing was sent) and makes the map stale.
    private func connected(_ node: RedisClusterNode) throws(RedisError) -> RedisConnection {
        do {
            if let connection = connections[node] {
                try connection.connect()
                return connection
            }
            let connection = try RedisConnection(configuration: configuration.nodeConfiguration(node))
            connections[node] = connection
            return connection
        } catch .connection(let message) {
            mapIsStale = true
            throw .clusterUnavailable("\(node): \(message)")
        } catch {
            throw error
        }
    }

    // MARK: The slot map

    /// Reads the slot map again from the first node that answers: the masters known now, then the
    /// seeds. `CLUSTER SHARDS` first, `CLUSTER SLOTS` on servers before Redis 7.
    public func refreshSlotMap() throws(RedisError) {
        var candidates = slotMap.masters
        for seed in configuration.seeds where !candidates.contains(seed) { candidates.append(seed) }
        var lastError = RedisError.clusterUnavailable("no node to ask for the slot map")
        for node in candidates {
            do {
                let connection = try connected(node)
                var map: RedisClusterSlotMap
                do {
                    map = try RedisClusterSlotMap.fromShards(connection.send(RedisCommand("CLUSTER", "SHARDS")), answeredBy: node)
                } catch .server(let message) where !message.hasPrefix("NOAUTH") && !message.hasPrefix("NOPERM") {
                    map = try RedisClusterSlotMap.fromSlots(connection.send(RedisCommand("CLUSTER", "SLOTS")), answeredBy: node)
                }
                guard !map.masters.isEmpty else {
                    lastError = .clusterUnavailable("\(node) knows no master")
                    continue
                }
                slotMap = map
                mapIsStale = false
                mapReads += 1
                dropConnectionsToFormerMasters()
                return
            } catch .server(let message) where Self.isPermanent(message) {
                throw .server(message)  // a wrong password or a node outside cluster mode: waiting will not help
            } catch {
                lastError = error
            }
        }
        mapIsStale = true
        throw lastError
    }

    /// Re-reads the map if a redirection or a failure made it stale.
    public func refreshIfStale() throws(RedisError) {
        if mapIsStale { try refreshSlotMap() }
    }

    /// The master that serves `slot` by the current map.
    public func node(forSlot slot: Int) -> RedisClusterNode? { slotMap.master(forSlot: slot) }

    private func dropConnectionsToFormerMasters() {
        for node in connections.keys where !slotMap.masters.contains(node) && !configuration.seeds.contains(node) {
            closedReconnects += connections[node]?.reconnectCount ?? 0
            connections[node]?.close()
            connections[node] = nil
        }
    }

    // MARK: Helpers

    /// Runs a single send that throws error replies and gives the error reply back as a value.
    private static func reply(_ body: () throws(RedisError) -> RedisValue) throws(RedisError) -> RedisValue {
        do {
            return try body()
        } catch .server(let message) {
            return .error(message)
        } catch .crossSlot(let message) {
            return .error(message)
        }
    }

    /// Errors that every node will answer alike; others (`LOADING`, a node restarting) are worth
    /// asking the next node about.
    private static func isPermanent(_ message: String) -> Bool {
        ["NOAUTH", "WRONGPASS", "NOPERM"].contains { message.hasPrefix($0) } || message.contains("cluster support disabled")
    }

    private static func slot(of key: any RedisArgument) -> Int {
        var bytes: [UInt8] = []
        key.appendRedisBytes(to: &bytes)
        return RedisKeySlot.slot(ofBytes: bytes)
    }

    private static func sleep(_ seconds: Double) {
        if seconds > 0 { usleep(useconds_t(seconds * 1_000_000)) }
    }
}

@available(*, unavailable, message: "a cluster client's connections belong to one task; create one per task")
extension RedisCluster: Sendable {}
