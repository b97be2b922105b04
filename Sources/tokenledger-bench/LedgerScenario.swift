import ArgumentParser
import Foundation
import Ledger
import LedgerModel

/// `ledger`: the group-commit API alone, no Redis. 10,000 accounts are opened and credited, then
/// `charge` commands are applied by `Ledger.apply` in batches of 1, 16, 256 and 1024, each size
/// for a fixed time; jobs/s counts only the time inside `apply` and the `maintain` call that
/// follows each batch, as in the worker (commands are built outside it).
struct LedgerBench: ParsableCommand, Scenario {
    static let name = "ledger"
    static let configuration = CommandConfiguration(
        commandName: "ledger", abstract: "Ledger.apply throughput of charge commands by batch size (no Redis).")

    @OptionGroup var options: CommonOptions
    @Option(help: "Accounts (default 10000; smoke 100).") var accounts: Int?
    @Option(parsing: .upToNextOption, help: "Batch sizes.") var batches: [Int] = [1, 16, 256, 1024]
    @Option(help: "Seconds of apply per batch size (default 5; smoke 0.3).") var seconds: Double?
    @Option(help: "Job ids: uuid (as producers make them) or sequential.") var ids: IdStyle = .uuid
    @Option(help: "SQLite synchronous: full (the default, what the worker runs) or normal.") var synchronous: SynchronousMode = .full
    @Option(help: "walAutoCheckpointPages (default: the ledger's default).") var autoCheckpoint: Int?
    @Option(help: "cacheMebibytes, SQLite's page cache of the writer (default: the ledger's default).") var cacheMib: Int?

    func run() throws { try runAlone(options) }

    @Option(help: "Only time opening this existing ledger (the rebuild of what it keeps in memory), three times.") var reopen: String?

    func run(_ context: Context) throws {
        if let reopen {
            var opens = Latencies()
            for _ in 0..<3 {
                let t0 = System.nowNs()
                let ledger = try Ledger(path: reopen)
                opens.record(ns: System.nowNs() - t0)
                _ = ledger
        if let status = try? ledger.jobFilterStatus {
            context.report.add(Self.name, "reopen: job-id filter", Double(status.bytes) / 1_048_576, .mb,
                               note: "\(status.ids) ids, \(status.segments) segment(s), \(String(format: "%.2f", Double(status.bytes) / Double(max(status.ids, 1)))) bytes per id")
        }
            }
            context.report.add(Self.name, "reopen: open an existing ledger, p50", opens.ms(50), .ms,
                               note: "max \(Unit.ms.format(opens.ms(100))) ms, \(System.load())")
            return
        }
        let accounts = self.accounts ?? (context.smoke ? 100 : 10_000)
        let seconds = self.seconds ?? (context.smoke ? 0.3 : 5)
        let path = try context.ledgerPath("ledger")
        defer { context.discard(path) }
        // The floor of a durable commit: one small append and fdatasync, as a WAL commit does.
        let syncs = Self.fdatasyncLatency(path: path + ".fsync-probe", count: context.smoke ? 50 : 500)
        context.report.add(Self.name, "disk: 4 KiB append + fdatasync p50", syncs.ms(50), .ms,
                           note: "p99 \(Unit.ms.format(syncs.ms(99))) ms, \(syncs.count) syncs, next to the ledger file")
        var config = LedgerConfig()
        config.synchronous = synchronous
        if let autoCheckpoint { config.walAutoCheckpointPages = autoCheckpoint }
        if let cacheMib { config.cacheMebibytes = cacheMib }
        let ledger = try Ledger(path: path, config: config)
        let run = context.runId
        try Accounts.open(ledger, count: accounts, credit: 1_000_000_000, run: run)
        let label = "sync=\(synchronous.rawValue), ids=\(ids.rawValue), cache \(config.cacheMebibytes) MiB"
            + (autoCheckpoint.map { ", autocheckpoint=\($0)" } ?? "")
        var n = 0
        for size in batches {
            var applied = 0
            var applyNs: UInt64 = 0
            var commits = Latencies()
            var refused = 0
            var longestApplyNs: UInt64 = 0, longestMaintainNs: UInt64 = 0
            // On the applying thread's CPU clock: what a pause costs apart from waiting for a core.
            var applyCpu = Latencies()
            var longestMaintainCpuNs: UInt64 = 0
            let written0 = System.bytesWritten()
            let cpu0 = System.cpu().map { $0.user + $0.system } ?? 0
            while applyNs < UInt64(seconds * 1e9) || commits.count < 3 {
                var commands: [Command] = []
                commands.reserveCapacity(size)
                for _ in 0..<size {
                    let operation = (n / accounts) % 2 == 0 ? "chatgpt_message" : "image_generation"
                    commands.append(Command(jobId: ids.id("charge", run, n),
                                            operation: .charge(userId: Accounts.userId(n % accounts), operation: operation, metadata: nil)))
                    n += 1
                }
                let c0 = Self.threadCpuNs()
                let t0 = System.nowNs()
                let results = try ledger.apply(commands)
                let t1 = System.nowNs()
                let c1 = Self.threadCpuNs()
                // As the worker does between batches: index maintenance, timed with the batch.
                try ledger.maintainAfterBatch()
                let dt = System.nowNs() - t0
                applyNs += dt
                commits.record(ns: dt)
                longestApplyNs = max(longestApplyNs, t1 - t0)
                longestMaintainNs = max(longestMaintainNs, System.nowNs() - t1)
                let c2 = Self.threadCpuNs()
                applyCpu.record(ns: c1 - c0)
                longestMaintainCpuNs = max(longestMaintainCpuNs, c2 - c1)
                applied += results.count
                refused += results.reduce(0) { $0 + ($1.success ? 0 : 1) }
            }
            if refused > 0 { context.report.fail("ledger: \(refused) charges refused at batch \(size)") }
            let note = "\(label), \(System.load())"
            context.report.add(Self.name, "apply, batch \(size)", Double(applied) / (Double(applyNs) / 1e9), .jobsPerSecond, note: note)
            let written = Double(System.bytesWritten() - written0) / Double(max(applied, 1))
            let cpu = ((System.cpu().map { $0.user + $0.system } ?? 0) - cpu0) / Double(max(applied, 1)) * 1e6
            context.report.add(Self.name, "apply, batch \(size): CPU per job (µs)", cpu, .count,
                               note: "user + system of the bench process, checkpoint thread included")
            context.report.add(Self.name, "apply, batch \(size): bytes written per job", written, .count,
                               note: "WAL frames and checkpoint copies (wchar), \(String(format: "%.2f", written / 4096)) pages of 4 KiB")
            context.report.add(Self.name, "apply, batch \(size): one apply p50", commits.ms(50), .ms, note: "p99 \(Unit.ms.format(commits.ms(99))) ms, \(commits.count) applies")
            // A pause between batches: the merge after the commit, inside `apply` (past twice the
            // threshold) or in the maintenance call after it.
            context.report.add(Self.name, "apply, batch \(size): longest maintenance call", Double(longestMaintainNs) / 1e6, .ms,
                               note: "longest apply \(Unit.ms.format(Double(longestApplyNs) / 1e6)) ms (wall)")
            context.report.add(Self.name, "apply, batch \(size): longest maintenance call, thread CPU", Double(longestMaintainCpuNs) / 1e6, .ms,
                               note: "apply thread CPU p50 \(Unit.ms.format(applyCpu.ms(50))) ms, max \(Unit.ms.format(applyCpu.maxMs)) ms")
        }
        context.report.add(Self.name, "ledger file after \(n) charges", Double(System.fileSize(path)) / 1e6, .mb, note: "with -wal")
        let peak = System.memory()?.peak ?? 0
        context.report.add(Self.name, "bench process peak RSS", Double(peak) / 1_048_576, .mb, note: "VmHWM of the bench (ledger in process)")
    }
}

extension LedgerBench {
    static func threadCpuNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func fdatasyncLatency(path: String, count: Int) -> Latencies {
        var latencies = Latencies()
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return latencies }
        defer { close(fd); unlink(path) }
        let page = [UInt8](repeating: 0x5A, count: 4096)
        for i in 0..<count {
            let t0 = System.nowNs()
            _ = page.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, off_t(i * 4096)) }
            fdatasync(fd)
            latencies.record(ns: System.nowNs() - t0)
        }
        return latencies
    }
}

extension SynchronousMode: ExpressibleByArgument {}
