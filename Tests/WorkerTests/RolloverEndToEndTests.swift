import Foundation
import Ledger
import LedgerModel
import Redis
import TestSupport
import XCTest

/// The `rollover` policy through a real worker, with the clock under the test's control: the
/// scheduler's run carries each period's rest across month ends, and says so in its event.
final class RolloverEndToEndTests: XCTestCase {
    func date(_ iso: String) -> Date { LedgerTime.parse(iso) ?? Date(timeIntervalSince1970: 0) }

    func testTheSchedulersRunCarriesAcrossMonthEndsAndCountsIt() async throws {
        let h = try WorkerHarness()
        var config = LedgerConfig(renewalPolicy: .rollover)
        config.rolloverMax = 60
        let clock = ManualClock(date("2026-01-31T12:00:00Z"))
        var worker = try h.startWorker(clock: clock, ledgerConfig: config)
        XCTAssertEqual(try h.call(["type": "open", "id": "o1", "userId": "rita"]).bool("success"), true)
        _ = try h.call(["type": "debit", "id": "d1", "userId": "rita", "operationType": "x", "amount": 20])
        try await worker.stop()

        // Down across the Feb 28 and Mar 1 slots; started after the second: one run catches up.
        clock.set(date("2026-03-01T03:00:00Z"))
        worker = try h.startWorker(clock: clock, ledgerConfig: config)
        // Runs are announced at least once: a consumer dedupes them by slot.
        func run(_ slot: String) throws -> StreamEntry? {
            try h.redis.xrange(h.keys.events).last { $0.value("event") == "renewal.completed" && $0.value("slot") == slot }
        }
        try h.eventually("the run completed") { try run("2026-03-01T02:00:00.000Z") != nil }
        let balance = try h.call(["type": "balance", "userId": "rita"])
        XCTAssertEqual(balance.int("tokensBalance"), 80 - 20 + 100, "60 of 80 carried, 20 lapsed, a new 100")
        XCTAssertEqual(balance.string("lastRenewalAt"), "2026-02-28T12:00:00.000Z", "Jan 31 -> Feb 28")
        let grants = (balance["grants"] as? [[String: Any]] ?? []).compactMap { $0["grantId"] as? String }
        XCTAssertTrue(grants.contains("rollover:rita:2026-02-28T12:00:00.000Z"), "\(grants)")
        let completed = try XCTUnwrap(try run("2026-03-01T02:00:00.000Z"))
        XCTAssertEqual(completed.value("tokensCarried"), "60")
        XCTAssertEqual(completed.value("tokensLapsed"), "20")
        let lapsed = try h.redis.xrange(h.keys.events).filter { $0.value("event") == "grant.expired" }
        XCTAssertEqual(lapsed.first?.value("tokensAmount"), "-20")

        // The next period ends on the 31st again: the day's run carries 60 of this period's 100 and
        // lapses 40, and the carried grant of February lapses on its own (grant.expired, not counted).
        clock.set(date("2026-03-31T12:00:00Z"))
        try h.eventually("the second run completed") { try run("2026-03-31T02:00:00.000Z") != nil }
        XCTAssertEqual(try run("2026-03-31T02:00:00.000Z")?.value("tokensCarried"), "60")
        XCTAssertEqual(try run("2026-03-31T02:00:00.000Z")?.value("tokensLapsed"), "40")
        let march = try h.call(["type": "balance", "userId": "rita"])
        XCTAssertEqual(march.string("lastRenewalAt"), "2026-03-31T12:00:00.000Z", "back to the anchor day")
        XCTAssertEqual(march.int("tokensBalance"), 160 - 40 - 60 + 100)
        let expired = try h.redis.xrange(h.keys.events).filter { $0.value("event") == "grant.expired" }
        XCTAssertTrue(expired.contains { $0.value("grantId") == "rollover:rita:2026-02-28T12:00:00.000Z" && $0.value("tokensAmount") == "-60" })
        try await worker.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }
}
