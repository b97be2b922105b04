import Foundation
import Ledger
import Redis
import TestSupport
import XCTest

/// Start-up and the CLI follow the loop's outage rules: a busy ledger is waited out, never a
/// reason to exit, and processes that create or migrate one ledger at once all succeed.
final class StartupTests: XCTestCase {
    typealias SQLiteShell = StorageFailureTests.SQLiteShell

    /// A config file with a short busy timeout, so that a held lock outlasts it many times over.
    func shortBusyTimeout(_ h: WorkerHarness) throws -> String {
        let path = h.directory.appendingPathComponent("busy.json").path
        try Data(#"{"busyTimeoutMilliseconds": 100}"#.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A ledger file in WAL mode whose schema is not made yet: opening it must migrate (write).
    func unmigratedLedger(_ h: WorkerHarness) throws {
        try SQLiteShell.run(h.databasePath, "PRAGMA journal_mode = WAL;\n")
        XCTAssertTrue(FileManager.default.fileExists(atPath: h.databasePath))
    }

    func testAWorkerStartedOnALockedLedgerWaitsAndThenServes() throws {
        let h = try WorkerHarness()
        try unmigratedLedger(h)
        let lock = try SQLiteShell(h.databasePath, "BEGIN EXCLUSIVE;\nCREATE TABLE operator_note (x);\n")
        let worker = try WorkerProcess(h, workerId: "late", configFile: try shortBusyTimeout(h))
        let key = try h.push(["type": "open", "id": "s0", "userId": "sam"])
        try h.eventually(timeout: 20, "the worker reports the wait", log: worker.log) { worker.log.contains("waiting") }
        usleep(1_500_000)  // many busy timeouts
        XCTAssertTrue(worker.process.isRunning, "a busy ledger is no reason to exit: \(worker.log)")
        lock.release(commit: false)
        XCTAssertEqual(try h.reply(key, timeout: 30).bool("success"), true, worker.log)
        XCTAssertEqual(worker.terminate(), 0, worker.log)
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }

    func testAStopWhileStartUpWaitsExitsZero() throws {
        let h = try WorkerHarness()
        try unmigratedLedger(h)
        let lock = try SQLiteShell(h.databasePath, "BEGIN EXCLUSIVE;\nCREATE TABLE operator_note (x);\n")
        defer { lock.release(commit: false) }
        let worker = try WorkerProcess(h, workerId: "stopped", configFile: try shortBusyTimeout(h))
        try h.eventually(timeout: 20, "the worker waits for the ledger", log: worker.log) { worker.log.contains("waiting") }
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }

    func testMigrateWaitsOutALockedLedger() throws {
        let h = try WorkerHarness()
        try unmigratedLedger(h)
        let lock = try SQLiteShell(h.databasePath, "BEGIN EXCLUSIVE;\nCREATE TABLE operator_note (x);\n")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: WorkerProcess.binary)
        process.arguments = ["migrate", "--database", h.databasePath, "--config", try shortBusyTimeout(h)]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        usleep(2_000_000)  // many busy timeouts
        XCTAssertTrue(process.isRunning, "migrate waits rather than exit")
        lock.release(commit: false)
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, output)
        XCTAssertTrue(output.contains("waiting"), "the wait is reported: \(output)")
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }

    func testConcurrentMigratesOfANewLedgerAllSucceed() throws {
        for round in 0..<3 {
            let h = try WorkerHarness()
            let processes = try (0..<10).map { _ -> (Process, Pipe) in
                let process = Process()
                process.executableURL = URL(fileURLWithPath: WorkerProcess.binary)
                process.arguments = ["migrate", "--database", h.databasePath]
                let pipe = Pipe()
                process.standardOutput = pipe
                process.standardError = pipe
                try process.run()
                return (process, pipe)
            }
            for (process, pipe) in processes {
                let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                XCTAssertEqual(process.terminationStatus, 0, "round \(round): \(output)")
            }
            XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
        }
    }

    func testTwoWorkersStartedAtOnceOnANewLedgerBothRun() throws {
        for round in 0..<3 { try twoWorkersStartedAtOnce(round) }
    }

    func twoWorkersStartedAtOnce(_ round: Int) throws {
        let h = try WorkerHarness()
        let workers = try ["a", "b"].map { try WorkerProcess(h, workerId: "twin-\(round)-\($0)") }
        let key = try h.push(["type": "open", "id": "t0", "userId": "tom"])
        XCTAssertEqual(try h.reply(key, timeout: 30).bool("success"), true, workers.map(\.log).joined())
        usleep(500_000)
        for worker in workers {
            XCTAssertTrue(worker.process.isRunning, worker.log)
            XCTAssertFalse(worker.log.contains("already exists"), worker.log)
        }
        for worker in workers { XCTAssertEqual(worker.terminate(), 0, worker.log) }
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }
}
