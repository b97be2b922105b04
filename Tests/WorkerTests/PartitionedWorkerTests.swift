import Foundation
import JobWire
import Ledger
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
        let letter = try XCTUnwrap(try h.deadLetters().last)
        XCTAssertEqual(letter.errorCode, "wrong_partition")
        XCTAssertEqual(try h.redis.send("EXISTS", "\(base.keys.prefix):jobs").int, 0, "nothing reads or writes the untagged queue")
        XCTAssertEqual(try h.redis.get(keys.lease).map { String(decoding: $0, as: UTF8.self) }, config.workerId)
        try await worker.stop()
        let ledger = try Ledger(path: h.databasePath)
        XCTAssertFalse(try ledger.read(.balance(userId: "bob")).success, "bob's job was never applied here")
    }
}
