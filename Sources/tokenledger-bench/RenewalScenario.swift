import ArgumentParser
import Foundation
import Ledger
import LedgerModel

/// `renewal`: a million eligible accounts renewed through `Ledger.renewDue`, chunk after chunk,
/// as the worker's scheduler does (`renewDue(limit: chunk, epoch:)` until a chunk finds nothing,
/// then `recordCompletedRun`).
///
/// The ledger is built through `Ledger.apply` with a `ManualClock` at 2026-01-01: every account is
/// opened (Gift, 100 tokens) and charged once (`image_generation`, 10), so that each renewal writes
/// a top-up entry of 10 (an account at its allocation would renew without an entry). The clock is
/// then moved one month and an hour on: every account is due. Each chunk size runs on its own copy
/// of that ledger, made with `Ledger.backup` (SQLite's online backup).
///
/// With `--policy rollover` every account's first period grant has 90 tokens left: the renewal
/// carries `--rollover-max` of them as a grant, lapses the rest (an `expiry` entry) and grants
/// the new period's 100 (a renewal entry).
struct RenewalBench: ParsableCommand, Scenario {
    static let name = "renewal"
    static let configuration = CommandConfiguration(
        commandName: "renewal", abstract: "Time to renew a million eligible accounts through Ledger.renewDue chunks.")

    @OptionGroup var options: CommonOptions
    @Option(help: "Eligible accounts (default 1000000; smoke 2000).") var accounts: Int?
    @Option(parsing: .upToNextOption, help: "Chunk sizes (the scheduler's default is 1000).") var chunks: [Int] = [1000, 10_000]
    @Option(help: "Renewal policy: topUp (default), accumulate, expire or rollover.") var policy: RenewalPolicy = .topUp
    @Option(help: "Under rollover: the most tokens carried (default 50 of the 90 left).") var rolloverMax: Int64 = 50

    func run() throws { try runAlone(options) }

    static let start = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01T00:00:00Z

    func run(_ context: Context) throws {
        let accounts = self.accounts ?? (context.smoke ? 2_000 : 1_000_000)
        let report = context.report
        let path = try context.ledgerPath("renewal")
        defer { context.discard(path) }
        let clock = ManualClock(Self.start)
        var config = LedgerConfig(renewalPolicy: policy)
        config.rolloverMax = rolloverMax
        let rollover = policy == .rollover
        let expected: (entries: Int, balance: Int64) = switch policy {
        case .topUp: (accounts, 100)
        case .accumulate: (accounts, 190)
        case .expire: (2 * accounts, 100)  // the old grant's 90 lapse, then the new period's 100
        case .rollover: (2 * accounts, 90 - (90 - min(90, rolloverMax)) + 100)
        }
        let buildStarted = System.nowNs()
        do {
            let ledger = try Ledger(path: path, config: config, clock: clock)
            let batch = 10_000
            for from in stride(from: 0, to: accounts, by: batch) {
                let range = from..<min(accounts, from + batch)
                let commands = range.map { Command(jobId: "open:r-\($0)", operation: .open(userId: Accounts.userId($0))) }
                    + range.map { Command(jobId: "charge:r-\($0)", operation: .charge(userId: Accounts.userId($0), operation: "image_generation", metadata: nil)) }
                let results = try ledger.apply(commands)
                if let bad = results.first(where: { !$0.success }) { throw BenchError("renewal build refused: \(bad.json)") }
            }
        }
        report.log("built \(Unit.grouped(accounts)) accounts (\(Unit.grouped(2 * accounts)) entries) in \(String(format: "%.1f", System.seconds(since: buildStarted))) s, \(String(format: "%.0f", Double(System.fileSize(path)) / 1e6)) MB")
        let due = Self.start.addingTimeInterval(31 * 86_400 + 3_600)

        for (index, chunk) in chunks.enumerated() {
            let copy = "\(path).chunk\(chunk)"
            System.removeLedger(copy)
            try Ledger.backup(from: path, to: copy)  // SQLite's online backup: a consistent copy
            defer { System.removeLedger(copy) }
            let ledger = try Ledger(path: copy, config: config, clock: ManualClock(due))
            let epoch = try ledger.acquireEpoch(owner: "bench")
            var chunkTimes = Latencies()
            var renewed = 0, failed = 0, entries = 0
            var carried: Int64 = 0
            let t0 = System.nowNs()
            while true {
                let c0 = System.nowNs()
                let summary = try ledger.renewDue(limit: chunk, epoch: epoch)
                chunkTimes.record(ns: System.nowNs() - c0)
                renewed += summary.successful
                failed += summary.failed
                entries += summary.changes.count
                carried += summary.tokensCarried
                if summary.totalProcessed == 0 || summary.successful == 0 { break }
            }
            try ledger.recordCompletedRun(name: "renewal", slot: due, epoch: epoch)
            let seconds = System.seconds(since: t0)
            report.add(Self.name, "renew \(Unit.grouped(accounts)) accounts\(rollover ? " under rollover" : ""), chunk \(Unit.grouped(chunk))", seconds, .s,
                       target: context.smoke ? nil : .atMost(30),
                       note: "\(Unit.grouped(Int(Double(renewed) / seconds))) accounts/s, \(System.load())")
            report.add(Self.name, "  one chunk (a transaction) p50", chunkTimes.ms(50), .ms,
                       note: "p99 \(Unit.ms.format(chunkTimes.ms(99))) ms, max \(Unit.ms.format(chunkTimes.maxMs)) ms: jobs wait this long behind it")
            if renewed != accounts || failed != 0 || entries != expected.entries
                || (rollover && carried != Int64(accounts) * min(90, rolloverMax)) {
                report.fail("renewal: \(renewed) renewed, \(failed) failed, \(entries) entries, \(carried) carried for \(accounts) accounts")
            }
            let again = try ledger.renewDue(limit: chunk, epoch: epoch)
            if again.totalProcessed != 0 { report.fail("renewal: a second run renewed \(again.totalProcessed) accounts again") }
            for i in [0, accounts / 2, accounts - 1] {
                let json = try ledger.read(.balance(userId: Accounts.userId(i))).json
                if JobText.int("tokensBalance", in: json) != expected.balance { report.fail("renewal: user-\(i) after renewal: \(json)") }
            }
            if index == 0 {
                let verify = try runTool(context.workerBinary, ["verify", "--database", copy])
                if verify.status != 0 { report.fail("renewal: tokenledger verify failed:\n\(verify.output.suffix(2000))") }
                else { report.log("tokenledger verify: no violation (\(Unit.grouped(3 * accounts)) entries)") }
            }
        }
        let peak = System.memory()?.peak ?? 0
        context.report.add(Self.name, "bench process peak RSS", Double(peak) / 1_048_576, .mb, note: "VmHWM of the bench (ledger in process, build included)")
    }
}

extension RenewalPolicy: ExpressibleByArgument {}
