/// Calendar arithmetic in UTC on integer milliseconds since 1970, without Foundation.
///
/// Why not `Calendar`: renewal runs on the hot path of `renewAll` over many accounts, and the
/// rules we need are few and exact: a period is a calendar month counted from the account's
/// anchor, with the anchor's day clamped to the month's length (Jan 31 -> Feb 28/29 -> Mar 31).
/// Counting every period from the anchor (not from the previous period) is what keeps a Jan 31
/// account on the 31st after February. The date algorithms are Howard Hinnant's
/// `days_from_civil` / `civil_from_days`, exact over the whole Int64 day range we use.
public enum CalendarMonth {
    package static let msPerDay: Int64 = 86_400_000

    /// A UTC civil date-time split into its parts.
    package struct Civil: Equatable {
        package var year: Int64
        package var month: Int64  // 1...12
        package var day: Int64  // 1...31
        package var msOfDay: Int64
    }

    package static func isLeap(_ y: Int64) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    package static func daysInMonth(year: Int64, month: Int64) -> Int64 {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    package static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (m + 9) % 12
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    package static func civilFromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d)
    }

    package static func civil(_ ms: Int64) -> Civil {
        let days = ms >= 0 ? ms / msPerDay : (ms - msPerDay + 1) / msPerDay
        let (y, m, d) = civilFromDays(days)
        return Civil(year: y, month: m, day: d, msOfDay: ms - days * msPerDay)
    }

    /// `anchor` moved by `months` calendar months, the anchor's day clamped to the target
    /// month's length, the time of day kept.
    public static func adding(months: Int64, to anchor: Int64) -> Int64 {
        let c = civil(anchor)
        let total = c.year * 12 + (c.month - 1) + months
        let y = total >= 0 ? total / 12 : (total - 11) / 12
        let m = total - y * 12 + 1
        let d = min(c.day, daysInMonth(year: y, month: m))
        return daysFromCivil(y, m, d) * msPerDay + c.msOfDay
    }

    /// The number of whole periods from `anchor` to `now`: the largest k >= 0 with
    /// `adding(months: k, to: anchor) <= now` (0 when `now` precedes the anchor).
    public static func periods(from anchor: Int64, to now: Int64) -> Int64 {
        guard now > anchor else { return 0 }
        let a = civil(anchor), n = civil(now)
        var k = max(0, (n.year - a.year) * 12 + (n.month - a.month))
        while k > 0 && adding(months: k, to: anchor) > now { k -= 1 }
        while adding(months: k + 1, to: anchor) <= now { k += 1 }
        return k
    }
}
