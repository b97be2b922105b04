import Foundation

/// Time as the ledger stores and writes it: INTEGER milliseconds since 1970 in SQLite, and
/// ISO 8601 UTC with milliseconds (`2026-11-24T02:00:00.000Z`) on the wire.
///
/// A hand-written formatter because results are built on the hot path, where
/// `ISO8601DateFormatter` costs microseconds and allocations per call.
public enum LedgerTime {
    /// Milliseconds since 1970, rounded down (the ledger's resolution).
    public static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }

    public static func date(_ ms: Int64) -> Date {
        Date(timeIntervalSince1970: Double(ms) / 1000)
    }

    /// `2026-11-24T02:00:00.000Z`.
    public static func format(_ date: Date) -> String { format(ms: milliseconds(date)) }

    public static func format(ms: Int64) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        append(ms: ms, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    package static func append(ms: Int64, to out: inout [UInt8]) {
        let c = CalendarMonth.civil(ms)
        func digits(_ v: Int64, _ n: Int) {
            var p: Int64 = 1
            for _ in 1..<n { p *= 10 }
            while p > 0 { out.append(UInt8(48 + (v / p) % 10)); p /= 10 }
        }
        if c.year < 0 || c.year > 9999 {
            out.append(contentsOf: Array(String(c.year).utf8))  // outside ISO's 4 digits; never in practice
        } else {
            digits(c.year, 4)
        }
        out.append(UInt8(ascii: "-")); digits(c.month, 2)
        out.append(UInt8(ascii: "-")); digits(c.day, 2)
        out.append(UInt8(ascii: "T"))
        let s = c.msOfDay / 1000
        digits(s / 3600, 2); out.append(UInt8(ascii: ":"))
        digits(s / 60 % 60, 2); out.append(UInt8(ascii: ":"))
        digits(s % 60, 2); out.append(UInt8(ascii: "."))
        digits(c.msOfDay % 1000, 3); out.append(UInt8(ascii: "Z"))
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)` and a bare `YYYY-MM-DD` (midnight UTC).
    /// Returns nil for anything else, including impossible dates such as Feb 30.
    /// Offered to the worker for `startDate`/`endDate`.
    public static func parse(_ text: String) -> Date? {
        parseMilliseconds(text).map(date)
    }

    public static func parseMilliseconds(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        var i = 0
        func num(_ n: Int) -> Int64? {
            guard i + n <= b.count else { return nil }
            var v: Int64 = 0
            for j in i..<(i + n) {
                guard b[j] >= 48 && b[j] <= 57 else { return nil }
                v = v * 10 + Int64(b[j] - 48)
            }
            i += n
            return v
        }
        func expect(_ c: Unicode.Scalar) -> Bool {
            guard i < b.count, b[i] == UInt8(ascii: c) else { return false }
            i += 1
            return true
        }
        guard let y = num(4), expect("-"), let mo = num(2), expect("-"), let d = num(2),
            (1...12).contains(mo), d >= 1, d <= CalendarMonth.daysInMonth(year: y, month: mo)
        else { return nil }
        let day = CalendarMonth.daysFromCivil(y, mo, d) * CalendarMonth.msPerDay
        if i == b.count { return day }
        guard expect("T") || expect(" "), let h = num(2), expect(":"), let mi = num(2), expect(":"),
            let s = num(2), h < 24, mi < 60, s < 60
        else { return nil }
        var ms: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale: Int64 = 100
            let start = i
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                ms += Int64(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        var offset: Int64 = 0
        if expect("Z") || expect("z") {
        } else if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign: Int64 = b[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let oh = num(2), expect(":"), let om = num(2), oh < 24, om < 60 else { return nil }
            offset = sign * (oh * 3600 + om * 60) * 1000
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        return day + ((h * 60 + mi) * 60 + s) * 1000 + ms - offset
    }
}
