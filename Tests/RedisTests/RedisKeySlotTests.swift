import Redis
import XCTest

/// The slot function and the cluster URL, without a server. The expected slots are what
/// `CLUSTER KEYSLOT` answered on a Redis 7.0 server; `RedisClusterTests` checks random keys live.
final class RedisKeySlotTests: XCTestCase {
    func testSlotsMatchTheServersAnswers() {
        let vectors: [(String, Int)] = [
            ("foo", 12182), ("bar", 5061), ("123456789", 12739), ("", 0),
            ("{user1000}.following", 3443), ("{user1000}.followers", 3443),
            ("foo{}{bar}", 8363),      // the first tag is empty: the whole key is hashed
            ("foo{{bar}}zap", 4015),   // the tag is `{bar`
            ("foo{bar}{zap}", 5061),   // only the first tag counts: `bar`
            ("{bar", 4015), ("a{b}", 3300), ("{}", 15257), ("}{x}", 16287),
            ("tokens:{0}:jobs", 13907), ("tokens:{3}:processing:w1", 1584),
        ]
        for (key, slot) in vectors {
            XCTAssertEqual(RedisKeySlot.slot(of: key), slot, key)
        }
    }

    func testCRC16IsXMODEM() {
        XCTAssertEqual(RedisKeySlot.crc16(Array("123456789".utf8)), 0x31C3)
        XCTAssertEqual(RedisKeySlot.crc16([UInt8]()), 0)
    }

    func testKeysWithOneTagShareASlotWhateverElseTheyHold() {
        let jobs = RedisKeySlot.slot(of: "tokens:{7}:jobs")
        for key in ["tokens:{7}:processing:w-1:3", "tokens:{7}:lease", "x{7}", "{7}{8}", "{7}}"] {
            XCTAssertEqual(RedisKeySlot.slot(of: key), jobs, key)
        }
        let binary: [UInt8] = [0, 255, UInt8(ascii: "{"), UInt8(ascii: "7"), UInt8(ascii: "}"), 0]
        XCTAssertEqual(RedisKeySlot.slot(of: binary), jobs)
    }

    // MARK: Cluster URLs

    func testClusterURLWithSeedsAndCredentials() throws {
        let c = try RedisClusterConfiguration(url: "redis-cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002")
        XCTAssertEqual(c.seeds, [RedisClusterNode(host: "10.0.0.1", port: 7000), RedisClusterNode(host: "10.0.0.2", port: 7001),
                                 RedisClusterNode(host: "::1", port: 7002)])
        XCTAssertEqual(c.username, "app")
        XCTAssertEqual(c.password, "s@cret")
        XCTAssertFalse(c.description.contains("cret"), "the password never reaches logs")
        XCTAssertEqual(c.nodeConfiguration(c.seeds[2]).endpoint, .tcp(host: "::1", port: 7002))
        XCTAssertEqual(c.nodeConfiguration(c.seeds[0]).password, "s@cret")
        XCTAssertTrue(RedisClusterConfiguration.isClusterURL("redis-cluster://h:1"))
        XCTAssertFalse(RedisClusterConfiguration.isClusterURL("redis://h:1"))
    }

    func testClusterURLWithoutPasswordAndDefaults() throws {
        let c = try RedisClusterConfiguration(url: "redis-cluster://cache-1,cache-2:6380/0")
        XCTAssertNil(c.password)
        XCTAssertEqual(c.seeds, [RedisClusterNode(host: "cache-1", port: 6379), RedisClusterNode(host: "cache-2", port: 6380)])
        XCTAssertEqual(try RedisClusterConfiguration(url: "redis-cluster://:pw@h:1/").password, "pw")
    }

    func testInvalidClusterURLsAreTypedErrors() {
        for bad in ["redis://h:1", "redis-cluster://", "redis-cluster://h:1,", "redis-cluster://,h:1", "redis-cluster://h:x",
                    "redis-cluster://h:70000", "redis-cluster://h:1/3", "redis-cluster://h:1?db=0", "redis-cluster://[::1:7000",
                    "redis-cluster://[::1]7000", "redis-cluster://:7000"] {
            XCTAssertThrowsError(try RedisClusterConfiguration(url: bad), bad) { error in
                XCTAssertEqual((error as? RedisError)?.code, "redis_invalid_configuration", bad)
            }
        }
        XCTAssertThrowsError(try RedisConfiguration(url: "redis-cluster://h:1"), "a single-server URL stays single-server")
    }
}
