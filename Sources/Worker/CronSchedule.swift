import Foundation

/// A five-field cron expression (`minute hour day-of-month month day-of-week`) in a time zone.
///
/// Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, and month and
/// weekday names (`jan`, `mon`); weekday 0 and 7 are Sunday. As in Vixie cron, when both the day of
/// month and the day of week are restricted, a day matching either one fires. The macros
/// `@yearly`, `@monthly`, `@weekly`, `@daily` and `@hourly` are accepted too.
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    public let expression: String
    public let timeZone: TimeZone
    private let minutes, hours, days, months, weekdays: UInt64
    private let daysRestricted, weekdaysRestricted: Bool

    public init(_ expression: String, timeZone: TimeZone = TimeZone(identifier: "UTC")!) throws(CronError) {
        self.expression = expression
        self.timeZone = timeZone
        let macros = ["@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                      "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"]
        let text = macros[expression.trimmingCharacters(in: .whitespaces).lowercased()] ?? expression
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count == 5 else {
            throw CronError("'\(expression)' has \(fields.count) fields; a cron expression has 5: minute hour day-of-month month day-of-week")
        }
        minutes = try Self.parse(fields[0], "minute", 0...59)
        hours = try Self.parse(fields[1], "hour", 0...23)
        days = try Self.parse(fields[2], "day-of-month", 1...31)
        months = try Self.parse(fields[3], "month", 1...12, names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], firstName: 1)
        let rawWeekdays = try Self.parse(fields[4], "day-of-week", 0...7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"], firstName: 0)
        weekdays = (rawWeekdays | (rawWeekdays >> 7)) & 0x7F  // 7 is Sunday too
        daysRestricted = fields[2] != "*" && !fields[2].hasPrefix("*/")
        weekdaysRestricted = fields[4] != "*" && !fields[4].hasPrefix("*/")
    }

    /// `0 2 * * *` in UTC, the contract's default renewal slot: built from its bit masks rather
    /// than parsed, so that a default can never fail.
    public static let dailyAt2UTC = CronSchedule(
        expression: "0 2 * * *", timeZone: TimeZone(identifier: "UTC") ?? TimeZone.current,
        minutes: 1 << 0, hours: 1 << 2, days: 0xFFFF_FFFE, months: 0x1FFE, weekdays: 0x7F)

    private init(expression: String, timeZone: TimeZone, minutes: UInt64, hours: UInt64, days: UInt64,
                 months: UInt64, weekdays: UInt64) {
        self.expression = expression
        self.timeZone = timeZone
        self.minutes = minutes
        self.hours = hours
        self.days = days
        self.months = months
        self.weekdays = weekdays
        daysRestricted = false
        weekdaysRestricted = false
    }

    public var description: String { "\(expression) (\(timeZone.identifier))" }

    /// The first firing time strictly after `date`.
    public func next(after date: Date) -> Date? {
        let calendar = self.calendar
        var t = calendar.dateInterval(of: .minute, for: date)!.start.addingTimeInterval(60)
        for _ in 0..<200_000 {
            let c = calendar.dateComponents([.month, .day, .hour, .minute, .weekday], from: t)
            if !Self.has(months, c.month!) {
                t = calendar.dateInterval(of: .month, for: t)!.end
            } else if !matchesDay(c) {
                t = calendar.dateInterval(of: .day, for: t)!.end
            } else if !Self.has(hours, c.hour!) {
                t = calendar.dateInterval(of: .hour, for: t)!.end
            } else if !Self.has(minutes, c.minute!) {
                t = t.addingTimeInterval(60)
            } else {
                return t
            }
        }
        return nil
    }

    /// The last firing time at or before `date`: the run a worker that was down should catch up.
    public func previous(atOrBefore date: Date) -> Date? {
        let calendar = self.calendar
        var t = calendar.dateInterval(of: .minute, for: date)!.start
        for _ in 0..<200_000 {
            let c = calendar.dateComponents([.month, .day, .hour, .minute, .weekday], from: t)
            if !Self.has(months, c.month!) {
                t = calendar.dateInterval(of: .month, for: t)!.start.addingTimeInterval(-60)
            } else if !matchesDay(c) {
                t = calendar.dateInterval(of: .day, for: t)!.start.addingTimeInterval(-60)
            } else if !Self.has(hours, c.hour!) {
                t = calendar.dateInterval(of: .hour, for: t)!.start.addingTimeInterval(-60)
            } else if !Self.has(minutes, c.minute!) {
                t = t.addingTimeInterval(-60)
            } else {
                return t
            }
        }
        return nil
    }

    private var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        return calendar
    }

    private func matchesDay(_ c: DateComponents) -> Bool {
        let dayOK = Self.has(days, c.day!)
        let weekdayOK = Self.has(weekdays, c.weekday! - 1)
        if daysRestricted && weekdaysRestricted { return dayOK || weekdayOK }
        return dayOK && weekdayOK
    }

    private static func has(_ set: UInt64, _ value: Int) -> Bool { set & (1 << UInt64(value)) != 0 }

    private static func parse(_ field: Substring, _ name: String, _ range: ClosedRange<Int>,
                              names: [String] = [], firstName: Int = 0) throws(CronError) -> UInt64 {
        func number(_ text: Substring) throws(CronError) -> Int {
            if let n = Int(text), range.contains(n) { return n }
            if let i = names.firstIndex(of: text.lowercased()) { return i + firstName }
            throw CronError("\(name) '\(text)' is not in \(range.lowerBound)-\(range.upperBound)")
        }
        var set: UInt64 = 0
        for item in field.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw CronError("\(name) '\(item)' has more than one '/'") }
            var step = 1
            if parts.count == 2 {
                guard let s = Int(parts[1]), s > 0 else { throw CronError("\(name) step '\(parts[1])' must be a positive number") }
                step = s
            }
            var low = range.lowerBound, high = range.upperBound
            if parts[0] != "*" {
                let bounds = parts[0].split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2, !bounds[0].isEmpty else { throw CronError("\(name) '\(item)' is not a number, range or *") }
                low = try number(bounds[0])
                high = bounds.count == 2 ? try number(bounds[1]) : (parts.count == 2 ? range.upperBound : low)
                guard low <= high else { throw CronError("\(name) range '\(parts[0])' runs backwards") }
            }
            for v in stride(from: low, through: high, by: step) { set |= 1 << UInt64(v) }
        }
        return set
    }
}

/// An invalid cron expression or time zone; the message names the field.
public struct CronError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
