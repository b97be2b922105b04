import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Ledger
import Redis
import TestSupport
import XCTest

/// `/metrics`, `/healthz` and `/readyz` of the real executable.
final class OperatorEndpointsTests: XCTestCase {
    func get(_ url: String) async throws -> (Int, String) { try await Self.fetch(url) }

    /// The statuses of `count` requests of `url` sent at once (0 for one that failed).
    static func statuses(of url: String, concurrently count: Int) async -> [Int] {
        await withTaskGroup(of: Int.self) { group in
            for _ in 0..<count { group.addTask { (try? await fetch(url).0) ?? 0 } }
            var statuses: [Int] = []
            for await s in group { statuses.append(s) }
            return statuses
        }
    }

    static func fetch(_ url: String, session: URLSession = .shared) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 5
        let (data, response) = try await session.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }

    /// Waits until the endpoint answers at all.
    func waitForServer(_ url: String) async throws {
        for _ in 0..<100 {
            if (try? await get(url)) != nil { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("\(url) never answered")
    }

    /// Parses Prometheus text format into `name{labels}` -> value.
    func parse(_ text: String) -> [String: Double] { Self.samples(text) }

    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    func testMetricsHealthAndReadiness() async throws {
        let server = try RedisServerProcess()
        let h = try WorkerHarness(redisURL: server.url)
        let port = TestEnvironment.freePort()
        let worker = try WorkerProcess(h, workerId: "observed", extraArguments: ["--http", "127.0.0.1:\(port)"])
        defer { _ = worker.terminate() }
        let base = "http://127.0.0.1:\(port)"
        try await waitForServer("\(base)/healthz")

        _ = try h.call(["type": "open", "id": "m1", "userId": "hal"])
        _ = try h.call(["type": "charge", "id": "m2", "userId": "hal", "operation": "chatgpt_message"])
        _ = try h.call(["type": "charge", "id": "m2", "userId": "hal", "operation": "chatgpt_message"])
        _ = try h.call(["type": "debit", "id": "m3", "userId": "hal", "operationType": "x", "amount": 10_000])
        try h.pushRaw(Array("not json".utf8))
        try h.eventually("dead letter written") { try h.redis.llen(h.keys.dead) == 1 }

        let (status, body) = try await get("\(base)/metrics")
        XCTAssertEqual(status, 200)
        let samples = parse(body)
        XCTAssertEqual(samples[#"tokenledger_jobs_total{type="charge",outcome="success"}"#], 1, body)
        XCTAssertEqual(samples[#"tokenledger_jobs_total{type="charge",outcome="duplicate"}"#], 1, body)
        XCTAssertEqual(samples[#"tokenledger_jobs_total{type="debit",outcome="refused"}"#], 1, body)
        XCTAssertEqual(samples["tokenledger_dead_letters_total"], 1, body)
        XCTAssertEqual(samples["tokenledger_lease_held"], 1, body)
        XCTAssertEqual(samples["tokenledger_ledger_ready"], 1, "a healthy ledger reads as ready from the start")
        XCTAssertNotNil(samples.keys.first { $0.hasPrefix("tokenledger_job_duration_seconds_bucket") }, "latency histograms")
        XCTAssertNotNil(samples.keys.first { $0.hasPrefix("tokenledger_batch_size") }, "batch sizes")
        XCTAssertNotNil(samples["tokenledger_renewal_runs_total"], "the start-up catch-up run is counted")

        let (healthy, _) = try await get("\(base)/healthz")
        XCTAssertEqual(healthy, 200)
        let (ready, _) = try await get("\(base)/readyz")
        XCTAssertEqual(ready, 200)

        server.stop()
        let (notReady, reason) = try await get("\(base)/readyz")
        XCTAssertEqual(notReady, 503)
        XCTAssertTrue(reason.contains("redis"), reason)
        let (stillHealthy, _) = try await get("\(base)/healthz")
        XCTAssertEqual(stillHealthy, 200, "the process still runs")

        try server.start()
        var recovered = 0
        for _ in 0..<50 {
            recovered = try await get("\(base)/readyz").0
            if recovered == 200 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTAssertEqual(recovered, 200, "ready again once Redis is back")
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }

    /// `/readyz` checks Redis and the ledger off the async threads: with Redis frozen (each check
    /// waits out its 1 s timeout), a burst of `/readyz` requests leaves `/healthz` answering at
    /// once, and the burst is answered 503 by one shared check rather than one check each.
    func testReadinessChecksLeaveTheAsyncThreadsFree() async throws {
        let server = try RedisServerProcess()
        let h = try WorkerHarness(redisURL: server.url)
        let port = TestEnvironment.freePort()
        let worker = try WorkerProcess(h, workerId: "frozen", extraArguments: ["--http", "127.0.0.1:\(port)"])
        defer { _ = worker.terminate() }
        let base = "http://127.0.0.1:\(port)"
        try await waitForServer("\(base)/healthz")
        server.pause()
        defer { server.resume() }
        let readyz = "\(base)/readyz"
        let burst = Task { [readyz] in await OperatorEndpointsTests.statuses(of: readyz, concurrently: 8) }
        try await Task.sleep(for: .milliseconds(200))
        let started = ContinuousClock.now
        // A session of its own, so that the request does not queue behind the burst's connections.
        let (healthy, _) = try await Self.fetch("\(base)/healthz", session: URLSession(configuration: .ephemeral))
        let waited = ContinuousClock.now - started
        XCTAssertEqual(healthy, 200)
        XCTAssertLessThan(waited, .milliseconds(700), "/healthz waited behind blocked readiness checks")
        let statuses = await burst.value
        XCTAssertEqual(statuses, Array(repeating: 503, count: 8), "a frozen Redis is not ready")
        server.resume()
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }

    /// The real worker with its endpoints on a free port and `config` as its config file; returns
    /// it once `/healthz` answers, with the endpoints' base URL.
    func startObserved(_ h: WorkerHarness, workerId: String, config: String) async throws -> (WorkerProcess, String) {
        let port = TestEnvironment.freePort()
        let path = h.directory.appendingPathComponent("\(workerId).json").path
        try Data(config.utf8).write(to: URL(fileURLWithPath: path))
        let worker = try WorkerProcess(h, workerId: workerId, extraArguments: ["--http", "127.0.0.1:\(port)"], configFile: path)
        let base = "http://127.0.0.1:\(port)"
        try await waitForServer("\(base)/healthz")
        return (worker, base)
    }

    /// A ledger that refuses writes (here locked by another process) is an outage: `/readyz`
    /// answers 503 naming the ledger, the metrics show it, and both recover once it answers.
    func testALockedLedgerIsNotReadyUntilItAnswers() async throws {
        let h = try WorkerHarness()
        let (worker, base) = try await startObserved(h, workerId: "blocked", config: #"{"busyTimeoutMilliseconds": 20}"#)
        defer { _ = worker.terminate() }
        XCTAssertEqual(try h.call(["type": "open", "id": "b1", "userId": "bo"]).bool("success"), true)

        let lock = try StorageFailureTests.SQLiteShell.holdingLock(h.databasePath)
        let key = try h.push(["type": "credit", "id": "b2", "userId": "bo", "operationType": "bonus", "amount": 1])
        var status = 0, reason = ""
        for _ in 0..<50 {
            (status, reason) = try await get("\(base)/readyz")
            if status == 503 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTAssertEqual(status, 503)
        XCTAssertTrue(reason.contains("ledger:"), reason)
        let samples = parse(try await get("\(base)/metrics").1)
        XCTAssertEqual(samples["tokenledger_ledger_ready"], 0)
        XCTAssertGreaterThan(samples["tokenledger_storage_errors_total"] ?? 0, 0)
        lock.release()

        XCTAssertEqual(try h.reply(key, timeout: 15).int("newBalance"), 101)
        let readyAgain = try await get("\(base)/readyz").0
        XCTAssertEqual(readyAgain, 200)
        let metricsAgain = parse(try await get("\(base)/metrics").1)
        XCTAssertEqual(metricsAgain["tokenledger_ledger_ready"], 1)
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }

    /// What used to be swallowed shows on `/metrics`: a reply Redis refused, and a WAL that grows
    /// because checkpoints cannot keep up (here a reader holds an old snapshot open).
    func testRefusedRepliesAndAGrowingWALShowOnMetrics() async throws {
        let h = try WorkerHarness()
        let (worker, base) = try await startObserved(h, workerId: "walwatch", config: #"{"walAutoCheckpointPages": 10}"#)
        defer { _ = worker.terminate() }
        XCTAssertEqual(try h.call(["type": "open", "id": "w0", "userId": "wes"]).bool("success"), true)

        try h.redis.send("SET", "\(h.keys.prefix):not-a-list", "x")
        _ = try h.push(["type": "balance", "userId": "wes"], replyTo: "\(h.keys.prefix):not-a-list")
        let reader = try StorageFailureTests.SQLiteShell(h.databasePath, "BEGIN;\nSELECT count(*) FROM accounts;\n")
        // One credit per batch (each waits for its reply), so that the WAL gets at least one commit
        // per credit however loaded the machine is (a loaded worker takes larger batches).
        for i in 0..<60 {
            _ = try h.call(["type": "credit", "id": "w\(i + 1)", "userId": "wes", "operationType": "bonus", "amount": 1], timeout: 20)
        }
        XCTAssertEqual(try h.call(["type": "balance", "userId": "wes"], timeout: 20).int("tokensBalance"), 160)
        var samples: [String: Double] = [:]
        for _ in 0..<40 {
            samples = parse(try await get("\(base)/metrics").1)
            if (samples["tokenledger_wal_frames"] ?? 0) > 40 && (samples["tokenledger_send_errors_total"] ?? 0) >= 1 { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        reader.release(commit: false)
        XCTAssertEqual(samples["tokenledger_send_errors_total"], 1, "the refused reply is counted")
        XCTAssertGreaterThan(samples["tokenledger_wal_frames"] ?? 0, 40, "the WAL held back by the reader shows")
        XCTAssertTrue(worker.log.contains("WRONGTYPE"), "and logged")
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }

    func testOperatorEndpointsCanBeTurnedOff() throws {
        let h = try WorkerHarness()
        let worker = try WorkerProcess(h, workerId: "quiet")
        XCTAssertEqual(try h.call(["type": "open", "id": "q1", "userId": "ivy"]).bool("success"), true)
        XCTAssertEqual(worker.terminate(), 0)
        XCTAssertFalse(worker.log.contains("operator endpoints listening"))
    }
}
