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

    public var code: String {
        switch self {
        case .server: return "redis_server_error"
        case .connection: return "redis_connection_error"
        case .invalidConfiguration: return "redis_invalid_configuration"
        case .unexpectedReply: return "redis_unexpected_reply"
        case .invalidCommand: return "redis_invalid_command"
        }
    }

    public var description: String {
        switch self {
        case .server(let m): return "Redis replied with an error: \(m)"
        case .connection(let m): return "Redis connection failed: \(m)"
        case .invalidConfiguration(let m): return "Invalid Redis configuration: \(m)"
        case .unexpectedReply(let m): return "Unexpected Redis reply: \(m)"
        case .invalidCommand(let m): return "Invalid Redis command: \(m)"
        }
    }
}
