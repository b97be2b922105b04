import Foundation
import XCTest
@testable import Ledger
import LedgerModel

final class BackupProgressTests: XCTestCase {
    /// With progress the backup goes in steps; it must still copy one snapshot: commits made
    /// between its steps are neither in the copy nor make SQLite start the copy over.
    func testASteppedBackupCopiesOneSnapshotWhileCommitsLandBetweenItsSteps() throws {
        let f = try Fixture()
        try f.run(.open(userId: "a"))
        let padding = #"{"note":"\#(String(repeating: "x", count: 200))"}"#
        for batch in 0..<40 {  // several MiB: many steps of backupPagesPerStep pages
            _ = try f.ledger.apply((0..<250).map {
                Command(jobId: "c\(batch)-\($0)", operation: .credit(userId: "a", operationType: "bonus", amount: 1, metadata: padding))
            })
        }
        let before = try f.balance("a")
        let copy = f.dir.appendingPathComponent("copy.sqlite").path
        var steps: [(copied: Int, total: Int)] = []
        var between = 0
        try Ledger.backup(from: f.path, to: copy) { copied, total in
            steps.append((copied, total))
            guard copied < total, between < 5 else { return }  // bounded: a copy that starts over still ends
            between += 1
            _ = try? f.ledger.apply([Command(jobId: "between-\(between)", operation: .credit(
                userId: "a", operationType: "bonus", amount: 1000, metadata: padding))])
        }
        XCTAssertGreaterThan(steps.count, 3, "the copy went in steps: \(steps)")
        XCTAssertEqual(steps.map(\.copied), steps.map(\.copied).sorted(), "never started over: \(steps)")
        XCTAssertEqual(Set(steps.map(\.total)).count, 1, "one size throughout: \(steps)")
        XCTAssertEqual(steps.last?.copied, steps.last?.total)
        XCTAssertEqual(try f.balance("a"), before + 1000 * Int64(between), "the commits between steps landed")
        XCTAssertEqual(try Ledger.verify(path: copy), [])
        let copied = try XCTUnwrap(json(LedgerReader(path: copy).read(.balance(userId: "a"))).int("tokensBalance"))
        XCTAssertEqual(copied, before, "the copy is the state the backup started from")
    }
}
