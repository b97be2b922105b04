import Foundation
import GRDB
import XCTest
@testable import Ledger
import LedgerModel

/// The job-id filter: never a false "not stored", a bounded false-positive rate, and duplicates
/// found wherever the first result is (the batch, the tail, `jobs`, after a reopen, after another
/// writer), with the filter answering and with every lookup forced through it to the probe.
final class JobIdFilterTests: XCTestCase {
    func testNoIdInsertedIsEverReportedAbsentAndFalsePositivesStayRare() {
        let seed = UInt64.random(in: 1...UInt64.max)
        print("JobIdFilterTests seed: \(seed)")
        var rng = SeededGenerator(seed: seed)
        let capacity = 100_000
        var filter = JobIdFilter(expectedIds: capacity, seed: rng.next())
        func uuid() -> String { UUID(uuid: withUnsafeBytes(of: (rng.next(), rng.next())) { $0.load(as: uuid_t.self) }).uuidString }
        let stored = (0..<capacity).map { _ in uuid() }
        for id in stored { filter.insert(id) }
        for id in stored { XCTAssertTrue(filter.mayContain(id), "seed \(seed): \(id)") }
        let probes = 200_000
        var positives = 0
        for _ in 0..<probes where filter.mayContain(uuid()) { positives += 1 }
        let rate = Double(positives) / Double(probes)
        print("JobIdFilterTests: false positives at capacity \(rate * 100) %, \(Double(filter.bytes) / Double(capacity)) bytes per id")
        XCTAssertLessThan(rate, 0.02, "seed \(seed)")
        XCTAssertEqual(filter.segmentCount, 1)
        XCTAssertLessThanOrEqual(filter.bytes, capacity * JobIdFilter.bitsPerId / 8 + 64)
        // Past its capacity it adds a segment, and still forgets nothing.
        let more = (0..<capacity).map { _ in uuid() }
        for id in more { filter.insert(id) }
        XCTAssertEqual(filter.segmentCount, 2)
        for id in stored + more { XCTAssertTrue(filter.mayContain(id), "seed \(seed): \(id)") }
        // Identity is bytes: NFC and NFD are two ids.
        var bytes = JobIdFilter(expectedIds: 10, seed: 1)
        bytes.insert("caf\u{e9}")
        XCTAssertTrue(bytes.mayContain("caf\u{e9}"))
        XCTAssertEqual(JobIdFilter.hash(UnsafeRawBufferPointer(start: nil, count: 0), seed: 3),
                       JobIdFilter.hash(UnsafeRawBufferPointer(start: nil, count: 0), seed: 3))
    }

    private func charge(_ id: String, _ user: String = "u") -> Command {
        Command(jobId: id, operation: .charge(userId: user, operation: "chatgpt_message", metadata: nil))
    }

    /// Every place a first result can be, asked again: each answers `duplicate: true` with the
    /// first result, and the balance moved once per distinct id.
    private func checkDuplicatesEverywhere(saturated: Bool) throws {
        let f = try Fixture(config: LedgerConfig(mergeThresholdRows: 1_000_000, mergeSliceRows: 64))
        _ = try f.ledger.apply([Command(jobId: "open", operation: .open(userId: "u"))])
        _ = try f.ledger.apply([Command(jobId: "credit", operation: .credit(userId: "u", operationType: "t", amount: 10_000, metadata: nil))])
        if saturated { try f.ledger.writer.read { _ in f.ledger.tail.saturateFilter() } }
        // In one batch.
        let twice = try f.ledger.apply([charge("a"), charge("a")])
        XCTAssertEqual(twice.map(\.duplicate), [false, true])
        XCTAssertEqual(twice[1].json, twice[0].json)
        // Merged into `jobs` (and pruned from `job_log`).
        let merged = try f.ledger.apply((0..<50).map { charge("m\($0)") })
        try f.ledger.mergeAll()
        XCTAssertEqual(try f.ledger.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM job_log") }, 0)
        // In the tail.
        let tail = try f.ledger.apply((0..<50).map { charge("t\($0)") })
        let again = try f.ledger.apply((0..<50).map { charge("m\($0)") } + (0..<50).map { charge("t\($0)") } + [charge("a")])
        XCTAssertTrue(again.allSatisfy(\.duplicate))
        XCTAssertEqual(again.map(\.json), (merged + tail).map(\.json) + [twice[0].json])
        let balance = try f.balance("u")
        XCTAssertEqual(balance, 100 + 10_000 - 5 * 101)
        // After a reopen (the filter is rebuilt from `jobs` and `job_log`).
        f.ledger = try Ledger(path: f.path, config: LedgerConfig(mergeThresholdRows: 1_000_000), clock: f.clock)
        if saturated { try f.ledger.writer.read { _ in f.ledger.tail.saturateFilter() } }
        let reopened = try f.ledger.apply((0..<50).map { charge("m\($0)") } + (0..<50).map { charge("t\($0)") } + [charge("a")])
        XCTAssertTrue(reopened.allSatisfy(\.duplicate))
        XCTAssertEqual(reopened.map(\.json), again.map(\.json))
        XCTAssertEqual(try f.balance("u"), balance)
        // A refund finds its charge (a lookup of another job's id) through the filter too.
        let refund = try f.ledger.apply([Command(jobId: "r", operation: .refund(userId: "u", refundOf: "m3", amount: nil, metadata: nil))])[0]
        XCTAssertTrue(refund.success, refund.json)
        let status = try f.ledger.jobFilterStatus
        if saturated {
            XCTAssertEqual(status.skippedLookups, 0, "a saturated filter lets every lookup through")
            XCTAssertGreaterThan(status.falsePositives, 0)
        } else {
            XCTAssertGreaterThan(status.skippedLookups, 0)
        }
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testDuplicatesAreFoundInTheBatchTheTailTheMergedIndexAndAfterAReopen() throws {
        try checkDuplicatesEverywhere(saturated: false)
    }

    func testAFilterThatSaysMaybeForEveryIdStillAppliesNewJobsOnceAndFindsDuplicates() throws {
        try checkDuplicatesEverywhere(saturated: true)
    }

    func testNewIdsSkipTheProbe() throws {
        let f = try Fixture(config: LedgerConfig(mergeThresholdRows: 1_000_000))
        try f.run(.open(userId: "u"))
        try f.ledger.mergeAll()
        let before = try f.ledger.jobFilterStatus
        _ = try f.ledger.apply((0..<2_000).map { _ in charge(UUID().uuidString) })
        let after = try f.ledger.jobFilterStatus
        XCTAssertGreaterThanOrEqual(after.skippedLookups - before.skippedLookups, 1_950, "\(after)")
        XCTAssertEqual(after.builds, 1, "built once, at open")
    }

    /// Another connection writes the file (a worker that took over while this one stood fenced,
    /// a second process): its job ids must reach this writer's filter before its next lookup.
    func testIdsWrittenByAnotherWriterAreDuplicatesHereWithAndWithoutItsPrune() throws {
        let f = try Fixture(config: LedgerConfig(mergeThresholdRows: 1_000_000))
        try f.run(.open(userId: "u"))
        try f.run(.credit(userId: "u", operationType: "t", amount: 10_000, metadata: nil))
        let first = f.ledger
        // The other writer appends only: this one catches up from `job_log`.
        let other = try Ledger(path: f.path, config: LedgerConfig(mergeThresholdRows: 1_000_000), clock: f.clock)
        let appended = try other.apply((0..<40).map { charge("o\($0)") })
        XCTAssertEqual(try first.apply((0..<40).map { charge("o\($0)") }).map(\.json), appended.map(\.json))
        XCTAssertEqual(try first.jobFilterStatus.builds, 1, "caught up from job_log, no scan of jobs")
        // The other writer appends, merges and prunes: the ids are only in `jobs` now.
        let merged = try other.apply((0..<40).map { charge("p\($0)") })
        try other.mergeAll()
        XCTAssertEqual(try other.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM job_log") }, 0)
        let replayed = try first.apply((0..<40).map { charge("p\($0)") })
        XCTAssertTrue(replayed.allSatisfy(\.duplicate))
        XCTAssertEqual(replayed.map(\.json), merged.map(\.json))
        XCTAssertEqual(try first.jobFilterStatus.builds, 2, "rebuilt from jobs")
        XCTAssertEqual(try f.balance("u"), 100 + 10_000 - 5 * 80)
        // And the other writer sees this one's new ids.
        let mine = try first.apply([charge("mine")])
        XCTAssertEqual(try other.apply([charge("mine")]).map(\.json), mine.map(\.json))
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    /// A batch that rolls back leaves its ids in the filter (harmless: a probe) but must not make
    /// the filter claim to cover a seq it never saw committed.
    func testARolledBackBatchLeavesNoGapInWhatTheFilterCovers() throws {
        let f = try Fixture(config: LedgerConfig(mergeThresholdRows: 1_000_000))
        try f.run(.open(userId: "u"))
        try f.run(.credit(userId: "u", operationType: "t", amount: 10_000, metadata: nil))
        let first = f.ledger
        let tamper = try DatabaseQueue(path: f.path)
        try tamper.write { try $0.execute(sql: """
            CREATE TRIGGER failing BEFORE INSERT ON job_log WHEN NEW.job_id = 'boom' BEGIN SELECT RAISE(ABORT, 'injected'); END;
            """) }
        XCTAssertThrowsError(try first.apply([charge("x1"), charge("x2"), charge("boom")]))
        try tamper.write { try $0.execute(sql: "DROP TRIGGER failing") }
        try tamper.close()
        // Another writer now stores x1 and x2 (the seqs the rolled-back batch had used) and
        // merges and prunes them.
        let other = try Ledger(path: f.path, config: LedgerConfig(mergeThresholdRows: 1_000_000), clock: f.clock)
        let stored = try other.apply([charge("y1"), charge("y2"), charge("y3")])
        try other.mergeAll()
        let replayed = try first.apply([charge("y1"), charge("y2"), charge("y3")])
        XCTAssertTrue(replayed.allSatisfy(\.duplicate))
        XCTAssertEqual(replayed.map(\.json), stored.map(\.json))
        XCTAssertEqual(try f.balance("u"), 100 + 10_000 - 15)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    /// Past `LedgerTail.inlineBuildIds` the scan of `jobs` runs in the background: the open does
    /// not wait, every lookup probes until it is installed, and an id appended meanwhile is kept.
    func testALargeLedgersFilterIsBuiltInTheBackgroundWhileLookupsProbe() throws {
        let saved = LedgerTail.inlineBuildIds
        LedgerTail.inlineBuildIds = 0
        defer { LedgerTail.inlineBuildIds = saved }
        let f = try Fixture(config: LedgerConfig(mergeThresholdRows: 1_000_000))
        try f.run(.open(userId: "u"))
        try f.run(.credit(userId: "u", operationType: "t", amount: 10_000, metadata: nil))
        let first = try f.ledger.apply((0..<100).map { charge("b\($0)") })
        try f.ledger.mergeAll()
        f.ledger = try Ledger(path: f.path, config: LedgerConfig(mergeThresholdRows: 1_000_000), clock: f.clock)
        // Whether or not the scan has finished yet, every stored id answers as a duplicate.
        let early = try f.ledger.apply((0..<100).map { charge("b\($0)") })
        XCTAssertTrue(early.allSatisfy(\.duplicate))
        XCTAssertEqual(early.map(\.json), first.map(\.json))
        let during = try f.ledger.apply([charge("during")])
        let deadline = Date().addingTimeInterval(60)
        while try !f.ledger.jobFilterStatus.complete {
            XCTAssertLessThan(Date(), deadline, "the background build never completed")
            if Date() > deadline { return }
            usleep(20_000)
        }
        let late = try f.ledger.apply((0..<100).map { charge("b\($0)") } + [charge("during")])
        XCTAssertTrue(late.allSatisfy(\.duplicate))
        XCTAssertEqual(late.map(\.json), first.map(\.json) + during.map(\.json))
        let before = try f.ledger.jobFilterStatus
        _ = try f.ledger.apply((0..<200).map { _ in charge(UUID().uuidString) })
        let after = try f.ledger.jobFilterStatus
        XCTAssertGreaterThanOrEqual(after.skippedLookups - before.skippedLookups, 190, "\(after)")
        XCTAssertEqual(after.builds, 1)
        XCTAssertEqual(try f.balance("u"), 100 + 10_000 - 5 * 301)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }
}
