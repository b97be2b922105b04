import Foundation
import JobWire
import Ledger
import LedgerModel
import Redis
import TestSupport
import Worker
import XCTest

/// What an outbox must never do: lose a dead letter, a reply or an event to a refusal that
/// passes (Redis out of memory), or let a stalled worker's messages land after its successor's.
/// Each test has a redis-server of its own, since it fills it up or holds its traffic.
final class OutboxDeliveryTests: XCTestCase {
    typealias SQLiteShell = StorageFailureTests.SQLiteShell

    /// The balance as the ledger file holds it, read beside the worker.
    func ledgerBalance(_ h: WorkerHarness, _ userId: String) throws -> Int64? {
        let json = try LedgerReader(path: h.databasePath).read(.balance(userId: userId)).json
        return (try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?.int("tokensBalance")
    }

    /// Under `maxmemory` + `noeviction`, LPUSH and XADD fail with OOM while DEL and SREM pass:
    /// the batch must stay in its processing list until everything before its acknowledgement
    /// went through, then arrive whole.
    func testAnOutOfMemoryRedisKeepsTheBatchUntilItsDeadLetterAndReplyGoThrough() async throws {
        let server = try RedisServerProcess()
        let h = try WorkerHarness(redisURL: server.url)
        var ledgerConfig = LedgerConfig()
        ledgerConfig.busyTimeoutMilliseconds = 20
        // The batch is retried whole while the ledger is locked (never job by job), so that its
        // dead letter cannot leave on its own before Redis is full, whatever the machine's load.
        var config = try h.configuration()
        config.maxAttempts = 1_000_000
        let worker = try h.startWorker(ledgerConfig: ledgerConfig, configuration: config)
        XCTAssertEqual(try h.call(["type": "open", "id": "o1", "userId": "oona"]).bool("success"), true)

        // The ledger is locked so that both jobs are taken into one batch and wait there while
        // Redis fills up; the lock goes once Redis refuses writes.
        let lock = try SQLiteShell.holdingLock(h.databasePath)
        // One LPUSH, so that both land in one take: the job without an id (a dead letter) first.
        let reply = h.replyKey()
        _ = try h.redis.send("LPUSH", h.keys.jobs, #"{"type":"charge","userId":"oona","operation":"chatgpt_message"}"#,
                             #"{"type":"charge","id":"c1","userId":"oona","operation":"chatgpt_message","replyTo":"\#(reply)"}"#)
        try h.eventually("both jobs are taken") { try h.jobsInProcessingLists() == 2 }
        _ = try h.redis.send("CONFIG", "SET", "maxmemory-policy", "noeviction")
        _ = try h.redis.send("CONFIG", "SET", "maxmemory", "1")
        XCTAssertThrowsError(try h.redis.send("LPUSH", "\(h.keys.prefix):probe", "x"), "Redis refuses writes")
        lock.release()

        // The charge commits; what follows it is refused for as long as Redis is full.
        try h.eventually("the charge is committed") {
            try self.ledgerBalance(h, "oona") == 95
        }
        usleep(2_000_000)
        XCTAssertEqual(try h.jobsInProcessingLists(), 2, "the batch stays in its list while Redis refuses its messages")
        XCTAssertEqual(try h.redis.llen(h.keys.dead), 0)
        XCTAssertEqual(try h.redis.llen(reply), 0)

        _ = try h.redis.send("CONFIG", "SET", "maxmemory", "0")
        let answer = try h.reply(reply, timeout: 20)
        XCTAssertEqual(answer.int("newBalance"), 95)
        try h.eventually(timeout: 20, "the dead letter arrives") { try h.redis.llen(h.keys.dead) >= 1 }
        XCTAssertEqual(try h.deadLetters().first?.errorCode, "invalid_job")
        try h.waitUntilDrained(timeout: 20)
        let applied = try h.redis.send("XRANGE", h.keys.events, "-", "+").array ?? []
        XCTAssertTrue(applied.contains { ($0.array?.last?.array ?? []).compactMap(\.string).contains("c1") },
                      "the charge's job.applied is on the stream")
        XCTAssertEqual(try h.call(["type": "balance", "userId": "oona"]).int("tokensBalance"), 95, "applied once")
        try await worker.stop()
    }

    /// The first worker commits a credit, and its outbox is held on the way (its process
    /// stalled, its packets queued) past its lease. A successor takes over and commits a newer
    /// credit of the same user. When the held traffic arrives, nothing of it may land after the
    /// successor's messages: invalidations and events stay in commit order.
    func testAStalledWorkersOutboxNeverLandsAfterItsSuccessors() async throws {
        let server = try RedisServerProcess()
        let proxy = try HoldingProxy(upstreamUnixSocket: server.socketPath)
        let h = try WorkerHarness(redisURL: server.url)
        var ledgerConfig = LedgerConfig()
        ledgerConfig.busyTimeoutMilliseconds = 20
        var staleConfig = try h.configuration(workerId: "stale", leaseMilliseconds: 1000)
        staleConfig.redis = try RedisTarget(url: proxy.url)
        let stale = try h.startWorker(ledgerConfig: ledgerConfig, configuration: staleConfig)
        XCTAssertEqual(try h.call(["type": "open", "id": "o1", "userId": "sam"]).int("newBalance"), 100)
        let subscriber = try RedisSubscriber(url: server.url)
        try subscriber.subscribe([h.keys.balance])

        let lock = try SQLiteShell.holdingLock(h.databasePath)
        let first = try h.push(["type": "credit", "id": "c1", "userId": "sam", "operationType": "bonus", "amount": 1])
        try h.eventually("the credit is taken") { try h.jobsInProcessingLists() == 1 }
        proxy.hold()
        lock.release()
        try h.eventually("the stalled worker commits the credit") {
            try self.ledgerBalance(h, "sam") == 101
        }
        try h.eventually("its lease lapses") { try h.redis.get(h.keys.lease) == nil }

        let successor = try h.startWorker(ledgerConfig: ledgerConfig, configuration: try h.configuration(workerId: "successor"))
        XCTAssertEqual(try h.reply(first).int("newBalance"), 101, "the successor answers the credit (a duplicate)")
        XCTAssertEqual(try h.call(["type": "credit", "id": "c2", "userId": "sam", "operationType": "bonus", "amount": 1]).int("newBalance"), 102)
        proxy.release()
        try h.eventually("the stalled worker stands by") { proxy.forwardedAfterRelease }
        usleep(1_500_000)

        var ids: [Int64] = []
        while let message = try subscriber.receive(timeout: 0.5) {
            let object = try JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any]
            if let id = object?.int("ledgerEntryId") { ids.append(id) }
        }
        XCTAssertGreaterThanOrEqual(ids.count, 2, "c1 and c2 were announced: \(ids)")
        let disorder = zip(ids, ids.dropFirst()).filter { $0.0 > $0.1 }
        XCTAssertTrue(disorder.isEmpty, "an invalidation of the stalled worker landed after the successor's: \(ids)")

        let entries = (try h.redis.send("XRANGE", h.keys.events, "-", "+").array ?? []).compactMap { item -> Int64? in
            let fields = (item.array?.last?.array ?? []).compactMap(\.string)
            guard let i = fields.firstIndex(of: "ledgerEntryId"), i + 1 < fields.count else { return nil }
            return Int64(fields[i + 1])
        }
        let eventDisorder = zip(entries, entries.dropFirst()).filter { $0.0 > $0.1 }
        XCTAssertTrue(eventDisorder.isEmpty, "an event of the stalled worker landed after the successor's: \(entries)")
        try await successor.stop()
        try await stale.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }

    /// A worker died after a sweep expired a hold (its invalidation kept in the ledger, maybe sent)
    /// and after a later debit committed (its list not acknowledged). The next worker sends both
    /// again; the last message a cache sees for the user must be the latest state, never the
    /// sweep's older snapshot.
    func testKeptMessagesSentAgainNeverEndOnAnOlderState() async throws {
        let h = try WorkerHarness()
        let reply = h.replyKey()
        let debit = #"{"type":"debit","id":"d1","userId":"kim","operationType":"x","amount":5,"replyTo":"\#(reply)"}"#
        do {
            let ledger = try Ledger(path: h.databasePath)
            let epoch = try ledger.acquireEpoch(owner: "gone")
            _ = try ledger.apply([Command(jobId: "o1", operation: .open(userId: "kim")),
                                  Command(jobId: "h1", operation: .hold(userId: "kim", amount: 10, operation: nil, expiresIn: 1, metadata: nil))],
                                 epoch: epoch)
            usleep(1_100_000)
            XCTAssertNotNil(try ledger.sweepDue(limit: 10, epoch: epoch).pendingSeq, "the hold's expiry is kept until sent")
            let applied = try ledger.apply([try Job.decode(Array(debit.utf8)).get().command], epoch: epoch)
            XCTAssertEqual(applied.first?.changes.last?.tokensBalance, 95)
        }
        _ = try h.redis.pipeline([RedisCommand("LPUSH", h.keys.processing("gone:17"), debit),
                                  RedisCommand("SADD", h.keys.processingLists, "gone:17")])
        let subscriber = try RedisSubscriber(url: h.redisURL)
        try subscriber.subscribe([h.keys.balance])

        let worker = try h.startWorker()
        XCTAssertEqual(try h.reply(reply).bool("duplicate"), true)
        try h.waitUntilDrained()
        usleep(500_000)
        var balances: [Int64] = []
        while let message = try subscriber.receive(timeout: 0.5) {
            let object = try JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any]
            if object?.string("userId") == "kim", let balance = object?.int("tokensBalance") { balances.append(balance) }
        }
        XCTAssertGreaterThanOrEqual(balances.count, 2, "the kept expiry and the debit are both sent again: \(balances)")
        XCTAssertEqual(balances.last, 95, "the last message is the latest state: \(balances)")
        XCTAssertFalse(balances.contains(100), "no message carries the state from before the debit: \(balances)")
        try await worker.stop()
    }
}

/// A TCP proxy to a unix socket whose client-to-server direction can be held: bytes read while
/// held wait in the proxy and are forwarded, in order, on `release()`, as a stalled process's
/// queued packets would be.
final class HoldingProxy: @unchecked Sendable {
    private let listener: Int32
    let port: Int
    private let upstream: String
    private let lock = NSLock()
    private var held = false
    private var released = false
    private var forwarded = false

    var url: String { "redis://127.0.0.1:\(port)/0" }

    /// True once bytes read while held went on after `release()`.
    var forwardedAfterRelease: Bool { lock.withLock { forwarded } }

    init(upstreamUnixSocket path: String) throws {
        upstream = path
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else { throw RedisError.connection("proxy: cannot listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Closing the listener ends the accept loop; open links end when either side closes.
    deinit { close(listener) }

    func hold() { lock.withLock { held = true } }
    func release() { lock.withLock { held = false; released = true } }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            let server = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in upstream.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
            }
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if connected != 0 { close(client); close(server); continue }
            Thread.detachNewThread { [self] in pump(from: client, to: server, holdable: true) }
            Thread.detachNewThread { [self] in pump(from: server, to: client, holdable: false) }
        }
    }

    private func pump(from source: Int32, to destination: Int32, holdable: Bool) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        defer { shutdown(destination, Int32(SHUT_WR)); close(source) }
        while true {
            let n = read(source, &buffer, buffer.count)
            if n <= 0 { return }
            var waited = false
            while holdable, lock.withLock({ held }) {
                waited = true
                usleep(5_000)
            }
            var sent = 0
            while sent < n {
                let w = buffer.withUnsafeBytes { write(destination, $0.baseAddress! + sent, n - sent) }
                if w <= 0 { return }
                sent += w
            }
            if waited { lock.withLock { if released { forwarded = true } } }
        }
    }
}

/// A dead letter and its job's removal are one step: an acknowledgement that keeps failing (here
/// the worker's Redis user may not `DEL`, so every retry replays the batch) never pushes it twice.
final class DeadLetterOnceTests: XCTestCase {
    func testARetriedBatchPushesItsDeadLetterOnce() async throws {
        let server = try RedisServerProcess()
        let admin = try RedisConnection(url: server.url)
        _ = try admin.send("ACL", "SETUSER", "worker", "on", ">pw", "~*", "&*", "+@all", "-del")
        let h = try WorkerHarness(redisURL: server.url)
        var config = try h.configuration()
        var link = try RedisConfiguration(url: server.url)
        (link.username, link.password) = ("worker", "pw")
        config.redis = .single(link)
        let worker = try h.startWorker(configuration: config)

        let reply = h.replyKey()
        _ = try admin.send("LPUSH", h.keys.jobs, #"{"type":"credit","id":"bad-1","userId":"u","replyTo":"\#(reply)"}"#,
                           #"{"type":"open","id":"o1","userId":"u"}"#)
        // Every attempt is refused at the acknowledgement (NOPERM on DEL) and replays the batch.
        try h.eventually(timeout: 20, "the batch was retried") {
            let replies = try admin.llen(reply)
            return try replies >= 1 && admin.llen(h.keys.dead) >= 1
        }
        usleep(3_000_000)
        XCTAssertEqual(try admin.llen(h.keys.dead), 1, "one dead letter, however often the batch is replayed")
        XCTAssertGreaterThanOrEqual(try h.jobsInProcessingLists(redis: admin), 1, "the open waits for its acknowledgement")

        _ = try admin.send("ACL", "SETUSER", "worker", "+del")
        try h.waitUntilDrained(redis: admin)
        XCTAssertEqual(try admin.llen(h.keys.dead), 1)
        try await worker.stop()
    }
}
