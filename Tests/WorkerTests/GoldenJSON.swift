import Foundation

/// A JSON value as the golden transcript compares it: integers apart from doubles, booleans apart
/// from numbers, and strings compared by their UTF-8 bytes (identity is bytes: `"\u{e9}"` and
/// `"e\u{301}"` differ, whatever `String ==` says).
indirect enum GoldenJSON: Decodable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([GoldenJSON])
    case object([(key: String, value: GoldenJSON)])

    init(from decoder: any Decoder) throws {
        if var list = try? decoder.unkeyedContainer() {
            var items: [GoldenJSON] = []
            while !list.isAtEnd { items.append(try list.decode(GoldenJSON.self)) }
            self = .array(items)
            return
        }
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            // Keys in the order JSONDecoder gives them; comparisons look keys up by bytes.
            self = .object(try object.allKeys.map { ($0.stringValue, try object.decode(GoldenJSON.self, forKey: $0)) })
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() { self = .null }
        else if let b = try? single.decode(Bool.self) { self = .bool(b) }
        else if let i = try? single.decode(Int64.self) { self = .int(i) }
        else if let d = try? single.decode(Double.self) { self = .double(d) }
        else { self = .string(try single.decode(String.self)) }
    }

    static func parse(_ bytes: [UInt8]) throws -> GoldenJSON {
        try JSONDecoder().decode(GoldenJSON.self, from: Data(bytes))
    }

    subscript(key: String) -> GoldenJSON? {
        guard case .object(let members) = self else { return nil }
        let k = Array(key.utf8)
        return members.first { Array($0.key.utf8) == k }?.value
    }

    var string: String? { if case .string(let s) = self { s } else { nil } }
    var int: Int64? { if case .int(let i) = self { i } else { nil } }
    var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
    var array: [GoldenJSON]? { if case .array(let a) = self { a } else { nil } }

    /// Compact JSON text, UTF-8 left as it is: what a producer would push.
    var text: String {
        switch self {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .int(let i): String(i)
        case .double(let d): String(d)
        case .string(let s): Self.quoted(s)
        case .array(let a): "[" + a.map(\.text).joined(separator: ",") + "]"
        case .object(let o): "{" + o.map { Self.quoted($0.key) + ":" + $0.value.text }.joined(separator: ",") + "}"
        }
    }

    var description: String { text }

    /// `text` with every object's keys in byte order: equal for equal values.
    var canonical: String {
        switch self {
        case .array(let a): "[" + a.map(\.canonical).joined(separator: ",") + "]"
        case .object(let o):
            "{" + o.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
                .map { Self.quoted($0.key) + ":" + $0.value.canonical }.joined(separator: ",") + "}"
        default: text
        }
    }

    private static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Where `live` differs from `golden`: a golden key missing or a value changed. A key only
    /// `live` has is fine (a new field), so is nothing else.
    static func differences(golden: GoldenJSON, live: GoldenJSON, at path: String = "") -> [String] {
        switch (golden, live) {
        case (.null, .null): return []
        case (.bool(let a), .bool(let b)) where a == b: return []
        case (.int(let a), .int(let b)) where a == b: return []
        case (.double(let a), .double(let b)) where a == b: return []
        case (.string(let a), .string(let b)) where Array(a.utf8) == Array(b.utf8): return []
        case (.array(let a), .array(let b)):
            guard a.count == b.count else { return ["\(path): \(a.count) items in the transcript, \(b.count) live: \(b.map(\.text))"] }
            return zip(a, b).enumerated().flatMap { differences(golden: $1.0, live: $1.1, at: "\(path)[\($0)]") }
        case (.object(let members), .object):
            return members.flatMap { member -> [String] in
                guard let value = live[member.key] else { return ["\(path).\(member.key): missing (the transcript has \(member.value.text))"] }
                return differences(golden: member.value, live: value, at: "\(path).\(member.key)")
            }
        default:
            return ["\(path): the transcript has \(golden.text), live \(live.text)"]
        }
    }
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// The transcript's normalisation (Tests/Golden/README.md), applied to what a live run gives.
struct GoldenNormaliser {
    static let prefixPlaceholder = "<P>"
    let prefix: String
    /// Times in this window are the run's own and become `<time>`; others are compared exactly.
    let window: ClosedRange<Date>

    init(prefix: String, start: Date) {
        self.prefix = prefix
        window = start.addingTimeInterval(-86_400)...start.addingTimeInterval(400 * 86_400)
    }

    /// A job text of the transcript as it is pushed: `<P>` and `<x*N>` expanded.
    func expand(_ text: String) -> String {
        text.replacing(Self.prefixPlaceholder, with: prefix)
            .replacing(#/<x\*(\d+)>/#) { String(repeating: "x", count: Int($0.output.1) ?? 0) }
    }

    func normalise(_ value: GoldenJSON, key: String? = nil) -> GoldenJSON {
        switch value {
        case .int where key == "daysUntilRenewal": return .string("<int>")
        case .string(let s): return .string(normalise(s))
        case .array(let a): return .array(a.map { normalise($0) })
        case .object(let o): return .object(o.map { ($0.key, normalise($0.value, key: $0.key)) })
        default: return value
        }
    }

    func normalise(_ s: String) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return s.replacing(prefix, with: Self.prefixPlaceholder)
            .replacing(#/x{1000,}/#) { "<x*\($0.output.count)>" }
            .replacing(#/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/#) { match in
                guard let at = formatter.date(from: String(match.output)), window.contains(at) else { return String(match.output) }
                return "<time>"
            }
    }
}
