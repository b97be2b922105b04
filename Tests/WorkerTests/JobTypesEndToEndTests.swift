import Foundation
import Ledger
import Redis
import TestSupport
import Worker
import XCTest

/// Every job type through a real redis-server, a real worker and a real SQLite file.
final class JobTypesEndToEndTests: XCTestCase {
    func testEveryJobTypeRepliesAndPublishes() async throws {
        let h = try WorkerHarness()
        let subscriber = try RedisSubscriber(url: h.redisURL)
        try subscriber.subscribe([h.keys.balance])
        let worker = try h.startWorker()

        let open = try h.call(["type": "open", "id": "j-open", "userId": "alice"])
        XCTAssertEqual(open.bool("success"), true, "\(open)")
        XCTAssertEqual(open.string("id"), "j-open")
        XCTAssertEqual(open.string("type"), "open")
        XCTAssertEqual(open.int("newBalance"), 100)
        XCTAssertEqual(open.bool("duplicate"), false)
        XCTAssertNotNil(open.int("ledgerEntryId"))

        let charge = try h.call(["type": "charge", "id": "j-charge", "userId": "alice", "operation": "chatgpt_message",
                                 "metadata": ["conversation": "c1", "n": 3]])
        XCTAssertEqual(charge.int("newBalance"), 95, "\(charge)")
        XCTAssertEqual(charge.int("tokensAmount"), -5)
        XCTAssertGreaterThan(charge.int("ledgerEntryId")!, open.int("ledgerEntryId")!)

        let replay = try h.call(["type": "charge", "id": "j-charge", "userId": "alice", "operation": "chatgpt_message"])
        XCTAssertEqual(replay.bool("duplicate"), true)
        XCTAssertEqual(replay.int("newBalance"), 95, "a replay answers the first result")
        XCTAssertEqual(replay.int("ledgerEntryId"), charge.int("ledgerEntryId"))

        XCTAssertEqual(try h.call(["type": "debit", "id": "j-debit", "userId": "alice", "operationType": "api", "amount": 15]).int("newBalance"), 80)
        XCTAssertEqual(try h.call(["type": "credit", "id": "j-credit", "userId": "alice", "operationType": "bonus", "amount": 20]).int("newBalance"), 100)
        let refund = try h.call(["type": "refund", "id": "j-refund", "userId": "alice", "refundOf": "j-charge"])
        XCTAssertEqual(refund.int("newBalance"), 105, "\(refund)")
        XCTAssertEqual(refund.int("tokensAmount"), 5)
        XCTAssertEqual(try h.call(["type": "refund", "id": "j-refund2", "userId": "alice", "refundOf": "j-charge"]).errorCode, "refund_exceeds_charge")

        let poor = try h.call(["type": "debit", "id": "j-big", "userId": "alice", "operationType": "api", "amount": 1000])
        XCTAssertEqual(poor.bool("success"), false)
        XCTAssertEqual(poor.errorCode, "insufficient_tokens")
        XCTAssertEqual(poor.int("balance"), 105)
        XCTAssertEqual(poor.int("required"), 1000)
        XCTAssertEqual(poor.int("deficit"), 895)

        let purchase = try h.call(["type": "purchase", "id": "j-buy", "userId": "alice", "tier": "Professional", "paymentId": "pay_1"])
        XCTAssertEqual(purchase.bool("success"), true, "\(purchase)")
        let samePayment = try h.call(["type": "purchase", "id": "j-buy-again", "userId": "alice", "tier": "Professional", "paymentId": "pay_1"])
        XCTAssertEqual(samePayment.bool("duplicate"), true, "one paymentId is applied once: \(samePayment)")

        let balance = try h.call(["type": "balance", "userId": "alice"])
        XCTAssertEqual(balance.string("tier"), "Professional")
        XCTAssertEqual(balance.int("tokensBalance"), purchase.int("newBalance"))
        XCTAssertNotNil(balance.string("lastRenewalAt"))
        XCTAssertNil(balance["duplicate"], "queries carry no duplicate flag")

        let afford = try h.call(["type": "canAfford", "userId": "alice", "operation": "image_generation"])
        XCTAssertEqual(afford.bool("canAfford"), true)
        XCTAssertEqual(afford.int("cost"), 10)

        let history = try h.call(["type": "history", "userId": "alice", "limit": 2])
        let entries = history["entries"] as! [[String: Any]]
        XCTAssertEqual(entries.count, 2)
        XCTAssertEqual(history.int("total"), 6, "refusals write no entry")
        XCTAssertEqual(entries[0].string("operationType"), "purchase", "newest first")
        let charged = try h.call(["type": "history", "userId": "alice", "operationType": "chatgpt_message"])
        let chargedEntry = (charged["entries"] as! [[String: Any]])[0]
        XCTAssertEqual(chargedEntry["metadata"] as? NSDictionary, ["conversation": "c1", "n": 3] as NSDictionary, "metadata comes back as equal JSON")
        XCTAssertEqual(chargedEntry.string("jobId"), "j-charge")

        let stats = try h.call(["type": "statistics", "userId": "alice", "startDate": "2000-01-01T00:00:00.000Z", "endDate": "2100-01-01T00:00:00.000Z"])
        XCTAssertEqual(stats.int("totalSpent"), 20, "\(stats)")
        XCTAssertEqual(stats.int("operationCount"), 6)

        let eligibility = try h.call(["type": "eligibility", "userId": "alice"])
        XCTAssertEqual(eligibility.bool("eligible"), false)
        XCTAssertEqual(try h.call(["type": "renew", "id": "j-renew", "userId": "alice"]).errorCode, "not_eligible")
        let dry = try h.call(["type": "renewAll", "dryRun": true])
        XCTAssertEqual(dry.int("totalProcessed"), 0, "\(dry)")
        XCTAssertEqual(try h.call(["type": "open", "id": "j-open-again", "userId": "alice"]).errorCode, "account_exists")
        XCTAssertEqual(try h.call(["type": "charge", "id": "j-x", "userId": "nobody", "operation": "chatgpt_message"]).errorCode, "user_not_found")
        XCTAssertEqual(try h.call(["type": "charge", "id": "j-y", "userId": "alice", "operation": "teleport"]).errorCode, "unknown_operation")
        XCTAssertEqual(try h.call(["type": "debit", "id": "j-z", "userId": "alice", "operationType": "api", "amount": 0]).errorCode, "invalid_amount")
        XCTAssertEqual(try h.call(["type": "purchase", "id": "j-t", "userId": "alice", "tier": "Platinum", "paymentId": "p9"]).errorCode, "unknown_tier")

        // Invalidations: one per entry or tier change, each with the whole balance.
        var messages: [[String: Any]] = []
        while let message = try subscriber.receive(timeout: 1) {
            messages.append(try JSONSerialization.jsonObject(with: Data(message.payload)) as! [String: Any])
        }
        let ids = messages.compactMap { $0.int("ledgerEntryId") }
        XCTAssertTrue(ids.contains(open.int("ledgerEntryId")!))
        XCTAssertTrue(ids.contains(charge.int("ledgerEntryId")!))
        let chargeMessage = messages.first { $0.int("ledgerEntryId") == charge.int("ledgerEntryId") }!
        XCTAssertEqual(chargeMessage.string("userId"), "alice")
        XCTAssertEqual(chargeMessage.int("tokensBalance"), 95)
        XCTAssertEqual(chargeMessage.int("tokensSpent"), 5)
        XCTAssertEqual(chargeMessage.string("tier"), "Gift")
        XCTAssertEqual(chargeMessage.string("operationType"), "chatgpt_message")
        XCTAssertEqual(chargeMessage.int("tokensAmount"), -5)
        XCTAssertNotNil(chargeMessage.string("at"))
        XCTAssertNil(poor.int("ledgerEntryId"), "a refusal writes no entry")
        XCTAssertEqual(try h.redis.llen(h.keys.dead), 0)

        // A refusal publishes nothing: messages leave in commit order, so anything the refusal
        // published would arrive before the marker credit's message.
        let refused = try h.call(["type": "debit", "id": "j-poor-2", "userId": "alice", "operationType": "api", "amount": 1_000_000])
        XCTAssertEqual(refused.errorCode, "insufficient_tokens")
        let marker = try h.call(["type": "credit", "id": "j-marker", "userId": "alice", "operationType": "bonus", "amount": 1])
        let next = try XCTUnwrap(try subscriber.receive(timeout: 5), "the marker's invalidation")
        let first = try JSONSerialization.jsonObject(with: Data(next.payload)) as! [String: Any]
        XCTAssertEqual(first.int("ledgerEntryId"), marker.int("ledgerEntryId"), "the first message after the refusal is the marker's: \(first)")

        // A query's reply expires like any other (PTTL is -2 for a missing key, -1 for one that never expires).
        let queryReply = try h.push(["type": "balance", "userId": "alice"])
        try h.eventually("query reply pushed") { try h.redis.llen(queryReply) == 1 }
        let ttl = try h.redis.pttl(queryReply)
        XCTAssertGreaterThan(ttl, 0, "the reply key has an expiry")
        XCTAssertLessThanOrEqual(ttl, 600_000)

        try await worker.stop()
        XCTAssertNil(try h.redis.get(h.keys.lease), "a graceful stop releases the lease")
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }

    /// A purchase keyed by a payment provider's id (with `_`) is applied, not dead-lettered.
    func testPaymentProviderIdsAreApplied() async throws {
        let h = try WorkerHarness()
        let worker = try h.startWorker()
        let purchase = try h.call(["type": "purchase", "id": "pay_pi_3Nf", "userId": "dora", "tier": "Professional", "paymentId": "pay_pi_3Nf"])
        XCTAssertEqual(purchase.bool("success"), true, "\(purchase)")
        XCTAssertEqual(purchase.string("id"), "pay_pi_3Nf")
        XCTAssertEqual(purchase.bool("duplicate"), false)
        let again = try h.call(["type": "purchase", "id": "pay_pi_3Nf", "userId": "dora", "tier": "Professional", "paymentId": "pay_pi_3Nf"])
        XCTAssertEqual(again.bool("duplicate"), true, "the id is the idempotency key: \(again)")
        XCTAssertEqual(try h.redis.llen(h.keys.dead), 0)
        try await worker.stop()
    }

    func testRepliesExpire() async throws {
        let h = try WorkerHarness()
        let worker = try h.startWorker()
        let key = try h.push(["type": "open", "id": "e1", "userId": "bob"])
        try h.eventually("reply pushed") { try h.redis.llen(key) == 1 }
        let ttl = try h.redis.pttl(key)
        XCTAssertGreaterThan(ttl, 590_000)
        XCTAssertLessThanOrEqual(ttl, 600_000)
        try await worker.stop()
    }

    func testJobsOfOneUserApplyInQueueOrder() async throws {
        let h = try WorkerHarness()
        try h.push(["type": "open", "id": "o", "userId": "carol"])
        // 120 debits of 1 then a balance query, all queued before the worker starts.
        for i in 0..<99 { try h.push(["type": "debit", "id": "d\(i)", "userId": "carol", "operationType": "x", "amount": 1]) }
        let last = try h.push(["type": "debit", "id": "d-last", "userId": "carol", "operationType": "x", "amount": 1])
        let overdraw = try h.push(["type": "debit", "id": "d-over", "userId": "carol", "operationType": "x", "amount": 1])
        let worker = try h.startWorker(configuration: try h.configuration(batchSize: 16))
        XCTAssertEqual(try h.reply(last).int("newBalance"), 0)
        XCTAssertEqual(try h.reply(overdraw).errorCode, "insufficient_tokens", "the 101st debit comes after the 100th")
        try await worker.stop()
    }
}
