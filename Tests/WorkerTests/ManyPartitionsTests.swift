import Foundation
import JobWire
import Redis
import TestSupport
import Worker
import XCTest

/// Many partitions in one process cost little: the real executable serving 16 partitions against
/// a private redis-server (so that the server's command counts are this worker's alone).
final class ManyPartitionsTests: XCTestCase {
    static let count = 16

    func testIdlePartitionsSendAtMostOneCommandASecondAndShareTheirThreads() throws {
        let server = try RedisServerProcess()
        let h = try WorkerHarness(redisURL: server.url)
        let worker = try WorkerProcess(h, workerId: "many", environment: ["TOKENLEDGER_PARTITION_COUNT": "\(Self.count)"])
        defer { _ = worker.terminate() }
        let leases = (0..<Self.count).map { QueueKeys(prefix: h.keys.prefix, partition: $0).lease }
        try h.eventually(timeout: 120, "every partition's lease taken", log: worker.log) {
            try leases.allSatisfy { try h.redis.get($0) != nil }
        }
        // Past start-up (each partition's first sweep and renewal catch-up), and past the idle
        // waits' growth to their longest.
        sleep(6)
        let seconds = 10.0
        _ = try h.redis.send(RedisCommand("CONFIG", "RESETSTAT"))
        usleep(useconds_t(seconds * 1_000_000))
        let stats = try Self.commandCalls(h.redis)
        // The lease scripts' own GET and PEXPIRE count in the server's figures; the script call
        // itself is the one command sent.
        let sent = stats.filter { !["get", "pexpire", "config|resetstat", "info"].contains($0.key) }.values.reduce(0, +)
        let perPartitionSecond = Double(sent) / seconds / Double(Self.count)
        print("idle: \(sent) commands in \(seconds) s from \(Self.count) partitions: \(perPartitionSecond) a partition a second; \(stats)")
        XCTAssertLessThanOrEqual(perPartitionSecond, 1.0, "an idle partition sends at most one command a second: \(stats)")
        XCTAssertGreaterThan(sent, 0, "the idle worker still waits and renews: \(stats)")

        // Threads: the loop pool, its poller, the Redis lanes and the lease renewer, shared by all
        // partitions, so their count does not grow with the partitions'.
        let status = try String(contentsOfFile: "/proc/\(worker.pid)/status", encoding: .utf8)
        let threads = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("Threads:") }
            .flatMap { Int($0.dropFirst("Threads:".count).trimmingCharacters(in: .whitespaces)) })
        print("threads: \(threads) for \(Self.count) partitions")
        let cores = ProcessInfo.processInfo.activeProcessorCount
        XCTAssertLessThanOrEqual(threads, 2 * max(2, cores) + 10, "partitions share their loop threads, Redis threads and lease renewer")
        XCTAssertLessThan(threads, Self.count, "fewer threads than partitions")

        // An idle partition wakes at once for a job, on every partition.
        let partitioning = try Partitioning(count: Self.count)
        var users: [Int: String] = [:]
        var i = 0
        while users.count < Self.count {
            let user = "user-\(i)"
            if users[partitioning.partition(of: user)] == nil { users[partitioning.partition(of: user)] = user }
            i += 1
        }
        for (k, user) in users.sorted(by: { $0.key < $1.key }) {
            let keys = QueueKeys(prefix: h.keys.prefix, partition: k)
            let reply = h.replyKey()
            let started = Date()
            try h.redis.lpush(keys.jobs, #"{"type":"open","id":"o-\#(user)","userId":"\#(user)","replyTo":"\#(reply)"}"#)
            XCTAssertEqual(try h.reply(reply).bool("success"), true, "\(user) on partition \(k): \(worker.log)")
            XCTAssertLessThan(Date().timeIntervalSince(started), 1.0, "partition \(k) woke for its job without waiting out its idle wait")
        }
        // Idle again, every partition waits; a stop does not wait out those waits.
        sleep(3)
        let stopping = Date()
        XCTAssertEqual(worker.terminate(), 0, worker.log)
        print("stopped in \(Date().timeIntervalSince(stopping)) s")
        XCTAssertLessThan(Date().timeIntervalSince(stopping), 1.5, "the stop ended every partition's wait at once")
    }

    /// `INFO commandstats`: calls per command name.
    static func commandCalls(_ redis: RedisConnection) throws -> [String: Int] {
        let text = String(decoding: try redis.send(RedisCommand("INFO", "commandstats")).bytes ?? [], as: UTF8.self)
        var calls: [String: Int] = [:]
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            let name = line.dropFirst("cmdstat_".count).prefix { $0 != ":" }
            guard let range = line.range(of: "calls="), let value = Int(line[range.upperBound...].prefix { $0.isNumber }) else { continue }
            calls[String(name)] = value
        }
        return calls
    }
}
