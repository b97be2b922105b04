import Foundation
import Ledger
import LedgerModel
import Redis
import TestSupport
import Worker
import XCTest

/// setTier and balanceAt through a real redis-server, a real worker and a real SQLite file.
final class BillingEndToEndTests: XCTestCase {
    func testSetTierAnswersInvalidatesOnceWritesItsEventAndReplaysAsDuplicate() async throws {
        let h = try WorkerHarness()
        let subscriber = try RedisSubscriber(url: h.redisURL)
        try subscriber.subscribe([h.keys.balance])
        let worker = try h.startWorker()

        XCTAssertEqual(try h.call(["type": "open", "id": "o", "userId": "ann"]).bool("success"), true)
        XCTAssertEqual(try h.call(["type": "setTier", "id": "t0", "userId": "nobody", "tier": "Business"]).errorCode, "user_not_found")
        XCTAssertEqual(try h.call(["type": "setTier", "id": "t1", "userId": "ann", "tier": "Diamond"]).errorCode, "unknown_tier")
        XCTAssertEqual(try h.call(["type": "setTier", "id": "t2", "userId": "ann", "tier": "Business",
                                   "subscriptionExpiresAt": "2020-01-01T00:00:00.000Z"]).errorCode, "invalid_expiry")
        let set = try h.call(["type": "setTier", "id": "t3", "userId": "ann", "tier": "Professional",
                              "subscriptionExpiresAt": "2099-01-01T00:00:00.000Z"])
        XCTAssertEqual(set.bool("success"), true, "\(set)")
        XCTAssertEqual(set.string("tier"), "Professional")
        XCTAssertEqual(set.string("subscriptionExpiresAt"), "2099-01-01T00:00:00.000Z")
        XCTAssertEqual(set.bool("duplicate"), false)
        let again = try h.call(["type": "setTier", "id": "t3", "userId": "ann", "tier": "Professional",
                                "subscriptionExpiresAt": "2099-01-01T00:00:00.000Z"])
        XCTAssertEqual(again.bool("duplicate"), true)
        XCTAssertEqual(again.string("subscriptionExpiresAt"), set.string("subscriptionExpiresAt"))
        let balance = try h.call(["type": "balance", "userId": "ann"])
        XCTAssertEqual(balance.int("tokensBalance"), 100, "nothing credited")
        XCTAssertEqual(balance.string("tier"), "Professional")

        // One invalidation for the tier change, without an entry (and one repeated by the replay).
        var messages: [[String: Any]] = []
        while let m = try subscriber.receive(timeout: 1) {
            messages.append(try JSONSerialization.jsonObject(with: Data(m.payload)) as! [String: Any])
        }
        let tierMessages = messages.filter { $0.string("tier") == "Professional" }
        XCTAssertEqual(tierMessages.count, 2, "the change and its replay: \(messages)")
        XCTAssertTrue(tierMessages[0]["ledgerEntryId"] is NSNull)
        XCTAssertEqual(tierMessages[0].int("tokensBalance"), 100)

        // job.applied once, for the first application only.
        let applied = try h.redis.xrange(h.keys.events).filter { $0.value("event") == "job.applied" && $0.value("id") == "t3" }
        XCTAssertEqual(applied.count, 1)
        XCTAssertEqual(applied.first?.value("type"), "setTier")
        XCTAssertEqual(applied.first?.value("success"), "true")
        try await worker.stop()
    }

    func testBalanceAtThroughTheWorker() async throws {
        let h = try WorkerHarness()
        let worker = try h.startWorker()
        let before = LedgerTime.format(Date().addingTimeInterval(-60))
        let open = try h.call(["type": "open", "id": "o", "userId": "bo"])
        let charged = try h.call(["type": "charge", "id": "c", "userId": "bo", "operation": "chatgpt_message"])
        XCTAssertEqual(charged.int("newBalance"), 95)
        XCTAssertEqual(try h.call(["type": "balanceAt", "userId": "nobody", "at": before]).errorCode, "user_not_found")
        let early = try h.call(["type": "balanceAt", "userId": "bo", "at": before])
        XCTAssertEqual(early.bool("exists"), false, "\(early)")
        XCTAssertEqual(early.int("tokensBalance"), 0)
        let now = try h.call(["type": "balanceAt", "userId": "bo", "at": "2999-01-01T00:00:00.000Z"])
        XCTAssertEqual(now.bool("exists"), true)
        XCTAssertEqual(now.int("tokensBalance"), 95)
        XCTAssertEqual(now.int("tokensSpent"), 5)
        XCTAssertEqual(now.int("ledgerEntryId"), charged.int("ledgerEntryId"))
        XCTAssertNotEqual(now.int("ledgerEntryId"), open.int("ledgerEntryId"))
        try await worker.stop()
    }
}
