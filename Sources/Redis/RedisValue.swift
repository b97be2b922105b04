/// A reply from Redis, copied out of hiredis' reply tree so that no C memory outlives the call.
///
/// Bulk strings stay bytes: Redis values are binary-safe and so is this type. Text conveniences
/// decode UTF-8 only when asked.
public enum RedisValue: Sendable, Hashable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RedisValue])

    /// The value as text: a status, or a bulk string decoded as UTF-8 (lossy).
    public var string: String? {
        switch self {
        case .status(let s): return s
        case .bulk(let b): return String(decoding: b, as: UTF8.self)
        case .integer(let i): return String(i)
        default: return nil
        }
    }

    /// The raw bytes of a bulk or status reply.
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let b): return b
        case .status(let s): return Array(s.utf8)
        default: return nil
        }
    }

    /// An integer reply, or a bulk string holding a decimal integer (as `GET` of a counter returns).
    public var int: Int64? {
        switch self {
        case .integer(let i): return i
        case .bulk(let b): return Int64(String(decoding: b, as: UTF8.self))
        case .status(let s): return Int64(s)
        default: return nil
        }
    }

    public var array: [RedisValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The server's message when this is an error reply.
    public var errorMessage: String? {
        if case .error(let m) = self { return m }
        return nil
    }

    /// Turns an error reply into a thrown `RedisError.server` (`.crossSlot` for a cluster's
    /// `CROSSSLOT`), for callers that read pipeline replies.
    @discardableResult
    public func throwingOnError() throws(RedisError) -> RedisValue {
        if case .error(let m) = self { throw RedisError.reply(m) }
        return self
    }
}
