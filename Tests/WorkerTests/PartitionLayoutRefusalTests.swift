import Foundation
import Redis
import TestSupport
import Worker
import XCTest

/// A worker started with a partition count other than its ledger's (or its queue's) refuses to
/// start, says why and creates nothing: otherwise it would begin empty ledgers beside the old.
final class PartitionLayoutRefusalTests: XCTestCase {
    func common(_ h: WorkerHarness) -> [String] {
        ["--redis-url", h.redisURL, "--database", h.databasePath, "--prefix", h.keys.prefix]
    }

    /// Runs `tokenledger worker` and returns its exit status and output once it exits; a worker
    /// that starts serving instead is stopped, and the test fails.
    func startWorker(_ h: WorkerHarness, count: Int, file: StaticString = #filePath, line: UInt = #line) throws -> (Int32, String) {
        let logName = "refused-\(UUID().uuidString.prefix(6))"
        let worker = try WorkerProcess(h, workerId: "layout", extraArguments: ["--partition-count", "\(count)"], logName: logName)
        let deadline = Date().addingTimeInterval(30)
        while worker.process.isRunning && Date() < deadline { usleep(20_000) }
        if worker.process.isRunning {
            _ = worker.terminate()
            XCTFail("the worker started with \(count) partitions instead of refusing: \(worker.log)", file: file, line: line)
            return (0, worker.log)
        }
        return (worker.process.terminationStatus, worker.log)
    }

    func files(_ h: WorkerHarness) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: h.directory.path).filter { $0.hasSuffix(".sqlite") }.sorted()
    }

    func assertRefused(_ h: WorkerHarness, count: Int, naming: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try files(h)
        let (status, log) = try startWorker(h, count: count, file: file, line: line)
        XCTAssertNotEqual(status, 0, log, file: file, line: line)
        XCTAssertTrue(log.contains("refusing to start with \(count) partition"), log, file: file, line: line)
        XCTAssertTrue(log.contains(naming), "names \(naming): \(log)", file: file, line: line)
        XCTAssertTrue(log.contains("tokenledger repartition --to \(count)"), log, file: file, line: line)
        XCTAssertEqual(try files(h), before, "nothing created", file: file, line: line)
    }

    func testALedgerMadeUnsplitRefusesAStartWithFourPartitions() throws {
        let h = try WorkerHarness()
        let (status, out) = try runTokenLedger(["migrate"] + common(h))
        XCTAssertEqual(status, 0, out)
        XCTAssertEqual(try files(h), ["ledger.sqlite"])
        try assertRefused(h, count: 4, naming: "ledger.sqlite")
        let (again, said) = try runTokenLedger(["migrate", "--partition-count", "4"] + common(h))
        XCTAssertNotEqual(again, 0, said)
        XCTAssertTrue(said.contains("refusing to start with 4 partitions"), said)
        XCTAssertEqual(try files(h), ["ledger.sqlite"], "migrate creates nothing either")
    }

    func testALedgerMadeWithFourPartitionsRefusesOneOrTwo() throws {
        let h = try WorkerHarness()
        let (status, out) = try runTokenLedger(["migrate", "--partition-count", "4"] + common(h))
        XCTAssertEqual(status, 0, out)
        XCTAssertEqual(try files(h), (0..<4).map { "ledger-p\($0).sqlite" })
        try assertRefused(h, count: 1, naming: "ledger-p0.sqlite")
        try assertRefused(h, count: 2, naming: "ledger-p3.sqlite")
        // Only the other layout's files are named: p0 and p1 are the two-partition layout's own
        // names (and refused on their own, by the count they record).
        let (_, log) = try startWorker(h, count: 2)
        XCTAssertFalse(log.contains("ledger-p1.sqlite"), log)
    }

    func testAnUnsettledListOfAnotherLayoutRefusesTheStart() throws {
        // Jobs queued untagged, for one partition, and a start with four.
        let h = try WorkerHarness()
        try h.redis.lpush(h.keys.jobs, Array(#"{"type":"open","id":"q1","userId":"alice"}"#.utf8))
        try assertRefused(h, count: 4, naming: "\(h.keys.prefix):jobs (1 jobs)")
        XCTAssertEqual(try files(h), [])
        XCTAssertEqual(try h.redis.llen(h.keys.jobs), 1, "the job stays queued")

        // A registered processing list of the unsplit layout, the queue itself empty.
        let g = try WorkerHarness()
        _ = try g.redis.pipeline([RedisCommand("LPUSH", g.keys.processing("old:1"), #"{"type":"open","id":"q2","userId":"bob"}"#),
                                  RedisCommand("SADD", g.keys.processingLists, "old:1")])
        try assertRefused(g, count: 4, naming: g.keys.processing("old:1"))

        // Tagged lists of a four-partition layout, and a start with one (or two: partition 3's queue).
        let t = try WorkerHarness()
        try t.redis.lpush(QueueKeys(prefix: t.keys.prefix, partition: 3).jobs, Array(#"{"type":"open","id":"q3","userId":"alice"}"#.utf8))
        try assertRefused(t, count: 1, naming: "\(t.keys.prefix):{3}:jobs")
        try assertRefused(t, count: 2, naming: "\(t.keys.prefix):{3}:jobs")
        XCTAssertEqual(try files(t), [])
    }

    func testAStartOnItsOwnLayoutServes() throws {
        let h = try WorkerHarness()
        try h.redis.lpush(QueueKeys(prefix: h.keys.prefix, partition: 1).jobs, Array(#"{"type":"balance","userId":"x"}"#.utf8))
        let worker = try WorkerProcess(h, workerId: "own", extraArguments: ["--partition-count", "4"])
        try h.eventually(timeout: 30, "the worker serves its own layout", log: worker.log) {
            try FileManager.default.contentsOfDirectory(atPath: h.directory.path).filter { $0.hasSuffix(".sqlite") }.count == 4
                && (try h.redis.llen(QueueKeys(prefix: h.keys.prefix, partition: 1).jobs)) == 0
        }
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }
}
