import ArgumentParser
import Foundation
import JobWire
import Ledger
import LedgerModel
import Redis

/// `drain`: a backlog of `charge` jobs, queued before the worker starts, drained by the worker.
///
/// Accounts are opened and credited through the ledger API first (so no charge is refused); the
/// jobs are pushed with pipelined multi-value LPUSH; then the worker is started and the clock
/// runs from its start until `P:jobs` is empty and every taken batch is settled (the last batch's
/// outbox, acknowledgement included, has gone out). Runs twice: without replyTo, then with a
/// reply key per job (`P:reply:<uuid>`, as the example producer does) and a subscriber on
/// `P:balance` counting every invalidation. Then checks every balance and runs `tokenledger verify`.
///
/// With `--partitions N` the ledger is split: each partition's file is made and its accounts
/// opened, each job goes on its user's partition queue (`P:{k}:jobs`), and the worker gets
/// `TOKENLEDGER_PARTITION_COUNT=N`; `--processes P` starts P workers that share the partitions
/// (`TOKENLEDGER_PARTITIONS`, round robin).
struct DrainBench: ParsableCommand, Scenario {
    static let name = "drain"
    static let configuration = CommandConfiguration(
        commandName: "drain", abstract: "Worker throughput draining a backlog of charges, without and with replies.")

    enum Mode: String, ExpressibleByArgument, CaseIterable { case plain, replies, both }

    @OptionGroup var options: CommonOptions
    @Option(help: "Jobs (default 1000000; smoke 5000).") var jobs: Int?
    @Option(help: "Accounts (default 10000; smoke 100).") var accounts: Int?
    @Option(help: "plain (no replyTo), replies (replyTo and a subscriber), or both.") var mode: Mode = .both
    @Option(help: "Job ids: uuid (as producers make them) or sequential.") var ids: IdStyle = .uuid
    @Option(help: "A profiler to attach to the worker once it has taken its first batch, {pid} standing for its pid and {tids} for its threads, e.g. 'perf record -e cpu-clock -F 999 -g -o drain.data -p {pid}' or 'perf trace -s -o trace.txt --tid {tids}'. Stopped with SIGINT when the queue is drained.")
    var profile: String?
    @Option(help: "Extra arguments for the worker (say --config file), one string, split at spaces.") var workerArgs: String?
    @Option(help: "Entries written into the ledger through Ledger.apply before the drain (credits of 1 token with charge:<uuid>-style ids, merged), e.g. 10000000 for the drain into a large ledger.")
    var prefill = 0
    @Option(help: "With --prefill: a ledger file kept for later runs. Made (accounts and prefill) if missing, then copied for each drain, so that runs alternated between two builds pay the prefill once and start from the same file.")
    var prefillFile: String?
    @Option(help: "Partitions of the ledger (TOKENLEDGER_PARTITION_COUNT); each job goes on its user's partition queue.") var partitions: Int = 1
    @Option(help: "Worker processes sharing the partitions (TOKENLEDGER_PARTITIONS, round robin).") var processes: Int = 1

    func run() throws { try runAlone(options) }

    func run(_ context: Context) throws {
        if mode != .replies { try drain(context, replies: false) }
        if mode != .plain { try drain(context, replies: true) }
    }

    func drain(_ context: Context, replies: Bool) throws {
        let jobs = self.jobs ?? (context.smoke ? 5_000 : 1_000_000)
        let accounts = self.accounts ?? (context.smoke ? 100 : 10_000)
        let report = context.report
        let label = replies ? "with replies" : "no replies"
        let path = try context.ledgerPath(replies ? "drain-replies" : "drain")
        defer { context.discard(path) }
        let prefix = context.prefix("drain")
        let keys = (jobs: "\(prefix):jobs", balance: "\(prefix):balance")
        guard partitions >= 1, (1...partitions).contains(processes) else {
            throw BenchError("--partitions must be >= 1 and --processes from 1 to --partitions")
        }
        guard prefill == 0 || partitions == 1 else { throw BenchError("--prefill fills one ledger: use it without --partitions") }
        let partitioning = try Partitioning(count: partitions)
        let split = partitions > 1
        // A split ledger's keys carry the partition's tag (`P:{k}:jobs`), as QueueKeys names them.
        let base = { (k: Int) in split ? "\(prefix):{\(k)}" : prefix }
        let queues = (0..<partitions).map { "\(base($0)):jobs" }
        let workerSets = (0..<partitions).map { "\(base($0)):workers" }
        let userPartition = (0..<accounts).map { partitioning.partition(of: Accounts.userId($0)) }
        let files = (0..<partitions).map { Self.partitionFile(path, $0, split: split) }
        defer { if split { for file in files { context.discard(file) } } }
        let workerId = "bench-worker-\(getpid())"
        let run = context.runId

        // Accounts, through the ledger API, before the worker opens the file.
        let credit: Int64 = 1_000_000
        var expected = [Int64](repeating: 0, count: accounts)
        for k in 0..<partitions {
            if prefill > 0, let kept = prefillFile {
                // Opening it here would start its job-id filter's scan, which would run into the
                // drain: the balances are known from how it was made (checked at the end).
                let start = try Self.copyKept(kept, to: files[k], entries: prefill, accounts: accounts, credit: credit, ids: ids, report: report)
                for i in 0..<accounts { expected[i] = start + Int64(prefill / accounts + (i < prefill % accounts ? 1 : 0)) }
                continue
            }
            // A bulk load merges in large generations (fewer passes over the job-id index); the
            // worker then opens the file with its own defaults.
            var bulk = LedgerConfig()
            if prefill > 0 { bulk.mergeThresholdRows = 2_097_152 }
            let ledger = try Ledger(path: files[k], config: bulk)
            if split { try ledger.claimPartition(k, of: partitions) }
            let start = try Accounts.open(ledger, users: (0..<accounts).filter { userPartition[$0] == k }, credit: credit, run: run)
            for i in 0..<accounts where userPartition[i] == k { expected[i] = start }
            if prefill > 0 {
                let t0 = System.nowNs()
                try Self.prefill(ledger, entries: prefill, accounts: accounts, ids: ids, run: run, expected: &expected)
                report.log("prefilled \(Unit.grouped(prefill)) entries in \(String(format: "%.0f", System.seconds(since: t0))) s; ledger file \(String(format: "%.0f", Double(System.fileSize(path)) / 1e6)) MB")
            }
        }

        // The backlog.
        let redis = try RedisConnection(url: context.options.redisUrl)
        var replyKeys: [String] = []
        if replies { replyKeys.reserveCapacity(jobs) }
        let enqueueSeconds = try redis.enqueue(queues, count: jobs, partition: { userPartition[$0 % accounts] }) { n in
            let user = n % accounts
            let image = (n / accounts) % 2 == 1
            expected[user] -= image ? 10 : 5
            var replyTo: String? = nil
            if replies {
                replyTo = "\(prefix):reply:\(UUID().uuidString.lowercased())"
                replyKeys.append(replyTo!)
            }
            return JobText.charge(id: ids.id("charge", run, n), userId: Accounts.userId(user),
                                  operation: image ? "image_generation" : "chatgpt_message", replyTo: replyTo)
        }
        report.log("queued \(jobs) jobs in \(String(format: "%.2f", enqueueSeconds)) s (\(Unit.grouped(Int(Double(jobs) / enqueueSeconds))) jobs/s)")

        // The subscriber, connected before the worker starts.
        let subscriber: InvalidationCounter? = replies ? try InvalidationCounter(url: context.options.redisUrl, channel: keys.balance) : nil

        let redisCPU0 = try redis.serverCPU()
        let benchCPU0 = System.cpu().map { $0.user + $0.system } ?? 0
        // Each worker serves /metrics on a port of its own, read at the end for the batch budget.
        let ports = (0..<processes).map { _ in freeLocalPort() }
        let workers = try (0..<processes).map { p in
            let served = (0..<partitions).filter { $0 % processes == p }.map(String.init).joined(separator: ",")
            return try WorkerProcess(
                binary: context.workerBinary, redisURL: context.options.redisUrl, database: path, prefix: prefix,
                workerId: processes == 1 ? workerId : "\(workerId)-\(p)", batchSize: context.options.batchSize,
                logLevel: context.options.workerLogLevel,
                logPath: context.logPath("worker-drain-\(replies ? "replies" : "plain")\(processes == 1 ? "" : "-\(p)")"),
                http: ports[p].map { "127.0.0.1:\($0)" } ?? "off",
                extraArguments: workerArgs.map { $0.split(separator: " ").map(String.init) } ?? [],
                environment: split ? ["TOKENLEDGER_PARTITION_COUNT": "\(partitions)", "TOKENLEDGER_PARTITIONS": served] : [:])
        }
        let worker = workers[0]
        defer { for w in workers { w.stop() } }
        var profiler: Profiler? = nil
        defer { profiler?.stop() }

        // Wait until the queue is empty and every taken batch is settled (its list's name leaves
        // `P:workers` with the batch's acknowledgement).
        var firstTakeNs: UInt64? = nil
        var lastProgressNs = System.nowNs()
        var lastLeft = jobs
        while true {
            let answers = try redis.pipeline(queues.map { RedisCommand("LLEN", $0) } + workerSets.map { RedisCommand("SCARD", $0) })
            let counts = answers.map { Int($0.int ?? -1) }
            let queued = counts.prefix(partitions).reduce(0, +), taken = counts.suffix(partitions).reduce(0, +)
            let now = System.nowNs()
            if firstTakeNs == nil && queued < jobs {
                firstTakeNs = now
                profiler = try profile.map { try Profiler(command: $0, pid: worker.pid, logPath: context.logPath("profiler-\(replies ? "replies" : "plain")")) }
            }
            if queued == 0 && taken == 0 { break }
            if queued + taken < lastLeft { lastLeft = queued + taken; lastProgressNs = now }
            if let stopped = workers.first(where: { !$0.isRunning }) {
                throw BenchError("the worker exited (status \(stopped.process.terminationStatus)):\n\(stopped.logTail())")
            }
            if now - lastProgressNs > 60_000_000_000 { throw BenchError("no progress for 60 s; worker log:\n\(worker.logTail())") }
            usleep(5_000)
        }
        let endNs = System.nowNs()
        let load = System.load()
        // Read while the worker still runs: VmHWM is its peak so far; CPU covers its whole life.
        let memory = worker.memory ?? System.Memory()
        let workerCPU = workers.reduce((user: 0.0, system: 0.0)) { sum, w in
            let cpu = System.cpu(pid: String(w.pid)) ?? (0, 0)
            return (sum.user + cpu.user, sum.system + cpu.system)
        }
        let switches = workers.reduce(0) { $0 + System.voluntarySwitches(pid: String($1.pid)) }
        let budgets = ports.compactMap { $0.flatMap { WorkerBudget.read(port: $0) } }
        let redisCPU = try redis.serverCPU() - redisCPU0
        let benchCPU = (System.cpu().map { $0.user + $0.system } ?? 0) - benchCPU0
        let wal = files.reduce(0) { $0 + System.fileSize($1 + "-wal") }
        let fileBytes = files.reduce(0) { $0 + System.fileSize($1) }
        let shape = split ? ", \(partitions) partitions in \(processes) process\(processes == 1 ? "" : "es")" : ""
        let total = Double(endNs - worker.startedNs) / 1e9
        let steady = Double(endNs - (firstTakeNs ?? worker.startedNs)) / 1e9
        let into = prefill > 0 ? " into \(Unit.grouped(prefill)) entries" : ""
        report.add(Self.name, "drain \(Unit.grouped(jobs)) charges\(into), \(label)", Double(jobs) / total, .jobsPerSecond,
                   // Into a large ledger the target is 90 % of the fresh ledger's (issue 17).
                   target: context.smoke ? nil : .atLeast((replies ? 60_000 : 100_000) * (prefill > 0 ? 0.9 : 1)),
                   note: "\(String(format: "%.2f", total)) s from worker start, batch \(context.options.batchSize), ids=\(ids.rawValue)\(shape), \(load)")
        report.add(Self.name, "  same, from first take", Double(jobs) / steady, .jobsPerSecond,
                   note: "start-up \(String(format: "%.0f", (total - steady) * 1000)) ms")
        report.add(Self.name, "  worker peak RSS, \(label)", Double(memory.peak) / 1_048_576, .mb, target: .atMost(64),
                   note: "VmHWM\(processes == 1 ? "" : " of the first of \(processes) processes"); \(memory.summary)")
        report.add(Self.name, "  worker CPU", (workerCPU.user + workerCPU.system) / total * 100, .percent,
                   note: String(format: "of one core: %.1f s user + %.1f s sys in %.1f s; ", workerCPU.user, workerCPU.system, total)
                       + "\(Unit.grouped(switches)) voluntary switches, "
                       + String(format: "%.1f per batch", Double(switches) / (Double(jobs) / Double(context.options.batchSize))))
        report.add(Self.name, "  worker CPU per job", (workerCPU.user + workerCPU.system) / Double(jobs) * 1e6, .us,
                   target: context.smoke ? nil : .atMost(replies ? 12 : 8), note: "user + system, every thread, from /proc")
        if var budget = budgets.first {
            for other in budgets.dropFirst() {
                budget.seconds.merge(other.seconds, uniquingKeysWith: +)
                budget.counts.merge(other.counts, uniquingKeysWith: +)
            }
            budget.report(report, Self.name, label: label)
        } else {
            report.log("the worker exported no batch budget (tokenledger_batch_seconds) on /metrics")
        }
        report.add(Self.name, "  ledger WAL file at the end", Double(wal) / 1e6, .mb,
                   note: String(format: "database file %.0f MB", Double(fileBytes - wal) / 1e6))
        report.add(Self.name, "  redis-server CPU", redisCPU / total * 100, .percent, note: String(format: "of one core: %.1f s", redisCPU))
        report.add(Self.name, "  bench CPU", benchCPU / total * 100, .percent,
                   note: String(format: "of one core: %.1f s", benchCPU) + (replies ? " (polling, subscriber)" : " (polling)"))

        profiler?.stop()
        let status = workers.map { $0.stop() }.first { $0 != 0 } ?? 0
        if status != 0 { report.fail("drain: the worker exited with status \(status) after SIGTERM") }

        // Invalidations and replies.
        if let subscriber {
            let received = subscriber.wait(for: jobs, seconds: 30)
            report.add(Self.name, "  invalidations received", Double(received), .count, note: "of \(jobs) expected")
            if received != jobs { report.fail("drain: \(received) invalidations received, \(jobs) expected (\(subscriber.errors) subscriber errors)") }
        }
        if replies {
            let lengths = try redis.lengths(of: replyKeys)
            let present = lengths.filter { $0 == 1 }.count
            if present != jobs { report.fail("drain: \(present) of \(jobs) reply keys hold exactly one reply") }
            let sample = stride(from: 0, to: jobs, by: max(1, jobs / 1000)).map { RedisCommand("LINDEX", replyKeys[$0], 0) }
            let bad = try redis.pipeline(sample).filter { JobText.string("type", in: $0.bytes ?? []) != "charge" ||
                !String(decoding: $0.bytes ?? [], as: UTF8.self).contains(#""success":true"#) }
            if !bad.isEmpty { report.fail("drain: \(bad.count) of \(sample.count) sampled replies are not successful charge results") }
        }

        // Balances and the ledger's own audit.
        try checkBalances(paths: files, partitionOf: { userPartition[$0] }, expected: expected, report: report)
        let t0 = System.nowNs()
        let verify = try runTool(context.workerBinary, ["verify", "--database", path, "--partition-count", "\(partitions)"])
        if verify.status != 0 { report.fail("drain: tokenledger verify failed:\n\(verify.output.suffix(2000))") }
        report.log("tokenledger verify: exit \(verify.status) in \(String(format: "%.1f", System.seconds(since: t0))) s; \(verify.output.split(separator: "\n").last ?? "")")
        try redis.deleteKeys(prefix: prefix)
    }

    /// Writes `entries` credits of 1 token (users in turn) through `Ledger.apply`, in batches of
    /// 8,192, merging whenever the (large) threshold is reached and at the end, so the drain
    /// starts on a merged ledger.
    static func prefill(_ ledger: Ledger, entries: Int, accounts: Int, ids: IdStyle, run: String, expected: inout [Int64]) throws {
        var n = 0
        while n < entries {
            var commands: [Command] = []
            commands.reserveCapacity(8192)
            while commands.count < 8192 && n < entries {
                let user = n % accounts
                commands.append(Command(jobId: ids.id("prefill", run, n),
                                        operation: .credit(userId: Accounts.userId(user), operationType: "prefill", amount: 1, metadata: nil)))
                expected[user] += 1
                n += 1
            }
            let results = try ledger.apply(commands)
            if let bad = results.first(where: { !$0.success }) { throw BenchError("prefill refused: \(bad.json)") }
            while try ledger.maintain(budget: 262_144) {}
        }
        try ledger.mergeAll()
    }

    /// Makes `kept` (accounts, then `entries` entries, merged) unless it exists, then copies it
    /// (and a WAL, should one be left) to `path`.
    /// Returns each account's balance before the prefill.
    static func copyKept(_ kept: String, to path: String, entries: Int, accounts: Int, credit: Int64, ids: IdStyle, report: Report) throws -> Int64 {
        if !FileManager.default.fileExists(atPath: kept) {
            let t0 = System.nowNs()
            var bulk = LedgerConfig()
            bulk.mergeThresholdRows = 2_097_152
            var ignored = [Int64](repeating: 0, count: accounts)
            do {
                let ledger = try Ledger(path: kept, config: bulk)
                try Accounts.open(ledger, count: accounts, credit: credit, run: "kept")  // Gift allocation + credit each
                try prefill(ledger, entries: entries, accounts: accounts, ids: ids, run: "kept", expected: &ignored)
                _ = try ledger.checkpoint()
            }
            report.log("made \(kept): prefilled \(Unit.grouped(entries)) entries in \(String(format: "%.0f", System.seconds(since: t0))) s; \(String(format: "%.0f", Double(System.fileSize(kept)) / 1e6)) MB")
        }
        let t0 = System.nowNs()
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: kept + suffix) {
            try FileManager.default.copyItem(atPath: kept + suffix, toPath: path + suffix)
        }
        report.log("copied \(kept) (\(String(format: "%.0f", Double(System.fileSize(path)) / 1e6)) MB) in \(String(format: "%.1f", System.seconds(since: t0))) s")
        return LedgerConfig().tiers["Gift"]!.allocation + credit
    }

    func checkBalances(paths: [String], partitionOf: (Int) -> Int, expected: [Int64], report: Report) throws {
        let ledgers = try paths.map { try Ledger(path: $0) }
        var wrong = 0
        for (i, want) in expected.enumerated() {
            let result = try ledgers[partitionOf(i)].read(.balance(userId: Accounts.userId(i)))
            if JobText.int("tokensBalance", in: result.json) != want {
                if wrong < 3 { report.log("user-\(i): expected \(want), got \(result.json)") }
                wrong += 1
            }
        }
        if wrong > 0 { report.fail("drain: \(wrong) of \(expected.count) balances differ from the expected ones") }
        else { report.log("all \(expected.count) balances exactly as expected") }
    }
}

extension DrainBench {
    /// A partition's ledger file, named as the worker names it: `<stem>-p<k>.<ext>`.
    static func partitionFile(_ path: String, _ k: Int, split: Bool) -> String {
        guard split else { return path }
        let url = URL(fileURLWithPath: path)
        let ext = url.pathExtension
        let stem = url.deletingPathExtension().lastPathComponent
        return url.deletingLastPathComponent().appendingPathComponent(ext.isEmpty ? "\(stem)-p\(k)" : "\(stem)-p\(k).\(ext)").path
    }
}

/// A subscriber on `P:balance` on a thread of its own, counting messages.
final class InvalidationCounter: @unchecked Sendable {
    private let count = Locked(0)
    private let errorCount = Locked(0)
    private let stopped = Locked(false)
    private var thread: BenchThread?

    init(url: String, channel: String) throws {
        let ready = DispatchSemaphore(value: 0)
        let setupError = Locked<String?>(nil)
        let (count, errorCount, stopped) = (self.count, self.errorCount, self.stopped)
        thread = BenchThread(name: "subscriber") {
            do {
                let subscriber = try RedisSubscriber(url: url)
                try subscriber.subscribe([channel])
                ready.signal()
                while !stopped.get {
                    do {
                        if try subscriber.receive(timeout: 0.2) != nil { count.withLock { $0 += 1 } }
                    } catch {
                        errorCount.withLock { $0 += 1 }
                    }
                }
            } catch {
                setupError.withLock { $0 = "\(error)" }
                ready.signal()
            }
        }
        ready.wait()
        if let e = setupError.get { throw BenchError("subscriber: \(e)") }
    }

    var errors: Int { errorCount.get }

    /// Waits until `expected` messages came or `seconds` passed without a new one; stops; returns the count.
    func wait(for expected: Int, seconds: Double) -> Int {
        var last = count.get
        var lastChange = System.nowNs()
        while count.get < expected && System.nowNs() - lastChange < UInt64(seconds * 1e9) {
            usleep(20_000)
            let now = count.get
            if now != last { last = now; lastChange = System.nowNs() }
        }
        stopped.withLock { $0 = true }
        thread?.join()
        return count.get
    }
}
