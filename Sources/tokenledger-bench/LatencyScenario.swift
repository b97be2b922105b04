import ArgumentParser
import Foundation
import Ledger
import LedgerModel
import Redis

/// `latency`: request/reply through the worker, one job at a time and at a fixed rate.
///
/// - Closed loop: one producer pushes a job with a reply key of its own (`P:reply:<uuid>`), then
///   BRPOPs it, as the example producer does; N times for `charge` (a commit with fsync per job)
///   and N times for `balance` (a read). Each sample is LPUSH + BRPOP, two round trips.
/// - Open loop: a sender thread pushes `charge` jobs at a fixed rate by a schedule (jobs that come
///   due together leave in one LPUSH), all replying to one list; a receiver thread pops the replies
///   and measures each from its *scheduled* send time, so a stall delays every job behind it in
///   the figure too (no coordinated omission).
struct LatencyBench: ParsableCommand, Scenario {
    static let name = "latency"
    static let configuration = CommandConfiguration(
        commandName: "latency", abstract: "Request/reply latency: closed loop, and open loop at a fixed rate.")

    @OptionGroup var options: CommonOptions
    @Option(help: "Closed-loop requests of each kind (default 10000; smoke 200).") var requests: Int?
    @Option(help: "Open-loop rate, jobs/s (default 5000; smoke 1000).") var rate: Int?
    @Option(help: "Open-loop duration in seconds (default 10; smoke 1).") var seconds: Double?
    @Option(help: "Accounts (default 10000; smoke 100).") var accounts: Int?
    @Option(help: "Job ids: uuid (as producers make them) or sequential.") var ids: IdStyle = .uuid

    func run() throws { try runAlone(options) }

    func run(_ context: Context) throws {
        let requests = self.requests ?? (context.smoke ? 200 : 10_000)
        let rate = self.rate ?? (context.smoke ? 1_000 : 5_000)
        let seconds = self.seconds ?? (context.smoke ? 1 : 10)
        let accounts = self.accounts ?? (context.smoke ? 100 : 10_000)
        let report = context.report
        let path = try context.ledgerPath("latency")
        defer { context.discard(path) }
        let prefix = context.prefix("latency")
        let run = context.runId
        do {
            let ledger = try Ledger(path: path)
            try Accounts.open(ledger, count: accounts, credit: 1_000_000_000, run: run)
            // The worker starts with this tail: a merge begins once the jobs take it to the threshold.
            report.log("accounts opened; unmerged tail \(try ledger.unmergedRows()) rows (default merge threshold \(LedgerConfig().mergeThresholdRows); a config file may set another)")
        }
        // /metrics on a port of its own: the batch budget of the closed-loop charges.
        let port = freeLocalPort()
        let worker = try WorkerProcess(
            binary: context.workerBinary, redisURL: context.options.redisUrl, database: path, prefix: prefix,
            workerId: "bench-worker-\(getpid())", batchSize: context.options.batchSize,
            logLevel: context.options.workerLogLevel, logPath: context.logPath("worker-latency"),
            http: port.map { "127.0.0.1:\($0)" } ?? "off")
        defer { worker.stop() }
        let redis = try RedisConnection(url: context.options.redisUrl)
        let jobsKey = "\(prefix):jobs"

        // One request: LPUSH, BRPOP of its own reply key; returns the reply.
        var n = 0
        var lastSample: UInt64 = 0
        func request(_ job: (String) -> String) throws -> [UInt8] {
            let replyTo = "\(prefix):reply:\(UUID().uuidString.lowercased())"
            let text = job(replyTo)
            let t0 = System.nowNs()
            try redis.send(RedisCommand("LPUSH", jobsKey, text))
            let reply = try redis.send(RedisCommand("BRPOP", replyTo, 10), blockingFor: 10)
            let dt = System.nowNs() - t0
            guard let parts = reply.array, parts.count == 2, let body = parts[1].bytes else {
                throw BenchError("no reply within 10 s to \(text); worker log:\n\(worker.logTail())")
            }
            lastSample = dt
            return body
        }
        func charge(_ replyTo: String) -> String {
            defer { n += 1 }
            return JobText.charge(id: ids.id("charge", run, n), userId: Accounts.userId(Int.random(in: 0..<accounts)),
                                  operation: "chatgpt_message", replyTo: replyTo)
        }
        func balance(_ replyTo: String) -> String {
            JobText.balance(userId: Accounts.userId(Int.random(in: 0..<accounts)), replyTo: replyTo)
        }

        // Warm-up: the worker's start, its lease, the first pages of the ledger.
        let warmStart = System.nowNs()
        _ = try request(balance)
        report.log("first reply \(String(format: "%.0f", System.seconds(since: warmStart) * 1000)) ms after the worker started")
        for _ in 0..<min(500, requests) { _ = try request(charge) }

        for (kind, make) in [("charge", charge), ("balance", balance)] as [(String, (String) -> String)] {
            let budgetBefore = port.flatMap { WorkerBudget.read(port: $0) }
            var latencies = Latencies()
            var failures = 0
            // The slowest samples and when they came (request number): spread or bunched.
            var slowest: [(ns: UInt64, request: Int)] = []
            for i in 0..<requests {
                let body = try request(make)
                latencies.record(ns: lastSample)
                if slowest.count < 8 || lastSample > slowest[slowest.count - 1].ns {
                    slowest.append((lastSample, i))
                    slowest.sort { $0.ns > $1.ns }
                    if slowest.count > 8 { slowest.removeLast() }
                }
                if !String(decoding: body, as: UTF8.self).contains(#""success":true"#) { failures += 1 }
            }
            if failures > 0 { report.fail("latency: \(failures) \(kind) replies were not successful") }
            report.log("closed loop \(kind), slowest: " + slowest.map { String(format: "%.2f ms (#%d)", Double($0.ns) / 1e6, $0.request) }.joined(separator: ", "))
            // The targets: a charge p99 at most 1 ms and its max 5 ms; a balance query's p99 1 ms.
            latencies.report(report, Self.name, "closed loop \(kind)", p99Target: context.smoke ? nil : 1,
                             maxTarget: context.smoke || kind != "charge" ? nil : 5, note: "LPUSH+BRPOP, \(System.load())")
            if let after = port.flatMap({ WorkerBudget.read(port: $0) }) {
                after.since(budgetBefore).report(report, Self.name, label: "closed loop \(kind)")
            }
        }

        let open = try openLoop(context, prefix: prefix, rate: rate, seconds: seconds, accounts: accounts)
        open.latencies.report(report, Self.name, "open loop \(Unit.grouped(rate))/s charge", p99Target: context.smoke ? nil : 1.5,
                              note: "from scheduled send, achieved \(Unit.grouped(Int(open.achievedRate)))/s, \(System.load())")
        if open.latencies.count != open.sent { report.fail("latency: \(open.sent) jobs sent, \(open.latencies.count) replies") }

        if let m = worker.memory {
            report.add(Self.name, "worker peak RSS", Double(m.peak) / 1_048_576, .mb, target: .atMost(64), note: "VmHWM")
        }
        let status = worker.stop()
        if status != 0 { report.fail("latency: the worker exited with status \(status) after SIGTERM") }
        let verify = try runTool(context.workerBinary, ["verify", "--database", path])
        if verify.status != 0 { report.fail("latency: tokenledger verify failed:\n\(verify.output.suffix(2000))") }
        try redis.deleteKeys(prefix: prefix)
    }

    struct OpenLoop {
        var latencies: Latencies
        var sent: Int
        var achievedRate: Double
    }

    func openLoop(_ context: Context, prefix: String, rate: Int, seconds: Double, accounts: Int) throws -> OpenLoop {
        let total = Int(Double(rate) * seconds)
        let interval = 1e9 / Double(rate)
        let start = System.nowNs() + 100_000_000
        let schedule = (0..<total).map { start + UInt64(Double($0) * interval) }
        let url = context.options.redisUrl
        let jobsKey = "\(prefix):jobs", repliesKey = "\(prefix):replies:open"
        let tag = "open:\(context.runId)-"
        let result = Locked(Latencies())
        let sentInfo = Locked((sent: 0, lastNs: UInt64(0), error: String?.none))
        let receiveError = Locked(String?.none)

        let receiver = BenchThread(name: "receiver") {
            do {
                let redis = try RedisConnection(url: url)
                var latencies = Latencies()
                var idle = 0
                while latencies.count < total && idle < 10 {
                    let first = try redis.send(RedisCommand("BRPOP", repliesKey, 1), blockingFor: 1)
                    let now = System.nowNs()
                    guard let parts = first.array, parts.count == 2, let body = parts[1].bytes else { idle += 1; continue }
                    idle = 0
                    var bodies = [body]
                    if let more = try redis.send(RedisCommand("RPOP", repliesKey, 1024)).array { bodies += more.compactMap(\.bytes) }
                    for b in bodies {
                        guard let id = JobText.string("id", in: b), id.hasPrefix(tag), let i = Int(id.dropFirst(tag.count)),
                              i >= 0, i < total else { continue }
                        latencies.record(ns: now > schedule[i] ? now - schedule[i] : 0)
                    }
                }
                result.withLock { $0 = latencies }
            } catch {
                receiveError.withLock { $0 = "\(error)" }
            }
        }
        let sender = BenchThread(name: "sender") {
            do {
                let redis = try RedisConnection(url: url)
                var i = 0
                while i < total {
                    System.sleep(untilNs: schedule[i])
                    let now = System.nowNs()
                    var command = RedisCommand("LPUSH", jobsKey)
                    while i < total && schedule[i] <= now {
                        command.append(JobText.charge(id: "\(tag)\(i)", userId: Accounts.userId(Int.random(in: 0..<accounts)),
                                                      operation: "chatgpt_message", replyTo: repliesKey))
                        i += 1
                    }
                    try redis.send(command)
                }
                sentInfo.withLock { $0.sent = i; $0.lastNs = System.nowNs() }
            } catch {
                sentInfo.withLock { $0.error = "\(error)" }
            }
        }
        sender.join()
        receiver.join()
        if let e = sentInfo.get.error { throw BenchError("open-loop sender: \(e)") }
        if let e = receiveError.get { throw BenchError("open-loop receiver: \(e)") }
        let info = sentInfo.get
        return OpenLoop(latencies: result.get, sent: info.sent, achievedRate: Double(info.sent) / (Double(info.lastNs - start) / 1e9))
    }
}
