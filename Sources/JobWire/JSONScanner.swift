/// A strict JSON reader for job objects, over the raw bytes.
///
/// Why not `JSONDecoder`: profiling the drain showed it taking about two thirds of the worker
/// thread's CPU (keyed containers, `contains` lookups and boxing for a flat object of a few
/// fields). Jobs are flat objects of known fields, so this reader walks the bytes once, keeps the
/// fields it knows, and validates (without building) everything else: nested values are checked
/// for well-formedness and depth and kept as their raw text (for `metadata`).
///
/// It is strict RFC 8259: no trailing commas, no comments, no leading zeros, no unescaped control
/// characters in strings, nothing after the value. The input is known to be valid UTF-8.
struct JSONScanner {
    enum Value {
        case string(String)
        /// An integer that fits in 64 bits.
        case integer(Int64)
        /// An integer beyond 64 bits (digits only).
        case bigInteger
        /// A number with a fraction or an exponent.
        case fraction
        case bool(Bool)
        case null
        /// An object or array, as its raw text.
        case object(String)
        case array
    }

    struct Failure: Error {
        let message: String
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var i = 0
    static let maxDepth = 64

    private init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// Calls `field` for each member of the top-level object, in order.
    static func scanObject(_ raw: [UInt8], _ field: (String, Value) -> Void) throws(Failure) {
        try raw.withUnsafeBufferPointer { (buffer) throws(Failure) in
            var scanner = JSONScanner(buffer)
            scanner.skipSpace()
            guard scanner.peek == UInt8(ascii: "{") else { throw Failure(message: "it is not a JSON object") }
            scanner.i += 1
            scanner.skipSpace()
            if scanner.peek == UInt8(ascii: "}") {
                scanner.i += 1
            } else {
                while true {
                    scanner.skipSpace()
                    guard scanner.peek == UInt8(ascii: "\"") else { throw scanner.failure("a member name") }
                    let key = try scanner.string()
                    scanner.skipSpace()
                    guard scanner.peek == UInt8(ascii: ":") else { throw scanner.failure("':'") }
                    scanner.i += 1
                    scanner.skipSpace()
                    field(key, try scanner.value(depth: 1))
                    scanner.skipSpace()
                    if scanner.peek == UInt8(ascii: ",") { scanner.i += 1; continue }
                    guard scanner.peek == UInt8(ascii: "}") else { throw scanner.failure("',' or '}'") }
                    scanner.i += 1
                    break
                }
            }
            scanner.skipSpace()
            guard scanner.i == buffer.count else { throw scanner.failure("the end of the job") }
        }
    }

    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    private func failure(_ expected: String) -> Failure {
        Failure(message: i < bytes.count ? "it is not valid JSON: expected \(expected) at byte \(i)"
                                         : "it is not valid JSON: it ends where \(expected) was expected")
    }

    private mutating func skipSpace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    private mutating func value(depth: Int) throws(Failure) -> Value {
        guard let c = peek else { throw failure("a value") }
        switch c {
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let start = i
            try skipContainer(depth: depth)
            if c == UInt8(ascii: "[") { return .array }
            return .object(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw failure("a value")
        }
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw failure("'\(word)'") }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw failure("'\(word)'") }
        i += n
    }

    private mutating func number() throws(Failure) -> Value {
        var negative = false
        if peek == UInt8(ascii: "-") { negative = true; i += 1 }
        guard let first = peek, first >= 0x30, first <= 0x39 else { throw failure("a digit") }
        var magnitude: UInt64 = 0
        var overflow = false
        if first == 0x30 {
            i += 1
        } else {
            while let d = peek, d >= 0x30, d <= 0x39 {
                let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (m2, o2) = m1.addingReportingOverflow(UInt64(d - 0x30))
                overflow = overflow || o1 || o2
                magnitude = m2
                i += 1
            }
        }
        var isInteger = true
        if peek == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard let d = peek, d >= 0x30, d <= 0x39 else { throw failure("a digit after '.'") }
            while let d = peek, d >= 0x30, d <= 0x39 { i += 1 }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            guard let d = peek, d >= 0x30, d <= 0x39 else { throw failure("a digit in the exponent") }
            while let d = peek, d >= 0x30, d <= 0x39 { i += 1 }
        }
        guard isInteger else { return .fraction }
        if overflow { return .bigInteger }
        if negative {
            return magnitude <= UInt64(Int64.max) + 1 ? .integer(magnitude == UInt64(Int64.max) + 1 ? .min : -Int64(magnitude)) : .bigInteger
        }
        return magnitude <= UInt64(Int64.max) ? .integer(Int64(magnitude)) : .bigInteger
    }

    /// Reads a string at `"`, decoding escapes.
    private mutating func string() throws(Failure) -> String {
        i += 1
        let start = i
        // Fast path: no escapes.
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
                i += 1
                return text
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw failure("no control character inside a string") }
            i += 1
        }
        var out = Array(UnsafeBufferPointer(rebasing: bytes[start..<i]))
        while i < bytes.count {
            let c = bytes[i]
            switch c {
            case UInt8(ascii: "\""):
                i += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                i += 1
                guard let e = peek else { throw failure("an escape") }
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard peek == UInt8(ascii: "\\"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "u") else {
                            throw failure("the low half of a surrogate pair")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw failure("the low half of a surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw failure("no lone low surrogate")
                    }
                    // Surrogates were combined or refused above, so this always holds; a value
                    // that is not a scalar would still be refused rather than trap.
                    guard let unicode = Unicode.Scalar(scalar) else { throw failure("a Unicode scalar value") }
                    out.append(contentsOf: String(unicode).utf8)
                default: throw failure("a valid escape")
                }
            default:
                if c < 0x20 { throw failure("no control character inside a string") }
                out.append(c)
                i += 1
            }
        }
        throw failure("the closing quote of a string")
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard i + 4 <= bytes.count else { throw failure("four hex digits") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw failure("a hex digit")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    /// Skips an object or array, checking it is well-formed and not nested too deep.
    private mutating func skipContainer(depth: Int) throws(Failure) {
        guard depth <= Self.maxDepth else { throw Failure(message: "it is nested deeper than \(Self.maxDepth) levels") }
        let isObject = bytes[i] == UInt8(ascii: "{")
        let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
        i += 1
        skipSpace()
        if peek == close { i += 1; return }
        while true {
            skipSpace()
            if isObject {
                guard peek == UInt8(ascii: "\"") else { throw failure("a member name") }
                _ = try string()
                skipSpace()
                guard peek == UInt8(ascii: ":") else { throw failure("':'") }
                i += 1
                skipSpace()
            }
            if peek == UInt8(ascii: "{") || peek == UInt8(ascii: "[") {
                try skipContainer(depth: depth + 1)
            } else {
                _ = try value(depth: depth + 1)
            }
            skipSpace()
            if peek == UInt8(ascii: ",") { i += 1; continue }
            guard peek == close else { throw failure(isObject ? "',' or '}'" : "',' or ']'") }
            i += 1
            return
        }
    }
}
