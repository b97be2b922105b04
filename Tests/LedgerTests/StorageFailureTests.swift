import Foundation
import GRDB
import XCTest
@testable import Ledger
import LedgerModel

/// The cause of a failed write, read from SQLite's result code: the storage's condition never
/// counts against a job; only a job's own statements may.
final class StorageFailureClassificationTests: XCTestCase {
    func testEveryExtendedCodeFallsUnderItsFamily() {
        let expected: [(ResultCode, StorageFailure.Cause)] = [
            (.SQLITE_BUSY, .busy), (.SQLITE_BUSY_SNAPSHOT, .busy), (.SQLITE_BUSY_RECOVERY, .busy),
            (.SQLITE_LOCKED, .locked), (.SQLITE_LOCKED_SHAREDCACHE, .locked),
            (.SQLITE_FULL, .full), (.SQLITE_READONLY, .readOnly), (.SQLITE_READONLY_DBMOVED, .readOnly),
            (.SQLITE_IOERR, .ioError), (.SQLITE_IOERR_WRITE, .ioError), (.SQLITE_IOERR_FSYNC, .ioError),
            (.SQLITE_IOERR_SHORT_READ, .ioError), (.SQLITE_IOERR_NOMEM, .ioError),
            (.SQLITE_NOMEM, .outOfMemory), (.SQLITE_CANTOPEN, .cannotOpen), (.SQLITE_PROTOCOL, .lockProtocol),
            (.SQLITE_CORRUPT, .corrupt), (.SQLITE_NOTADB, .notADatabase),
            (.SQLITE_CONSTRAINT, .constraint), (.SQLITE_CONSTRAINT_TRIGGER, .constraint),
            (.SQLITE_CONSTRAINT_UNIQUE, .constraint), (.SQLITE_CONSTRAINT_CHECK, .constraint),
            (.SQLITE_TOOBIG, .tooBig), (.SQLITE_MISMATCH, .mismatch), (.SQLITE_RANGE, .range),
            (.SQLITE_ERROR, .unclassified), (.SQLITE_MISUSE, .unclassified),
        ]
        for (code, cause) in expected {
            XCTAssertEqual(StorageFailure.cause(of: DatabaseError(resultCode: code)), cause, "\(code)")
        }
        XCTAssertEqual(StorageFailure.cause(of: CocoaError(.fileNoSuchFile)), .unclassified)
        for cause in StorageFailure.Cause.allCases {
            XCTAssertEqual(cause.isTheJobsOwn, [.constraint, .tooBig, .mismatch, .range].contains(cause), "\(cause)")
        }
    }

    /// Real failures of a real file: another connection's write lock is `busy`, a trigger's
    /// RAISE(ABORT) on one job's insert is the job's own.
    func testALockIsTheStoragesAndATriggerIsTheJobs() throws {
        var config = LedgerConfig()
        config.busyTimeoutMilliseconds = 20
        let f = try Fixture(config: config)
        try f.run(.open(userId: "u"))
        let other = try DatabaseQueue(path: f.path)
        try other.writeWithoutTransaction { db in
            try db.execute(sql: "BEGIN IMMEDIATE")
            XCTAssertThrowsError(try f.run(.credit(userId: "u", operationType: "bonus", amount: 1, metadata: nil))) {
                XCTAssertEqual(StorageFailure.cause(of: $0), .busy, "\($0)")
                XCTAssertFalse(StorageFailure.cause(of: $0).isTheJobsOwn)
            }
            try db.execute(sql: "ROLLBACK")
            try db.execute(sql: """
                CREATE TRIGGER poison BEFORE INSERT ON entries WHEN NEW.job_id = 'bad' BEGIN SELECT RAISE(ABORT, 'injected'); END
                """)
        }
        XCTAssertThrowsError(try f.run(.credit(userId: "u", operationType: "bonus", amount: 1, metadata: nil), jobId: "bad")) {
            XCTAssertEqual(StorageFailure.cause(of: $0), .constraint, "\($0)")
            XCTAssertTrue(StorageFailure.cause(of: $0).isTheJobsOwn)
        }
        XCTAssertEqual(try json(f.run(.credit(userId: "u", operationType: "bonus", amount: 1, metadata: nil))).int("newBalance"), 101)
    }

    /// Start-up waits out a lock held past the busy timeout, and gives up at once on a cause
    /// that does not pass.
    func testWaitingOutRetriesWhatPassesOnly() throws {
        var attempts = 0
        let value = try StorageFailure.waitingOut(report: { _, cause, _ in XCTAssertEqual(cause, .busy) }) { () throws -> Int in
            attempts += 1
            if attempts < 3 { throw DatabaseError(resultCode: .SQLITE_BUSY) }
            return 7
        }
        XCTAssertEqual(value, 7)
        XCTAssertEqual(attempts, 3)
        attempts = 0
        XCTAssertThrowsError(try StorageFailure.waitingOut(report: { _, _, _ in }) { () throws -> Int in
            attempts += 1
            throw DatabaseError(resultCode: .SQLITE_NOTADB)
        })
        XCTAssertEqual(attempts, 1)
        XCTAssertThrowsError(try StorageFailure.waitingOut(stopRequested: { attempts > 0 }, report: { _, _, _ in }) { () throws -> Int in
            attempts += 1
            throw DatabaseError(resultCode: .SQLITE_BUSY)
        }) { XCTAssertTrue($0 is StorageFailure.Stopped, "\($0)") }
    }

    /// Ledgers opened at once on a new file, each on its own connection as processes would:
    /// the migrations are serialised, and every open succeeds.
    func testConcurrentOpensOfANewLedgerAllSucceed() throws {
        for round in 0..<5 {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-race-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let path = dir.appendingPathComponent("ledger.sqlite").path
            let lock = NSLock()
            nonisolated(unsafe) var failures: [String] = []
            DispatchQueue.concurrentPerform(iterations: 8) { _ in
                do { _ = try Ledger(path: path) } catch { lock.withLock { failures.append("\(error)") } }
            }
            XCTAssertEqual(lock.withLock { failures }, [], "round \(round)")
            XCTAssertEqual(try Ledger.verify(path: path), [])
        }
    }
}
