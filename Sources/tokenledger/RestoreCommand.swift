import ArgumentParser
import Foundation
import Ledger
import Redis
import Worker

/// Rebuilds a lost ledger: the replica (or a copy) first, then the jobs of `P:applied` it lacks,
/// then `verify` (the contract's "Recovery past the replica"). With the workers stopped.
struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a lost ledger from its Litestream replica (or a copy), apply the acknowledged jobs it lacks from <prefix>:applied, and verify it.",
        discussion: """
            Stop every worker and standby first. The ledger file (each partition's) must not exist
            with --litestream-config or --from; without either, the file already in place (restored
            by hand) is brought up to date. When the stream no longer reaches back to the restored
            ledger, restore names the gap, changes nothing more and exits 4, unless --accept-gap.
            """)
    @OptionGroup var settings: SettingsOptions
    @Option(help: "Run `litestream restore -config FILE` for each ledger file first (the config the replicating Litestream used).")
    var litestreamConfig: String?
    @Option(help: "The litestream executable.") var litestream = "litestream"
    @Option(help: "Install this copy (a `backup`, or a `litestream restore -o` output) as the ledger first; a split ledger takes PATH with -p<k> per partition.")
    var from: String?
    @Flag(help: "Apply what the stream holds even when it no longer reaches back to the ledger (the jobs between are lost).")
    var acceptGap = false

    /// The exit status of a refused gap: the replica is restored, nothing else was done.
    static let gapExitCode: Int32 = 4

    func validate() throws {
        if litestreamConfig != nil, from != nil { throw ValidationError("give --litestream-config or --from, not both") }
    }

    func run() throws {
        let settings = try self.settings.resolve()
        try settings.refuseForeignLedgerFiles()
        let redis = try settings.redis.connect()
        let partitions = Array(0..<settings.partitioning.count)
        // Everything is checked before anything is written: a running worker would write beside
        // the restore, and a file in place would be overwritten.
        for partition in partitions {
            let keys = settings.queueKeys(partition: partition)
            if try redis.get(keys.lease) != nil {
                throw ValidationError("\(keys.lease) is held: a worker is running on this queue; stop every worker and standby first")
            }
            let path = settings.databasePath(partition: partition)
            if litestreamConfig != nil || from != nil {
                for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
                    throw ValidationError("\(file) exists: move the remains of the lost ledger aside first (the file, its -wal and -shm)")
                }
            } else if !FileManager.default.fileExists(atPath: path) {
                throw ValidationError("no ledger at \(path): restore it with --litestream-config or --from")
            }
        }
        var gapRefused = false
        var violations = 0
        for partition in partitions {
            let keys = settings.queueKeys(partition: partition)
            let path = settings.databasePath(partition: partition)
            let started = ContinuousClock.now
            let source = try install(path: path, partition: partition, settings: settings)
            let clock = ManualClock(Date())
            let stream = RecoveryStream(redis: redis, keys: keys, partitioning: settings.partitioning)
            let summary: RecoveryStream.Summary
            do {
                let ledger = try settings.openLedger(partition: partition, clock: clock)
                let continuity = try stream.continuity(of: ledger)
                var warning = ""
                switch continuity {
                case .continuous:
                    break
                case .noStream:
                    warning = "\(keys.applied) does not exist or is empty while the ledger has entries: Redis lost it, or the worker never wrote it; jobs acknowledged after the replica's last commit cannot be found"
                case .gap(let gap):
                    warning = gap.description
                }
                if !warning.isEmpty {
                    guard acceptGap else {
                        print("restore of \(path): \(source); NOT brought up to date: \(warning). Rerun with --accept-gap to apply what the stream holds.")
                        gapRefused = true
                        continue
                    }
                    print("restore of \(path): accepting the gap: \(warning)")
                }
                let progress = ProgressLine("restore \(path) from \(keys.applied)", unit: "jobs")
                summary = try settings.waitingOut("applying \(keys.applied) to \(path)") {
                    try stream.apply(to: ledger, clock: clock) { progress.update(done: $0, of: $1) }
                }
                _ = progress.finish()
            }
            let check = ProgressLine("verify \(path)", unit: "entries")
            let found = try settings.waitingOut("verifying the ledger \(path)") {
                try Ledger.verify(path: path) { check.update(done: $0, of: $1) }
            }
            _ = check.finish()
            for v in found { print(v) }
            violations += found.count
            let seconds = Double((ContinuousClock.now - started).components.seconds)
                + Double((ContinuousClock.now - started).components.attoseconds) / 1e18
            let skipped = summary.skipped > 0 ? ", \(summary.skipped) skipped (not a job of this partition)" : ""
            let verdict = found.isEmpty ? "no violation" : "\(found.count) violation(s)"
            print("restore of \(path): \(source); \(summary.read) jobs read from \(keys.applied): \(summary.applied) applied, "
                  + "\(summary.alreadyApplied) already in the ledger\(skipped); verify: \(verdict) (\(check.done) entries, \(ProgressLine.elapsed(seconds)))")
        }
        if violations > 0 { throw ExitCode(1) }
        if gapRefused { throw ExitCode(Self.gapExitCode) }
    }

    /// Puts the replica or the copy in place; says where the ledger came from.
    private func install(path: String, partition: Int, settings: Settings) throws -> String {
        if let litestreamConfig {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [litestream, "restore", "-config", litestreamConfig, path]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0, FileManager.default.fileExists(atPath: path) else {
                throw ValidationError("litestream restore of \(path) failed (exit \(process.terminationStatus)): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            return "replica restored by litestream"
        }
        if let from {
            let copy = settings.partitionFile(from, partition: partition)
            guard FileManager.default.fileExists(atPath: copy) else { throw ValidationError("no copy at \(copy)") }
            try FileManager.default.copyItem(atPath: copy, toPath: path)
            // The copy may be a backup readable by others: the ledger is the worker's alone.
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
            return "copy \(copy) installed"
        }
        return "ledger in place"
    }
}
