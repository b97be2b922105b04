import Foundation
import XCTest
import GRDB
import Ledger

/// A rough throughput probe, not a test: runs only with LEDGER_BENCH=1 (build with -c release).
final class LedgerBench: XCTestCase {
    func testChargeThroughput() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["LEDGER_BENCH"] == "1" else { throw XCTSkip("set LEDGER_BENCH=1") }
        let users = Int(env["BENCH_USERS"] ?? "") ?? 10_000
        let jobs = Int(env["BENCH_JOBS"] ?? "") ?? 200_000
        let batch = Int(env["BENCH_BATCH"] ?? "") ?? 512
        var config = LedgerConfig()
        config.walAutoCheckpointPages = Int(env["BENCH_AUTOCHECKPOINT"] ?? "") ?? 1000
        if env["BENCH_SYNC"] == "normal" { config.synchronous = .normal }
        if env["BENCH_FRAMES"] == "1" { config.walAutoCheckpointPages = 0 }  // the WAL then keeps every frame
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ledger = try Ledger(path: dir.appendingPathComponent("b.sqlite").path, config: config)
        for start in stride(from: 0, to: users, by: 1000) {
            _ = try ledger.apply((start..<min(users, start + 1000)).map {
                Command(jobId: "open-\($0)", operation: .open(userId: "user-\($0)"))
            })
            _ = try ledger.apply((start..<min(users, start + 1000)).map {
                Command(jobId: "credit-\($0)", operation: .credit(userId: "user-\($0)", operationType: "seed", amount: 1_000_000, metadata: nil))
            })
        }
        if env["BENCH_DROP_HISTORY_INDEX"] == "1" {  // to measure what the index costs
            let q = try DatabaseQueue(path: dir.appendingPathComponent("b.sqlite").path)
            try q.write { try $0.execute(sql: "DROP INDEX entries_by_account") }
            try q.close()
        }
        let stop = ManagedAtomicFlag()
        let checkpointer = Thread {
            while !stop.isSet { _ = try? ledger.checkpoint(); usleep(20_000) }
        }
        let countFrames = env["BENCH_FRAMES"] == "1"
        if countFrames { _ = try ledger.checkpoint() } else if config.walAutoCheckpointPages == 0 { checkpointer.start() }
        var rng = SystemRandomNumberGenerator()
        let ordered = env["BENCH_IDS"] == "ordered"  // time-ordered ids, as ULIDs or UUIDv7 are
        let commands: [Command] = (0..<jobs).map { i in
            Command(jobId: ordered ? "01J\(String(100_000_000_000 + i))-\(UUID().uuidString.prefix(8))" : UUID().uuidString, operation: .charge(
                userId: "user-\(Int.random(in: 0..<users, using: &rng))", operation: "chatgpt_message", metadata: nil))
        }
        var u0 = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u0)
        let t0 = Date()
        var applied = 0
        for start in stride(from: 0, to: jobs, by: batch) {
            applied += try ledger.apply(Array(commands[start..<min(jobs, start + batch)])).count
        }
        let seconds = Date().timeIntervalSince(t0)
        var u1 = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u1)
        func secs(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        let cpu = secs(u1.ru_utime) - secs(u0.ru_utime) + secs(u1.ru_stime) - secs(u0.ru_stime)
        let user = secs(u1.ru_utime) - secs(u0.ru_utime)
        print("BENCH cpu \(Int(cpu / Double(applied) * 1e9)) ns/job, of which user \(Int(user / Double(applied) * 1e9))")
        if countFrames { print("BENCH wal frames per batch: \(Double(try ledger.checkpoint().walFrames) / Double(jobs / batch))") }
        stop.set()
        let wal = (try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("b.sqlite-wal").path)[.size] as? Int) ?? 0
        print("BENCH wal file \(wal / 1_048_576) MiB at the end")
        print("BENCH users=\(users) jobs=\(applied) batch=\(batch) autocheckpoint=\(config.walAutoCheckpointPages)  sync=\(config.synchronous) ids=\(ordered ? "ordered" : "random"): \(Int(Double(applied) / seconds)) jobs/s")
    }
}

final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
