import Foundation
import JobWire
import Ledger
import LedgerModel
import Redis
import Worker
import XCTest

/// A worker serving one partition of a split ledger: its keys carry the partition's tag, and a job
/// pushed there for another partition's user is a dead letter, never applied.
final class PartitionedWorkerTests: XCTestCase {
    func testAWorkerServesItsPartitionAndRefusesOthersUsers() async throws {
        let base = try WorkerHarness()
        let keys = QueueKeys(prefix: base.keys.prefix, partition: 3)
        let h = try WorkerHarness(keys: keys)
        var config = try h.configuration()
        config.partitioning = try Partitioning(count: 4)
        let worker = try h.startWorker(configuration: config)

        XCTAssertEqual(try h.call(["type": "open", "id": "a1", "userId": "alice"]).bool("success"), true, "alice is in partition 3")
        let wrong = try h.call(["type": "open", "id": "b1", "userId": "bob"])
        XCTAssertEqual(wrong.errorCode, "wrong_partition", "bob is in partition 0: \(wrong)")
        // The failure reply leaves just before its dead letter (the dead letter removes the job).
        try h.eventually("the dead letter follows its failure reply") { try h.redis.llen(h.keys.dead) == 1 }
        let letter = try XCTUnwrap(try h.deadLetters().last)
        XCTAssertEqual(letter.errorCode, "wrong_partition")
        XCTAssertEqual(try h.redis.send("EXISTS", "\(base.keys.prefix):jobs").int, 0, "nothing reads or writes the untagged queue")
        XCTAssertEqual(leaseWorkerId(try h.redis.get(keys.lease)), config.workerId)
        try await worker.stop()
        let ledger = try Ledger(path: h.databasePath)
        XCTAssertFalse(try ledger.read(.balance(userId: "bob")).success, "bob's job was never applied here")
    }

    /// The real executable with `TOKENLEDGER_PARTITION_COUNT=4`: one loop, ledger file and lease per
    /// partition; jobs routed by the contract's function; the CLI reads and verifies every file; a
    /// worker started with another count refuses the files.
    func testOneProcessServesEveryPartitionWithItsOwnLedgerFile() throws {
        let h = try WorkerHarness()
        let env = ["TOKENLEDGER_PARTITION_COUNT": "4"]
        let worker = try WorkerProcess(h, workerId: "split", environment: env)
        let subscriber = try RedisSubscriber(url: h.redisURL)
        try subscriber.subscribe([h.keys.balance])
        let four = try Partitioning(count: 4)
        for user in ["alice", "bob", "carol", "dave"] {
            let keys = QueueKeys(prefix: h.keys.prefix, partition: four.partition(of: user))
            let reply = h.replyKey()
            try h.redis.lpush(keys.jobs, #"{"type":"open","id":"o-\#(user)","userId":"\#(user)","replyTo":"\#(reply)"}"#)
            XCTAssertEqual(try h.reply(reply).bool("success"), true, "\(user): \(worker.log)")
        }
        let message = try XCTUnwrap(try subscriber.receive(timeout: 5))
        let object = try JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any]
        XCTAssertEqual(object?.int("partition"), 3, "alice's invalidation names her partition: \(message.text)")
        XCTAssertEqual(worker.terminate(), 0, worker.log)

        let stem = h.directory.appendingPathComponent("ledger").path
        for k in 0..<4 { XCTAssertTrue(FileManager.default.fileExists(atPath: "\(stem)-p\(k).sqlite"), "partition \(k)'s file") }
        let (status, output) = try runTokenLedger(["balance", "alice", "--database", h.databasePath, "--partition-count", "4"])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains(#""tokensBalance":100"#), output)
        let (verified, report) = try runTokenLedger(["verify", "--database", h.databasePath, "--partition-count", "4"])
        XCTAssertEqual(verified, 0, report)
        XCTAssertEqual(report.components(separatedBy: "no violation").count - 1, 4, report)

        let wrongCount = try WorkerProcess(h, workerId: "resplit", environment: ["TOKENLEDGER_PARTITION_COUNT": "2"])
        wrongCount.process.waitUntilExit()
        XCTAssertNotEqual(wrongCount.process.terminationStatus, 0)
        XCTAssertTrue(wrongCount.log.contains("partition count is fixed"), wrongCount.log)
    }
}
