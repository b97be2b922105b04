#if canImport(Glibc)
import Glibc
#endif
import Redis
import TestSupport
import XCTest

final class RedisConnectionTests: XCTestCase {
    var redis: RedisConnection!
    var prefix = ""

    override func setUpWithError() throws {
        redis = try RedisConnection(url: TestEnvironment.redisURL)
        prefix = TestEnvironment.uniquePrefix("redis")
    }

    /// XCTest keeps test-case instances alive: let go of the connection so that it is freed here.
    override func tearDown() {
        redis = nil
    }

    func testBinaryValuesRoundTripWithNulBytes() throws {
        let key: [UInt8] = Array("\(prefix):bin\u{0}key".utf8)
        let value: [UInt8] = [0, 1, 2, 0, 255, 0, 13, 10, 36, 42]
        try redis.set(key, value)
        XCTAssertEqual(try redis.get(key), value)
        try redis.set(key, [UInt8]())
        XCTAssertEqual(try redis.get(key), [], "an empty value is not a missing one")
        XCTAssertNil(try redis.get("\(prefix):missing"))
    }

    /// A wait written now and read later: nothing is readable while the server holds it, a push
    /// from another connection makes the socket readable, the reply is the element, and the
    /// connection then serves ordinary commands in step.
    func testAWaitIsReadOnceItsSocketIsReadable() throws {
        let list = "\(prefix):wait"
        let descriptor = try redis.startWait(RedisCommand("BLMOVE", list, list, "RIGHT", "RIGHT", 5))
        var pfd = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&pfd, 1, 200), 0, "nothing to read while the server holds the wait")
        let producer = try RedisConnection(url: TestEnvironment.redisURL)
        let value: [UInt8] = [0, 1, 255]
        try producer.lpush(list, value)
        XCTAssertEqual(poll(&pfd, 1, 2_000), 1, "the push makes the wait's socket readable")
        XCTAssertEqual(try redis.finishWait(), .bulk(value), "binary-safe, and moved onto itself: still queued")
        XCTAssertEqual(try redis.send(RedisCommand("LLEN", list)).int, 1, "the connection is in step after the wait")

        // A wait that times out answers nil, readable at the server's timeout.
        let empty = "\(prefix):wait-empty"
        let started = ContinuousClock.now
        var quiet = pollfd(fd: try redis.startWait(RedisCommand("BLMOVE", empty, empty, "RIGHT", "RIGHT", 0.3)), events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&quiet, 1, 3_000), 1)
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(250))
        XCTAssertEqual(try redis.finishWait(), .null)
        XCTAssertEqual(try redis.send(RedisCommand("PING")), .status("PONG"))
    }

    func testOneMebibyteValue() throws {
        var value = [UInt8](repeating: 0, count: 1 << 20)
        for i in value.indices { value[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 8) }
        try redis.lpush("\(prefix):big", value)
        XCTAssertEqual(try redis.lrange("\(prefix):big", 0, -1), [value])
    }

    func testTenThousandCommandPipeline() throws {
        let key = "\(prefix):pipe"
        let commands = (0..<10_000).map { RedisCommand("RPUSH", key, "item-\($0)") }
        let replies = try redis.pipeline(commands)
        XCTAssertEqual(replies.count, 10_000)
        XCTAssertEqual(replies.last, .integer(10_000))
        XCTAssertEqual(replies.map(\.int), (1...10_000).map { Int64($0) })
        XCTAssertEqual(try redis.lrange(key, 9_999, 9_999).first.map { String(decoding: $0, as: UTF8.self) }, "item-9999")
    }

    /// Empty arguments are values like any other; an empty command name is refused before anything
    /// is written, so the link stays in step and usable.
    func testEmptyArgumentsAndAnEmptyCommandName() throws {
        let key = "\(prefix):empty"
        try redis.send(RedisCommand("SET", key, ""))
        XCTAssertEqual(try redis.get(key), [])
        XCTAssertEqual(try redis.send(RedisCommand("RPUSH", "\(prefix):list", "", [UInt8](), "x")).int, 3)
        for bad in [RedisCommand(""), RedisCommand("", arguments: []), RedisCommand("", "", ""), RedisCommand("", "GET", key)] {
            XCTAssertThrowsError(try redis.send(bad)) { error in
                XCTAssertEqual((error as? RedisError)?.code, "redis_invalid_command", "\(error)")
            }
            XCTAssertThrowsError(try redis.pipeline([RedisCommand("INCR", "\(prefix):n"), bad])) { error in
                XCTAssertEqual((error as? RedisError)?.code, "redis_invalid_command")
            }
        }
        XCTAssertNil(try redis.get("\(prefix):n"), "a pipeline holding an invalid command sends none of it")
        XCTAssertTrue(try redis.ping())
    }

    func testServerErrorsAreTypedAndTheConnectionStaysUsable() throws {
        try redis.set("\(prefix):str", "x")
        XCTAssertThrowsError(try redis.lpush("\(prefix):str", "y")) { error in
            guard case .server(let message) = error as? RedisError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.hasPrefix("WRONGTYPE"), message)
        }
        XCTAssertThrowsError(try redis.send("NOSUCHCOMMAND")) { error in
            XCTAssertEqual((error as? RedisError)?.code, "redis_server_error")
        }
        // In a pipeline, the error stays in its place and the others still answer.
        let replies = try redis.pipeline([RedisCommand("INCR", "\(prefix):str"), RedisCommand("PING")])
        XCTAssertNotNil(replies[0].errorMessage)
        XCTAssertEqual(replies[1], .status("PONG"))
        XCTAssertTrue(try redis.ping())
    }

    func testBlockingMoveTimesOutWithNilAndThenReceives() throws {
        let start = ContinuousClock.now
        XCTAssertNil(try redis.blmove("\(prefix):empty", "\(prefix):dest", timeout: 0.3))
        let waited = ContinuousClock.now - start
        XCTAssertGreaterThanOrEqual(waited, .milliseconds(250))
        XCTAssertTrue(try redis.ping(), "a server-side timeout leaves the connection usable")
        try redis.lpush("\(prefix):src", "job")
        XCTAssertEqual(try redis.blmove("\(prefix):src", "\(prefix):dest", timeout: 1), Array("job".utf8))
        XCTAssertEqual(try redis.llen("\(prefix):dest"), 1)
        XCTAssertEqual(try redis.lmove("\(prefix):dest", "\(prefix):src"), Array("job".utf8))
        XCTAssertNil(try redis.lmove("\(prefix):dest", "\(prefix):src"))
    }

    func testBlockingLongerThanTheCommandTimeoutStillWorks() throws {
        var config = try RedisConfiguration(url: TestEnvironment.redisURL)
        config.commandTimeout = 0.2
        let short = try RedisConnection(configuration: config)
        XCTAssertNil(try short.blmove("\(prefix):none", "\(prefix):dest", timeout: 0.5))
        XCTAssertTrue(try short.ping())
    }

    func testListAndKeyHelpers() throws {
        let key = "\(prefix):list"
        try redis.lpush(key, ["a", "b", "a", "c"])
        XCTAssertEqual(try redis.lrem(key, count: 0, "a"), 2)
        try redis.ltrim(key, 0, 0)
        XCTAssertEqual(try redis.lrange(key, 0, -1), [Array("c".utf8)])
        XCTAssertTrue(try redis.expire(key, seconds: 100))
        XCTAssertGreaterThan(try redis.pttl(key), 90_000)
        XCTAssertTrue(try redis.setIfAbsent("\(prefix):lease", "me", expiresInMilliseconds: 5000))
        XCTAssertFalse(try redis.setIfAbsent("\(prefix):lease", "you", expiresInMilliseconds: 5000))
        XCTAssertEqual(try redis.del(["\(prefix):lease", key]), 2)
        XCTAssertEqual(try redis.sadd("\(prefix):set", "w1"), 1)
        XCTAssertEqual(try redis.smembers("\(prefix):set"), [Array("w1".utf8)])
    }

    func testScriptsWithEvalshaFallback() throws {
        let source = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
        XCTAssertEqual(try redis.eval(source, keys: ["\(prefix):n"], arguments: [5]), .integer(5))
        let script = try redis.load(source)
        XCTAssertEqual(try redis.evalsha(script, keys: ["\(prefix):n"], arguments: [2]), .integer(7))
        try redis.send("SCRIPT", "FLUSH")
        XCTAssertEqual(try redis.evalsha(script, keys: ["\(prefix):n"], arguments: [1]), .integer(8), "NOSCRIPT falls back to EVAL")
        XCTAssertThrowsError(try redis.eval("return redis.error_reply('MYERR nope')"))
    }

    func testConnectionRefusedIsATypedError() {
        let config = RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: 1), reconnect: .init(initialDelay: 0.01, maxAttempts: 2))
        XCTAssertThrowsError(try RedisConnection(configuration: config)) { error in
            XCTAssertEqual((error as? RedisError)?.code, "redis_connection_error")
        }
    }
}

/// The stream commands of `RedisConnection+Streams`, against the real server.
final class RedisStreamTests: XCTestCase {
    func testXaddXrangeXreadAreBinarySafe() throws {
        let redis = try RedisConnection(url: TestEnvironment.redisURL)
        let key = TestEnvironment.uniquePrefix("stream")
        let binary: [UInt8] = [0, 1, 0xFF, 0x0D, 0x0A, 0x20]
        let first = try redis.xadd(key, approximateMaxLength: 1000, [("event", "a"), ("blob", binary)])
        try redis.xadd(key, [("event", "b")])
        XCTAssertEqual(try redis.xlen(key), 2)
        let all = try redis.xrange(key)
        XCTAssertEqual(all.map { $0.value("event") }, ["a", "b"])
        XCTAssertEqual(all[0].id, first)
        XCTAssertEqual(all[0].fields[1].value, binary)
        XCTAssertEqual(try redis.xread(key, after: first, blockMilliseconds: 10).map { $0.value("event") }, ["b"])
        XCTAssertEqual(try redis.xread(key, after: "$", blockMilliseconds: 10), [], "nothing new: an empty answer, not an error")
        XCTAssertEqual(try redis.xrange(key, count: 1).count, 1)
        _ = try redis.send(RedisCommand("DEL", key))
    }
}
