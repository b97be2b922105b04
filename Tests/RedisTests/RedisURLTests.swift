import Redis
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

    func testBackoffIsBoundedAndExponential() {
        let p = ReconnectPolicy(initialDelay: 0.1, maxDelay: 1, maxAttempts: 10)
        XCTAssertEqual(p.delay(beforeAttempt: 0), 0)
        XCTAssertEqual(p.delay(beforeAttempt: 1), 0.1, accuracy: 1e-9)
        XCTAssertEqual(p.delay(beforeAttempt: 3), 0.4, accuracy: 1e-9)
        XCTAssertEqual(p.delay(beforeAttempt: 60), 1)
    }
}
