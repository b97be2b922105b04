import Foundation
import XCTest
@testable import Ledger
import LedgerModel

/// Reservations, expiring grants and monitors on the ledger alone (a real SQLite file, a manual
/// clock), each test ending with `verify`.
final class ExtrasTests: XCTestCase {
    func assertSound(_ f: Fixture, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try Ledger.verify(path: f.path), [], file: file, line: line)
    }

    func balance(_ f: Fixture, _ user: String) throws -> [String: Any] { try f.query(.balance(userId: user)) }

    func testHoldCaptureLessFreesTheRest() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        let hold = try json(f.run(.hold(userId: "u", amount: 40, operation: nil, expiresIn: nil, metadata: nil), jobId: "h1"))
        XCTAssertEqual(hold["holdId"] as? String, "h1")
        XCTAssertEqual(hold.int("available"), 60)
        XCTAssertEqual(hold["expiresAt"] as? String, "2026-01-15T10:15:00.000Z", "900 s by default")
        var b = try balance(f, "u")
        XCTAssertEqual(b.int("tokensBalance"), 100, "a hold writes no entry")
        XCTAssertEqual(b.int("held"), 40)
        XCTAssertEqual(b.int("available"), 60)
        XCTAssertEqual(try code(f.run(.debit(userId: "u", operationType: "x", amount: 61, metadata: nil))), "insufficient_tokens")
        let refused = try json(f.run(.debit(userId: "u", operationType: "x", amount: 70, metadata: nil)))
        XCTAssertEqual(refused.int("available"), 60)
        XCTAssertEqual(refused.int("deficit"), 10)
        XCTAssertEqual(try f.query(.canAfford(userId: "u", operation: "image_generation"))["canAfford"] as? Bool, true)

        let captured = try f.run(.capture(userId: "u", holdId: "h1", amount: 25, operationType: "llm", metadata: nil), jobId: "c1")
        let c = try json(captured)
        XCTAssertEqual(c.int("tokensAmount"), -25)
        XCTAssertEqual(c.int("newBalance"), 75)
        XCTAssertEqual(c.int("released"), 15)
        XCTAssertEqual(c.int("available"), 75)
        XCTAssertEqual(captured.changes.first?.held, 0)
        b = try balance(f, "u")
        XCTAssertEqual(b.int("held"), 0)
        XCTAssertEqual(b.int("tokensSpent"), 25, "a capture counts in tokensSpent")
        XCTAssertEqual(try code(f.run(.capture(userId: "u", holdId: "h1", amount: nil, operationType: nil, metadata: nil))), "hold_closed")
        XCTAssertEqual(try json(f.run(.release(userId: "u", holdId: "h1")))["state"] as? String, "captured")
        XCTAssertEqual(try code(f.run(.release(userId: "u", holdId: "nope"))), "hold_not_found")
        // refundOf may name a capture.
        XCTAssertEqual(try json(f.run(.refund(userId: "u", refundOf: "c1", amount: nil, metadata: nil))).int("tokensAmount"), 25)
        try assertSound(f)
    }

    func testCaptureMoreThanHeldIsRefusedAndReleaseFreesAll() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        try f.run(.hold(userId: "u", amount: nil, operation: "image_generation", expiresIn: 60, metadata: nil), jobId: "h")
        let over = try f.run(.capture(userId: "u", holdId: "h", amount: 11, operationType: nil, metadata: nil))
        XCTAssertEqual(try code(over), "capture_exceeds_hold")
        XCTAssertEqual(try balance(f, "u").int("held"), 10, "a refused capture leaves the hold open")
        let r = try json(f.run(.release(userId: "u", holdId: "h")))
        XCTAssertEqual(r.int("released"), 10)
        XCTAssertEqual(r.int("available"), 100)
        XCTAssertEqual(try json(f.run(.capture(userId: "u", holdId: "h", amount: nil, operationType: nil, metadata: nil)))["state"] as? String, "released")
        XCTAssertEqual(try code(f.run(.hold(userId: "u", amount: 5, operation: nil, expiresIn: 7 * 86_400 + 1, metadata: nil))), "invalid_expiry")
        XCTAssertEqual(try code(f.run(.hold(userId: "u", amount: 5, operation: nil, expiresIn: 0, metadata: nil))), "invalid_expiry")
        XCTAssertEqual(try code(f.run(.hold(userId: "u", amount: 0, operation: nil, expiresIn: nil, metadata: nil))), "invalid_amount")
        XCTAssertEqual(try code(f.run(.capture(userId: "u", holdId: "h", amount: nil, operationType: "expiry", metadata: nil))), "reserved_operation_type")
        XCTAssertEqual(try code(f.run(.debit(userId: "u", operationType: "expiry", amount: 1, metadata: nil))), "reserved_operation_type")
        try assertSound(f)
    }

    func testTwoHoldsCompeteForTheLastTokens() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        let results = try f.ledger.apply([
            Command(jobId: "a", operation: .hold(userId: "u", amount: 70, operation: nil, expiresIn: nil, metadata: nil)),
            Command(jobId: "b", operation: .hold(userId: "u", amount: 70, operation: nil, expiresIn: nil, metadata: nil)),
            Command(jobId: "c", operation: .charge(userId: "u", operation: "image_generation", metadata: nil)),
        ])
        XCTAssertTrue(results[0].success)
        XCTAssertEqual(results[1].errorCode, "insufficient_tokens")
        XCTAssertEqual(try json(results[1]).int("available"), 30)
        XCTAssertTrue(results[2].success, "the charge fits in what is left")
        XCTAssertEqual(try balance(f, "u").int("available"), 20)
        // A capture may use its own hold's tokens whatever else is held.
        XCTAssertTrue(try f.run(.capture(userId: "u", holdId: "a", amount: 70, operationType: nil, metadata: nil)).success)
        XCTAssertEqual(try balance(f, "u").int("tokensBalance"), 20)
        try assertSound(f)
    }

    func testHoldExpiresAtItsTimeAndIsWrittenByTheSweep() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        try f.run(.hold(userId: "u", amount: 30, operation: nil, expiresIn: 60, metadata: nil), jobId: "h")
        f.set("2026-01-15T10:01:00.000Z")
        XCTAssertEqual(try f.ledger.read(.balance(userId: "u")).json.contains(#""held":0"#), true, "expired from expiresAt on, even unsettled")
        f.set("2026-01-15T11:00:00.000Z")
        let s = try f.ledger.sweepDue(limit: 10)
        XCTAssertEqual(s.accounts, 1)
        XCTAssertEqual(s.holdsExpired, 1)
        let e = try XCTUnwrap(s.events.first)
        XCTAssertEqual(e.name, "hold.expired")
        XCTAssertEqual(e.value("holdId"), "h")
        XCTAssertEqual(e.value("at"), "2026-01-15T10:01:00.000Z", "the hold's own expiry, not when it was written")
        XCTAssertEqual(s.changes.map(\.held), [0])
        XCTAssertNil(s.changes.first?.ledgerEntryId)
        XCTAssertEqual(try f.ledger.sweepDue(limit: 10).accounts, 0, "settled once")
        XCTAssertEqual(try code(f.run(.capture(userId: "u", holdId: "h", amount: nil, operationType: nil, metadata: nil))), "hold_expired")
        try assertSound(f)
    }

    func testGrantsAreSpentSoonestLapsingFirstAndLapseOnce() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))  // 100 never-lapsing
        let late = try json(f.run(.credit(userId: "u", operationType: "promo", amount: 50, metadata: nil,
                                          expiry: .afterSeconds(7200)), jobId: "late"))
        XCTAssertEqual(late["grantId"] as? String, "late")
        XCTAssertEqual(late["expiresAt"] as? String, "2026-01-15T12:00:00.000Z")
        try f.run(.credit(userId: "u", operationType: "promo", amount: 30, metadata: nil,
                          expiry: .at(LedgerTime.parse("2026-01-15T11:00:00Z")!)), jobId: "soon")
        try f.run(.debit(userId: "u", operationType: "x", amount: 40, metadata: nil))
        var grants = try balance(f, "u")["grants"] as! [[String: Any]]
        XCTAssertEqual(grants.map { $0["grantId"] as! String }, ["late"], "the soonest grant went first")
        XCTAssertEqual(grants[0].int("remaining"), 40)
        try f.run(.refund(userId: "u", refundOf: nil, amount: 5, metadata: nil))  // never-lapsing
        grants = try balance(f, "u")["grants"] as! [[String: Any]]
        XCTAssertEqual(grants[0].int("remaining"), 40)
        XCTAssertEqual(try code(f.run(.credit(userId: "u", operationType: "p", amount: 1, metadata: nil, expiry: .afterSeconds(0)))), "invalid_expiry")
        XCTAssertEqual(try code(f.run(.credit(userId: "u", operationType: "p", amount: 1, metadata: nil,
                                              expiry: .at(LedgerTime.parse("2026-01-15T10:00:00Z")!)))), "invalid_expiry")

        XCTAssertEqual(try code(f.run(.credit(userId: "u", operationType: "p", amount: 1, metadata: nil, expiry: .afterSeconds(5)),
                                       jobId: "renewal:u:2026-02-15T10:00:00.000Z")), "reserved_grant_id")
        f.set("2026-01-15T12:00:00.000Z")
        let charged = try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil))
        XCTAssertEqual(charged.changes.count, 2, "the lapse is written first, in the same transaction")
        XCTAssertEqual(charged.changes[0].operationType, "expiry")
        XCTAssertEqual(charged.changes[0].tokensAmount, -40)
        XCTAssertEqual(charged.events.map(\.name), ["grant.expired"])
        XCTAssertEqual(try json(charged).int("newBalance"), 145 - 40 - 5)
        let b = try balance(f, "u")
        XCTAssertEqual(b.int("tokensSpent"), 40 - 5 + 5, "a lapse is not spending")
        let lapse = try XCTUnwrap((try f.query(.history(userId: "u", limit: 1, offset: 0, operationType: "expiry",
                                                        startDate: nil, endDate: nil))["entries"] as? [[String: Any]])?.first)
        XCTAssertEqual(lapse["metadata"] as? NSDictionary, ["grantId": "late", "expiresAt": "2026-01-15T12:00:00.000Z"] as NSDictionary)
        XCTAssertEqual(try f.ledger.sweepDue(limit: 10).accounts, 0)
        try assertSound(f)
    }

    func testAHoldPinsGrantTokensAndTheirReturnLapsesAfterTheGrant() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        try f.run(.debit(userId: "u", operationType: "x", amount: 100, metadata: nil))
        try f.run(.credit(userId: "u", operationType: "promo", amount: 50, metadata: nil, expiry: .afterSeconds(60)), jobId: "g")
        try f.run(.hold(userId: "u", amount: 30, operation: nil, expiresIn: 600, metadata: nil), jobId: "h")
        f.set("2026-01-15T10:02:00.000Z")
        let s = try f.ledger.sweepDue(limit: 10)
        XCTAssertEqual(s.tokensLapsed, 20, "the lapse takes only what the hold did not pin")
        XCTAssertEqual(try balance(f, "u").int("available"), 0)
        XCTAssertEqual(try balance(f, "u").int("held"), 30)
        let c = try f.run(.capture(userId: "u", holdId: "h", amount: 10, operationType: nil, metadata: nil))
        XCTAssertEqual(c.changes.map(\.operationType), ["capture", "expiry"], "the unspent rest of a lapsed grant lapses now")
        XCTAssertEqual(c.changes.last?.tokensAmount, -20)
        XCTAssertEqual(try balance(f, "u").int("tokensBalance"), 0)
        try assertSound(f)
    }

    func testExpirePolicyLapsesAtTheMonthsEnd() throws {
        let f = try Fixture(config: LedgerConfig(renewalPolicy: .expire), start: "2026-01-31T10:00:00.000Z")
        let open = try json(f.run(.open(userId: "u")))
        XCTAssertEqual(open["grantId"] as? String, "renewal:u:2026-01-31T10:00:00.000Z")
        XCTAssertEqual(open["expiresAt"] as? String, "2026-02-28T10:00:00.000Z")
        try f.run(.debit(userId: "u", operationType: "x", amount: 30, metadata: nil))
        try f.run(.credit(userId: "u", operationType: "bonus", amount: 5, metadata: nil))
        f.set("2026-02-28T10:00:00.000Z")
        let s = try f.ledger.renewDue(limit: 10)
        XCTAssertEqual(s.successful, 1)
        XCTAssertEqual(s.changes.map(\.operationType), ["expiry", "renewal"], "the old grant lapses before the new one")
        XCTAssertEqual(s.changes.map(\.tokensAmount), [-70, 100])
        let b = try balance(f, "u")
        XCTAssertEqual(b.int("tokensBalance"), 105)
        let grants = b["grants"] as! [[String: Any]]
        XCTAssertEqual(grants.first?["grantId"] as? String, "renewal:u:2026-02-28T10:00:00.000Z")
        XCTAssertEqual(grants.first?["expiresAt"] as? String, "2026-03-31T10:00:00.000Z")
        try assertSound(f)
    }

    func testMonitorFiresOncePerCrossingAndAgainAfterATopUp() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        let m = try json(f.run(.monitor(userId: "u", monitorId: nil, threshold: 50), jobId: "m1"))
        XCTAssertEqual(m["monitorId"] as? String, "m1")
        XCTAssertEqual(try f.run(.debit(userId: "u", operationType: "x", amount: 40, metadata: nil)).alerts, [])
        let cross = try f.run(.debit(userId: "u", operationType: "x", amount: 20, metadata: nil))
        XCTAssertEqual(cross.alerts.count, 1)
        XCTAssertEqual(cross.alerts.first?.value("available"), "40")
        XCTAssertEqual(cross.alerts.first?.value("ledgerEntryId"), cross.changes.last?.ledgerEntryId.map(String.init))
        XCTAssertEqual(try f.run(.debit(userId: "u", operationType: "x", amount: 10, metadata: nil)).alerts, [], "once per crossing")
        try f.run(.credit(userId: "u", operationType: "topup", amount: 100, metadata: nil))
        let hold = try f.run(.hold(userId: "u", amount: 90, operation: nil, expiresIn: nil, metadata: nil), jobId: "h")
        XCTAssertEqual(hold.alerts.map { $0.value("monitorId") }, ["m1"], "a hold fires too, after the top-up")
        XCTAssertNil(hold.alerts.first?.value("ledgerEntryId"))
        XCTAssertEqual(try code(f.run(.monitor(userId: "u", monitorId: nil, threshold: -1))), "invalid_threshold")
        XCTAssertTrue(try f.run(.unmonitor(userId: "u", monitorId: "m1")).success)
        XCTAssertEqual(try code(f.run(.unmonitor(userId: "u", monitorId: "m1"))), "monitor_not_found")
        try assertSound(f)
    }

    func testReplayOfEveryNewJobTypeIsIdempotent() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        let ops: [(String, LedgerOperation)] = [
            ("g", .credit(userId: "u", operationType: "promo", amount: 10, metadata: nil, expiry: .afterSeconds(60))),
            ("h", .hold(userId: "u", amount: 20, operation: nil, expiresIn: nil, metadata: nil)),
            ("h2", .hold(userId: "u", amount: 5, operation: nil, expiresIn: nil, metadata: nil)),
            ("c", .capture(userId: "u", holdId: "h", amount: 15, operationType: nil, metadata: nil)),
            ("r", .release(userId: "u", holdId: "h2")),
            ("m", .monitor(userId: "u", monitorId: "low", threshold: 10)),
            ("um", .unmonitor(userId: "u", monitorId: "low")),
            ("p", .purchase(userId: "u", tier: "Professional", paymentId: "pay", months: 1, metadata: nil, allocationExpiresIn: 3600)),
        ]
        var first: [String] = []
        for (id, op) in ops { first.append(try f.run(op, jobId: id).json) }
        let before = try balance(f, "u")
        for (i, (id, op)) in ops.enumerated() {
            let again = try f.run(op, jobId: id)
            XCTAssertTrue(again.duplicate, id)
            XCTAssertEqual(again.json, first[i], id)
        }
        XCTAssertEqual(try balance(f, "u") as NSDictionary, before as NSDictionary)
        try assertSound(f)
    }

    func testVerifyFindsABrokenHeldTotal() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        try f.run(.hold(userId: "u", amount: 20, operation: nil, expiresIn: nil, metadata: nil), jobId: "h")
        try f.ledger.writer.write { db in try db.execute(sql: "UPDATE accounts SET held = 5") }
        XCTAssertEqual(try Ledger.verify(path: f.path).map(\.code), ["held_mismatch"])
    }
}
