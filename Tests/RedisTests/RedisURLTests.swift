import Foundation
import Redis
import TestSupport
import XCTest

final class RedisURLTests: XCTestCase {
    func testTCPWithCredentialsAndDatabase() throws {
        let c = try RedisConfiguration(url: "redis://app:s%40cret@cache.local:6380/3")
        XCTAssertEqual(c.endpoint, .tcp(host: "cache.local", port: 6380))
        XCTAssertEqual(c.username, "app")
        XCTAssertEqual(c.password, "s@cret")
        XCTAssertEqual(c.database, 3)
        XCTAssertFalse(c.description.contains("cret"), "the password never reaches logs")
    }

    func testPasswordOnlyAndDefaults() throws {
        let c = try RedisConfiguration(url: "redis://:pw@10.0.0.1")
        XCTAssertNil(c.username)
        XCTAssertEqual(c.password, "pw")
        XCTAssertEqual(c.endpoint, .tcp(host: "10.0.0.1", port: 6379))
        XCTAssertEqual(c.database, 0)
        XCTAssertEqual(try RedisConfiguration(url: "redis://").endpoint, .tcp(host: "127.0.0.1", port: 6379))
    }

    func testIPv6AndUnix() throws {
        XCTAssertEqual(try RedisConfiguration(url: "redis://[::1]:7000/1").endpoint, .tcp(host: "::1", port: 7000))
        let u = try RedisConfiguration(url: "unix:///tmp/redis.sock?db=2")
        XCTAssertEqual(u.endpoint, .unix(path: "/tmp/redis.sock"))
        XCTAssertEqual(u.database, 2)
    }

    func testInvalidURLsAreRefusedWithAReason() {
        for bad in ["http://x", "redis://host:notaport", "redis://host:70000", "redis://host/x", "unix://relative.sock", "unix:///s?color=red"] {
            XCTAssertThrowsError(try RedisConfiguration(url: bad), bad) { error in
                XCTAssertEqual((error as? RedisError)?.code, "redis_invalid_configuration", bad)
            }
        }
    }

    func testQueriesWithoutANameAreRefused() {
        for bad in ["redis://h?=", "redis://h?=1", "redis://h?&=&", "unix:///s?=", "redis://h?db=1&=2"] {
            XCTAssertThrowsError(try RedisConfiguration(url: bad), bad) { error in
                XCTAssertEqual((error as? RedisError)?.code, "redis_invalid_configuration", bad)
            }
        }
        XCTAssertEqual(try RedisConfiguration(url: "redis://h?db=4&").database, 4, "an empty pair is skipped")
    }

    /// Mutated valid URLs and random strings: each one parses to something usable or is refused
    /// with `redis_invalid_configuration`; none traps. Replay a failure with FUZZ_SEED=<seed>.
    func testURLParserFuzz() {
        var rng = SeededGenerator.fromEnvironment(test: "testURLParserFuzz")
        let seed = rng.seed
        let valid = [
            "redis://app:s%40cret@cache.local:6380/3", "redis://:pw@10.0.0.1", "redis://[::1]:7000/1",
            "unix:///tmp/redis.sock?db=2", "redis://h?db=1", "redis://", "redis://host:6379/0?db=3",
        ].map { Array($0.utf8) }
        let special = Array("?=&@:/[]%.0123456789-+ ".utf8) + [0x00, 0x0A, 0x7F, 0xC3, 0xA9, 0xFF]
        let deadline = Date().addingTimeInterval(3)
        var parsed = 0, refused = 0
        for i in 0..<30_000 where Date() < deadline {
            var bytes: [UInt8]
            if i % 4 == 0 {
                bytes = (0..<Int.random(in: 0...40, using: &rng)).map { _ in
                    Bool.random(using: &rng) ? special.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
                }
                if Bool.random(using: &rng) { bytes = Array((Bool.random(using: &rng) ? "redis://" : "unix://").utf8) + bytes }
            } else {
                bytes = valid.randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0 where !bytes.isEmpty: bytes[position] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
                    case 1: bytes = Array(bytes.prefix(position))
                    case 2: bytes.insert(special.randomElement(using: &rng)!, at: position)
                    default: if !bytes.isEmpty { bytes.remove(at: position) }
                    }
                }
            }
            let url = String(decoding: bytes, as: UTF8.self)
            do {
                let c = try RedisConfiguration(url: url)
                parsed += 1
                XCTAssertGreaterThanOrEqual(c.database, 0, "seed \(seed): \(url.debugDescription)")
                if case .tcp(_, let port) = c.endpoint {
                    XCTAssertTrue((1...65535).contains(port), "seed \(seed): \(url.debugDescription)")
                }
            } catch {
                refused += 1
                XCTAssertEqual((error as? RedisError)?.code, "redis_invalid_configuration", "seed \(seed): \(url.debugDescription)")
            }
        }
        print("testURLParserFuzz: seed \(seed): \(parsed) parsed, \(refused) refused")
        XCTAssertGreaterThan(parsed, 0, "seed \(seed)")
        XCTAssertGreaterThan(refused, 0, "seed \(seed)")
    }

    func testBackoffIsBoundedAndExponential() {
        let p = ReconnectPolicy(initialDelay: 0.1, maxDelay: 1, maxAttempts: 10)
        XCTAssertEqual(p.delay(beforeAttempt: 0), 0)
        XCTAssertEqual(p.delay(beforeAttempt: 1), 0.1, accuracy: 1e-9)
        XCTAssertEqual(p.delay(beforeAttempt: 3), 0.4, accuracy: 1e-9)
        XCTAssertEqual(p.delay(beforeAttempt: 60), 1)
    }
}
