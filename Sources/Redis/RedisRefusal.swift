/// Why the server refused one command, read from the first word of its error reply.
///
/// A refusal is either the server's passing state (out of memory under `noeviction`, still
/// loading, a read-only replica, a cluster without coverage...), which the same command survives
/// once it passes, or about the command's key itself (`WRONGTYPE`), which no retry can fix. Callers
/// that must not lose what they send decide by this code, never by matching message text.
public struct RedisRefusalCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// `maxmemory` reached under `noeviction`: writes that may grow memory are refused.
    public static let outOfMemory = RedisRefusalCode(rawValue: "OOM")
    /// The server is loading its data set after a restart.
    public static let loading = RedisRefusalCode(rawValue: "LOADING")
    /// A replica, or a master that lost its replicas under `min-replicas-to-write`.
    public static let readOnly = RedisRefusalCode(rawValue: "READONLY")
    public static let masterDown = RedisRefusalCode(rawValue: "MASTERDOWN")
    /// A script or function is running past `busy-reply-threshold`.
    public static let busy = RedisRefusalCode(rawValue: "BUSY")
    public static let tryAgain = RedisRefusalCode(rawValue: "TRYAGAIN")
    public static let clusterDown = RedisRefusalCode(rawValue: "CLUSTERDOWN")
    public static let noReplicas = RedisRefusalCode(rawValue: "NOREPLICAS")
    /// The key holds a value of another type: the command can never succeed on it as it is.
    public static let wrongType = RedisRefusalCode(rawValue: "WRONGTYPE")
    /// A script refused on purpose (`redis.error_reply`), or any other error the server names `ERR`.
    public static let generic = RedisRefusalCode(rawValue: "ERR")

    /// The code of an error reply: its first word (`OOM command not allowed ...` is `OOM`).
    public init(message: String) {
        rawValue = String(message.prefix { $0 != " " })
    }

    /// Whether the refusal is about the key the command names (its type), so that sending the same
    /// command again cannot succeed until someone else changes that key. Every other refusal may
    /// pass: a caller that must not lose the command keeps it and sends it again.
    public var isAboutTheKey: Bool { self == .wrongType }

    public var description: String { rawValue }
}

extension RedisValue {
    /// The refusal's code when this is an error reply.
    public var refusalCode: RedisRefusalCode? { errorMessage.map(RedisRefusalCode.init(message:)) }
}
