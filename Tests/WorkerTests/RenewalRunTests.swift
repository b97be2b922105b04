import Foundation
import Ledger
import LedgerModel
import Redis
import Worker
import XCTest

/// A renewal run's progress past accounts that cannot renew, and its `renewal.completed` kept
/// with the record of the run.
final class RenewalRunTests: XCTestCase {
    func date(_ text: String) -> Date { try! Date(text, strategy: .iso8601) }

    func completedEvents(_ h: WorkerHarness) throws -> [StreamEntry] {
        try h.redis.xrange(h.keys.events).filter { $0.value("event") == "renewal.completed" }
    }

    /// Two accounts on a tier removed from the config sort first; with chunks of 2 they used to
    /// fill the first chunk, which renewed nobody, and the run was recorded complete: the Gift
    /// account behind them was never renewed, run after run.
    func testAccountsThatCannotRenewDoNotHoldBackTheOnesBehind() async throws {
        let h = try WorkerHarness()
        let clock = ManualClock(date("2026-01-15T10:00:00Z"))
        var tiers = LedgerConfig.defaultTiers
        tiers["Legacy"] = TierConfig(allocation: 500)
        var worker = try h.startWorker(clock: clock, ledgerConfig: LedgerConfig(tiers: tiers))
        for user in ["old1", "old2"] {
            XCTAssertEqual(try h.call(["type": "open", "id": "o-\(user)", "userId": user]).bool("success"), true)
            // Paid a year ahead: due for its monthly renewal while the subscription lasts.
            XCTAssertEqual(try h.call(["type": "purchase", "id": "p-\(user)", "userId": user, "tier": "Legacy",
                                       "paymentId": "pay-\(user)", "months": 12]).bool("success"), true)
        }
        clock.advance(by: 60)  // due after the two
        _ = try h.call(["type": "open", "id": "o-gia", "userId": "gia"])
        _ = try h.call(["type": "debit", "id": "d-gia", "userId": "gia", "operationType": "x", "amount": 30])
        try await worker.stop()

        // Legacy is gone from the config; the Feb 16 02:00 run is caught up at start, 2 a chunk.
        clock.set(date("2026-02-16T09:00:00Z"))
        var configuration = try h.configuration()
        configuration.renewalChunkSize = 2
        worker = try h.startWorker(clock: clock, configuration: configuration)
        let feb16 = { try self.completedEvents(h).filter { $0.value("slot") == "2026-02-16T02:00:00.000Z" } }
        try h.eventually("the run completed") { try !feb16().isEmpty }
        XCTAssertEqual(try h.call(["type": "balance", "userId": "gia"]).int("tokensBalance"), 100, "renewed behind the failures")
        let event = try XCTUnwrap(feb16().first)
        XCTAssertEqual(event.value("slot"), "2026-02-16T02:00:00.000Z")
        XCTAssertEqual(event.value("totalProcessed"), "3")
        XCTAssertEqual(event.value("successful"), "1")
        XCTAssertEqual(event.value("failed"), "2", "the two that cannot renew are counted, once each")
        for user in ["old1", "old2"] {
            XCTAssertEqual(try h.call(["type": "eligibility", "userId": user]).bool("eligible"), true, "\(user) waits for the next run")
        }
        try await worker.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }

    /// A worker killed right after the commit of a run's last chunk, before its messages left:
    /// the ledger kept `renewal.completed` with the record of the run, so the next worker sends
    /// it (and does not run the slot again).
    func testRenewalCompletedSurvivesACrashAfterItsRunCommits() async throws {
        let h = try WorkerHarness()
        let clock = ManualClock(date("2026-01-15T10:00:00Z"))
        var worker = try h.startWorker(clock: clock)
        _ = try h.call(["type": "open", "id": "o1", "userId": "kim"])
        _ = try h.call(["type": "debit", "id": "d1", "userId": "kim", "operationType": "x", "amount": 40])
        try await worker.stop()

        // What the killed worker committed: the run's one chunk, as the scheduler makes it, and
        // nothing sent after it.
        clock.set(date("2026-02-16T09:00:00Z"))
        let slot = date("2026-02-16T02:00:00Z")
        do {
            let ledger = try Ledger(path: h.databasePath, clock: clock)
            let summary = try ledger.renewDue(limit: 10, completing: ScheduledRunCompletion(
                name: "renewal", slot: slot, totalProcessed: 0, successful: 0, failed: 0))
            XCTAssertEqual(summary.remaining, .allTaken)
            XCTAssertEqual(summary.events.map(\.name), ["renewal.completed"])
            XCTAssertEqual(try ledger.lastCompletedRun(name: "renewal"), slot, "recorded in the same transaction")
        }
        let feb16 = { try self.completedEvents(h).filter { $0.value("slot") == "2026-02-16T02:00:00.000Z" } }
        XCTAssertEqual(try feb16().count, 0, "nothing was sent")

        worker = try h.startWorker(clock: clock)
        try h.eventually("the kept event sent") { try !feb16().isEmpty }
        // Sent at least once; every copy is the same event, deduped by (event, slot).
        for copy in try feb16() {
            XCTAssertEqual(copy.value("totalProcessed"), "1")
            XCTAssertEqual(copy.value("successful"), "1")
            XCTAssertEqual(copy.value("failed"), "0")
        }
        XCTAssertEqual(try h.call(["type": "balance", "userId": "kim"]).int("tokensBalance"), 100)
        XCTAssertEqual(try h.call(["type": "history", "userId": "kim", "operationType": "renewal"]).int("total"), 2, "the slot is not run again")
        try await worker.stop()
    }
}
