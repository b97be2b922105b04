import Foundation
import JobWire
import Ledger
import LedgerModel
import Redis
import TestSupport
import XCTest

/// Who may take and apply jobs, with the real executable: a worker paused past its lease, two
/// workers racing for it, a crash between commit and acknowledgement, and a Redis that comes
/// back empty. Each user's jobs must apply once each and in queue order.
final class TakeoverTests: XCTestCase {
    /// A config file with a short lease, so takeovers happen within the test's seconds.
    func shortLease(_ h: WorkerHarness, seconds: Int = 1) throws -> String {
        let path = h.directory.appendingPathComponent("lease.json").path
        try Data(#"{"leaseSeconds": \#(seconds)}"#.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Pushes credits of 1 numbered by `seq` (in metadata) for users round-robin, in one LPUSH each.
    func pushNumberedCredits(_ h: WorkerHarness, users: Int, from: Int, count: Int) throws {
        let commands = (from..<(from + count)).map { i in
            RedisCommand("LPUSH", h.keys.jobs, #"{"type":"credit","id":"n-\#(i)","userId":"u\#(i % users)","operationType":"bonus","amount":1,"metadata":{"seq":\#(i)}}"#)
        }
        _ = try h.redis.pipeline(commands)
    }

    func openUsers(_ h: WorkerHarness, _ users: Int) throws {
        _ = try h.redis.pipeline((0..<users).map { RedisCommand("LPUSH", h.keys.jobs, #"{"type":"open","id":"o-\#($0)","userId":"u\#($0)"}"#) })
    }

    /// Each user's credits applied once each, in the order they were pushed.
    func assertOnceAndInOrder(_ h: WorkerHarness, users: Int, total: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let ledger = try Ledger(path: h.databasePath)
        var seen = 0
        for user in 0..<users {
            let page = try ledger.read(.history(userId: "u\(user)", limit: 1000, offset: 0, operationType: "bonus", startDate: nil, endDate: nil))
            let object = try JSONSerialization.jsonObject(with: Data(page.json.utf8)) as? [String: Any]
            let entries = (object?["entries"] as? [[String: Any]] ?? []).reversed()
            let seqs = entries.compactMap { ($0["metadata"] as? [String: Any])?["seq"] as? Int }
            XCTAssertEqual(seqs, seqs.sorted(), "u\(user)'s credits applied in queue order", file: file, line: line)
            XCTAssertEqual(Set(seqs).count, seqs.count, "u\(user)'s credits applied once each", file: file, line: line)
            seen += seqs.count
        }
        XCTAssertEqual(seen, total, "every credit applied", file: file, line: line)
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [], file: file, line: line)
    }

    func testAWorkerPausedPastItsLeaseTakesNothingWhenItResumes() throws {
        let h = try WorkerHarness()
        let config = try shortLease(h)
        let paused = try WorkerProcess(h, workerId: "paused", configFile: config)
        try h.eventually("the first worker is active") { leaseWorkerId(try h.redis.get(h.keys.lease)) == "paused" }
        try openUsers(h, 5)
        try h.waitUntilDrained()

        kill(paused.pid, SIGSTOP)
        let successor = try WorkerProcess(h, workerId: "successor", configFile: config)
        try h.eventually("the standby takes over") { leaseWorkerId(try h.redis.get(h.keys.lease)) == "successor" }
        // The paused worker's connections are still open, and it was blocked waiting for jobs:
        // jobs pushed now must not reach it, before or after it resumes.
        try pushNumberedCredits(h, users: 5, from: 0, count: 300)
        kill(paused.pid, SIGCONT)
        try pushNumberedCredits(h, users: 5, from: 300, count: 300)
        try h.waitUntilDrained()
        try h.eventually("the resumed worker stands by") { paused.log.contains("standing by") }

        let took = try Ledger(path: h.databasePath).currentEpoch()
        XCTAssertEqual(took?.owner, "successor", "no takeover back by the resumed worker while the successor lives")
        XCTAssertEqual(paused.terminate(), 0, paused.log)
        XCTAssertEqual(successor.terminate(), 0, successor.log)
        try assertOnceAndInOrder(h, users: 5, total: 600)
    }

    func testTwoWorkersRacingForTheLease() throws {
        let h = try WorkerHarness()
        let config = try shortLease(h)
        try openUsers(h, 10)
        try pushNumberedCredits(h, users: 10, from: 0, count: 4000)
        for round in 0..<4 {
            let a = try WorkerProcess(h, workerId: "race-\(round)-a", configFile: config)
            let b = try WorkerProcess(h, workerId: "race-\(round)-b", configFile: config)
            usleep(useconds_t.random(in: 300_000...700_000))
            // Kill whichever holds the lease; the other takes over, then both go.
            let holder = leaseWorkerId(try h.redis.get(h.keys.lease))
            (holder == "race-\(round)-a" ? a : b).kill9()
            usleep(useconds_t.random(in: 100_000...1_500_000))
            a.kill9()
            b.kill9()
        }
        let finisher = try WorkerProcess(h, workerId: "finisher", configFile: config)
        try h.waitUntilDrained()
        XCTAssertEqual(finisher.terminate(), 0, finisher.log)
        try assertOnceAndInOrder(h, users: 10, total: 4000)
    }

    /// The moment after the commit and before the acknowledgement: the ledger holds the job's
    /// result and a registered processing list still holds the job. Built here exactly as a worker
    /// killed at that instruction leaves it.
    func testACrashBetweenCommitAndAcknowledgementAnswersTheFirstResultAsADuplicate() throws {
        let h = try WorkerHarness()
        let reply = h.replyKey()
        let raws = [#"{"type":"open","id":"c1","userId":"cat","replyTo":"\#(reply)"}"#,
                    #"{"type":"charge","id":"c2","userId":"cat","operation":"image_generation","replyTo":"\#(reply)"}"#]
        let first: [CommandResult]
        do {
            let ledger = try Ledger(path: h.databasePath)
            let commands = try raws.map { try Job.decode(Array($0.utf8)).get().command }
            first = try ledger.apply(commands, epoch: try ledger.acquireEpoch(owner: "gone"))
        }
        XCTAssertEqual(first.map(\.success), [true, true])
        _ = try h.redis.pipeline([RedisCommand("LPUSH", h.keys.processing("gone:17"), raws[0], raws[1]),
                                  RedisCommand("SADD", h.keys.processingLists, "gone:17")])

        let worker = try WorkerProcess(h, workerId: "next")
        let open = try h.reply(reply)
        let charge = try h.reply(reply)
        XCTAssertEqual(open.bool("duplicate"), true)
        XCTAssertEqual(charge.bool("duplicate"), true)
        XCTAssertEqual(charge.int("newBalance"), 90, "the first result")
        let firstCharge = try JSONSerialization.jsonObject(with: Data(first[1].json.utf8)) as? [String: Any]
        XCTAssertEqual(charge.int("ledgerEntryId"), firstCharge?.int("ledgerEntryId"))
        try h.eventually("the list is settled and forgotten") { try h.redis.send("SISMEMBER", h.keys.processingLists, "gone:17").int == 0 }
        XCTAssertEqual(try h.redis.send("EXISTS", h.keys.processing("gone:17")).int, 0)
        XCTAssertEqual(try h.call(["type": "balance", "userId": "cat"]).int("tokensBalance"), 90, "applied once")
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }

    /// Redis restarted without persistence comes back empty: queued jobs, processing lists and
    /// unread replies are gone (PROTOCOL.md says so); the ledger keeps every committed job, and
    /// the worker takes the lease again and serves. A producer's resend answers `duplicate`.
    func testRedisRestartedWithoutPersistenceLosesTheQueueButNotTheLedger() throws {
        let server = try RedisServerProcess()
        let h = try WorkerHarness(redisURL: server.url)
        let worker = try WorkerProcess(h, workerId: "amnesiac")
        XCTAssertEqual(try h.call(["type": "open", "id": "a1", "userId": "amy"]).bool("success"), true)
        XCTAssertEqual(try h.call(["type": "credit", "id": "a2", "userId": "amy", "operationType": "bonus", "amount": 5]).int("newBalance"), 105)

        try server.restart()
        let redis = try RedisConnection(url: server.url)
        XCTAssertEqual(try redis.send("DBSIZE").int, 0, "the restarted server is empty")
        let charge = try h.call(["type": "charge", "id": "a3", "userId": "amy", "operation": "chatgpt_message"], timeout: 20)
        XCTAssertEqual(charge.int("newBalance"), 100, "the committed credit survived in the ledger: \(worker.log)")
        let resent = try h.call(["type": "credit", "id": "a2", "userId": "amy", "operationType": "bonus", "amount": 5])
        XCTAssertEqual(resent.bool("duplicate"), true, "a resend after the loss answers the first result")
        XCTAssertEqual(resent.int("newBalance"), 105)
        XCTAssertEqual(worker.terminate(), 0, worker.log)
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }

    /// A list of this very worker that nothing is settling (its acknowledgement was refused by a
    /// Redis still loading after a restart, say) is settled by the idle pass over leftover lists.
    func testAnIdleWorkerSettlesItsOwnLeftoverList() throws {
        let h = try WorkerHarness()
        let worker = try WorkerProcess(h, workerId: "tidy")
        XCTAssertEqual(try h.call(["type": "open", "id": "t1", "userId": "tim"]).bool("success"), true)
        let reply = h.replyKey()
        _ = try h.redis.pipeline([
            RedisCommand("LPUSH", h.keys.processing("tidy:1"), #"{"type":"credit","id":"t2","userId":"tim","operationType":"bonus","amount":3,"replyTo":"\#(reply)"}"#),
            RedisCommand("SADD", h.keys.processingLists, "tidy:1"),
        ])
        XCTAssertEqual(try h.reply(reply, timeout: 15).int("newBalance"), 103, worker.log)
        try h.eventually("the list is forgotten") { try h.redis.send("SISMEMBER", h.keys.processingLists, "tidy:1").int == 0 }
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }

    /// Twins: two processes started with one worker id (the default `hostname-pid` repeats when
    /// containers run as pid 1). One is active, the other stands by until it dies; each user's
    /// jobs apply once each and in push order.
    func testTwoProcessesWithOneWorkerIdAreNeverBothActive() throws {
        let h = try WorkerHarness()
        let config = try shortLease(h, seconds: 3)
        // The ledger made first: two processes creating one ledger at once is another matter.
        let (made, said) = try runTokenLedger(["migrate", "--database", h.databasePath])
        XCTAssertEqual(made, 0, said)
        let twins = try ["first", "second"].map { try WorkerProcess(h, workerId: "twin", configFile: config, logName: "twin-\($0)") }
        try h.eventually("one twin holds the lease") { leaseWorkerId(try h.redis.get(h.keys.lease)) == "twin" }
        try openUsers(h, 5)
        try pushNumberedCredits(h, users: 5, from: 0, count: 600)
        let holder = try h.redis.get(h.keys.lease)
        try h.waitUntilDrained(log: twins.map(\.log).joined(separator: "\n"))
        // Give a twin that wrongly counts the lease as its own time to take it over.
        usleep(1_500_000)
        let active = twins.filter { $0.log.contains("active: lease taken") }
        XCTAssertEqual(active.count, 1, "one twin active: \(twins.map(\.log).joined(separator: "\n---\n"))")
        XCTAssertEqual(try h.redis.get(h.keys.lease), holder, "the lease never changed hands")
        XCTAssertEqual(try Ledger(path: h.databasePath).currentEpoch()?.epoch, 1, "no twin fenced the other")
        // The active one dies: the other takes over and serves.
        guard let first = active.first, let other = twins.first(where: { $0 !== first }) else { return }
        first.kill9()
        try pushNumberedCredits(h, users: 5, from: 600, count: 600)
        try h.waitUntilDrained(log: other.log)
        XCTAssertTrue(other.log.contains("active: lease taken"), other.log)
        XCTAssertNotEqual(try h.redis.get(h.keys.lease), holder, "the survivor's claim is its own")
        XCTAssertEqual(other.terminate(), 0, other.log)
        try assertOnceAndInOrder(h, users: 5, total: 1200)
    }
}
