import Foundation
import XCTest
@testable import Ledger
import JobWire
import LedgerModel

final class BasicsTests: XCTestCase {
    func testJSONWriterEscapesEverything() throws {
        var w = JSONWriter()
        w.beginObject()
        let nasty = "q\"b\\n\n r\r t\t \u{0} \u{1f} \u{7f} é 😀 \u{2028}"
        w.key("s"); w.string(nasty)
        w.key("n"); w.int(Int64.min)
        w.key("m"); w.int(Int64.max)
        w.key("z"); w.int(0)
        w.key("a"); w.beginArray(); w.int(1); w.bool(false); w.null(); w.beginObject(); w.endObject(); w.endArray()
        w.key(dynamic: "k\"ey"); w.raw(#"{"x":[1,2]}"#)
        w.key("t"); w.time(ms: 0)
        w.endObject()
        let j = try json(w.text)
        XCTAssertEqual(j["s"] as? String, nasty)
        XCTAssertEqual(j.int("n"), Int64.min)
        XCTAssertEqual(j.int("m"), Int64.max)
        XCTAssertEqual(j.int("z"), 0)
        XCTAssertEqual((j["a"] as? [Any])?.count, 4)
        XCTAssertNotNil(j["k\"ey"] as? [String: Any])
        XCTAssertEqual(j["t"] as? String, "1970-01-01T00:00:00.000Z")
        XCTAssertTrue(w.text.contains(#"\u0000"#) && w.text.contains(#"\u001f"#))
    }

    func testTimeFormatAndParse() {
        XCTAssertEqual(LedgerTime.format(ms: 1_795_485_600_123), "2026-11-24T02:00:00.123Z")
        XCTAssertEqual(LedgerTime.format(ms: -1), "1969-12-31T23:59:59.999Z")
        XCTAssertEqual(LedgerTime.parseMilliseconds("2026-11-24T02:00:00.123Z"), 1_795_485_600_123)
        XCTAssertEqual(LedgerTime.parseMilliseconds("2026-11-24T03:00:00+01:00"), 1_795_485_600_000)
        XCTAssertEqual(LedgerTime.parseMilliseconds("2026-11-24"), 1_795_478_400_000)
        XCTAssertNil(LedgerTime.parseMilliseconds("2026-02-30T00:00:00Z"))
        XCTAssertNil(LedgerTime.parseMilliseconds("2026-11-24T02:00:00"))
        XCTAssertNil(LedgerTime.parseMilliseconds("yesterday"))
        // Agrees with Foundation over a wide range.
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for ms in stride(from: Int64(-2_000_000_000_000), to: 4_000_000_000_000, by: 7_777_777_777) {
            XCTAssertEqual(LedgerTime.format(ms: ms), iso.string(from: LedgerTime.date(ms)))
            XCTAssertEqual(LedgerTime.parseMilliseconds(LedgerTime.format(ms: ms)), ms)
        }
    }

    func testCalendarMonthsClampToMonthEndFromTheAnchor() {
        let jan31 = LedgerTime.parseMilliseconds("2024-01-31T02:00:00.000Z")!
        let months = (0...4).map { LedgerTime.format(ms: CalendarMonth.adding(months: $0, to: jan31)) }
        XCTAssertEqual(months, ["2024-01-31T02:00:00.000Z", "2024-02-29T02:00:00.000Z", "2024-03-31T02:00:00.000Z",
                                "2024-04-30T02:00:00.000Z", "2024-05-31T02:00:00.000Z"])
        XCTAssertEqual(LedgerTime.format(ms: CalendarMonth.adding(months: 13, to: jan31)), "2025-02-28T02:00:00.000Z")
        XCTAssertEqual(LedgerTime.format(ms: CalendarMonth.adding(months: -1, to: jan31)), "2023-12-31T02:00:00.000Z")
        let at = { LedgerTime.parseMilliseconds($0)! }
        XCTAssertEqual(CalendarMonth.periods(from: jan31, to: at("2024-02-29T01:59:59.999Z")), 0)
        XCTAssertEqual(CalendarMonth.periods(from: jan31, to: at("2024-02-29T02:00:00.000Z")), 1)
        XCTAssertEqual(CalendarMonth.periods(from: jan31, to: at("2024-03-30T23:00:00.000Z")), 1)
        XCTAssertEqual(CalendarMonth.periods(from: jan31, to: at("2025-01-31T02:00:00.000Z")), 12)
        XCTAssertEqual(CalendarMonth.periods(from: jan31, to: at("2020-01-01T00:00:00.000Z")), 0)
    }

    func testConfigDefaultsDecodingAndValidation() throws {
        let c = LedgerConfig()
        XCTAssertEqual(c.costs, ["image_generation": 10, "chatgpt_message": 5])
        XCTAssertEqual(c.tiers["Gift"]?.allocation, 100)
        XCTAssertEqual(c.tiers["Professional"]?.allocation, 2000)
        XCTAssertEqual(c.tiers["Business"]?.allocation, 10000)
        XCTAssertEqual(c.renewalPolicy, .topUp)
        XCTAssertEqual(c.synchronous, .full)
        XCTAssertEqual(c.busyTimeoutMilliseconds, 5000)
        XCTAssertEqual(try JSONDecoder().decode(LedgerConfig.self, from: Data("{}".utf8)), c)
        let partial = try JSONDecoder().decode(LedgerConfig.self, from: Data(#"{"renewalPolicy":"accumulate","synchronous":"normal"}"#.utf8))
        XCTAssertEqual(partial.renewalPolicy, .accumulate)
        XCTAssertEqual(partial.synchronous, .normal)
        XCTAssertEqual(partial.costs, c.costs)
        let roundTrip = try JSONDecoder().decode(LedgerConfig.self, from: JSONEncoder().encode(partial))
        XCTAssertEqual(roundTrip, partial)

        func message(_ config: LedgerConfig) -> String? {
            do { try config.validate(); return nil } catch { return (error as? LedgerConfigError)?.message }
        }
        XCTAssertNil(message(c))
        var bad = c
        bad.tiers["Gift"] = TierConfig(allocation: -1)
        XCTAssertEqual(message(bad), "tiers.Gift.allocation must be >= 0")
        bad = c
        bad.tiers["Gift"] = nil
        XCTAssertTrue(message(bad)?.hasPrefix("tiers.Gift must exist") == true)
        bad = c
        bad.costs["image_generation"] = -3
        XCTAssertEqual(message(bad), "costs.image_generation must be >= 0")
        bad = c
        bad.busyTimeoutMilliseconds = -1
        XCTAssertEqual(message(bad), "busyTimeoutMilliseconds must be >= 0")
        XCTAssertThrowsError(try Ledger(path: "/nonexistent/x.sqlite", config: bad)) { XCTAssertTrue($0 is LedgerConfigError) }
    }
}
