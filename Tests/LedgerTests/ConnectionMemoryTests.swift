import Foundation
import GRDB
import GRDBSQLite
import XCTest
@testable import Ledger
import LedgerModel

/// An idle ledger holds little of SQLite's memory, so that the idle ledgers of many partitions in
/// one process stay small: page caches allocate pages as they use them (not 20 at once each), and
/// the two small connections (the reader of epochs, the checkpointer) keep a few pages at most.
final class ConnectionMemoryTests: XCTestCase {
    func testAnOpenLedgerHoldsItsPagesNotSQLitesInitialAllocation() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("memory-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // The first ledger of the process sets SQLite's page allocation up, and warms what every
        // ledger shares.
        let first = try Ledger(path: directory.appendingPathComponent("first.sqlite").path)
        _ = try first.apply([Command(jobId: "j1", operation: .open(userId: "alice"))])
        XCTAssertEqual(Ledger.pageCacheAllocation, 0, "set before the process's first SQLite connection")

        let before = sqlite3_memory_used()
        let ledger = try Ledger(path: directory.appendingPathComponent("second.sqlite").path)
        _ = try ledger.apply([Command(jobId: "j1", operation: .open(userId: "alice"))])
        _ = try ledger.currentEpoch()
        try ledger.checkpoint()
        let held = sqlite3_memory_used() - before
        print("one more idle ledger holds \(held) bytes of SQLite memory")
        // 504 KiB with 20 pages allocated at once for each of its three connections' caches.
        XCTAssertLessThan(held, 360_000, "an idle ledger's three connections hold what they use")

        for (name, queue) in [("reader", ledger.reader), ("checkpointer", ledger.checkpointer.connection)] {
            XCTAssertEqual(try queue.read { db in try Int.fetchOne(db, sql: "PRAGMA cache_size") }, Ledger.smallCachePages, name)
        }
        XCTAssertEqual(try ledger.writer.read { db in try Int.fetchOne(db, sql: "PRAGMA cache_size") }, -8 * 1024,
                       "the writer keeps its configured cache")
    }
}
