/// One message received on a subscribed channel.
public struct RedisMessage: Sendable, Hashable {
    public let channel: String
    public let payload: [UInt8]

    public init(channel: String, payload: [UInt8]) {
        self.channel = channel
        self.payload = payload
    }

    public var text: String { String(decoding: payload, as: UTF8.self) }
}

/// A connection in subscriber mode: `SUBSCRIBE`, then a receive loop.
///
/// A subscribed connection can only receive, so it is a type of its own rather than a mode of
/// `RedisConnection`. After a broken link it reconnects and subscribes again; messages published
/// while it was away are lost, as pub/sub promises no more.
public final class RedisSubscriber {
    private let connection: RedisConnection
    public private(set) var channels: [String] = []

    public init(configuration: RedisConfiguration) throws(RedisError) {
        connection = try RedisConnection(configuration: configuration)
    }

    public convenience init(url: String) throws(RedisError) {
        try self.init(configuration: RedisConfiguration(url: url))
    }

    /// Subscribes and waits for the server's confirmation of each channel.
    public func subscribe(_ newChannels: [String]) throws(RedisError) {
        try connection.appendOnly(RedisCommand("SUBSCRIBE", arguments: newChannels))
        for _ in newChannels {
            let confirmation = try connection.readReply()
            guard confirmation.array?.first?.string == "subscribe" else {
                throw .unexpectedReply("SUBSCRIBE answered \(confirmation)")
            }
        }
        channels += newChannels.filter { !channels.contains($0) }
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
            if let parts = reply.array, parts.count == 3, parts[0].string == "message",
               let channel = parts[1].string, let payload = parts[2].bytes {
                return RedisMessage(channel: channel, payload: payload)
            }
            // Confirmations of later subscriptions and the like: not messages.
        }
    }

    private func resubscribe() throws(RedisError) {
        let wanted = channels
        channels = []
        connection.close()
        if !wanted.isEmpty { try subscribe(wanted) }
    }
}

@available(*, unavailable, message: "a subscriber's connection belongs to one task")
extension RedisSubscriber: Sendable {}
