import Foundation
import Ledger
import LedgerModel
import Redis
import XCTest

/// Invalidations leave in commit order, whichever part of the worker made the change: here
/// job batches and a renewal run whose chunks are interleaved with them.
final class InvalidationOrderTests: XCTestCase {
    func testBatchesAndRenewalChunksPublishInCommitOrder() async throws {
        let h = try WorkerHarness()
        let clock = ManualClock(try Date("2026-03-10T12:00:00Z", strategy: .iso8601))
        var config = try h.configuration(batchSize: 16)
        config.renewalChunkSize = 5
        let worker = try h.startWorker(clock: clock, configuration: config)
        let users = 200
        _ = try h.redis.pipeline((0..<users).map { RedisCommand("LPUSH", h.keys.jobs, #"{"type":"open","id":"o\#($0)","userId":"u\#($0)"}"#) })
        _ = try h.redis.pipeline((0..<users).map { RedisCommand("LPUSH", h.keys.jobs, #"{"type":"debit","id":"d\#($0)","userId":"u\#($0)","operationType":"x","amount":50}"#) })
        XCTAssertEqual(try h.call(["type": "debit", "id": "last", "userId": "u0", "operationType": "x", "amount": 1]).int("newBalance"), 49)

        let subscriber = try RedisSubscriber(url: h.redisURL)
        try subscriber.subscribe([h.keys.balance])
        // The run renews 200 accounts five at a time while 600 charges stream in beside it.
        clock.set(try Date("2026-04-11T02:00:30Z", strategy: .iso8601))
        for round in 0..<3 {
            _ = try h.redis.pipeline((0..<users).map {
                RedisCommand("LPUSH", h.keys.jobs, #"{"type":"charge","id":"c\#(round)-\#($0)","userId":"u\#($0)","operation":"chatgpt_message"}"#)
            })
        }
        try h.eventually(timeout: 30, "the run and the charges are done") {
            let renewed = try (0..<users).allSatisfy { try h.call(["type": "eligibility", "userId": "u\($0)"]).bool("eligible") == false }
            let spent = try h.call(["type": "history", "userId": "u\(users - 1)", "operationType": "chatgpt_message"]).int("total")
            return renewed && spent == 3
        }
        var ids: [Int64] = []
        var renewals = 0
        while let message = try subscriber.receive(timeout: 1) {
            let object = try JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any]
            if let id = object?.int("ledgerEntryId") { ids.append(id) }
            if object?.string("operationType") == "renewal" { renewals += 1 }
        }
        XCTAssertEqual(renewals, users, "one renewal invalidation per account")
        XCTAssertGreaterThanOrEqual(ids.count, users * 4)
        let disorder = zip(ids, ids.dropFirst()).filter { $0.0 >= $0.1 }
        XCTAssertTrue(disorder.isEmpty, "invalidations out of commit order: \(disorder.prefix(5))")
        try await worker.stop()
    }
}
