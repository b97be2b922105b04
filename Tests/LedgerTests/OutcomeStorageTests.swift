import Foundation
import GRDB
import JobWire
import XCTest
@testable import Ledger
import LedgerModel

/// The stored encoding of outcomes, and rows written before it.
final class OutcomeStorageTests: XCTestCase {
    /// One value of every case, with the awkward values each field can take.
    static let everyCase: [Outcome] = {
        let odd = "e\u{301} \"q\" \\ \n\u{1} 1;2:~{"
        let entry = EntryWritten(newBalance: Int64.min, ledgerEntryId: Int64.max, tokensAmount: -1)
        return [
            .opened(Opened(userId: odd, tier: "Gift", newBalance: 0, ledgerEntryId: nil, lastRenewalMs: -5, nextRenewalMs: 7, grant: nil)),
            .opened(Opened(userId: "u", tier: "Gift", newBalance: 100, ledgerEntryId: 1, lastRenewalMs: 0, nextRenewalMs: 1,
                           grant: GrantMade(grantId: "renewal:u:x", expiresMs: 99))),
            .entry(entry),
            .expiringCredit(ExpiringCredit(entry: entry, grant: GrantMade(grantId: odd, expiresMs: 3))),
            .purchased(Purchased(userId: "u", tier: "Pro", paymentId: odd, months: 1200, newBalance: 5, ledgerEntryId: nil, tokensAdded: 0,
                                 subscriptionExpiresMs: nil, lastRenewalMs: 1, nextRenewalMs: 2, grant: nil)),
            .renewed(Renewed(userId: "u", tier: "Gift", downgraded: true, tokensAdded: 0, newBalance: 0, ledgerEntryId: nil,
                             lastRenewalMs: 1, nextRenewalMs: 2, rollover: Rollover(tokensCarried: 3, tokensLapsed: 4))),
            .renewedAll(RenewAllReport(dryRun: true, limit: 10, more: true, totalProcessed: 2, successful: 1, failed: 1,
                                       errors: [RenewalFailure(userId: odd, code: .unknownTier, message: odd)],
                                       renewals: [RenewalOutcome(userId: "a", tier: "Pro", tokensAdded: 9, newBalance: 10, tokensCarried: 1, tokensLapsed: 2)],
                                       figures: .withRollover)),
            .renewedAll(RenewAllReport(dryRun: false, limit: 1, more: false, totalProcessed: 0, successful: 0, failed: 0, errors: [],
                                       renewals: [], figures: .plain)),
            .tierSet(TierSet(userId: "u", tier: "Pro", previousTier: "Gift", subscriptionExpiresMs: 8, lastRenewalMs: 1, nextRenewalMs: 2)),
            .held(Held(userId: "u", holdId: odd, amount: 5, available: -2, expiresMs: 4)),
            .captured(Captured(entry: entry, holdId: "h", released: 0, available: 3)),
            .released(Released(holdId: "h", released: 5, available: 6)),
            .monitorSet(MonitorSet(userId: "u", monitorId: "m", threshold: 0, armed: false, replaced: true)),
            .monitorRemoved(MonitorRemoved(userId: "u", monitorId: "")),
            .balance(BalanceReport(userId: "u", tokensBalance: 1, tokensSpent: 2, tier: "Gift", lastRenewalMs: 3, nextRenewalMs: 4,
                                   subscriptionExpiresMs: nil, held: 5, available: -4,
                                   grants: [GrantBalance(grantId: "g", remaining: 1, expiresMs: 2), GrantBalance(grantId: odd, remaining: 3, expiresMs: 4)])),
            .affordability(Affordability(canAfford: false, cost: 10, balance: 3, available: 3, deficit: 7)),
            .history(HistoryPage(userId: "u", entries: [
                HistoryEntry(id: 1, jobId: nil, operationType: "renewal", tokensAmount: 100, balanceBefore: 0, balanceAfter: 100,
                             createdMs: 5, metadata: nil),
                HistoryEntry(id: 2, jobId: odd, operationType: odd, tokensAmount: -1, balanceBefore: 100, balanceAfter: 99,
                             createdMs: 6, metadata: #"{"a":[1,"~;"]}"#),
            ], total: 2, limit: 1000, offset: 0)),
            .statistics(StatisticsReport(userId: "u", startMs: 0, endMs: 1, totalSpent: 2, totalEarned: 3, operationCount: 4,
                                         rollover: nil, byOperation: [OperationTotal(operationType: odd, count: 1, tokens: -2)])),
            .statistics(StatisticsReport(userId: "u", startMs: 0, endMs: 1, totalSpent: 0, totalEarned: 0, operationCount: 0,
                                         rollover: Rollover(tokensCarried: 0, tokensLapsed: 0), byOperation: [])),
            .eligibility(EligibilityReport(userId: "u", eligible: true, tier: "Gift", lastRenewalMs: 1, nextRenewalMs: 2, daysUntilRenewal: 0)),
            .holds(HoldList(userId: "u", holds: [OpenHold(holdId: "h", amount: 1, operationType: nil, createdMs: 2, expiresMs: 3),
                                                 OpenHold(holdId: "k", amount: 2, operationType: "x", createdMs: 2, expiresMs: 3)],
                            held: 3, available: 4)),
            .balanceAt(BalanceAtReport(userId: "u", atMs: 1, point: nil)),
            .balanceAt(BalanceAtReport(userId: "u", atMs: 1, point: BalancePoint(tokensBalance: 1, tokensSpent: 2, ledgerEntryId: 3, createdMs: 4))),
            .refused(Refusal(code: .insufficientTokens, message: odd, details: [
                .init("balance", .int(3)), .init("reason", .string(odd)), .init("eligible", .bool(false)),
                .init("expiresAt", .time(ms: 1)), .init("nothing", .null),
            ])),
        ]
    }()

    func testEveryOutcomeReadsBackAsItWasStored() throws {
        for outcome in Self.everyCase {
            guard case .encoded(let bytes) = outcome.stored else { return XCTFail("not encoded: \(outcome)") }
            XCTAssertEqual(bytes.first, UInt8(ascii: "1"), "the version comes first")
            XCTAssertNotNil(String(validating: bytes, as: UTF8.self), "valid UTF-8 for a TEXT column")
            XCTAssertEqual(try Outcome(stored: StoredResult(text: bytes)), outcome)
            // Cut anywhere, or followed by anything, it is refused rather than misread.
            for end in [1, bytes.count / 2, bytes.count - 1] {
                XCTAssertThrowsError(try Outcome(stored: .encoded(Array(bytes[..<end]))), "\(outcome) cut at \(end)")
            }
            XCTAssertThrowsError(try Outcome(stored: .encoded(bytes + [UInt8(ascii: "t")])))
        }
        var other = Array(Self.everyCase[0].stored.text.utf8)
        other[0] = UInt8(ascii: "2")
        XCTAssertThrowsError(try Outcome(stored: .encoded(other)), "a version this ledger does not know")
    }

    func testKeptChangesAndEventsReadBackAsTheyWereStored() throws {
        let change = BalanceChange(userId: "e\u{301}", tokensBalance: -3, tokensSpent: 4, tier: "Gift", ledgerEntryId: nil,
                                   operationType: nil, tokensAmount: nil, at: LedgerTime.parse("2026-01-15T10:00:00.123Z")!, held: 9)
        XCTAssertEqual(try BalanceChange(stored: change.stored), change)
        var e = LedgerEvent(LedgerEvent.grantExpired)
        e.add("userId", "u;1:")
        e.add("tokensAmount", -5)
        XCTAssertEqual(try LedgerEvent(stored: e.stored), e)
        XCTAssertThrowsError(try LedgerEvent(stored: change.stored), "a change is not an event")
    }

    /// Rows as the schema before typed outcomes wrote them: the reply's JSON text in `job_log`
    /// (unmerged) and `jobs` (merged), entry ids alone for plain balance changes, and JSON in
    /// `pending_sends`. Each answers byte for byte as it did.
    func testRowsOfThePreviousSchemaAnswerByteForByte() throws {
        let f = try Fixture(config: StorageTests.manualMerge)
        try f.run(.open(userId: "u"), jobId: "open-u")
        let charge = try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil), jobId: "charge-u")
        guard case .entry(let written) = charge.outcome else { return XCTFail("\(charge.outcome)") }

        // A plain charge is stored as its entry id alone, as before (`charge-u`, checked below).
        XCTAssertNil(try f.ledger.writer.read { try String.fetchOne($0, sql: "SELECT result FROM job_log WHERE job_id = 'charge-u'") })
        // What the previous schema stored, as its code wrote it.
        let stored: [(id: String, type: String, text: String)] = [
            ("old-open", "open", #"{"success":true,"userId":"v","tier":"Gift","newBalance":100,"ledgerEntryId":7,"tokensAmount":100,"lastRenewalAt":"2026-01-15T10:00:00.000Z","nextRenewalDate":"2026-02-15T10:00:00.000Z"}"#),
            ("old-hold", "hold", #"{"success":true,"userId":"u","holdId":"old-hold","amount":5,"available":94,"expiresAt":"2026-01-15T10:15:00.000Z"}"#),
            ("old-refused", "debit", #"{"success":false,"error":{"code":"insufficient_tokens","message":"The balance of 3 tokens does not cover the 5 tokens required."},"balance":3,"available":3,"required":5,"deficit":2}"#),
            ("old-history", "history", #"{"success":true,"userId":"u","entries":[{"id":2,"jobId":"charge-u","operationType":"chatgpt_message","tokensAmount":-1,"balanceBefore":100,"balanceAfter":99,"createdAt":"2026-01-15T10:00:00.000Z","metadata":{"k":"\u00e9 \"x\""}}],"total":2,"limit":1,"offset":0}"#),
        ]
        let merged: [(id: String, type: String, text: String)] = [
            ("old-merged", "release", #"{"success":true,"holdId":"h9","released":5,"available":99}"#),
            ("old-merged-refused", "capture", #"{"success":false,"error":{"code":"hold_closed","message":"The hold h is already captured."},"state":"captured"}"#),
        ]
        let legacyChange = #"{"userId":"u","tokensBalance":\#(written.newBalance),"tokensSpent":\#(-written.tokensAmount),"held":0,"available":\#(written.newBalance),"tier":"Gift","ledgerEntryId":\#(written.ledgerEntryId),"operationType":"chatgpt_message","tokensAmount":\#(written.tokensAmount),"at":"2026-01-15T10:00:00.000Z"}"#
        let legacyEvent = #"["grant.expired","userId","u","grantId","g1","tokensAmount","-3","expiresAt","2026-01-15T09:00:00.000Z","at","2026-01-15T10:00:00.000Z"]"#
        let raw = try DatabaseQueue(path: f.path)
        try raw.write { db in
            var seq = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM job_log") ?? 0
            for row in stored {
                seq += 1
                try db.execute(sql: "INSERT INTO job_log (seq, job_id, entry_id, account_id, result) VALUES (?, ?, NULL, NULL, ?)",
                               arguments: [seq, row.id, row.text])
            }
            for row in merged {
                try db.execute(sql: "INSERT INTO jobs (job_id, entry_id, account_id, result) VALUES (?, NULL, NULL, ?)", arguments: [row.id, row.text])
            }
            try db.execute(sql: "INSERT INTO pending_sends (kind, payload) VALUES (0, ?), (1, ?)", arguments: [legacyChange, legacyEvent])
        }
        try raw.close()
        f.ledger = try Ledger(path: f.path, config: StorageTests.manualMerge, clock: f.clock)  // the tail is read at open

        for row in stored + merged + [("charge-u", "charge", #"{"success":true,"newBalance":\#(written.newBalance),"ledgerEntryId":\#(written.ledgerEntryId),"tokensAmount":\#(written.tokensAmount)}"#)] {
            let job = try Job.decode(Array(#"{"type":"open","id":"\#(row.id)","userId":"zzz"}"#.utf8)).get()
            let result = try f.ledger.apply([job.command])[0]
            XCTAssertTrue(result.duplicate, row.id)
            XCTAssertEqual(Replies.fields(of: result.outcome), row.text, row.id)
            XCTAssertEqual(Replies.result(for: job, result.outcome, duplicate: true),
                           #"{"id":"\#(row.id)","type":"open","# + row.text.dropFirst().dropLast() + #","duplicate":true}"#, row.id)
            XCTAssertEqual(result.success, row.text.hasPrefix(#"{"success":true"#), row.id)
        }
        XCTAssertEqual(try f.ledger.apply([Command(jobId: "old-refused", operation: .open(userId: "zzz"))])[0].refusalCode, .insufficientTokens)
        XCTAssertEqual(try f.ledger.apply([Command(jobId: "old-merged-refused", operation: .open(userId: "zzz"))])[0].errorCode, "hold_closed")

        // Kept sends: the change with the account's state now (unchanged here), the event as it was.
        let sends = try f.ledger.pendingSends().sends
        XCTAssertEqual(sends.count, 2)
        guard case .change(let change)? = sends.first, case .event(let event)? = sends.last else { return XCTFail("\(sends)") }
        XCTAssertEqual(Invalidations.message(change, partition: nil), legacyChange)
        XCTAssertEqual(event.name, LedgerEvent.grantExpired)
        XCTAssertEqual(event.fields.map(\.key), ["userId", "grantId", "tokensAmount", "expiresAt", "at"])
        XCTAssertEqual(event.value("tokensAmount"), "-3")

        // New rows beside the old: stored in the new form, answered the same after a merge.
        let hold = try f.run(.hold(userId: "u", amount: 2, operation: nil, expiresIn: nil, metadata: nil), jobId: "new-hold")
        let kept = try f.ledger.writer.read { try String.fetchOne($0, sql: "SELECT result FROM job_log WHERE job_id = 'new-hold'") }
        XCTAssertEqual(kept?.first, "1", "new rows are in the versioned encoding")
        try f.ledger.mergeAll()
        XCTAssertEqual(try f.ledger.apply([Command(jobId: "new-hold", operation: .open(userId: "zzz"))])[0].json, hold.json)
        XCTAssertEqual(try f.ledger.apply([Command(jobId: "old-hold", operation: .open(userId: "zzz"))])[0].json, stored[1].text,
                       "a legacy row merged into jobs still answers verbatim")
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }
}
