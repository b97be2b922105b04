/// Writing JSON by hand on the hot path: replies and invalidations are a few known fields, and
/// appending them to a string is several times cheaper than a general-purpose encoder.
struct JSONText {
    private(set) var text: String

    init(capacity: Int = 128) {
        text = "{"
        text.reserveCapacity(capacity)
    }

    private mutating func key(_ name: String) {
        if text.utf8.last != UInt8(ascii: "{") { text += "," }
        text += "\""
        text += name
        text += "\":"
    }

    mutating func field(_ name: String, _ value: String?) {
        key(name)
        if let value { Self.appendQuoted(value, to: &text) } else { text += "null" }
    }

    mutating func field(_ name: String, _ value: Int64?) {
        key(name)
        text += value.map { String($0) } ?? "null"
    }

    mutating func field(_ name: String, _ value: Bool) {
        key(name)
        text += value ? "true" : "false"
    }

    /// A value that is already JSON text.
    mutating func field(_ name: String, raw: String) {
        key(name)
        text += raw
    }

    /// Appends the members of a JSON object text (`{"a":1}` adds `"a":1`).
    mutating func members(of object: String) {
        let inner = object.utf8.dropFirst().dropLast()
        guard !inner.isEmpty else { return }
        if text.utf8.last != UInt8(ascii: "{") { text += "," }
        text += Substring(inner)
    }

    mutating func finish() -> String {
        text += "}"
        return text
    }

    static func appendQuoted(_ value: String, to out: inout String) {
        out += "\""
        var needsEscaping = false
        for b in value.utf8 where b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
            needsEscaping = true
            break
        }
        if !needsEscaping {
            out += value
        } else {
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20:
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    static func quoted(_ value: String) -> String {
        var out = ""
        appendQuoted(value, to: &out)
        return out
    }
}
