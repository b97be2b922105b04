import Foundation
import XCTest
@testable import Ledger
import LedgerModel

final class MutationTests: XCTestCase {
    func testOpenCreditsGiftAllocationAndRefusesASecondOpen() throws {
        let f = try Fixture()
        let r = try f.run(.open(userId: "alice"))
        XCTAssertTrue(r.success)
        XCTAssertTrue(r.json.hasPrefix(#"{"success":true,"#))
        let j = try json(r)
        XCTAssertEqual(j["tier"] as? String, "Gift")
        XCTAssertEqual(j.int("newBalance"), 100)
        XCTAssertEqual(j.int("ledgerEntryId"), 1)
        XCTAssertEqual(j.int("tokensAmount"), 100)
        XCTAssertEqual(j["nextRenewalDate"] as? String, "2026-02-15T10:00:00.000Z")
        XCTAssertEqual(r.changes, [BalanceChange(userId: "alice", tokensBalance: 100, tokensSpent: 0, tier: "Gift", ledgerEntryId: 1,
                                                 operationType: "renewal", tokensAmount: 100, at: f.clock.now())])
        let again = try f.run(.open(userId: "alice"))
        XCTAssertFalse(again.success)
        XCTAssertEqual(try code(again), "account_exists")
        XCTAssertEqual(again.errorCode, "account_exists")
        XCTAssertTrue(again.changes.isEmpty)
    }

    func testChargeDebitsTheConfiguredCost() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        let r = try f.run(.charge(userId: "u", operation: "image_generation", metadata: #"{"prompt":"a \"cat\""}"#))
        XCTAssertEqual(r.json, #"{"success":true,"newBalance":90,"ledgerEntryId":2,"tokensAmount":-10}"#)
        XCTAssertEqual(r.changes.first?.tokensSpent, 10)
        XCTAssertEqual(r.changes.first?.operationType, "image_generation")
        let j = try f.query(.balance(userId: "u"))
        XCTAssertEqual(j.int("tokensBalance"), 90)
        XCTAssertEqual(j.int("tokensSpent"), 10)
    }

    func testChargeRefusals() throws {
        let f = try Fixture()
        XCTAssertEqual(try code(f.run(.charge(userId: "nobody", operation: "chatgpt_message", metadata: nil))), "user_not_found")
        try f.run(.open(userId: "u"))
        XCTAssertEqual(try code(f.run(.charge(userId: "u", operation: "teleport", metadata: nil))), "unknown_operation")
        try f.run(.debit(userId: "u", operationType: "x", amount: 97, metadata: nil))
        let r = try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil))
        XCTAssertEqual(r.json, #"{"success":false,"error":{"code":"insufficient_tokens","message":"The balance of 3 tokens does not cover the 5 tokens required."},"balance":3,"available":3,"required":5,"deficit":2}"#)
        XCTAssertEqual(try f.balance("u"), 3)
    }

    func testDebitAndCreditAmounts() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        for bad: Int64 in [0, -5] {
            XCTAssertEqual(try code(f.run(.debit(userId: "u", operationType: "x", amount: bad, metadata: nil))), "invalid_amount")
            XCTAssertEqual(try code(f.run(.credit(userId: "u", operationType: "bonus", amount: bad, metadata: nil))), "invalid_amount")
        }
        let c = try json(f.run(.credit(userId: "u", operationType: "bonus", amount: 50, metadata: nil)))
        XCTAssertEqual(c.int("newBalance"), 150)
        XCTAssertEqual(c.int("tokensAmount"), 50)
        XCTAssertEqual(try code(f.run(.credit(userId: "u", operationType: "bonus", amount: Int64.max, metadata: nil))), "invalid_amount")
        XCTAssertEqual(try code(f.run(.debit(userId: "u", operationType: "x", amount: 151, metadata: nil))), "insufficient_tokens")
        XCTAssertEqual(try code(f.run(.credit(userId: "ghost", operationType: "bonus", amount: 1, metadata: nil))), "user_not_found")
        XCTAssertEqual(try f.balance("u"), 150)
    }

    func testSpentOverflowIsInvalidAmount() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        let big = Int64.max - 100
        try f.run(.credit(userId: "u", operationType: "bonus", amount: big, metadata: nil))
        XCTAssertTrue(try f.run(.debit(userId: "u", operationType: "x", amount: big, metadata: nil)).success)
        try f.run(.credit(userId: "u", operationType: "bonus", amount: big, metadata: nil))
        XCTAssertEqual(try code(f.run(.debit(userId: "u", operationType: "x", amount: big, metadata: nil))), "invalid_amount")
    }

    func testRefundOfAChargeNeverExceedsIt() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        try f.run(.debit(userId: "u", operationType: "x", amount: 30, metadata: nil), jobId: "d1")
        let part = try json(f.run(.refund(userId: "u", refundOf: "d1", amount: 10, metadata: nil)))
        XCTAssertEqual(part.int("newBalance"), 80)
        XCTAssertEqual(part.int("tokensAmount"), 10)
        let tooMuch = try f.run(.refund(userId: "u", refundOf: "d1", amount: 21, metadata: nil))
        XCTAssertEqual(try code(tooMuch), "refund_exceeds_charge")
        XCTAssertEqual(try json(tooMuch).int("refundable"), 20)
        let rest = try json(f.run(.refund(userId: "u", refundOf: "d1", amount: nil, metadata: nil)))
        XCTAssertEqual(rest.int("tokensAmount"), 20)
        XCTAssertEqual(try code(f.run(.refund(userId: "u", refundOf: "d1", amount: nil, metadata: nil))), "refund_exceeds_charge")
        XCTAssertEqual(try code(f.run(.refund(userId: "u", refundOf: "d1", amount: 1, metadata: nil))), "refund_exceeds_charge")
        let b = try f.query(.balance(userId: "u"))
        XCTAssertEqual(b.int("tokensBalance"), 100)
        XCTAssertEqual(b.int("tokensSpent"), 0)
    }

    func testRefundRefusals() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        try f.run(.open(userId: "v"))
        try f.run(.charge(userId: "v", operation: "image_generation", metadata: nil), jobId: "vc")
        try f.run(.credit(userId: "u", operationType: "bonus", amount: 5, metadata: nil), jobId: "uc")
        try f.run(.charge(userId: "u", operation: "teleport", metadata: nil), jobId: "refused")
        XCTAssertEqual(try code(f.run(.refund(userId: "u", refundOf: "vc", amount: nil, metadata: nil))), "charge_not_found")
        XCTAssertEqual(try code(f.run(.refund(userId: "u", refundOf: "nope", amount: nil, metadata: nil))), "charge_not_found")
        XCTAssertEqual(try code(f.run(.refund(userId: "u", refundOf: "uc", amount: nil, metadata: nil))), "charge_not_found")
        XCTAssertEqual(try code(f.run(.refund(userId: "u", refundOf: "refused", amount: nil, metadata: nil))), "charge_not_found")
        XCTAssertEqual(try code(f.run(.refund(userId: "u", refundOf: nil, amount: nil, metadata: nil))), "invalid_amount")
        XCTAssertEqual(try code(f.run(.refund(userId: "u", refundOf: nil, amount: 0, metadata: nil))), "invalid_amount")
        XCTAssertEqual(try code(f.run(.refund(userId: "ghost", refundOf: nil, amount: 1, metadata: nil))), "user_not_found")
        // Without refundOf: a plain credit back; tokensSpent never goes below zero.
        let r = try json(f.run(.refund(userId: "u", refundOf: nil, amount: 7, metadata: nil)))
        XCTAssertEqual(r.int("newBalance"), 112)
        XCTAssertEqual(try f.query(.balance(userId: "u")).int("tokensSpent"), 0)
    }

    func testPurchaseCreatesExtendsAndIsAppliedOncePerPayment() throws {
        let f = try Fixture()
        let p = try f.run(.purchase(userId: "new", tier: "Professional", paymentId: "pay-1", months: 1, metadata: nil), jobId: "p1")
        let j = try json(p)
        XCTAssertEqual(j["tier"] as? String, "Professional")
        XCTAssertEqual(j.int("newBalance"), 2000)
        XCTAssertEqual(j["subscriptionExpiresAt"] as? String, "2026-02-15T10:00:00.000Z")
        XCTAssertEqual(p.changes.first?.operationType, "purchase")
        // Same job again, and the same payment under a new job id: the first result, duplicate.
        let replay = try f.run(.purchase(userId: "new", tier: "Professional", paymentId: "pay-1", months: 1, metadata: nil), jobId: "p1")
        XCTAssertTrue(replay.duplicate)
        XCTAssertEqual(replay.json, p.json)
        let retried = try f.run(.purchase(userId: "new", tier: "Professional", paymentId: "pay-1", months: 3, metadata: nil), jobId: "p1-retry")
        XCTAssertTrue(retried.duplicate)
        XCTAssertEqual(retried.json, p.json)
        XCTAssertEqual(retried.changes.first?.tokensBalance, 2000)
        XCTAssertEqual(try f.balance("new"), 2000)
        // The same payment for another user or tier is refused.
        XCTAssertEqual(try code(f.run(.purchase(userId: "other", tier: "Professional", paymentId: "pay-1", months: 1, metadata: nil))), "duplicate_payment")
        XCTAssertEqual(try code(f.run(.purchase(userId: "new", tier: "Business", paymentId: "pay-1", months: 1, metadata: nil))), "duplicate_payment")
        // A second payment 10 days later extends from the current expiry, by calendar months.
        f.clock.advance(by: 10 * 86400)
        let second = try json(f.run(.purchase(userId: "new", tier: "Business", paymentId: "pay-2", months: 2, metadata: nil)))
        XCTAssertEqual(second["subscriptionExpiresAt"] as? String, "2026-04-15T10:00:00.000Z")
        XCTAssertEqual(second.int("newBalance"), 12000)
        XCTAssertEqual(second["nextRenewalDate"] as? String, "2026-02-25T10:00:00.000Z")
        XCTAssertEqual(try code(f.run(.purchase(userId: "new", tier: "Platinum", paymentId: "pay-3", months: 1, metadata: nil))), "unknown_tier")
        XCTAssertEqual(try code(f.run(.purchase(userId: "new", tier: "Business", paymentId: "pay-4", months: 0, metadata: nil))), "invalid_months")
    }

    func testReplayAnswersTheFirstResultEvenARefusal() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        let first = try f.run(.debit(userId: "u", operationType: "x", amount: 500, metadata: nil), jobId: "big")
        XCTAssertEqual(try code(first), "insufficient_tokens")
        try f.run(.credit(userId: "u", operationType: "bonus", amount: 1000, metadata: nil))
        let replay = try f.run(.debit(userId: "u", operationType: "x", amount: 500, metadata: nil), jobId: "big")
        XCTAssertTrue(replay.duplicate)
        XCTAssertEqual(replay.json, first.json)
        XCTAssertEqual(replay.errorCode, "insufficient_tokens")
        XCTAssertEqual(try f.balance("u"), 1100)
        // A replayed mutation repeats its change with the CURRENT balance.
        let charge = try f.run(.charge(userId: "u", operation: "image_generation", metadata: nil), jobId: "c")
        try f.run(.credit(userId: "u", operationType: "bonus", amount: 1, metadata: nil))
        let again = try f.run(.charge(userId: "u", operation: "image_generation", metadata: nil), jobId: "c")
        XCTAssertEqual(again.json, charge.json)
        XCTAssertTrue(again.duplicate)
        XCTAssertEqual(again.changes.first?.tokensBalance, 1091)
        XCTAssertEqual(again.changes.first?.ledgerEntryId, charge.changes.first?.ledgerEntryId)
    }

    func testBatchKeepsOrderIsolatesRefusalsAndSeesItsOwnWrites() throws {
        let f = try Fixture()
        let results = try f.ledger.apply([
            Command(jobId: "o", operation: .open(userId: "u")),
            Command(jobId: "c1", operation: .charge(userId: "u", operation: "image_generation", metadata: nil)),
            Command(jobId: "bad", operation: .debit(userId: "u", operationType: "x", amount: 1000, metadata: nil)),
            Command(jobId: "bad2", operation: .charge(userId: "u", operation: "teleport", metadata: nil)),
            Command(jobId: nil, operation: .balance(userId: "u")),
            Command(jobId: "c2", operation: .charge(userId: "u", operation: "chatgpt_message", metadata: nil)),
            Command(jobId: "c1", operation: .charge(userId: "u", operation: "image_generation", metadata: nil)),
            Command(jobId: "ref", operation: .refund(userId: "u", refundOf: "c2", amount: nil, metadata: nil)),
        ])
        XCTAssertEqual(results.map(\.success), [true, true, false, false, true, true, true, true])
        XCTAssertEqual(results.map(\.duplicate), [false, false, false, false, false, false, true, false])
        XCTAssertEqual(try json(results[4]).int("tokensBalance"), 90)
        XCTAssertEqual(results[6].json, results[1].json)
        XCTAssertEqual(try json(results[7]).int("newBalance"), 90)
        XCTAssertEqual(try f.balance("u"), 90)
        // The refusals were stored too.
        let replay = try f.ledger.apply([Command(jobId: "bad", operation: .debit(userId: "u", operationType: "x", amount: 1, metadata: nil))])
        XCTAssertEqual(replay[0].json, results[2].json)
    }

    func testWorkerDecidedRefusalIsStored() throws {
        let f = try Fixture()
        let e = Refusal(code: .invalidAmount, message: "The amount does not fit 64 bits.")
        let r = try f.run(.refusal(e), jobId: "huge")
        XCTAssertEqual(try code(r), "invalid_amount")
        let again = try f.run(.refusal(e), jobId: "huge")
        XCTAssertTrue(again.duplicate)
    }

    func testEntriesAreAppendOnly() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        try f.ledger.writer.write { db in
            XCTAssertThrowsError(try db.execute(sql: "UPDATE entries SET amount = 1000"))
            XCTAssertThrowsError(try db.execute(sql: "DELETE FROM entries"))
        }
    }

    func testFileIsPrivate() throws {
        let f = try Fixture()
        let mode = try FileManager.default.attributesOfItem(atPath: f.path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
    }
}
