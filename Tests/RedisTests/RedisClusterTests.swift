import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Redis
import TestSupport
import XCTest

/// `RedisCluster` against a real local cluster of three masters and three replicas, started once
/// for this class (the failover, which leaves a master dead, has a cluster of its own below).
final class RedisClusterTests: XCTestCase {
    nonisolated(unsafe) static var cluster: RedisClusterProcess?
    nonisolated(unsafe) static var startError: Error?

    override class func setUp() {
        do {
            let start = ContinuousClock.now
            cluster = try RedisClusterProcess()
            print("cluster of 6 nodes ready in \(ContinuousClock.now - start)")
        } catch {
            startError = error
        }
    }

    override class func tearDown() {
        cluster?.stop()
        cluster = nil
    }

    var cluster: RedisClusterProcess!
    var prefix = ""

    override func setUpWithError() throws {
        if let error = Self.startError { throw error }
        cluster = Self.cluster
        prefix = TestEnvironment.uniquePrefix("cluster")
    }

    override func tearDown() {
        cluster = nil
    }

    /// A hash tag whose slot the master on `port` serves, found by counting up.
    func tag(servedBy port: Int, _ client: RedisCluster) throws -> String {
        for n in 0..<100_000 {
            let tag = "\(prefix)-\(n)"
            if client.node(forSlot: RedisKeySlot.slot(of: "{\(tag)}"))?.port == port { return tag }
        }
        throw RedisError.clusterUnavailable("no tag found for port \(port)")
    }

    // MARK: Slots and routing

    func testSlotsOfRandomKeysMatchClusterKeyslot() throws {
        var random = SeededGenerator.fromEnvironment(test: name)
        let node = try cluster.connection(cluster.ports[0])
        let alphabet: [UInt8] = Array("ab{}{}:x\u{0}".utf8) + [0xFF]
        let keys: [[UInt8]] = (0..<300).map { _ in
            (0..<Int(random.next() % 12)).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
        }
        let replies = try node.pipeline(keys.map { RedisCommand("CLUSTER", "KEYSLOT", $0) })
        for (key, reply) in zip(keys, replies) {
            XCTAssertEqual(reply.int.map(Int.init), RedisKeySlot.slot(of: key), "key bytes \(key)")
        }
    }

    func testClusterSlotsAndClusterShardsGiveTheSameMap() throws {
        let port = cluster.ports[3]
        let node = try cluster.connection(port)
        let asked = RedisClusterNode(host: "127.0.0.1", port: port)
        let shards = try RedisClusterSlotMap.fromShards(node.send("CLUSTER", "SHARDS"), answeredBy: asked)
        let slots = try RedisClusterSlotMap.fromSlots(node.send("CLUSTER", "SLOTS"), answeredBy: asked)
        XCTAssertEqual(shards.uncoveredSlots, 0)
        XCTAssertEqual(Set(shards.masters), Set(slots.masters))
        for slot in 0..<RedisKeySlot.count where shards.master(forSlot: slot) != slots.master(forSlot: slot) {
            return XCTFail("slot \(slot): \(String(describing: shards.master(forSlot: slot))) vs \(String(describing: slots.master(forSlot: slot)))")
        }
        XCTAssertThrowsError(try RedisClusterSlotMap.fromShards(.integer(1), answeredBy: asked))
    }

    func testASingleServerIsNotTakenForACluster() throws {
        // The shared test server runs without cluster support: refused at once, with its reason.
        guard case .tcp(let host, let port) = try RedisConfiguration(url: TestEnvironment.redisURL).endpoint else {
            throw XCTSkip("REDIS_URL is not a TCP server")
        }
        let start = ContinuousClock.now
        XCTAssertThrowsError(try RedisCluster(configuration: RedisClusterConfiguration(seeds: [RedisClusterNode(host: host, port: port)]))) { error in
            guard case .server(let message) = error as? RedisError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("cluster support disabled"), message)
        }
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(2), "no waiting for a server that will never be a cluster")
    }

    func testCommandsAreRoutedToEveryMasterFromOneSeed() throws {
        let client = try RedisCluster(url: cluster.url(seed: cluster.ports[0]))
        let masters = try cluster.masterPorts()
        XCTAssertEqual(masters.count, 3)
        XCTAssertEqual(Set(client.slotMap.masters.map(\.port)), Set(masters), "the map names every master, learned from one seed")
        XCTAssertEqual(client.slotMap.uncoveredSlots, 0)

        let keys = (0..<600).map { "\(prefix):route:\($0)" }
        let replies = try client.pipeline(keys.map { (RedisCommand("SET", $0, "v-\($0)"), $0) })
        XCTAssertEqual(replies, Array(repeating: .status("OK"), count: keys.count))
        var perMaster: [Int: [String]] = [:]
        for key in keys {
            let port = try XCTUnwrap(client.node(forSlot: RedisKeySlot.slot(of: key))?.port)
            XCTAssertEqual(port, try cluster.masterPort(forSlot: RedisKeySlot.slot(of: key)), key)
            perMaster[port, default: []].append(key)
        }
        XCTAssertEqual(Set(perMaster.keys), Set(masters), "keys in many slots reach all three masters")
        // Each master holds its keys itself: asked directly, it answers without a redirection.
        for (port, owned) in perMaster {
            let direct = try cluster.connection(port)
            XCTAssertEqual(try direct.pipeline(owned.map { RedisCommand("GET", $0) }).map(\.string), owned.map { "v-\($0)" })
        }
        // Replies come back in the caller's order, across nodes.
        let shuffled = keys.reversed().map { $0 }
        XCTAssertEqual(try client.pipeline(shuffled.map { (RedisCommand("GET", $0), $0) }).map(\.string), shuffled.map { "v-\($0)" })
        XCTAssertEqual(try client.send(RedisCommand("GET", keys[7]), key: keys[7]).string, "v-\(keys[7])")
        XCTAssertEqual(client.movedCount, 0, "the slot map was right: no command bounced")
        // Binary-safe: NUL and 0xFF in keys and values.
        let key: [UInt8] = Array("\(prefix):bin\u{0}".utf8) + [0xFF]
        let value: [UInt8] = [0, 1, 0, 255, 13, 10]
        try client.send(RedisCommand("SET", key, value), key: key)
        XCTAssertEqual(try client.send(RedisCommand("GET", key), key: key).bytes, value)
    }

    func testHashTaggedMultiKeyCommandsAndBlockingCommands() throws {
        let client = try RedisCluster(url: cluster.url)
        let jobs = "P:{\(prefix)}:jobs", processing = "P:{\(prefix)}:processing:w1", dead = "P:{\(prefix)}:dead"
        try client.send(RedisCommand("LPUSH", jobs, "j1", "j2", "j3"), key: jobs)
        XCTAssertEqual(try client.send(RedisCommand("LMOVE", jobs, processing, "RIGHT", "LEFT"), key: jobs).string, "j1")
        let moved = try client.send(RedisCommand("EVAL", "return redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')",
                                                 2, jobs, dead), key: jobs)
        XCTAssertEqual(moved.string, "j2")
        try client.send(RedisCommand("MSET", "P:{\(prefix)}:a", "1", "P:{\(prefix)}:b", "2"), key: "P:{\(prefix)}:a")
        XCTAssertEqual(try client.send(RedisCommand("MGET", "P:{\(prefix)}:a", "P:{\(prefix)}:b"), key: "P:{\(prefix)}:a").array?.compactMap(\.string), ["1", "2"])

        // Keys of two slots: a typed error, from the server's CROSSSLOT.
        let a = "\(prefix):a", b = "\(prefix):b-other"
        XCTAssertNotEqual(RedisKeySlot.slot(of: a), RedisKeySlot.slot(of: b))
        XCTAssertThrowsError(try client.send(RedisCommand("LMOVE", a, b, "RIGHT", "LEFT"), key: a)) { error in
            guard case .crossSlot = error as? RedisError else { return XCTFail("\(error)") }
            XCTAssertEqual((error as? RedisError)?.code, "redis_cross_slot")
        }
        let inPipeline = try client.pipeline([(RedisCommand("MGET", a, b), a), (RedisCommand("PING"), a)])
        XCTAssertTrue(inPipeline[0].errorMessage?.hasPrefix("CROSSSLOT") ?? false)
        XCTAssertEqual(inPipeline[1], .status("PONG"))
        XCTAssertThrowsError(try inPipeline[0].throwingOnError()) { XCTAssertEqual(($0 as? RedisError)?.code, "redis_cross_slot") }

        // A blocking command waits on its slot's master, longer than the command timeout.
        var configuration = try RedisClusterConfiguration(url: cluster.url)
        configuration.commandTimeout = 0.2
        let short = try RedisCluster(configuration: configuration)
        let start = ContinuousClock.now
        XCTAssertTrue(try short.send(RedisCommand("BLMOVE", "P:{\(prefix)}:none", processing, "RIGHT", "LEFT", 0.5),
                                     key: processing, blockingFor: 0.5).isNull)
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - start, .milliseconds(450))
        XCTAssertEqual(try short.send(RedisCommand("BLMOVE", jobs, processing, "RIGHT", "LEFT", 1), key: jobs, blockingFor: 1).string, "j3")
        XCTAssertEqual(try short.send(RedisCommand("LLEN", processing), key: processing).int, 2)
    }

    /// A wait written now and read later goes to its key's master, like any command; after it,
    /// the client sends ordinary commands in step.
    func testAWaitGoesToItsKeysMasterAndIsReadLater() throws {
        let client = try RedisCluster(url: cluster.url)
        let jobs = "P:{\(prefix)}:jobs"
        let descriptor = try client.startWait(RedisCommand("BLMOVE", jobs, jobs, "RIGHT", "RIGHT", 5))
        var pfd = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&pfd, 1, 200), 0)
        let producer = try RedisCluster(url: cluster.url)
        try producer.send(RedisCommand("LPUSH", jobs, "j1"), key: jobs)
        XCTAssertEqual(poll(&pfd, 1, 2_000), 1, "the push reaches the master the wait went to")
        XCTAssertEqual(try client.finishWait().string, "j1")
        XCTAssertEqual(try client.send(RedisCommand("LLEN", jobs), key: jobs).int, 1)
        XCTAssertThrowsError(try client.finishWait(), "no wait is in flight any more")
    }

    // MARK: Topology changes

    func beginMigration(slot: Int, from: Int, to: Int) throws { try cluster.beginSlotMigration(slot, from: from, to: to) }
    func migrate(keys: [String], from: Int, to: Int) throws { try cluster.migrateKeys(keys, from: from, to: to) }
    func finishMigration(slot: Int, from: Int, to: Int) throws { try cluster.finishSlotMigration(slot, from: from, to: to) }

    func testMovedAfterASlotIsReshardedFollowsAndUpdatesTheMap() throws {
        let client = try RedisCluster(url: cluster.url)
        let masters = try cluster.masterPorts()
        let from = masters[0], to = masters[1]
        let tag = try tag(servedBy: from, client)
        let slot = RedisKeySlot.slot(of: "{\(tag)}")
        let keys = (0..<20).map { "{\(tag)}:k\($0)" }
        _ = try client.pipeline(keys.map { (RedisCommand("SET", $0, "before"), $0) })
        let readsBefore = client.mapReads

        try beginMigration(slot: slot, from: from, to: to)
        try finishMigration(slot: slot, from: from, to: to)
        XCTAssertEqual(try cluster.masterPort(forSlot: slot, askingPort: from), to)

        // The client still believes `from` serves the slot: MOVED, followed, and the map updated.
        XCTAssertEqual(client.node(forSlot: slot)?.port, from)
        XCTAssertEqual(try client.send(RedisCommand("GET", keys[0]), key: keys[0]).string, "before")
        XCTAssertGreaterThanOrEqual(client.movedCount, 1)
        XCTAssertEqual(client.node(forSlot: slot)?.port, to)
        // The next command reads the whole map again; a pipeline for the slot goes straight to `to`.
        let moved = client.movedCount
        XCTAssertEqual(try client.pipeline(keys.map { (RedisCommand("GET", $0), $0) }).map(\.string), Array(repeating: "before", count: keys.count))
        XCTAssertEqual(client.movedCount, moved)
        XCTAssertGreaterThan(client.mapReads, readsBefore)
        XCTAssertEqual(try cluster.connection(to).send("GET", keys[5]).string, "before", "the key lives on the new master")
    }

    func testAskDuringAMigrationReachesKeysOnBothSides() throws {
        let client = try RedisCluster(url: cluster.url)
        let masters = try cluster.masterPorts()
        let from = masters[2], to = masters[0]
        let tag = try tag(servedBy: from, client)
        let slot = RedisKeySlot.slot(of: "{\(tag)}")
        let stays = "{\(tag)}:stays", goes = "{\(tag)}:goes", fresh = "{\(tag)}:fresh"
        try client.send(RedisCommand("SET", stays, "s"), key: stays)
        try client.send(RedisCommand("RPUSH", goes, "g1", "g2"), key: goes)

        try beginMigration(slot: slot, from: from, to: to)
        try migrate(keys: [goes], from: from, to: to)
        // Mid-migration: one key on each side, and the slot still belongs to `from`.
        XCTAssertEqual(try client.send(RedisCommand("GET", stays), key: stays).string, "s")
        XCTAssertEqual(client.askCount, 0, "a key still on the old master needs no redirection")
        XCTAssertEqual(try client.send(RedisCommand("LRANGE", goes, 0, -1), key: goes).array?.compactMap(\.string), ["g1", "g2"])
        XCTAssertEqual(client.askCount, 1, "a key already moved is reached with ASKING")
        XCTAssertEqual(client.node(forSlot: slot)?.port, from, "ASK does not change the map")
        // A new key in a migrating slot is created on the importing node.
        try client.send(RedisCommand("SET", fresh, "f"), key: fresh)
        let importing = try cluster.connection(to)
        try importing.send("ASKING")
        XCTAssertEqual(try importing.send("GET", fresh).string, "f", "the new key was made on the importing master")
        XCTAssertEqual(client.movedCount, 0)
        // In a pipeline, redirected and direct replies keep their order.
        let replies = try client.pipeline([(RedisCommand("GET", stays), stays), (RedisCommand("LLEN", goes), goes),
                                           (RedisCommand("GET", fresh), fresh), (RedisCommand("GET", stays), stays)])
        XCTAssertEqual(replies.map(\.string), ["s", "2", "f", "s"])

        try finishMigration(slot: slot, from: from, to: to)
        XCTAssertEqual(try client.pipeline([stays, goes, fresh].map { (RedisCommand("TYPE", $0), $0) }).map(\.string), ["string", "list", "string"])
        XCTAssertEqual(client.node(forSlot: slot)?.port, to, "MOVED after the migration ends")
    }

    // MARK: The client protocol

    func testTheClientProtocolRoutesEachCommandByItsKey() throws {
        let client = try RedisTarget(url: cluster.url).connect()
        let concrete = try XCTUnwrap(client as? RedisCluster)
        let masters = try cluster.masterPorts()
        let tags = try masters.map { try tag(servedBy: $0, concrete) }
        // One pipeline over every master: the replies in order, each list on its own master.
        var commands: [RedisCommand] = []
        for t in tags { commands += [RedisCommand("LPUSH", "{\(t)}:list", "a", "b"), RedisCommand("EXPIRE", "{\(t)}:list", 60)] }
        commands += [RedisCommand("PUBLISH", "\(prefix):channel", "m"), RedisCommand("LLEN", "{\(tags[0])}:list")]
        XCTAssertEqual(try client.pipeline(commands).map(\.int), [2, 1, 2, 1, 2, 1, 0, 2])
        for (port, t) in zip(masters, tags) {
            XCTAssertEqual(try cluster.connection(port).send("LLEN", "{\(t)}:list").int, 2, "the list of \(t) on \(port)")
        }
        // A script loaded on one node runs on every master: NOSCRIPT there, then EVAL there.
        let script = try client.load("return redis.call('LLEN', KEYS[1])")
        for t in tags { XCTAssertEqual(try client.evalsha(script, keys: ["{\(t)}:list"]).int, 2) }
        for port in masters {
            XCTAssertEqual(try cluster.connection(port).send("SCRIPT", "EXISTS", script.sha1).array?.first?.int, 1, "cached on \(port)")
        }
        // The worker's wait: a rotation of the list onto itself, on the list's master.
        XCTAssertEqual(try client.blmove("{\(tags[2])}:list", "{\(tags[2])}:list", from: .right, to: .right, timeout: 1), Array("a".utf8))
        XCTAssertTrue(try client.ping())
        XCTAssertThrowsError(try client.send("DEL", "{\(tags[0])}:list", "{\(tags[1])}:list")) { error in
            XCTAssertEqual((error as? RedisError)?.code, "redis_cross_slot")
        }
    }

    /// A RESP buffer through the cluster: each command to its key's master, the replies in the
    /// buffer's order, an error in its place, and scripts by digest falling back to `EVAL` on every
    /// master whose cache was flushed.
    func testABufferIsRoutedCommandByCommandAndItsScriptsRunEverywhere() throws {
        let client = try RedisTarget(url: cluster.url).connect()
        let concrete = try XCTUnwrap(client as? RedisCluster)
        let masters = try cluster.masterPorts()
        let tags = try masters.map { try tag(servedBy: $0, concrete) }
        for port in masters { _ = try cluster.connection(port).send("SCRIPT", "FLUSH") }
        let length = RedisScript(source: "return redis.call('LLEN', KEYS[1]) -- \(prefix)")
        let binary: [UInt8] = [0, 13, 10, 255]
        var buffer = RedisCommandBuffer()
        for t in tags {
            buffer.begin("RPUSH", argumentCount: 3)
            buffer.argument("{\(t)}:list")
            buffer.argument(binary)
            buffer.argument("")
            buffer.beginScript(length, keyCount: 1, argumentCount: 0)
            buffer.argument("{\(t)}:list")
        }
        buffer.append(RedisCommand("SET", "{\(tags[0])}:str", "x"))
        buffer.append(RedisCommand("LPUSH", "{\(tags[0])}:str", "y"))
        buffer.append(RedisCommand("LLEN", "{\(tags[2])}:list"))
        let replies = try client.pipeline(buffer)
        XCTAssertEqual(Array(replies.prefix(6)).map(\.int), [2, 2, 2, 2, 2, 2])
        XCTAssertEqual(replies[6], .status("OK"))
        XCTAssertEqual(replies[7].refusalCode, .wrongType)
        XCTAssertEqual(replies[8].int, 2)
        for (port, t) in zip(masters, tags) {
            let node = try cluster.connection(port)
            XCTAssertEqual(try node.lrange("{\(t)}:list", 0, -1), [binary, []], "the list of \(t) on \(port)")
            XCTAssertEqual(try node.send("SCRIPT", "EXISTS", length.sha1).array?.first?.int, 1, "EVAL cached it on \(port)")
        }
        XCTAssertEqual(try client.pipeline(buffer).prefix(6).map(\.int), [4, 4, 4, 4, 4, 4], "by digest now")
    }

    /// An outbox ends with its acknowledgement: the group that holds a pipeline's last command must
    /// leave after every other group has been answered. Each command here reads its master's clock
    /// (one machine, one clock), so the order in which the groups ran shows in the replies.
    func testThePipelinesLastCommandLeavesAfterEveryOtherGroup() throws {
        let client = try RedisCluster(url: cluster.url)
        let masters = try cluster.masterPorts()
        let tags = try masters.map { try tag(servedBy: $0, client) }
        let now = "local t = redis.call('TIME') return t[1] * 1000000 + t[2]"
        // The first and the last command share a master: without the rule, that group would go first.
        let order = [0, 1, 2, 1, 0]
        let replies = try client.pipeline(order.map { i in
            (RedisCommand("EVAL", now, 1, "{\(tags[i])}:clock"), "{\(tags[i])}:clock")
        })
        let times = try replies.map { try XCTUnwrap($0.int) }
        XCTAssertGreaterThan(times[4], times[1], "the last command ran after the second master's group")
        XCTAssertGreaterThan(times[4], times[2], "the last command ran after the third master's group")
        XCTAssertGreaterThan(times[0], times[2], "the first command was held with the last, in their group")
        XCTAssertGreaterThanOrEqual(times[4], times[0], "a group keeps its order")
    }

    // MARK: Pub/sub

    func testPublishOnAnyNodeReachesSubscribersOnEveryNode() throws {
        let client = try RedisCluster(url: cluster.url)
        let channel = "\(prefix):balance"
        var subscribers: [(port: Int, subscriber: RedisSubscriber)] = []
        for port in cluster.ports {  // masters and replicas
            let subscriber = try RedisSubscriber(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port)))
            try subscriber.subscribe([channel])
            subscribers.append((port, subscriber))
        }
        let any = try RedisSubscriber(configuration: client.subscriberConfiguration())
        try any.subscribe([channel])
        let channelPort = try XCTUnwrap(client.node(forSlot: RedisKeySlot.slot(of: channel))?.port)

        let local = try client.publish(channel, "m1")
        XCTAssertGreaterThanOrEqual(local, 0, "PUBLISH counts only the receiving node's own subscribers")
        // Published directly on a master that does not serve the channel's slot: it still reaches all.
        let otherMaster = try XCTUnwrap(try cluster.masterPorts().first { $0 != channelPort })
        try cluster.connection(otherMaster).send("PUBLISH", channel, "m2")
        // Messages published on two nodes travel separate paths: each arrives, in either order.
        for (port, subscriber) in subscribers + [(0, any)] {
            let received = [try subscriber.receive(timeout: 3)?.text, try subscriber.receive(timeout: 3)?.text]
            XCTAssertEqual(Set(received), ["m1", "m2"], "subscriber on \(port)")
        }
    }

    /// A sharded channel belongs to its slot: `SPUBLISH` goes to the slot's master (routed by the
    /// channel like a key), only subscribers of that shard hear it, and the message crosses no
    /// other master. `SSUBSCRIBE` elsewhere is refused with the slot's owner.
    func testShardedPublishStaysInTheChannelsShard() throws {
        let client = try RedisCluster(url: cluster.url)
        let channel = "\(prefix):{3}:balance"
        let slot = RedisKeySlot.slot(of: channel)
        XCTAssertEqual(slot, RedisKeySlot.slot(of: "3"), "the tag decides the slot")
        let owner = try XCTUnwrap(try cluster.masterPort(forSlot: slot))
        let configuration = try RedisTarget(url: cluster.url).shardSubscriberConfiguration(channel: channel)
        XCTAssertEqual(configuration.endpoint, .tcp(host: "127.0.0.1", port: owner), "the subscriber goes to the slot's master")

        let sharded = try RedisSubscriber(configuration: configuration)
        try sharded.ssubscribe([channel])
        var plain: [(port: Int, subscriber: RedisSubscriber)] = []
        for port in cluster.ports {
            let subscriber = try RedisSubscriber(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port)))
            try subscriber.subscribe([channel])
            plain.append((port, subscriber))
        }
        let elsewhere = try XCTUnwrap(try cluster.masterPorts().first { $0 != owner })
        let misplaced = try RedisSubscriber(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: elsewhere)))
        XCTAssertThrowsError(try misplaced.ssubscribe([channel])) { error in
            guard case .server(let message) = error as? RedisError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.hasPrefix("MOVED \(slot) "), message)
        }
        XCTAssertThrowsError(try misplaced.ssubscribe(["\(prefix):{1}:x", "\(prefix):{2}:x"])) { error in
            guard case .crossSlot = error as? RedisError else { return XCTFail("\(error)") }
        }

        let messages: [[UInt8]] = [Array("m1".utf8), [0, 13, 10, 0xFF], Array("m3".utf8)]
        for message in messages {
            XCTAssertEqual(try client.spublish(channel, message), 1, "the one sharded subscriber, on the slot's master")
        }
        XCTAssertEqual(client.movedCount, 0, "routed by the channel, straight to its master")
        for message in messages {
            let received = try XCTUnwrap(try sharded.receive(timeout: 3))
            XCTAssertEqual(received, RedisMessage(channel: channel, payload: message, sharded: true), "in the order published")
        }
        for (port, subscriber) in plain {
            XCTAssertNil(try subscriber.receive(timeout: 0.2), "a plain subscriber on \(port) hears no sharded message")
        }
    }

    /// When its slot moves to another master, the old owner ends the sharded subscription itself;
    /// the subscriber says so and the channel is followed on the new owner.
    func testAShardedSubscriptionEndsWhenItsSlotMoves() throws {
        let client = try RedisCluster(url: cluster.url)
        let masters = try cluster.masterPorts()
        let tag = try tag(servedBy: masters[0], client)
        let channel = "\(prefix):{\(tag)}:balance"
        let slot = RedisKeySlot.slot(of: channel)
        let subscriber = try RedisSubscriber(configuration: client.shardSubscriberConfiguration(channel: channel))
        try subscriber.ssubscribe([channel])
        try cluster.beginSlotMigration(slot, from: masters[0], to: masters[1])
        try cluster.finishSlotMigration(slot, from: masters[0], to: masters[1])
        XCTAssertThrowsError(try subscriber.receive(timeout: 5)) { error in
            XCTAssertEqual(error as? RedisError, .shardSubscriptionEnded(channel))
        }
        XCTAssertEqual(subscriber.shardChannels, [])

        try client.refreshSlotMap()
        let moved = try RedisSubscriber(configuration: client.shardSubscriberConfiguration(channel: channel))
        try moved.ssubscribe([channel])
        XCTAssertEqual(try client.spublish(channel, "after"), 1)
        XCTAssertEqual(try moved.receive(timeout: 3)?.text, "after")
        try cluster.beginSlotMigration(slot, from: masters[1], to: masters[0])
        try cluster.finishSlotMigration(slot, from: masters[1], to: masters[0])
    }
}

/// A master killed mid-run: its replica takes over and the same client carries on.
final class RedisClusterFailoverTests: XCTestCase {
    func testClientCarriesOnAcrossAFailover() throws {
        let started = ContinuousClock.now
        let cluster = try RedisClusterProcess()
        defer { cluster.stop() }
        let prefix = TestEnvironment.uniquePrefix("failover")
        let client = try RedisCluster(url: cluster.url)
        let masters = try cluster.masterPorts()
        let victim = masters[1]
        let replica = try XCTUnwrap(try cluster.replicaPort(of: victim))

        var acknowledged: [String: Int] = [:]   // key -> value the cluster acknowledged
        var ambiguous = 0, unavailable = 0
        var killedAt: ContinuousClock.Instant?
        var promotedAt: ContinuousClock.Instant?
        var writesAfterPromotion = 0
        var i = 0
        let deadline = ContinuousClock.now + .seconds(30)
        // Write to keys in every slot range; kill the victim after a while; carry on until the
        // replica serves the victim's slots and 300 more writes have been acknowledged.
        while writesAfterPromotion < 300 {
            XCTAssertLessThan(ContinuousClock.now, deadline, "the client did not carry on within 30 s")
            if ContinuousClock.now > deadline { break }
            i += 1
            let key = "\(prefix):\(i % 500)"
            if i == 400 {
                cluster.kill(victim)
                killedAt = .now
            }
            do {
                try Self.set(client, key, i)
                acknowledged[key] = i
                if promotedAt != nil { writesAfterPromotion += 1 }
            } catch {
                switch error.code {
                case "redis_connection_error": ambiguous += 1      // the link broke with the command written: it may or may not have run
                case "redis_cluster_unavailable": unavailable += 1  // nothing was sent; the caller tries again later
                default: throw error
                }
            }
            if killedAt != nil, promotedAt == nil, i % 20 == 0, try cluster.masterPorts(askingPort: masters[0]).contains(replica) {
                promotedAt = .now
            }
        }
        let killed = try XCTUnwrap(killedAt), promoted = try XCTUnwrap(promotedAt)
        print("failover: replica \(replica) serving \(promoted - killed) after the kill; \(ambiguous) broken links, \(unavailable) waits given up, \(client.mapReads) map reads")
        XCTAssertTrue(try cluster.masterPorts(askingPort: masters[0]).contains(replica))
        XCTAssertFalse(client.slotMap.masters.contains { $0.port == victim }, "the dead master left the client's map")

        // Every write acknowledged after the promotion is there. Writes the old master acknowledged
        // but had not yet sent to its replica are lost: asynchronous replication promises no more.
        let keys = Array(acknowledged.keys)
        let values = try client.pipeline(keys.map { (RedisCommand("GET", $0), $0) })
        var lost = 0
        for (key, value) in zip(keys, values) where value.int.map(Int.init) != acknowledged[key] {
            lost += 1
            let owner = try cluster.masterPort(forSlot: RedisKeySlot.slot(of: key), askingPort: masters[0])
            XCTAssertEqual(owner, replica, "only keys of the failed master can lose a write: \(key)")
        }
        print("failover: \(lost) of \(keys.count) keys lost their last acknowledged write; test took \(ContinuousClock.now - started)")
    }
}

extension RedisClusterFailoverTests {
    /// One write, with its typed error kept (a non-throwing test body cannot match typed patterns).
    static func set(_ client: RedisCluster, _ key: String, _ value: Int) throws(RedisError) {
        try client.send(RedisCommand("SET", key, value), key: key)
    }
}
