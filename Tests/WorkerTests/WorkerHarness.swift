import Foundation
import Ledger
import JobWire
import Logging
import Redis
import TestSupport
import Worker
import XCTest

/// A queue prefix, a ledger file and helpers to push jobs and read replies, against the real
/// redis-server of `REDIS_URL` and a real SQLite file in a temporary folder.
final class WorkerHarness {
    let directory: URL
    let databasePath: String
    let keys: QueueKeys
    let redisURL: String
    let redis: RedisConnection

    init(redisURL: String = TestEnvironment.redisURL, keys: QueueKeys? = nil) throws {
        directory = try TestEnvironment.temporaryDirectory()
        databasePath = directory.appendingPathComponent("ledger.sqlite").path
        self.keys = keys ?? QueueKeys(prefix: TestEnvironment.uniquePrefix("tl"))
        self.redisURL = redisURL
        redis = try RedisConnection(url: redisURL)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func configuration(workerId: String = "w-\(UUID().uuidString.prefix(6))", batchSize: Int = 256,
                       leaseMilliseconds: Int = 2000, cron: String = "0 2 * * *") throws -> WorkerConfiguration {
        WorkerConfiguration(redis: try RedisTarget(url: redisURL), keys: keys, workerId: workerId,
                            batchSize: batchSize, leaseMilliseconds: leaseMilliseconds, pollSeconds: 0.1,
                            renewalSchedule: try CronSchedule(cron))
    }

    /// Runs a worker in this process until `stop()`.
    final class InProcessWorker: @unchecked Sendable {
        let task: Task<Void, any Error>
        init(task: Task<Void, any Error>) { self.task = task }
        func stop() async throws {
            task.cancel()
            try await task.value
        }
    }

    func startWorker(clock: any LedgerClock = SystemClock(), ledgerConfig: LedgerConfig = .init(),
                     configuration: WorkerConfiguration? = nil, health: WorkerHealth = WorkerHealth()) throws -> InProcessWorker {
        let ledger = try Ledger(path: databasePath, config: ledgerConfig, clock: clock)
        var logger = Logger(label: "test-worker")
        logger.logLevel = .warning
        let service = WorkerService(configuration: try configuration ?? self.configuration(), ledger: ledger,
                                    clock: clock, logger: logger, health: health)
        return InProcessWorker(task: Task { try await service.run() })
    }

    func replyKey() -> String { "\(keys.prefix):reply:\(UUID().uuidString.prefix(8))" }

    /// Pushes a job object (replyTo added) and returns the reply key.
    @discardableResult
    func push(_ job: [String: Any], replyTo: String? = nil) throws -> String {
        var job = job
        let key = replyTo ?? replyKey()
        job["replyTo"] = key
        try pushRaw(Array(try JSONSerialization.data(withJSONObject: job)))
        return key
    }

    func pushRaw(_ raw: [UInt8]) throws {
        try redis.lpush(keys.jobs, raw)
    }

    /// Waits for the reply on `key` and decodes it.
    func reply(_ key: String, timeout: Double = 10) throws -> [String: Any] {
        let answer = try redis.send(RedisCommand("BRPOP", key, timeout), blockingFor: timeout)
        guard let pair = answer.array, pair.count == 2, let bytes = pair[1].bytes else {
            throw NoReply(key: key, timeout: timeout)
        }
        return try JSONSerialization.jsonObject(with: Data(bytes)) as! [String: Any]
    }

    /// Pushes a job and waits for its reply.
    func call(_ job: [String: Any], timeout: Double = 10) throws -> [String: Any] {
        try reply(try push(job), timeout: timeout)
    }

    func deadLetters() throws -> [[String: Any]] {
        try redis.lrange(keys.dead, 0, -1).reversed().map { try JSONSerialization.jsonObject(with: Data($0)) as! [String: Any] }
    }

    /// Jobs taken and not settled: the lengths of every registered processing list.
    func jobsInProcessingLists(redis: RedisConnection? = nil) throws -> Int64 {
        let redis = redis ?? self.redis
        return try redis.smembers(keys.processingLists).reduce(0) { $0 + (try redis.llen(keys.processing(String(decoding: $1, as: UTF8.self)))) }
    }

    /// Waits until the queue is empty and every taken batch is settled.
    func waitUntilDrained(redis: RedisConnection? = nil, timeout: Double = 120, log: @autoclosure () -> String = "") throws {
        let redis = redis ?? self.redis
        let state = { () -> String in
            let lists = (try? redis.smembers(self.keys.processingLists).map { String(decoding: $0, as: UTF8.self) }) ?? []
            let lengths = lists.map { "\($0)=\((try? redis.llen(self.keys.processing($0))) ?? -1)" }
            return "queue \((try? redis.llen(self.keys.jobs)) ?? -1), lists \(lengths)"
        }
        try eventually(timeout: timeout, "queue and processing lists drained", log: log() + "\n" + state()) {
            try redis.llen(keys.jobs) == 0 && (try jobsInProcessingLists(redis: redis)) == 0
        }
    }

    /// Waits until `condition` holds, polling; on a timeout the failure shows the tail of `log`
    /// (a worker's log, say).
    func eventually(timeout: Double = 10, _ what: String, log: @autoclosure () -> String = "", _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            usleep(20_000)
        }
        XCTFail("timed out waiting for: \(what)\n\(log().split(separator: "\n").suffix(40).joined(separator: "\n"))")
    }
}

/// The worker id in a `P:lease` value (`<workerId>:<16 hex digits>`, see
/// `WorkerConfiguration.leaseHolder`); nil when the lease is free or holds anything else.
func leaseWorkerId(_ value: [UInt8]?) -> String? {
    guard let value else { return nil }
    let text = String(decoding: value, as: UTF8.self)
    guard let colon = text.lastIndex(of: ":") else { return nil }
    let nonce = text[text.index(after: colon)...]
    guard nonce.count == 16, nonce.allSatisfy(\.isHexDigit) else { return nil }
    return String(text[..<colon])
}

struct NoReply: Error, CustomStringConvertible {
    let key: String
    let timeout: Double
    var description: String { "no reply on \(key) within \(timeout) s" }
}

extension Dictionary where Key == String, Value == Any {
    func int(_ key: String) -> Int64? { (self[key] as? NSNumber)?.int64Value }
    func string(_ key: String) -> String? { self[key] as? String }
    func bool(_ key: String) -> Bool? { self[key] as? Bool }
    var errorCode: String? { (self["error"] as? [String: Any])?["code"] as? String }
}

extension CommandResult {
    /// The result's fields as the wire writes them (`{"success":…}`), for reading the ledger
    /// directly in tests.
    var json: String { Replies.fields(of: outcome) }
}
