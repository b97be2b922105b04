import Crypto

/// Lua scripting: `EVALSHA` with a fall-back to `EVAL` when the server has not cached the script.
public struct RedisScript: Sendable, Hashable {
    public let source: String
    public let sha1: String

    /// `sha1` must be the SHA-1 of `source` as Redis computes it; `load(_:)` asks the server.
    public init(source: String, sha1: String) {
        self.source = source
        self.sha1 = sha1
    }

    /// The digest computed here, as Redis computes it (lowercase hex SHA-1 of the source's bytes):
    /// a script can be sent by digest from its first use, with no `SCRIPT LOAD` round trip.
    public init(source: String) {
        let digest = Insecure.SHA1.hash(data: Array(source.utf8))
        var hex = ""
        hex.reserveCapacity(40)
        for byte in digest {
            hex.append(Self.hexDigits[Int(byte >> 4)])
            hex.append(Self.hexDigits[Int(byte & 0x0F)])
        }
        self.init(source: source, sha1: hex)
    }

    private static let hexDigits = Array("0123456789abcdef")
}

extension RedisValue {
    /// The server has no script of that digest (`SCRIPT FLUSH`, a restart, a failover to a
    /// replica that never ran it): nothing of the script ran.
    public var isNoScript: Bool { errorMessage?.hasPrefix("NOSCRIPT") == true }
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
        var buffer = RedisCommandBuffer()
        buffer.append(RedisCommand(script: script, keys: keys, arguments: arguments))
        return try pipeline(buffer)[0].throwingOnError()
    }

    /// Sends a buffer in one round trip and returns its replies in order, error replies in their
    /// place. Every `EVALSHA` the server answered `NOSCRIPT` (nothing of it ran) is then sent as
    /// `EVAL`, in their order, in one more round trip, and its reply takes the `NOSCRIPT`'s place:
    /// the one place where scripts fall back, so a server that lost its script cache (a restart,
    /// a failover, `SCRIPT FLUSH`) costs one round trip, not a failure.
    ///
    /// Such a script then runs after the commands that followed it in the buffer: put a script
    /// whose order against the rest matters last, or in a round trip of its own.
    public func pipeline(_ buffer: RedisCommandBuffer) throws(RedisError) -> [RedisValue] {
        var replies = try send(buffer)
        let missing = buffer.scriptCalls.filter { $0.index < replies.count && replies[$0.index].isNoScript }
        guard !missing.isEmpty else { return replies }
        var again = RedisCommandBuffer()
        for call in missing { again.appendEval(of: call, in: buffer) }
        for (call, reply) in zip(missing, try send(again)) { replies[call.index] = reply }
        return replies
    }
}
