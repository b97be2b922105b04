import Foundation
import Ledger
import LedgerModel
import Redis
import TestSupport
@testable import Worker
import XCTest

/// `P:applied`, the recovery stream: what the acknowledgement records, how the window trims it,
/// and what a restore makes of it (the contract's "Recovery past the replica").
final class RecoveryStreamTests: XCTestCase {
    private func entries(_ h: WorkerHarness) throws -> [StreamEntry] {
        try h.redis.xrange(h.keys.applied)
    }

    private func raw(_ job: [String: Any]) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: job, options: [.sortedKeys]))
    }

    /// Pushes exact bytes and waits for their reply.
    private func call(_ h: WorkerHarness, _ job: [String: Any]) throws -> (raw: [UInt8], reply: [String: Any]) {
        var job = job
        let key = h.replyKey()
        job["replyTo"] = key
        let bytes = try raw(job)
        try h.pushRaw(bytes)
        return (bytes, try h.reply(key))
    }

    private func balance(_ ledger: Ledger, _ user: String) throws -> String {
        try ledger.read(.balance(userId: user)).json
    }

    /// Every job with an id that the worker applied, a refusal, a query with an id and a duplicate
    /// too, is on the stream with its exact bytes, in queue order; a dead letter and a query
    /// without an id are not.
    func testTheAcknowledgementRecordsEveryAppliedJobsBytesInOrder() async throws {
        let h = try WorkerHarness()
        let worker = try h.startWorker()
        let open = try call(h, ["type": "open", "id": "open-a", "userId": "a"])
        XCTAssertEqual(open.reply.bool("success"), true)
        let charge = try call(h, ["type": "charge", "id": "charge-a", "userId": "a", "operation": "chatgpt_message"])
        XCTAssertEqual(charge.reply.int("newBalance"), 95)
        let refused = try call(h, ["type": "debit", "id": "debit-a", "userId": "a", "operationType": "x", "amount": 1000])
        XCTAssertEqual((refused.reply["error"] as? [String: Any])?.string("code"), "insufficient_tokens")
        _ = try call(h, ["type": "balance", "userId": "a"])
        let query = try call(h, ["type": "balance", "id": "query-a", "userId": "a"])
        let dead = Array(#"{"type":"charge","id":"bad","userId":"a","replyTo":"x","operation":"#.utf8)  // not JSON
        try h.pushRaw(dead)
        let again = try call(h, ["type": "charge", "id": "charge-a", "userId": "a", "operation": "chatgpt_message"])
        XCTAssertEqual(again.reply.bool("duplicate"), true)
        try h.waitUntilDrained()
        try await worker.stop()

        let recorded = try entries(h)
        XCTAssertEqual(recorded.map { $0.fields.first { $0.key == Array("job".utf8) }?.value ?? [] },
                       [open.raw, charge.raw, refused.raw, query.raw, again.raw])
        XCTAssertEqual(recorded.map { $0.value("duplicate") }, [nil, nil, nil, nil, "true"])
        for entry in recorded {
            let at = try XCTUnwrap(entry.value("at").flatMap(LedgerTime.parseMilliseconds), "\(entry)")
            XCTAssertLessThan(abs(at - LedgerTime.milliseconds(Date())), 120_000)
        }
        XCTAssertEqual(try h.redis.llen(h.keys.dead), 1, "the dead letter stays on P:dead")
    }

    /// The record and the removal are one script: while Redis refuses the record (here the key
    /// holds a string), the job stays in its processing list; once it is accepted, the replay is
    /// recorded (as a duplicate) and leaves.
    func testARefusedRecordKeepsTheJobInItsList() async throws {
        let h = try WorkerHarness()
        try h.redis.send(RedisCommand("SET", h.keys.applied, "not a stream"))
        let worker = try h.startWorker()
        let first = try call(h, ["type": "open", "id": "open-a", "userId": "a"])
        XCTAssertEqual(first.reply.bool("success"), true, "the reply leaves before the acknowledgement")
        try h.eventually(timeout: 10, "the job waits in its list") { try h.jobsInProcessingLists() == 1 }
        usleep(1_000_000)
        XCTAssertEqual(try h.jobsInProcessingLists(), 1, "not acknowledged while its record is refused")
        XCTAssertEqual(try h.redis.llen(h.keys.jobs), 0)
        try h.redis.send(RedisCommand("DEL", h.keys.applied))
        try h.waitUntilDrained(timeout: 60)
        try await worker.stop()
        let recorded = try entries(h)
        XCTAssertEqual(recorded.count, 1)
        XCTAssertEqual(recorded.first?.fields.first { $0.key == Array("job".utf8) }?.value, first.raw)
        XCTAssertEqual(recorded.first?.value("duplicate"), "true", "recorded by the replay that was acknowledged")
    }

    /// The window trims whole stream nodes whose entries are older than it, by Redis's clock.
    func testTheWindowTrimsTheStream() async throws {
        let h = try WorkerHarness()
        var configuration = try h.configuration(batchSize: 50)
        configuration.recoveryWindowMilliseconds = 1000
        let worker = try h.startWorker(configuration: configuration)
        for n in 0..<300 { try h.push(["type": "open", "id": "open-\(n)", "userId": "u\(n)"]) }
        try h.waitUntilDrained()
        XCTAssertEqual(try h.redis.xlen(h.keys.applied), 300)
        usleep(1_500_000)
        _ = try call(h, ["type": "open", "id": "open-late", "userId": "late"])
        try await worker.stop()
        let left = try h.redis.xlen(h.keys.applied)
        // Redis keeps at most 100 entries a node, and trims only whole nodes (`MINID ~`).
        XCTAssertLessThanOrEqual(left, 101, "entries older than the window were trimmed")
        XCTAssertGreaterThanOrEqual(left, 1)
        let extent = try XCTUnwrap(try RecoveryStream(redis: h.redis, keys: h.keys, partitioning: .single).extent())
        XCTAssertTrue(extent.wasTrimmed)
    }

    /// A copy of the ledger taken midway stands for the replica: the stream brings it to the
    /// live ledger's balances, each job once, and a second run changes nothing.
    func testRestoreAppliesWhatTheReplicaLacksExactlyOnce() async throws {
        let h = try WorkerHarness()
        let worker = try h.startWorker()
        let users = ["a", "b", "c"]
        for user in users { _ = try call(h, ["type": "open", "id": "open-\(user)", "userId": user]) }
        _ = try call(h, ["type": "hold", "id": "hold-a", "userId": "a", "amount": 30])
        let replica = h.directory.appendingPathComponent("replica.sqlite").path
        try Ledger.backup(from: h.databasePath, to: replica)
        for round in 0..<5 {
            for user in users {
                _ = try call(h, ["type": "charge", "id": "charge-\(user)-\(round)", "userId": user, "operation": "chatgpt_message"])
            }
        }
        _ = try call(h, ["type": "capture", "id": "capture-a", "userId": "a", "holdId": "hold-a", "amount": 10])
        _ = try call(h, ["type": "credit", "id": "credit-b", "userId": "b", "operationType": "bonus", "amount": 7])
        try h.waitUntilDrained()
        try await worker.stop()

        let live = try Ledger(path: h.databasePath)
        let clock = ManualClock(Date())
        let restored = try Ledger(path: replica, clock: clock)
        let stream = RecoveryStream(redis: h.redis, keys: h.keys, partitioning: .single)
        XCTAssertEqual(try stream.continuity(of: restored), .continuous)
        let summary = try stream.apply(to: restored, clock: clock)
        XCTAssertEqual(summary.read, 3 + 1 + 15 + 2)
        XCTAssertEqual(summary.applied, 17, "\(summary)")
        XCTAssertEqual(summary.alreadyApplied, 4)
        for user in users { XCTAssertEqual(try balance(restored, user), try balance(live, user), user) }
        let second = try stream.apply(to: restored, clock: clock)
        XCTAssertEqual(second.applied, 0)
        XCTAssertEqual(try Ledger.verify(path: replica), [])
    }

    /// When the window trimmed jobs the replica lacks, the restore names the gap; when it trimmed
    /// only jobs the replica has, there is none.
    func testAGapIsFoundAndNamed() async throws {
        let h = try WorkerHarness()
        let worker = try h.startWorker()
        for n in 0..<3 { _ = try call(h, ["type": "open", "id": "open-\(n)", "userId": "u\(n)"]) }
        let replica = h.directory.appendingPathComponent("replica.sqlite").path
        try Ledger.backup(from: h.databasePath, to: replica)
        for n in 3..<6 { _ = try call(h, ["type": "open", "id": "open-\(n)", "userId": "u\(n)"]) }
        try h.waitUntilDrained()
        try await worker.stop()
        let all = try entries(h)
        XCTAssertEqual(all.count, 6)
        let stream = RecoveryStream(redis: h.redis, keys: h.keys, partitioning: .single)
        let restored = try Ledger(path: replica)

        // Trimmed up to the replica's last job: the stream still reaches it.
        try h.redis.send(RedisCommand("XTRIM", h.keys.applied, "MINID", all[2].id))
        XCTAssertEqual(try stream.continuity(of: restored), .continuous)
        // Trimmed past it: open-3 is gone, and the replica lacks it.
        try h.redis.send(RedisCommand("XTRIM", h.keys.applied, "MINID", all[4].id))
        guard case .gap(let gap) = try stream.continuity(of: restored) else { return XCTFail("no gap found") }
        XCTAssertEqual(gap.oldestKeptId, all[4].id)
        // Redis 7.0 moves max-deleted-entry-id on XDEL only; a later one may say where the trim ended.
        XCTAssertTrue(gap.lastTrimmedId == nil || gap.lastTrimmedId == all[3].id, "\(gap)")
        let last = try XCTUnwrap(try restored.lastEntryMilliseconds())
        XCTAssertEqual(gap.ledgerLastEntryMs, last)
        XCTAssertTrue(gap.description.contains("is not in it"), gap.description)
        XCTAssertTrue(gap.description.contains(all[4].id), gap.description)
        XCTAssertTrue(gap.description.contains("Jobs acknowledged between \(LedgerTime.format(ms: last)) and "), gap.description)
        // The stream gone altogether is said too.
        try h.redis.send(RedisCommand("DEL", h.keys.applied))
        XCTAssertEqual(try stream.continuity(of: restored), .noStream)
    }

    /// `tokenledger restore`: refused while a worker holds the lease and onto a file in place;
    /// `--from` a copy brings it to the live balances; a gap is named, exits 4 and applies
    /// nothing, until `--accept-gap`.
    func testTheRestoreCommand() async throws {
        let h = try WorkerHarness()
        let worker = try h.startWorker()
        for n in 0..<3 { _ = try call(h, ["type": "open", "id": "open-\(n)", "userId": "u\(n)"]) }
        let copy = h.directory.appendingPathComponent("copy.sqlite").path
        try Ledger.backup(from: h.databasePath, to: copy)
        for n in 0..<3 { _ = try call(h, ["type": "charge", "id": "charge-\(n)", "userId": "u\(n)", "operation": "chatgpt_message"]) }
        let restored = h.directory.appendingPathComponent("restored.sqlite").path
        let env = ["TOKENLEDGER_REDIS_URL": h.redisURL, "TOKENLEDGER_PREFIX": h.keys.prefix, "TOKENLEDGER_DATABASE": restored]
        var (status, out) = try runTokenLedger(["restore", "--from", copy], environment: env)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(out.contains("is held"), out)
        XCTAssertFalse(FileManager.default.fileExists(atPath: restored))
        try await worker.stop()
        try h.eventually(timeout: 10, "the lease is released") { try h.redis.get(h.keys.lease) == nil }

        (status, out) = try runTokenLedger(["restore", "--from", copy], environment: env)
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("6 jobs read from \(h.keys.applied): 3 applied, 3 already in the ledger; verify: no violation"), out)
        let live = try Ledger(path: h.databasePath)
        for n in 0..<3 { XCTAssertEqual(try balance(try Ledger(path: restored), "u\(n)"), try balance(live, "u\(n)")) }
        (status, out) = try runTokenLedger(["restore", "--from", copy], environment: env)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(out.contains("exists"), out)

        // The stream trimmed past what the copy holds: open-0..2 and charge-0 gone.
        let all = try entries(h)
        try h.redis.send(RedisCommand("XTRIM", h.keys.applied, "MINID", all[4].id))
        let second = h.directory.appendingPathComponent("second.sqlite").path
        let env2 = env.merging(["TOKENLEDGER_DATABASE": second]) { $1 }
        (status, out) = try runTokenLedger(["restore", "--from", copy], environment: env2)
        XCTAssertEqual(status, 4, out)
        XCTAssertTrue(out.contains("NOT brought up to date") && out.contains(all[4].id), out)
        XCTAssertTrue(try balance(try Ledger(path: second), "u1").contains(#""tokensBalance":100"#), "nothing applied")
        (status, out) = try runTokenLedger(["restore", "--accept-gap"], environment: env2)
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("accepting the gap") && out.contains("2 jobs read from \(h.keys.applied): 2 applied"), out)
    }
}
