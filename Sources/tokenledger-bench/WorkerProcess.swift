import Foundation

/// The worker under test: `tokenledger worker` started as a child process with explicit flags,
/// so that its peak resident memory can be read from `/proc/<pid>/status` before it stops.
final class WorkerProcess {
    let process = Process()
    let logPath: String
    let startedNs: UInt64

    /// Starts `binary worker --redis-url … --database … --prefix … --http <http> --batch-size …
    /// --worker-id …`; its log (stderr) goes to `logPath`. `http` is `off` or `host:port` (then
    /// its `/metrics` can be read, see `WorkerBudget`).
    init(binary: String, redisURL: String, database: String, prefix: String, workerId: String, batchSize: Int,
         logLevel: String, logPath: String, http: String = "off", extraArguments: [String] = [],
         environment: [String: String] = [:]) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError("no worker executable at \(binary): build it (swift build -c release) or pass --worker-bin")
        }
        self.logPath = logPath
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["worker", "--redis-url", redisURL, "--database", database, "--prefix", prefix,
                             "--http", http, "--batch-size", String(batchSize), "--worker-id", workerId,
                             "--log-level", logLevel] + extraArguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        startedNs = System.nowNs()
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    var isRunning: Bool { process.isRunning }

    /// Peak (VmHWM) and current (VmRSS) resident memory, while it runs.
    var memory: System.Memory? { System.memory(pid: String(pid)) }

    /// SIGTERM, then waits for the exit; returns the exit status. SIGKILL after `timeout` seconds.
    @discardableResult
    func stop(timeout: Double = 30) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        process.terminate()
        let deadline = System.nowNs() + UInt64(timeout * 1e9)
        while process.isRunning && System.nowNs() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// The last lines of its log, for an error message.
    func logTail(_ lines: Int = 20) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    deinit { if process.isRunning { stop(timeout: 5) } }
}

/// A profiler attached to the worker (`perf record … -p {pid}`), stopped with SIGINT.
final class Profiler {
    let process = Process()

    /// Runs `command` through the shell with `{pid}` replaced by the worker's pid and `{tids}` by
    /// its threads' ids, comma-separated (for `perf trace -s --tid {tids}`, which follows threads).
    init(command: String, pid: Int32, logPath: String) throws {
        let tids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).sorted().joined(separator: ",")
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "exec " + command.replacingOccurrences(of: "{pid}", with: String(pid))
            .replacingOccurrences(of: "{tids}", with: tids)]
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    /// SIGINT (perf writes its data and exits), then waits.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGINT) }
        process.waitUntilExit()
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command to completion and returns its exit status and output (stdout and stderr).
func runTool(_ binary: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary)
    p.arguments = arguments
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
