import Foundation
import JobWire
import LedgerModel
import XCTest

/// The messages the wire target writes from typed values, byte for byte as the contract has them.
final class MessageEncodingTests: XCTestCase {
    let at = LedgerTime.parse("2026-01-15T10:00:00.123Z")!

    func testAnInvalidationNamesItsPartitionFirstOnASplitLedger() {
        let c = BalanceChange(userId: "u\"1", tokensBalance: 90, tokensSpent: 10, tier: "Gift", ledgerEntryId: 7,
                              operationType: "chatgpt_message", tokensAmount: -10, at: at, held: 5)
        let plain = #"{"userId":"u\"1","tokensBalance":90,"tokensSpent":10,"held":5,"available":85,"tier":"Gift","ledgerEntryId":7,"operationType":"chatgpt_message","tokensAmount":-10,"at":"2026-01-15T10:00:00.123Z"}"#
        XCTAssertEqual(Invalidations.message(c, partition: nil), plain)
        XCTAssertEqual(Invalidations.message(c, partition: 2), #"{"partition":2,"# + plain.dropFirst())
        let tierOnly = BalanceChange(userId: "u", tokensBalance: 0, tokensSpent: 0, tier: "Pro", ledgerEntryId: nil,
                                     operationType: nil, tokensAmount: nil, at: at)
        XCTAssertTrue(Invalidations.message(tierOnly, partition: nil).contains(#""ledgerEntryId":null,"operationType":null,"tokensAmount":null"#))
        // Written after what a buffer already holds, as into a Redis command's arguments.
        var buffer = Array("LPUSH".utf8)
        Invalidations.append(c, partition: nil, to: &buffer)
        XCTAssertEqual(String(decoding: buffer, as: UTF8.self), "LPUSH" + plain)
    }

    func testAlertsWriteNumbersAsNumbersAndTheStreamGetsThePartitionLast() {
        var e = LedgerEvent(LedgerEvent.balanceLow)
        e.add("userId", "u")
        e.add("monitorId", "m")
        e.add("threshold", 50)
        e.add("available", 40)
        e.add("at", ms: 0)
        let out = StreamEvents.outgoing(e, partition: 3)
        XCTAssertEqual(out.fields.map(\.key), ["userId", "monitorId", "threshold", "available", "at", "partition"])
        XCTAssertEqual(StreamEvents.outgoing(e, partition: nil), e)
        XCTAssertEqual(StreamEvents.alert(out),
                       #"{"event":"balance.low","userId":"u","monitorId":"m","threshold":50,"available":40,"at":"1970-01-01T00:00:00.000Z","partition":3}"#)
    }

    func testJobAppliedSaysWhatTheJobDid() throws {
        let job = try Job.decode(Array(#"{"type":"charge","id":"c1","userId":"u","operation":"chatgpt_message"}"#.utf8)).get()
        let own = BalanceChange(userId: "u", tokensBalance: 95, tokensSpent: 5, tier: "Gift", ledgerEntryId: 2,
                                operationType: "chatgpt_message", tokensAmount: -5, at: at)
        let applied = StreamEvents.jobApplied(job, refusalCode: nil, own: own, atMs: 1)
        XCTAssertEqual(applied.name, "job.applied")
        XCTAssertEqual(applied.fields.map { "\($0.key)=\($0.value)" },
                       ["id=c1", "type=charge", "userId=u", "success=true", "tokensAmount=-5", "operationType=chatgpt_message",
                        "newBalance=95", "ledgerEntryId=2", "at=1970-01-01T00:00:00.001Z"])
        let refused = StreamEvents.jobApplied(job, refusalCode: .insufficientTokens, own: nil, atMs: 1)
        XCTAssertEqual(refused.fields.map(\.key), ["id", "type", "userId", "success", "code", "at"])
        XCTAssertEqual(refused.value("code"), "insufficient_tokens")
    }

    func testRepliesWriteTheOutcomeBetweenIdTypeAndDuplicate() throws {
        let job = try Job.decode(Array(#"{"type":"debit","id":"d1","userId":"u","operationType":"x","amount":5}"#.utf8)).get()
        let refusal = Outcome.refused(Refusal(code: .insufficientTokens, message: "No.", details: [
            .init("balance", .int(3)), .init("available", .int(3)), .init("required", .int(5)), .init("deficit", .int(2)),
        ]))
        XCTAssertEqual(Replies.result(for: job, refusal, duplicate: true),
                       #"{"id":"d1","type":"debit","success":false,"error":{"code":"insufficient_tokens","message":"No."},"balance":3,"available":3,"required":5,"deficit":2,"duplicate":true}"#)
        let entry = Outcome.entry(EntryWritten(newBalance: 90, ledgerEntryId: 2, tokensAmount: -10))
        XCTAssertEqual(Replies.fields(of: entry), #"{"success":true,"newBalance":90,"ledgerEntryId":2,"tokensAmount":-10}"#)
        // A result stored as text by an older schema is written as it was stored.
        let stored = #"{"success":true,"odd":[1,{"x":"\u00e9"}],"newBalance":1}"#
        XCTAssertEqual(Replies.result(for: job, .legacy(LegacyResult(json: stored, refusalCode: nil)), duplicate: true),
                       #"{"id":"d1","type":"debit","success":true,"odd":[1,{"x":"\u00e9"}],"newBalance":1,"duplicate":true}"#)
        let at = BalanceAtReport(userId: "u", atMs: 0, point: nil)
        XCTAssertEqual(Replies.fields(of: .balanceAt(at)),
                       #"{"success":true,"userId":"u","at":"1970-01-01T00:00:00.000Z","exists":false,"tokensBalance":0,"tokensSpent":0,"ledgerEntryId":null,"createdAt":null}"#)
    }
}
