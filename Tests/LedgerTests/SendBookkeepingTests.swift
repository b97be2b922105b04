import Foundation
import GRDB
import XCTest
@testable import Ledger
import JobWire
import LedgerModel

/// What the ledger tells the worker to send, and when: a replayed job's own entry, a merge that
/// fails after a commit, and the numbering of the rows kept until sent.
final class SendBookkeepingTests: XCTestCase {
    /// A duplicate answers the job's own entry for `job.applied` (its balance after), while its
    /// invalidation carries the account's current state.
    func testAReplayedJobsOwnChangeIsItsEntryNotTheCurrentBalance() throws {
        let f = try Fixture()
        try f.run(.open(userId: "ada"))
        try f.run(.credit(userId: "ada", operationType: "bonus", amount: 5, metadata: nil), jobId: "c1")
        try f.run(.credit(userId: "ada", operationType: "bonus", amount: 7, metadata: nil), jobId: "c2")
        let again = try f.run(.credit(userId: "ada", operationType: "bonus", amount: 5, metadata: nil), jobId: "c1")
        XCTAssertTrue(again.duplicate)
        XCTAssertEqual(again.own?.tokensBalance, 105, "the job's own balance after")
        XCTAssertEqual(again.own?.tokensAmount, 5)
        XCTAssertEqual(again.changes.last?.tokensBalance, 112, "the invalidation carries the current balance")
        // Also once the job's entry is merged into the indexes.
        try f.ledger.mergeAll()
        let merged = try f.run(.credit(userId: "ada", operationType: "bonus", amount: 5, metadata: nil), jobId: "c1")
        XCTAssertEqual(merged.own?.tokensBalance, 105)
    }

    /// The merge that a write runs after its COMMIT (the tail past twice the threshold) fails:
    /// the write's results still come back, since they are committed; the failure is reported
    /// on its own and the merge completes once the cause is gone.
    func testAMergeFailingAfterTheCommitDoesNotFailTheCommittedWrite() throws {
        var config = LedgerConfig()
        config.mergeThresholdRows = 2
        let f = try Fixture(config: config)
        try f.ledger.writer.write { db in
            try db.execute(sql: "CREATE TRIGGER no_merge BEFORE INSERT ON jobs BEGIN SELECT RAISE(ABORT, 'injected merge fault'); END;")
        }
        let commands = [Command(jobId: "o1", operation: .open(userId: "bea"))] + (1...4).map {
            Command(jobId: "d\($0)", operation: .debit(userId: "bea", operationType: "x", amount: 1, metadata: nil))
        }
        let results = try f.ledger.apply(commands)
        XCTAssertEqual(results.map(\.success), [true, true, true, true, true])
        XCTAssertFalse(results.contains { $0.duplicate })
        XCTAssertGreaterThanOrEqual(f.ledger.boundedMergeStatus.failures, 1)
        XCTAssertTrue(f.ledger.boundedMergeStatus.lastError?.contains("injected merge fault") == true)
        let replay = try f.ledger.apply(commands)
        XCTAssertTrue(replay.allSatisfy(\.duplicate), "the write was committed")
        XCTAssertEqual(try f.balance("bea"), 96)

        try f.ledger.writer.write { db in try db.execute(sql: "DROP TRIGGER no_merge") }
        try f.ledger.mergeAll()
        XCTAssertEqual(try f.ledger.unmergedRows(), 0)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    /// Rows kept until sent are numbered by AUTOINCREMENT: once the table empties, the next row
    /// still gets a seq above every one given before (a worker's "sent through N" stays true).
    func testPendingSendsNeverReuseASeqAfterTheTableEmpties() throws {
        let f = try Fixture()
        try f.run(.open(userId: "cy"))
        try f.run(.hold(userId: "cy", amount: 10, operation: nil, expiresIn: 60, metadata: nil))
        f.set("2026-01-15T10:02:00.000Z")
        let first = try XCTUnwrap(try f.ledger.sweepDue(limit: 10).pendingSeq)
        try f.run(.hold(userId: "cy", amount: 10, operation: nil, expiresIn: 60, metadata: nil))
        f.set("2026-01-15T10:04:00.000Z")
        // Forgets every row, then writes the new ones, in one transaction.
        let second = try XCTUnwrap(try f.ledger.sweepDue(limit: 10, forgetSentThrough: first).pendingSeq)
        XCTAssertGreaterThan(second, first, "a seq given once is never given again")
        let (sends, through) = try f.ledger.pendingSends(after: first)
        XCTAssertEqual(through, second)
        XCTAssertFalse(sends.isEmpty)
        XCTAssertEqual(try f.ledger.pendingSends(after: second).sends, [])
    }

    /// A kept invalidation sent again must not carry an older state than messages of newer
    /// commits that may already have left: it is rebuilt with the account's current state.
    func testAKeptInvalidationIsSentAgainWithTheCurrentState() throws {
        let f = try Fixture()
        try f.run(.open(userId: "dee"))
        try f.run(.hold(userId: "dee", amount: 10, operation: nil, expiresIn: 60, metadata: nil))
        f.set("2026-01-15T10:02:00.000Z")
        XCTAssertNotNil(try f.ledger.sweepDue(limit: 10).pendingSeq)
        try f.run(.debit(userId: "dee", operationType: "x", amount: 5, metadata: nil))
        let changes = try f.ledger.pendingSends().sends.compactMap { send -> [String: Any]? in
            if case .change(let change) = send { return try json(Invalidations.message(change, partition: nil)) }
            return nil
        }
        XCTAssertEqual(changes.count, 1)
        XCTAssertEqual(changes.first?.int("tokensBalance"), 95, "the current balance, not the stored 100")
        XCTAssertEqual(changes.first?.int("held"), 0)
        XCTAssertTrue(changes.first?["ledgerEntryId"] is NSNull, "the change's own fields as they were")
    }
}
