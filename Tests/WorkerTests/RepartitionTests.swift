import Foundation
import JobWire
import Ledger
import LedgerModel
import Redis
import TestSupport
import Worker
import XCTest

/// `tokenledger repartition --to M` through the real executable, real redis-server and real
/// ledger files: splits, a merge, duplicates answered from the new partitions, jobs queued and
/// unsettled moved in order, and a kill -9 at every step followed by a run that finishes.
final class RepartitionTests: XCTestCase {
    /// Users spread over every partition of 16, with a canonically equivalent pair (two users).
    static let users = (0..<20).map { "user-\($0)" } + ["\u{e9}", "e\u{301}"]

    func common(_ h: WorkerHarness, _ count: Int) -> [String] {
        ["--redis-url", h.redisURL, "--database", h.databasePath, "--prefix", h.keys.prefix, "--partition-count", "\(count)"]
    }

    func keys(_ h: WorkerHarness, _ count: Int, _ k: Int) -> QueueKeys {
        count == 1 ? h.keys : QueueKeys(prefix: h.keys.prefix, partition: k)
    }

    func queue(_ h: WorkerHarness, _ count: Int, user: String?) throws -> QueueKeys {
        keys(h, count, user.map { (try? Partitioning(count: count))?.partition(of: $0) ?? 0 } ?? 0)
    }

    /// Pushes a job on its user's queue and returns its reply key.
    @discardableResult
    func push(_ h: WorkerHarness, _ count: Int, _ job: [String: Any], replyTo: String? = nil, partition: Int? = nil) throws -> String {
        var job = job
        let key = replyTo ?? h.replyKey()
        job["replyTo"] = key
        let list = try partition.map { keys(h, count, $0) } ?? queue(h, count, user: job["userId"] as? String)
        try h.redis.lpush(list.jobs, Array(try JSONSerialization.data(withJSONObject: job)))
        return key
    }

    func call(_ h: WorkerHarness, _ count: Int, _ job: [String: Any], partition: Int? = nil) throws -> [String: Any] {
        try h.reply(try push(h, count, job, partition: partition), timeout: 30)
    }

    func startWorker(_ h: WorkerHarness, _ count: Int) throws -> WorkerProcess {
        let worker = try WorkerProcess(h, workerId: "rp\(count)-\(UUID().uuidString.prefix(4))", extraArguments: ["--partition-count", "\(count)"])
        // A failed assertion that throws must not leave the worker running past the test.
        addTeardownBlock { if worker.process.isRunning { _ = worker.terminate() } }
        return worker
    }

    /// Every kind of row for every user; returns the jobs with their first replies.
    func workload(_ h: WorkerHarness, _ count: Int, round: String) throws -> [(job: [String: Any], reply: [String: Any])] {
        var done: [(job: [String: Any], reply: [String: Any])] = []
        func run(_ job: [String: Any]) throws {
            let reply = try call(h, count, job)
            done.append((job, reply))
        }
        for (i, u) in Self.users.enumerated() {
            let p = "\(round)-\(i)"
            if round == "a" { try run(["type": "open", "id": "open-\(p)", "userId": u]) }
            try run(["type": "credit", "id": "grant-\(p)", "userId": u, "operationType": "bonus", "amount": 50, "expiresIn": 86_400,
                     "metadata": ["why": "welcome \(u)", "n": i]])
            try run(["type": "charge", "id": "charge-\(p)", "userId": u, "operation": "image_generation"])
            try run(["type": "refund", "id": "refund-\(p)", "userId": u, "refundOf": "charge-\(p)", "amount": 4])
            try run(["type": "purchase", "id": "purchase-\(p)", "userId": u, "tier": "Professional", "paymentId": "pay-\(p)"])
            try run(["type": "hold", "id": "hold-\(p)", "userId": u, "amount": 7])
            try run(["type": "hold", "id": "hold2-\(p)", "userId": u, "amount": 3])
            try run(["type": "capture", "id": "capture-\(p)", "userId": u, "holdId": "hold2-\(p)", "amount": 2])
            try run(["type": "monitor", "id": "mon-\(p)", "userId": u, "threshold": 5])
            try run(["type": "debit", "id": "big-\(p)", "userId": u, "operationType": "x", "amount": 1_000_000])
            try run(["type": "charge", "id": "unknown-op-\(p)", "userId": u, "operation": "no_such_operation"])
        }
        for (_, reply) in done where reply.bool("duplicate") != false { XCTFail("a first reply: \(reply)") }
        return done
    }

    func balances(_ h: WorkerHarness, _ count: Int) throws -> [IdentityKey: Int64] {
        var result: [IdentityKey: Int64] = [:]
        for u in Self.users { result[IdentityKey(u)] = try XCTUnwrap(try call(h, count, ["type": "balance", "userId": u]).int("tokensBalance")) }
        return result
    }

    /// Jobs queued and unsettled while the workers are stopped: per user a processing list of a
    /// dead worker (a replay of an applied job, then a new credit), then three queued jobs; one job
    /// that cannot be read, and one dead letter. Returns the ids in the order they must apply, per user.
    func queueWhileStopped(_ h: WorkerHarness, _ count: Int, round: String, applied: [(job: [String: Any], reply: [String: Any])]) throws -> [IdentityKey: [String]] {
        var order: [IdentityKey: [String]] = [:]
        for k in 0..<count {
            let keys = keys(h, count, k)
            let users = Self.users.filter { (try? Partitioning(count: count))?.partition(of: $0) == k }
            guard !users.isEmpty else { continue }
            // The processing list of a worker killed after its commit: newest at the left.
            var taken: [[UInt8]] = []
            for u in users {
                let i = Self.users.firstIndex { $0.hasSameBytes(as: u) } ?? 0
                var replayed = try XCTUnwrap(applied.first { u.hasSameBytes(as: $0.job["userId"] as? String) && ($0.job["id"] as? String)?.hasPrefix("charge-") == true }?.job)
                replayed["replyTo"] = "\(h.keys.prefix):r:replay-\(round)-\(i)"
                let fresh: [String: Any] = ["type": "credit", "id": "p-\(round)-\(i)", "userId": u, "operationType": "late", "amount": 5,
                                            "replyTo": "\(h.keys.prefix):r:p-\(round)-\(i)"]
                taken.append(Array(try JSONSerialization.data(withJSONObject: replayed)))
                taken.append(Array(try JSONSerialization.data(withJSONObject: fresh)))
                order[IdentityKey(u), default: []] += [replayed["id"] as? String ?? "", "p-\(round)-\(i)"]
            }
            let list = "gone-\(round)-\(k):7"
            _ = try h.redis.pipeline([RedisCommand("LPUSH", arguments: [keys.processing(list)] + taken.map { $0 as any RedisArgument }),
                                      RedisCommand("SADD", keys.processingLists, list)])
        }
        for (i, u) in Self.users.enumerated() {
            for (n, (type, amount)) in [("credit", 1), ("credit", 2), ("debit", 3)].enumerated() {
                let id = "q-\(round)-\(i)-\(n)"
                try push(h, count, ["type": type, "id": id, "userId": u, "operationType": "queued", "amount": amount],
                         replyTo: "\(h.keys.prefix):r:\(id)")
                order[IdentityKey(u), default: []].append(id)
            }
        }
        try h.redis.lpush(keys(h, count, 0).jobs, Array("not json \(round)".utf8))
        try h.redis.lpush(keys(h, count, count - 1).dead, Array(#"{"job":"{\"type\":\"balance\"}","error":{"code":"invalid_job","message":"no user"},"failedAt":"2026-12-01T00:00:00.000Z"}"#.utf8))
        return order
    }

    /// The job ids of each user in the order the new queues will apply them (processing lists
    /// first, then the queue; oldest at the right).
    func queuedOrder(_ h: WorkerHarness, _ count: Int) throws -> [IdentityKey: [String]] {
        var order: [IdentityKey: [String]] = [:]
        for k in 0..<count {
            let keys = keys(h, count, k)
            XCTAssertEqual(try h.redis.smembers(keys.processingLists).count, 0, "no processing list is left registered")
            for raw in try h.redis.lrange(keys.jobs, 0, -1).reversed() {
                guard let job = try? JSONSerialization.jsonObject(with: Data(raw)) as? [String: Any], let u = job["userId"] as? String else { continue }
                XCTAssertEqual((try Partitioning(count: count)).partition(of: u), k, "\(u) is on its own partition's queue")
                order[IdentityKey(u), default: []].append(job["id"] as? String ?? "")
            }
        }
        return order
    }

    func waitDrained(_ h: WorkerHarness, _ count: Int, _ worker: WorkerProcess) throws {
        try h.eventually(timeout: 120, "every new queue drained", log: worker.log) {
            for k in 0..<count {
                let keys = keys(h, count, k)
                if try h.redis.llen(keys.jobs) > 0 { return false }
                for list in try h.redis.smembers(keys.processingLists) where try h.redis.llen(keys.processing(String(decoding: list, as: UTF8.self))) > 0 {
                    return false
                }
            }
            return true
        }
    }

    func repartition(_ h: WorkerHarness, from: Int, to: Int, environment: [String: String] = [:]) throws -> (Int32, String) {
        try runTokenLedger(["repartition", "--to", "\(to)"] + common(h, from), environment: environment)
    }

    /// Resends every job applied before the move: each answers `duplicate: true` with its first
    /// result, from its user's new partition.
    func assertDuplicates(_ h: WorkerHarness, _ count: Int, _ applied: [(job: [String: Any], reply: [String: Any])],
                          ignoring: Set<String> = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let ignored = ignoring.union(["duplicate"])
        let keysOfReplies = try applied.map { try push(h, count, $0.job) }
        for (key, (job, first)) in zip(keysOfReplies, applied) {
            let again = try h.reply(key, timeout: 30)
            XCTAssertEqual(again.bool("duplicate"), true, "\(job) answered \(again)", file: file, line: line)
            let a = first.filter { !ignored.contains($0.key) }, b = again.filter { !ignored.contains($0.key) }
            XCTAssertEqual(NSDictionary(dictionary: a), NSDictionary(dictionary: b), "\(job["id"] ?? "")", file: file, line: line)
        }
    }

    func assertVerifies(_ h: WorkerHarness, _ count: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, out) = try runTokenLedger(["verify"] + common(h, count))
        XCTAssertEqual(status, 0, out, file: file, line: line)
        XCTAssertEqual(out.components(separatedBy: "no violation").count - 1, count, out, file: file, line: line)
    }

    /// The worker started with the old count refuses the new layout.
    func assertRefusesCount(_ h: WorkerHarness, _ count: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, out) = try runTokenLedger(["migrate"] + common(h, count))
        XCTAssertNotEqual(status, 0, out, file: file, line: line)
        XCTAssertTrue(out.contains("refusing"), out, file: file, line: line)
    }

    func testSplitOneToFourThenFourToSixteen() throws {
        let h = try WorkerHarness()
        var worker = try startWorker(h, 1)
        var applied = try workload(h, 1, round: "a")
        _ = try call(h, 1, ["type": "renewAll", "id": "renew-all-a"])
        try h.pushRaw(Array("broken while running".utf8))
        try h.eventually("a dead letter") { try h.redis.llen(h.keys.dead) == 1 }
        var expected = try balances(h, 1)
        XCTAssertEqual(worker.terminate(), 0, worker.log)

        for (from, to, round) in [(1, 4, "a"), (4, 16, "b")] {
            if round == "b" {
                worker = try startWorker(h, from)
                applied += try workload(h, from, round: round)
                expected = try balances(h, from)
                XCTAssertEqual(worker.terminate(), 0, worker.log)
            }
            let order = try queueWhileStopped(h, from, round: round, applied: applied)
            let (status, out) = try repartition(h, from: from, to: to)
            XCTAssertEqual(status, 0, out)
            let summary = try XCTUnwrap(out.split(separator: "\n").last.map(String.init))
            XCTAssertTrue(summary.hasPrefix("repartitioned \(from) -> \(to) partitions: moved \(Self.users.count) accounts"), summary)
            for kind in ["payments", "refund records", "holds", "grants", "monitors", "renewal runs"] {
                XCTAssertFalse(summary.contains(" 0 \(kind)"), "\(kind) moved: \(summary)")
            }
            XCTAssertTrue(summary.contains("\(Self.users.count * 5 + 1) queued or unsettled jobs"), summary)
            XCTAssertFalse(FileManager.default.fileExists(atPath: h.databasePath + ".repartition.json"), "the journal is gone")
            let files = try FileManager.default.contentsOfDirectory(atPath: h.directory.path)
            XCTAssertEqual(files.filter { $0.hasSuffix(".sqlite") }.sorted(), (0..<to).map { "ledger-p\($0).sqlite" }.sorted())
            let archive = try XCTUnwrap(files.first { $0.hasPrefix("ledger.sqlite.before-repartition-\(from)-to-\(to)-") })
            XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: h.directory.appendingPathComponent(archive).path)
                .contains(from == 1 ? "ledger.sqlite" : "ledger-p0.sqlite"), "the old files are kept")
            try assertVerifies(h, to)
            try assertRefusesCount(h, from)

            // Each user's jobs wait on its new queue in their order, the unsettled ones first.
            XCTAssertEqual(try queuedOrder(h, to), order)
            if from == 1 {
                XCTAssertEqual(try h.redis.llen(h.keys.jobs), 0, "the old queue is empty")
                XCTAssertEqual(try h.redis.smembers(h.keys.processingLists).count, 0, "no old processing list is registered")
            }
            let dead = try (0..<to).reduce(0) { $0 + (try h.redis.llen(keys(h, to, $1).dead)) }
            XCTAssertEqual(dead, from == 1 ? 2 : 4, "the dead letters moved with their users' partitions")

            worker = try startWorker(h, to)
            try waitDrained(h, to, worker)
            for (i, u) in Self.users.enumerated() {
                let replay = try h.reply("\(h.keys.prefix):r:replay-\(round)-\(i)", timeout: 30)
                XCTAssertEqual(replay.bool("duplicate"), true, "the unsettled replay is a duplicate on \(u)'s new partition: \(replay)")
                XCTAssertEqual(try h.reply("\(h.keys.prefix):r:p-\(round)-\(i)", timeout: 30).bool("duplicate"), false)
                expected[IdentityKey(u), default: 0] += 5 + 1 + 2 - 3
            }
            XCTAssertEqual(try balances(h, to), expected)
            try assertDuplicates(h, to, applied)
            XCTAssertEqual(try call(h, to, ["type": "renewAll", "id": "renew-all-a"], partition: 0).bool("duplicate"), true,
                           "a stored result of no account is found on the new partitions its old one feeds")
            XCTAssertEqual(worker.terminate(), 0, worker.log)
            try assertVerifies(h, to)
        }
    }

    /// Four partitions into one: the files merge, ids are numbered anew in time order, and every
    /// stored result still answers as a duplicate (with its entry's new id).
    func testMergeFourIntoOne() throws {
        let h = try WorkerHarness()
        let worker = try startWorker(h, 4)
        let applied = try workload(h, 4, round: "a")
        var expected = try balances(h, 4)
        XCTAssertEqual(worker.terminate(), 0, worker.log)
        let order = try queueWhileStopped(h, 4, round: "m", applied: applied)
        let (status, out) = try repartition(h, from: 4, to: 1)
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("repartitioned 4 -> 1 partitions: moved \(Self.users.count) accounts"), out)
        try assertVerifies(h, 1)
        try assertRefusesCount(h, 4)
        XCTAssertEqual(try queuedOrder(h, 1), order)
        let merged = try LedgerReader(path: h.databasePath).read(.history(userId: Self.users[0], limit: 1000, offset: 0, operationType: nil, startDate: nil, endDate: nil))
        XCTAssertTrue(merged.json.contains("welcome user-0"), "metadata kept: \(merged.json)")
        let next = try startWorker(h, 1)
        try waitDrained(h, 1, next)
        for u in Self.users { expected[IdentityKey(u), default: 0] += 5 + 1 + 2 - 3 }
        XCTAssertEqual(try balances(h, 1), expected)
        try assertDuplicates(h, 1, applied, ignoring: ["ledgerEntryId"])
        XCTAssertEqual(next.terminate(), 0, next.log)
        try assertVerifies(h, 1)
    }

    func testRefusesWhileAWorkerHoldsALease() throws {
        let h = try WorkerHarness()
        let worker = try startWorker(h, 1)
        defer { _ = worker.terminate() }
        _ = try call(h, 1, ["type": "open", "id": "o", "userId": "held"])
        let (status, out) = try repartition(h, from: 1, to: 4)
        XCTAssertNotEqual(status, 0, out)
        XCTAssertTrue(out.contains("workers are running") && out.contains(h.keys.lease), out)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: h.directory.path).filter { $0.hasSuffix(".sqlite") || $0.contains("repartition") },
                       ["ledger.sqlite"], "nothing built")
    }

    /// kill -9 at every step, then the same command again: before the switch the old ledger and
    /// queues are exactly as they were; after it, the run finishes the move; either way the end
    /// is the new layout with every account and job.
    func testKillAtEveryStepThenRunAgain() throws {
        let base = try WorkerHarness()
        let worker = try startWorker(base, 1)
        let applied = try workload(base, 1, round: "k")
        XCTAssertEqual(worker.terminate(), 0, worker.log)
        _ = try queueWhileStopped(base, 1, round: "k", applied: applied)
        let oldTotals = try LedgerRepartition.totals(path: base.databasePath)
        func lists(_ h: WorkerHarness) throws -> [String: [[UInt8]]] {
            var all: [String: [[UInt8]]] = ["jobs": try h.redis.lrange(h.keys.jobs, 0, -1), "dead": try h.redis.lrange(h.keys.dead, 0, -1)]
            for name in try h.redis.smembers(h.keys.processingLists).map({ String(decoding: $0, as: UTF8.self) }) {
                all["processing:" + name] = try h.redis.lrange(h.keys.processing(name), 0, -1)
            }
            return all
        }
        let baseLists = try lists(base)
        let ledgerFiles = ["", "-wal", "-shm"].filter { FileManager.default.fileExists(atPath: base.databasePath + $0) }

        for step in ["build", "check", "switch", "archive", "install", "queues", "finalize", "done"] {
            let h = try WorkerHarness()
            for suffix in ledgerFiles { try FileManager.default.copyItem(atPath: base.databasePath + suffix, toPath: h.databasePath + suffix) }
            for (name, items) in baseLists where !items.isEmpty {
                let key = name == "jobs" ? h.keys.jobs : name == "dead" ? h.keys.dead : h.keys.processing(String(name.dropFirst("processing:".count)))
                _ = try h.redis.send(RedisCommand("RPUSH", arguments: [key] + items.map { $0 as any RedisArgument }))
                if name.hasPrefix("processing:") { _ = try h.redis.sadd(h.keys.processingLists, String(name.dropFirst("processing:".count))) }
            }
            let before = try ledgerFiles.map { try Data(contentsOf: URL(fileURLWithPath: h.databasePath + $0)) }
            let (killed, log) = try repartition(h, from: 1, to: 4, environment: ["TOKENLEDGER_REPARTITION_CRASH_AT": step])
            XCTAssertEqual(killed, SIGKILL, "\(step): \(log)")
            let journal = FileManager.default.fileExists(atPath: h.databasePath + ".repartition.json")
            if ["build", "check"].contains(step) {
                XCTAssertFalse(journal, step)
                XCTAssertEqual(try ledgerFiles.map { try Data(contentsOf: URL(fileURLWithPath: h.databasePath + $0)) }, before, "\(step): the old ledger is untouched")
                XCTAssertEqual(try lists(h).filter { !$0.value.isEmpty }.mapValues { $0.count }, baseLists.filter { !$0.value.isEmpty }.mapValues { $0.count }, step)
                XCTAssertEqual(try lists(h), baseLists, "\(step): the old queues are untouched")
                XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: h.directory.path).contains { $0.hasPrefix("ledger-p") }, step)
            } else {
                XCTAssertTrue(journal, "\(step): switched, the journal says so")
                let (status, out) = try runTokenLedger(["migrate"] + common(h, 4))
                XCTAssertNotEqual(status, 0, "\(step): nothing starts mid-move: \(out)")
                XCTAssertTrue(out.contains("repartition of this ledger is under way"), out)
            }
            let (status, out) = try repartition(h, from: 1, to: 4)
            XCTAssertEqual(status, 0, "\(step): \(out)")
            try assertVerifies(h, 4)
            var newTotals: [IdentityKey: AccountTotals] = [:]
            for k in 0..<4 {
                let path = h.directory.appendingPathComponent("ledger-p\(k).sqlite").path
                newTotals.merge(try LedgerRepartition.totals(path: path)) { a, _ in a }
            }
            XCTAssertEqual(newTotals, oldTotals, step)
            // Every job once, none lost, none repeated, each user's in order.
            var moved: [[UInt8]] = []
            for k in 0..<4 { moved += try base.redis.lrange(QueueKeys(prefix: h.keys.prefix, partition: k).jobs, 0, -1) }
            let queued = baseLists.filter { $0.key == "jobs" || $0.key.hasPrefix("processing:") }.values.flatMap { $0 }
            XCTAssertEqual(moved.map { String(decoding: $0, as: UTF8.self) }.sorted(), queued.map { String(decoding: $0, as: UTF8.self) }.sorted(), step)
            XCTAssertEqual(try lists(h).values.flatMap { $0 }.count, 0, "\(step): the old lists are empty")
        }
    }
}
