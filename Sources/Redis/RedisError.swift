/// Every way a Redis call can fail, each with a stable `code` for logs and metrics.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server answered with an error reply (`ERR ...`, `WRONGTYPE ...`, `NOAUTH ...`).
    case server(String)
    /// The connection could not be made or broke (refused, reset, EOF, I/O error, timeout).
    /// The connection reconnects on its next command.
    case connection(String)
    /// The URL or configuration cannot be used.
    case invalidConfiguration(String)
    /// The server answered with a reply of a shape the command does not expect.
    case unexpectedReply(String)
    /// The command cannot be sent (an empty command name); nothing was sent.
    case invalidCommand(String)
    /// A Redis Cluster refused a command whose keys are in different slots (`CROSSSLOT`): give all
    /// its keys one hash tag, `P:{k}:...`. Never seen from a single server.
    case crossSlot(String)
    /// No node of a Redis Cluster serves the slot, even after re-reading the slot map and waiting
    /// (every known node unreachable, the slot uncovered, or redirections without end).
    case clusterUnavailable(String)
    /// The server ended a sharded subscription (`SSUBSCRIBE`) by itself, naming the channel: its
    /// slot left the node's shard (a reshard). Subscribe again on the master that serves the slot
    /// now.
    case shardSubscriptionEnded(String)

    public var code: String {
        switch self {
        case .server: return "redis_server_error"
        case .connection: return "redis_connection_error"
        case .invalidConfiguration: return "redis_invalid_configuration"
        case .unexpectedReply: return "redis_unexpected_reply"
        case .invalidCommand: return "redis_invalid_command"
        case .crossSlot: return "redis_cross_slot"
        case .clusterUnavailable: return "redis_cluster_unavailable"
        case .shardSubscriptionEnded: return "redis_shard_subscription_ended"
        }
    }

    public var description: String {
        switch self {
        case .server(let m): return "Redis replied with an error: \(m)"
        case .connection(let m): return "Redis connection failed: \(m)"
        case .invalidConfiguration(let m): return "Invalid Redis configuration: \(m)"
        case .unexpectedReply(let m): return "Unexpected Redis reply: \(m)"
        case .invalidCommand(let m): return "Invalid Redis command: \(m)"
        case .crossSlot(let m): return "Redis Cluster refused keys in different slots: \(m)"
        case .clusterUnavailable(let m): return "Redis Cluster unavailable: \(m)"
        case .shardSubscriptionEnded(let c): return "Redis ended the sharded subscription to \(c): its slot is served elsewhere now"
        }
    }
}

extension RedisError {
    /// The error for an error reply: `crossSlot` for `CROSSSLOT`, else `server`.
    public static func reply(_ message: String) -> RedisError {
        message.hasPrefix("CROSSSLOT") ? .crossSlot(message) : .server(message)
    }
}
