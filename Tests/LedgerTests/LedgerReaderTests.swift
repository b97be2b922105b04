import Foundation
import GRDB
import XCTest
@testable import Ledger
import LedgerModel

/// `LedgerReader`: the read-only way in, for queries, `verify` and `backup`'s source.
final class LedgerReaderTests: XCTestCase {
    func files(_ path: String) -> [String] {
        ["", "-wal", "-shm"].map { path + $0 }.filter { FileManager.default.fileExists(atPath: $0) }
    }

    /// A missing file is a typed error, for every reader, and nothing is created.
    func testAMissingLedgerIsATypedErrorAndIsNotCreated() throws {
        let f = try Fixture()
        let missing = f.dir.appendingPathComponent("typo.sqlite").path
        let copy = f.dir.appendingPathComponent("copy.sqlite").path
        let expected = LedgerOpenError.notFound(path: missing)
        XCTAssertThrowsError(try LedgerReader(path: missing)) { XCTAssertEqual($0 as? LedgerOpenError, expected) }
        XCTAssertThrowsError(try Ledger.verify(path: missing)) { XCTAssertEqual($0 as? LedgerOpenError, expected) }
        XCTAssertThrowsError(try Ledger.backup(from: missing, to: copy)) { XCTAssertEqual($0 as? LedgerOpenError, expected) }
        XCTAssertEqual(expected.code, "ledger_not_found")
        XCTAssertEqual(files(missing), [], "reading never creates a ledger")
        XCTAssertEqual(files(copy), [], "a backup of nothing leaves nothing")
    }

    /// A reader never migrates: a schema it does not know exactly is refused, with its direction.
    func testASchemaOfAnotherVersionIsRefused() throws {
        let f = try Fixture()
        try f.run(.open(userId: "ann"))
        try f.ledger.writer.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99')") }
        XCTAssertThrowsError(try LedgerReader(path: f.path)) {
            XCTAssertEqual($0 as? LedgerOpenError, .schemaNewer(path: f.path))
        }
        XCTAssertThrowsError(try Ledger.verify(path: f.path)) { XCTAssertEqual(($0 as? LedgerOpenError)?.code, "ledger_schema_newer") }

        let plain = f.dir.appendingPathComponent("plain.sqlite").path
        try DatabaseQueue(path: plain).write { db in try db.execute(sql: "CREATE TABLE t (x)") }
        XCTAssertThrowsError(try LedgerReader(path: plain)) {
            XCTAssertEqual($0 as? LedgerOpenError, .schemaOlder(path: plain))
        }
        let tables = try DatabaseQueue(path: plain).read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master") }
        XCTAssertEqual(tables, ["t"], "no migration ran on it")
    }

    /// Answers like the writer, and leaves the file as it was while the writer is open.
    func testReadsLikeTheWriterWithoutWriting() throws {
        let f = try Fixture()
        try f.run(.open(userId: "ann"))
        try f.run(.debit(userId: "ann", operationType: "x", amount: 7, metadata: nil))
        let before = try Data(contentsOf: URL(fileURLWithPath: f.path))
        let reader = try LedgerReader(path: f.path, clock: f.clock)
        XCTAssertEqual(try reader.read(.balance(userId: "ann")).json, try f.ledger.read(.balance(userId: "ann")).json)
        XCTAssertEqual(try reader.read(.history(userId: "ann", limit: 5, offset: 0, operationType: nil, startDate: nil, endDate: nil)).json,
                       try f.ledger.read(.history(userId: "ann", limit: 5, offset: 0, operationType: nil, startDate: nil, endDate: nil)).json)
        XCTAssertEqual(try reader.verify(), [])
        XCTAssertThrowsError(try reader.read(.open(userId: "bob"))) { XCTAssertEqual($0 as? LedgerStorageError, .notAQuery) }
        try reader.close()
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: f.path)), before)
    }
}
