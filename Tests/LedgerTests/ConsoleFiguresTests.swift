import Foundation
import XCTest
@testable import Ledger
import LedgerModel

/// The console's month figures, read from `LedgerReader` in bounded steps.
final class ConsoleFiguresTests: XCTestCase {
    /// Entries of January and February: the January figures count only January's, by day and
    /// operation type, and reading them 3 entries at a time, each step from where the last one
    /// stopped, adds up to the figures of one read.
    func testMonthFiguresAreExactAndCarryOnFromWhereAReadStopped() throws {
        let f = try Fixture(start: "2026-01-01T09:00:00.000Z")
        try f.run(.open(userId: "ann"))
        try f.run(.credit(userId: "ann", operationType: "bonus", amount: 100, metadata: nil))
        try f.run(.debit(userId: "ann", operationType: "summary", amount: 7, metadata: nil))
        f.set("2026-01-02T09:00:00.000Z")
        try f.run(.debit(userId: "ann", operationType: "summary", amount: 3, metadata: nil))
        try f.run(.debit(userId: "ann", operationType: "image", amount: 5, metadata: nil))
        try f.run(.debit(userId: "ann", operationType: "summar\u{0301}y", amount: 1, metadata: nil))
        f.set("2026-02-01T00:00:00.000Z")
        try f.run(.debit(userId: "ann", operationType: "summary", amount: 50, metadata: nil))
        let start = LedgerTime.parseMilliseconds("2026-01-01T00:00:00.000Z")!
        let end = LedgerTime.parseMilliseconds("2026-02-01T00:00:00.000Z")!
        let day: Int64 = 86_400_000
        let reader = try LedgerReader(path: f.path)

        let whole = try reader.figures(startMs: start, endMs: end, maxEntries: 1000)
        XCTAssertFalse(whole.truncated)
        XCTAssertEqual(whole.spentByDay[start]?[Array("summary".utf8)], 7)
        XCTAssertEqual(whole.spentByDay[start + day]?[Array("summary".utf8)], 3, "February's 50 is not January's")
        XCTAssertEqual(whole.spentByDay[start + day]?[Array("image".utf8)], 5)
        XCTAssertEqual(whole.spentByDay[start + day]?[Array("summar\u{0301}y".utf8)], 1, "operation types are bytes")
        XCTAssertEqual(whole.debitedByDay[start], 7)
        XCTAssertEqual(whole.debitedByDay[start + day], 9)
        XCTAssertGreaterThanOrEqual(whole.creditedByDay[start] ?? 0, 100)

        var stepped = PeriodFigures()
        var from: Int64? = nil
        var steps = 0
        repeat {
            let part = try reader.figures(startMs: start, endMs: end, maxEntries: 3, fromEntryId: from)
            stepped.add(part)
            from = part.nextEntryId
            steps += 1
            if !part.truncated { break }
        } while steps < 100
        XCTAssertGreaterThan(steps, 1, "a limit of 3 takes more than one step")
        XCTAssertEqual(stepped.entriesRead, whole.entriesRead)
        XCTAssertEqual(stepped.spentByDay, whole.spentByDay)
        XCTAssertEqual(stepped.creditedByDay, whole.creditedByDay)
        XCTAssertEqual(stepped.debitedByDay, whole.debitedByDay)

        // A read from the end finds nothing more until something is written in the period.
        let again = try reader.figures(startMs: start, endMs: end, maxEntries: 1000, fromEntryId: whole.nextEntryId)
        XCTAssertEqual(again.entriesRead, 0)
    }
}
