import Foundation
import JobWire
import LedgerModel
import XCTest

/// The shapes of `setTier` and `balanceAt`.
final class BillingJobDecodingTests: XCTestCase, DecodingCase {
    func testSetTierShapes() throws {
        let june = try XCTUnwrap(LedgerTime.parse("2026-06-01T00:00:00.000Z"))
        XCTAssertEqual(op(#"{"type":"setTier","id":"t","userId":"u","tier":"Professional"}"#),
                       .setTier(userId: "u", tier: "Professional", subscriptionExpiry: .unchanged))
        XCTAssertEqual(op(#"{"type":"setTier","id":"t","userId":"u","tier":"Business","subscriptionExpiresAt":null}"#),
                       .setTier(userId: "u", tier: "Business", subscriptionExpiry: .cleared))
        XCTAssertEqual(op(#"{"type":"setTier","id":"t","userId":"u","tier":"Business","subscriptionExpiresAt":"2026-06-01T00:00:00.000Z"}"#),
                       .setTier(userId: "u", tier: "Business", subscriptionExpiry: .at(june)))
        // A change: the id is the idempotency key, and the result is stored under it.
        XCTAssertTrue(invalid(#"{"type":"setTier","userId":"u","tier":"Gift"}"#).contains("'id'"))
        XCTAssertEqual(try decode(#"{"type":"setTier","id":"t","userId":"u","tier":"Gift"}"#).get().command.jobId, "t")
        XCTAssertTrue(invalid(#"{"type":"setTier","id":"t","userId":"u"}"#).contains("'tier'"))
        XCTAssertTrue(invalid(#"{"type":"setTier","id":"t","userId":"u","tier":"Gift","subscriptionExpiresAt":"soon"}"#)
            .contains("subscriptionExpiresAt"))
        XCTAssertTrue(invalid(#"{"type":"setTier","id":"t","userId":"u","tier":"Gift","subscriptionExpiresAt":5}"#)
            .contains("subscriptionExpiresAt"))
        // A name that cannot be a tier is a stored refusal, like purchase's.
        if case .refusal(let r)? = op(#"{"type":"setTier","id":"t","userId":"u","tier":""}"#) {
            XCTAssertEqual(r.code.rawValue, "unknown_tier")
        } else { XCTFail("an empty tier is unknown_tier") }
    }

    func testBalanceAtShapes() throws {
        let at = try XCTUnwrap(LedgerTime.parse("2026-01-03T00:00:00.000Z"))
        XCTAssertEqual(op(#"{"type":"balanceAt","userId":"u","at":"2026-01-03T00:00:00.000Z"}"#),
                       .balanceAt(userId: "u", at: at))
        // A query: no id needed, and none stored.
        XCTAssertNil(try decode(#"{"type":"balanceAt","id":"q","userId":"u","at":"2026-01-03T00:00:00.000Z"}"#).get().command.jobId)
        XCTAssertTrue(invalid(#"{"type":"balanceAt","userId":"u"}"#).contains("'at'"))
        XCTAssertTrue(invalid(#"{"type":"balanceAt","userId":"u","at":"yesterday"}"#).contains("'at'"))
        XCTAssertTrue(invalid(#"{"type":"balanceAt","at":"2026-01-03T00:00:00.000Z"}"#).contains("userId"))
    }
}

/// Every reply to a job with an id says whether it was a replay.
final class ReplyDuplicateFieldTests: XCTestCase {
    func testFailureRepliesAndQueriesWithAnIdCarryDuplicateFalse() throws {
        let failure = Replies.failure(id: "j1", type: "debit", error: JobError("Field 'amount' must be an integer."))
        XCTAssertTrue(failure.hasSuffix(#","duplicate":false}"#), failure)
        XCTAssertFalse(Replies.failure(id: nil, type: nil, error: JobError("x")).contains("duplicate"))
        let query = try Job.decode(Array(#"{"type":"balance","id":"q1","userId":"u"}"#.utf8)).get()
        let answer = Replies.result(for: query, .legacy(LegacyResult(json: #"{"success":true}"#, refusalCode: nil)), duplicate: false)
        XCTAssertEqual(answer, #"{"id":"q1","type":"balance","success":true,"duplicate":false}"#)
        let anonymous = try Job.decode(Array(#"{"type":"balance","userId":"u"}"#.utf8)).get()
        XCTAssertFalse(Replies.result(for: anonymous, .legacy(LegacyResult(json: #"{"success":true}"#, refusalCode: nil)), duplicate: false).contains("duplicate"))
    }
}
