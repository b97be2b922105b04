import Foundation
import GRDB
import XCTest
@testable import Ledger

/// `RawStatement`, the hot path's direct use of SQLite's statement API.
final class RawStatementTests: XCTestCase {
    /// A failed bind is an error, not a parameter silently left NULL (or left at its last value).
    func testBindFailuresThrow() throws {
        let f = try Fixture()
        try f.ledger.writer.write { db in
            let q = try RawStatement(db, "SELECT ?1")
            q.reset()
            for bind in [{ try q.bind(2, Int64(1)) }, { try q.bind(0, "x") }, { try q.bind(9, Int64?.none) }, { try q.bind(-1, blob: [1]) }] {
                XCTAssertThrowsError(try bind()) { error in
                    XCTAssertEqual((error as? DatabaseError)?.resultCode, .SQLITE_RANGE, "\(error)")
                }
            }
            try q.bind(1, "ok")
            XCTAssertTrue(try q.step())
            XCTAssertEqual(q.text(0), "ok")
            q.reset()
        }
    }

    /// The statement stays valid while the `RawStatement` lives, even once GRDB's cache lets go of
    /// it (`releaseMemory` empties the statement caches; GRDB finalizes a statement when its last
    /// reference goes, so a borrowed pointer would then point at freed memory).
    func testTheStatementOutlivesTheCache() throws {
        let f = try Fixture()
        try f.ledger.writer.write { db in
            let q = try RawStatement(db, "SELECT ?1 + 1")
            weak var owner = q.statement
            db.releaseMemory()
            XCTAssertNotNil(owner, "the RawStatement keeps GRDB's statement alive")
            q.reset()
            try q.bind(1, Int64(41))
            XCTAssertTrue(try q.step())
            XCTAssertEqual(q.int64(0), 42)
            q.reset()
            XCTAssertFalse(try db.cachedStatement(sql: "SELECT ?1 + 1") === q.statement, "the cache made a new one")
        }
    }
}
