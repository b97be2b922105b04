import Foundation
import Ledger
import LedgerModel
import Worker
import XCTest

/// The scheduler with a clock the test controls: a run at its slot, catch-up of a missed run at
/// start-up, and never a second renewal of one account for one period.
final class RenewalSchedulerTests: XCTestCase {
    func date(_ text: String) -> Date { try! Date(text, strategy: .iso8601) }

    func renewalEntries(_ h: WorkerHarness, _ user: String) throws -> Int {
        let history = try h.call(["type": "history", "userId": user, "operationType": "renewal", "limit": 100])
        return Int(history.int("total") ?? -1)
    }

    func testCatchUpAtStartAndNoDoubleRenewal() async throws {
        let h = try WorkerHarness()
        let clock = ManualClock(date("2026-01-15T10:00:00Z"))
        var worker = try h.startWorker(clock: clock)
        _ = try h.call(["type": "open", "id": "o1", "userId": "gus"])
        _ = try h.call(["type": "debit", "id": "d1", "userId": "gus", "operationType": "x", "amount": 60])
        try await worker.stop()

        // Due Feb 15 10:00; down across the Feb 16 02:00 slot, started again later that day:
        // the missed run is caught up.
        clock.set(date("2026-02-16T09:30:00Z"))
        worker = try h.startWorker(clock: clock)
        try h.eventually("renewal caught up") { try h.call(["type": "balance", "userId": "gus"]).int("tokensBalance") == 100 }
        XCTAssertEqual(try renewalEntries(h, "gus"), 2, "open's grant and one renewal")
        let balance = try h.call(["type": "balance", "userId": "gus"])
        XCTAssertEqual(balance.string("lastRenewalAt"), "2026-02-15T10:00:00.000Z", "the period start, not the moment of the run")
        try await worker.stop()

        // Restarts and later slots in the same period renew nothing more.
        worker = try h.startWorker(clock: clock)
        _ = try h.call(["type": "debit", "id": "d2", "userId": "gus", "operationType": "x", "amount": 10])
        clock.set(date("2026-02-17T02:00:00Z"))
        try await worker.stop()
        worker = try h.startWorker(clock: clock)
        XCTAssertEqual(try h.call(["type": "balance", "userId": "gus"]).int("tokensBalance"), 90)
        XCTAssertEqual(try renewalEntries(h, "gus"), 2)
        XCTAssertEqual(try h.call(["type": "renew", "id": "r1", "userId": "gus"]).errorCode, "not_eligible")
        try await worker.stop()
    }

    func testRunsAtTheSlotWhileRunningAndRenewsInChunks() async throws {
        let h = try WorkerHarness()
        let clock = SteppingClock(date("2026-03-31T12:00:00Z"))
        var config = try h.configuration(cron: "0 2 * * *")
        config.renewalChunkSize = 7
        let worker = try h.startWorker(clock: clock, configuration: config)
        for i in 0..<30 {
            _ = try h.push(["type": "open", "id": "o\(i)", "userId": "u\(i)"])
            // Below the allocation, so that each renewal writes a top-up entry to observe.
            _ = try h.push(["type": "debit", "id": "d\(i)", "userId": "u\(i)", "operationType": "x", "amount": i == 29 ? 100 : 1])
        }
        XCTAssertEqual(try h.call(["type": "balance", "userId": "u29"]).int("tokensBalance"), 0)
        // Month-end clamping: opened Mar 31 12:00, due Apr 30 12:00; the May 1 02:00 run renews everyone.
        clock.set(date("2026-05-01T02:00:30Z"))
        try h.eventually("u29 renewed") { try h.call(["type": "balance", "userId": "u29"]).int("tokensBalance") == 100 }
        let eligibility = try h.call(["type": "eligibility", "userId": "u0"])
        XCTAssertEqual(eligibility.bool("eligible"), false)
        // (The stepping clock opened u0 a few milliseconds after 12:00:00.)
        XCTAssertEqual(eligibility.string("nextRenewalDate")?.prefix(20), "2026-05-31T12:00:00.", "back to the anchor day after a short month")

        // The chunks: each is one transaction, which reads the clock once, so the entries of one
        // chunk share a time and no two chunks do (the clock moves on every read).
        var perChunk: [String: Int] = [:]
        for i in 0..<30 {
            let history = try h.call(["type": "history", "userId": "u\(i)", "operationType": "renewal", "limit": 1])
            let newest = try XCTUnwrap((history["entries"] as? [[String: Any]])?.first)
            XCTAssertEqual(history.int("total"), 2, "u\(i): open's grant and one renewal")
            XCTAssertEqual(newest.int("tokensAmount"), i == 29 ? 100 : 1, "u\(i) topped up")
            perChunk[try XCTUnwrap(newest.string("createdAt")), default: 0] += 1
        }
        XCTAssertEqual(perChunk.values.sorted(), [2, 7, 7, 7, 7], "30 accounts in chunks of at most 7: \(perChunk)")
        try await worker.stop()
    }
}

/// A manual clock that also moves on by one millisecond each time it is read, so that two
/// transactions never share a time.
final class SteppingClock: LedgerClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    init(_ start: Date) { current = start }

    func now() -> Date {
        lock.lock(); defer { lock.unlock() }
        current = current.addingTimeInterval(0.001)
        return current
    }

    func set(_ date: Date) {
        lock.lock(); defer { lock.unlock() }
        current = date
    }
}
