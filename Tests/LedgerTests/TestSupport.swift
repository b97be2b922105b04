import Foundation
import XCTest
@testable import Ledger
import JobWire
import LedgerModel

/// A ledger in a fresh temporary folder, with a manual clock at 2026-01-15T10:00:00Z.
final class Fixture {
    let dir: URL
    let clock: ManualClock
    var ledger: Ledger
    var path: String { dir.appendingPathComponent("ledger.sqlite").path }
    private var counter = 0

    init(config: LedgerConfig = .init(), start: String = "2026-01-15T10:00:00.000Z") throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        clock = ManualClock(LedgerTime.parse(start)!)
        ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path, config: config, clock: clock)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    /// A fresh job id.
    func nextId() -> String { counter += 1; return "job-\(counter)" }

    /// Applies one command under `jobId` (a fresh one when nil) and returns its result.
    @discardableResult
    func run(_ op: LedgerOperation, jobId: String? = nil) throws -> CommandResult {
        try ledger.apply([Command(jobId: jobId ?? nextId(), operation: op)])[0]
    }

    /// Applies a query without a job id.
    func query(_ op: LedgerOperation) throws -> [String: Any] {
        try json(ledger.apply([Command(jobId: nil, operation: op)])[0])
    }

    func set(_ iso: String) { clock.set(LedgerTime.parse(iso)!) }

    func balance(_ user: String) throws -> Int64 {
        try XCTUnwrap(query(.balance(userId: user)).int("tokensBalance"))
    }
}

/// Parses a result's JSON (which also checks that it is valid JSON).
func json(_ result: CommandResult) throws -> [String: Any] {
    try json(result.json)
}

func json(_ text: String) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    return try XCTUnwrap(object as? [String: Any], "not an object: \(text)")
}

func code(_ result: CommandResult) throws -> String? {
    (try json(result)["error"] as? [String: Any])?["code"] as? String
}

extension Dictionary where Key == String, Value == Any {
    func int(_ key: String) -> Int64? { (self[key] as? NSNumber)?.int64Value }
}

extension CommandResult {
    /// The result's fields as the wire writes them (`{"success":…}`, without id, type and
    /// duplicate): what the ledger stored as text before outcomes were typed.
    var json: String { Replies.fields(of: outcome) }
}
