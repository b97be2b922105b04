import XCTest
@testable import Ledger
import LedgerModel

/// The ledger's own account of where its writes spent their time (`WriteTimings`), which the
/// worker splits each batch's budget by.
final class WriteTimingsTests: XCTestCase {
    /// A batch of commands is one commit: its statements and its COMMIT (an fsync under
    /// `synchronous = FULL`) both take time; a rolled-back transaction adds nothing.
    func testACommitSplitsIntoStatementsAndCommit() throws {
        let f = try Fixture()
        let before = f.ledger.writeTimings
        _ = try f.ledger.apply([Command(jobId: "o1", operation: .open(userId: "ada")),
                                Command(jobId: "c1", operation: .charge(userId: "ada", operation: "chatgpt_message", metadata: nil))])
        let batch = f.ledger.writeTimings.since(before)
        XCTAssertEqual(batch.commits, 1)
        XCTAssertGreaterThan(batch.statementsNanoseconds, 0)
        XCTAssertGreaterThan(batch.commitNanoseconds, 0)
        XCTAssertEqual(batch.mergeNanoseconds, 0)

        // Fenced by a newer epoch: rolled back before COMMIT, so nothing is counted.
        let epoch = try f.ledger.acquireEpoch(owner: "a")
        _ = try f.ledger.acquireEpoch(owner: "b")
        let beforeFenced = f.ledger.writeTimings
        XCTAssertThrowsError(try f.ledger.apply([Command(jobId: "c2", operation: .open(userId: "bob"))], epoch: epoch))
        XCTAssertEqual(f.ledger.writeTimings.since(beforeFenced).commits, 0)
        XCTAssertEqual(f.ledger.writeTimings.since(beforeFenced).commitNanoseconds, 0)
    }

    /// A merge slice counts as merge, not as the statements of a batch.
    func testAMergeSliceIsCountedApart() throws {
        let f = try Fixture(config: LedgerConfig(mergeThresholdRows: 4, mergeSliceRows: 2))
        try f.run(.open(userId: "ada"))
        for i in 0..<2 { try f.run(.credit(userId: "ada", operationType: "bonus", amount: 1, metadata: nil), jobId: "k\(i)") }
        XCTAssertGreaterThanOrEqual(try f.ledger.unmergedRows(), 4)
        let before = f.ledger.writeTimings
        try f.ledger.maintain()
        let slice = f.ledger.writeTimings.since(before)
        XCTAssertEqual(slice.commits, 1)
        XCTAssertGreaterThan(slice.mergeNanoseconds, 0)
        XCTAssertEqual(slice.statementsNanoseconds, 0)
        XCTAssertEqual(slice.commitNanoseconds, 0)
    }

    /// Past four times the WAL threshold the writer checkpoints inside its COMMIT: that time is
    /// the checkpoint's, taken out of the COMMIT's.
    func testACheckpointInsideACommitIsItsOwn() throws {
        let f = try Fixture(config: LedgerConfig(walAutoCheckpointPages: 1))
        try f.run(.open(userId: "ada"))
        let before = f.ledger.writeTimings
        for i in 0..<20 {
            try f.run(.credit(userId: "ada", operationType: "bonus", amount: 1, metadata: nil), jobId: "k\(i)")
        }
        let writes = f.ledger.writeTimings.since(before)
        XCTAssertEqual(writes.commits, 20)
        XCTAssertGreaterThan(writes.checkpointNanoseconds, 0, "each commit passes 4 frames: the writer checkpoints")
        XCTAssertGreaterThan(writes.commitNanoseconds, 0)
    }
}
