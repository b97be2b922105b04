import Foundation
import Ledger
import LedgerModel
import Redis
import TestSupport
import XCTest

/// Exactly-once across `kill -9`, SIGTERM, takeovers and Redis restarts, with the real executable.
final class CrashRecoveryTests: XCTestCase {
    let users = 100

    /// Enqueues opens for every user, then `count` credits of 1 spread over the users; returns
    /// how many credits each user got.
    func enqueueWork(_ h: WorkerHarness, count: Int, redis: RedisConnection? = nil, idPrefix: String = "c") throws -> [Int] {
        let redis = redis ?? h.redis
        var perUser = [Int](repeating: 0, count: users)
        var commands = (0..<users).map { RedisCommand("LPUSH", h.keys.jobs, #"{"type":"open","id":"open-\#($0)","userId":"user-\#($0)"}"#) }
        for i in 0..<count {
            let user = (i * 7919) % users
            perUser[user] += 1
            commands.append(RedisCommand("LPUSH", h.keys.jobs,
                                         #"{"type":"credit","id":"\#(idPrefix)-\#(i)","userId":"user-\#(user)","operationType":"bonus","amount":1}"#))
        }
        for chunk in stride(from: 0, to: commands.count, by: 5000) {
            _ = try redis.pipeline(commands[chunk..<min(chunk + 5000, commands.count)])
        }
        return perUser
    }

    /// Every credit applied exactly once: balances, entry count, and a clean `verify`.
    func assertExactlyOnce(_ h: WorkerHarness, perUser: [Int], file: StaticString = #filePath, line: UInt = #line) throws {
        let ledger = try Ledger(path: h.databasePath)
        var expected = 0, entries = 0
        for (user, credits) in perUser.enumerated() {
            let result = try ledger.read(.balance(userId: "user-\(user)"))
            let object = try JSONSerialization.jsonObject(with: Data(result.json.utf8)) as! [String: Any]
            XCTAssertEqual(object.int("tokensBalance"), Int64(100 + credits), "user-\(user)", file: file, line: line)
            // One entry for the open's grant and one per credit: none lost, none applied twice.
            let history = try ledger.read(.history(userId: "user-\(user)", limit: 1, offset: 0, operationType: nil, startDate: nil, endDate: nil))
            let total = (try JSONSerialization.jsonObject(with: Data(history.json.utf8)) as! [String: Any]).int("total")
            XCTAssertEqual(total, Int64(1 + credits), "entries of user-\(user)", file: file, line: line)
            expected += 1 + credits
            entries += Int(total ?? 0)
        }
        XCTAssertEqual(entries, expected, "entries in the whole ledger", file: file, line: line)
        XCTAssertEqual(expected, perUser.count + perUser.reduce(0, +), file: file, line: line)
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [], file: file, line: line)
        let (status, output) = try runTokenLedger(["verify", "--database", h.databasePath])
        XCTAssertEqual(status, 0, output, file: file, line: line)
    }

    func testKillNineDuringATwentyThousandJobRun() throws {
        let h = try WorkerHarness()
        let perUser = try enqueueWork(h, count: 20_000)
        var kills = 0
        for round in 0..<30 {
            let worker = try WorkerProcess(h, workerId: "crashy-\(round)")
            usleep(useconds_t.random(in: 150_000...400_000))
            if try h.redis.llen(h.keys.jobs) == 0 {
                _ = worker.terminate()
                break
            }
            worker.kill9()
            kills += 1
        }
        XCTAssertGreaterThanOrEqual(kills, 3, "the run was interrupted several times")
        let last = try WorkerProcess(h, workerId: "finisher")
        try h.waitUntilDrained()
        XCTAssertEqual(last.terminate(), 0, last.log)
        try assertExactlyOnce(h, perUser: perUser)
    }

    func testSigtermFinishesTheBatchInHandAndExitsZero() throws {
        let h = try WorkerHarness()
        let perUser = try enqueueWork(h, count: 5_000)
        let worker = try WorkerProcess(h, workerId: "polite")
        try h.eventually("work started") { try h.redis.llen(h.keys.jobs) < 5_000 }
        XCTAssertEqual(worker.terminate(), 0, worker.log)
        XCTAssertNil(try h.redis.get(h.keys.lease), "the lease is released at once")
        let left = try h.redis.smembers(h.keys.processingLists).map { String(decoding: $0, as: UTF8.self) }.filter { $0.hasPrefix("polite:") }
        XCTAssertEqual(try left.reduce(0) { $0 + (try h.redis.llen(h.keys.processing($1))) }, 0,
                       "the batch in hand and the one taken ahead were finished: \(left)")
        let again = try WorkerProcess(h, workerId: "polite-2")
        try h.waitUntilDrained()
        XCTAssertEqual(again.terminate(), 0)
        try assertExactlyOnce(h, perUser: perUser)
    }

    /// From the moment the process catches SIGTERM (its first instruction in `main`) a stop is a
    /// graceful one, even while it is still opening the ledger and connecting.
    func testSigtermWhileStartingStillExitsZero() throws {
        let h = try WorkerHarness()
        for delay in [0, 5_000, 20_000, 60_000] {
            let worker = try WorkerProcess(h, workerId: "early-\(delay)")
            try h.eventually("SIGTERM caught") { worker.catchesSIGTERM }
            usleep(useconds_t(delay))
            XCTAssertEqual(worker.terminate(), 0, "SIGTERM \(delay) µs after the handler: \(worker.log)")
        }
    }

    func testStandbyTakesOverFromAKilledActiveWorker() throws {
        let h = try WorkerHarness()
        let config = h.directory.appendingPathComponent("config.json").path
        try Data(#"{"leaseSeconds": 2}"#.utf8).write(to: URL(fileURLWithPath: config))
        let active = try WorkerProcess(h, workerId: "active", configFile: config)
        try h.eventually("active holds the lease") { leaseWorkerId(try h.redis.get(h.keys.lease)) == "active" }
        let standby = try WorkerProcess(h, workerId: "standby", configFile: config)
        let perUser = try enqueueWork(h, count: 3_000)
        usleep(300_000)
        XCTAssertEqual(leaseWorkerId(try h.redis.get(h.keys.lease)), "active", "the second worker stands by")
        active.kill9()
        let killedAt = Date()
        try h.eventually(timeout: 10, "standby takes over") { leaseWorkerId(try h.redis.get(h.keys.lease)) == "standby" }
        XCTAssertLessThan(Date().timeIntervalSince(killedAt), 4, "within seconds of the active worker's death")
        try h.waitUntilDrained()
        XCTAssertEqual(standby.terminate(), 0, standby.log)
        try assertExactlyOnce(h, perUser: perUser)
        let epoch = try Ledger(path: h.databasePath).currentEpoch()
        XCTAssertEqual(epoch?.owner, "standby")
        XCTAssertGreaterThanOrEqual(epoch?.epoch ?? 0, 2, "each takeover records a higher epoch")
    }

    func testWorkerStartedWhileRedisIsDownWaitsAndThenServes() throws {
        let server = try RedisServerProcess()
        let h = try WorkerHarness(redisURL: server.url)
        server.stop()
        let worker = try WorkerProcess(h, workerId: "patient")
        // Long enough for one connection attempt with its backoff (about 3 s) to give up.
        usleep(4_000_000)
        XCTAssertTrue(worker.process.isRunning, "no Redis is no reason to exit")
        try server.start()
        let redis = try RedisConnection(url: server.url)
        try redis.lpush(h.keys.jobs, #"{"type":"open","id":"p1","userId":"pat","replyTo":"r"}"#)
        let reply = try redis.send(RedisCommand("BRPOP", "r", 15), blockingFor: 15)
        XCTAssertTrue(reply.array?.last?.string?.contains(#""success":true"#) ?? false, "\(reply) \(worker.log)")
        XCTAssertEqual(worker.terminate(), 0, worker.log)
        XCTAssertTrue(worker.log.contains("redis unavailable"), "the outage was logged: \(worker.log)")
    }

    func testRedisRestartedMidRun() throws {
        let server = try RedisServerProcess(extraArguments: ["--appendonly", "yes", "--appendfsync", "always"])
        let h = try WorkerHarness(redisURL: server.url)
        let perUser = try enqueueWork(h, count: 10_000)
        let worker = try WorkerProcess(h, workerId: "survivor")
        try h.eventually("work started") { try h.redis.llen(h.keys.jobs) < 10_000 }
        XCTAssertGreaterThan(try h.redis.llen(h.keys.jobs), 0, "Redis restarts mid-run, not after it")
        try server.restart()
        usleep(200_000)
        let redis = try RedisConnection(url: server.url)
        try h.waitUntilDrained(redis: redis, log: worker.log)
        XCTAssertEqual(worker.terminate(), 0, worker.log)
        XCTAssertTrue(worker.log.contains("redis unavailable") || worker.log.contains("redis link broke"),
                      "the outage was logged: \(worker.log)")
        try assertExactlyOnce(h, perUser: perUser)
    }
}
