import Foundation
import Worker
import XCTest

final class CronScheduleTests: XCTestCase {
    let utc = TimeZone(identifier: "UTC")!

    func date(_ text: String) -> Date {
        try! Date(text, strategy: .iso8601)
    }

    func testDailyAtTwo() throws {
        let cron = try CronSchedule("0 2 * * *")
        XCTAssertEqual(cron.next(after: date("2026-11-24T01:59:00Z")), date("2026-11-24T02:00:00Z"))
        XCTAssertEqual(cron.next(after: date("2026-11-24T02:00:00Z")), date("2026-11-25T02:00:00Z"), "strictly after")
        XCTAssertEqual(cron.next(after: date("2026-12-31T03:00:00Z")), date("2027-01-01T02:00:00Z"))
        XCTAssertEqual(cron.previous(atOrBefore: date("2026-11-24T02:00:00Z")), date("2026-11-24T02:00:00Z"))
        XCTAssertEqual(cron.previous(atOrBefore: date("2026-11-24T01:59:59Z")), date("2026-11-23T02:00:00Z"))
        XCTAssertEqual(cron.previous(atOrBefore: date("2026-03-01T00:00:00Z")), date("2026-02-28T02:00:00Z"))
    }

    func testListsRangesStepsAndNames() throws {
        let cron = try CronSchedule("*/15 9-17 * jan,jul mon-fri")
        // 2026-01-03 is a Saturday: the next weekday is Monday the 5th.
        XCTAssertEqual(cron.next(after: date("2026-01-02T17:50:00Z")), date("2026-01-05T09:00:00Z"))
        XCTAssertEqual(cron.next(after: date("2026-01-05T09:00:00Z")), date("2026-01-05T09:15:00Z"))
        XCTAssertEqual(cron.next(after: date("2026-01-30T17:45:00Z")), date("2026-07-01T09:00:00Z"))
    }

    func testDayOfMonthOrDayOfWeekWhenBothAreRestricted() throws {
        // Vixie cron: the 13th, or any Friday.
        let cron = try CronSchedule("0 0 13 * 5")
        XCTAssertEqual(cron.next(after: date("2026-11-01T00:00:00Z")), date("2026-11-06T00:00:00Z"))  // a Friday
        XCTAssertEqual(cron.next(after: date("2026-11-06T00:00:00Z")), date("2026-11-13T00:00:00Z"))
        XCTAssertEqual(try CronSchedule("0 0 * * 7").next(after: date("2026-11-27T00:00:00Z")), date("2026-11-29T00:00:00Z"), "7 is Sunday")
    }

    func testTimeZone() throws {
        let cron = try CronSchedule("0 2 * * *", timeZone: TimeZone(identifier: "Europe/Paris")!)
        XCTAssertEqual(cron.next(after: date("2026-11-24T00:00:00Z")), date("2026-11-24T01:00:00Z"), "02:00 in Paris is 01:00 UTC in winter")
        XCTAssertEqual(cron.next(after: date("2026-07-01T03:00:00Z")), date("2026-07-02T00:00:00Z"), "and 00:00 UTC in summer")
    }

    func testMacrosAndLeapDays() throws {
        XCTAssertEqual(try CronSchedule("@daily").next(after: date("2026-11-24T12:00:00Z")), date("2026-11-25T00:00:00Z"))
        XCTAssertEqual(try CronSchedule("0 0 29 2 *").next(after: date("2026-01-01T00:00:00Z")), date("2028-02-29T00:00:00Z"))
    }

    func testInvalidExpressionsNameTheField() {
        for (expression, word) in [("0 2 * *", "5"), ("61 2 * * *", "minute"), ("0 24 * * *", "hour"), ("0 0 0 * *", "day-of-month"),
                                   ("0 0 * 13 *", "month"), ("0 0 * * 8", "day-of-week"), ("*/0 * * * *", "step"), ("5-1 * * * *", "backwards")] {
            XCTAssertThrowsError(try CronSchedule(expression), expression) { error in
                XCTAssertTrue("\(error)".contains(word), "\(expression): \(error)")
            }
        }
    }

    func testTheDefaultScheduleEqualsItsParsedExpression() throws {
        XCTAssertEqual(CronSchedule.dailyAt2UTC, try CronSchedule("0 2 * * *"))
    }
}
