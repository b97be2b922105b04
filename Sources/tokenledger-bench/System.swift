import Foundation

/// What the bench reads from the operating system: a monotonic clock, peak and current resident
/// memory of a process (`/proc/<pid>/status`), the load average, and where its files go.
enum System {
    /// Monotonic nanoseconds (CLOCK_MONOTONIC), for intervals only.
    @inline(__always)
    static func nowNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Seconds since `startNs`.
    static func seconds(since startNs: UInt64) -> Double {
        Double(nowNs() - startNs) / 1e9
    }

    /// Sleeps until the monotonic clock reads `ns` (returns at once if it has passed).
    static func sleep(untilNs ns: UInt64) {
        var ts = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
    }

    struct Memory {
        /// Peak resident set (VmHWM), bytes.
        var peak = 0
        /// Current resident set (VmRSS), bytes, and its anonymous and file-backed parts.
        var current = 0
        var anonymous = 0
        var file = 0

        var summary: String {
            String(format: "now %.0f MB: %.0f anon + %.0f file", Double(current) / 1_048_576, Double(anonymous) / 1_048_576,
                   Double(file) / 1_048_576)
        }
    }

    /// VmHWM and VmRSS of `pid` ("self" for this process), or nil if the process is gone.
    static func memory(pid: String = "self") -> Memory? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        var m = Memory()
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count >= 2, let kb = Int(parts[1]) else { continue }
            switch parts[0] {
            case "VmHWM:": m.peak = kb * 1024
            case "VmRSS:": m.current = kb * 1024
            case "RssAnon:": m.anonymous = kb * 1024
            case "RssFile:": m.file = kb * 1024
            default: break
            }
        }
        return m
    }

    /// CPU seconds (user, system) a process has used, all its threads together.
    static func cpu(pid: String = "self") -> (user: Double, system: Double)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (u / tick, s / tick)
    }

    /// Bytes this process (all its threads) handed to write system calls (`wchar` of
    /// `/proc/<pid>/io`): for the ledger, WAL frames plus checkpoint copies. Unlike time, it does
    /// not depend on what else the machine runs.
    static func bytesWritten(pid: String = "self") -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("wchar:") {
            return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }

    /// Voluntary context switches (blocking waits: fsync, socket reads) of all threads of a process.
    static func voluntarySwitches(pid: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var total = 0
        for t in tasks {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/status", encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix("voluntary_ctxt_switches:") {
                total += Int(line.split(separator: "\t").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "") ?? 0
            }
        }
        return total
    }

    /// Resets this process's peak resident set to its current one (Linux: `5 > clear_refs`), so
    /// that a scenario's peak is its own and not the previous scenario's.
    static func resetPeakMemory() {
        if let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") {
            h.write(Data("5".utf8))
            try? h.close()
        }
    }

    /// The 1-minute load average and the number of online cores, as `load 1.23/2`.
    static func load() -> String {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?"
        let one = text.split(separator: " ").first.map(String.init) ?? "?"
        return "load \(one)/\(ProcessInfo.processInfo.activeProcessorCount)"
    }

    /// The folder this executable lives in (the `tokenledger` binary is built beside it).
    static func executableFolder() -> String {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: path).deletingLastPathComponent().path
    }

    /// Size of a file and of its `-wal`, bytes (0 when missing).
    static func fileSize(_ path: String) -> Int {
        func size(_ p: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: p))?[.size] as? Int) ?? 0 }
        return size(path) + size(path + "-wal")
    }

    /// Removes a ledger file and its WAL and shared-memory companions.
    static func removeLedger(_ path: String) {
        for suffix in ["", "-wal", "-shm", "-journal"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }
}

/// A value shared between the bench's threads under a lock.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        return try body(&value)
    }
    var get: Value { withLock { $0 } }
}

/// Runs `body` on a thread of its own (blocking Redis calls must not hold the cooperative pool)
/// and lets the caller wait for it.
final class BenchThread: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let thread: Thread

    init(name: String, _ body: @escaping @Sendable () -> Void) {
        let done = self.done
        thread = Thread {
            body()
            done.signal()
        }
        thread.name = name
        thread.stackSize = 8 << 20
        thread.start()
    }

    func join() { done.wait() }
}
