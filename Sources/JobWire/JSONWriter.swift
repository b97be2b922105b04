import LedgerModel

import LedgerModel

/// The wire target's JSON writer: every reply, invalidation, alert, dead letter and failure reply
/// is written with it, once, into one byte buffer.
///
/// Results are built once per job on the hot path; `JSONEncoder` would cost an intermediate
/// Encodable model, reflection-free but allocation-heavy encoding, and key sorting we do not
/// want. This writer appends UTF-8 bytes to one buffer. Keys are static ASCII names chosen by
/// the ledger and are written as they are; every string value goes through `string(_:)`, which
/// escapes quotes, backslashes and all control characters (U+0000-U+001F as `\u00XX`, plus the
/// short forms), and passes other Unicode through as UTF-8, which JSON allows. `raw(_:)` embeds
/// text that is already JSON (stored metadata, legacy stored results).
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// Whether the innermost open container still has no member (so no comma is needed).
    private var empty: [Bool] = []

    public init(capacity: Int = 128) { bytes.reserveCapacity(capacity) }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Writes at the end of `buffer` (the argument buffer of a Redis command, say) without
    /// copying it: the buffer is moved into the writer and back.
    public static func append(to buffer: inout [UInt8], _ body: (inout JSONWriter) -> Void) {
        var w = JSONWriter(capacity: 0)
        swap(&w.bytes, &buffer)
        body(&w)
        swap(&w.bytes, &buffer)
    }

    public mutating func beginObject() { separate(); bytes.append(UInt8(ascii: "{")); empty.append(true) }
    public mutating func endObject() { bytes.append(UInt8(ascii: "}")); empty.removeLast() }
    public mutating func beginArray() { separate(); bytes.append(UInt8(ascii: "[")); empty.append(true) }
    public mutating func endArray() { bytes.append(UInt8(ascii: "]")); empty.removeLast() }

    /// Writes `"key":` inside an object; the next value call writes the value.
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        pendingValue = true
    }

    /// Writes a dynamic key (an operation type in `byOperation`, a detail name), escaped.
    public mutating func key(dynamic name: String) {
        separate()
        appendEscaped(name)
        bytes.append(UInt8(ascii: ":"))
        pendingValue = true
    }

    private var pendingValue = false

    /// Adds the comma before a member or element, unless it follows a key or opens the container.
    private mutating func separate() {
        if pendingValue { pendingValue = false; return }
        guard let last = empty.last else { return }
        if last { empty[empty.count - 1] = false } else { bytes.append(UInt8(ascii: ",")) }
    }

    public mutating func int(_ v: Int64) {
        separate()
        if v < 0 { bytes.append(UInt8(ascii: "-")) }
        var m = v.magnitude
        let start = bytes.count
        repeat { bytes.append(UInt8(48 + m % 10)); m /= 10 } while m > 0
        bytes[start...].reverse()
    }

    public mutating func int(_ v: Int) { int(Int64(v)) }
    public mutating func bool(_ v: Bool) { separate(); bytes.append(contentsOf: v ? Self.trueBytes : Self.falseBytes) }
    public mutating func null() { separate(); bytes.append(contentsOf: Self.nullBytes) }
    public mutating func string(_ s: String) { separate(); appendEscaped(s) }
    public mutating func string(_ s: String?) { if let s { string(s) } else { null() } }

    /// An ISO 8601 UTC time with milliseconds, or null.
    public mutating func time(ms: Int64?) {
        separate()
        guard let ms else { bytes.append(contentsOf: Self.nullBytes); return }
        bytes.append(UInt8(ascii: "\""))
        LedgerTime.append(ms: ms, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// Writes the members of an object that is already JSON text (`{"a":1}` adds `"a":1`) into
    /// the object being written: how the worker adds `id` and `type` around a stored result.
    public mutating func members(of object: String) {
        let inner = object.utf8.dropFirst().dropLast()
        guard !inner.isEmpty else { return }
        separate()
        bytes.append(contentsOf: inner)
    }

    /// Embeds text that is already valid JSON, or null.
    public mutating func raw(_ json: String?) {
        separate()
        guard let json else { bytes.append(contentsOf: Self.nullBytes); return }
        bytes.append(contentsOf: json.utf8)
    }

    private static let trueBytes = Array("true".utf8)
    private static let falseBytes = Array("false".utf8)
    private static let nullBytes = Array("null".utf8)
    private static let hex = Array("0123456789abcdef".utf8)

    private mutating func appendEscaped(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\\")); bytes.append(c)
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(c)
            case 0x0A: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
            case 0x08: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "b"))
            case 0x0C: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "f"))
            case 0..<0x20:
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), 48, 48])
                bytes.append(Self.hex[Int(c >> 4)])
                bytes.append(Self.hex[Int(c & 0xF)])
            default: bytes.append(c)  // valid UTF-8 by construction of Swift strings
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
