import Redis
import TestSupport
import XCTest

/// Commands written as RESP into one buffer and sent at once, against the real server.
final class RedisCommandBufferTests: XCTestCase {
    var redis: RedisConnection!
    var prefix = ""

    override func setUpWithError() throws {
        redis = try RedisConnection(url: TestEnvironment.redisURL)
        prefix = TestEnvironment.uniquePrefix("resp")
    }

    override func tearDown() {
        redis = nil
    }

    /// The bytes are RESP exactly: a known command, an empty argument, negative and zero integers.
    func testTheBytesAreRESP() {
        var buffer = RedisCommandBuffer()
        buffer.begin("SET", argumentCount: 2)
        buffer.argument("k")
        buffer.argument("")
        buffer.begin("INCRBY", argumentCount: 2)
        buffer.argument([UInt8]([0, 13, 10]))
        buffer.argument(-120)
        buffer.append(RedisCommand("EXPIRE", "k", 0))
        XCTAssertNil(buffer.invalidReason)
        XCTAssertEqual(buffer.count, 3)
        let expected = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
            + "*3\r\n$6\r\nINCRBY\r\n$3\r\n\u{0}\r\n\r\n$4\r\n-120\r\n"
            + "*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$1\r\n0\r\n"
        XCTAssertEqual(buffer.bytes, Array(expected.utf8))
        XCTAssertEqual(buffer.command(at: 2), RedisCommand("EXPIRE", "k", 0), "read back as written")
        XCTAssertEqual(buffer.commands.map(\.name), ["SET", "INCRBY", "EXPIRE"])
        for n in [0, 9, 10, 99, 100, -1, -10, Int.max, Int.min] {
            var bytes: [UInt8] = []
            n.appendRedisBytes(to: &bytes)
            XCTAssertEqual(bytes, Array(String(n).utf8))
            XCTAssertEqual(n.redisByteCount, bytes.count)
        }
    }

    /// Any byte, empty values, and values written in place (`argument(writing:)`) round-trip.
    func testBinaryEmptyAndLargeArgumentsRoundTrip() throws {
        var rng = SeededGenerator.fromEnvironment(test: "testBinaryEmptyAndLargeArgumentsRoundTrip")
        let every: [UInt8] = (0...255).map { UInt8($0) }
        let crlf: [UInt8] = Array("\r\n$5\r\n*2\r\n".utf8)
        var large: [UInt8] = []
        large.reserveCapacity(2 << 20)
        for _ in 0..<((2 << 20) / 8) { withUnsafeBytes(of: rng.next()) { large.append(contentsOf: $0) } }
        let values: [[UInt8]] = [every, [], crlf, large, [0], Array("é".utf8)]
        let key = Array("\(prefix):bin\u{0}\r\nkey".utf8)

        var buffer = RedisCommandBuffer()
        for value in values {
            buffer.begin("RPUSH", argumentCount: 2)
            buffer.argument(key)
            buffer.argument(value)
        }
        // Written in place, its length known only afterwards.
        buffer.begin("RPUSH", argumentCount: 2)
        buffer.argument(key)
        buffer.argument(writing: { $0.append(contentsOf: large.prefix(70_000)) })
        buffer.begin("RPUSH", argumentCount: 2)
        buffer.argument(key)
        buffer.argument(writing: { _ in })
        let replies = try redis.pipeline(buffer)
        XCTAssertEqual(replies, (1...values.count + 2).map { .integer(Int64($0)) })
        XCTAssertEqual(try redis.lrange(key, 0, -1), values + [Array(large.prefix(70_000)), []])
        XCTAssertTrue(try redis.ping())
    }

    func testTenThousandCommandsInOneBuffer() throws {
        let key = "\(prefix):pipe"
        var buffer = RedisCommandBuffer()
        for i in 0..<10_000 {
            buffer.begin("RPUSH", argumentCount: 2)
            buffer.argument(key)
            buffer.argument("item-\(i)")
        }
        let replies = try redis.pipeline(buffer)
        XCTAssertEqual(replies.map(\.int), (1...10_000).map { Int64($0) })
        XCTAssertEqual(try redis.lrange(key, 0, -1).map { String(decoding: $0, as: UTF8.self) }, (0..<10_000).map { "item-\($0)" })
        buffer.removeAll()
        XCTAssertTrue(buffer.isEmpty)
        XCTAssertEqual(try redis.pipeline(buffer), [], "an empty buffer sends nothing")
    }

    /// A refused command answers its error in its place; the others run and answer, and the link
    /// stays usable.
    func testErrorsInTheMiddleAreReportedPerCommand() throws {
        let s = "\(prefix):str"
        var buffer = RedisCommandBuffer()
        buffer.append(RedisCommand("SET", s, "x"))
        buffer.append(RedisCommand("LPUSH", s, "y"))
        buffer.append(RedisCommand("INCR", "\(prefix):n"))
        buffer.append(RedisCommand("NOSUCHCOMMAND", "a"))
        buffer.append(RedisCommand("GET", s))
        let replies = try redis.pipeline(buffer)
        XCTAssertEqual(replies.count, 5)
        XCTAssertEqual(replies[0], .status("OK"))
        XCTAssertEqual(replies[1].refusalCode, .wrongType, "\(replies[1])")
        XCTAssertEqual(replies[2], .integer(1))
        XCTAssertNotNil(replies[3].errorMessage)
        XCTAssertEqual(replies[4], .bulk(Array("x".utf8)))
        XCTAssertTrue(try redis.ping())
    }

    /// A buffer whose commands do not match their declared counts, or with an empty name, is
    /// refused whole before anything is written.
    func testAMiscountedBufferSendsNothing() throws {
        let n = "\(prefix):n"
        var short = RedisCommandBuffer()
        short.append(RedisCommand("INCR", n))
        short.begin("SET", argumentCount: 2)
        short.argument(n)
        var extra = RedisCommandBuffer()
        extra.append(RedisCommand("INCR", n))
        extra.argument("stray")
        var interrupted = RedisCommandBuffer()
        interrupted.begin("SET", argumentCount: 2)
        interrupted.argument(n)
        interrupted.append(RedisCommand("INCR", n))
        interrupted.argument("late")
        var unnamed = RedisCommandBuffer()
        unnamed.append(RedisCommand("INCR", n))
        unnamed.begin("", argumentCount: 0)
        var lists = RedisArgumentList()
        lists.append("a")
        lists.append("b")
        var overfull = RedisCommandBuffer()
        overfull.append(RedisCommand("INCR", n))
        overfull.begin("RPUSH", argumentCount: 2)
        overfull.argument(n)
        overfull.arguments(lists)
        for (name, buffer) in [("short", short), ("extra", extra), ("interrupted", interrupted), ("unnamed", unnamed), ("overfull", overfull)] {
            XCTAssertNotNil(buffer.invalidReason, name)
            XCTAssertThrowsError(try redis.pipeline(buffer), name) { error in
                XCTAssertEqual((error as? RedisError)?.code, "redis_invalid_command", "\(name): \(error)")
            }
        }
        XCTAssertNil(try redis.get(n), "no command of a refused buffer ran")
        XCTAssertTrue(try redis.ping())
    }

    /// Arguments written ahead (`RedisArgumentList`) carry into a command whose count is known last.
    func testAnArgumentListCarriesIntoALaterCommand() throws {
        let key = "\(prefix):later"
        var list = RedisArgumentList()
        for value in ["", "a\r\nb", "c"] { list.append(value) }
        list.append(writing: { $0.append(contentsOf: [0, 255]) })
        var buffer = RedisCommandBuffer()
        buffer.begin("RPUSH", argumentCount: 1 + list.count)
        buffer.argument(key)
        buffer.arguments(list)
        XCTAssertEqual(try redis.pipeline(buffer), [.integer(4)])
        XCTAssertEqual(try redis.lrange(key, 0, -1), [[], Array("a\r\nb".utf8), Array("c".utf8), [0, 255]])
    }

    /// The digest computed here is the server's, so a script goes by `EVALSHA` from its first use.
    func testTheLocalDigestIsTheServers() throws {
        for source in ["return 1", "return redis.call('GET', KEYS[1]) -- é\n", ""] {
            XCTAssertEqual(RedisScript(source: source).sha1, try redis.load(source).sha1, source)
        }
    }

    /// Scripts in a buffer fall back to `EVAL` once the server's script cache is flushed: each in
    /// its place, the commands around them answered as well.
    func testScriptsInABufferRunAfterScriptFlush() throws {
        let n = "\(prefix):n"
        let incr = RedisScript(source: "return redis.call('INCRBY', KEYS[1], ARGV[1]) -- \(prefix)")
        let get = RedisScript(source: "return redis.call('GET', KEYS[1]) -- \(prefix)")
        func round(_ by: Int) throws -> [RedisValue] {
            var buffer = RedisCommandBuffer()
            buffer.beginScript(incr, keyCount: 1, argumentCount: 1)
            buffer.argument(n)
            buffer.argument(by)
            buffer.append(RedisCommand("INCR", n))
            buffer.append(RedisCommand(script: get, keys: [n], arguments: []))
            buffer.append(RedisCommand("LPUSH", n, "wrong type"))
            return try redis.pipeline(buffer)
        }
        _ = try redis.send("SCRIPT", "FLUSH")
        var replies = try round(10)
        // Not cached: each EVALSHA answered NOSCRIPT (nothing of it ran) and was sent again as
        // EVAL, in their order, after the commands around them, its reply in its place.
        XCTAssertEqual(Array(replies.prefix(3)), [.integer(11), .integer(1), .bulk(Array("11".utf8))],
                       "before the scripts are cached: EVAL in place of NOSCRIPT, run after the rest")
        XCTAssertEqual(replies[3].refusalCode, .wrongType)
        XCTAssertEqual(try redis.send("SCRIPT", "EXISTS", incr.sha1, get.sha1), .array([.integer(1), .integer(1)]))
        replies = try round(5)
        XCTAssertEqual(Array(replies.prefix(3)), [.integer(16), .integer(17), .bulk(Array("17".utf8))], "by digest, in order")
        _ = try redis.send("SCRIPT", "FLUSH")
        XCTAssertEqual(try redis.evalsha(incr, keys: [n], arguments: [3]), .integer(20))
        XCTAssertThrowsError(try redis.evalsha(RedisScript(source: "return redis.error_reply('MYERR nope')"))) { error in
            XCTAssertEqual(error as? RedisError, .server("MYERR nope"))
        }
    }
}
