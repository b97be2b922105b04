import Foundation
import GRDB
import XCTest
@testable import Ledger
import LedgerModel

final class AuditTests: XCTestCase {
    /// A small ledger exercising every kind of entry.
    func populated() throws -> Fixture {
        let f = try Fixture()
        try f.run(.open(userId: "a"))
        try f.run(.open(userId: "b"))
        try f.run(.charge(userId: "a", operation: "image_generation", metadata: #"{"k":"v"}"#), jobId: "ca")
        try f.run(.debit(userId: "b", operationType: "x", amount: 30, metadata: nil), jobId: "db")
        try f.run(.refund(userId: "a", refundOf: "ca", amount: 4, metadata: nil))
        try f.run(.refund(userId: "b", refundOf: "db", amount: nil, metadata: nil))
        try f.run(.credit(userId: "b", operationType: "bonus", amount: 9, metadata: nil))
        try f.run(.purchase(userId: "c", tier: "Business", paymentId: "p", months: 1, metadata: nil))
        f.set("2026-02-20T00:00:00.000Z")
        _ = try f.ledger.renewDue(limit: 10)
        return f
    }

    /// Runs SQL around the ledger's protections, as an intruder with the file would.
    func tamper(_ f: Fixture, _ sql: String) throws {
        let q = try DatabaseQueue(path: f.path)
        try q.write { try $0.execute(sql: sql) }
        try q.close()
    }

    func codes(_ violations: [AuditViolation]) -> Set<String> { Set(violations.map(\.code)) }

    func testASoundLedgerVerifies() throws {
        let f = try populated()
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testEditedEntryWrittenAroundTheTriggers() throws {
        let f = try populated()
        try tamper(f, """
            DROP TRIGGER entries_no_update;
            UPDATE entries SET amount = -1, balance_after = balance_before - 1 WHERE id = 3;
            """)
        let v = try Ledger.verify(path: f.path)
        XCTAssertTrue(v.contains { $0.code == "hash_mismatch" && $0.entryId == 3 }, "\(v)")
        XCTAssertTrue(codes(v).isSuperset(of: ["triggers_missing", "balance_mismatch", "balance_chain_broken", "spent_mismatch"]), "\(v)")
        XCTAssertEqual(v.filter { $0.code == "hash_mismatch" }.count, 1, "only the edited entry breaks the chain: \(v)")
    }

    func testEditThatKeepsTheBooksBalancedIsStillCaught() throws {
        let f = try populated()
        // Change only metadata and put the trigger back: every sum still agrees.
        try tamper(f, """
            DROP TRIGGER entries_no_update;
            UPDATE entries SET metadata = '{"k":"forged"}' WHERE id = 3;
            CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
            BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
            """)
        let v = try Ledger.verify(path: f.path)
        XCTAssertEqual(v.map(\.code), ["hash_mismatch"])
        XCTAssertEqual(v.first?.entryId, 3)
    }

    func testDeletedEntry() throws {
        let f = try populated()
        try tamper(f, "DROP TRIGGER entries_no_delete; DELETE FROM entries WHERE id = 4;")
        let v = try Ledger.verify(path: f.path)
        XCTAssertTrue(v.contains { $0.code == "entry_gap" && $0.entryId == 5 }, "\(v)")
        XCTAssertTrue(v.contains { $0.code == "hash_mismatch" && $0.entryId == 5 }, "\(v)")
        XCTAssertTrue(codes(v).isSuperset(of: ["balance_mismatch", "account_bookkeeping", "refund_orphan"]), "\(v)")
    }

    func testReorderedEntries() throws {
        let f = try populated()
        // Swap the ids of two entries of different accounts: each account's own chain still
        // looks continuous, only the global hash chain notices.
        try tamper(f, """
            DROP TRIGGER entries_no_update;
            UPDATE entries SET id = -1 WHERE id = 1;
            UPDATE entries SET id = 1 WHERE id = 2;
            UPDATE entries SET id = 2 WHERE id = -1;
            """)
        let v = try Ledger.verify(path: f.path)
        XCTAssertTrue(v.contains { $0.code == "hash_mismatch" && $0.entryId == 1 }, "\(v)")
        XCTAssertTrue(v.contains { $0.code == "hash_mismatch" && $0.entryId == 2 }, "\(v)")
    }

    func testTamperedAccountAndRefundTotals() throws {
        let f = try populated()
        try tamper(f, "UPDATE accounts SET balance = balance + 1000, spent = 0 WHERE user_id = 'a'; UPDATE refunded SET amount = 0;")
        let v = try Ledger.verify(path: f.path)
        XCTAssertTrue(v.contains { $0.code == "balance_mismatch" && $0.userId == "a" }, "\(v)")
        XCTAssertTrue(v.contains { $0.code == "spent_mismatch" && $0.userId == "a" }, "\(v)")
        XCTAssertEqual(v.filter { $0.code == "refunded_total_mismatch" }.count, 2, "\(v)")
    }

    func testBackupIsConsistentWhileTheWriterWritesAndVerifies() throws {
        let f = try populated()
        let ledger = f.ledger
        let writer = Thread {
            for i in 0..<200 {
                _ = try? ledger.apply((0..<20).map { Command(jobId: "w\(i)-\($0)", operation: .credit(userId: "b", operationType: "bonus", amount: 1, metadata: nil)) })
            }
        }
        writer.start()
        let copy = f.dir.appendingPathComponent("copy.sqlite").path
        try ledger.backup(to: copy)
        XCTAssertEqual(try Ledger.verify(path: copy), [])
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: copy)[.posixPermissions] as? Int, 0o600)
        XCTAssertThrowsError(try ledger.backup(to: copy)) {
            XCTAssertEqual($0 as? LedgerStorageError, .backupDestinationExists(path: copy))
        }
        XCTAssertThrowsError(try ledger.backup(to: "/nonexistent-dir/copy.sqlite")) { XCTAssertTrue($0 is POSIXError) }
        while !writer.isFinished { usleep(10_000) }
        let restored = try Ledger(path: copy, clock: f.clock)
        XCTAssertNotNil(try json(restored.read(.balance(userId: "c"))).int("tokensBalance"))
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testEpochFencingRollsBackTheWholeBatch() throws {
        let f = try Fixture()
        let first = try f.ledger.acquireEpoch(owner: "worker-1")
        try f.ledger.apply([Command(jobId: "o", operation: .open(userId: "u"))], epoch: first)
        let second = try f.ledger.acquireEpoch(owner: "worker-2")
        XCTAssertGreaterThan(second, first)
        XCTAssertEqual(try f.ledger.currentEpoch()?.owner, "worker-2")
        XCTAssertThrowsError(try f.ledger.apply([
            Command(jobId: "c", operation: .charge(userId: "u", operation: "image_generation", metadata: nil)),
            Command(jobId: "o2", operation: .open(userId: "v")),
        ], epoch: first)) { XCTAssertEqual($0 as? LedgerStorageError, .fenced(callerEpoch: first, currentEpoch: second)) }
        XCTAssertEqual(try f.balance("u"), 100)
        XCTAssertEqual(try code(f.run(.balance(userId: "v"))), "user_not_found")
        f.set("2026-03-01T00:00:00.000Z")
        XCTAssertThrowsError(try f.ledger.renewDue(limit: 10, epoch: first))
        XCTAssertThrowsError(try f.ledger.recordCompletedRun(name: "renewal", slot: f.clock.now(), epoch: first))
        // The job was not stored: the new owner applies it.
        let c = try f.ledger.apply([Command(jobId: "c", operation: .charge(userId: "u", operation: "image_generation", metadata: nil))], epoch: second)
        XCTAssertFalse(c[0].duplicate)
        XCTAssertEqual(try f.ledger.renewDue(limit: 10, epoch: second).totalProcessed, 1)
    }

    func testCheckpointCopiesTheWal() throws {
        var config = LedgerConfig()
        config.walAutoCheckpointPages = 0
        let f = try Fixture(config: config)
        try f.ledger.apply((0..<300).map { Command(jobId: "o\($0)", operation: .open(userId: "u\($0)")) })
        let c = try f.ledger.checkpoint()
        XCTAssertGreaterThan(c.walFrames, 0)
        XCTAssertEqual(c.walFrames, c.checkpointed)
    }

    func testBackgroundCheckpointKeepsTheWalSmall() throws {
        var config = LedgerConfig()
        config.walAutoCheckpointPages = 50
        let f = try Fixture(config: config)
        for b in 0..<30 {
            try f.ledger.apply((0..<100).map { Command(jobId: "o\(b)-\($0)", operation: .open(userId: "u\(b)-\($0)")) })
        }
        f.ledger.checkpointer.drain()
        // The background checkpoints copied pages into the database file without being asked.
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: f.path)[.size] as? Int)
        XCTAssertGreaterThan(size, 200_000)
        // An explicit checkpoint restarts the WAL: the next commit writes at its start.
        try f.ledger.checkpoint()
        try f.ledger.apply([Command(jobId: "last", operation: .open(userId: "last"))])
        f.ledger.checkpointer.drain()
        XCTAssertLessThan(try f.ledger.checkpoint().walFrames, 50)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testSynchronousIsFullByDefault() throws {
        let f = try Fixture()
        XCTAssertEqual(try f.ledger.writer.read { try Int.fetchOne($0, sql: "PRAGMA synchronous") }, 2)
        XCTAssertEqual(try f.ledger.writer.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }, "wal")
    }

    func testAnSQLiteErrorRollsBackTheWholeBatchWhichCanBeRetried() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        try tamper(f, """
            CREATE TRIGGER boom BEFORE INSERT ON job_log WHEN NEW.job_id = 'boom'
            BEGIN SELECT RAISE(ABORT, 'injected failure'); END;
            """)
        let batch = [
            Command(jobId: "c1", operation: .charge(userId: "u", operation: "image_generation", metadata: nil)),
            Command(jobId: "boom", operation: .credit(userId: "u", operationType: "bonus", amount: 5, metadata: nil)),
        ]
        XCTAssertThrowsError(try f.ledger.apply(batch))
        XCTAssertEqual(try f.balance("u"), 100)
        try tamper(f, "DROP TRIGGER boom;")
        let retried = try f.ledger.apply(batch)
        XCTAssertEqual(retried.map(\.duplicate), [false, false])
        XCTAssertEqual(try f.balance("u"), 95)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }
}
