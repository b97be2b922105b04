import Foundation
import GRDB
import XCTest
@testable import Ledger
import LedgerModel

/// The append-only storage (schema v2): the unmerged tail in memory, the merge in slices, crash
/// safety in the middle of a merge, the rebuild at open, and the migration from v1.
final class StorageTests: XCTestCase {
    /// A configuration that never merges by itself (the tests drive the merge).
    static let manualMerge = LedgerConfig(mergeThresholdRows: 1_000_000, mergeSliceRows: 3)

    /// Everything a user can ask about an account, as text, for before/after comparisons.
    func answers(_ ledger: Ledger, users: [String]) throws -> [String] {
        var out: [String] = []
        let start = LedgerTime.parse("2026-01-01T00:00:00.000Z")!, end = LedgerTime.parse("2026-12-31T00:00:00.000Z")!
        let mid = LedgerTime.parse("2026-01-15T10:00:30.000Z")!
        for u in users {
            out.append(try ledger.read(.balance(userId: u)).json)
            out.append(try ledger.read(.canAfford(userId: u, operation: "image_generation")).json)
            out.append(try ledger.read(.eligibility(userId: u)).json)
            for (limit, offset) in [(20, 0), (3, 0), (3, 2), (5, 7), (1000, 0), (2, 40)] {
                out.append(try ledger.read(.history(userId: u, limit: limit, offset: offset, operationType: nil, startDate: nil, endDate: nil)).json)
                out.append(try ledger.read(.history(userId: u, limit: limit, offset: offset, operationType: "image_generation", startDate: nil, endDate: nil)).json)
                out.append(try ledger.read(.history(userId: u, limit: limit, offset: offset, operationType: nil, startDate: mid, endDate: end)).json)
            }
            out.append(try ledger.read(.statistics(userId: u, startDate: start, endDate: end)).json)
            out.append(try ledger.read(.statistics(userId: u, startDate: start, endDate: mid)).json)
            out.append(try ledger.read(.statistics(userId: u, startDate: mid, endDate: end)).json)
        }
        return out
    }

    /// A burst of mixed jobs over a few users, from a seeded generator; returns the job ids.
    @discardableResult
    func burst(_ f: Fixture, users: [String], jobs: Int, seed: UInt64) throws -> [String] {
        var rng = SeededGenerator(seed: seed)
        var ids: [String] = []
        var spending: [String: [String]] = [:]
        var batch: [Command] = []
        for n in 0..<jobs {
            let u = users[Int.random(in: 0..<users.count, using: &rng)]
            let id = "burst-\(seed)-\(n)"
            let op: LedgerOperation
            switch Int.random(in: 0..<10, using: &rng) {
            case 0...3: op = .charge(userId: u, operation: Bool.random(using: &rng) ? "image_generation" : "chatgpt_message", metadata: nil)
            case 4: op = .debit(userId: u, operationType: "api", amount: Int64.random(in: 1...30, using: &rng), metadata: #"{"n":\#(n)}"#)
            case 5, 6: op = .credit(userId: u, operationType: "bonus", amount: Int64.random(in: 1...40, using: &rng), metadata: nil)
            case 7: op = .refund(userId: u, refundOf: spending[u]?.randomElement(using: &rng), amount: 2, metadata: nil)
            case 8: op = .balance(userId: u)
            default: op = .debit(userId: u, operationType: "big", amount: 1_000_000, metadata: nil)  // refused, stored
            }
            if case .charge = op { spending[u, default: []].append(id) }
            if case .debit = op { spending[u, default: []].append(id) }
            batch.append(Command(jobId: id, operation: op))
            ids.append(id)
            if batch.count == 17 || n == jobs - 1 {
                _ = try f.ledger.apply(batch)
                batch = []
                f.clock.advance(by: 1)
            }
        }
        return ids
    }

    func storedResults(_ ledger: Ledger, _ ids: [String]) throws -> [String] {
        let results = try ledger.apply(ids.map { Command(jobId: $0, operation: .balance(userId: "nobody")) })
        for r in results { XCTAssertTrue(r.duplicate) }
        return results.map(\.json)
    }

    func testReplayAnswersTheFirstResultFromTheTailAndFromTheMergedIndex() throws {
        let f = try Fixture(config: Self.manualMerge)
        try f.run(.open(userId: "u"), jobId: "open-u")
        let charge = try f.run(.charge(userId: "u", operation: "image_generation", metadata: nil), jobId: "c1")
        let refused = try f.run(.debit(userId: "u", operationType: "x", amount: 500, metadata: nil), jobId: "d1")
        XCTAssertEqual(try code(refused), "insufficient_tokens")
        XCTAssertGreaterThan(try f.ledger.unmergedRows(), 0)
        // From the tail.
        for (id, first) in [("c1", charge), ("d1", refused)] {
            let again = try f.ledger.apply([Command(jobId: id, operation: .charge(userId: "u", operation: "chatgpt_message", metadata: nil))])[0]
            XCTAssertTrue(again.duplicate)
            XCTAssertEqual(again.json, first.json)
        }
        // Twice in one batch, the second time from the batch's own results.
        let twice = try f.ledger.apply([
            Command(jobId: "c2", operation: .charge(userId: "u", operation: "chatgpt_message", metadata: nil)),
            Command(jobId: "c2", operation: .charge(userId: "u", operation: "chatgpt_message", metadata: nil)),
        ])
        XCTAssertEqual(twice.map(\.duplicate), [false, true])
        XCTAssertEqual(twice[0].json, twice[1].json)
        // From the merged index.
        try f.ledger.mergeAll()
        XCTAssertEqual(try f.ledger.unmergedRows(), 0)
        XCTAssertEqual(try f.ledger.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM job_log") }, 0)
        XCTAssertEqual(try f.ledger.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM jobs") }, 4)
        for (id, first) in [("c1", charge), ("d1", refused), ("c2", twice[0])] {
            let again = try f.ledger.apply([Command(jobId: id, operation: .open(userId: "other"))])[0]
            XCTAssertTrue(again.duplicate)
            XCTAssertEqual(again.json, first.json)
        }
        // A refund names a merged charge.
        let refund = try f.run(.refund(userId: "u", refundOf: "c1", amount: nil, metadata: nil))
        XCTAssertEqual(try json(refund).int("tokensAmount"), 10)
        XCTAssertEqual(try f.balance("u"), 100 - 10 - 5 + 10)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testQueriesRightAfterABurstEqualThoseAfterEveryMergeSlice() throws {
        let seed = UInt64.random(in: 1...UInt64.max)
        print("StorageTests seed: \(seed)")
        let f = try Fixture(config: Self.manualMerge)
        let users = (0..<6).map { "u\($0)" }
        for u in users { try f.run(.open(userId: u)) }
        let ids = try burst(f, users: users, jobs: 600, seed: seed)
        let beforeMerge = try answers(f.ledger, users: users)
        let resultsBefore = try storedResults(f.ledger, ids)
        XCTAssertEqual(try Ledger.verify(path: f.path), [], "seed \(seed)")

        // Slice by slice: the answers never change.
        f.ledger = try Ledger(path: f.path, config: LedgerConfig(mergeThresholdRows: 10, mergeSliceRows: 7), clock: f.clock)
        XCTAssertEqual(try answers(f.ledger, users: users), beforeMerge, "after reopening, seed \(seed)")
        var slices = 0
        while try f.ledger.maintain() {
            slices += 1
            if slices % 25 == 0 {
                XCTAssertEqual(try answers(f.ledger, users: users), beforeMerge, "after slice \(slices), seed \(seed)")
            }
        }
        XCTAssertGreaterThan(slices, 100)
        XCTAssertEqual(try f.ledger.unmergedRows(), 0)
        XCTAssertEqual(try answers(f.ledger, users: users), beforeMerge, "merged, seed \(seed)")
        XCTAssertEqual(try storedResults(f.ledger, ids), resultsBefore, "seed \(seed)")
        XCTAssertEqual(try Ledger.verify(path: f.path), [], "seed \(seed)")
        // Merged, every account row is exact.
        for u in users {
            let row = try f.ledger.writer.read { try Int64.fetchOne($0, sql: "SELECT balance FROM accounts WHERE user_id = ?", arguments: [u]) }
            XCTAssertEqual(row, try f.balance(u))
        }
    }

    func testACrashInTheMiddleOfAMergeChangesNothingAndTheMergeCompletesLater() throws {
        let seed = UInt64.random(in: 1...UInt64.max)
        print("StorageTests seed: \(seed)")
        let f = try Fixture(config: Self.manualMerge)
        let users = (0..<4).map { "u\($0)" }
        for u in users { try f.run(.open(userId: u)) }
        let ids = try burst(f, users: users, jobs: 300, seed: seed)
        let before = try answers(f.ledger, users: users)
        let results = try storedResults(f.ledger, ids)
        let unmerged = try f.ledger.unmergedRows()

        // A merge that gets through the job ids and part of the accounts, then fails inside a
        // slice (the slice's transaction rolls back), and is abandoned (the process "dies").
        let lastEntry = try f.ledger.writer.read { try Int64.fetchOne($0, sql: "SELECT max(id) FROM entries") } ?? 0
        let tamper = try DatabaseQueue(path: f.path)
        try tamper.write { try $0.execute(sql: """
            CREATE TRIGGER crash BEFORE INSERT ON entry_index WHEN NEW.entry_id = \(lastEntry)
            BEGIN SELECT RAISE(ABORT, 'simulated crash'); END;
            """) }
        let dying = try Ledger(path: f.path, config: LedgerConfig(mergeThresholdRows: 1, mergeSliceRows: 50), clock: f.clock)
        var failed = false
        do { while try dying.maintain() {} } catch { failed = true }
        XCTAssertTrue(failed, "the injected failure stops the merge inside a slice")
        let jobsMerged = try dying.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM jobs") } ?? 0
        XCTAssertGreaterThan(jobsMerged, 0, "part of the merge committed before the failure")
        XCTAssertEqual(try answers(dying, users: users), before, "seed \(seed)")
        try tamper.write { try $0.execute(sql: "DROP TRIGGER crash") }
        try tamper.close()

        // Reopened: the same tail, the same answers; the merge starts over and completes.
        f.ledger = try Ledger(path: f.path, config: LedgerConfig(mergeThresholdRows: 1, mergeSliceRows: 50), clock: f.clock)
        XCTAssertEqual(try f.ledger.unmergedRows(), unmerged)
        XCTAssertEqual(try answers(f.ledger, users: users), before, "seed \(seed)")
        XCTAssertEqual(try Ledger.verify(path: f.path), [], "seed \(seed)")
        while try f.ledger.maintain() {}
        XCTAssertEqual(try f.ledger.unmergedRows(), 0)
        XCTAssertEqual(try answers(f.ledger, users: users), before, "seed \(seed)")
        XCTAssertEqual(try storedResults(f.ledger, ids), results, "seed \(seed)")
        XCTAssertEqual(try Ledger.verify(path: f.path), [], "seed \(seed)")
        let (entries, indexed) = try f.ledger.writer.read {
            (try Int.fetchOne($0, sql: "SELECT count(*) FROM entries") ?? 0, try Int.fetchOne($0, sql: "SELECT count(*) FROM entry_index") ?? 0)
        }
        XCTAssertEqual(entries, indexed, "each entry indexed once, the first attempt's rows included")
    }

    func testAMergeInterruptedBetweenSlicesIsTakenOverByTheNextOpen() throws {
        let f = try Fixture(config: Self.manualMerge)
        for u in ["a", "b", "c"] { try f.run(.open(userId: u)) }
        try burst(f, users: ["a", "b", "c"], jobs: 200, seed: 7)
        let before = try answers(f.ledger, users: ["a", "b", "c"])
        let first = try Ledger(path: f.path, config: LedgerConfig(mergeThresholdRows: 1, mergeSliceRows: 20), clock: f.clock)
        // Through the job ids and into the accounts phase, not finished.
        while try first.writer.read({ _ in first.tail.merge?.phase }) != .accounts { try first.maintain() }
        try first.maintain()
        XCTAssertGreaterThan(try first.unmergedRows(), 0)
        f.ledger = try Ledger(path: f.path, config: LedgerConfig(mergeThresholdRows: 1, mergeSliceRows: 20), clock: f.clock)
        XCTAssertEqual(try answers(f.ledger, users: ["a", "b", "c"]), before)
        while try f.ledger.maintain() {}
        XCTAssertEqual(try answers(f.ledger, users: ["a", "b", "c"]), before)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
        // The first instance notices that another connection wrote the file and rereads it.
        XCTAssertEqual(try answers(first, users: ["a", "b", "c"]), before)
        XCTAssertEqual(try first.unmergedRows(), 0)
    }

    func testReopenWithALargeUnmergedTailRebuildsTheSameState() throws {
        let f = try Fixture(config: Self.manualMerge)
        let users = (0..<50).map { "user-\($0)" }
        for chunk in stride(from: 0, to: users.count, by: 25) {
            _ = try f.ledger.apply(users[chunk..<chunk + 25].map { Command(jobId: "open-\($0)", operation: .open(userId: $0)) })
        }
        var ids: [String] = []
        for b in 0..<40 {
            var batch: [Command] = []
            for i in 0..<500 {
                let n = b * 500 + i
                let u = users[n % users.count]
                let id = "c-\(UUID().uuidString)"
                ids.append(id)
                batch.append(Command(jobId: id, operation: n % 3 == 0
                    ? .credit(userId: u, operationType: "bonus", amount: 20, metadata: nil)
                    : .charge(userId: u, operation: "chatgpt_message", metadata: nil)))
            }
            _ = try f.ledger.apply(batch)
            f.clock.advance(by: 60)
        }
        let before = try answers(f.ledger, users: Array(users.prefix(5)))
        let balances = try users.map { try f.balance($0) }
        let unmerged = try f.ledger.unmergedRows()
        XCTAssertGreaterThanOrEqual(unmerged, 40_000)
        // Account rows lag (only their creation was written), yet verify accepts the file.
        let rows = try f.ledger.writer.read { try Int64.fetchAll($0, sql: "SELECT balance FROM accounts ORDER BY id") }
        XCTAssertNotEqual(rows, balances)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])

        f.ledger = try Ledger(path: f.path, config: Self.manualMerge, clock: f.clock)
        XCTAssertEqual(try f.ledger.unmergedRows(), unmerged)
        XCTAssertEqual(try users.map { try f.balance($0) }, balances)
        XCTAssertEqual(try answers(f.ledger, users: Array(users.prefix(5))), before)
        let sample = stride(from: 0, to: ids.count, by: 997).map { ids[$0] }
        for r in try f.ledger.apply(sample.map { Command(jobId: $0, operation: .open(userId: "x")) }) { XCTAssertTrue(r.duplicate) }
        // And it goes on from there.
        try f.run(.charge(userId: "user-0", operation: "image_generation", metadata: nil))
        XCTAssertEqual(try f.balance("user-0"), balances[0] - 10)
        try f.ledger.mergeAll()
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testVerifyDetectsTamperingInTheUnmergedTail() throws {
        let f = try Fixture(config: Self.manualMerge)
        try f.run(.open(userId: "a"))
        try f.run(.charge(userId: "a", operation: "image_generation", metadata: nil))
        try f.run(.credit(userId: "a", operationType: "bonus", amount: 7, metadata: nil))
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
        let q = try DatabaseQueue(path: f.path)
        try q.write { try $0.execute(sql: "UPDATE accounts SET balance = 500 WHERE user_id = 'a'") }
        XCTAssertTrue(try Ledger.verify(path: f.path).contains { $0.code == "balance_mismatch" })
        try q.write { try $0.execute(sql: "UPDATE accounts SET balance = 0 WHERE user_id = 'a'") }
        try q.write { try $0.execute(sql: """
            DROP TRIGGER entries_no_update;
            UPDATE entries SET amount = 8, balance_after = balance_before + 8 WHERE id = 3;
            """) }
        let v = try Ledger.verify(path: f.path)
        XCTAssertTrue(v.contains { $0.code == "hash_mismatch" && $0.entryId == 3 }, "\(v)")
        // A merged history index that misses an entry.
        let g = try Fixture(config: Self.manualMerge)
        try g.run(.open(userId: "a"))
        try g.run(.charge(userId: "a", operation: "image_generation", metadata: nil))
        try g.ledger.mergeAll()
        XCTAssertEqual(try Ledger.verify(path: g.path), [])
        let r = try DatabaseQueue(path: g.path)
        try r.write { try $0.execute(sql: "DELETE FROM entry_index WHERE entry_id = 2") }
        XCTAssertEqual(try Ledger.verify(path: g.path).map(\.code), ["index_incomplete"])
        // A merged account row that is behind its merged entries.
        try r.write { try $0.execute(sql: """
            INSERT INTO entry_index VALUES (1, (SELECT created_ms FROM entries WHERE id = 2), 2);
            UPDATE accounts SET balance = 100, spent = 0, entry_count = 1, last_entry_id = 1;
            """) }
        XCTAssertEqual(try Ledger.verify(path: g.path).map(\.code), ["account_bookkeeping"])
    }

    func testBackupUnderWritesAndMergesVerifiesAndOpens() throws {
        let f = try Fixture(config: LedgerConfig(mergeThresholdRows: 200, mergeSliceRows: 50))
        for u in ["a", "b", "c"] { try f.run(.open(userId: u)) }
        let ledger = f.ledger
        let writer = Thread {
            for i in 0..<300 {
                _ = try? ledger.apply((0..<20).map {
                    Command(jobId: "w\(i)-\($0)", operation: .credit(userId: ["a", "b", "c"][$0 % 3], operationType: "bonus", amount: 1, metadata: nil))
                })
                _ = try? ledger.maintain()
            }
        }
        writer.start()
        var copies: [String] = []
        for n in 0..<3 {
            usleep(20_000)
            let copy = f.dir.appendingPathComponent("copy-\(n).sqlite").path
            try ledger.backup(to: copy)
            copies.append(copy)
        }
        while !writer.isFinished { usleep(10_000) }
        for copy in copies {
            XCTAssertEqual(try Ledger.verify(path: copy), [], copy)
            let restored = try Ledger(path: copy, clock: f.clock)
            let total = try ["a", "b", "c"].map { try json(restored.read(.balance(userId: $0))).int("tokensBalance") ?? 0 }.reduce(0, +)
            let entries = try restored.writer.read { try Int64.fetchOne($0, sql: "SELECT count(*) FROM entries WHERE operation_type = 'bonus'") } ?? 0
            XCTAssertEqual(total, 300 + entries, "balances match the copy's entries")
        }
        XCTAssertEqual(try f.balance("a") + f.balance("b") + f.balance("c"), 300 + 6000)
        XCTAssertEqual(try Ledger.verify(path: f.path), [])
    }

    func testTheTailIsReadOnceDespiteCheckpoints() throws {
        let f = try Fixture(config: LedgerConfig(walAutoCheckpointPages: 4, mergeThresholdRows: 1_000_000))
        try f.run(.open(userId: "u"))
        for i in 0..<100 {
            _ = try f.ledger.apply((0..<10).map { Command(jobId: "j\(i)-\($0)", operation: .credit(userId: "u", operationType: "b", amount: 1, metadata: nil)) })
        }
        try f.ledger.checkpoint()
        f.ledger.checkpointer.drain()
        try f.run(.credit(userId: "u", operationType: "b", amount: 1, metadata: nil))
        XCTAssertEqual(try f.ledger.writer.read { _ in f.ledger.tail.reloads }, 1)
        XCTAssertEqual(try f.balance("u"), 100 + 1001)
    }
}

/// SplitMix64: a reproducible generator for seeded tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A ledger file in the v1 layout, written row by row as the v1 code wrote it (accounts exact,
/// `jobs` rows for every result, `entries_by_account` maintained by SQLite).
final class V1LedgerFile {
    let queue: DatabaseQueue
    var lastId: Int64 = 0
    var lastHash = EntryHasher.genesis
    var hasher = EntryHasher()
    var nowMs: Int64 = 1_768_471_200_000  // 2026-01-15T10:00:00Z

    init(path: String) throws {
        queue = try DatabaseQueue(path: path)
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
        try Schema.migrator.migrate(queue, upTo: "v1")
    }

    func account(_ userId: String) throws -> Int64 {
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO accounts (user_id, tier, balance, spent, anchor_ms, periods, last_renewal_ms, next_renewal_ms,
                    expires_ms, created_ms, entry_count, last_entry_id) VALUES (?, 'Gift', 0, 0, ?, 0, ?, ?, NULL, ?, 0, NULL)
                """, arguments: [userId, nowMs, nowMs, CalendarMonth.adding(months: 1, to: nowMs), nowMs])
            return db.lastInsertedRowID
        }
    }

    /// Appends an entry, moves its account's row, and stores the job as v1 did.
    @discardableResult
    func entry(account: Int64, userId: String, kind: Schema.Kind, type: String, amount: Int64, jobId: String,
               refundOf: Int64? = nil, result: String? = nil) throws -> Int64 {
        nowMs += 1000
        lastId += 1
        let id = lastId
        return try queue.write { db in
            let before = try Int64.fetchOne(db, sql: "SELECT balance FROM accounts WHERE id = ?", arguments: [account]) ?? 0
            let hash = hasher.hash(previous: lastHash, .init(
                id: id, accountId: account, userId: userId, createdMs: nowMs, kind: kind.rawValue, operationType: type,
                amount: amount, balanceBefore: before, balanceAfter: before + amount, jobId: jobId, refundOf: refundOf, metadata: nil))
            lastHash = hash
            try db.execute(sql: """
                INSERT INTO entries (id, account_id, created_ms, kind, operation_type, amount, balance_before, balance_after,
                    job_id, refund_of, metadata, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)
                """, arguments: [id, account, nowMs, kind.rawValue, type, amount, before, before + amount, jobId, refundOf, Data(hash)])
            let spent = kind.isSpending ? "spent - ?" : kind == .refund ? "max(0, spent - ?)" : "spent + 0 * ?"
            try db.execute(sql: """
                UPDATE accounts SET balance = balance + ?, spent = \(spent), entry_count = entry_count + 1, last_entry_id = ? WHERE id = ?
                """, arguments: [amount, amount, id, account])
            try db.execute(sql: "INSERT INTO jobs (job_id, entry_id, account_id, result) VALUES (?, ?, ?, ?)",
                           arguments: [jobId, id, result == nil ? nil : account, result])
            if let refundOf {
                try db.execute(sql: "INSERT INTO refunded (entry_id, amount) VALUES (?, ?) ON CONFLICT (entry_id) DO UPDATE SET amount = amount + excluded.amount",
                               arguments: [refundOf, amount])
            }
            return id
        }
    }

    func refusal(jobId: String, result: String) throws {
        try queue.write { db in
            try db.execute(sql: "INSERT INTO jobs (job_id, entry_id, account_id, result) VALUES (?, NULL, NULL, ?)", arguments: [jobId, result])
        }
    }
}

final class MigrationTests: XCTestCase {
    func testAV1LedgerOpensMigratesInPlaceAndAnswersAsBefore() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-migration-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("v1.sqlite").path

        // A v1 file: two accounts, a charge, a debit, a partial refund, a stored refusal, and
        // enough filler entries that the history index matters.
        let v1 = try V1LedgerFile(path: path)
        let a = try v1.account("a"), b = try v1.account("b")
        try v1.entry(account: a, userId: "a", kind: .renewal, type: "renewal", amount: 100, jobId: "open-a", result: #"{"success":true,"userId":"a"}"#)
        let charge = try v1.entry(account: a, userId: "a", kind: .charge, type: "image_generation", amount: -10, jobId: "c1")
        try v1.entry(account: b, userId: "b", kind: .renewal, type: "renewal", amount: 100, jobId: "open-b", result: #"{"success":true,"userId":"b"}"#)
        try v1.entry(account: b, userId: "b", kind: .debit, type: "api", amount: -30, jobId: "d1")
        try v1.entry(account: a, userId: "a", kind: .refund, type: "refund", amount: 4, jobId: "r1", refundOf: charge)
        for n in 0..<300 {
            try v1.entry(account: n % 2 == 0 ? a : b, userId: n % 2 == 0 ? "a" : "b", kind: .credit, type: "bonus", amount: 1, jobId: "f\(n)")
        }
        let refusal = #"{"success":false,"error":{"code":"insufficient_tokens","message":"x"},"balance":0}"#
        try v1.refusal(jobId: "bad", result: refusal)
        try v1.queue.close()
        // Before it is opened: readers refuse an older schema; the audit itself accepts v1.
        XCTAssertThrowsError(try Ledger.verify(path: path)) { XCTAssertEqual($0 as? LedgerOpenError, .schemaOlder(path: path)) }
        let raw = try DatabaseQueue(path: path)
        let violations = try raw.read { db -> [AuditViolation] in
            var audit = Auditor(db: db)
            try audit.run()
            return audit.violations
        }
        XCTAssertEqual(violations, [])
        try raw.close()

        // Opened by the new code: migrated in place.
        let clock = ManualClock(LedgerTime.parse("2026-01-15T11:00:00.000Z")!)
        let ledger = try Ledger(path: path, config: StorageTests.manualMerge, clock: clock)
        let tables = try ledger.writer.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master") }
        XCTAssertTrue(tables.contains("entry_index") && tables.contains("job_log"))
        XCTAssertFalse(tables.contains("entries_by_account"))
        XCTAssertEqual(try ledger.unmergedRows(), 0, "the migration indexes every existing entry")
        XCTAssertEqual(try Ledger.verify(path: path), [])

        func balance(_ u: String) throws -> Int64? { try json(ledger.read(.balance(userId: u))).int("tokensBalance") }
        XCTAssertEqual(try balance("a"), 100 - 10 + 4 + 150)
        XCTAssertEqual(try balance("b"), 100 - 30 + 150)
        let history = try json(ledger.read(.history(userId: "a", limit: 3, offset: 150, operationType: nil, startDate: nil, endDate: nil)))
        XCTAssertEqual((history["entries"] as? [[String: Any]])?.compactMap { $0["jobId"] as? String }, ["r1", "c1", "open-a"])
        XCTAssertEqual(history.int("total"), 153)
        let bonus = try json(ledger.read(.history(userId: "b", limit: 5, offset: 0, operationType: "bonus", startDate: nil, endDate: nil)))
        XCTAssertEqual(bonus.int("total"), 150)

        // Replays answer the first results, derived or stored, refusals too.
        let replays = try ledger.apply(["c1", "open-a", "bad", "d1"].map { Command(jobId: $0, operation: .open(userId: "zzz")) })
        XCTAssertEqual(replays.map(\.duplicate), [true, true, true, true])
        XCTAssertEqual(replays[0].json, #"{"success":true,"newBalance":90,"ledgerEntryId":\#(charge),"tokensAmount":-10}"#)
        XCTAssertEqual(replays[1].json, #"{"success":true,"userId":"a"}"#)
        XCTAssertEqual(replays[2].json, refusal)
        XCTAssertEqual(replays[2].errorCode, "insufficient_tokens")
        // A refund of the v1 charge sees the v1 refund.
        let refund = try ledger.apply([Command(jobId: "r2", operation: .refund(userId: "a", refundOf: "c1", amount: nil, metadata: nil))])[0]
        XCTAssertEqual(try json(refund).int("tokensAmount"), 6)

        // New work goes to the tail, merges, and the ledger still verifies.
        _ = try ledger.apply((0..<50).map { Command(jobId: "new-\($0)", operation: .charge(userId: $0 % 2 == 0 ? "a" : "b", operation: "chatgpt_message", metadata: nil)) })
        XCTAssertEqual(try Ledger.verify(path: path), [])
        try ledger.mergeAll()
        XCTAssertEqual(try Ledger.verify(path: path), [])
        XCTAssertEqual(try balance("a"), 100 - 10 + 4 + 150 + 6 - 125)
        let reopened = try Ledger(path: path, clock: clock)
        XCTAssertEqual(try json(reopened.read(.balance(userId: "b"))).int("tokensBalance"), 100 - 30 + 150 - 125)
    }
}
