import Foundation
import XCTest
@testable import Ledger
import LedgerModel

/// Every renewal selection is bounded, and progresses past the accounts that cannot renew.
final class RenewalLimitTests: XCTestCase {
    /// `renewAll` without `limit` takes at most `renewAllMaxAccounts`, says that more are due,
    /// and a larger `limit` is refused.
    func testRenewAllWithoutLimitIsBoundedByTheConfiguredMaximum() throws {
        let f = try Fixture(config: LedgerConfig(renewAllMaxAccounts: 3))
        for i in 0..<5 {
            try f.run(.open(userId: "u\(i)"))
            try f.run(.debit(userId: "u\(i)", operationType: "x", amount: 10, metadata: nil))
        }
        f.set("2026-02-16T10:00:00.000Z")
        let first = try json(f.run(.renewAll(dryRun: false, tier: nil, limit: nil, continueOnError: true)))
        XCTAssertEqual(first.int("totalProcessed"), 3)
        XCTAssertEqual((first["renewals"] as? [Any])?.count, 3)
        XCTAssertEqual(first.int("limit"), 3)
        XCTAssertEqual(first["more"] as? Bool, true)
        let second = try json(f.run(.renewAll(dryRun: false, tier: nil, limit: nil, continueOnError: true)))
        XCTAssertEqual(second.int("totalProcessed"), 2)
        XCTAssertEqual(second["more"] as? Bool, false)
        XCTAssertEqual(try code(f.run(.renewAll(dryRun: false, tier: nil, limit: 4, continueOnError: true))), "invalid_limit")
        XCTAssertThrowsError(try LedgerConfig(renewAllMaxAccounts: 0).validate())
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    /// The scheduler's chunks with a cursor: accounts on a removed tier are taken once each and
    /// the due Gift account behind them is renewed; the run is recorded only by the chunk that
    /// leaves no due account behind.
    func testChunksProgressPastAccountsThatFail() throws {
        var tiers = LedgerConfig.defaultTiers
        tiers["Legacy"] = TierConfig(allocation: 500)
        let f = try Fixture(config: LedgerConfig(tiers: tiers))
        for user in ["old1", "old2"] {
            try f.run(.open(userId: user))
            try f.run(.purchase(userId: user, tier: "Legacy", paymentId: "pay-\(user)", months: 12, metadata: nil))
        }
        f.set("2026-01-15T10:01:00.000Z")
        try f.run(.open(userId: "gia"))
        try f.run(.debit(userId: "gia", operationType: "x", amount: 30, metadata: nil))
        tiers["Legacy"] = nil
        f.ledger = try Ledger(path: f.path, config: LedgerConfig(tiers: tiers), clock: f.clock)
        f.set("2026-02-16T09:00:00.000Z")
        let slot = LedgerTime.parse("2026-02-16T02:00:00Z")!
        var totals = ScheduledRunCompletion(name: "renewal", slot: slot, totalProcessed: 0, successful: 0, failed: 0)
        var cursor: RenewalCursor?
        var chunks = 0
        while true {
            chunks += 1
            let s = try f.ledger.renewDue(limit: 2, after: cursor, completing: totals)
            totals.totalProcessed += s.totalProcessed
            totals.successful += s.successful
            totals.failed += s.failed
            guard case .more(let after) = s.remaining else {
                XCTAssertEqual(s.events.last?.name, "renewal.completed")
                XCTAssertEqual(s.events.last?.value("failed"), "2")
                break
            }
            XCTAssertNil(try f.ledger.lastCompletedRun(name: "renewal"), "not complete while accounts remain")
            cursor = after
            XCTAssertLessThan(chunks, 5)
        }
        XCTAssertEqual(chunks, 2)
        XCTAssertEqual(totals.totalProcessed, 3)
        XCTAssertEqual(totals.successful, 1)
        XCTAssertEqual(try f.balance("gia"), 100)
        XCTAssertEqual(try f.ledger.lastCompletedRun(name: "renewal"), slot)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }
}
