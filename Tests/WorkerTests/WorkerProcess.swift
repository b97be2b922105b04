import Foundation
import TestSupport
import XCTest

/// The real `tokenledger worker` executable, started and killed like an operator would.
///
/// Found through `TOKENLEDGER_BIN`, else beside the test bundle in the build folder
/// (`swift build --build-tests` builds both).
final class WorkerProcess {
    let process = Process()
    let logURL: URL

    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["TOKENLEDGER_BIN"] { return path }
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [products, products.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("tokenledger").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return products.appendingPathComponent("tokenledger").path
    }

    init(_ h: WorkerHarness, workerId: String, redisURL: String? = nil, extraArguments: [String] = [],
         configFile: String? = nil, environment: [String: String] = [:], logName: String? = nil) throws {
        logURL = h.directory.appendingPathComponent("\(logName ?? workerId).log")
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.binary)
        var arguments = ["worker", "--redis-url", redisURL ?? h.redisURL, "--database", h.databasePath,
                         "--prefix", h.keys.prefix, "--http", "off", "--worker-id", workerId]
        if let configFile { arguments += ["--config", configFile] }
        process.arguments = arguments + extraArguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        let log = try FileHandle(forWritingTo: logURL)
        // The worker logs to standard error only.
        process.standardOutput = FileHandle.nullDevice
        process.standardError = log
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// Whether the process has a handler for SIGTERM (`SigCgt` in /proc/<pid>/status).
    var catchesSIGTERM: Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigCgt:") }),
              let mask = UInt64(line.dropFirst("SigCgt:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        return mask & (1 << (UInt64(SIGTERM) - 1)) != 0
    }

    func kill9() {
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    /// Sends SIGTERM, once the process has started far enough to catch it (a signal that comes
    /// while the dynamic loader still runs kills any process), and returns the exit status.
    func terminate(timeout: Double = 20) -> Int32 {
        let started = Date().addingTimeInterval(10)
        while process.isRunning && !catchesSIGTERM && Date() < started { usleep(2_000) }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill9(); return -1 }
        return process.terminationStatus
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }
}

/// Runs `tokenledger` with arguments and returns (status, output).
func runTokenLedger(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: WorkerProcess.binary)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { $1 }
    process.environment = env
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
