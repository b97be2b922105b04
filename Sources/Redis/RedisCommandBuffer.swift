/// Many commands written as RESP (arrays of bulk strings) into one growable byte buffer, to be sent
/// in one write and answered in order (`RedisClient.pipeline(_:)`).
///
/// Why: hiredis formats each command it is handed (`redisAppendCommandArgv`: a pass over the
/// arguments, `sdscatfmt` per argument, an allocation per command). Writing the bytes here, each
/// argument copied once and each length written as digits, hands hiredis one buffer per round trip
/// (`redisAppendFormattedCommand`), which it only copies. Every argument is a bulk string with its
/// length, so values may hold any byte, NUL and CR LF included, and may be empty.
///
/// A command is `begin(_:argumentCount:)` followed by exactly that many `argument` calls. The count
/// is checked as the bytes are written: a buffer whose last command is short, or that was given an
/// argument too many or an empty command name, reports it in `invalidReason`, and no connection sends
/// such a buffer (nothing of it is written, so the link stays in step).
public struct RedisCommandBuffer: Sendable {
    /// The RESP bytes of every command so far.
    public private(set) var bytes: [UInt8] = []
    /// Where each command starts in `bytes`.
    private var starts: [Int] = []
    /// Arguments the last command still owes.
    private var owed = 0
    /// The first misuse seen while writing, if any (see `invalidReason`).
    private var fault: String?
    /// The commands sent by SHA-1 (`EVALSHA`), so that a server without the script in its cache
    /// can be sent `EVAL` instead (`RedisClient.pipeline(_:)`).
    public private(set) var scriptCalls: [ScriptCall] = []

    /// An `EVALSHA` in the buffer: which command, its script, and where its bytes after the digest
    /// start (numkeys, keys, arguments), which the `EVAL` form reuses as they are.
    public struct ScriptCall: Sendable {
        public let index: Int
        public let script: RedisScript
        let argumentCount: Int
        let tailStart: Int
    }

    public init(capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    /// How many commands the buffer holds (each answers one reply).
    public var count: Int { starts.count }
    public var isEmpty: Bool { starts.isEmpty }

    /// Forgets every command, keeping the memory for the next round trip.
    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        starts.removeAll(keepingCapacity: true)
        scriptCalls.removeAll(keepingCapacity: true)
        owed = 0
        fault = nil
    }

    /// Why the buffer cannot be sent, or nil: a command short of the arguments it declared, an
    /// argument no command declared, or an empty command name.
    public var invalidReason: String? {
        if let fault { return fault }
        if owed > 0 { return "the last command is \(owed) argument(s) short" }
        return nil
    }

    // MARK: Writing

    /// Starts a command: `name` and then `argumentCount` arguments, which must follow.
    public mutating func begin(_ name: String, argumentCount: Int) {
        if owed > 0 { record("a command began while the one before it was \(owed) argument(s) short") }
        if name.utf8.isEmpty { record("the command name is empty") }
        starts.append(bytes.count)
        RESP.appendHeader(UInt8(ascii: "*"), argumentCount + 1, to: &bytes)
        _ = RESP.appendArgument(name, to: &bytes)
        owed = max(0, argumentCount)
    }

    /// Starts `EVALSHA digest numkeys`, followed by `keyCount` keys and `argumentCount` arguments
    /// (`argument` calls, keys first). The script's source is kept for the `EVAL` fall-back.
    public mutating func beginScript(_ script: RedisScript, keyCount: Int, argumentCount: Int) {
        let total = 2 + keyCount + argumentCount
        begin("EVALSHA", argumentCount: total)
        argument(script.sha1)
        scriptCalls.append(ScriptCall(index: starts.count - 1, script: script, argumentCount: total, tailStart: bytes.count))
        argument(keyCount)
    }

    /// One argument of the open command.
    public mutating func argument(_ value: some RedisArgument) {
        guard owes() else { return }
        if let reason = RESP.appendArgument(value, to: &bytes) { record(reason) }
    }

    /// One argument of the open command, written by `body` at the end of `bytes` (e.g. an encoder
    /// writing JSON in place): its length is only known afterwards, so its header is inserted
    /// before it (one move of the value; RESP allows no padded length).
    public mutating func argument<E: Error>(writing body: (inout [UInt8]) throws(E) -> Void) throws(E) {
        guard owes() else { return }
        try RESP.appendArgument(writing: body, to: &bytes)
    }

    /// Every argument of `list`, in order, as arguments of the open command.
    public mutating func arguments(_ list: RedisArgumentList) {
        if list.mismatched { record("an argument of a list wrote more or fewer bytes than it declared") }
        guard list.count <= owed else {
            record("\(list.count) arguments were given to a command that owes \(owed)")
            return
        }
        owed -= list.count
        bytes.append(contentsOf: list.bytes)
    }

    /// A whole command (its script, when it was made by `RedisCommand(script:keys:arguments:)`, is
    /// kept for the `EVAL` fall-back).
    public mutating func append(_ command: RedisCommand) {
        if let reason = command.invalidReason { record(reason) }
        begin(command.name, argumentCount: command.argumentCount - 1)
        var offset = command.lengths.first ?? 0
        for (index, length) in command.lengths.enumerated().dropFirst() {
            argument(command.bytes[offset..<offset + length])
            offset += length
            if index == 1, let script = command.script {
                scriptCalls.append(ScriptCall(index: starts.count - 1, script: script,
                                              argumentCount: command.argumentCount - 1, tailStart: bytes.count))
            }
        }
    }

    /// Every command of `other`, after this buffer's.
    public mutating func append(contentsOf other: RedisCommandBuffer) {
        if let reason = other.invalidReason { record(reason) }
        if owed > 0 { record("a buffer was appended while the command before it was \(owed) argument(s) short") }
        let base = bytes.count
        let first = starts.count
        bytes.append(contentsOf: other.bytes)
        starts.append(contentsOf: other.starts.lazy.map { $0 + base })
        scriptCalls.append(contentsOf: other.scriptCalls.lazy.map {
            ScriptCall(index: $0.index + first, script: $0.script, argumentCount: $0.argumentCount, tailStart: $0.tailStart + base)
        })
    }

    /// The `EVAL` form of a script call of `buffer`: the same keys and arguments, with the script's
    /// source in place of its digest (which also caches it on the server again).
    mutating func appendEval(of call: ScriptCall, in buffer: RedisCommandBuffer) {
        let end = call.index + 1 < buffer.starts.count ? buffer.starts[call.index + 1] : buffer.bytes.count
        begin("EVAL", argumentCount: call.argumentCount)
        argument(call.script.source)
        owed -= call.argumentCount - 1
        bytes.append(contentsOf: buffer.bytes[call.tailStart..<end])
    }

    private mutating func owes() -> Bool {
        guard owed > 0 else {
            record("an argument was given that no command declared")
            return false
        }
        owed -= 1
        return true
    }

    private mutating func record(_ reason: String) {
        if fault == nil { fault = reason }
    }

    // MARK: Reading back

    /// The command at `index` as a `RedisCommand` (for routing on a cluster, and for messages),
    /// read back from the bytes this buffer wrote.
    public func command(at index: Int) -> RedisCommand? {
        guard index >= 0, index < starts.count else { return nil }
        let end = index + 1 < starts.count ? starts[index + 1] : bytes.count
        return RESP.command(in: bytes[starts[index]..<end])
    }

    /// The name of the command at `index`, for errors and logs (never its arguments).
    public func name(at index: Int) -> String {
        command(at: index)?.name ?? "?"
    }

    /// Every command, read back (a cluster routes each by its key).
    public var commands: [RedisCommand] {
        starts.indices.compactMap { command(at: $0) }
    }
}

/// Arguments written as RESP bulk strings ahead of the command that will carry them, when their
/// count is known only at the end (the outbox's ordered script, whose arguments are its messages).
public struct RedisArgumentList: Sendable {
    public private(set) var bytes: [UInt8] = []
    public private(set) var count = 0

    public init(capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    public var isEmpty: Bool { count == 0 }

    public mutating func append(_ value: some RedisArgument) {
        // A length that disagrees with the bytes is caught when the list is read back (a
        // short or long bulk string no longer parses), so it cannot go out unnoticed.
        if RESP.appendArgument(value, to: &bytes) != nil { mismatched = true }
        count += 1
    }

    /// One argument written by `body` (see `RedisCommandBuffer.argument(writing:)`).
    public mutating func append<E: Error>(writing body: (inout [UInt8]) throws(E) -> Void) throws(E) {
        try RESP.appendArgument(writing: body, to: &bytes)
        count += 1
    }

    /// An argument whose `redisByteCount` disagreed with the bytes it wrote was appended.
    var mismatched = false
}

/// The RESP writing and reading shared by the buffer and the list.
enum RESP {
    static func appendCRLF(to bytes: inout [UInt8]) {
        bytes.append(13)
        bytes.append(10)
    }

    /// `*n\r\n` or `$n\r\n`.
    static func appendHeader(_ kind: UInt8, _ n: Int, to bytes: inout [UInt8]) {
        bytes.append(kind)
        appendDecimal(n, to: &bytes)
        appendCRLF(to: &bytes)
    }

    /// `$n\r\n<bytes>\r\n`; returns why the argument is wrong, if its declared length is.
    static func appendArgument(_ value: some RedisArgument, to bytes: inout [UInt8]) -> String? {
        guard let length = value.redisByteCount else {
            appendArgument(writing: { value.appendRedisBytes(to: &$0) }, to: &bytes)
            return nil
        }
        appendHeader(UInt8(ascii: "$"), length, to: &bytes)
        let start = bytes.count
        value.appendRedisBytes(to: &bytes)
        let written = bytes.count - start
        appendCRLF(to: &bytes)
        return written == length ? nil : "an argument wrote \(written) bytes, not the \(length) it declared"
    }

    static func appendArgument<E: Error>(writing body: (inout [UInt8]) throws(E) -> Void, to bytes: inout [UInt8]) throws(E) {
        let start = bytes.count
        try body(&bytes)
        var header: [UInt8] = []
        header.reserveCapacity(12)
        appendHeader(UInt8(ascii: "$"), bytes.count - start, to: &header)
        bytes.insert(contentsOf: header, at: start)
        appendCRLF(to: &bytes)
    }

    /// Decimal digits without a `String` on the way.
    static func appendDecimal(_ n: Int, to bytes: inout [UInt8]) {
        if n < 0 {
            bytes.append(UInt8(ascii: "-"))
            appendDecimal(magnitude: n.magnitude, to: &bytes)
        } else {
            appendDecimal(magnitude: UInt(n), to: &bytes)
        }
    }

    static func appendDecimal(magnitude: UInt, to bytes: inout [UInt8]) {
        let digits = decimalCount(magnitude)
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: digits))
        var rest = magnitude
        var at = start + digits - 1
        while rest > 0 {
            bytes[at] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
            at -= 1
        }
    }

    static func decimalCount(_ magnitude: UInt) -> Int {
        var digits = 1
        var rest = magnitude
        while rest >= 10 {
            rest /= 10
            digits += 1
        }
        return digits
    }

    /// Reads one command (`*n` then n bulk strings) back; nil if the bytes are not one.
    static func command(in bytes: ArraySlice<UInt8>) -> RedisCommand? {
        var at = bytes.startIndex
        guard let n = number(after: UInt8(ascii: "*"), in: bytes, at: &at), n > 0 else { return nil }
        var arguments: [ArraySlice<UInt8>] = []
        arguments.reserveCapacity(n)
        for _ in 0..<n {
            guard let length = number(after: UInt8(ascii: "$"), in: bytes, at: &at), at + length + 2 <= bytes.endIndex else {
                return nil
            }
            arguments.append(bytes[at..<at + length])
            at += length + 2
        }
        return RedisCommand(rawArguments: arguments)
    }

    private static func number(after kind: UInt8, in bytes: ArraySlice<UInt8>, at: inout Int) -> Int? {
        guard at < bytes.endIndex, bytes[at] == kind else { return nil }
        at += 1
        var value = 0
        var seen = false
        while at < bytes.endIndex, bytes[at] != 13 {
            let digit = Int(bytes[at]) - 48
            guard digit >= 0, digit <= 9 else { return nil }
            value = value * 10 + digit
            seen = true
            at += 1
        }
        guard seen, at + 1 < bytes.endIndex, bytes[at + 1] == 10 else { return nil }
        at += 2
        return value
    }
}
