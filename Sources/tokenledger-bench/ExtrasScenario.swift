import ArgumentParser
import Foundation
import Ledger
import LedgerModel
import Redis

/// `extras`: holds and expiries through the real worker (`credit`, its former name, still runs it).
///
/// - Hold + capture pairs as request/reply from many producers at once (each a thread with its own
///   connection, as many services would be): each pair is a `hold`, its reply, a `capture` of part
///   of it, its reply. Figure: pairs per second, and the pair's latency.
/// - An expiry sweep: a ledger made with its clock in the past, where every account has one
///   lapsing grant and every other one a hold on it, all due when the worker starts. Figure: the
///   time until no due account is left, and the latency of request/reply charges on other accounts
///   sent meanwhile (the sweep runs in chunks between batches: it must not stall the queue).
struct ExtrasBench: ParsableCommand, Scenario {
    static let name = "extras"
    static let configuration = CommandConfiguration(
        commandName: "extras", abstract: "Hold + capture pairs from many producers; an expiry sweep of lapsing grants and holds.",
        aliases: ["credit"])

    @OptionGroup var options: CommonOptions
    @Option(help: "Producers (threads) sending hold + capture pairs (default 32; smoke 2).") var producers: Int?
    @Option(help: "Pairs per producer (default 500; smoke 10).") var pairs: Int?
    @Option(help: "Lapsing grants in the sweep; half as many holds (default 200000; smoke 500).") var grants: Int?
    @Option(help: "Extra arguments for the worker (say --config file), one string, split at spaces.") var workerArgs: String?

    func run() throws { try runAlone(options) }

    func run(_ context: Context) throws {
        try holdCapture(context)
        try sweep(context)
    }

    func startWorker(_ context: Context, path: String, prefix: String, log: String) throws -> WorkerProcess {
        try WorkerProcess(binary: context.workerBinary, redisURL: context.options.redisUrl, database: path, prefix: prefix,
                          workerId: "bench-worker-\(getpid())", batchSize: context.options.batchSize,
                          logLevel: context.options.workerLogLevel, logPath: context.logPath(log),
                          extraArguments: (workerArgs ?? "").split(separator: " ").map(String.init))
    }

    func holdCapture(_ context: Context) throws {
        let producers = self.producers ?? (context.smoke ? 2 : 32)
        let pairs = self.pairs ?? (context.smoke ? 10 : 500)
        let report = context.report
        let path = try context.ledgerPath("extras-pairs")
        defer { context.discard(path) }
        let prefix = context.prefix("extras")
        let run = context.runId
        try Accounts.open(try Ledger(path: path), count: producers * 10, credit: 1_000_000_000, run: run)
        let worker = try startWorker(context, path: path, prefix: prefix, log: "worker-extras-pairs")
        defer { worker.stop() }
        let url = context.options.redisUrl
        let jobsKey = "\(prefix):jobs"

        final class Shared: @unchecked Sendable {
            let lock = NSLock()
            var latencies = Latencies()
            var errors: [String] = []
        }
        let shared = Shared()
        // A first request, so the clock starts with the worker serving.
        let warm = try RedisConnection(url: url)
        let warmReply = "\(prefix):reply:warm"
        try warm.send(RedisCommand("LPUSH", jobsKey, JobText.balance(userId: Accounts.userId(0), replyTo: warmReply)))
        _ = try warm.send(RedisCommand("BRPOP", warmReply, 30), blockingFor: 30)

        let started = System.nowNs()
        // A thread per producer (concurrentPerform would run only as many at once as there are cores).
        let group = DispatchGroup()
        for p in 0..<producers {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                produce(p)
            }
        }
        group.wait()
        @Sendable func produce(_ p: Int) {
            var local = Latencies()
            do {
                let redis = try RedisConnection(url: url)
                let replyTo = "\(prefix):reply:p\(p)"
                func call(_ job: String) throws -> [UInt8] {
                    try redis.send(RedisCommand("LPUSH", jobsKey, job))
                    let reply = try redis.send(RedisCommand("BRPOP", replyTo, 30), blockingFor: 30)
                    guard let parts = reply.array, parts.count == 2, let body = parts[1].bytes else { throw BenchError("no reply in 30 s") }
                    return body
                }
                for i in 0..<pairs {
                    let user = Accounts.userId(p * 10 + i % 10)
                    let hold = "hold:\(run):\(p):\(i)"
                    let t0 = System.nowNs()
                    let h = try call(#"{"type":"hold","id":"\#(hold)","userId":"\#(user)","amount":100,"expiresIn":60,"replyTo":"\#(replyTo)"}"#)
                    let c = try call(#"{"type":"capture","id":"cap:\#(run):\#(p):\#(i)","userId":"\#(user)","holdId":"\#(hold)","amount":\#(1 + i % 100),"replyTo":"\#(replyTo)"}"#)
                    local.record(ns: System.nowNs() - t0)
                    for body in [h, c] where !String(decoding: body, as: UTF8.self).contains(#""success":true"#) {
                        throw BenchError("refused: \(String(decoding: body, as: UTF8.self))")
                    }
                }
            } catch {
                shared.lock.lock(); shared.errors.append("\(error)"); shared.lock.unlock()
            }
            shared.lock.lock(); shared.latencies.add(local); shared.lock.unlock()
        }
        let seconds = System.seconds(since: started)
        if let error = shared.errors.first { report.fail("extras: \(shared.errors.count) producers failed: \(error)") }
        let total = shared.latencies.count
        report.add(Self.name, "hold + capture pairs per second (\(producers) producers)", Double(total) / seconds, .jobsPerSecond,
                   note: "value is pairs/s: \(total) pairs in \(String(format: "%.1f", seconds)) s, request/reply")
        shared.latencies.report(report, Self.name, "  pair (hold reply + capture reply)", note: "\(producers) producers")
        _ = worker.stop()
        let verify = try runTool(context.workerBinary, ["verify", "--database", path])
        if verify.status != 0 { report.fail("extras: tokenledger verify failed:\n\(verify.output.suffix(2000))") }
        try RedisConnection(url: url).deleteKeys(prefix: prefix)
    }

    func sweep(_ context: Context) throws {
        let grants = self.grants ?? (context.smoke ? 500 : 200_000)
        let report = context.report
        let path = try context.ledgerPath("extras-sweep")
        defer { context.discard(path) }
        let prefix = context.prefix("sweep")
        let run = context.runId
        let probes = 1_000  // accounts with nothing due, for the charges sent during the sweep
        let t0 = System.nowNs()
        do {
            // Made two hours ago by the ledger's own clock: every grant and hold is due now.
            let clock = ManualClock(Date().addingTimeInterval(-7200))
            let ledger = try Ledger(path: path, clock: clock)
            try Accounts.open(ledger, count: probes, credit: 1_000_000_000, run: run)
            for start in stride(from: 0, to: grants, by: 1000) {
                var commands: [Command] = []
                for i in start..<min(grants, start + 1000) {
                    let u = "lapse-\(i)"
                    commands.append(Command(jobId: "o:\(run):\(i)", operation: .open(userId: u)))
                    commands.append(Command(jobId: "g:\(run):\(i)", operation: .credit(
                        userId: u, operationType: "promo", amount: 50, metadata: nil, expiry: .afterSeconds(60))))
                    if i % 2 == 0 {
                        commands.append(Command(jobId: "h:\(run):\(i)", operation: .hold(
                            userId: u, amount: 30, operation: nil, expiresIn: 120, metadata: nil)))
                    }
                }
                let results = try ledger.apply(commands)
                if let refused = results.first(where: { !$0.success }) { throw BenchError("sweep setup refused: \(refused.json)") }
            }
        }
        report.log("sweep: \(grants) lapsing grants and \(grants / 2) lapsing holds made in \(String(format: "%.1f", System.seconds(since: t0))) s")
        let reader = try LedgerReader(path: path)
        let due = try reader.unsweptDueAccounts()
        let worker = try startWorker(context, path: path, prefix: prefix, log: "worker-extras-sweep")
        defer { worker.stop() }
        let started = System.nowNs()
        let redis = try RedisConnection(url: context.options.redisUrl)
        let jobsKey = "\(prefix):jobs", replyTo = "\(prefix):reply:probe"
        var latencies = Latencies()
        var n = 0
        var sweepSeconds: Double?
        // Charges on accounts with nothing due, one at a time, while the sweep runs.
        while sweepSeconds == nil {
            let job = JobText.charge(id: "probe:\(run):\(n)", userId: Accounts.userId(n % probes), operation: "chatgpt_message", replyTo: replyTo)
            n += 1
            let s0 = System.nowNs()
            try redis.send(RedisCommand("LPUSH", jobsKey, job))
            let reply = try redis.send(RedisCommand("BRPOP", replyTo, 60), blockingFor: 60)
            guard reply.array != nil else { throw BenchError("no reply to a probe within 60 s; worker log:\n\(worker.logTail())") }
            if n > 1 { latencies.record(ns: System.nowNs() - s0) }  // the first waits for the worker's start
            if n % 20 == 0, try reader.unsweptDueAccounts() == 0 { sweepSeconds = System.seconds(since: started) }
            if System.seconds(since: started) > 1800 { throw BenchError("the sweep did not finish in 30 minutes") }
        }
        let seconds = sweepSeconds ?? 0
        report.add(Self.name, "expiry sweep: \(grants) grants + \(grants / 2) holds", seconds, .s,
                   note: "\(due) due accounts swept from the worker's start; \(String(format: "%.0f", Double(due) / max(seconds, 0.001))) accounts/s")
        latencies.report(report, Self.name, "  charge latency during the sweep", note: "closed loop, request/reply, \(latencies.count) charges")
        _ = worker.stop()
        let verify = try runTool(context.workerBinary, ["verify", "--database", path])
        if verify.status != 0 { report.fail("extras: tokenledger verify after the sweep failed:\n\(verify.output.suffix(2000))") }
        try redis.deleteKeys(prefix: prefix)
    }
}
