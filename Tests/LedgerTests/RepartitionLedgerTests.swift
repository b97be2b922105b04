import Foundation
import GRDB
import XCTest
@testable import Ledger
import LedgerModel

/// `LedgerRepartition.build` on real files: the new files verify, answer what the old one did,
/// and `verify` still finds an entry removed from a file whose kept ids have gaps.
final class RepartitionLedgerTests: XCTestCase {
    static let users = (0..<12).map { "u\($0)" }

    /// crc32 mod `count`, written here so the test does not lean on the code it checks.
    static func route(_ count: Int) -> (String) -> Int {
        { user in
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in user.utf8 {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 != 0 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
            }
            return Int((crc ^ 0xFFFF_FFFF) % UInt32(count))
        }
    }

    func populated() throws -> Fixture {
        let f = try Fixture()
        for u in Self.users {
            try f.run(.open(userId: u))
            try f.run(.charge(userId: u, operation: "image_generation", metadata: "{\"for\":\"\(u)\"}"), jobId: "c-\(u)")
            try f.run(.refund(userId: u, refundOf: "c-\(u)", amount: 3, metadata: nil))
            try f.run(.purchase(userId: u, tier: "Business", paymentId: "p-\(u)", months: 1, metadata: nil))
        }
        try f.ledger.mergeAll()
        // A tail left unmerged: the build must read it as the ledger does.
        for u in Self.users { try f.run(.credit(userId: u, operationType: "late", amount: 2, metadata: nil)) }
        return f
    }

    func build(_ f: Fixture, to count: Int) throws -> [String] {
        try (0..<count).map { k in
            let path = f.dir.appendingPathComponent("new-p\(k).sqlite").path
            _ = try LedgerRepartition.build(target: k, of: count, path: path, sources: [f.path], route: Self.route(count), nowMs: 0)
            return path
        }
    }

    func testSplitFilesVerifyAndAnswerAsTheOldOne() throws {
        let f = try populated()
        let old = try LedgerRepartition.totals(path: f.path)
        let paths = try build(f, to: 4)
        var new: [IdentityKey: AccountTotals] = [:]
        for (k, path) in paths.enumerated() {
            XCTAssertEqual(try Ledger.verify(path: path), [], path)
            let totals = try LedgerRepartition.totals(path: path)
            for user in totals.keys { XCTAssertEqual(Self.route(4)(user.text), k, "\(user) is in its own partition's file") }
            new.merge(totals) { a, _ in a }
        }
        XCTAssertEqual(LedgerRepartition.differences(old: old, new: new), [])
        XCTAssertEqual(new, old)
        // The new file serves writes: its next entry follows the kept ids.
        let ledger = try Ledger(path: paths[Self.route(4)("u0")])
        let r = try ledger.apply([Command(jobId: "after", operation: .credit(userId: "u0", operationType: "x", amount: 1, metadata: nil))])[0]
        XCTAssertTrue(r.success, r.json)
        let replay = try ledger.apply([Command(jobId: "c-u0", operation: .charge(userId: "u0", operation: "image_generation", metadata: nil))])[0]
        XCTAssertTrue(replay.duplicate, replay.json)
        try ledger.mergeAll()
        XCTAssertEqual(try Ledger.verify(path: paths[Self.route(4)("u0")]), [])
    }

    /// What the old worker kept to announce (a lapsed hold's invalidation and its `hold.expired`)
    /// goes to its user's new file, read in the stored encoding as the worker reads it, and
    /// nothing is lost or sent twice.
    func testKeptSendsGoWithTheirUser() throws {
        let f = try Fixture()
        for u in Self.users {
            try f.run(.open(userId: u))
            try f.run(.hold(userId: u, amount: 10, operation: nil, expiresIn: 60, metadata: nil))
        }
        f.set("2026-01-15T10:02:00.000Z")
        XCTAssertNotNil(try f.ledger.sweepDue(limit: 100).pendingSeq)
        let old = try f.ledger.pendingSends().sends
        XCTAssertEqual(old.count, Self.users.count * 2, "one invalidation and one hold.expired per user")
        let paths = try build(f, to: 4)
        var moved = 0
        for (k, path) in paths.enumerated() {
            let sends = try Ledger(path: path).pendingSends().sends
            for send in sends {
                let user = try XCTUnwrap(send.userId, "\(send)")
                XCTAssertEqual(Self.route(4)(user), k, "a kept send of \(user) is in its own partition's file")
            }
            moved += sends.count
        }
        XCTAssertEqual(moved, old.count)
    }

    func testAnEntryRemovedFromAFileWithGapsIsFound() throws {
        let f = try populated()
        let paths = try build(f, to: 4)
        let path = paths[0]
        let q = try DatabaseQueue(path: path)
        let (first, last) = try q.read { db in
            (try Int64.fetchOne(db, sql: "SELECT min(id) FROM entries") ?? 0, try Int64.fetchOne(db, sql: "SELECT max(id) FROM entries") ?? 0)
        }
        XCTAssertGreaterThan(last - first + 1, try q.read { try Int64.fetchOne($0, sql: "SELECT count(*) FROM entries") ?? 0 }, "the kept ids have gaps")
        try q.write { try $0.execute(sql: "DROP TRIGGER entries_no_delete; DELETE FROM entries WHERE id = ?", arguments: [last]) }
        try q.close()
        let codes = Set(try Ledger.verify(path: path).map(\.code))
        XCTAssertTrue(codes.contains(AuditViolation.Code.entryGap), "\(codes)")
    }

    func testAMergeRenumbersInTimeOrderAndRefusesSharedIds() throws {
        let f = try populated()
        let split = try build(f, to: 2)
        let merged = f.dir.appendingPathComponent("merged.sqlite").path
        _ = try LedgerRepartition.build(target: 0, of: 1, path: merged, sources: split, route: { _ in 0 }, nowMs: 0)
        XCTAssertEqual(try Ledger.verify(path: merged), [])
        XCTAssertEqual(try LedgerRepartition.totals(path: merged), try LedgerRepartition.totals(path: f.path))
        let q = try DatabaseQueue(path: merged)
        let times = try q.read { try Int64.fetchAll($0, sql: "SELECT created_ms FROM entries ORDER BY id") }
        XCTAssertEqual(times, times.sorted(), "entry ids rise with time")
        try q.close()

        // The same job id in both halves (ids are unique per partition only): refused, by name.
        let other = 1 - Self.route(2)("u0")
        let writer = try Ledger(path: split[other])
        let user = try XCTUnwrap(Self.users.first { Self.route(2)($0) == other })
        _ = try writer.apply([Command(jobId: "c-u0", operation: .credit(userId: user, operationType: "x", amount: 1, metadata: nil))])
        let again = f.dir.appendingPathComponent("merged-again.sqlite").path
        XCTAssertThrowsError(try LedgerRepartition.build(target: 0, of: 1, path: again, sources: split, route: { _ in 0 }, nowMs: 0)) { error in
            XCTAssertEqual((error as? RepartitionError)?.code, .idConflict, "\(error)")
            XCTAssertTrue("\(error)".contains("c-u0"), "\(error)")
        }
    }
}
