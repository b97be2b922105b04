import ArgumentParser
import Foundation
import Ledger
import LedgerModel

/// `queries`: history pages, month statistics and balanceAt on a ledger of ten million entries.
///
/// The ledger is built through the ledger's own write path, `Ledger.apply`, in transactions of
/// 10,000 commands with a `ManualClock` that moves forward between transactions, so that the
/// entries spread evenly over 12 months from 2026-01-01. Every entry is a real command with a
/// job id (sequential ids, `q:<n>`): 10,000 accounts opened, then in turn for every account a
/// credit of 20 (`bonus`), a `chatgpt_message` charge (5) and an `image_generation` charge (10),
/// so no balance goes below zero. The result is a valid ledger by construction (hash chain,
/// balances, stored results) and `tokenledger verify` is run on it. Then random users' newest
/// page of 20 and one calendar month's statistics are read through `Ledger.read`.
struct QueriesBench: ParsableCommand, Scenario {
    static let name = "queries"
    static let configuration = CommandConfiguration(
        commandName: "queries", abstract: "History page and month statistics latency on a ledger of ten million entries.")

    @OptionGroup var options: CommonOptions
    @Option(help: "Entries (default 10000000; smoke 20000).") var entries: Int?
    @Option(help: "Accounts (default 10000; smoke 100).") var accounts: Int?
    @Option(help: "Queries of each kind (default 5000; smoke 200).") var queries: Int?
    @Option(help: "Commands per build transaction.") var buildBatch = 10_000
    @Flag(help: "Skip tokenledger verify of the built ledger (it reads every entry).") var noVerify = false

    func run() throws { try runAlone(options) }

    static let start: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z
    static let spanMs: Int64 = 365 * 86_400_000

    func run(_ context: Context) throws {
        let entries = self.entries ?? (context.smoke ? 20_000 : 10_000_000)
        let accounts = self.accounts ?? (context.smoke ? 100 : 10_000)
        let queries = self.queries ?? (context.smoke ? 200 : 5_000)
        let report = context.report
        let path = try context.ledgerPath("queries")
        defer { context.discard(path) }
        let clock = ManualClock(Date(timeIntervalSince1970: Double(Self.start) / 1000))

        let buildStarted = System.nowNs()
        do {
            let ledger = try Ledger(path: path, clock: clock)
            try Accounts.open(ledger, count: accounts, credit: 0, run: "q")
            var n = 0
            let rest = entries - accounts
            let transactions = max(1, (rest + buildBatch - 1) / buildBatch)
            let step = Double(Self.spanMs) / Double(transactions) / 1000
            while n < rest {
                var commands: [Command] = []
                commands.reserveCapacity(buildBatch)
                while commands.count < buildBatch && n < rest {
                    let user = Accounts.userId(n % accounts)
                    let operation: LedgerOperation
                    switch (n / accounts) % 3 {
                    case 0: operation = .credit(userId: user, operationType: "bonus", amount: 20, metadata: nil)
                    case 1: operation = .charge(userId: user, operation: "chatgpt_message", metadata: nil)
                    default: operation = .charge(userId: user, operation: "image_generation", metadata: nil)
                    }
                    commands.append(Command(jobId: "q:\(n + 1_000_000_000)", operation: operation))
                    n += 1
                }
                let results = try ledger.apply(commands)
                if let bad = results.first(where: { !$0.success }) { throw BenchError("queries build refused: \(bad.json)") }
                while try ledger.maintain(budget: 65_536) {}  // a bulk load merges in large slices
                clock.advance(by: step)
                if (n / buildBatch) % 100 == 0 {
                    report.log("built \(Unit.grouped(n + accounts)) entries in \(String(format: "%.0f", System.seconds(since: buildStarted))) s; WAL \(String(format: "%.0f", Double(System.fileSize(path + "-wal")) / 1e6)) MB")
                }
            }
            try ledger.mergeAll()
        }
        let buildSeconds = System.seconds(since: buildStarted)
        let walAfterBuild = System.fileSize(path + "-wal")
        report.add(Self.name, "build \(Unit.grouped(entries)) entries through Ledger.apply", Double(entries) / buildSeconds, .jobsPerSecond,
                   note: "\(String(format: "%.0f", buildSeconds)) s, batches of \(Unit.grouped(buildBatch)), sequential ids, \(System.load())")
        report.add(Self.name, "ledger file", Double(System.fileSize(path) - walAfterBuild) / 1e6, .mb,
                   note: "\(Unit.grouped(entries)) entries, \(Unit.grouped(accounts)) accounts")
        report.add(Self.name, "  its WAL file after the build", Double(walAfterBuild) / 1e6, .mb, note: "walAutoCheckpointPages \(LedgerConfig().walAutoCheckpointPages)")

        if !noVerify {
            let t0 = System.nowNs()
            let verify = try runTool(context.workerBinary, ["verify", "--database", path])
            if verify.status != 0 { report.fail("queries: tokenledger verify failed:\n\(verify.output.suffix(2000))") }
            else { report.log("tokenledger verify: no violation in \(String(format: "%.1f", System.seconds(since: t0))) s") }
        }

        // Reopened and checkpointed: SQLite's page cache starts empty; the file is in the OS cache.
        let ledger = try Ledger(path: path, clock: clock)
        let checkpoint = try ledger.checkpoint()
        report.log("checkpoint before the queries: \(checkpoint.walFrames) WAL frames, \(checkpoint.checkpointed) copied")
        try measure(ledger, accounts: accounts, queries: queries, label: "", context: context)
        try measureConsole(path: path, accounts: accounts, queries: queries, context: context)

        // A burst that stays in the unmerged tail (below the merge threshold, no maintain call),
        // then the same queries: they read the tail and the merged index together.
        let burst = context.smoke ? 2_000 : LedgerConfig().mergeThresholdRows - 4_096
        clock.advance(by: 3600)
        var n = 0
        while n < burst {
            let commands = (n..<min(burst, n + 1024)).map {
                Command(jobId: "burst:\(UUID().uuidString.lowercased())",
                        operation: .charge(userId: Accounts.userId($0 % accounts), operation: "chatgpt_message", metadata: nil))
            }
            n += commands.count
            _ = try ledger.apply(commands)
        }
        let tailRows = try ledger.unmergedRows()
        try measure(ledger, accounts: accounts, queries: queries, label: " after a burst (tail \(Unit.grouped(tailRows)) rows unmerged)", context: context)

        // Start-up with that tail: open reads it back (the largest tail in the steady state is
        // about twice the merge threshold; this is close to one threshold).
        let t0 = System.nowNs()
        let reopened = try Ledger(path: path, clock: clock)
        let openMs = Double(System.nowNs() - t0) / 1e6
        report.add(Self.name, "open with \(Unit.grouped(try reopened.unmergedRows())) unmerged tail rows", openMs, .ms,
                   target: context.smoke ? nil : .atMost(1000), note: "Ledger(path:) on \(Unit.grouped(entries)) entries, \(System.load())")
        let peak = System.memory()?.peak ?? 0
        report.add(Self.name, "bench process peak RSS", Double(peak) / 1_048_576, .mb, note: "VmHWM of the bench (build included)")
    }

    /// The ledger reads behind the console's pages, through the read-only view the console uses:
    /// a user's story (balance with grants, open holds, monitors, a history page of 50 and the
    /// 200 newest entries for the chart) and one read of the month's figures as a cold page makes
    /// it (a binary search for the month's first entry, then at most the console's 20,000 entries;
    /// later pages carry on from there). HTML rendering is not included.
    func measureConsole(path: String, accounts: Int, queries: Int, context: Context) throws {
        let report = context.report
        let reader = try LedgerReader(path: path)
        defer { try? reader.close() }
        var story = Latencies(), month = Latencies()
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<queries {
            let user = Accounts.userId(Int.random(in: 0..<accounts, using: &rng))
            let t0 = System.nowNs()
            let balance = try reader.read(.balance(userId: user))
            _ = try reader.read(.holds(userId: user))
            _ = try reader.monitors(userId: user, limit: 100)
            _ = try reader.read(.history(userId: user, limit: 50, offset: 0, operationType: nil, startDate: nil, endDate: nil))
            _ = try reader.read(.history(userId: user, limit: 200, offset: 0, operationType: nil, startDate: nil, endDate: nil))
            story.record(ns: System.nowNs() - t0)
            if !balance.success { report.fail("queries: console balance refused: \(balance.json.prefix(200))") }
        }
        var read = 0
        for i in 0..<(context.smoke ? 12 : 48) {
            let m = Int64(i % 12)
            let from = CalendarMonth.adding(months: m, to: Self.start), to = CalendarMonth.adding(months: m + 1, to: Self.start)
            let t0 = System.nowNs()
            read += try reader.figures(startMs: from, endMs: to, maxEntries: 20_000).entriesRead
            month.record(ns: System.nowNs() - t0)
        }
        let note = "LedgerReader, \(System.load())"
        story.report(report, Self.name, "console: a user's story (5 reads)", p99Target: context.smoke ? nil : 50,
                     note: "\(Unit.grouped(queries)) random users, \(note)")
        month.report(report, Self.name, "console: the month's figures, first page", p99Target: context.smoke ? nil : 50,
                     note: "at most 20,000 entries a page (\(Unit.grouped(read / (context.smoke ? 12 : 48))) read on average), \(note)")
    }

    /// History pages, month statistics and filtered pages of random users, through `Ledger.read`.
    func measure(_ ledger: Ledger, accounts: Int, queries: Int, label: String, context: Context) throws {
        let report = context.report
        var history = Latencies(), filtered = Latencies(), statistics = Latencies(), balanceAt = Latencies()
        var entriesSeen = 0, operations: Int64 = 0
        var rng = SystemRandomNumberGenerator()
        for i in 0..<queries {
            let user = Accounts.userId(Int.random(in: 0..<accounts, using: &rng))
            var t0 = System.nowNs()
            let page = try ledger.read(.history(userId: user, limit: 20, offset: 0, operationType: nil, startDate: nil, endDate: nil))
            history.record(ns: System.nowNs() - t0)
            entriesSeen += page.json.components(separatedBy: #""jobId""#).count - 1

            let month = Int64(i % 12)
            let from = CalendarMonth.adding(months: month, to: Self.start)
            let to = CalendarMonth.adding(months: month + 1, to: Self.start) - 1
            t0 = System.nowNs()
            let stats = try ledger.read(.statistics(userId: user, startDate: Date(timeIntervalSince1970: Double(from) / 1000),
                                                    endDate: Date(timeIntervalSince1970: Double(to) / 1000)))
            statistics.record(ns: System.nowNs() - t0)
            operations += JobText.int("operationCount", in: stats.json) ?? 0

            t0 = System.nowNs()
            _ = try ledger.read(.history(userId: user, limit: 20, offset: 0, operationType: "bonus", startDate: nil, endDate: nil))
            filtered.record(ns: System.nowNs() - t0)
            // balanceAt: a random moment of the year, one seek.
            let moment = Date(timeIntervalSince1970: Double(Self.start + Int64.random(in: 0..<Self.spanMs, using: &rng)) / 1000)
            t0 = System.nowNs()
            let past = try ledger.read(.balanceAt(userId: user, at: moment))
            balanceAt.record(ns: System.nowNs() - t0)
            if !past.success { report.fail("queries: balanceAt refused: \(past.json.prefix(200))") }
            if !page.success || !stats.success { report.fail("queries: refused: \(page.json.prefix(200)) \(stats.json.prefix(200))") }
        }
        if entriesSeen != queries * 20 { report.fail("queries: \(entriesSeen) history entries for \(queries) pages of 20") }
        let note = "\(Unit.grouped(queries)) random users, \(System.load())"
        history.report(report, Self.name, "history page (20 newest)\(label)", p99Target: context.smoke ? nil : 1, note: note)
        statistics.report(report, Self.name, "month statistics\(label)", p99Target: context.smoke ? nil : 5,
                          note: "\(Unit.grouped(Int(operations) / max(queries, 1))) entries per month and user, \(note)")
        filtered.report(report, Self.name, "history page, operationType filter\(label)", note: "with its total count, \(note)")
        balanceAt.report(report, Self.name, "balanceAt a random moment\(label)", p99Target: context.smoke ? nil : 2, note: note)
    }
}
