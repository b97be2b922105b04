/// One message received on a subscribed channel.
public struct RedisMessage: Sendable, Hashable {
    public let channel: String
    public let payload: [UInt8]
    /// Received through `SSUBSCRIBE` (a `smessage`) rather than `SUBSCRIBE`: the two are separate
    /// namespaces in Redis, so one channel name may carry different messages in each.
    public let sharded: Bool

    public init(channel: String, payload: [UInt8], sharded: Bool = false) {
        self.channel = channel
        self.payload = payload
        self.sharded = sharded
    }

    public var text: String { String(decoding: payload, as: UTF8.self) }
}

/// A connection in subscriber mode: `SUBSCRIBE` and `SSUBSCRIBE`, then a receive loop.
///
/// A subscribed connection can only receive, so it is a type of its own rather than a mode of
/// `RedisConnection`. After a broken link it reconnects and subscribes again; messages published
/// while it was away are lost, as pub/sub promises no more.
///
/// Sharded channels (`ssubscribe`) live in a slot like keys: on a cluster this connection must be
/// to the node that serves the slot (`RedisTarget.shardSubscriberConfiguration(channel:)`), and
/// one connection's sharded channels must share a slot. When the slot moves away, the server ends
/// the subscription itself; `receive` then throws `RedisError.shardSubscriptionEnded`, and the
/// caller subscribes again on the slot's new master.
public final class RedisSubscriber {
    private let connection: RedisConnection
    public private(set) var channels: [String] = []
    /// The sharded channels subscribed with `ssubscribe`, still served by this connection's node.
    public private(set) var shardChannels: [String] = []

    public init(configuration: RedisConfiguration) throws(RedisError) {
        connection = try RedisConnection(configuration: configuration)
    }

    public convenience init(url: String) throws(RedisError) {
        try self.init(configuration: RedisConfiguration(url: url))
    }

    /// Subscribes and waits for the server's confirmation of each channel.
    public func subscribe(_ newChannels: [String]) throws(RedisError) {
        try subscribe("SUBSCRIBE", newChannels)
        channels += newChannels.filter { !channels.contains($0) }
    }

    /// `SSUBSCRIBE`: subscribes to sharded channels (Redis 7) and waits for each confirmation. On
    /// a cluster, a node that does not serve their slot refuses them (`MOVED`, thrown as
    /// `RedisError.server`), and channels of different slots are refused together (`crossSlot`).
    public func ssubscribe(_ newChannels: [String]) throws(RedisError) {
        try subscribe("SSUBSCRIBE", newChannels)
        shardChannels += newChannels.filter { !shardChannels.contains($0) }
    }

    /// Sends `command` and reads one confirmation per channel. A refusal is one error reply for
    /// the whole command, so nothing more is read after it.
    private func subscribe(_ command: String, _ newChannels: [String]) throws(RedisError) {
        guard !newChannels.isEmpty else { return }
        try connection.appendOnly(RedisCommand(command, arguments: newChannels))
        let kind = command.lowercased()
        for _ in newChannels {
            let confirmation = try connection.readReply()
            if let message = confirmation.errorMessage { throw .reply(message) }
            guard confirmation.array?.first?.string == kind else {
                throw .unexpectedReply("\(command) answered \(confirmation)")
            }
        }
    }

    /// The next message, or nil when none arrives within `timeout` seconds.
    public func receive(timeout: Double) throws(RedisError) -> RedisMessage? {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            let seconds = Double(remaining.components.seconds) + Double(remaining.components.attoseconds) / 1e18
            guard seconds > 0 else { return nil }
            let reply: RedisValue?
            do {
                reply = try connection.readReply(waitingAtMost: seconds)
            } catch {
                try resubscribe()
                throw error
            }
            guard let reply else { return nil }
            guard let parts = reply.array, parts.count == 3, let kind = parts[0].string else { continue }
            switch kind {
            case "message", "smessage":
                if let channel = parts[1].string, let payload = parts[2].bytes {
                    return RedisMessage(channel: channel, payload: payload, sharded: kind == "smessage")
                }
            case "sunsubscribe":
                // Never asked for here: the server ends a sharded subscription itself when the
                // channel's slot leaves this node's shard (a reshard).
                if let channel = parts[1].string, let index = shardChannels.firstIndex(of: channel) {
                    shardChannels.remove(at: index)
                    throw .shardSubscriptionEnded(channel)
                }
            default:
                break  // confirmations of later subscriptions and the like: not messages
            }
        }
    }

    private func resubscribe() throws(RedisError) {
        let wanted = channels
        let wantedShards = shardChannels
        channels = []
        shardChannels = []
        connection.close()
        if !wanted.isEmpty { try subscribe(wanted) }
        if !wantedShards.isEmpty { try ssubscribe(wantedShards) }
    }
}

@available(*, unavailable, message: "a subscriber's connection belongs to one task")
extension RedisSubscriber: Sendable {}
