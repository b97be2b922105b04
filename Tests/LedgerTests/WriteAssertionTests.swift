import Foundation
import GRDB
import XCTest
@testable import Ledger

/// Assertions at write, paired with `verify` at read: a state `verify` would reject is never
/// committed, and when one is made on disk by hand, `verify` names it.
final class WriteAssertionTests: XCTestCase {
    private func entries(_ f: Fixture) throws -> Int {
        try f.ledger.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM entries") } ?? 0
    }

    private func reopenedAfter(_ f: Fixture, _ sql: String) throws {
        try f.ledger.mergeAll()
        let q = try DatabaseQueue(path: f.path)
        try q.write { try $0.execute(sql: sql) }
        try q.close()
        f.ledger = try Ledger(path: f.path, config: LedgerConfig(mergeThresholdRows: 1_000_000), clock: f.clock)
    }

    func testAnAccountHoldingANegativeAmountIsNeverWrittenAndVerifyFindsIt() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        try reopenedAfter(f, "UPDATE accounts SET held = -5 WHERE user_id = 'u'")
        let written = try entries(f)
        XCTAssertThrowsError(try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil))) { error in
            XCTAssertTrue(error is LedgerInvariantError, "\(error)")
        }
        XCTAssertEqual(try entries(f), written, "the batch rolled back")
        let codes = try Ledger.verify(path: f.path).map(\.code)
        XCTAssertTrue(codes.contains(AuditViolation.Code.reservedBeyondBalance), "\(codes)")
        XCTAssertTrue(codes.contains(AuditViolation.Code.heldMismatch), "\(codes)")
    }

    func testReservationsBeyondTheBalanceAreNeverWrittenAndVerifyFindsThem() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        try reopenedAfter(f, "UPDATE accounts SET granted = balance + 50 WHERE user_id = 'u'")
        let written = try entries(f)
        XCTAssertThrowsError(try f.run(.credit(userId: "u", operationType: "bonus", amount: 1, metadata: nil))) { error in
            XCTAssertTrue(error is LedgerInvariantError, "\(error)")
        }
        XCTAssertEqual(try entries(f), written)
        let codes = try Ledger.verify(path: f.path).map(\.code)
        XCTAssertTrue(codes.contains(AuditViolation.Code.reservedBeyondBalance), "\(codes)")
    }

    /// A job-id filter that lost its ids (what a bug in it would do): a replay of a job in the tail
    /// is stopped at write; one of a merged job is not (the probe is what the filter saves), and
    /// `verify` finds the second effect.
    func testAFilterThatForgetsIsCaughtAtWriteInTheTailAndByVerifyInTheIndex() throws {
        let f = try Fixture(config: LedgerConfig(mergeThresholdRows: 1_000_000))
        try f.run(.open(userId: "u"))
        try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil), jobId: "merged")
        try f.ledger.mergeAll()
        try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil), jobId: "tail")
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
        try f.ledger.writer.read { _ in f.ledger.tail.dropFilterContents() }
        let written = try entries(f)
        XCTAssertThrowsError(try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil), jobId: "tail")) { error in
            XCTAssertTrue(error is LedgerInvariantError, "\(error)")
        }
        XCTAssertEqual(try entries(f), written, "the tail's job was not applied twice")
        try f.ledger.writer.read { _ in f.ledger.tail.dropFilterContents() }
        let twice = try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil), jobId: "merged")
        XCTAssertFalse(twice.duplicate, "the filter skipped the probe of jobs")
        let codes = try Ledger.verify(path: f.path).map(\.code)
        XCTAssertTrue(codes.contains(AuditViolation.Code.jobAppliedTwice), "\(codes)")
        XCTAssertTrue(codes.contains(AuditViolation.Code.jobStoreMismatch), "\(codes)")
    }

    func testAnEffectWithoutItsStoredResultIsFound() throws {
        let f = try Fixture(config: LedgerConfig(mergeThresholdRows: 1_000_000))
        try f.run(.open(userId: "u"), jobId: "open")
        try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil), jobId: "c1")
        try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil), jobId: "c2")
        try f.ledger.mergeAll()
        try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil), jobId: "c3")
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
        let q = try DatabaseQueue(path: f.path)
        try q.write {
            try $0.execute(sql: "DELETE FROM jobs WHERE job_id = 'c1'")
            try $0.execute(sql: "DELETE FROM job_log WHERE job_id = 'c3'")
        }
        let found = try Ledger.verify(path: f.path).filter { $0.code == AuditViolation.Code.jobResultMissing }
        XCTAssertEqual(found.map(\.entryId), [2, 4], "\(found)")
    }
}
