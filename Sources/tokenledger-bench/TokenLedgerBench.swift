import ArgumentParser
import Foundation

/// `tokenledger-bench`: measures the ledger alone and the worker end to end, and prints a table.
///
/// It starts nothing hidden: Redis is the server named by `--redis-url` (deploy/bench.sh starts a
/// private one), ledgers are fresh files in `--work-dir` unless `--database` names one, and the
/// worker is `--worker-bin` (default: the `tokenledger` built beside this executable), started as
/// a child process with explicit flags so that its peak memory can be read.
@main
struct TokenLedgerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenledger-bench",
        abstract: "Benchmarks of the TokenLedger ledger and worker.",
        subcommands: [LedgerBench.self, DrainBench.self, LatencyBench.self, RenewalBench.self, QueriesBench.self, ExtrasBench.self, AllBench.self])
}

/// Options every scenario shares.
struct CommonOptions: ParsableArguments {
    @Option(help: "Redis URL for the bench and the worker. Use a server of its own: scenarios fill it with up to a million keys.")
    var redisUrl = "redis://127.0.0.1:6379/0"

    @Option(help: "Ledger file (must not exist; with 'all', one file per scenario named <path>.<scenario>). Default: a fresh file in --work-dir, removed afterwards.")
    var database: String?

    @Option(help: "Folder for fresh ledgers and worker logs. Default: a new folder in the temporary directory.")
    var workDir: String?

    @Option(help: "The tokenledger executable to start as the worker. Default: tokenledger beside this executable.")
    var workerBin: String?

    @Option(help: "The worker's --batch-size.")
    var batchSize = 256

    @Option(help: "The worker's --log-level (info logs one line per batch, as in production).")
    var workerLogLevel = "info"

    @Flag(help: "Small counts: the whole set runs in seconds (for CI). Figures are not meaningful.")
    var smoke = false

    @Flag(help: "Keep the ledger files and worker logs.")
    var keep = false

    @Option(help: "Also write the figures as a Markdown table to this file (and JSON lines to <file>.jsonl).")
    var results: String?
}

/// What one scenario is given: options, the report, a place for its files.
final class Context {
    let options: CommonOptions
    let report: Report
    let workDir: String
    let runId: String
    let inAll: Bool
    private var counter = 0

    init(options: CommonOptions, inAll: Bool) throws {
        self.options = options
        self.inAll = inAll
        report = Report(resultsPath: options.results)
        runId = "\(getpid())-\(Int(Date().timeIntervalSince1970) % 100_000)"
        workDir = options.workDir ?? (NSTemporaryDirectory() + "tokenledger-bench-\(runId)")
        try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
    }

    var smoke: Bool { options.smoke }

    var workerBinary: String { options.workerBin ?? System.executableFolder() + "/tokenledger" }

    /// A key prefix no other run shares.
    func prefix(_ scenario: String) -> String {
        counter += 1
        return "bench-\(runId)-\(scenario)-\(counter)"
    }

    /// The ledger file of a scenario: `--database` (or `<database>.<scenario>` within `all`), else a
    /// fresh file in the work folder. Refuses an existing file: every scenario builds its ledger.
    func ledgerPath(_ scenario: String) throws -> String {
        let path: String
        if let given = options.database {
            path = inAll ? "\(given).\(scenario)" : given
        } else {
            counter += 1
            path = "\(workDir)/\(scenario)-\(counter).sqlite"
        }
        if FileManager.default.fileExists(atPath: path) {
            throw BenchError("\(path) exists; the bench builds its own ledger and will not touch an existing file")
        }
        return path
    }

    /// Removes a ledger the bench created, unless --keep or --database.
    func discard(_ path: String) {
        if options.keep || options.database != nil { return }
        System.removeLedger(path)
    }

    func logPath(_ name: String) -> String { "\(workDir)/\(name).log" }

    func finish() throws {
        report.printTable()
        let machine = "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
        try report.write(header: "tokenledger-bench \(smoke ? "--smoke " : "")on \(machine), \(ISO8601DateFormatter().string(from: Date()))")
        if !options.keep && options.workDir == nil { try? FileManager.default.removeItem(atPath: workDir) }
        if !report.failures.isEmpty { throw ExitCode(1) }
    }
}

/// A scenario: a subcommand that runs on its own or within `all`.
protocol Scenario {
    static var name: String { get }
    func run(_ context: Context) throws
}

extension Scenario where Self: ParsableCommand {
    func runAlone(_ options: CommonOptions) throws {
        let context = try Context(options: options, inAll: false)
        try runReporting(context)
        try context.finish()
    }

    func runReporting(_ context: Context) throws {
        print("== \(Self.name) (\(System.load()))")
        fflush(nil)
        System.resetPeakMemory()
        do {
            try run(context)
        } catch {
            context.report.fail("\(Self.name): \(error)")
        }
    }
}

struct AllBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all", abstract: "Every scenario with its default counts: ledger, drain, latency, renewal, queries, extras.")
    @OptionGroup var options: CommonOptions

    func run() throws {
        let context = try Context(options: options, inAll: true)
        let started = System.nowNs()
        try LedgerBench.parse([]).runReporting(context)
        try DrainBench.parse([]).runReporting(context)
        try LatencyBench.parse([]).runReporting(context)
        try RenewalBench.parse([]).runReporting(context)
        try QueriesBench.parse([]).runReporting(context)
        try ExtrasBench.parse([]).runReporting(context)
        context.report.log("all scenarios: \(String(format: "%.1f", System.seconds(since: started))) s")
        try context.finish()
    }
}
