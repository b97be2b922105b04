import Foundation
import Ledger
import Redis
import TestSupport
import Worker
import XCTest

/// A ledger that refuses writes. An outage (a lock, a full disk, I/O errors) keeps the jobs and
/// retries them for as long as it lasts, whatever else commits meanwhile; only a job whose own
/// statements fail (a trigger's RAISE here) is poison and becomes a dead letter.
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

    /// The ledger's filesystem full for a few seconds (a small tmpfs, nearly filled: a one-page
    /// write may still fit, a batch does not): no valid job becomes a dead letter, and each is
    /// applied once, in push order, once there is room again.
    func testAFullDiskIsNeverPoison() async throws {
        let h = try WorkerHarness()
        guard Self.mountTmpfs(at: h.directory.path, size: "6m") else { throw XCTSkip("mounting a tmpfs is not permitted here") }
        defer { Self.unmount(h.directory.path) }
        var ledgerConfig = LedgerConfig()
        ledgerConfig.busyTimeoutMilliseconds = 20
        let health = WorkerHealth()
        let worker = try h.startWorker(ledgerConfig: ledgerConfig, health: health)
        XCTAssertEqual(try h.call(["type": "open", "id": "f0", "userId": "fay"]).bool("success"), true)
        XCTAssertEqual(try h.call(["type": "open", "id": "g0", "userId": "gus"]).bool("success"), true)

        let filler = h.directory.appendingPathComponent("filler").path
        try Self.fill(filler, leavingKiB: 16)
        var keys: [String] = []
        for n in 1...12 {
            let user = n % 3 == 0 ? "gus" : "fay"
            keys.append(try h.push(["type": "credit", "id": "f\(n)", "userId": user, "operationType": "bonus", "amount": n]))
        }
        try h.eventually("the worker reports the ledger as failing") { health.problems.contains { $0.hasPrefix("ledger:") } }
        usleep(4_000_000)  // longer than any strike rule of the old design took (about 2 s)
        XCTAssertEqual(try h.deadLetters().count, 0, "a full disk is not poison")
        try FileManager.default.removeItem(atPath: filler)

        var balances = ["fay": Int64(100), "gus": Int64(100)]
        var lastEntry: Int64 = 0
        for (index, key) in keys.enumerated() {
            let n = index + 1
            let user = n % 3 == 0 ? "gus" : "fay"
            let reply = try h.reply(key, timeout: 30)
            balances[user, default: 0] += Int64(n)
            XCTAssertEqual(reply.bool("success"), true, "f\(n): \(reply)")
            XCTAssertEqual(reply.int("newBalance"), balances[user], "f\(n) applied once, in order")
            let entry = try XCTUnwrap(reply.int("ledgerEntryId"))
            XCTAssertGreaterThan(entry, lastEntry, "f\(n) after the one pushed before it")
            lastEntry = entry
        }
        XCTAssertEqual(try h.deadLetters().count, 0)
        try await worker.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }

    /// Another process takes the write lock for 0.35 s, frees it briefly, and again, while
    /// credits arrive (batches of up to 4096): other writes commit in the gaps, yet a valid
    /// credit never goes to the dead letters, and each is applied.
    func testALockThatComesAndGoesIsNeverPoison() async throws {
        let h = try WorkerHarness()
        var ledgerConfig = LedgerConfig()
        ledgerConfig.busyTimeoutMilliseconds = 20
        let worker = try h.startWorker(ledgerConfig: ledgerConfig, configuration: try h.configuration(batchSize: 4096))
        XCTAssertEqual(try h.call(["type": "open", "id": "l0", "userId": "lea"]).bool("success"), true)

        let flapping = try SQLiteShell(h.databasePath, "")
        let running = Locked(true)
        nonisolated(unsafe) let shell = flapping.input.fileHandleForWriting
        let flapper = Thread {
            while running.value {
                shell.write(Data("BEGIN IMMEDIATE;\nSELECT 1;\n".utf8))
                usleep(350_000)
                shell.write(Data("COMMIT;\n".utf8))
                usleep(40_000)
            }
        }
        flapper.start()
        var keys: [String] = []
        for n in 1...40 {
            keys.append(try h.push(["type": "credit", "id": "l\(n)", "userId": "lea", "operationType": "bonus", "amount": 1]))
            usleep(150_000)
        }
        usleep(2_000_000)
        XCTAssertEqual(try h.deadLetters().count, 0, "a lock that comes and goes is not poison")
        running.value = false
        usleep(500_000)
        flapping.release()
        for (index, key) in keys.enumerated() {
            let reply = try h.reply(key, timeout: 30)
            XCTAssertEqual(reply.int("newBalance"), 101 + Int64(index), "l\(index + 1): \(reply)")
        }
        XCTAssertEqual(try h.deadLetters().count, 0)
        try await worker.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }

    /// The reproduction: batch size 1, the ledger locked, credits a1 then a2 (a2 taken ahead
    /// while a1 fails), the lock freed and a stop at once, while a1 waits for its next retry.
    /// Nothing newer than the unsettled a1 may commit in that term: after the restart a1's entry
    /// precedes a2's.
    func testAStopDuringAStorageFailureNeverReordersAUsersJobs() async throws {
        let h = try WorkerHarness()
        var ledgerConfig = LedgerConfig()
        ledgerConfig.busyTimeoutMilliseconds = 20
        let config = try h.configuration(batchSize: 1)
        var worker = try h.startWorker(ledgerConfig: ledgerConfig, configuration: config)
        XCTAssertEqual(try h.call(["type": "open", "id": "o0", "userId": "ann"]).bool("success"), true)
        let lock = try SQLiteShell.holdingLock(h.databasePath)
        let (first, second) = (h.replyKey(), h.replyKey())
        // One LPUSH, so that a2 is waiting when a1 is taken and is taken ahead.
        try h.redis.send(RedisCommand("LPUSH", h.keys.jobs,
            #"{"type":"credit","id":"a1","userId":"ann","operationType":"bonus","amount":7,"replyTo":"\#(first)"}"#,
            #"{"type":"credit","id":"a2","userId":"ann","operationType":"bonus","amount":3,"replyTo":"\#(second)"}"#))
        try h.eventually("both are taken") { try h.redis.llen(h.keys.jobs) == 0 }
        usleep(3_000_000)  // a1 fails a few times; its retries are now about a second apart
        lock.release()
        try await worker.stop()

        worker = try h.startWorker(ledgerConfig: ledgerConfig, configuration: config)
        let a1 = try h.reply(first, timeout: 15)
        let a2 = try h.reply(second, timeout: 15)
        let (e1, e2) = (try XCTUnwrap(a1.int("ledgerEntryId")), try XCTUnwrap(a2.int("ledgerEntryId")))
        XCTAssertLessThan(e1, e2, "a1's entry precedes a2's: \(a1) \(a2)")
        XCTAssertEqual(a1.int("newBalance"), 107)
        XCTAssertEqual(a2.int("newBalance"), 110)
        try await worker.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }

    // MARK: A small filesystem

    static func mountTmpfs(at path: String, size: String) -> Bool {
        run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size),mode=0700", "tmpfs", path]) == 0
    }

    static func unmount(_ path: String) {
        _ = run("/bin/umount", ["-l", path])
    }

    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Writes `path` until the filesystem is full, then gives back `leavingKiB`.
    static func fill(_ path: String, leavingKiB: Int) throws {
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 4096)
        var written: off_t = 0
        while true {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            written += off_t(n)
        }
        XCTAssertGreaterThan(written, 0)
        _ = ftruncate(fd, max(0, written - off_t(leavingKiB * 1024)))
    }
}

/// A value shared with a helper thread.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
