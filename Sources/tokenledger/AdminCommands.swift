import ArgumentParser
import Foundation
import Ledger
import OperatorHTTP
import Redis

struct RenewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: "Renew one user, or all eligible accounts, through the worker (prints the reply).")
    @OptionGroup var settings: SettingsOptions
    @Argument(help: "The user id (omit with --all).") var userId: String?
    @Flag(help: "Renew every eligible account (a renewAll job).") var all = false
    @Flag(help: "With --all: report what would be renewed, change nothing.") var dryRun = false
    @Option(help: "With --all: only accounts of this tier.") var tier: String?
    @Option(help: "With --all: the most accounts to process.") var limit: Int?
    @Option(help: "Seconds to wait for the reply.") var timeout: Double = 60

    func validate() throws {
        if all == (userId != nil) { throw ValidationError("give a user id or --all, not both") }
        if !all && (dryRun || tier != nil || limit != nil) { throw ValidationError("--dry-run, --tier and --limit go with --all") }
    }

    func run() throws {
        let settings = try self.settings.resolve()
        var job: [String: Any] = ["id": "cli-renew-\(UUID().uuidString.lowercased())"]
        if all {
            job["type"] = "renewAll"
            job["dryRun"] = dryRun
            if let tier { job["tier"] = tier }
            if let limit { job["limit"] = limit }
        } else if let userId {
            job["type"] = "renew"
            job["userId"] = userId
        } else {
            throw ValidationError("give a user id or --all")  // validate() already says so
        }
        // renewAll covers the partition it is pushed on: one job per partition.
        let client = JobClient(settings: settings)
        for partition in all ? Array(0..<settings.partitioning.count) : [0] {
            if all { job["id"] = "cli-renew-\(UUID().uuidString.lowercased())" }
            if let reply = try client.send(JobClient.json(job), wait: true, timeout: timeout, partition: partition) { print(reply) }
        }
    }
}

struct DeadLettersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "List dead letters, or requeue them (oldest first) once their cause is fixed.")
    enum Action: String, ExpressibleByArgument, CaseIterable { case list, requeue }
    @OptionGroup var settings: SettingsOptions
    @Argument(help: "list or requeue.") var action: Action = .list
    @Option(help: "How many (list: newest first; requeue: oldest first).") var count: Int = 20

    func run() throws {
        let settings = try self.settings.resolve()
        let redis = try settings.redis.connect()
        // Each partition has its own dead-letter list; a letter goes back to its own partition's queue.
        for partition in 0..<settings.partitioning.count {
            let keys = settings.queueKeys(partition: partition)
            switch action {
            case .list:
                for letter in try redis.lrange(keys.dead, 0, count - 1) { print(String(decoding: letter, as: UTF8.self)) }
            case .requeue:
                let moved: Int
                do {
                    moved = try DeadLetters.requeue(redis, jobs: keys.jobs, dead: keys.dead, count: count)
                } catch let error as DeadLetterError {
                    throw ValidationError(error.description)
                }
                print("requeued \(moved) job(s) at the front of \(keys.jobs)")
            }
        }
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the whole ledger; print every violation; exit 0 only when there is none.")
    @OptionGroup var settings: SettingsOptions

    func run() throws {
        let settings = try self.settings.resolve()
        var total = 0
        for path in settings.databasePaths {
            let progress = ProgressLine("verify \(path)", unit: "entries")
            let violations = try settings.waitingOut("verifying the ledger \(path)") {
                try Ledger.verify(path: path) { progress.update(done: $0, of: $1) }
            }
            let checked = "\(progress.done) entries checked in \(ProgressLine.elapsed(progress.finish()))"
            for v in violations { print(v) }
            print(violations.isEmpty ? "ledger \(path): no violation (\(checked))" : "ledger \(path): \(violations.count) violation(s) (\(checked))")
            total += violations.count
        }
        if total > 0 { throw ExitCode(1) }
    }
}

struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "migrate", abstract: "Create the ledger file or bring its schema up to date.")
    @OptionGroup var settings: SettingsOptions

    func run() throws {
        let settings = try self.settings.resolve()
        try settings.refuseForeignLedgerFiles()
        for partition in 0..<settings.partitioning.count {
            // The files in turn: what takes long (a migration's rewrite) happens inside one open.
            let (path, files) = (settings.databasePath(partition: partition), Int64(settings.partitioning.count))
            let progress = ProgressLine("migrate", unit: "ledger files", showsRate: false)
            progress.update(done: Int64(partition), of: files)
            let existed = FileManager.default.fileExists(atPath: path)
            _ = try settings.openLedger(partition: partition)
            let seconds = progress.finish()
            print("ledger \(path): \(existed ? "schema up to date" : "created") (\(ProgressLine.elapsed(seconds)))")
        }
    }
}

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write a consistent copy of the ledger, even while the worker runs.")
    @OptionGroup var settings: SettingsOptions
    @Argument(help: "Where to write the copy (must not exist); a split ledger writes one copy per partition, PATH with -p<k>.") var path: String

    func run() throws {
        let settings = try self.settings.resolve()
        for partition in 0..<settings.partitioning.count {
            let (source, copy) = (settings.databasePath(partition: partition), settings.partitionFile(path, partition: partition))
            let progress = ProgressLine("backup \(source)", unit: "pages")
            try settings.waitingOut("backing up the ledger \(source)") {
                try Ledger.backup(from: source, to: copy, config: settings.ledger) { progress.update(done: Int64($0), of: Int64($1)) }
            }
            let seconds = progress.finish()
            print("backup of \(source) written to \(copy) (\(progress.done) pages in \(ProgressLine.elapsed(seconds)))")
        }
    }
}
