import Foundation
import Ledger
import TestSupport
import XCTest

/// SQLite busy or failing: the batch stays in the processing list and is retried; a job that keeps
/// failing for a reason other than its content is dead-lettered after a bounded number of tries.
final class StorageFailureTests: XCTestCase {
    /// Holds SQLite's write lock on the ledger from another process (the sqlite3 shell) until closed.
    final class WriteLock {
        let process = Process()
        let input = Pipe()

        init(_ path: String) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["sqlite3", path]
            process.standardInput = input
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            input.fileHandleForWriting.write(Data("BEGIN IMMEDIATE;\nSELECT 1;\n".utf8))
            usleep(200_000)
        }

        func release() {
            input.fileHandleForWriting.write(Data("COMMIT;\n.quit\n".utf8))
            process.waitUntilExit()
        }
    }

    func testBusyLedgerIsRetriedThenPoisonedJobsAreDeadLettered() async throws {
        let h = try WorkerHarness()
        var ledgerConfig = LedgerConfig()
        ledgerConfig.busyTimeoutMilliseconds = 20
        var config = try h.configuration()
        config.maxAttempts = 4
        let worker = try h.startWorker(ledgerConfig: ledgerConfig, configuration: config)
        XCTAssertEqual(try h.call(["type": "open", "id": "s0", "userId": "ned"]).bool("success"), true)

        // A short outage: the batch waits in the processing list and succeeds on a later try.
        var lock = try WriteLock(h.databasePath)
        let key = try h.push(["type": "debit", "id": "s1", "userId": "ned", "operationType": "x", "amount": 1])
        usleep(250_000)
        XCTAssertEqual(try h.redis.llen(h.keys.jobs) + (try h.redis.llen(h.keys.processing(config.workerId))), 1, "the job is kept while the ledger is busy")
        lock.release()
        XCTAssertEqual(try h.reply(key).int("newBalance"), 99)

        // A lasting one: after maxAttempts the job is dead-lettered with the reason.
        lock = try WriteLock(h.databasePath)
        let poisoned = try h.push(["type": "debit", "id": "s2", "userId": "ned", "operationType": "x", "amount": 1])
        let failure = try h.reply(poisoned, timeout: 20)
        lock.release()
        XCTAssertEqual(failure.errorCode, "storage_error", "\(failure)")
        XCTAssertEqual(failure.string("id"), "s2")
        let letter = try XCTUnwrap(try h.deadLetters().last)
        XCTAssertEqual(letter.errorCode, "storage_error")
        XCTAssertTrue("\(letter["error"] ?? "")".contains("locked"), "the reason is kept: \(letter)")
        XCTAssertTrue(letter.string("job")?.contains(#""id":"s2""#) ?? false)
        // The worker goes on once the ledger is writable again.
        XCTAssertEqual(try h.call(["type": "debit", "id": "s3", "userId": "ned", "operationType": "x", "amount": 1]).int("newBalance"), 98)
        try await worker.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }
}
