import Foundation
import JobWire
import Ledger
import Redis
import TestSupport
import XCTest

/// The real `tokenledger worker` on a real local Redis Cluster (three masters, three replicas),
/// named by `--redis-url redis-cluster://...`, with four partitions: each partition's keys live on
/// the master of its tag's slot, replies go to keys of any slot, and invalidations reach a
/// subscriber on any node. The failover, which leaves a master dead, has a cluster of its own.
final class ClusterWorkerTests: XCTestCase {
    nonisolated(unsafe) static var cluster: RedisClusterProcess?
    nonisolated(unsafe) static var startError: Error?

    override class func setUp() {
        do {
            cluster = try RedisClusterProcess()
        } catch {
            startError = error
        }
    }

    override class func tearDown() {
        cluster?.stop()
        cluster = nil
    }

    func startedCluster() throws -> RedisClusterProcess {
        if let error = Self.startError { throw error }
        return try XCTUnwrap(Self.cluster)
    }

    func testAWorkerServesEveryPartitionOfACluster() throws {
        let cluster = try startedCluster()
        let h = try WorkerHarness()
        let workload = try ClusterWorkload(harness: h, partitions: 4, usersPerPartition: 2)
        let producer = try RedisCluster(url: cluster.url)
        let subscriber = try RedisSubscriber(configuration: RedisTarget(url: cluster.url).subscriberConfiguration())
        try subscriber.subscribe([h.keys.balance])
        let worker = try WorkerProcess(h, workerId: "cw", redisURL: cluster.url, environment: ["TOKENLEDGER_PARTITION_COUNT": "4"])
        defer { if worker.process.isRunning { worker.kill9() } }

        // The partitions' queues sit on more than one master, and so do the reply keys.
        let queueMasters = Set((0..<4).compactMap { producer.node(forSlot: RedisKeySlot.slot(of: workload.keys(partition: $0).jobs)) })
        let replyMasters = Set(workload.users.compactMap { producer.node(forSlot: RedisKeySlot.slot(of: "\(h.keys.prefix):reply:open-\($0)")) })
        XCTAssertGreaterThan(queueMasters.count, 1)
        XCTAssertGreaterThan(replyMasters.count, 1)

        let busBefore = try cluster.ports.map { try Self.publishesOverTheBus(cluster, $0) }
        try workload.openAccounts(producer)
        var invalidated: Set<String> = []
        while invalidated.count < workload.users.count, let message = try subscriber.receive(timeout: 5) {
            let object = try JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any]
            if let user = object?["userId"] as? String { invalidated.insert(user) }
        }
        XCTAssertEqual(invalidated, Set(workload.users), "an invalidation per account opened")
        // For comparison with sharded invalidations: each PUBLISH reaches every other node (read
        // once the bus has had time to carry the last ones).
        usleep(500_000)
        let busAfter = try cluster.ports.map { try Self.publishesOverTheBus(cluster, $0) }
        print("invalidations on one channel: \(workload.users.count) opens; bus messages received per node (broadcast publish / sharded publish): "
              + zip(cluster.ports, zip(busBefore, busAfter)).map { "\($0): \($1.1.broadcast - $1.0.broadcast)/\($1.1.shard - $1.0.shard)" }.joined(separator: ", "))
        for k in 0..<4 {
            XCTAssertEqual(leaseWorkerId(try producer.get(workload.keys(partition: k).lease)), "cw", "partition \(k)'s lease")
        }
        try workload.pushCredits(producer, perUser: 50)
        try workload.waitUntilDrained(producer)

        // The command line takes the same URL: a query through the user's partition queue, and the
        // dead letters of every partition (a job pushed on another partition's queue is one).
        let cli = ["--redis-url", cluster.url, "--prefix", h.keys.prefix, "--partition-count", "4", "--database", h.databasePath]
        let user = workload.users[5]
        let (asked, answer) = try runTokenLedger(["enqueue", #"{"type":"balance","userId":"\#(user)"}"#, "--wait"] + cli)
        XCTAssertEqual(asked, 0, answer)
        XCTAssertTrue(answer.contains(#""tokensBalance":150"#), answer)
        let elsewhere = workload.keys(partition: (workload.partitioning.partition(of: user) + 1) % 4).jobs
        try producer.lpush(elsewhere, #"{"type":"credit","id":"misrouted","userId":"\#(user)","operationType":"bonus","amount":1}"#)
        try workload.waitUntilDrained(producer)
        let (listed, letters) = try runTokenLedger(["dead-letters", "list"] + cli)
        XCTAssertEqual(listed, 0, letters)
        XCTAssertTrue(letters.contains("wrong_partition") && letters.contains("misrouted"), letters)

        XCTAssertEqual(worker.terminate(), 0, worker.log)
        XCTAssertEqual(try workload.checkLedger(perUser: 50), [:], "nothing lost without a failure")
        try workload.verify()
    }

    /// The slot of one partition's tag moves to another master while jobs are pushed and drained:
    /// keys move one at a time between pipelines of pushes (`ASK` and `TRYAGAIN` meanwhile), then
    /// the new owner is announced (`MOVED`).
    func testAWorkerCarriesOnAcrossASlotMigration() throws {
        let cluster = try startedCluster()
        let h = try WorkerHarness()
        let workload = try ClusterWorkload(harness: h, partitions: 4, usersPerPartition: 2)
        let producer = try RedisCluster(url: cluster.url)
        let worker = try WorkerProcess(h, workerId: "mw", redisURL: cluster.url, environment: ["TOKENLEDGER_PARTITION_COUNT": "4"])
        defer { if worker.process.isRunning { worker.kill9() } }
        try workload.openAccounts(producer)

        let moved = 1
        let slot = RedisKeySlot.slot(of: workload.keys(partition: moved).jobs)
        let from = try XCTUnwrap(try cluster.masterPort(forSlot: slot))
        let to = try XCTUnwrap(try cluster.masterPorts().first { $0 != from })
        let perUser = 1000
        enum Migration { case before, workerPaused(at: Int), moving(keysMoved: Int), done(keysMoved: Int) }
        var backlog = 0
        defer { if worker.process.isRunning { kill(worker.pid, SIGCONT) } }
        var migration = Migration.before
        let started = ContinuousClock.now
        // One key moves after each pipeline of pushes, so jobs arrive, are taken and are settled
        // while the slot's keys are split between the two masters.
        try workload.pushCredits(producer, perUser: perUser, chunk: 200, pause: 0.01) { pushed in
            switch migration {
            case .before:
                // The worker is paused for a few pipelines, so the queue holds a backlog when the
                // slot starts moving, and the worker takes from it while its keys move.
                guard pushed >= perUser * workload.users.count / 4 else { return }
                kill(worker.pid, SIGSTOP)
                migration = .workerPaused(at: pushed)
            case .workerPaused(let at):
                guard pushed >= at + 1000 else { return }
                backlog = Int(try producer.llen(workload.keys(partition: moved).jobs))
                try cluster.beginSlotMigration(slot, from: from, to: to)
                kill(worker.pid, SIGCONT)
                migration = .moving(keysMoved: 0)
            case .moving(let count):
                if let key = try cluster.connection(from).send("CLUSTER", "GETKEYSINSLOT", slot, 1).array?.first?.string {
                    try cluster.migrateKeys([key], from: from, to: to)
                    migration = .moving(keysMoved: count + 1)
                } else {
                    try cluster.finishSlotMigration(slot, from: from, to: to)
                    migration = .done(keysMoved: count)
                }
            case .done:
                break
            }
        }
        guard case .done(let keysMoved) = migration else { return XCTFail("the migration did not finish while pushing") }
        XCTAssertEqual(try cluster.masterPort(forSlot: slot), to)
        try workload.waitUntilDrained(producer)
        print("migration: slot \(slot) of partition \(moved) moved from \(from) to \(to); \(perUser * workload.users.count) credits drained in \(ContinuousClock.now - started), \(keysMoved) keys moved one per pipeline, the first with \(backlog) jobs queued; \(workload.retriedPushes) pushes retried")
        XCTAssertTrue(worker.process.isRunning, worker.log)
        XCTAssertEqual(worker.terminate(), 0, worker.log)
        XCTAssertEqual(try workload.checkLedger(perUser: perUser), [:], "a migration loses nothing")
        try workload.verify()
    }

    /// With `invalidationChannels: "sharded"`, partition `k` publishes with `SPUBLISH` on
    /// `P:{k}:balance`, which lies in the slot of `{k}`: a sharded subscriber on the master that
    /// serves it hears each invalidation of the partition's users, in commit order, and a plain
    /// subscriber of `P:balance` on any node hears nothing.
    func testShardedInvalidationsReachTheSubscriberOfTheirPartitionsSlot() throws {
        let cluster = try startedCluster()
        let h = try WorkerHarness()
        let workload = try ClusterWorkload(harness: h, partitions: 4, usersPerPartition: 2)
        let producer = try RedisCluster(url: cluster.url)
        let target = try RedisTarget(url: cluster.url)
        var sharded: [RedisSubscriber] = []
        var owners: Set<Int> = []
        for k in 0..<4 {
            let channel = ShardedInvalidations.channel(h.keys.prefix, k)
            let configuration = try target.shardSubscriberConfiguration(channel: channel)
            let owner = try XCTUnwrap(try cluster.masterPort(forSlot: RedisKeySlot.slot(of: "\(k)")))
            XCTAssertEqual(configuration.endpoint, .tcp(host: "127.0.0.1", port: owner), "partition \(k)'s channel is on its keys' master")
            owners.insert(owner)
            let subscriber = try RedisSubscriber(configuration: configuration)
            try subscriber.ssubscribe([channel])
            sharded.append(subscriber)
        }
        XCTAssertGreaterThan(owners.count, 1, "the partitions' channels sit on more than one master")
        var plain: [RedisSubscriber] = []
        for port in cluster.ports {  // PUBLISH would reach every node: listen on all of them
            let subscriber = try RedisSubscriber(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port)))
            try subscriber.subscribe([h.keys.balance])
            plain.append(subscriber)
        }
        let config = h.directory.appendingPathComponent("sharded.json")
        try Data(#"{"invalidationChannels": "sharded"}"#.utf8).write(to: config)
        let worker = try WorkerProcess(h, workerId: "sh", redisURL: cluster.url, configFile: config.path,
                                       environment: ["TOKENLEDGER_PARTITION_COUNT": "4"])
        defer { if worker.process.isRunning { worker.kill9() } }

        let busBefore = try cluster.ports.map { try Self.publishesOverTheBus(cluster, $0) }
        try workload.openAccounts(producer)
        try workload.pushCredits(producer, perUser: 3)
        try workload.waitUntilDrained(producer)
        for k in 0..<4 {
            let mine = workload.users.filter { workload.partitioning.partition(of: $0) == k }
            let received = try ShardedInvalidations.collect(sharded[k], count: mine.count * 4)
            XCTAssertTrue(received.allSatisfy { $0.sharded && $0.channel == ShardedInvalidations.channel(h.keys.prefix, k) })
            let objects = try received.map { try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.payload)) as? [String: Any]) }
            XCTAssertEqual(objects.map { $0["partition"] as? Int }, Array(repeating: k, count: objects.count))
            for user in mine {
                // The open's 100, then each credit's balance, in commit order.
                XCTAssertEqual(objects.filter { $0["userId"] as? String == user }.map { $0["tokensBalance"] as? Int }, [100, 101, 102, 103],
                               "\(user) of partition \(k)")
            }
            XCTAssertNil(try sharded[k].receive(timeout: 0.2)?.text, "partition \(k)'s channel carries its own users only")
        }
        for (port, subscriber) in zip(cluster.ports, plain) {
            XCTAssertNil(try subscriber.receive(timeout: 0.3)?.text, "nothing on \(h.keys.balance) (node \(port)) when sharded")
        }
        // What crossed the cluster bus: no broadcast publish reached any node, and the sharded
        // messages reached only replicas of the partitions' masters (each master's shard).
        let busAfter = try cluster.ports.map { try Self.publishesOverTheBus(cluster, $0) }
        var shardReceivers: Set<Int> = []
        for (index, port) in cluster.ports.enumerated() {
            XCTAssertEqual(busAfter[index].broadcast, busBefore[index].broadcast, "node \(port) received a broadcast PUBLISH")
            if busAfter[index].shard > busBefore[index].shard { shardReceivers.insert(port) }
        }
        let replicasOfOwners = Set(try owners.compactMap { try cluster.replicaPort(of: $0) })
        XCTAssertEqual(shardReceivers, replicasOfOwners, "sharded messages stay in the partitions' shards")
        print("sharded invalidations: \(workload.users.count * 4) over 4 partitions on \(owners.count) masters; bus messages received per node "
              + "(broadcast publish / sharded publish): "
              + zip(cluster.ports, zip(busBefore, busAfter)).map { "\($0): \($1.1.broadcast - $1.0.broadcast)/\($1.1.shard - $1.0.shard)" }.joined(separator: ", "))
        XCTAssertEqual(worker.terminate(), 0, worker.log)
        XCTAssertEqual(try workload.checkLedger(perUser: 3), [:])
    }

    /// The node's count of pub/sub messages received over the cluster bus (`CLUSTER INFO`):
    /// broadcast (`PUBLISH` from another node) and sharded (`SPUBLISH` from its shard's master).
    static func publishesOverTheBus(_ cluster: RedisClusterProcess, _ port: Int) throws -> (broadcast: Int, shard: Int) {
        let info = try cluster.connection(port).send("CLUSTER", "INFO").string ?? ""
        func count(_ field: String) -> Int {
            info.split(whereSeparator: \.isNewline).first { $0.hasPrefix(field + ":") }
                .flatMap { Int($0.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces)) } ?? 0
        }
        return (count("cluster_stats_messages_publish_received"), count("cluster_stats_messages_publishshard_received"))
    }

    /// With one partition the contract's keys carry no tag, so they would lie in different slots:
    /// a cluster URL is refused at start-up with the reason, before anything is touched.
    func testAClusterNeedsTwoPartitionsOrMore() throws {
        let (status, output) = try runTokenLedger(["worker", "--redis-url", "redis-cluster://127.0.0.1:1", "--http", "off",
                                                   "--database", "/nonexistent/ledger.sqlite"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(output.contains("a Redis Cluster needs a partition count of 2 or more"), output)
    }
}

/// A master that serves a partition's slot is killed (SIGKILL) mid-run; its replica is promoted and
/// the worker carries on. Replication is asynchronous, so jobs the old master acknowledged but had
/// not yet sent to its replica may be lost. To make that window certain rather than a matter of
/// luck, the replica is frozen (SIGSTOP) and its link to the master cut (`CLIENT KILL TYPE replica`)
/// for the last few hundred pushes before the kill, and thawed right after it: what the master did
/// meanwhile (pushes, takes, acknowledgements) is lost with it.
/// The test counts the lost credits and checks that each was pushed to that master before the
/// kill; jobs the worker had applied come back from the replica and must be answered from the
/// ledger, not applied again. No job is applied twice, each user's jobs stay in queue order, and
/// `tokenledger verify` passes.
final class ClusterWorkerFailoverTests: XCTestCase {
    func testAWorkerCarriesOnAcrossAFailover() throws {
        let started = ContinuousClock.now
        let cluster = try RedisClusterProcess()
        defer { cluster.stop() }
        let h = try WorkerHarness()
        let workload = try ClusterWorkload(harness: h, partitions: 4, usersPerPartition: 2)
        let producer = try RedisCluster(url: cluster.url)
        let worker = try WorkerProcess(h, workerId: "fw", redisURL: cluster.url, environment: ["TOKENLEDGER_PARTITION_COUNT": "4"])
        defer { if worker.process.isRunning { worker.kill9() } }
        try workload.openAccounts(producer)

        let slots = (0..<4).map { RedisKeySlot.slot(of: workload.keys(partition: $0).jobs) }
        let victim = try XCTUnwrap(try cluster.masterPort(forSlot: slots[2]))
        let replica = try XCTUnwrap(try cluster.replicaPort(of: victim))
        let victimPartitions = Set(try (0..<4).filter { try cluster.masterPort(forSlot: slots[$0]) == victim })
        let perUser = 500
        let total = perUser * workload.users.count
        var killedAt: ContinuousClock.Instant?
        var frozenAt: Int?
        defer { cluster.resume(replica) }
        try workload.pushCredits(producer, perUser: perUser, chunk: 40, pause: 0.002) { pushed in
            guard killedAt == nil, pushed >= total / 3 else { return }
            guard let frozen = frozenAt else {
                // Frozen, then cut off: what the socket already holds reaches the replica when it
                // is thawed, nothing written after the cut does.
                cluster.suspend(replica)
                try cluster.connection(victim).send("CLIENT", "KILL", "TYPE", "replica")
                frozenAt = pushed
                return
            }
            guard pushed >= frozen + 400 else { return }
            cluster.kill(victim)
            killedAt = .now
            cluster.resume(replica)
        }
        let killed = try XCTUnwrap(killedAt)
        let pushedIn = ContinuousClock.now - killed
        try cluster.waitUntilHealthy()
        XCTAssertEqual(try cluster.masterPort(forSlot: slots[2]), replica, "the replica serves the slot")
        try workload.waitUntilDrained(producer)
        let drainedIn = ContinuousClock.now - killed
        XCTAssertTrue(worker.process.isRunning, worker.log)
        XCTAssertEqual(worker.terminate(), 0, worker.log)

        let missing = try workload.checkLedger(perUser: perUser)
        var lost = 0
        for (user, credits) in missing {
            XCTAssertTrue(victimPartitions.contains(workload.partitioning.partition(of: user)),
                          "\(user) lost credits \(credits) though their partition's master did not fail")
            for n in credits {
                lost += 1
                let acknowledged = try XCTUnwrap(workload.acknowledgedAt[user]?[n - 1])
                XCTAssertLessThan(acknowledged, killed, "\(user)'s credit \(n) was acknowledged after the kill, yet lost")
            }
            // What replication had not reached is the newest of the user's pushes before the kill,
            // minus what the worker had already applied (it takes the oldest first): one run of
            // credits that ends with the last one the old master acknowledged.
            let lastBeforeKill = workload.acknowledgedAt[user]?.filter { $0 < killed }.count ?? 0
            XCTAssertEqual(credits, Array(lastBeforeKill - credits.count + 1 ..< lastBeforeKill + 1).filter { $0 > 0 },
                           "\(user)'s lost credits are not the tail of what the old master acknowledged")
        }
        try workload.verify()
        let recoveries = worker.log.components(separatedBy: "redis unavailable").count - 1
        var summary = "failover: replica \(replica) frozen after \(frozenAt ?? 0) of \(total) credits, "
        summary += "master \(victim) of partitions \(victimPartitions.sorted()) killed 400 credits later; "
        summary += "the replica promoted; the rest pushed in \(pushedIn), all drained \(drainedIn) after the kill; "
        summary += "\(lost) credits lost (acknowledged by the old master, never replicated); "
        summary += "\(workload.ambiguousPushes) pipelines broke mid-write, \(workload.retriedPushes) pushed again; "
        summary += "\(recoveries) worker recoveries; test took \(ContinuousClock.now - started)"
        print(summary)
    }
}
