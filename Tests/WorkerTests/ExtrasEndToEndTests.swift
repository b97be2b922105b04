import Foundation
import Ledger
import LedgerModel
import Redis
import TestSupport
import Worker
import XCTest

/// Reservations, grants, monitors and the events stream through a real redis-server, a real
/// worker and a real SQLite file, with the clock under the test's control.
final class ExtrasEndToEndTests: XCTestCase {
    func streamEvents(_ h: WorkerHarness) throws -> [StreamEntry] { try h.redis.xrange(h.keys.events) }

    func json(_ payload: [UInt8]) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(payload)) as! [String: Any]
    }

    func testHoldCaptureEventsAlertsAndInvalidations() async throws {
        let h = try WorkerHarness()
        let subscriber = try RedisSubscriber(url: h.redisURL)
        try subscriber.subscribe([h.keys.balance, h.keys.alerts])
        let worker = try h.startWorker()

        XCTAssertEqual(try h.call(["type": "open", "id": "o", "userId": "al"]).bool("success"), true)
        XCTAssertEqual(try h.call(["type": "monitor", "id": "m", "userId": "al", "threshold": 50]).string("monitorId"), "m")
        let hold = try h.call(["type": "hold", "id": "h", "userId": "al", "amount": 60, "expiresIn": 120])
        XCTAssertEqual(hold.bool("success"), true, "\(hold)")
        XCTAssertEqual(hold.int("available"), 40)
        XCTAssertEqual(hold.bool("duplicate"), false)
        let holds = try h.call(["type": "holds", "userId": "al"])
        XCTAssertEqual((holds["holds"] as? [[String: Any]])?.first?.string("holdId"), "h")
        XCTAssertEqual(try h.call(["type": "charge", "id": "c", "userId": "al", "operation": "image_generation"]).int("newBalance"), 90)
        XCTAssertEqual(try h.call(["type": "debit", "id": "d", "userId": "al", "operationType": "x", "amount": 31]).errorCode, "insufficient_tokens")
        let capture = try h.call(["type": "capture", "id": "cap", "userId": "al", "holdId": "h", "amount": 45, "operationType": "llm"])
        XCTAssertEqual(capture.int("released"), 15, "\(capture)")
        XCTAssertEqual(capture.int("available"), 45)
        XCTAssertEqual(try h.call(["type": "capture", "id": "cap", "userId": "al", "holdId": "h", "amount": 45]).bool("duplicate"), true)
        XCTAssertEqual(try h.call(["type": "capture", "id": "cap2", "userId": "al", "holdId": "h"]).errorCode, "hold_closed")
        let balance = try h.call(["type": "balance", "userId": "al"])
        XCTAssertEqual(balance.int("held"), 0)
        XCTAssertEqual(balance.int("available"), 45)

        // Invalidations: the hold's message has no entry and carries held/available.
        var messages: [[String: Any]] = [], alerts: [[String: Any]] = []
        while let m = try subscriber.receive(timeout: 1) {
            if m.channel == h.keys.alerts { alerts.append(try json(m.payload)) } else { messages.append(try json(m.payload)) }
        }
        let holdMessage = try XCTUnwrap(messages.first { $0.int("held") == 60 })
        XCTAssertTrue(holdMessage["ledgerEntryId"] is NSNull)
        XCTAssertTrue(holdMessage["operationType"] is NSNull)
        XCTAssertTrue(holdMessage["tokensAmount"] is NSNull)
        XCTAssertEqual(holdMessage.int("available"), 40)
        XCTAssertEqual(messages.last?.int("available"), 45)
        XCTAssertEqual(alerts.count, 1, "one crossing of 50: \(alerts)")
        XCTAssertEqual(alerts.first?.string("event"), "balance.low")
        XCTAssertEqual(alerts.first?.string("monitorId"), "m")
        XCTAssertEqual(alerts.first?.int("available"), 40, "the hold crossed it")

        // The stream: one job.applied per applied job (not for the duplicate, not for queries).
        let events = try streamEvents(h)
        let applied = events.filter { $0.value("event") == "job.applied" }
        XCTAssertEqual(applied.map { $0.value("id") ?? "" }, ["o", "m", "h", "c", "d", "cap", "cap2"])
        let captureEvent = try XCTUnwrap(applied.first { $0.value("id") == "cap" })
        XCTAssertEqual(captureEvent.value("tokensAmount"), "-45")
        XCTAssertEqual(captureEvent.value("operationType"), "llm")
        XCTAssertEqual(captureEvent.value("newBalance"), "45")
        XCTAssertEqual(captureEvent.value("success"), "true")
        XCTAssertEqual(applied.first { $0.value("id") == "d" }?.value("code"), "insufficient_tokens")
        XCTAssertNil(applied.first { $0.value("id") == "d" }?.value("ledgerEntryId"), "absent fields are left out")
        XCTAssertEqual(events.filter { $0.value("event") == "balance.low" }.count, 1)
        try await worker.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }

    func testAHoldThatExpiredWhileTheWorkerWasDownIsReleasedAtStartWithItsTime() async throws {
        let h = try WorkerHarness()
        let clock = ManualClock(LedgerTime.parse("2026-03-01T12:00:00Z")!)
        var worker = try h.startWorker(clock: clock)
        _ = try h.call(["type": "open", "id": "o", "userId": "bo"])
        let hold = try h.call(["type": "hold", "id": "h", "userId": "bo", "amount": 70, "expiresIn": 60])
        XCTAssertEqual(hold.string("expiresAt"), "2026-03-01T12:01:00.000Z")
        try await worker.stop()

        let subscriber = try RedisSubscriber(url: h.redisURL)
        try subscriber.subscribe([h.keys.balance])
        clock.set(LedgerTime.parse("2026-03-01T15:00:00Z")!)
        worker = try h.startWorker(clock: clock)
        try h.eventually("hold.expired on the stream") {
            try streamEvents(h).contains { $0.value("event") == "hold.expired" }
        }
        let expired = try XCTUnwrap(try streamEvents(h).first { $0.value("event") == "hold.expired" })
        XCTAssertEqual(expired.value("holdId"), "h")
        XCTAssertEqual(expired.value("amount"), "70")
        XCTAssertEqual(expired.value("userId"), "bo")
        XCTAssertEqual(expired.value("at"), "2026-03-01T12:01:00.000Z", "when it expired, not when the worker came back")
        let message = try json(try XCTUnwrap(try subscriber.receive(timeout: 5)).payload)
        XCTAssertEqual(message.int("held"), 0)
        XCTAssertEqual(message.int("available"), 100)
        XCTAssertEqual(try h.call(["type": "release", "id": "r", "userId": "bo", "holdId": "h"]).errorCode, "hold_expired")
        try await worker.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }

    func testGrantsLapseInOrderAndTheSweepWritesUntouchedAccounts() async throws {
        let h = try WorkerHarness()
        let clock = ManualClock(LedgerTime.parse("2026-03-01T12:00:00Z")!)
        let worker = try h.startWorker(clock: clock)
        _ = try h.call(["type": "open", "id": "o", "userId": "cy"])
        let soon = try h.call(["type": "credit", "id": "g1", "userId": "cy", "operationType": "promo", "amount": 20, "expiresIn": 60])
        XCTAssertEqual(soon.string("grantId"), "g1", "\(soon)")
        _ = try h.call(["type": "credit", "id": "g2", "userId": "cy", "operationType": "promo", "amount": 20,
                        "expiresAt": "2026-03-01T14:00:00Z"])
        _ = try h.call(["type": "debit", "id": "d", "userId": "cy", "operationType": "x", "amount": 30])
        let grants = try h.call(["type": "balance", "userId": "cy"])["grants"] as! [[String: Any]]
        XCTAssertEqual(grants.map { $0.string("grantId") ?? "" }, ["g2"])
        XCTAssertEqual(grants.first?.int("remaining"), 10)
        clock.set(LedgerTime.parse("2026-03-01T14:00:00Z")!)
        try h.eventually("the sweep lapses g2 without any job") {
            try streamEvents(h).contains { $0.value("event") == "grant.expired" && $0.value("grantId") == "g2" }
        }
        let lapse = try XCTUnwrap(try streamEvents(h).first { $0.value("event") == "grant.expired" })
        XCTAssertEqual(lapse.value("tokensAmount"), "-10")
        XCTAssertEqual(lapse.value("expiresAt"), "2026-03-01T14:00:00.000Z")
        XCTAssertEqual(try h.call(["type": "balance", "userId": "cy"]).int("tokensBalance"), 100)
        XCTAssertEqual(try h.call(["type": "credit", "id": "x", "userId": "cy", "operationType": "expiry", "amount": 1]).errorCode,
                       "reserved_operation_type")
        try await worker.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }
}

/// The events stream's settings and the operator's `tokenledger events`.
final class EventsSettingsTests: XCTestCase {
    func testStreamOffStillPublishesAlertsAndTheDefaultMonitorFires() async throws {
        let h = try WorkerHarness()
        let subscriber = try RedisSubscriber(url: h.redisURL)
        try subscriber.subscribe([h.keys.alerts])
        var configuration = try h.configuration()
        configuration.eventsMaxLength = nil
        let worker = try h.startWorker(ledgerConfig: LedgerConfig(defaultMonitorThreshold: 50), configuration: configuration)
        _ = try h.call(["type": "open", "id": "o", "userId": "di"])
        _ = try h.call(["type": "debit", "id": "d", "userId": "di", "operationType": "x", "amount": 60])
        let alert = try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(try subscriber.receive(timeout: 5)).payload)) as! [String: Any]
        XCTAssertEqual(alert.string("monitorId"), "default")
        XCTAssertEqual(alert.int("threshold"), 50)
        XCTAssertEqual(alert.int("available"), 40)
        XCTAssertEqual(try h.redis.xlen(h.keys.events), 0, "the stream is off")
        try await worker.stop()
    }

    func testTokenledgerEventsPrintsTheStreamFiltered() async throws {
        let h = try WorkerHarness()
        let worker = try h.startWorker()
        _ = try h.call(["type": "open", "id": "o", "userId": "ed"])
        _ = try h.call(["type": "charge", "id": "c", "userId": "ed", "operation": "chatgpt_message"])
        _ = try h.call(["type": "balance", "userId": "ed"])
        try await worker.stop()
        let (status, output) = try runTokenLedger(["events", "--redis-url", h.redisURL, "--prefix", h.keys.prefix,
                                                   "--from", "0", "--type", "job.applied", "--no-follow"])
        XCTAssertEqual(status, 0, output)
        let lines = output.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(lines.map { $0.string("id") ?? "" }, ["o", "c"], output)
        XCTAssertEqual(lines.last?.string("newBalance"), "95")
        XCTAssertNotNil(lines.first?.string("streamId"))
        let (_, one) = try runTokenLedger(["events", "--redis-url", h.redisURL, "--prefix", h.keys.prefix, "--from", "0", "--count", "1"])
        XCTAssertEqual(one.split(separator: "\n").count, 1, "--count stops after that many")
    }

    /// A split ledger's workers write `P:{k}:events`; the command follows each partition's
    /// stream (or the ones named), never the untagged one.
    func testTokenledgerEventsFollowsEveryPartitionsStream() throws {
        let h = try WorkerHarness()
        let prefix = h.keys.prefix
        for k in 0..<3 {
            try h.redis.xadd("\(prefix):{\(k)}:events", [("event", "job.applied"), ("id", "j\(k)"), ("partition", "\(k)")])
        }
        let base = ["events", "--redis-url", h.redisURL, "--prefix", prefix, "--partition-count", "3", "--from", "0", "--no-follow"]
        var (status, output) = try runTokenLedger(base)
        XCTAssertEqual(status, 0, output)
        func ids(_ text: String) -> [String] {
            text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .compactMap { $0.string("id") }.sorted()
        }
        XCTAssertEqual(ids(output), ["j0", "j1", "j2"], output)
        (status, output) = try runTokenLedger(base + ["--partitions", "0,2"])
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(ids(output), ["j0", "j2"], output)
    }
}
