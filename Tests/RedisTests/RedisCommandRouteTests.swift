import Redis
import XCTest

/// The one place where a cluster learns a command's key: every command the worker and the command
/// line send, and the usual shapes of the others.
final class RedisCommandRouteTests: XCTestCase {
    func testEveryCommandTheWorkerAndTheCommandLineSendIsRoutedByItsKey() {
        let table: [(RedisCommand, String?)] = [
            // The take, the wait and the recovery (JobQueue).
            (RedisCommand("EVALSHA", "0123abcd", 4, "t:{3}:jobs", "t:{3}:processing:w:1", "t:{3}:workers", "t:{3}:lease", 256, "w:1", "w"), "t:{3}:jobs"),
            (RedisCommand("EVAL", "return 1", 4, "t:{3}:jobs", "t:{3}:processing:w:1", "t:{3}:workers", "t:{3}:lease"), "t:{3}:jobs"),
            (RedisCommand("BLMOVE", "t:{3}:jobs", "t:{3}:jobs", "RIGHT", "RIGHT", 0.5), "t:{3}:jobs"),
            (RedisCommand("SMEMBERS", "t:{3}:workers"), "t:{3}:workers"),
            (RedisCommand("LRANGE", "t:{3}:processing:w:1", 0, -1), "t:{3}:processing:w:1"),
            (RedisCommand("SREM", "t:{3}:workers", "w:1", "w:2"), "t:{3}:workers"),
            (RedisCommand("LLEN", "t:{3}:jobs"), "t:{3}:jobs"),
            // The lease (Lease, LeaseKeeper).
            (RedisCommand("EVAL", "if ... end", 1, "t:{3}:lease", "w", 5000), "t:{3}:lease"),
            (RedisCommand("GET", "t:{3}:lease"), "t:{3}:lease"),
            // The outbox: replies to any key, invalidations, dead letters, the acknowledgement.
            (RedisCommand("LPUSH", "app:reply:42", "{}"), "app:reply:42"),
            (RedisCommand("EXPIRE", "app:reply:42", 600), "app:reply:42"),
            (RedisCommand("PUBLISH", "t:balance", "{}"), "t:balance"),
            (RedisCommand("SPUBLISH", "t:{3}:balance", "{}"), "t:{3}:balance"),
            (RedisCommand("LPUSH", "t:{3}:dead", "{}"), "t:{3}:dead"),
            (RedisCommand("DEL", "t:{3}:processing:w:1"), "t:{3}:processing:w:1"),
            (RedisCommand("LREM", "t:{3}:processing:w:1", 1, "{}"), "t:{3}:processing:w:1"),
            (RedisCommand("XADD", "t:{3}:events", "MAXLEN", "~", 100_000, "*", "event", "job.applied"), "t:{3}:events"),
            // The command line: enqueue --wait, dead-letters requeue.
            (RedisCommand("BRPOP", "t:reply:abc", 5.0), "t:reply:abc"),
            (RedisCommand("RPOP", "t:{0}:dead"), "t:{0}:dead"),
            (RedisCommand("RPUSH", "t:{0}:jobs", "{}"), "t:{0}:jobs"),
            (RedisCommand("SET", "k", "v", "NX", "PX", 100), "k"),
            // Other shapes.
            (RedisCommand("lpush", "lower", "x"), "lower"),
            (RedisCommand("XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "STREAMS", "t:{3}:events", ">"), "t:{3}:events"),
            (RedisCommand("XREAD", "COUNT", 1, "streams", "s1", "s2", 0, 0), "s1"),
            (RedisCommand("XINFO", "STREAM", "t:{3}:events"), "t:{3}:events"),
            (RedisCommand("XGROUP", "CREATE", "t:{3}:events", "g", "$"), "t:{3}:events"),
            (RedisCommand("OBJECT", "ENCODING", "k"), "k"),
            // No key: any node.
            (RedisCommand("EVAL", "return 1", 0), nil),
            (RedisCommand("SCRIPT", "LOAD", "return 1"), nil),
            (RedisCommand("PING"), nil),
            (RedisCommand("INFO", "cpu"), nil),
            (RedisCommand("CLUSTER", "SHARDS"), nil),
            (RedisCommand("MEMORY", "STATS"), nil),
            (RedisCommand("XREAD", "COUNT", 1), nil),
            (RedisCommand("GET"), nil),
            (RedisCommand(""), nil),
        ]
        for (command, key) in table {
            let expected: RedisCommandRoute = key.map { .key(Array($0.utf8)) } ?? .anyNode
            XCTAssertEqual(RedisCommandRoute(command), expected, "\(command.name) \(String(describing: command.argument(1).map { String(decoding: $0, as: UTF8.self) }))")
        }
    }

    func testAPartitionsKeysShareTheSlotOfItsTag() {
        let keys = ["t:{3}:jobs", "t:{3}:processing:host-1:17", "t:{3}:workers", "t:{3}:lease", "t:{3}:dead", "t:{3}:events"]
        let slots = Set(keys.map { RedisCommandRoute(RedisCommand("GET", $0)).slot })
        XCTAssertEqual(slots, [RedisKeySlot.slot(of: "3")])
        XCTAssertNil(RedisCommandRoute(RedisCommand("PING")).slot)
    }

    func testArgumentsAreReadBackExactly() {
        let command = RedisCommand("SET", "", [UInt8]([0, 255]), 42)
        XCTAssertEqual(command.argument(0).map(Array.init), Array("SET".utf8))
        XCTAssertEqual(command.argument(1).map(Array.init), [])
        XCTAssertEqual(command.argument(2).map(Array.init), [0, 255])
        XCTAssertEqual(command.argument(3).map(Array.init), Array("42".utf8))
        XCTAssertNil(command.argument(4))
        XCTAssertNil(command.argument(-1))
    }

    func testATargetIsParsedFromItsURL() throws {
        XCTAssertFalse(try RedisTarget(url: "redis://127.0.0.1:6380/2").isCluster)
        XCTAssertFalse(try RedisTarget(url: "unix:///tmp/r.sock").isCluster)
        var cluster = try RedisTarget(url: "redis-cluster://10.0.0.1:7000,10.0.0.2:7001")
        XCTAssertTrue(cluster.isCluster)
        cluster.password = "s3cret"
        XCTAssertEqual(cluster.password, "s3cret")
        XCTAssertFalse(cluster.description.contains("s3cret"))
        guard case .cluster(let configuration) = cluster.impatient(seconds: 0.5) else { return XCTFail("not a cluster") }
        XCTAssertEqual(configuration.seeds.map(\.port), [7000, 7001])
        XCTAssertEqual(configuration.commandTimeout, 0.5)
        XCTAssertEqual(configuration.retry.maxAttempts, 1)
        XCTAssertEqual(configuration.password, "s3cret")
        XCTAssertThrowsError(try RedisTarget(url: "redis-cluster://h:1/3"))
    }
}
