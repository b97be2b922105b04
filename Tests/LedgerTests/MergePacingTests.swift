import Foundation
import GRDB
import XCTest
@testable import Ledger
import LedgerModel

/// The merge between batches: in proportion to what was appended, so that no call is the whole
/// merge at once, and the tail stays bounded at any batch size.
final class MergePacingTests: XCTestCase {
    private func charges(_ n: Int, from: Int, users: Int) -> [Command] {
        (0..<n).map { i in
            Command(jobId: "c-\(from + i)", operation: .charge(userId: "u\((from + i) % users)", operation: "chatgpt_message", metadata: nil))
        }
    }

    private func openUsers(_ f: Fixture, _ users: Int) throws {
        _ = try f.ledger.apply((0..<users).map { Command(jobId: "open-\($0)", operation: .open(userId: "u\($0)")) })
        _ = try f.ledger.apply((0..<users).map {
            Command(jobId: "credit-\($0)", operation: .credit(userId: "u\($0)", operationType: "t", amount: 1_000_000, metadata: nil))
        })
    }

    /// Nobody calls `maintain`: past twice the threshold each write merges four rows per row it
    /// appended, so the write that crosses the bound leaves a merge under way instead of pausing
    /// for all of it, and the tail never passes 2.5 times the threshold (plus one write).
    func testAWritePastTheBoundMergesInProportionAndTheTailStaysBounded() throws {
        let threshold = 2_000
        let f = try Fixture(config: LedgerConfig(mergeThresholdRows: threshold, mergeSliceRows: 50))
        try openUsers(f, 20)
        var most = 0
        var mergeLeftUnderWay = 0
        var n = 0
        for _ in 0..<120 {
            _ = try f.ledger.apply(charges(100, from: n, users: 20))
            n += 100
            let (rows, merging) = try f.ledger.writer.read { _ in (f.ledger.tail.rowCount, f.ledger.tail.merge != nil) }
            most = max(most, rows)
            if rows >= threshold && merging { mergeLeftUnderWay += 1 }
        }
        XCTAssertGreaterThan(mergeLeftUnderWay, 0, "a write past the bound merged only part of the tail")
        XCTAssertLessThanOrEqual(most, threshold * 5 / 2 + 200)
        XCTAssertEqual(f.ledger.boundedMergeStatus, BoundedMergeStatus())
        XCTAssertEqual(try f.balance("u0"), 100 + 1_000_000 - 5 * 600)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    /// `maintainAfterBatch` after each batch merges twice what the batch appended, whatever the
    /// batch size: the tail stays under 1.5 times the threshold plus a batch, and the bound in
    /// `apply` is never reached.
    func testMaintenanceAfterEachBatchKeepsAheadOfLargeBatches() throws {
        let threshold = 4_000
        var config = LedgerConfig(mergeThresholdRows: threshold, mergeSliceRows: 50)
        config.mergePauseMilliseconds = 60_000  // the pacing alone decides here, not the clock
        let f = try Fixture(config: config)
        try openUsers(f, 30)
        var most = 0
        var n = 0
        var merges = 0
        for _ in 0..<20 {
            _ = try f.ledger.apply(charges(1_000, from: n, users: 30))
            n += 1_000
            let merged = try f.ledger.writer.read { _ in f.ledger.tail.mergedJobSeq }
            try f.ledger.maintainAfterBatch()
            if try f.ledger.writer.read({ _ in f.ledger.tail.mergedJobSeq }) > merged { merges += 1 }
            most = max(most, try f.ledger.unmergedRows())
        }
        XCTAssertGreaterThan(merges, 2)
        XCTAssertLessThan(most, 2 * threshold, "the bound in apply was never needed")
        XCTAssertLessThanOrEqual(most, threshold * 3 / 2 + 2 * 1_000 + 200)
        XCTAssertEqual(try f.balance("u0"), 100 + 1_000_000 - 5 * (20_000 / 30 + 1))
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    /// With a short pause the call stops after what fits (at least one slice), and the merge
    /// still completes over the following calls.
    func testAShortPauseStillMakesProgressAndTheMergeCompletes() throws {
        var config = LedgerConfig(mergeThresholdRows: 500, mergeSliceRows: 40)
        config.mergePauseMilliseconds = 1
        let f = try Fixture(config: config)
        try openUsers(f, 5)
        _ = try f.ledger.apply(charges(400, from: 0, users: 5))
        var calls = 0
        while try f.ledger.maintainAfterBatch() {
            calls += 1
            XCTAssertLessThan(calls, 10_000)
        }
        XCTAssertGreaterThan(calls, 0)
        XCTAssertEqual(try f.ledger.unmergedRows(), 0)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }
}
