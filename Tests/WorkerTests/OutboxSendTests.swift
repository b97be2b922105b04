import Foundation
import Ledger
import Redis
import TestSupport
import Worker
import XCTest

/// How the worker's commands reach Redis: scripts by digest, falling back to their text when the
/// server lost its cache, and one `EXPIRE` per distinct reply key per batch. Each test has a
/// redis-server of its own, since it counts the server's commands (`INFO commandstats`).
final class OutboxSendTests: XCTestCase {
    /// Calls per command since the last `CONFIG RESETSTAT`, by lowercase name.
    func commandCalls(_ redis: RedisConnection) throws -> [String: Int] {
        let info = try redis.send("INFO", "commandstats").string ?? ""
        var calls: [String: Int] = [:]
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            let parts = line.dropFirst("cmdstat_".count).split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let field = parts[1].split(separator: ",").first,
                  field.hasPrefix("calls="), let n = Int(field.dropFirst("calls=".count)) else { continue }
            calls[String(parts[0])] = n
        }
        return calls
    }

    func charge(_ id: String, replyTo: String) -> String {
        #"{"type":"charge","id":"\#(id)","userId":"ann","operation":"chatgpt_message","replyTo":"\#(replyTo)"}"#
    }

    /// The take, the ordered outbox and the acknowledgement go by `EVALSHA`; after `SCRIPT FLUSH`
    /// they still run (each falls back to `EVAL` once), and the steady state sends no script text.
    func testScriptsGoByDigestAndStillRunAfterScriptFlush() async throws {
        let server = try RedisServerProcess()
        let h = try WorkerHarness(redisURL: server.url)
        let worker = try h.startWorker()
        XCTAssertEqual(try h.call(["type": "open", "id": "o1", "userId": "ann"]).bool("success"), true)
        try h.waitUntilDrained(timeout: 20)

        _ = try h.redis.send("SCRIPT", "FLUSH")
        _ = try h.redis.send("CONFIG", "RESETSTAT")
        let reply = h.replyKey()
        try h.redis.lpush(h.keys.jobs, charge("c1", replyTo: reply))
        XCTAssertEqual(try h.reply(reply, timeout: 20).int("newBalance"), 95)
        try h.waitUntilDrained(timeout: 20)
        let applied = try h.redis.send("XRANGE", h.keys.events, "-", "+").array ?? []
        XCTAssertTrue(applied.contains { ($0.array?.last?.array ?? []).compactMap(\.string).contains("c1") },
                      "the ordered script ran after the flush: c1's job.applied is on the stream")
        XCTAssertGreaterThan(try commandCalls(h.redis)["eval", default: 0], 0, "the flushed scripts were sent as text")

        _ = try h.redis.send("CONFIG", "RESETSTAT")
        for i in 2...15 {
            try h.redis.lpush(h.keys.jobs, charge("c\(i)", replyTo: reply))
            XCTAssertEqual(try h.reply(reply, timeout: 20).int("newBalance"), Int64(100 - 5 * i))
        }
        try h.waitUntilDrained(timeout: 20)
        let calls = try commandCalls(h.redis)
        XCTAssertEqual(calls["eval", default: 0], 0, "with the scripts cached, no script text is sent: \(calls)")
        XCTAssertGreaterThanOrEqual(calls["evalsha", default: 0], 3 * 14, "a take, the ordered part and the acknowledgement per job: \(calls)")
        try await worker.stop()
    }

    /// Many jobs of one producer share a `replyTo`: a batch sends one `EXPIRE` per distinct key,
    /// and keys are told apart by their bytes (an NFC and an NFD key are two keys, each expiring).
    func testOneExpirePerDistinctReplyKeyPerBatch() async throws {
        let server = try RedisServerProcess()
        let h = try WorkerHarness(redisURL: server.url)
        let worker = try h.startWorker()
        XCTAssertEqual(try h.call(["type": "open", "id": "o1", "userId": "ann"]).bool("success"), true)
        try h.waitUntilDrained(timeout: 20)

        let nfc = "\(h.keys.prefix):reply:caf\u{e9}"
        let nfd = "\(h.keys.prefix):reply:cafe\u{301}"
        XCTAssertEqual(nfc, nfd, "canonically equal as Swift strings")
        XCTAssertFalse(nfc.hasSameBytes(as: nfd))
        _ = try h.redis.send("CONFIG", "RESETSTAT")
        // One LPUSH: the ten jobs are in the queue at once, so one take holds them all.
        let jobs = (1...10).map { charge("c\($0)", replyTo: $0 % 2 == 0 ? nfc : nfd) }
        _ = try h.redis.send(RedisCommand("LPUSH", arguments: [h.keys.jobs] + jobs))
        try h.eventually(timeout: 20, "every reply arrived") {
            try h.redis.llen(nfc) == 5 && (try h.redis.llen(nfd)) == 5
        }
        try h.waitUntilDrained(timeout: 20)
        XCTAssertEqual(try commandCalls(h.redis)["expire", default: 0], 2, "one EXPIRE per distinct reply key")
        for key in [nfc, nfd] {
            XCTAssertGreaterThan(try h.redis.send("TTL", key).int ?? -2, 0, "each key expires, NFC and NFD alike")
        }
        try await worker.stop()
    }
}
