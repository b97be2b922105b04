import Foundation
import JobWire
import Redis
import TestSupport
import Worker
import XCTest

/// The config key `invalidationChannels: "sharded"` on the single server of `REDIS_URL` (Redis 7
/// has sharded pub/sub without a cluster too): partition `k` publishes with `SPUBLISH` on
/// `P:{k}:balance`, in commit order, alerts stay on `P:alerts`, nothing reaches `P:balance`; and
/// the settings refuse what cannot work. The cluster's case is in `ClusterWorkerTests`.
final class ShardedInvalidationsTests: XCTestCase {
    static let partitions = 4

    func testEachPartitionPublishesOnItsOwnShardedChannel() throws {
        let h = try WorkerHarness()
        let partitioning = try Partitioning(count: Self.partitions)
        let users = (0..<Self.partitions).flatMap { k in Self.users(of: k, in: partitioning, count: 2) }
        let config = try Self.writeConfig(h, #"{"invalidationChannels": "sharded", "defaultMonitorThreshold": 50}"#)

        var sharded: [RedisSubscriber] = []
        for k in 0..<Self.partitions {
            let subscriber = try RedisSubscriber(url: h.redisURL)
            try subscriber.ssubscribe([ShardedInvalidations.channel(h.keys.prefix, k)])
            sharded.append(subscriber)
        }
        let plain = try RedisSubscriber(url: h.redisURL)
        try plain.subscribe([h.keys.balance])
        let alerts = try RedisSubscriber(url: h.redisURL)
        try alerts.subscribe([h.keys.alerts])

        let worker = try WorkerProcess(h, workerId: "sw", configFile: config, environment: ["TOKENLEDGER_PARTITION_COUNT": "\(Self.partitions)"])
        defer { if worker.process.isRunning { worker.kill9() } }
        // Per user: open (100), three debits of 20 (the third takes `available` below 50: one
        // alert), each answered before the next is pushed.
        for user in users {
            let queue = QueueKeys(prefix: h.keys.prefix, partition: partitioning.partition(of: user)).jobs
            for n in 0...3 {
                let reply = "\(h.keys.prefix):reply:\(user):\(n)"
                let job = n == 0
                    ? #"{"type":"open","id":"o-\#(user)","userId":"\#(user)","replyTo":"\#(reply)"}"#
                    : #"{"type":"debit","id":"d\#(n)-\#(user)","userId":"\#(user)","operationType":"x","amount":20,"replyTo":"\#(reply)"}"#
                try h.redis.lpush(queue, Array(job.utf8))
                let answer = try h.redis.send(RedisCommand("BRPOP", reply, 10), blockingFor: 10)
                XCTAssertTrue(answer.array?.last?.string?.contains(#""success":true"#) == true, "\(job): \(answer)\n\(worker.log.suffix(2000))")
            }
        }

        for k in 0..<Self.partitions {
            let mine = users.filter { partitioning.partition(of: $0) == k }
            let received = try ShardedInvalidations.collect(sharded[k], count: mine.count * 4)
            XCTAssertEqual(received.map(\.channel), Array(repeating: ShardedInvalidations.channel(h.keys.prefix, k), count: mine.count * 4))
            XCTAssertTrue(received.allSatisfy(\.sharded))
            let objects = try received.map { try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.payload)) as? [String: Any]) }
            XCTAssertEqual(objects.map { $0["partition"] as? Int }, Array(repeating: k, count: objects.count), "each names its partition")
            for user in mine {
                // One user's messages leave in commit order: 100, 80, 60, 40, with rising entry ids.
                let theirs = objects.filter { $0["userId"] as? String == user }
                XCTAssertEqual(theirs.map { $0["tokensBalance"] as? Int }, [100, 80, 60, 40], "\(user) on partition \(k)")
                let ids = theirs.compactMap { $0["ledgerEntryId"] as? Int }
                XCTAssertEqual(ids, ids.sorted(), "\(user)'s entries in commit order")
                XCTAssertEqual(Set(ids).count, 4)
            }
            XCTAssertNil(try sharded[k].receive(timeout: 0.2)?.text, "partition \(k)'s channel carries its own users only")
        }
        XCTAssertNil(try plain.receive(timeout: 0.5)?.text, "nothing on \(h.keys.balance) when sharded")
        // The alerts are unchanged: one `balance.low` per user, on the one channel.
        let alerted = try ShardedInvalidations.collect(alerts, count: users.count).compactMap {
            (try JSONSerialization.jsonObject(with: Data($0.payload)) as? [String: Any])?["userId"] as? String
        }
        XCTAssertEqual(Set(alerted), Set(users))
        XCTAssertTrue(worker.log.contains("invalidations are sharded: partition k publishes with SPUBLISH on \(h.keys.prefix):{k}:balance"), worker.log)
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }

    /// The option is read once, at start, and refused where it cannot work: an unknown value, and
    /// an unsplit ledger, which has no partition slot for the channel (it would otherwise publish
    /// where no sharded subscriber listens).
    func testTheSettingIsRefusedWithAReason() throws {
        let h = try WorkerHarness()
        let cases: [(config: String, environment: [String: String], says: String)] = [
            (#"{"invalidationChannels": "sharded"}"#, [:], "invalidationChannels 'sharded' needs a partition count of 2 or more"),
            (#"{"invalidationChannels": "sharded", "partitionCount": 1}"#, [:], "needs a partition count of 2 or more"),
            (#"{"invalidationChannels": "perPartition"}"#, ["TOKENLEDGER_PARTITION_COUNT": "4"], "invalidationChannels 'perPartition' is not one of single, sharded"),
            (#"{"invalidationChannels": true}"#, ["TOKENLEDGER_PARTITION_COUNT": "4"], "invalidationChannels"),
        ]
        for (text, environment, says) in cases {
            let config = try Self.writeConfig(h, text)
            // A worker that accepted the setting would serve on: it is stopped after a while.
            let worker = try WorkerProcess(h, workerId: "refused", configFile: config, environment: environment,
                                           logName: "refused-\(UUID().uuidString.prefix(6))")
            let deadline = Date().addingTimeInterval(10)
            while worker.process.isRunning && Date() < deadline { usleep(20_000) }
            if worker.process.isRunning {
                XCTFail("\(text): the worker started\n\(worker.log.suffix(2000))")
                _ = worker.terminate()
                continue
            }
            XCTAssertNotEqual(worker.process.terminationStatus, 0, text)
            XCTAssertTrue(worker.log.contains(says), "\(text): \(worker.log)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: h.databasePath), "refused before any ledger was made")
    }

    static func users(of partition: Int, in partitioning: Partitioning, count: Int) -> [String] {
        var found: [String] = []
        var i = 0
        while found.count < count {
            let user = "s\(i)"
            if partitioning.partition(of: user) == partition { found.append(user) }
            i += 1
        }
        return found
    }

    static func writeConfig(_ h: WorkerHarness, _ text: String) throws -> String {
        let url = h.directory.appendingPathComponent("config-\(UUID().uuidString.prefix(6)).json")
        try Data(text.utf8).write(to: url)
        return url.path
    }
}

/// What the sharded-invalidation tests share, on one server or a cluster.
enum ShardedInvalidations {
    /// Partition `k`'s channel, spelled out here rather than taken from `QueueKeys`, so that the
    /// tests check the name subscribers are told to use.
    static func channel(_ prefix: String, _ k: Int) -> String { "\(prefix):{\(k)}:balance" }

    /// Exactly `count` messages (each within 5 s of the last), else fails with what came.
    static func collect(_ subscriber: RedisSubscriber, count: Int, file: StaticString = #filePath, line: UInt = #line) throws -> [RedisMessage] {
        var received: [RedisMessage] = []
        while received.count < count, let message = try subscriber.receive(timeout: 5) { received.append(message) }
        XCTAssertEqual(received.count, count, "messages received: \(received.map(\.text))", file: file, line: line)
        return received
    }
}
