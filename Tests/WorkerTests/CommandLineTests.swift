import Foundation
import Ledger
import LedgerModel
import Redis
import TestSupport
import XCTest

/// The `tokenledger` subcommands as an operator runs them.
final class CommandLineTests: XCTestCase {
    func common(_ h: WorkerHarness) -> [String] {
        ["--redis-url", h.redisURL, "--database", h.databasePath, "--prefix", h.keys.prefix]
    }

    func testEnqueueQueriesRenewAndDeadLetters() throws {
        let h = try WorkerHarness()
        let worker = try WorkerProcess(h, workerId: "cli")
        defer { _ = worker.terminate() }
        var (status, out) = try runTokenLedger(["enqueue", #"{"type":"open","id":"c1","userId":"jo"}"#, "--wait"] + common(h))
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains(#""newBalance":100"#), out)
        (status, out) = try runTokenLedger(["enqueue", #"{"type":"charge","id":"c2","userId":"jo","operation":"image_generation"}"#] + common(h))
        XCTAssertEqual(status, 0, out)
        try h.eventually("charge applied") { try Ledger(path: h.databasePath).read(.balance(userId: "jo")).json.contains(#""tokensBalance":90"#) }

        (status, out) = try runTokenLedger(["balance", "jo"] + common(h))
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains(#""tokensBalance":90"#), out)
        (status, out) = try runTokenLedger(["history", "jo", "--limit", "1"] + common(h))
        XCTAssertTrue(out.contains(#""operationType":"image_generation""#) && out.contains(#""total":2"#), out)
        (status, out) = try runTokenLedger(["stats", "jo", "--start", "2000-01-01", "--end", "2100-01-01T00:00:00Z"] + common(h))
        XCTAssertTrue(out.contains(#""totalSpent":10"#), out)
        (status, out) = try runTokenLedger(["eligibility", "jo"] + common(h))
        XCTAssertTrue(out.contains(#""eligible":false"#), out)
        (status, out) = try runTokenLedger(["balance", "nobody"] + common(h))
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(out.contains("user_not_found"), out)
        let missing = h.directory.appendingPathComponent("typo.sqlite").path
        (status, out) = try runTokenLedger(["balance", "jo", "--database", missing])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(out.contains("no ledger at"), out)
        XCTAssertFalse(FileManager.default.fileExists(atPath: missing), "a query never creates a ledger")

        (status, out) = try runTokenLedger(["renew", "--all", "--dry-run"] + common(h))
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains(#""totalProcessed":0"#), out)
        (status, out) = try runTokenLedger(["renew", "jo"] + common(h))
        XCTAssertTrue(out.contains("not_eligible"), out)

        try h.pushRaw(Array(#"{"type":"open","id":"c3"}"#.utf8))
        try h.eventually("dead letter") { try h.redis.llen(h.keys.dead) == 1 }
        (status, out) = try runTokenLedger(["dead-letters", "list"] + common(h))
        XCTAssertTrue(out.contains("userId") && out.contains("invalid_job"), out)
        (status, out) = try runTokenLedger(["dead-letters", "requeue", "--count", "5"] + common(h))
        XCTAssertTrue(out.contains("requeued 1"), out)
        try h.eventually("dead-lettered again, since it is still invalid") { try h.redis.llen(h.keys.dead) == 1 }
    }

    /// Queries, verify and backup open the ledger read-only: with a WAL left by a killed worker,
    /// no byte of the ledger or its WAL changes (a read-write open would migrate, start a
    /// checkpointer, and on close checkpoint the WAL into the file and delete it).
    func testQueriesLeaveTheLedgerFileAsItIs() throws {
        let h = try WorkerHarness()
        let worker = try WorkerProcess(h, workerId: "ro")
        _ = try h.call(["type": "open", "id": "r0", "userId": "ro"])
        for i in 1...20 { try h.push(["type": "credit", "id": "r\(i)", "userId": "ro", "operationType": "x", "amount": 1]) }
        XCTAssertEqual(try h.call(["type": "balance", "userId": "ro"]).int("tokensBalance"), 120)
        worker.kill9()  // no close, so no checkpoint: the WAL stays as the worker left it

        let wal = h.databasePath + "-wal"
        func snapshot() throws -> (main: Data, mtime: Date?, wal: Data?) {
            (try Data(contentsOf: URL(fileURLWithPath: h.databasePath)),
             try FileManager.default.attributesOfItem(atPath: h.databasePath)[.modificationDate] as? Date,
             FileManager.default.fileExists(atPath: wal) ? try Data(contentsOf: URL(fileURLWithPath: wal)) : nil)
        }
        let before = try snapshot()
        XCTAssertGreaterThan(before.wal?.count ?? 0, 0, "the killed worker left frames in its WAL")
        let copy = h.directory.appendingPathComponent("ro-copy.sqlite").path
        for arguments in [["balance", "ro"], ["history", "ro", "--limit", "3"], ["stats", "ro", "--start", "2000-01-01", "--end", "2100-01-01"],
                          ["eligibility", "ro"], ["verify"], ["backup", copy]] {
            let (status, out) = try runTokenLedger(arguments + ["--database", h.databasePath])
            XCTAssertEqual(status, 0, "\(arguments): \(out)")
            if arguments[0] == "balance" { XCTAssertTrue(out.contains(#""tokensBalance":120"#), out) }
        }
        let after = try snapshot()
        XCTAssertTrue(after.main == before.main, "the ledger file's bytes did not change")
        XCTAssertEqual(after.mtime, before.mtime)
        XCTAssertTrue(after.wal == before.wal, "the WAL was neither checkpointed nor removed")
        XCTAssertEqual(try Ledger.verify(path: copy), [])
    }

    func testVerifyMigrateAndBackupUnderLoad() throws {
        let h = try WorkerHarness()
        var (status, out) = try runTokenLedger(["migrate"] + common(h))
        XCTAssertEqual(status, 0, out)
        let mode = try FileManager.default.attributesOfItem(atPath: h.databasePath)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600, "the ledger file is private")

        let worker = try WorkerProcess(h, workerId: "busy")
        defer { _ = worker.terminate() }
        _ = try h.call(["type": "open", "id": "b0", "userId": "kim"])
        var commands: [RedisCommand] = []
        for i in 0..<20_000 {
            commands.append(RedisCommand("LPUSH", h.keys.jobs, #"{"type":"credit","id":"b\#(i + 1)","userId":"kim","operationType":"x","amount":1}"#))
        }
        _ = try h.redis.pipeline(commands)
        // Back up while the worker writes.
        try h.eventually("work under way") { try h.redis.llen(h.keys.jobs) < 19_000 }
        let copy = h.directory.appendingPathComponent("backup.sqlite").path
        // Entries committed so far, read from the ledger (kim's entries are the only ones).
        func entries(_ path: String) throws -> Int64 {
            let history = try LedgerReader(path: path).read(.history(userId: "kim", limit: 1, offset: 0, operationType: nil, startDate: nil, endDate: nil))
            return try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(history.json.utf8)) as? [String: Any])?.int("total"))
        }
        let before = try entries(h.databasePath)
        (status, out) = try runTokenLedger(["backup", copy] + common(h))
        let after = try entries(h.databasePath)
        XCTAssertEqual(status, 0, out)
        XCTAssertGreaterThan(after, before, "the worker committed entries while the backup ran")
        let copied = try entries(copy)
        XCTAssertTrue((before...after).contains(copied), "the copy is one committed state of the run: \(before) <= \(copied) <= \(after)")
        XCTAssertLessThan(copied, 20_001, "the backup was taken mid-run")
        (status, out) = try runTokenLedger(["verify", "--database", copy])
        XCTAssertEqual(status, 0, "verify passes on the copy: \(out)")
        XCTAssertTrue(out.contains("no violation"), out)
        (status, out) = try runTokenLedger(["backup", copy] + common(h))
        XCTAssertNotEqual(status, 0, "an existing file is never overwritten")

        (status, out) = try runTokenLedger(["verify", "--database", h.directory.appendingPathComponent("missing.sqlite").path])
        XCTAssertNotEqual(status, 0)
    }

    func testSettingsPrecedenceAndInvalidConfig() throws {
        let h = try WorkerHarness()
        let config = h.directory.appendingPathComponent("config.json").path
        try Data(#"{"prefix": "from-file", "database": "/nonexistent/file.sqlite", "costs": {"chatgpt_message": 7}}"#.utf8).write(to: URL(fileURLWithPath: config))
        // Flags beat the environment, which beats the file.
        let worker = try WorkerProcess(h, workerId: "prec", configFile: config,
                                       environment: ["TOKENLEDGER_PREFIX": "from-env", "TOKENLEDGER_DATABASE": "/also/not/here.sqlite"])
        defer { _ = worker.terminate() }
        _ = try h.call(["type": "open", "id": "p1", "userId": "lu"])
        XCTAssertEqual(try h.call(["type": "charge", "id": "p2", "userId": "lu", "operation": "chatgpt_message"]).int("tokensAmount"), -7,
                       "costs come from the config file")

        // The environment beats the file: no flag names the database or the prefix here, the file
        // names others, and the environment's are used.
        let fromEnv = ["TOKENLEDGER_DATABASE": h.databasePath, "TOKENLEDGER_PREFIX": h.keys.prefix, "TOKENLEDGER_REDIS_URL": h.redisURL]
        var (status, out) = try runTokenLedger(["balance", "lu", "--config", config], environment: fromEnv)
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains(#""tokensBalance":93"#), out)
        (status, out) = try runTokenLedger(["enqueue", #"{"type":"balance","userId":"lu"}"#, "--wait", "--config", config], environment: fromEnv)
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains(#""tokensBalance":93"#), "the job went to the environment's prefix, which the worker serves: \(out)")
        // Without the environment, the file's database is the one read.
        (status, out) = try runTokenLedger(["balance", "lu", "--config", config])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(out.contains("/nonexistent/file.sqlite"), out)

        let bad = h.directory.appendingPathComponent("bad.json").path
        for (text, field) in [(#"{"batchSize": "many"}"#, "batchSize"), (#"{"tiers": {"Pro": {"allocation": 5}}}"#, "Gift"),
                              (#"{"renewal": {"cron": "0 25 * * *"}}"#, "hour"), (#"{"costs": {"x": -1}}"#, "costs.x"),
                              (#"{"renewal": {"timeZone": "Mars/Olympus"}}"#, "timeZone"),
                              (#"{"mergePauseMilliseconds": 0}"#, "mergePauseMilliseconds"), (#"{"mergeThresholdRows": 0}"#, "mergeThresholdRows")] {
            try Data(text.utf8).write(to: URL(fileURLWithPath: bad))
            (status, out) = try runTokenLedger(["worker", "--config", bad, "--database", h.databasePath, "--http", "off"])
            XCTAssertNotEqual(status, 0, text)
            XCTAssertTrue(out.contains(field), "\(text): \(out)")
        }
    }

    func testPasswordComesFromTheEnvironmentAndNeverReachesLogs() throws {
        let server = try RedisServerProcess(extraArguments: ["--requirepass", "hunter2-secret"])
        let h = try WorkerHarness(redisURL: server.url)
        let worker = try WorkerProcess(h, workerId: "auth", environment: ["TOKENLEDGER_REDIS_PASSWORD": "hunter2-secret"])
        var config = try RedisConfiguration(url: server.url)
        config.password = "hunter2-secret"
        let redis = try RedisConnection(configuration: config)
        try redis.lpush(h.keys.jobs, #"{"type":"open","id":"a1","userId":"max","replyTo":"r"}"#)
        let reply = try redis.send(RedisCommand("BRPOP", "r", 10), blockingFor: 10)
        XCTAssertNotNil(reply.array, worker.log)
        XCTAssertEqual(worker.terminate(), 0, worker.log)
        XCTAssertFalse(worker.log.contains("hunter2"), worker.log)
        let (_, help) = try runTokenLedger(["worker", "--help"])
        XCTAssertFalse(help.contains("--password"), "no password flag: it would show in ps")
        let (status, out) = try runTokenLedger(["balance", "x", "--redis-url", "redis://:hunter2@127.0.0.1:1/0"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(out.contains("must not carry a password"), out)
    }

    func testHelpListsEverySubcommand() throws {
        let (status, help) = try runTokenLedger(["--help"])
        XCTAssertEqual(status, 0)
        for command in ["worker", "enqueue", "balance", "history", "stats", "eligibility", "renew", "dead-letters", "verify", "migrate", "backup", "restore", "repartition"] {
            XCTAssertTrue(help.contains(command), command)
        }
        let (_, workerHelp) = try runTokenLedger(["worker", "--help"])
        for option in ["--redis-url", "--database", "--prefix", "--config", "--http", "--worker-id", "--batch-size", "--log-level"] {
            XCTAssertTrue(workerHelp.contains(option), option)
        }
    }

    /// The top-level help names every environment variable the settings read, found in the
    /// settings' own source, so a variable added later cannot be left out of it.
    func testHelpNamesEveryEnvironmentVariable() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/tokenledger")
        let pattern = try NSRegularExpression(pattern: #"env\["(TOKENLEDGER_[A-Z_]+)"\]"#)
        var names: Set<String> = []
        for file in try FileManager.default.contentsOfDirectory(atPath: sources.path) where file.hasSuffix(".swift") {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                if let r = Range(m.range(at: 1), in: text) { names.insert(String(text[r])) }
            }
        }
        XCTAssertTrue(names.isSuperset(of: ["TOKENLEDGER_PARTITION_COUNT", "TOKENLEDGER_PARTITIONS", "TOKENLEDGER_EVENTS"]), "\(names)")
        let (status, help) = try runTokenLedger(["--help"])
        XCTAssertEqual(status, 0)
        for name in names.sorted() { XCTAssertTrue(help.contains(name), "the help omits \(name)") }
    }
}
