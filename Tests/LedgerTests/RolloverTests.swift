import Foundation
import GRDB
import XCTest
@testable import Ledger
import LedgerModel

/// The `rollover` renewal policy against a real SQLite file: carries up to the cap, lapses the
/// rest, names and dates the carried grants by the period the renewal starts.
final class RolloverTests: XCTestCase {
    func config(max: Int64?, months: Int, tierMax: [String: Int64] = [:]) -> LedgerConfig {
        var c = LedgerConfig(renewalPolicy: .rollover)
        c.rolloverMax = max
        c.rolloverMonths = months
        for (tier, m) in tierMax { c.tiers[tier]?.rolloverMax = m }
        return c
    }

    func renewals(_ s: RenewAllSummary) -> [String: RenewalOutcome] {
        Dictionary(uniqueKeysWithValues: s.renewals.map { ($0.userId, $0) })
    }

    func grants(_ f: Fixture, _ user: String) throws -> [String: (remaining: Int64, expiresAt: String)] {
        let list = try XCTUnwrap(f.query(.balance(userId: user))["grants"] as? [[String: Any]])
        var out: [String: (Int64, String)] = [:]
        for g in list { out[g["grantId"] as! String] = ((g["remaining"] as! NSNumber).int64Value, g["expiresAt"] as! String) }
        return out
    }

    func testCarriesUpToTheCapLapsesTheRestAndSpendsTheSoonestLapsingFirst() throws {
        let f = try Fixture(config: config(max: 50, months: 2))
        try f.run(.open(userId: "u"))
        try f.run(.open(userId: "v"))
        try f.run(.purchase(userId: "w", tier: "Professional", paymentId: "p-w", months: 12, metadata: nil))
        XCTAssertNil(try grants(f, "w")["renewal:w:2026-01-15T10:00:00.000Z"], "a purchase's allocation is not a period grant")
        try f.run(.charge(userId: "u", operation: "image_generation", metadata: nil))   // u: 90 left of the period grant
        try f.run(.debit(userId: "v", operationType: "x", amount: 70, metadata: nil))   // v: 30 left, under the cap

        f.set("2026-02-15T10:00:00.000Z")
        let s = try f.ledger.renewDue(limit: 10)
        let r = renewals(s)
        XCTAssertEqual(r["u"]?.tokensCarried, 50)
        XCTAssertEqual(r["u"]?.tokensLapsed, 40, "the part above the cap")
        XCTAssertEqual(r["v"]?.tokensCarried, 30)
        XCTAssertEqual(r["v"]?.tokensLapsed, 0)
        XCTAssertEqual(r["w"]?.tokensCarried, 0, "purchases are never capped")
        XCTAssertEqual(s.tokensCarried, 80)
        XCTAssertEqual(s.tokensLapsed, 40)
        XCTAssertEqual(try f.balance("u"), 90 - 40 + 100)
        XCTAssertEqual(try f.balance("w"), 2000 + 2000)
        let g = try grants(f, "u")
        XCTAssertEqual(g["rollover:u:2026-02-15T10:00:00.000Z"]?.remaining, 50)
        XCTAssertEqual(g["rollover:u:2026-02-15T10:00:00.000Z"]?.expiresAt, "2026-04-15T10:00:00.000Z", "two periods from the period it starts")
        XCTAssertEqual(g["renewal:u:2026-02-15T10:00:00.000Z"]?.remaining, 100)
        let lapse = try f.query(.history(userId: "u", limit: 5, offset: 0, operationType: "expiry", startDate: nil, endDate: nil))
        XCTAssertEqual((lapse["entries"] as? [[String: Any]])?.first?.int("tokensAmount"), -40)

        // Spending takes the grant that lapses soonest: this period's, not the carried one.
        try f.run(.debit(userId: "u", operationType: "x", amount: 30, metadata: nil))
        XCTAssertEqual(try grants(f, "u")["renewal:u:2026-02-15T10:00:00.000Z"]?.remaining, 70)
        XCTAssertEqual(try grants(f, "u")["rollover:u:2026-02-15T10:00:00.000Z"]?.remaining, 50)

        // The month's statistics count what was carried into it and what lapsed in it.
        let stats = try f.query(.statistics(userId: "u", startDate: LedgerTime.parse("2026-02-01T00:00:00.000Z")!,
                                            endDate: LedgerTime.parse("2026-02-28T23:59:59.999Z")!))
        XCTAssertEqual(stats.int("tokensCarried"), 50)
        XCTAssertEqual(stats.int("tokensLapsed"), 40)

        // Next period: this period's grant is carried (50 of 70); the carried one lives on.
        f.set("2026-03-15T10:00:00.000Z")
        XCTAssertEqual(renewals(try f.ledger.renewDue(limit: 10))["u"]?.tokensCarried, 50)
        XCTAssertEqual(try grants(f, "u")["rollover:u:2026-02-15T10:00:00.000Z"]?.remaining, 50)
        // Its own periods over, a carried grant lapses on its own (grant.expired), not as tokensLapsed.
        f.set("2026-04-15T10:00:00.000Z")
        let april = try f.ledger.renewDue(limit: 10)
        XCTAssertEqual(renewals(april)["u"]?.tokensLapsed, 100 - 50, "only this period's grant above the cap")
        XCTAssertTrue(april.events.contains { $0.name == LedgerEvent.grantExpired && $0.value("grantId") == "rollover:u:2026-02-15T10:00:00.000Z" })
        XCTAssertNil(try grants(f, "u")["rollover:u:2026-02-15T10:00:00.000Z"])
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testMonthEndsMissedPeriodsAndATierCap() throws {
        let f = try Fixture(config: config(max: nil, months: 1, tierMax: ["Professional": 500]), start: "2026-01-31T12:00:00.000Z")
        try f.run(.open(userId: "u"))
        f.set("2026-02-28T12:00:00.000Z")  // Jan 31 -> Feb 28
        XCTAssertEqual(renewals(try f.ledger.renewDue(limit: 10))["u"]?.tokensCarried, 100, "no cap: all of it")
        XCTAssertEqual(try grants(f, "u")["rollover:u:2026-02-28T12:00:00.000Z"]?.expiresAt, "2026-03-31T12:00:00.000Z",
                       "back to the anchor day the month after")
        f.set("2026-03-31T12:00:00.000Z")
        try f.ledger.renewDue(limit: 10)
        XCTAssertEqual(Set(try grants(f, "u").keys), ["renewal:u:2026-03-31T12:00:00.000Z", "rollover:u:2026-03-31T12:00:00.000Z"])

        // Down for three periods: one renewal, one carry, named and dated by the period it starts.
        f.set("2026-07-15T00:00:00.000Z")
        let late = try f.ledger.renewDue(limit: 10)
        XCTAssertEqual(late.successful, 1)
        XCTAssertEqual(renewals(late)["u"]?.tokensCarried, 100)
        let g = try grants(f, "u")
        XCTAssertEqual(g["rollover:u:2026-06-30T12:00:00.000Z"]?.expiresAt, "2026-07-31T12:00:00.000Z", "missed periods do not shorten it")
        XCTAssertEqual(g.count, 2, "\(g)")

        // A tier's own cap wins over the ledger's (none here).
        try f.run(.setTier(userId: "u", tier: "Professional", subscriptionExpiry: .unchanged))
        f.set("2026-07-31T12:00:00.000Z")
        try f.ledger.renewDue(limit: 10)  // a Professional period grant of 2000
        f.set("2026-08-31T12:00:00.000Z")
        let capped = renewals(try f.ledger.renewDue(limit: 10))["u"]
        XCTAssertEqual(capped?.tokensCarried, 500)
        XCTAssertEqual(capped?.tokensLapsed, 1500)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])

        // verify matches every carried grant to its source.
        try f.ledger.writer.write { db in try db.execute(sql: "UPDATE grants SET carried = carried + 1 WHERE grant_id LIKE 'renewal:%' AND carried > 0") }
        XCTAssertTrue(try Ledger.verify(path: f.path).map(\.code).contains(AuditViolation.Code.carryOrphan))
    }

    func testTheSweepCarriesAtTheDateAndTheRenewalReportsIt() throws {
        let f = try Fixture(config: config(max: 30, months: 1))
        try f.run(.open(userId: "u"))
        f.set("2026-02-15T10:00:00.000Z")
        let swept = try f.ledger.sweepDue(limit: 10)  // the worker's sweep comes first
        XCTAssertEqual(swept.accounts, 1)
        XCTAssertEqual(try f.balance("u"), 30, "no token above the cap is spendable past the date")
        let r = renewals(try f.ledger.renewDue(limit: 10))["u"]
        XCTAssertEqual(r?.tokensCarried, 30)
        XCTAssertEqual(r?.tokensLapsed, 70)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testProducersCannotTakeTheCarriedGrantsIds() throws {
        let f = try Fixture(config: config(max: 30, months: 1))
        try f.run(.open(userId: "u"))
        let refused = try f.run(.credit(userId: "u", operationType: "bonus", amount: 5, metadata: nil,
                                        expiry: .afterSeconds(60)), jobId: "rollover:u:x")
        XCTAssertEqual(try code(refused), "reserved_grant_id")
    }
}
