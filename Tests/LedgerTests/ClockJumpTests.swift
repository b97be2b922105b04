import Foundation
import XCTest
@testable import Ledger
import LedgerModel

/// A clock that jumps forward and is then corrected: entries written meanwhile keep their
/// (jumped) times, entry times never go back, but every decision follows the clock again.
final class ClockJumpTests: XCTestCase {
    func testAJumpBackDoesNotLapseWhatFallsDueBetweenTheTwoTimes() throws {
        let f = try Fixture()  // 2026-01-15T10:00:00Z
        try f.run(.open(userId: "u"))
        try f.run(.credit(userId: "u", operationType: "promo", amount: 50, metadata: nil, expiry: .afterSeconds(3600)), jobId: "g")
        try f.run(.hold(userId: "u", amount: 20, operation: nil, expiresIn: 1800, metadata: nil), jobId: "h")

        f.set("2026-01-15T12:00:00.000Z")  // the jump: past the hold's and the grant's expiry
        let jumped = try json(f.run(.open(userId: "other")))
        f.set("2026-01-15T10:05:00.000Z")  // corrected
        let charged = try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil))
        XCTAssertEqual(charged.changes.map(\.operationType), ["chatgpt_message"], "nothing lapsed on the way")
        XCTAssertTrue(charged.events.isEmpty, "\(charged.events)")
        XCTAssertEqual(try f.ledger.sweepDue(limit: 10).accounts, 0, "the sweep finds nothing due")
        let b = try f.query(.balance(userId: "u"))
        XCTAssertEqual(b.int("held"), 20, "the hold is still open")
        XCTAssertEqual((b["grants"] as? [[String: Any]])?.first?["grantId"] as? String, "g", "the grant is still live")
        XCTAssertEqual(try json(f.run(.capture(userId: "u", holdId: "h", amount: 10, operationType: nil, metadata: nil))).int("released"), 10)

        // Entry times stay monotonic: the entries after the correction carry the jumped time.
        let entries = try XCTUnwrap(f.query(.history(userId: "u", limit: 10, offset: 0, operationType: nil,
                                                     startDate: nil, endDate: nil))["entries"] as? [[String: Any]])
        let jumpedAt = try XCTUnwrap(jumped["ledgerEntryId"] as? NSNumber).int64Value
        for e in entries where (e["id"] as? NSNumber)?.int64Value ?? 0 > jumpedAt {
            XCTAssertEqual(e["createdAt"] as? String, "2026-01-15T12:00:00.000Z")
        }
        XCTAssertEqual(entries.count, 4)

        f.set("2026-01-15T11:00:00.000Z")  // the grant's own expiry, by the clock
        let lapsed = try f.ledger.sweepDue(limit: 10)
        XCTAssertEqual(lapsed.grantsLapsed, 1)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testRenewalEligibilityFollowsTheClockAfterAJumpBack() throws {
        let f = try Fixture()  // 2026-01-15T10:00:00Z
        try f.run(.open(userId: "u"))
        try f.run(.debit(userId: "u", operationType: "x", amount: 30, metadata: nil))
        f.set("2026-02-20T10:00:00.000Z")  // the jump: past u's next renewal (Feb 15)
        try f.run(.open(userId: "other"))
        f.set("2026-01-16T10:00:00.000Z")  // corrected
        let e = try f.query(.eligibility(userId: "u"))
        XCTAssertEqual(e["eligible"] as? Bool, false)
        XCTAssertEqual(e.int("daysUntilRenewal"), 30)
        XCTAssertEqual(try code(f.run(.renew(userId: "u"))), "not_eligible")
        XCTAssertEqual(try f.ledger.renewDue(limit: 10).totalProcessed, 0)
        XCTAssertEqual(try f.balance("u"), 70)

        f.set("2026-02-15T10:00:00.000Z")
        let r = try json(f.run(.renew(userId: "u")))
        XCTAssertEqual(r["lastRenewalAt"] as? String, "2026-02-15T10:00:00.000Z")
        XCTAssertEqual(try f.balance("u"), 100)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }
}
