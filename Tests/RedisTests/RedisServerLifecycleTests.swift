import Redis
import TestSupport
import XCTest

/// Tests that stop, restart or protect a server: each runs its own private redis-server.
final class RedisServerLifecycleTests: XCTestCase {
    func testClientReconnectsAfterServerRestart() throws {
        let server = try RedisServerProcess()
        var config = try RedisConfiguration(url: server.url)
        config.reconnect = ReconnectPolicy(initialDelay: 0.05, maxDelay: 0.5, maxAttempts: 20)
        let redis = try RedisConnection(configuration: config)
        try redis.set("k", "before")
        try server.restart()
        // The dead socket is noticed before the next command is written, so nothing is lost.
        try redis.set("k", "after")
        XCTAssertEqual(try redis.get("k"), Array("after".utf8))
        XCTAssertEqual(redis.reconnectCount, 1)
    }

    /// A restarted server has an empty script cache: a script sent by digest, alone or in a
    /// buffer, runs again (its text sent once), whatever the client believed was cached.
    func testScriptsByDigestRunAfterAServerRestart() throws {
        let server = try RedisServerProcess()
        var config = try RedisConfiguration(url: server.url)
        config.reconnect = ReconnectPolicy(initialDelay: 0.05, maxDelay: 0.5, maxAttempts: 20)
        let redis = try RedisConnection(configuration: config)
        let incr = RedisScript(source: "return redis.call('INCRBY', KEYS[1], ARGV[1])")
        XCTAssertEqual(try redis.evalsha(incr, keys: ["n"], arguments: [2]), .integer(2))
        XCTAssertEqual(try redis.send("SCRIPT", "EXISTS", incr.sha1).array?.first?.int, 1)
        try server.restart()
        XCTAssertEqual(try redis.evalsha(incr, keys: ["n"], arguments: [3]), .integer(3), "the restart lost n and the script")
        try server.restart()
        var buffer = RedisCommandBuffer()
        buffer.append(RedisCommand(script: incr, keys: ["n"], arguments: [4]))
        buffer.append(RedisCommand("INCR", "n"))
        XCTAssertEqual(try redis.pipeline(buffer), [.integer(5), .integer(1)], "the script ran as EVAL, after the INCR")
        XCTAssertEqual(try redis.pipeline(buffer), [.integer(9), .integer(10)], "cached again: by digest, in order")
        XCTAssertEqual(redis.reconnectCount, 2)
    }

    func testCommandDuringOutageFailsTypedThenRecovers() throws {
        let server = try RedisServerProcess()
        var config = try RedisConfiguration(url: server.url)
        config.reconnect = ReconnectPolicy(initialDelay: 0.01, maxDelay: 0.02, maxAttempts: 3)
        let redis = try RedisConnection(configuration: config)
        server.stop()
        XCTAssertThrowsError(try redis.ping()) { error in
            XCTAssertEqual((error as? RedisError)?.code, "redis_connection_error")
        }
        XCTAssertFalse(redis.isConnected)
        try server.start()
        XCTAssertTrue(try redis.ping())
    }

    func testAuthWithPasswordAndACLUser() throws {
        let server = try RedisServerProcess(extraArguments: ["--requirepass", "s3cret"])
        // Without the password the server refuses commands.
        let anonymous = try RedisConnection(url: server.url)
        XCTAssertThrowsError(try anonymous.ping()) { error in
            guard case .server(let m) = error as? RedisError else { return XCTFail("\(error)") }
            XCTAssertTrue(m.hasPrefix("NOAUTH"), m)
        }
        var config = try RedisConfiguration(url: server.url)
        config.password = "s3cret"
        XCTAssertTrue(try RedisConnection(configuration: config).ping())

        let admin = try RedisConnection(configuration: config)
        try admin.send("ACL", "SETUSER", "worker", "on", ">w0rker", "~*", "+@all")
        config.username = "worker"
        config.password = "w0rker"
        config.database = 1
        let worker = try RedisConnection(configuration: config)
        try worker.set("in-db-1", "yes")
        XCTAssertNil(try admin.get("in-db-1"), "SELECT put the ACL user's connection on database 1")

        config.password = "wrong"
        config.reconnect.maxAttempts = 5
        let start = ContinuousClock.now
        XCTAssertThrowsError(try RedisConnection(configuration: config)) { error in
            XCTAssertEqual((error as? RedisError)?.code, "redis_server_error")
        }
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(1), "a refused password is not retried")
    }

    func testSubscriberReceivesAndSurvivesARestart() throws {
        let server = try RedisServerProcess()
        let subscriber = try RedisSubscriber(url: server.url)
        try subscriber.subscribe(["balance", "other"])
        let publisher = try RedisConnection(url: server.url)
        XCTAssertNil(try subscriber.receive(timeout: 0.1), "nothing published yet")
        XCTAssertEqual(try publisher.publish("balance", [0, 123, 0]), 1)
        try publisher.publish("other", "two")
        XCTAssertEqual(try subscriber.receive(timeout: 2), RedisMessage(channel: "balance", payload: [0, 123, 0]))
        XCTAssertEqual(try subscriber.receive(timeout: 2)?.text, "two")

        try server.restart()
        // The receive that finds the broken link resubscribes and reports the break.
        XCTAssertThrowsError(try subscriber.receive(timeout: 2))
        XCTAssertEqual(try publisher.publish("balance", "after restart"), 1)
        XCTAssertEqual(try subscriber.receive(timeout: 2)?.text, "after restart")
    }
}
