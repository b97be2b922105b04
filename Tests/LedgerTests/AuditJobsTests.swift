import Foundation
import GRDB
import XCTest
@testable import Ledger
import LedgerModel

/// `verify` sees a double application and stores of job results that disagree, on a real file
/// corrupted around the ledger's protections.
final class AuditJobsTests: XCTestCase {
    func tamper(_ f: Fixture, _ sql: String) throws {
        let q = try DatabaseQueue(path: f.path)
        try q.write { try $0.execute(sql: sql) }
        try q.close()
    }

    func codes(_ f: Fixture) throws -> [String] { try Ledger.verify(path: f.path).map(\.code) }

    /// Jobs of every kind that store a result or an entry, part merged, part in the tail.
    func populated() throws -> Fixture {
        let f = try Fixture(config: StorageTests.manualMerge)
        try f.run(.open(userId: "a"), jobId: "open-a")
        try f.run(.open(userId: "b"), jobId: "open-b")
        try f.run(.charge(userId: "a", operation: "image_generation", metadata: nil), jobId: "c1")
        try f.run(.purchase(userId: "b", tier: "Business", paymentId: "p1", months: 1, metadata: nil), jobId: "buy")
        try f.run(.hold(userId: "b", amount: 5, operation: nil, expiresIn: nil, metadata: nil), jobId: "h1")
        try f.run(.capture(userId: "b", holdId: "h1", amount: 3, operationType: nil, metadata: nil), jobId: "cap")
        try f.ledger.mergeAll()
        try f.run(.debit(userId: "a", operationType: "api", amount: 5000, metadata: nil), jobId: "refused")
        try f.run(.refund(userId: "a", refundOf: "c1", amount: nil, metadata: nil), jobId: "r1")
        try f.run(.credit(userId: "b", operationType: "bonus", amount: 7, metadata: nil, expiry: .afterSeconds(60)), jobId: "g1")
        try f.run(.renew(userId: "a"), jobId: "renew-a")
        return f
    }

    func testACleanLedgerVerifiesClean() throws {
        let f = try populated()
        XCTAssertGreaterThan(try f.ledger.unmergedRows(), 0)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
        try f.ledger.mergeAll()
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    /// A job applied twice, as a lost stored result would let it be: every balance still equals
    /// its entries, so only the job ids show it.
    func testAJobAppliedTwiceIsReportedFromTheTailAndFromTheMergedIndex() throws {
        for merged in [false, true] {
            let f = try populated()
            try f.run(.charge(userId: "a", operation: "chatgpt_message", metadata: nil), jobId: "twice")
            if merged { try f.ledger.mergeAll() }
            XCTAssertEqual(try codes(f), [])
            try tamper(f, merged ? "DELETE FROM jobs WHERE job_id = 'twice'" : "DELETE FROM job_log WHERE job_id = 'twice'")
            let again = try f.run(.charge(userId: "a", operation: "chatgpt_message", metadata: nil), jobId: "twice")
            XCTAssertFalse(again.duplicate, "the stored result is gone, so the job applies again")
            let v = try Ledger.verify(path: f.path)
            XCTAssertEqual(v.map(\.code), ["job_applied_twice"], "merged \(merged): \(v)")
            XCTAssertTrue(v.first?.message.contains("twice") ?? false, "\(v)")
        }
    }

    func testASecondEntryWithTheSameJobIdWrittenAroundTheTriggersIsReported() throws {
        let f = try populated()
        try tamper(f, """
            DROP TRIGGER entries_no_update; DROP TRIGGER entries_no_delete;
            INSERT INTO entries (id, account_id, created_ms, kind, operation_type, amount, balance_before, balance_after,
                job_id, refund_of, metadata, hash)
            SELECT (SELECT max(id) + 1 FROM entries), account_id, created_ms + 1, kind, operation_type, amount,
                balance_before, balance_after, job_id, refund_of, metadata, hash FROM entries WHERE job_id = 'c1';
            """)
        let v = try Ledger.verify(path: f.path)
        XCTAssertTrue(v.contains { $0.code == "job_applied_twice" && $0.message.contains("c1") }, "\(v)")
    }

    func testAMergedResultThatDisagreesWithItsLogRowIsReported() throws {
        let f = try populated()
        // `refused` is in job_log only; a merged row for it with another result.
        try tamper(f, #"INSERT INTO jobs (job_id, entry_id, account_id, result) VALUES ('refused', NULL, NULL, '{"success":true}')"#)
        let v = try Ledger.verify(path: f.path)
        XCTAssertEqual(v.map(\.code), ["job_store_mismatch"], "\(v)")
        XCTAssertTrue(v.first?.message.contains("refused") ?? false, "\(v)")
    }

    func testALogRowBelowTheWatermarkMissingFromJobsIsReported() throws {
        let f = try populated()
        // The watermark moved over the tail without its rows reaching `jobs`.
        try tamper(f, "UPDATE storage_state SET value = (SELECT max(seq) FROM job_log) WHERE name = 'merged_job_seq'")
        let v = try Ledger.verify(path: f.path)
        let missing = v.filter { $0.code == "job_store_mismatch" }
        XCTAssertEqual(missing.count, 4, "refused, r1, g1 and renew-a: \(v)")
    }

    func testAStoredResultNamingAnotherJobsEntryIsReported() throws {
        let f = try populated()
        try tamper(f, "INSERT INTO jobs (job_id, entry_id, account_id, result) SELECT 'ghost', id, NULL, NULL FROM entries WHERE job_id = 'c1'")
        let v = try Ledger.verify(path: f.path)
        XCTAssertEqual(v.map(\.code), ["job_entry_mismatch"], "\(v)")
    }
}
