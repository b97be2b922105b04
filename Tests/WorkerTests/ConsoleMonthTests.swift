import Foundation
import Ledger
import LedgerModel
@testable import OperatorHTTP
import Redis
import XCTest

/// The console's month figures over a real ledger file: a month larger than one step is answered
/// at once with what one step counted, and read on in the background until every entry is counted.
final class ConsoleMonthTests: XCTestCase {
    func testALargeMonthIsReadOnInTheBackgroundInBoundedSteps() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("console-month-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("ledger.sqlite").path
        let ledger = try Ledger(path: path)
        var commands = [Command(jobId: "m-open", operation: .open(userId: "mo"))]
        commands.append(Command(jobId: "m-seed", operation: .credit(userId: "mo", operationType: "seed", amount: 10_000, metadata: nil)))
        for i in 0..<40 {
            commands.append(Command(jobId: "m-\(i)", operation: .debit(userId: "mo", operationType: "summary", amount: 2, metadata: nil)))
        }
        XCTAssertTrue(try ledger.apply(commands).allSatisfy(\.success))
        try ledger.mergeAll()

        let settings = try ConsoleSettings(
            token: Array("month-test-token-0123456789".utf8),
            partitions: [ConsolePartition(index: 0, jobsKey: "x:jobs", deadKey: "x:dead", leaseKey: "x:lease", processingListsKey: "x:workers",
                                          processingKeyPrefix: "x:processing:", ledgerPath: path)],
            ledgerConfig: LedgerConfig(), partitionOf: { _ in 0 })
        let reads = ConsoleReads(settings: settings, redis: try RedisTarget(url: "redis://127.0.0.1:1/0"))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let now = Date()
        let start = calendar.date(from: calendar.dateComponents([.year, .month], from: now))!
        let end = calendar.date(byAdding: .month, value: 1, to: start)!
        let (startMs, endMs) = (LedgerTime.milliseconds(start), LedgerTime.milliseconds(end))

        let first = try await reads.run { try $0.figures(startMs: startMs, endMs: endMs, maxEntries: 5) }
        XCTAssertTrue(first.truncated)
        XCTAssertEqual(first.entriesRead, 5, "one step answers the page")
        let deadline = Date().addingTimeInterval(30)
        var kept: PeriodFigures?
        repeat {
            kept = await (try? reads.run { $0.kept(partition: 0, startMs: startMs) }) ?? nil
            if kept?.truncated == false { break }
            try await Task.sleep(for: .milliseconds(20))
        } while Date() < deadline
        let done = try XCTUnwrap(kept)
        XCTAssertFalse(done.truncated, "read on to the end")
        let whole = try LedgerReader(path: path).figures(startMs: startMs, endMs: endMs, maxEntries: 1000)
        XCTAssertEqual(done.entriesRead, whole.entriesRead)
        XCTAssertEqual(done.spentByDay, whole.spentByDay)
        XCTAssertEqual(done.spentByDay.values.reduce(0) { $0 + ($1[Array("summary".utf8)] ?? 0) }, 80)
        XCTAssertEqual(done.creditedByDay, whole.creditedByDay)

        // Later pages read only what was written since.
        XCTAssertTrue(try ledger.apply([Command(jobId: "m-late", operation: .debit(userId: "mo", operationType: "summary", amount: 1, metadata: nil))])[0].success)
        let later = try await reads.run { try $0.figures(startMs: startMs, endMs: endMs, maxEntries: 5) }
        XCTAssertFalse(later.truncated)
        XCTAssertEqual(later.entriesRead, whole.entriesRead + 1)
    }
}
