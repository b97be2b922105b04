import Foundation
import XCTest
@testable import Ledger
import LedgerModel

final class RenewalTests: XCTestCase {
    func testMonthEndAnchorRenewsOnClampedDaysAndReturnsToThe31st() throws {
        let f = try Fixture(start: "2024-01-31T02:00:00.000Z")
        try f.run(.open(userId: "u"))
        try f.run(.charge(userId: "u", operation: "image_generation", metadata: nil))
        f.set("2024-02-29T01:59:59.999Z")
        let early = try f.query(.eligibility(userId: "u"))
        XCTAssertEqual(early["eligible"] as? Bool, false)
        XCTAssertEqual(early["reason"] as? String, "not_yet_due")
        XCTAssertEqual(early["nextRenewalDate"] as? String, "2024-02-29T02:00:00.000Z")
        XCTAssertEqual(early.int("daysUntilRenewal"), 1)
        let refused = try f.run(.renew(userId: "u"))
        XCTAssertEqual(try code(refused), "not_eligible")
        XCTAssertEqual(try json(refused)["nextRenewalDate"] as? String, "2024-02-29T02:00:00.000Z")
        XCTAssertEqual(try json(refused)["eligible"] as? Bool, false)

        f.set("2024-02-29T02:00:00.000Z")
        XCTAssertEqual(try f.query(.eligibility(userId: "u"))["eligible"] as? Bool, true)
        let r = try json(f.run(.renew(userId: "u")))
        XCTAssertEqual(r.int("tokensAdded"), 10)
        XCTAssertEqual(r.int("newBalance"), 100)
        XCTAssertEqual(r["lastRenewalAt"] as? String, "2024-02-29T02:00:00.000Z")
        XCTAssertEqual(r["nextRenewalDate"] as? String, "2024-03-31T02:00:00.000Z")
        XCTAssertEqual(try code(f.run(.renew(userId: "u"))), "not_eligible")
        f.set("2024-03-31T02:00:00.000Z")
        XCTAssertEqual(try json(f.run(.renew(userId: "u")))["nextRenewalDate"] as? String, "2024-04-30T02:00:00.000Z")
    }

    func testLeapDayAnchor() throws {
        let f = try Fixture(start: "2024-02-29T12:00:00.000Z")
        try f.run(.open(userId: "u"))
        f.set("2025-02-28T12:00:00.000Z")
        let r = try json(f.run(.renew(userId: "u")))
        XCTAssertEqual(r["lastRenewalAt"] as? String, "2025-02-28T12:00:00.000Z")
        XCTAssertEqual(r["nextRenewalDate"] as? String, "2025-03-29T12:00:00.000Z")
    }

    func testMissedPeriodsGiveOneRenewalAtTheCurrentPeriodStart() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        try f.run(.debit(userId: "u", operationType: "x", amount: 60, metadata: nil))
        f.set("2026-05-20T08:00:00.000Z")
        let r = try json(f.run(.renew(userId: "u")))
        XCTAssertEqual(r.int("tokensAdded"), 60)
        XCTAssertEqual(r["lastRenewalAt"] as? String, "2026-05-15T10:00:00.000Z")
        XCTAssertEqual(r["nextRenewalDate"] as? String, "2026-06-15T10:00:00.000Z")
        XCTAssertEqual(try f.query(.history(userId: "u", limit: 100, offset: 0, operationType: "renewal", startDate: nil, endDate: nil)).int("total"), 2)
    }

    func testTopUpAtOrAboveAllocationWritesNoEntryButRenews() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        try f.run(.credit(userId: "u", operationType: "bonus", amount: 500, metadata: nil))
        f.set("2026-02-15T10:00:00.000Z")
        let result = try f.run(.renew(userId: "u"))
        let r = try json(result)
        XCTAssertEqual(r.int("tokensAdded"), 0)
        XCTAssertTrue(r["ledgerEntryId"] is NSNull)
        XCTAssertEqual(r.int("newBalance"), 600)
        XCTAssertTrue(result.changes.isEmpty)
        XCTAssertEqual(try f.query(.eligibility(userId: "u"))["nextRenewalDate"] as? String, "2026-03-15T10:00:00.000Z")
    }

    func testAccumulateAddsTheAllocation() throws {
        var config = LedgerConfig()
        config.renewalPolicy = .accumulate
        let f = try Fixture(config: config)
        try f.run(.open(userId: "u"))
        f.set("2026-02-15T10:00:00.000Z")
        XCTAssertEqual(try json(f.run(.renew(userId: "u"))).int("newBalance"), 200)
    }

    func testExpiredSubscriptionIsDowngradedToGiftFirst() throws {
        let f = try Fixture()
        try f.run(.purchase(userId: "p", tier: "Professional", paymentId: "pay", months: 1, metadata: nil))
        try f.run(.debit(userId: "p", operationType: "x", amount: 1950, metadata: nil))
        try f.run(.purchase(userId: "q", tier: "Professional", paymentId: "pay-q", months: 2, metadata: nil))
        try f.run(.debit(userId: "q", operationType: "x", amount: 1000, metadata: nil))
        f.set("2026-02-15T10:00:00.000Z")
        let p = try f.run(.renew(userId: "p"))
        let pj = try json(p)
        XCTAssertEqual(pj["tier"] as? String, "Gift")
        XCTAssertEqual(pj["downgraded"] as? Bool, true)
        XCTAssertEqual(pj.int("newBalance"), 100)
        XCTAssertEqual(p.changes.first?.tier, "Gift")
        XCTAssertTrue(try f.query(.balance(userId: "p"))["subscriptionExpiresAt"] is NSNull)
        let q = try json(f.run(.renew(userId: "q")))
        XCTAssertEqual(q["tier"] as? String, "Professional")
        XCTAssertEqual(q.int("newBalance"), 2000)
    }

    func testDowngradeWithoutGrantStillPublishesTheTierChange() throws {
        let f = try Fixture()
        try f.run(.purchase(userId: "p", tier: "Business", paymentId: "pay", months: 1, metadata: nil))
        f.set("2026-02-15T10:00:00.000Z")
        let r = try f.run(.renew(userId: "p"), jobId: "rn")
        XCTAssertEqual(r.changes.map(\.operationType), [nil], "a change without an entry has a null operationType (CONTRACT, Invalidations)")
        XCTAssertEqual(r.changes.first?.tier, "Gift")
        let again = try f.run(.renew(userId: "p"), jobId: "rn")
        XCTAssertTrue(again.duplicate)
        XCTAssertEqual(again.json, r.json)
        XCTAssertEqual(again.changes.first?.tier, "Gift")
    }

    func testRenewAllDryRunChangesNothingThenRenewsOldestFirstOnce() throws {
        let f = try Fixture()
        // "late" has the lower id but a later due date (its purchase restarted its clock).
        f.set("2026-01-14T10:00:00.000Z")
        try f.run(.open(userId: "late"))
        f.set("2026-01-15T10:00:00.000Z")
        try f.run(.open(userId: "early"))
        f.set("2026-01-16T10:00:00.000Z")
        try f.run(.purchase(userId: "late", tier: "Gift", paymentId: "g", months: 1, metadata: nil))
        f.set("2026-01-20T10:00:00.000Z")
        try f.run(.open(userId: "fresh"))
        for u in ["late", "early", "fresh"] { try f.run(.debit(userId: u, operationType: "x", amount: 40, metadata: nil)) }
        XCTAssertEqual(try f.balance("late"), 160)
        try f.run(.debit(userId: "late", operationType: "x", amount: 100, metadata: nil))
        f.set("2026-02-17T00:00:00.000Z")
        let dry = try json(f.run(.renewAll(dryRun: true, tier: nil, limit: nil, continueOnError: true), jobId: nil))
        XCTAssertEqual(dry.int("totalProcessed"), 2)
        XCTAssertEqual(try f.balance("early"), 60)
        XCTAssertEqual(try f.query(.eligibility(userId: "early"))["eligible"] as? Bool, true)

        let one = try json(f.run(.renewAll(dryRun: false, tier: nil, limit: 1, continueOnError: true)))
        let renewals = try XCTUnwrap(one["renewals"] as? [[String: Any]])
        XCTAssertEqual(renewals.map { $0["userId"] as? String }, ["early"])
        XCTAssertEqual(renewals.first?.int("tokensAdded"), 40)
        let rest = try f.run(.renewAll(dryRun: false, tier: nil, limit: nil, continueOnError: true))
        XCTAssertEqual(try json(rest).int("totalProcessed"), 1)
        XCTAssertEqual(rest.changes.map(\.userId), ["late"])
        XCTAssertEqual(try json(f.run(.renewAll(dryRun: false, tier: nil, limit: nil, continueOnError: true))).int("totalProcessed"), 0)
        XCTAssertEqual(try f.balance("fresh"), 60)
        XCTAssertEqual(try code(f.run(.renewAll(dryRun: false, tier: nil, limit: 0, continueOnError: true))), "invalid_limit")
        XCTAssertEqual(try code(f.run(.renewAll(dryRun: false, tier: "Platinum", limit: nil, continueOnError: true))), "unknown_tier")
    }

    func testRenewAllTierFilterAndFailures() throws {
        var config = LedgerConfig()
        config.renewalPolicy = .accumulate
        let f = try Fixture(config: config)
        try f.run(.open(userId: "gift"))
        try f.run(.purchase(userId: "pro", tier: "Professional", paymentId: "p", months: 6, metadata: nil))
        try f.run(.open(userId: "rich"))
        try f.run(.credit(userId: "rich", operationType: "bonus", amount: Int64.max - 100, metadata: nil))
        f.set("2026-02-15T10:00:00.000Z")
        let pro = try json(f.run(.renewAll(dryRun: false, tier: "Professional", limit: nil, continueOnError: true)))
        XCTAssertEqual(pro.int("successful"), 1)
        XCTAssertEqual(try f.balance("pro"), 4000)
        let all = try json(f.run(.renewAll(dryRun: false, tier: nil, limit: nil, continueOnError: true)))
        XCTAssertEqual(all.int("totalProcessed"), 2)
        XCTAssertEqual(all.int("failed"), 1)
        let errors = try XCTUnwrap(all["errors"] as? [[String: Any]])
        XCTAssertEqual(errors.first?["userId"] as? String, "rich")
        XCTAssertEqual(errors.first?["code"] as? String, "invalid_amount")
        XCTAssertEqual(try f.balance("gift"), 200)
    }

    func testRenewDueInBatchesRenewsEachAccountOncePerPeriod() throws {
        let f = try Fixture()
        try f.ledger.apply((0..<25).map { Command(jobId: "o\($0)", operation: .open(userId: "user\($0)")) })
        try f.ledger.apply((0..<25).map { Command(jobId: "d\($0)", operation: .debit(userId: "user\($0)", operationType: "x", amount: 50, metadata: nil)) })
        f.set("2026-02-15T10:00:00.000Z")
        var processed: [Int] = []
        var changes = 0
        while true {
            let s = try f.ledger.renewDue(limit: 10)
            processed.append(s.totalProcessed)
            changes += s.changes.count
            if s.totalProcessed == 0 { break }
        }
        XCTAssertEqual(processed, [10, 10, 5, 0])
        XCTAssertEqual(changes, 25)
        f.set("2026-03-01T00:00:00.000Z")
        XCTAssertEqual(try f.ledger.renewDue(limit: 10).totalProcessed, 0)
        XCTAssertEqual(try f.balance("user7"), 100)
        XCTAssertEqual(try f.query(.history(userId: "user7", limit: 10, offset: 0, operationType: "renewal", startDate: nil, endDate: nil)).int("total"), 2)
    }

    func testSchedulerState() throws {
        let f = try Fixture()
        XCTAssertNil(try f.ledger.lastCompletedRun(name: "renewal"))
        let slot = LedgerTime.parse("2026-01-15T02:00:00.000Z")!
        try f.ledger.recordCompletedRun(name: "renewal", slot: slot)
        XCTAssertEqual(try f.ledger.lastCompletedRun(name: "renewal"), slot)
        try f.ledger.recordCompletedRun(name: "renewal", slot: slot.addingTimeInterval(-86400))
        XCTAssertEqual(try f.ledger.lastCompletedRun(name: "renewal"), slot)
        try f.ledger.recordCompletedRun(name: "renewal", slot: slot.addingTimeInterval(86400))
        XCTAssertEqual(try f.ledger.lastCompletedRun(name: "renewal"), slot.addingTimeInterval(86400))
        XCTAssertNil(try f.ledger.lastCompletedRun(name: "other"))
    }
}
