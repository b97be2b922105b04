/// Lua scripting: `EVALSHA` with a fall-back to `EVAL` when the server has not cached the script.
public struct RedisScript: Sendable, Hashable {
    public let source: String
    public let sha1: String

    /// `sha1` must be the SHA-1 of `source` as Redis computes it; `load(_:)` asks the server.
    public init(source: String, sha1: String) {
        self.source = source
        self.sha1 = sha1
    }
}

extension RedisClient {
    /// `SCRIPT LOAD`: caches the script on the server and returns its handle.
    public func load(_ source: String) throws(RedisError) -> RedisScript {
        guard let sha = try send(RedisCommand("SCRIPT", "LOAD", source)).string else {
            throw .unexpectedReply("SCRIPT LOAD did not answer a digest")
        }
        return RedisScript(source: source, sha1: sha)
    }

    /// `EVAL script numkeys keys... args...`.
    @discardableResult
    public func eval(_ source: String, keys: [any RedisArgument] = [], arguments: [any RedisArgument] = []) throws(RedisError) -> RedisValue {
        try send(RedisCommand("EVAL", arguments: [source, keys.count] + keys + arguments))
    }

    /// `EVALSHA`, and `EVAL` when the server answers `NOSCRIPT` (after a restart or `SCRIPT FLUSH`).
    @discardableResult
    public func evalsha(_ script: RedisScript, keys: [any RedisArgument] = [], arguments: [any RedisArgument] = []) throws(RedisError) -> RedisValue {
        do {
            return try send(RedisCommand("EVALSHA", arguments: [script.sha1, keys.count] + keys + arguments))
        } catch .server(let message) where message.hasPrefix("NOSCRIPT") {
            return try eval(script.source, keys: keys, arguments: arguments)
        }
    }
}
