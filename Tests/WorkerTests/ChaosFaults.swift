import Foundation
import Redis
import TestSupport
import XCTest

/// The fault classes of the chaos test, named as `CHAOS_FAULTS` lists them.
enum ChaosFault: String, CaseIterable {
    /// kill -9 of a worker (the active one mostly), restarted after a pause.
    case kill
    /// SIGSTOP of the active worker for longer than its lease, then SIGCONT.
    case stop
    /// SIGTERM of a worker, which must exit 0 having finished its batch, restarted after.
    case term
    /// kill -9 of redis-server (appendfsync always), started again after a pause.
    case redis
    /// Another process holding the ledger's write lock, steadily or freeing it every 0.35 s.
    case lock
    /// The ledger's filesystem (a size-limited tmpfs) filled for a few seconds.
    case disk
    /// Redis `maxmemory` below its used memory with `noeviction`, with a batch in hand, then lifted.
    case oom
}

/// How the run goes: from the environment (`CHAOS_SECONDS`, `CHAOS_SEED`, `CHAOS_FAULTS`), with a
/// short default for CI.
struct ChaosSettings: CustomStringConvertible {
    let seed: UInt64
    let seconds: Double
    let faults: [ChaosFault]
    /// The long run (CHAOS_SECONDS above the CI default) holds locks for up to 20 s.
    var long: Bool { seconds > 90 }
    let leaseSeconds = 1.5
    let busyTimeoutMilliseconds = 1000
    let users = 32
    let producers = 4

    static func fromEnvironment() throws -> ChaosSettings {
        let env = ProcessInfo.processInfo.environment
        let seed = env["CHAOS_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: .min ... .max)
        let seconds = env["CHAOS_SECONDS"].flatMap { Double($0) } ?? 60
        var faults = ChaosFault.allCases
        // `none`: the workload alone, to tell a fault's failure from the model's.
        if env["CHAOS_FAULTS"] == "none" {
            faults = []
        } else if let list = env["CHAOS_FAULTS"], !list.isEmpty {
            faults = try list.split(separator: ",").map { name in
                guard let fault = ChaosFault(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                    throw ChaosSetupError("CHAOS_FAULTS: '\(name)' is not one of \(ChaosFault.allCases.map(\.rawValue).joined(separator: ","))")
                }
                return fault
            }
        }
        return ChaosSettings(seed: seed, seconds: seconds, faults: faults)
    }

    var description: String {
        "CHAOS_SEED=\(seed) CHAOS_SECONDS=\(Int(seconds)) CHAOS_FAULTS=\(faults.map(\.rawValue).joined(separator: ","))"
    }
}

struct ChaosSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The fault log: every fault with its time since the start, printed as it happens.
final class ChaosLog: @unchecked Sendable {
    private let lock = NSLock()
    private let start = Date()
    private var lines: [String] = []

    var elapsed: Double { Date().timeIntervalSince(start) }

    func note(_ text: String) {
        let line = String(format: "%8.2fs  ", elapsed) + text
        print("chaos: " + line)
        lock.withLock { lines.append(line) }
    }

    var text: String { lock.withLock { lines.joined(separator: "\n") } }
}

/// The two worker processes (active and standby), restarted under new ids when they exit.
final class ChaosWorkers {
    let h: WorkerHarness
    let configFile: String
    let log: ChaosLog
    private(set) var current: [WorkerProcess?] = [nil, nil]
    private(set) var everyProcess: [(id: String, process: WorkerProcess)] = []
    private var incarnation = [0, 0]
    private var ids = ["", ""]
    private var rng: SeededGenerator
    /// Exits nobody asked for, and SIGTERMs that did not end in status 0: each a broken rule.
    private(set) var unexpected: [String] = []

    init(_ h: WorkerHarness, configFile: String, seed: UInt64, log: ChaosLog) {
        self.h = h
        self.configFile = configFile
        self.log = log
        rng = SeededGenerator(seed: seed)
    }

    func start(_ slot: Int) throws {
        incarnation[slot] += 1
        let id = "chaos" + ["A", "B"][slot] + String(format: "%03d", incarnation[slot])
        // Batch sizes vary per start: 1 keeps a user's jobs in many batches, 4096 in few.
        let batch = [1, 16, 256, 4096][Int.random(in: 0..<4, using: &rng)]
        let process = try WorkerProcess(h, workerId: id, configFile: configFile, environment: ["TOKENLEDGER_BATCH_SIZE": "\(batch)"])
        current[slot] = process
        ids[slot] = id
        everyProcess.append((id, process))
        log.note("start \(id) (pid \(process.pid), batch \(batch))")
    }

    func id(_ slot: Int) -> String { ids[slot] }

    /// The slot whose worker holds the lease, read from Redis (nil when unknown or down).
    func activeSlot(_ redis: RedisConnection) -> Int? {
        guard let holder = (try? redis.get(h.keys.lease)).flatMap({ $0 }) else { return nil }
        let text = String(decoding: holder, as: UTF8.self)
        return (0..<2).first { current[$0] != nil && !ids[$0].isEmpty && text.hasPrefix(ids[$0]) }
    }

    /// Restarts any worker that exited on its own, and records that it did.
    func supervise() throws {
        for slot in 0..<2 {
            guard let process = current[slot], !process.process.isRunning else { continue }
            let status = process.process.terminationStatus
            // The error line says why (a multi-line SQL statement may follow it).
            let lines = process.log.split(separator: "\n")
            let why = lines.last { $0.localizedCaseInsensitiveContains("error") } ?? lines.last ?? "(empty log)"
            let tail = String(why.prefix(400))
            unexpected.append("\(ids[slot]) exited on its own with status \(status):\n      \(tail)")
            log.note("\(ids[slot]) EXITED on its own (status \(status)); restarting")
            try start(slot)
        }
    }

    func kill9(_ slot: Int) {
        guard let process = current[slot] else { return }
        process.kill9()
        current[slot] = nil
    }

    /// SIGTERM: the worker finishes the batch in hand and exits 0.
    func terminate(_ slot: Int) {
        guard let process = current[slot] else { return }
        let started = Date()
        let status = process.terminate(timeout: 60)
        current[slot] = nil
        log.note("\(ids[slot]) exited with status \(status) after SIGTERM (\(String(format: "%.1f", Date().timeIntervalSince(started))) s)")
        if status != 0 { unexpected.append("\(ids[slot]) exited with status \(status) after SIGTERM (-1: killed after 60 s)") }
    }

    func signal(_ slot: Int, _ sig: Int32) {
        guard let process = current[slot] else { return }
        kill(process.pid, sig)
    }

    /// Every process gone at once (cleanup after a failure).
    func killAll() {
        for slot in 0..<2 {
            if let process = current[slot], process.process.isRunning {
                kill(process.pid, SIGCONT)
                process.kill9()
            }
            current[slot] = nil
        }
    }

    /// The last lines of each worker's log, newest incarnations and those that exited on their own.
    func logTails(lines: Int = 40) -> String {
        everyProcess.suffix(6).map { entry in
            "--- \(entry.id) (log \(entry.process.logURL.path)), last \(lines) lines:\n"
                + entry.process.log.split(separator: "\n").suffix(lines).joined(separator: "\n")
        }.joined(separator: "\n")
    }
}

/// The ledger's own filesystem: a tmpfs of a fixed size, mounted beside the worker logs, with
/// the ledger file reached through a symlink (SQLite resolves it, so the WAL and shared-memory
/// files live on the tmpfs too).
final class ChaosDisk: @unchecked Sendable {
    let mountPoint: URL
    private(set) var mounted = false

    init(directory: URL) {
        mountPoint = directory.appendingPathComponent("disk")
    }

    /// Mounts the tmpfs; false (with the reason) where mounting is not permitted.
    func mount(megabytes: Int) -> (Bool, String) {
        try? FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        let (status, output) = Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", mountPoint.path])
        mounted = status == 0
        return (mounted, output)
    }

    func unmount() {
        guard mounted else { return }
        _ = Self.run("/bin/umount", ["-l", mountPoint.path])
        mounted = false
    }

    /// Writes a filler file until the filesystem refuses (ENOSPC); returns the bytes written.
    func fill(_ name: String) -> Int {
        let path = mountPoint.appendingPathComponent(name).path
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var total = 0
        for chunk in [1 << 20, 4096, 512] {
            let buffer = [UInt8](repeating: 0, count: chunk)
            while true {
                let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress, chunk) }
                if n <= 0 { break }
                total += n
                if n < chunk { break }
            }
        }
        return total
    }

    func free(_ name: String) {
        unlink(mountPoint.appendingPathComponent(name).path)
    }

    /// Bytes still free on the tmpfs.
    var available: Int {
        var s = statvfs()
        guard statvfs(mountPoint.path, &s) == 0 else { return -1 }
        return Int(s.f_bavail) * Int(s.f_frsize)
    }

    static func run(_ program: String, _ arguments: [String]) -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// Another process on the ledger (the sqlite3 shell) holding its write lock.
enum ChaosLock {
    /// Holds the write lock for `seconds`; with `flicker`, frees it every 0.35 s for an instant,
    /// so that the worker's writes pass now and then.
    static func hold(path: String, seconds: Double, flicker: Bool) throws {
        let shell = try StorageFailureTests.SQLiteShell(path, ".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 1;\n")
        let deadline = Date().addingTimeInterval(seconds)
        if flicker {
            while Date() < deadline {
                usleep(350_000)
                shell.input.fileHandleForWriting.write(Data("COMMIT;\nBEGIN IMMEDIATE;\nSELECT 1;\n".utf8))
            }
        } else {
            let left = deadline.timeIntervalSinceNow
            if left > 0 { usleep(useconds_t(left * 1_000_000)) }
        }
        shell.release()
    }
}
