import Foundation
import TestSupport
import XCTest
@testable import Worker

/// Each batch's time budget on `/metrics` (`tokenledger_batch_seconds{phase, thread}`), which the
/// drain benchmark reads: every loop phase once per batch, and together never more than the
/// loop's wall time.
final class BatchBudgetTests: XCTestCase {
    static let loopPhases = ["chores", "take", "send", "apply", "commit", "checkpoint", "encode", "merge", "other"]

    /// `name{labels}` -> value for the budget's sums and counts.
    func budget(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("tokenledger_batch_seconds_sum") || line.hasPrefix("tokenledger_batch_seconds_count") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]),
                  let phase = line.firstRange(of: #"phase=""#).map({ line[$0.upperBound...].prefix { $0 != "\"" } }),
                  let thread = line.firstRange(of: #"thread=""#).map({ line[$0.upperBound...].prefix { $0 != "\"" } })
            else { continue }
            samples["\(line.hasPrefix("tokenledger_batch_seconds_sum") ? "sum" : "count") \(thread)/\(phase)"] = value
        }
        return samples
    }

    func testEveryBatchHasATimeBudgetWithinTheLoopsWallTime() async throws {
        let h = try WorkerHarness()
        let port = TestEnvironment.freePort()
        let started = Date()
        let worker = try WorkerProcess(h, workerId: "budget", extraArguments: ["--http", "127.0.0.1:\(port)"])
        defer { _ = worker.terminate() }
        let base = "http://127.0.0.1:\(port)"
        for _ in 0..<100 {
            if (try? await OperatorEndpointsTests.fetch("\(base)/healthz")) != nil { break }
            try await Task.sleep(for: .milliseconds(50))
        }

        XCTAssertEqual(try h.call(["type": "open", "id": "b0", "userId": "bea"]).bool("success"), true)
        // One job per batch: each call waits for its reply.
        for i in 1...20 {
            XCTAssertEqual(try h.call(["type": "charge", "id": "b\(i)", "userId": "bea", "operation": "chatgpt_message"]).bool("success"), true)
        }
        var samples: [String: Double] = [:]
        for _ in 0..<50 {
            samples = budget(try await OperatorEndpointsTests.fetch("\(base)/metrics").1)
            if (samples["count loop/take"] ?? 0) >= 21 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let wall = Date().timeIntervalSince(started)
        let batches = try XCTUnwrap(samples["count loop/take"], "\(samples)")
        XCTAssertGreaterThanOrEqual(batches, 21, "one budget per batch")
        for phase in Self.loopPhases {
            XCTAssertEqual(samples["count loop/\(phase)"], batches, "every loop phase is recorded once per batch: \(phase)")
        }
        XCTAssertGreaterThan(samples["sum loop/commit"] ?? 0, 0, "the COMMIT's fsync is measured")
        XCTAssertGreaterThan(samples["sum loop/apply"] ?? 0, 0, "the statements are measured")
        XCTAssertGreaterThan(samples["count redis/decode"] ?? 0, 0, "the Redis thread's decoding is measured")
        let total = Self.loopPhases.reduce(0) { $0 + (samples["sum loop/\($1)"] ?? 0) }
        XCTAssertGreaterThan(total, 0)
        XCTAssertLessThan(total, wall, "the phases of the loop thread add up to at most its wall time: nothing is counted twice")
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }

    /// Metrics are touched once per batch, not once per job: 40 jobs queued before the worker
    /// starts are taken as one batch, counted 40 times in `tokenledger_jobs_total` (and events)
    /// but timed once in `tokenledger_job_duration_seconds` per type.
    func testMetricsAreRecordedOncePerBatch() async throws {
        let h = try WorkerHarness()
        _ = try h.push(["type": "open", "id": "p0", "userId": "pia"])
        for i in 1...40 {
            _ = try h.push(["type": "credit", "id": "p\(i)", "userId": "pia", "operationType": "bonus", "amount": 1])
        }
        let port = TestEnvironment.freePort()
        let worker = try WorkerProcess(h, workerId: "perbatch", extraArguments: ["--http", "127.0.0.1:\(port)"])
        defer { _ = worker.terminate() }
        try h.waitUntilDrained(log: worker.log)
        var samples: [String: Double] = [:]
        for _ in 0..<50 {
            let text = (try? await OperatorEndpointsTests.fetch("http://127.0.0.1:\(port)/metrics").1) ?? ""
            samples = OperatorEndpointsTests.samples(text)
            if samples[#"tokenledger_jobs_total{type="credit",outcome="success"}"#] == 40 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTAssertEqual(samples[#"tokenledger_jobs_total{type="credit",outcome="success"}"#], 40, worker.log)
        XCTAssertEqual(samples[#"tokenledger_jobs_total{type="open",outcome="success"}"#], 1)
        XCTAssertEqual(samples["tokenledger_batch_size_count"], 1, "the 41 jobs were one batch")
        XCTAssertEqual(samples[#"tokenledger_job_duration_seconds_count{type="credit"}"#], 1, "one sample per batch and type")
        XCTAssertEqual(samples[#"tokenledger_job_duration_seconds_count{type="open"}"#], 1)
        XCTAssertGreaterThanOrEqual(samples["tokenledger_events_total"] ?? 0, 41, "a job.applied per job, counted per outbox")
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }
}
