import Redis
import TestSupport
import XCTest

/// `SPUBLISH` and `SSUBSCRIBE` on the single server of `REDIS_URL` (Redis 7 has sharded pub/sub
/// without a cluster too): binary-safe both ways, and a namespace apart from `PUBLISH`/`SUBSCRIBE`.
/// The cluster's routing of them is in `RedisClusterTests`.
final class RedisShardedPubSubTests: XCTestCase {
    var redis: RedisConnection!
    var prefix = ""

    override func setUpWithError() throws {
        redis = try RedisConnection(url: TestEnvironment.redisURL)
        prefix = TestEnvironment.uniquePrefix("spub")
    }

    override func tearDown() {
        redis = nil
    }

    func testAShardedMessageRoundTripsItsBytes() throws {
        let channel = "\(prefix):{3}:balance"
        let subscriber = try RedisSubscriber(url: TestEnvironment.redisURL)
        try subscriber.ssubscribe([channel])
        XCTAssertEqual(subscriber.shardChannels, [channel])
        XCTAssertEqual(subscriber.channels, [])

        let payload: [UInt8] = [0, 1, 13, 10, 36, 42, 0xFF, 0xC3, 0xA9, 0]
        XCTAssertEqual(try redis.spublish(channel, payload), 1, "one sharded subscriber")
        XCTAssertEqual(try redis.spublish(channel, [UInt8]()), 1)
        let first = try XCTUnwrap(try subscriber.receive(timeout: 3))
        XCTAssertEqual(first, RedisMessage(channel: channel, payload: payload, sharded: true))
        let empty = try XCTUnwrap(try subscriber.receive(timeout: 3))
        XCTAssertEqual(empty.payload, [], "an empty message is a message")
        XCTAssertTrue(empty.sharded)
    }

    func testShardedAndPlainChannelsDoNotHearEachOther() throws {
        let channel = "\(prefix):balance"
        let plain = try RedisSubscriber(url: TestEnvironment.redisURL)
        try plain.subscribe([channel])
        let sharded = try RedisSubscriber(url: TestEnvironment.redisURL)
        try sharded.ssubscribe([channel])

        XCTAssertEqual(try redis.spublish(channel, "s1"), 1, "only the sharded subscriber counts")
        XCTAssertEqual(try redis.publish(channel, "p1"), 1, "only the plain subscriber counts")
        XCTAssertEqual(try sharded.receive(timeout: 3)?.text, "s1")
        XCTAssertEqual(try plain.receive(timeout: 3)?.text, "p1")
        XCTAssertNil(try sharded.receive(timeout: 0.3), "PUBLISH never reaches SSUBSCRIBE")
        XCTAssertNil(try plain.receive(timeout: 0.3), "SPUBLISH never reaches SUBSCRIBE")
    }

    func testOneConnectionSubscribesBothWaysAndTellsThemApart() throws {
        let channel = "\(prefix):both"
        let subscriber = try RedisSubscriber(url: TestEnvironment.redisURL)
        try subscriber.subscribe([channel])
        try subscriber.ssubscribe([channel, "\(prefix):other"])
        XCTAssertEqual(subscriber.shardChannels, [channel, "\(prefix):other"])
        try redis.publish(channel, "plain")
        try redis.spublish(channel, "sharded")
        let messages = [try subscriber.receive(timeout: 3), try subscriber.receive(timeout: 3)]
        XCTAssertEqual(messages.map { $0?.text }, ["plain", "sharded"])
        XCTAssertEqual(messages.map { $0?.sharded }, [false, true])
    }
}
