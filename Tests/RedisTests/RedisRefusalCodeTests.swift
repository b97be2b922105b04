import Redis
import TestSupport
import XCTest

/// Refusals as a real server words them, read into their codes: the worker decides by the code
/// whether a refused reply is the producer's fault or a state that passes.
final class RedisRefusalCodeTests: XCTestCase {
    func testRefusalsOfARealServerAreReadByTheirCodes() throws {
        let server = try RedisServerProcess()
        let redis = try RedisConnection(url: server.url)
        try redis.set("a-string", "x")
        let answers = try redis.pipeline([RedisCommand("LPUSH", "a-string", "y"), RedisCommand("LPUSH", "a-list", "y")])
        XCTAssertEqual(answers[0].refusalCode, .wrongType)
        XCTAssertTrue(answers[0].refusalCode?.isAboutTheKey == true, "no retry can fix it")
        XCTAssertNil(answers[1].refusalCode)

        _ = try redis.send("CONFIG", "SET", "maxmemory-policy", "noeviction")
        _ = try redis.send("CONFIG", "SET", "maxmemory", "1")
        let full = try redis.pipeline([RedisCommand("LPUSH", "a-list", "z"), RedisCommand("DEL", "a-string")])
        XCTAssertEqual(full[0].refusalCode, .outOfMemory)
        XCTAssertEqual(full[0].refusalCode?.isAboutTheKey, false, "it passes once memory is freed")
        XCTAssertNil(full[1].refusalCode, "what frees memory is still accepted")
        _ = try redis.send("CONFIG", "SET", "maxmemory", "0")
        XCTAssertNil(try redis.pipeline([RedisCommand("LPUSH", "a-list", "z")])[0].refusalCode)

        for (message, code) in [("LOADING Redis is loading the dataset in memory", RedisRefusalCode.loading),
                                ("READONLY You can't write against a read only replica.", .readOnly),
                                ("BUSY Redis is busy running a script.", .busy), ("CLUSTERDOWN The cluster is down", .clusterDown),
                                ("NOREPLICAS Not enough good replicas to write.", .noReplicas), ("MASTERDOWN Link with MASTER is down", .masterDown),
                                ("TRYAGAIN Multiple keys request during rehashing of slot", .tryAgain)] {
            XCTAssertEqual(RedisRefusalCode(message: message), code)
            XCTAssertFalse(code.isAboutTheKey, message)
        }
    }
}
