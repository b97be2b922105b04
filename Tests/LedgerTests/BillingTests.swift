import Foundation
import GRDB
import XCTest
@testable import Ledger
import LedgerModel

/// setTier and balanceAt against a real SQLite file.
final class BillingTests: XCTestCase {
    func testSetTierChangesTierAndExpiryWithoutCreditingOrMovingTheRenewalClock() throws {
        let f = try Fixture()
        let future = LedgerTime.parse("2026-06-01T00:00:00.000Z")!
        XCTAssertEqual(try code(f.run(.setTier(userId: "u", tier: "Professional", subscriptionExpiry: .unchanged))), "user_not_found")
        try f.run(.open(userId: "u"))
        let opened = try f.query(.balance(userId: "u"))
        XCTAssertEqual(try code(f.run(.setTier(userId: "u", tier: "Platinum", subscriptionExpiry: .unchanged))), "unknown_tier")
        XCTAssertEqual(try code(f.run(.setTier(userId: "u", tier: "Professional",
                                               subscriptionExpiry: .at(LedgerTime.parse("2026-01-15T09:00:00.000Z")!)))), "invalid_expiry")

        let set = try f.run(.setTier(userId: "u", tier: "Professional", subscriptionExpiry: .at(future)), jobId: "tier-1")
        let answer = try json(set)
        XCTAssertEqual(answer["tier"] as? String, "Professional")
        XCTAssertEqual(answer["previousTier"] as? String, "Gift")
        XCTAssertEqual(answer["subscriptionExpiresAt"] as? String, "2026-06-01T00:00:00.000Z")
        XCTAssertEqual(set.changes.count, 1, "one invalidation, a tier change")
        XCTAssertNil(set.changes[0].ledgerEntryId)
        XCTAssertEqual(set.changes[0].tier, "Professional")

        // Nothing credited, no entry, the renewal clock where it was.
        let after = try f.query(.balance(userId: "u"))
        XCTAssertEqual(after.int("tokensBalance"), 100)
        XCTAssertEqual(after["tier"] as? String, "Professional")
        XCTAssertEqual(after["lastRenewalAt"] as? String, opened["lastRenewalAt"] as? String)
        XCTAssertEqual(after["nextRenewalDate"] as? String, opened["nextRenewalDate"] as? String)
        let history = try f.query(.history(userId: "u", limit: 20, offset: 0, operationType: nil, startDate: nil, endDate: nil))
        XCTAssertEqual(history.int("total"), 1)

        // A replay answers the first result; the tier set later by another job stays.
        try f.run(.setTier(userId: "u", tier: "Business", subscriptionExpiry: .unchanged), jobId: "tier-2")
        let replay = try f.run(.setTier(userId: "u", tier: "Professional", subscriptionExpiry: .at(future)), jobId: "tier-1")
        XCTAssertTrue(replay.duplicate)
        XCTAssertEqual(replay.json, set.json)
        XCTAssertEqual(try f.query(.balance(userId: "u"))["tier"] as? String, "Business")
        XCTAssertEqual(try f.query(.balance(userId: "u"))["subscriptionExpiresAt"] as? String, "2026-06-01T00:00:00.000Z",
                       "a setTier without subscriptionExpiresAt keeps the expiry")

        // The next renewal, on the old date, grants the tier that was set.
        f.set("2026-02-15T10:00:00.000Z")
        let renewed = try f.ledger.renewDue(limit: 10)
        XCTAssertEqual(renewed.successful, 1)
        XCTAssertEqual(try f.balance("u"), 10_000)

        // null clears the expiry; the row is written, so a reopened ledger sees it.
        try f.run(.setTier(userId: "u", tier: "Professional", subscriptionExpiry: .cleared))
        f.ledger = try Ledger(path: f.path, clock: f.clock)
        let cleared = try f.query(.balance(userId: "u"))
        XCTAssertEqual(cleared["tier"] as? String, "Professional")
        XCTAssertTrue(cleared["subscriptionExpiresAt"] is NSNull)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testBalanceAtAnswersTheBalanceAsItStoodInTheTailAndAfterTheMerge() throws {
        let f = try Fixture(config: LedgerConfig(mergeThresholdRows: 1_000_000))
        XCTAssertEqual(try code(f.run(.balanceAt(userId: "u", at: Date()))), "user_not_found")
        try f.run(.open(userId: "u"))                                                  // 10:00 100
        f.set("2026-01-16T10:00:00.000Z")
        try f.run(.charge(userId: "u", operation: "image_generation", metadata: nil), jobId: "c1")  // 90, spent 10
        f.set("2026-01-17T10:00:00.000Z")
        try f.run(.refund(userId: "u", refundOf: "c1", amount: 4, metadata: nil))       // 94, spent 6
        f.set("2026-01-18T10:00:00.000Z")
        try f.run(.refund(userId: "u", refundOf: nil, amount: 50, metadata: nil))       // 144, spent 0 (never below)
        try f.run(.open(userId: "other"))

        struct Seen: Equatable { var exists: Bool; var balance: Int64?; var spent: Int64?; var entry: Int64?; var created: String? }
        func at(_ iso: String) throws -> Seen {
            let a = try f.query(.balanceAt(userId: "u", at: LedgerTime.parse(iso)!))
            return Seen(exists: a["exists"] as? Bool ?? false, balance: a.int("tokensBalance"), spent: a.int("tokensSpent"),
                        entry: a.int("ledgerEntryId"), created: a["createdAt"] as? String)
        }
        let expected: [(String, Seen)] = [
            ("2026-01-15T09:59:59.999Z", Seen(exists: false, balance: 0, spent: 0, entry: nil, created: nil)),
            ("2026-01-15T10:00:00.000Z", Seen(exists: true, balance: 100, spent: 0, entry: 1, created: "2026-01-15T10:00:00.000Z")),
            ("2026-01-16T09:00:00.000Z", Seen(exists: true, balance: 100, spent: 0, entry: 1, created: "2026-01-15T10:00:00.000Z")),
            ("2026-01-16T10:00:00.000Z", Seen(exists: true, balance: 90, spent: 10, entry: 2, created: "2026-01-16T10:00:00.000Z")),
            ("2026-01-17T12:00:00.000Z", Seen(exists: true, balance: 94, spent: 6, entry: 3, created: "2026-01-17T10:00:00.000Z")),
            ("2030-01-01T00:00:00.000Z", Seen(exists: true, balance: 144, spent: 0, entry: 4, created: "2026-01-18T10:00:00.000Z")),
        ]
        for (iso, seen) in expected { XCTAssertEqual(try at(iso), seen, "in the tail, at \(iso)") }
        XCTAssertEqual(try f.ledger.unmergedRows() > 0, true)

        f.ledger = try Ledger(path: f.path, config: LedgerConfig(mergeThresholdRows: 1, mergeSliceRows: 2), clock: f.clock)
        while try f.ledger.maintain() {}
        XCTAssertEqual(try f.ledger.unmergedRows(), 0)
        for (iso, seen) in expected { XCTAssertEqual(try at(iso), seen, "merged, at \(iso)") }

        // Entries written before `spent_after` existed are folded: the same answers.
        try f.ledger.writer.write { db in
            try db.execute(sql: "DROP TRIGGER entries_no_update")
            try db.execute(sql: "UPDATE entries SET spent_after = NULL")
        }
        f.ledger = try Ledger(path: f.path, clock: f.clock)
        for (iso, seen) in expected { XCTAssertEqual(try at(iso), seen, "folded, at \(iso)") }

        // verify reads spent_after against the entries.
        try f.ledger.writer.write { db in try db.execute(sql: "UPDATE entries SET spent_after = 7 WHERE id = 3") }
        let violations = try Ledger.verify(path: f.path).map(\.code)
        XCTAssertTrue(violations.contains(AuditViolation.Code.spentAfterMismatch), "\(violations)")
    }
}
