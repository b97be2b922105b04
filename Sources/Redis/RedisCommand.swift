/// Something that can be one argument of a Redis command, written as raw bytes.
public protocol RedisArgument {
    func appendRedisBytes(to buffer: inout [UInt8])
    /// How many bytes `appendRedisBytes` writes, when known without writing them: a RESP bulk
    /// string's length comes before its bytes, so a known length saves moving the bytes after it.
    var redisByteCount: Int? { get }
}

extension RedisArgument {
    public var redisByteCount: Int? { nil }
}

extension String: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
    public var redisByteCount: Int? { utf8.count }
}

extension Substring: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
    public var redisByteCount: Int? { utf8.count }
}

extension Array: RedisArgument where Element == UInt8 {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: self) }
    public var redisByteCount: Int? { count }
}

extension ArraySlice: RedisArgument where Element == UInt8 {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: self) }
    public var redisByteCount: Int? { count }
}

extension Int: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { RESP.appendDecimal(self, to: &buffer) }
    public var redisByteCount: Int? { RESP.decimalCount(magnitude) + (self < 0 ? 1 : 0) }
}

extension Int64: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { Int(self).appendRedisBytes(to: &buffer) }
    public var redisByteCount: Int? { Int(self).redisByteCount }
}

extension Double: RedisArgument {
    public func appendRedisBytes(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
}

/// One command as an argument vector: every argument is sent with its length (`redisCommandArgv`),
/// so values may hold any byte, NUL included, and no format string is ever built from data.
///
/// All arguments live in one contiguous buffer: building a command is one growing allocation, and
/// handing it to hiredis needs no per-argument copies.
public struct RedisCommand: Sendable, Hashable {
    public private(set) var bytes: [UInt8] = []
    public private(set) var lengths: [Int] = []
    /// The script of an `EVALSHA` made by `init(script:keys:arguments:)`, for the `EVAL` fall-back.
    public private(set) var script: RedisScript?

    public init(_ name: String, _ arguments: any RedisArgument...) {
        self.init(name, arguments: arguments)
    }

    public init(_ name: String, arguments: [any RedisArgument]) {
        bytes.reserveCapacity(64)
        lengths.reserveCapacity(arguments.count + 1)
        append(name)
        for argument in arguments { append(argument) }
    }

    /// `EVALSHA digest numkeys keys... arguments...`, knowing its script: sent in a
    /// `RedisCommandBuffer`, a server that answers `NOSCRIPT` is sent the `EVAL` form instead.
    public init(script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument]) {
        self.init("EVALSHA", arguments: [script.sha1, keys.count] + keys + arguments)
        self.script = script
    }

    /// A command read back from RESP bytes (`RedisCommandBuffer.command(at:)`).
    init(rawArguments: [ArraySlice<UInt8>]) {
        bytes.reserveCapacity(rawArguments.reduce(0) { $0 + $1.count })
        lengths.reserveCapacity(rawArguments.count)
        for argument in rawArguments { append(argument) }
    }

    /// Appends one more argument.
    public mutating func append(_ argument: some RedisArgument) {
        let start = bytes.count
        argument.appendRedisBytes(to: &bytes)
        lengths.append(bytes.count - start)
    }

    public var argumentCount: Int { lengths.count }

    /// Why the command cannot be sent, or nil. Only an empty name is refused: every argument after
    /// it may be empty (`SET k ""`), but a command whose bytes are all empty has no buffer to point
    /// hiredis at, and no server command has an empty name.
    public var invalidReason: String? {
        guard let first = lengths.first, first > 0 else { return "the command name is empty" }
        return nil
    }

    /// The bytes of argument `index` (0 is the command's name), or nil past the last one.
    public func argument(_ index: Int) -> ArraySlice<UInt8>? {
        guard index >= 0, index < lengths.count else { return nil }
        let start = lengths[..<index].reduce(0, +)
        return bytes[start..<start + lengths[index]]
    }

    /// The command's name, for errors and logs (never its arguments, which may hold secrets).
    public var name: String {
        guard let first = lengths.first else { return "" }
        return String(decoding: bytes[0..<first], as: UTF8.self)
    }
}
