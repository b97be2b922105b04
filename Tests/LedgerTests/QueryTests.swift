import Foundation
import GRDB
import XCTest
@testable import Ledger
import LedgerModel

final class QueryTests: XCTestCase {
    func testBalanceAndCanAfford() throws {
        let f = try Fixture()
        XCTAssertEqual(try code(f.run(.balance(userId: "u"))), "user_not_found")
        try f.run(.purchase(userId: "u", tier: "Professional", paymentId: "p", months: 1, metadata: nil))
        try f.run(.debit(userId: "u", operationType: "x", amount: 1996, metadata: nil))
        let b = try f.query(.balance(userId: "u"))
        XCTAssertEqual(b.int("tokensBalance"), 4)
        XCTAssertEqual(b.int("tokensSpent"), 1996)
        XCTAssertEqual(b["tier"] as? String, "Professional")
        XCTAssertEqual(b["lastRenewalAt"] as? String, "2026-01-15T10:00:00.000Z")
        XCTAssertEqual(b["subscriptionExpiresAt"] as? String, "2026-02-15T10:00:00.000Z")
        XCTAssertEqual(try f.run(.canAfford(userId: "u", operation: "image_generation")).json,
                       #"{"success":true,"canAfford":false,"cost":10,"balance":4,"available":4,"deficit":6}"#)
        XCTAssertEqual(try f.query(.canAfford(userId: "u", operation: "chatgpt_message"))["canAfford"] as? Bool, false)
        try f.run(.credit(userId: "u", operationType: "bonus", amount: 1, metadata: nil))
        XCTAssertEqual(try f.query(.canAfford(userId: "u", operation: "chatgpt_message")).int("deficit"), 0)
        XCTAssertEqual(try code(f.run(.canAfford(userId: "u", operation: "teleport"))), "unknown_operation")
        XCTAssertEqual(try code(f.run(.canAfford(userId: "v", operation: "chatgpt_message"))), "user_not_found")
        // read(_:) answers queries without writing, and only queries.
        XCTAssertEqual(try json(f.ledger.read(.balance(userId: "u"))).int("tokensBalance"), 5)
        XCTAssertThrowsError(try f.ledger.read(.open(userId: "w"))) { XCTAssertEqual($0 as? LedgerStorageError, .notAQuery) }
    }

    func testHistoryNewestFirstWithFiltersPagingAndTotal() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"), jobId: "open-u")
        try f.run(.open(userId: "other"))
        for i in 0..<5 {
            f.clock.advance(by: 3600)
            try f.run(.charge(userId: "u", operation: i % 2 == 0 ? "chatgpt_message" : "image_generation",
                              metadata: #"{"n":\#(i),"s":"\u00e9\n"}"#), jobId: "c\(i)")
        }
        let all = try f.query(.history(userId: "u", limit: 20, offset: 0, operationType: nil, startDate: nil, endDate: nil))
        let entries = try XCTUnwrap(all["entries"] as? [[String: Any]])
        XCTAssertEqual(all.int("total"), 6)
        XCTAssertEqual(entries.map { $0["jobId"] as? String }, ["c4", "c3", "c2", "c1", "c0", "open-u"])
        XCTAssertEqual(entries[0].int("tokensAmount"), -5)
        XCTAssertEqual(entries[0].int("balanceBefore"), 70)
        XCTAssertEqual(entries[0].int("balanceAfter"), 65)
        XCTAssertEqual(entries[0]["operationType"] as? String, "chatgpt_message")
        XCTAssertEqual(entries[0]["createdAt"] as? String, "2026-01-15T15:00:00.000Z")
        XCTAssertEqual((entries[0]["metadata"] as? [String: Any])?["s"] as? String, "é\n")
        XCTAssertTrue(entries[5]["metadata"] is NSNull)

        let page = try f.query(.history(userId: "u", limit: 2, offset: 1, operationType: nil, startDate: nil, endDate: nil))
        XCTAssertEqual((page["entries"] as? [[String: Any]])?.map { $0["jobId"] as? String }, ["c3", "c2"])
        XCTAssertEqual(page.int("total"), 6)
        let images = try f.query(.history(userId: "u", limit: 1, offset: 0, operationType: "image_generation", startDate: nil, endDate: nil))
        XCTAssertEqual(images.int("total"), 2)
        XCTAssertEqual((images["entries"] as? [[String: Any]])?.first?["jobId"] as? String, "c3")
        let window = try f.query(.history(userId: "u", limit: 20, offset: 0, operationType: nil,
                                          startDate: LedgerTime.parse("2026-01-15T12:00:00.000Z"),
                                          endDate: LedgerTime.parse("2026-01-15T14:00:00.000Z")))
        XCTAssertEqual(window.int("total"), 3)
        XCTAssertEqual(try code(f.run(.history(userId: "u", limit: 0, offset: 0, operationType: nil, startDate: nil, endDate: nil))), "invalid_limit")
        XCTAssertEqual(try code(f.run(.history(userId: "u", limit: 1001, offset: 0, operationType: nil, startDate: nil, endDate: nil))), "invalid_limit")
        XCTAssertEqual(try code(f.run(.history(userId: "u", limit: 5, offset: -1, operationType: nil, startDate: nil, endDate: nil))), "invalid_limit")
        XCTAssertEqual(try code(f.run(.history(userId: "u", limit: 5, offset: 0, operationType: nil,
                                               startDate: Date(timeIntervalSince1970: 10), endDate: Date(timeIntervalSince1970: 5)))), "invalid_date_range")
        XCTAssertEqual(try code(f.run(.history(userId: "zed", limit: 5, offset: 0, operationType: nil, startDate: nil, endDate: nil))), "user_not_found")
    }

    func testStatistics() throws {
        let f = try Fixture()
        try f.run(.open(userId: "u"))
        f.clock.advance(by: 60)
        try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil), jobId: "c1")
        try f.run(.charge(userId: "u", operation: "chatgpt_message", metadata: nil))
        try f.run(.charge(userId: "u", operation: "image_generation", metadata: nil))
        try f.run(.refund(userId: "u", refundOf: "c1", amount: nil, metadata: nil))
        try f.run(.credit(userId: "u", operationType: "bonus", amount: 7, metadata: nil))
        f.clock.advance(by: 60)
        try f.run(.debit(userId: "u", operationType: "late", amount: 1, metadata: nil))
        let start = LedgerTime.parse("2026-01-15T10:01:00.000Z")!, end = LedgerTime.parse("2026-01-15T10:01:30.000Z")!
        let s = try f.query(.statistics(userId: "u", startDate: start, endDate: end))
        XCTAssertEqual(s.int("totalSpent"), 20)
        XCTAssertEqual(s.int("totalEarned"), 12)
        XCTAssertEqual(s.int("netChange"), -8)
        XCTAssertEqual(s.int("operationCount"), 5)
        let by = try XCTUnwrap(s["byOperation"] as? [String: [String: Any]])
        XCTAssertEqual(by["chatgpt_message"]?.int("count"), 2)
        XCTAssertEqual(by["chatgpt_message"]?.int("tokens"), -10)
        XCTAssertEqual(by["refund"]?.int("tokens"), 5)
        XCTAssertEqual(by["bonus"]?.int("tokens"), 7)
        XCTAssertNil(by["renewal"])
        XCTAssertNil(by["late"])
        let whole = try f.query(.statistics(userId: "u", startDate: Date(timeIntervalSince1970: 0), endDate: Date(timeIntervalSince1970: 4e9)))
        XCTAssertEqual(whole.int("operationCount"), 7)
        XCTAssertEqual(whole.int("netChange"), 91 - 100 + 100)  // balance 91 from 0
        XCTAssertEqual(try code(f.run(.statistics(userId: "u", startDate: end, endDate: start))), "invalid_date_range")
        XCTAssertEqual(try code(f.run(.statistics(userId: "nobody", startDate: start, endDate: end))), "user_not_found")
    }

    /// History and statistics seek `entry_index` on a ledger of a million merged entries.
    func testQueriesUseTheirIndexesOnAMillionEntries() throws {
        let f = try Fixture()
        try f.run(.open(userId: "probe"))
        try f.ledger.writer.write { db in
            try db.execute(sql: """
                INSERT INTO accounts (user_id, tier, balance, spent, anchor_ms, periods, last_renewal_ms, next_renewal_ms,
                    created_ms, entry_count)
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
                SELECT 'bulk' || i, 'Gift', 0, 0, 0, 0, 0, 0, 0, 1000 FROM n;
                INSERT INTO entries (id, account_id, created_ms, kind, operation_type, amount, balance_before, balance_after, hash)
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
                SELECT 100 + i, 2 + i % 1000, 1767000000000 + i * 1000, 1,
                    CASE i % 3 WHEN 0 THEN 'chatgpt_message' WHEN 1 THEN 'image_generation' ELSE 'other' END,
                    -1, 1000, 999, x'00' FROM n;
                INSERT INTO entry_index (account_id, created_ms, entry_id)
                    SELECT account_id, created_ms, id FROM entries WHERE id > 100 ORDER BY account_id, created_ms, id;
                UPDATE storage_state SET value = (SELECT max(id) FROM entries) WHERE name = 'merged_entry_id';
                ANALYZE;
                """)
        }
        f.ledger = try Ledger(path: f.path, clock: f.clock)  // the tail is read at open
        let plans = try f.ledger.writer.read { db -> [String: String] in
            var plans: [String: String] = [:]
            let sqls = ["page": LedgerTransaction.SQL.historyPage, "pageOfType": LedgerTransaction.SQL.historyPageOfType,
                        "count": LedgerTransaction.SQL.historyCount, "countOfType": LedgerTransaction.SQL.historyCountOfType,
                        "statistics": LedgerTransaction.SQL.statistics]
            for (name, sql) in sqls {
                let rows = try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: StatementArguments(
                    Array(repeating: 1 as Int64, count: (1...7).last { sql.contains("?\($0)") } ?? 3)))
                plans[name] = rows.map { $0["detail"] as String }.joined(separator: " | ")
            }
            return plans
        }
        for (name, plan) in plans {
            XCTAssertTrue(plan.contains("SEARCH x USING PRIMARY KEY (account_id=? AND created_ms>? AND created_ms<?)"), "\(name): \(plan)")
            XCTAssertFalse(plan.contains("SCAN entries"), "\(name): \(plan)")
        }
        XCTAssertFalse(plans["page"]!.contains("TEMP B-TREE"), plans["page"]!)
        // And they answer.
        let h = try json(f.ledger.read(.history(userId: "bulk7", limit: 5, offset: 10, operationType: "other", startDate: nil, endDate: nil)))
        XCTAssertEqual((h["entries"] as? [Any])?.count, 5)
        XCTAssertEqual(h.int("total"), 333)
        let s = try json(f.ledger.read(.statistics(userId: "bulk7", startDate: Date(timeIntervalSince1970: 0), endDate: Date(timeIntervalSince1970: 4e9))))
        XCTAssertEqual(s.int("operationCount"), 1000)
    }
}
