import Foundation
import XCTest
@testable import Ledger
import LedgerModel

/// Identity is bytes: ids that Swift's `String ==` calls equal (canonically equivalent, NFC and
/// NFD) are two ids, in the unmerged tail as in the merged indexes and after a reopen.
final class IdentityTests: XCTestCase {
    static let nfc = "caf\u{00e9}"
    static let nfd = "cafe\u{0301}"

    /// Whether `text` holds `part`'s bytes (Foundation's `range(of:)` matches canonically).
    static func contains(_ text: String, _ part: String) -> Bool {
        let t = Array(text.utf8), p = Array(part.utf8)
        guard p.count <= t.count else { return false }
        return (0...(t.count - p.count)).contains { t[$0..<($0 + p.count)].elementsEqual(p) }
    }

    func testTheTwoFormsAreOneStringToSwiftAndTwoToTheLedger() {
        XCTAssertEqual(Self.nfc, Self.nfd, "the premise: String == equates them")
        XCTAssertNotEqual(IdentityKey(Self.nfc), IdentityKey(Self.nfd))
        XCTAssertEqual(IdentityKey(Self.nfd), IdentityKey("cafe\u{0301}"))
        XCTAssertEqual(Set([IdentityKey(Self.nfc), IdentityKey(Self.nfd), IdentityKey(Self.nfc)]).count, 2)
        XCTAssertFalse(Self.nfc.hasSameBytes(as: Self.nfd))
        // The Kelvin sign is canonically a plain K.
        XCTAssertEqual("\u{212A}", "K")
        XCTAssertNotEqual(IdentityKey("\u{212A}"), IdentityKey("K"))
    }

    func testCanonicallyEqualUsersAreTwoAccountsWhileTheirRowsLagAndAfterTheMerge() throws {
        let (nfc, nfd) = (Self.nfc, Self.nfd)
        let f = try Fixture(config: StorageTests.manualMerge)
        XCTAssertTrue(try f.run(.open(userId: nfc)).success)
        try f.run(.charge(userId: nfc, operation: "image_generation", metadata: nil))
        XCTAssertGreaterThan(try f.ledger.unmergedRows(), 0, "the NFC account's balance lags in the tail")
        // While the NFC row lags, the NFD user has no account: a charge is refused, not applied to the other.
        XCTAssertEqual(try code(f.run(.charge(userId: nfd, operation: "chatgpt_message", metadata: nil))), "user_not_found")
        let open = try f.run(.open(userId: nfd))
        XCTAssertTrue(open.success, "a second user, not account_exists: \(open.json)")
        try f.run(.charge(userId: nfd, operation: "chatgpt_message", metadata: nil))
        try f.run(.debit(userId: nfd, operationType: "api", amount: 1, metadata: nil))
        func check(_ when: String) throws {
            XCTAssertEqual(try f.balance(nfc), 90, when)
            XCTAssertEqual(try f.balance(nfd), 94, when)
            let history = { (u: String) in try f.query(.history(userId: u, limit: 20, offset: 0, operationType: nil, startDate: nil, endDate: nil)).int("total") }
            XCTAssertEqual(try history(nfc), 2, when)
            XCTAssertEqual(try history(nfd), 3, when)
            XCTAssertEqual(try f.query(.balance(userId: nfd))["userId"] as? String, nfd, when)
        }
        try check("in the tail")
        try f.ledger.mergeAll()
        XCTAssertEqual(try f.ledger.unmergedRows(), 0)
        try check("after the merge")
        // Lagging again, then rebuilt from the file at open.
        try f.run(.charge(userId: nfc, operation: "image_generation", metadata: nil))
        try f.run(.credit(userId: nfd, operationType: "bonus", amount: 10, metadata: nil))
        f.ledger = try Ledger(path: f.path, config: StorageTests.manualMerge, clock: f.clock)
        XCTAssertEqual(try f.balance(nfc), 80)
        XCTAssertEqual(try f.balance(nfd), 104)
        XCTAssertEqual(try code(f.run(.open(userId: nfd))), "account_exists")
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testCanonicallyEqualJobIdsAreTwoJobs() throws {
        let f = try Fixture(config: StorageTests.manualMerge)
        try f.run(.open(userId: "u"))
        let first = try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil), jobId: "j-\(Self.nfc)")
        let second = try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil), jobId: "j-\(Self.nfd)")
        XCTAssertFalse(second.duplicate, "another job id: \(second.json)")
        XCTAssertNotEqual(try json(first).int("ledgerEntryId"), try json(second).int("ledgerEntryId"))
        XCTAssertEqual(try f.balance("u"), 90)
        // Replays answer each its own first result, from the tail and from the merged index.
        for round in ["tail", "merged"] {
            if round == "merged" { try f.ledger.mergeAll() }
            for (id, result) in [(Self.nfc, first), (Self.nfd, second)] {
                let again = try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil), jobId: "j-\(id)")
                XCTAssertTrue(again.duplicate, round)
                XCTAssertEqual(again.json, result.json, round)
            }
        }
        XCTAssertEqual(try f.balance("u"), 90)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testCanonicallyEqualHoldsGrantsAndOperationTypesAreDistinct() throws {
        let (nfc, nfd) = (Self.nfc, Self.nfd)
        let f = try Fixture(config: StorageTests.manualMerge)
        try f.run(.open(userId: "u"))
        // Two holds whose ids differ only by normalization.
        XCTAssertTrue(try f.run(.hold(userId: "u", amount: 10, operation: nil, expiresIn: nil, metadata: nil), jobId: "h-\(nfc)").success)
        XCTAssertTrue(try f.run(.hold(userId: "u", amount: 20, operation: nil, expiresIn: nil, metadata: nil), jobId: "h-\(nfd)").success)
        let capture = try f.run(.capture(userId: "u", holdId: "h-\(nfd)", amount: nil, operationType: nil, metadata: nil))
        XCTAssertEqual(try json(capture).int("tokensAmount"), -20, capture.json)
        let holds = try f.query(.holds(userId: "u"))["holds"] as? [[String: Any]]
        XCTAssertEqual(holds?.map { $0["holdId"] as? String }, ["h-\(nfc)"])
        XCTAssertEqual(holds?.first?.int("amount"), 10)
        // Two grants.
        for (id, amount) in [(nfc, Int64(3)), (nfd, Int64(4))] {
            XCTAssertTrue(try f.run(.credit(userId: "u", operationType: "bonus", amount: amount, metadata: nil, expiry: .afterSeconds(3600)),
                                    jobId: "g-\(id)").success)
        }
        let grants = try f.query(.balance(userId: "u"))["grants"] as? [[String: Any]]
        XCTAssertEqual(Set(grants?.compactMap { $0["grantId"] as? String }.map(IdentityKey.init) ?? []),
                       [IdentityKey("g-\(nfc)"), IdentityKey("g-\(nfd)")])
        // Two operation types: history filters and statistics groups by bytes, in the tail and merged.
        try f.run(.debit(userId: "u", operationType: nfc, amount: 1, metadata: nil))
        try f.run(.debit(userId: "u", operationType: nfd, amount: 2, metadata: nil))
        try f.run(.debit(userId: "u", operationType: nfd, amount: 2, metadata: nil))
        for round in ["tail", "merged"] {
            if round == "merged" { try f.ledger.mergeAll() }
            for (type, count) in [(nfc, 1), (nfd, 2)] {
                let h = try f.query(.history(userId: "u", limit: 20, offset: 0, operationType: type, startDate: nil, endDate: nil))
                XCTAssertEqual(h.int("total"), Int64(count), "\(round): \(h)")
                let types = (h["entries"] as? [[String: Any]])?.compactMap { $0["operationType"] as? String } ?? []
                XCTAssertTrue(types.allSatisfy { $0.hasSameBytes(as: type) }, "\(round): \(types.map { Array($0.utf8) })")
            }
            let stats = try f.query(.statistics(userId: "u", startDate: LedgerTime.parse("2026-01-01T00:00:00.000Z")!,
                                                endDate: LedgerTime.parse("2026-12-31T00:00:00.000Z")!))
            XCTAssertEqual(stats.int("operationCount"), 7, "\(round): \(stats)")
            // JSONSerialization would fold the two keys: read the raw text.
            let raw = try f.ledger.read(.statistics(userId: "u", startDate: LedgerTime.parse("2026-01-01T00:00:00.000Z")!,
                                                    endDate: LedgerTime.parse("2026-12-31T00:00:00.000Z")!)).json
            XCTAssertTrue(Self.contains(raw, "\"\(nfc)\":{\"count\":1,"), "\(round): \(raw)")
            XCTAssertTrue(Self.contains(raw, "\"\(nfd)\":{\"count\":2,"), "\(round): \(raw)")
        }
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    /// Renewal grants are named by the user id (`renewal:<userId>:<period start>`): two users
    /// that differ only by normalization have two grants, and each spends its own.
    func testRenewalGrantsOfCanonicallyEqualUsersAreTwoGrants() throws {
        let (nfc, nfd) = (Self.nfc, Self.nfd)
        let f = try Fixture(config: LedgerConfig(renewalPolicy: .expire, mergeThresholdRows: 1_000_000, mergeSliceRows: 3))
        XCTAssertTrue(try f.run(.open(userId: nfc)).success)
        XCTAssertTrue(try f.run(.open(userId: nfd)).success)
        try f.run(.charge(userId: nfd, operation: "image_generation", metadata: nil))
        for (user, remaining) in [(nfc, Int64(100)), (nfd, Int64(90))] {
            let grants = try XCTUnwrap(f.query(.balance(userId: user))["grants"] as? [[String: Any]])
            XCTAssertEqual(grants.count, 1)
            let id = try XCTUnwrap(grants.first?["grantId"] as? String)
            XCTAssertTrue(id.utf8.starts(with: "renewal:\(user):".utf8), "\(Array(id.utf8))")
            XCTAssertEqual(grants.first?.int("remaining"), remaining)
        }
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }
}
