import Foundation
import JobWire
import Ledger
import LedgerModel
import Redis
import TestSupport
import Worker
import XCTest

/// Numbered credits for a few users of every partition, pushed through a `RedisCluster` on each
/// user's partition queue, and what the ledger files hold of them afterwards.
///
/// Each credit has the id `c-<user>-<n>` (n from 1, in push order per user), so that the ledger
/// shows at once whether a user's credits were applied in queue order, once each, or not at all.
final class ClusterWorkload {
    let harness: WorkerHarness
    let partitioning: Partitioning
    let users: [String]
    let prefix: String
    /// When each acknowledged push was answered, by user: index n-1 for credit n.
    private(set) var acknowledgedAt: [String: [ContinuousClock.Instant]] = [:]
    /// Pushes whose link broke after the command was written (it may or may not have run), and
    /// were pushed again: the id makes a second copy harmless.
    private(set) var ambiguousPushes = 0
    private(set) var retriedPushes = 0

    init(harness: WorkerHarness, partitions: Int, usersPerPartition: Int) throws {
        self.harness = harness
        prefix = harness.keys.prefix
        partitioning = try Partitioning(count: partitions)
        var chosen: [Int: [String]] = [:]
        var i = 0
        while chosen.values.map(\.count).reduce(0, +) < partitions * usersPerPartition {
            let user = "u\(i)"
            i += 1
            let k = partitioning.partition(of: user)
            if chosen[k, default: []].count < usersPerPartition { chosen[k, default: []].append(user) }
        }
        users = chosen.keys.sorted().flatMap { chosen[$0] ?? [] }
    }

    func keys(_ user: String) -> QueueKeys { QueueKeys(prefix: prefix, partition: partitioning.partition(of: user)) }
    func keys(partition: Int) -> QueueKeys { QueueKeys(prefix: prefix, partition: partition) }

    /// Opens every account and waits for each reply (on keys of other slots than the partition's).
    func openAccounts(_ redis: RedisCluster, timeout: Double = 20) throws {
        for user in users {
            try redis.lpush(keys(user).jobs, #"{"type":"open","id":"open-\#(user)","userId":"\#(user)","replyTo":"\#(prefix):reply:open-\#(user)"}"#)
        }
        for user in users {
            let answer = try redis.send(RedisCommand("BRPOP", "\(prefix):reply:open-\(user)", timeout), blockingFor: timeout)
            let text = answer.array?.last?.string ?? ""
            XCTAssertTrue(text.contains(#""success":true"#), "open \(user): \(text)")
        }
    }

    /// Pushes `perUser` credits per user, round robin, in pipelines of `chunk` jobs; calls
    /// `during(pushed)` after each pipeline. A pipeline that fails is pushed again (ids make
    /// repeats harmless, and a user's order holds: nothing of theirs is pushed in between).
    func pushCredits(_ redis: RedisCluster, perUser: Int, chunk: Int = 40, pause: Double = 0,
                     during: (Int) throws -> Void = { _ in }) throws {
        var next = 1
        var pushed = 0
        let deadline = ContinuousClock.now + .seconds(60)
        while next <= perUser {
            var commands: [RedisCommand] = []
            var jobs: [(user: String, n: Int)] = []
            while commands.count < chunk && next <= perUser {
                for user in users {
                    let id = "c-\(user)-\(next)"
                    commands.append(RedisCommand("LPUSH", keys(user).jobs,
                        #"{"type":"credit","id":"\#(id)","userId":"\#(user)","operationType":"bonus","amount":1}"#))
                    jobs.append((user, next))
                }
                next += 1
            }
            while true {
                guard ContinuousClock.now < deadline else { throw RedisError.clusterUnavailable("the producer could not push for 60 s") }
                do {
                    for reply in try redis.pipeline(commands) { try reply.throwingOnError() }
                    break
                } catch {
                    switch error.code {
                    case "redis_connection_error":
                        ambiguousPushes += 1  // written, then the link broke: it may or may not have run
                    case "redis_cluster_unavailable":
                        break  // nothing was sent
                    case "redis_server_error" where "\(error)".contains("CLUSTERDOWN") || "\(error)".contains("TRYAGAIN"):
                        usleep(100_000)
                    default:
                        throw error
                    }
                    retriedPushes += 1
                }
            }
            let now = ContinuousClock.now
            for job in jobs { acknowledgedAt[job.user, default: []].append(now) }
            pushed += jobs.count
            try during(pushed)
            if pause > 0 { usleep(useconds_t(pause * 1_000_000)) }
        }
    }

    /// Waits until every partition's queue is empty and every taken batch settled.
    func waitUntilDrained(_ redis: RedisCluster, timeout: Double = 90) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var left = -1
        while Date() < deadline {
            left = 0
            for k in 0..<partitioning.count {
                let keys = keys(partition: k)
                do {
                    left += Int(try redis.llen(keys.jobs))
                    for name in try redis.smembers(keys.processingLists) {
                        left += Int(try redis.llen(keys.processing(String(decoding: name, as: UTF8.self))))
                    }
                } catch {
                    left = -1  // the cluster is settling: ask again
                }
            }
            if left == 0 { return }
            usleep(100_000)
        }
        XCTFail("the queues did not drain within \(timeout) s (\(left) jobs left)")
    }

    /// Each user's credits in ledger order, read from their partition's file.
    func appliedCredits() throws -> [String: [Int]] {
        var applied: [String: [Int]] = [:]
        var readers: [Int: LedgerReader] = [:]
        for user in users {
            let k = partitioning.partition(of: user)
            let path = harness.databasePath.replacingOccurrences(of: ".sqlite", with: "-p\(k).sqlite")
            let reader = try readers[k] ?? LedgerReader(path: path)
            readers[k] = reader
            var entries: [[String: Any]] = []
            while true {
                let page = try reader.read(.history(userId: user, limit: 1000, offset: entries.count, operationType: "bonus",
                                                   startDate: nil, endDate: nil))
                let object = try JSONSerialization.jsonObject(with: Data(page.json.utf8)) as? [String: Any]
                let got = object?["entries"] as? [[String: Any]] ?? []
                entries += got
                if got.count < 1000 { break }
            }
            // Newest first: reversed, they are in the order the ledger applied them.
            applied[user] = entries.reversed().compactMap { ($0["jobId"] as? String)?.split(separator: "-").last.flatMap { Int($0) } }
        }
        return applied
    }

    /// Checks what the brief promises: credits in queue order, none twice; returns the credits
    /// missing per user (pushed, acknowledged, never applied).
    func checkLedger(perUser: Int, file: StaticString = #filePath, line: UInt = #line) throws -> [String: [Int]] {
        var missing: [String: [Int]] = [:]
        for (user, credits) in try appliedCredits() {
            XCTAssertEqual(credits, credits.sorted(), "\(user)'s credits out of queue order", file: file, line: line)
            XCTAssertEqual(Set(credits).count, credits.count, "\(user) has a credit applied twice", file: file, line: line)
            let lost = Set(1...perUser).subtracting(credits).sorted()
            if !lost.isEmpty { missing[user] = lost }
        }
        return missing
    }

    /// `tokenledger verify` over every partition's file.
    func verify(file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, report) = try runTokenLedger(["verify", "--database", harness.databasePath,
                                                   "--partition-count", "\(partitioning.count)"])
        XCTAssertEqual(status, 0, report, file: file, line: line)
    }
}
