import Foundation
import Ledger
import Redis
import TestSupport
import Worker
import XCTest

/// A ledger that refuses writes. An outage (a lock, a full disk, I/O errors) keeps the jobs and
/// retries them for as long as it lasts; only a job that fails alone while the ledger commits
/// other writes is poison and becomes a dead letter.
final class StorageFailureTests: XCTestCase {
    /// Runs SQL on the ledger from another process (the sqlite3 shell), as an operator or another
    /// program would; `holdingLock` keeps a write transaction open until `release()`.
    final class SQLiteShell {
        let process = Process()
        let input = Pipe()

        init(_ path: String, _ sql: String) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["sqlite3", path]
            process.standardInput = input
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            input.fileHandleForWriting.write(Data(sql.utf8))
            usleep(200_000)
        }

        static func holdingLock(_ path: String) throws -> SQLiteShell {
            try SQLiteShell(path, "BEGIN IMMEDIATE;\nSELECT 1;\n")
        }

        static func run(_ path: String, _ sql: String) throws {
            try SQLiteShell(path, sql).release(commit: false)
        }

        func release(commit: Bool = true) {
            input.fileHandleForWriting.write(Data(((commit ? "COMMIT;\n" : "") + ".quit\n").utf8))
            process.waitUntilExit()
        }
    }

    func testAnOutageKeepsTheJobsReportsNotReadyAndCarriesOn() async throws {
        let h = try WorkerHarness()
        var ledgerConfig = LedgerConfig()
        ledgerConfig.busyTimeoutMilliseconds = 20
        let health = WorkerHealth()
        let worker = try h.startWorker(ledgerConfig: ledgerConfig, health: health)
        XCTAssertEqual(try h.call(["type": "open", "id": "s0", "userId": "ned"]).bool("success"), true)

        // Locked for longer than every retry of the old design took (it dead-lettered after ~2 s).
        let lock = try SQLiteShell.holdingLock(h.databasePath)
        let first = try h.push(["type": "credit", "id": "s1", "userId": "ned", "operationType": "bonus", "amount": 5])
        let second = try h.push(["type": "debit", "id": "s2", "userId": "ned", "operationType": "x", "amount": 1])
        try h.eventually("the worker reports the ledger as failing") { health.problems.contains { $0.hasPrefix("ledger:") } }
        usleep(4_000_000)
        XCTAssertEqual(try h.jobsInProcessingLists() + (try h.redis.llen(h.keys.jobs)), 2, "the jobs are kept while the ledger is locked")
        XCTAssertEqual(try h.deadLetters().count, 0, "an outage is not poison")
        lock.release()

        XCTAssertEqual(try h.reply(first, timeout: 15).int("newBalance"), 105)
        XCTAssertEqual(try h.reply(second).int("newBalance"), 104, "applied in queue order")
        try h.eventually("ready again") { health.problems.isEmpty }
        XCTAssertEqual(try h.jobsInProcessingLists(), 0)
        try await worker.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }

    /// The reproduction from the field: a stop arrives while a batch is failing, and the lock is
    /// freed while the worker stops. Nothing may be acknowledged that was not committed.
    func testAStopDuringAFailingBatchLosesNothing() async throws {
        let h = try WorkerHarness()
        var ledgerConfig = LedgerConfig()
        ledgerConfig.busyTimeoutMilliseconds = 20
        let config = try h.configuration()
        var worker = try h.startWorker(ledgerConfig: ledgerConfig, configuration: config)
        XCTAssertEqual(try h.call(["type": "open", "id": "t0", "userId": "ann"]).bool("success"), true)
        let lock = try SQLiteShell.holdingLock(h.databasePath)
        let key = try h.push(["type": "credit", "id": "t1", "userId": "ann", "operationType": "bonus", "amount": 7])
        try h.eventually("the credit is taken") { try h.redis.llen(h.keys.jobs) == 0 }
        usleep(300_000)
        let stopping = Task { [worker] in try await worker.stop() }
        usleep(100_000)
        lock.release()
        try await stopping.value
        XCTAssertEqual(try h.jobsInProcessingLists() + (try h.redis.llen(h.keys.jobs)), 1,
                       "the uncommitted credit is still in Redis after the stop")

        worker = try h.startWorker(ledgerConfig: ledgerConfig, configuration: config)
        XCTAssertEqual(try h.reply(key, timeout: 15).int("newBalance"), 107, "applied after the restart")
        let balance = try h.call(["type": "balance", "userId": "ann"])
        XCTAssertEqual(balance.int("tokensBalance"), 107, "applied exactly once")
        try await worker.stop()
    }

    func testAJobThatFailsAloneWhileOthersCommitIsPoison() async throws {
        let h = try WorkerHarness()
        let worker = try h.startWorker()
        XCTAssertEqual(try h.call(["type": "open", "id": "p0", "userId": "ned"]).bool("success"), true)
        XCTAssertEqual(try h.call(["type": "open", "id": "p1", "userId": "amy"]).bool("success"), true)
        // A real SQLite failure that only this job meets: a trigger aborts the insert of its entry.
        try SQLiteShell.run(h.databasePath, """
            CREATE TRIGGER poison BEFORE INSERT ON entries WHEN NEW.job_id = 'bad' BEGIN SELECT RAISE(ABORT, 'injected fault'); END;

            """)
        let (bad, good, after) = (h.replyKey(), h.replyKey(), h.replyKey())
        // One LPUSH, so that the three are taken together when they fit one batch.
        try h.redis.send(RedisCommand("LPUSH", h.keys.jobs,
            #"{"type":"debit","id":"bad","userId":"ned","operationType":"x","amount":1,"replyTo":"\#(bad)"}"#,
            #"{"type":"debit","id":"good","userId":"amy","operationType":"x","amount":2,"replyTo":"\#(good)"}"#,
            #"{"type":"debit","id":"after","userId":"ned","operationType":"x","amount":3,"replyTo":"\#(after)"}"#))

        let failure = try h.reply(bad, timeout: 20)
        XCTAssertEqual(failure.errorCode, "storage_error", "\(failure)")
        XCTAssertEqual(try h.reply(good).int("newBalance"), 98, "the job beside it commits")
        XCTAssertEqual(try h.reply(after).int("newBalance"), 97, "the user's next job waits for it, then applies")
        let letter = try XCTUnwrap(try h.deadLetters().last)
        XCTAssertEqual(letter.errorCode, "storage_error")
        XCTAssertTrue("\(letter["error"] ?? "")".contains("injected fault"), "the reason is kept: \(letter)")
        XCTAssertTrue(letter.string("job")?.contains(#""id":"bad""#) ?? false)

        // Nothing was stored under its id: once the cause is mended, the same job applies.
        try SQLiteShell.run(h.databasePath, "DROP TRIGGER poison;\n")
        let again = try h.call(["type": "debit", "id": "bad", "userId": "ned", "operationType": "x", "amount": 1])
        XCTAssertEqual(again.int("newBalance"), 96)
        XCTAssertEqual(again.bool("duplicate"), false)
        try await worker.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }
}
