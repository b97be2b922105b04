import Worker
import XCTest

/// The contract's key names, with and without a partition's hash tag.
final class QueueKeysTests: XCTestCase {
    func testKeysOfAnUnpartitionedAndAPartitionedQueue() {
        let one = QueueKeys(prefix: "tokens")
        XCTAssertEqual([one.jobs, one.lease, one.processingLists, one.dead, one.events, one.processing("w:7"), one.balance, one.alerts],
                       ["tokens:jobs", "tokens:lease", "tokens:workers", "tokens:dead", "tokens:events",
                        "tokens:processing:w:7", "tokens:balance", "tokens:alerts"])
        let third = QueueKeys(prefix: "tokens", partition: 3)
        XCTAssertEqual([third.jobs, third.lease, third.processingLists, third.dead, third.events, third.processing("w:7")],
                       ["tokens:{3}:jobs", "tokens:{3}:lease", "tokens:{3}:workers", "tokens:{3}:dead", "tokens:{3}:events",
                        "tokens:{3}:processing:w:7"])
        XCTAssertEqual([third.balance, third.alerts], ["tokens:balance", "tokens:alerts"], "one channel for every partition")
        XCTAssertEqual(third.invalidationCommand, "PUBLISH")
    }

    func testShardedInvalidationsUseThePartitionsOwnChannel() {
        let third = QueueKeys(prefix: "tokens", partition: 3, invalidationChannels: .sharded)
        XCTAssertEqual([third.balance, third.alerts], ["tokens:{3}:balance", "tokens:alerts"], "alerts stay on the one channel")
        XCTAssertEqual(third.invalidationCommand, "SPUBLISH")
        XCTAssertEqual(third.jobs, "tokens:{3}:jobs", "the keys are as before")
        // An unsplit ledger has no slot of its own: it keeps the one channel (the settings refuse it).
        let one = QueueKeys(prefix: "tokens", invalidationChannels: .sharded)
        XCTAssertEqual([one.balance, one.invalidationCommand], ["tokens:balance", "PUBLISH"])
    }
}
