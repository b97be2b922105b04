import Foundation
import Ledger
import LedgerModel
@testable import OperatorHTTP
import Redis
import XCTest

/// The overview's jobs per second, per partition, sampled from real ledger files: refusals,
/// holds and queries with an id count as jobs though they write no entry, and a merge that
/// prunes the job log behind its watermark does not make the count go back.
final class ConsoleRateTests: XCTestCase {
    func testJobsPerSecondArePerPartitionAndCountJobsWithoutEntries() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("console-rate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let paths = [dir.appendingPathComponent("p0.sqlite").path, dir.appendingPathComponent("p1.sqlite").path]
        let ledgers = try paths.map { try Ledger(path: $0) }
        XCTAssertTrue(try ledgers[0].apply([Command(jobId: "r-open", operation: .open(userId: "ra"))])[0].success)

        let settings = try ConsoleSettings(
            token: Array("rate-test-token-0123456789".utf8),
            partitions: paths.enumerated().map { k, path in
                ConsolePartition(index: k, jobsKey: "x:{\(k)}:jobs", deadKey: "x:{\(k)}:dead", leaseKey: "x:{\(k)}:lease",
                                 processingListsKey: "x:{\(k)}:workers", processingKeyPrefix: "x:{\(k)}:processing:", ledgerPath: path)
            },
            ledgerConfig: LedgerConfig(), partitionOf: { _ in 0 })
        let reads = ConsoleReads(settings: settings, redis: try RedisTarget(url: "redis://127.0.0.1:1/0"))
        try await reads.run { $0.sample() }

        // Partition 0: one entry, one refusal, one hold and one query with an id (4 jobs, 1 entry).
        let results = try ledgers[0].apply([
            Command(jobId: "r-debit", operation: .debit(userId: "ra", operationType: "x", amount: 5, metadata: nil)),
            Command(jobId: "r-refused", operation: .debit(userId: "ra", operationType: "x", amount: 1_000_000, metadata: nil)),
            Command(jobId: "r-hold", operation: .hold(userId: "ra", amount: 3, operation: nil, expiresIn: nil, metadata: nil)),
            Command(jobId: "r-query", operation: .balance(userId: "ra")),
        ])
        XCTAssertEqual(results.map(\.success), [true, false, true, true])
        try ledgers[0].mergeAll()  // prunes job_log behind the watermark
        try await Task.sleep(for: .milliseconds(200))
        try await reads.run { $0.sample() }

        let rates = reads.sampler.rates()
        XCTAssertEqual(rates.count, 1)
        let perPartition = try XCTUnwrap(rates.first).perPartition
        XCTAssertEqual(perPartition.count, 2)
        XCTAssertGreaterThan(perPartition[0], 0, "partition 0 applied jobs")
        XCTAssertEqual(perPartition[1], 0, "partition 1 applied none")
        // 4 jobs in at least 0.2 s and (on any machine) well under 40 s: the count is jobs, not entries.
        XCTAssertLessThanOrEqual(perPartition[0], 4 / 0.2)
        XCTAssertGreaterThan(perPartition[0], 4.0 / 40)
        XCTAssertEqual(try LedgerReader(path: paths[0]).appliedJobCount(), 5, "open + the four jobs")
        XCTAssertEqual(try LedgerReader(path: paths[1]).appliedJobCount(), 0)
    }
}
