import Foundation
import GRDB

/// Builds the ledger files of a new partition count from the files of the old one, for
/// `tokenledger repartition` (the contract's "Partitions"). The old files are only read.
///
/// What goes where: every row that belongs to an account goes to the file of the account's new
/// partition (the account itself, its entries, stored job results, payments, refund records,
/// holds and their grant shares, grants, monitors, and the pending sends that name its user).
/// The rows that belong to no account (stored results of `renewAll` and of refusals that found
/// no account, scheduler runs) go to every new file that draws users from their old file, so a
/// replay of such a job still finds its result wherever it is pushed.
///
/// Which old files feed a new one: a user of old partition `k` of N lands in new partition `j`
/// of M only when `k ≡ j (mod gcd(N, M))` (both are its CRC mod N and mod M). When N divides M
/// (every split of an unsplit ledger, 4 to 16) each new file draws from exactly one old file and
/// keeps every entry id and account id as it was. Otherwise (a merge, 4 to 6) a new file draws
/// from several old files whose ids overlap: its accounts are numbered anew in old-file order,
/// and its entries anew in time order (entry ids still rise with time), every reference
/// (refunds, stored results, holds, refund records) following its entry.
///
/// The hash chain is rebuilt per new file, over its entries in id order, from the genesis hash:
/// each entry's hash covers its (possibly new) id and account id, so `verify` checks the new files
/// exactly as it checks any other. Ids kept from an old file have gaps (the other users' entries
/// went elsewhere); the file records how many entries it was built with and the last of their
/// ids (`storage_state`: `repartition_entries`, `repartition_last_entry_id`), and `verify`
/// accepts gaps up to that id only when that many entries are there, so a removed entry is still
/// found (by the count, and by the next entry's hash).
public enum LedgerRepartition {
    /// The tables this code knows how to move. A file with any other table (a later schema this
    /// build does not know) is refused rather than moved without it.
    public static let knownTables: Set<String> = [
        "accounts", "entries", "jobs", "job_log", "payments", "refunded", "epochs", "scheduler_runs",
        "partition_layout", "entry_index", "storage_state", "holds", "hold_grants", "grants",
        "pending_sends", "monitors", "grdb_migrations", "sqlite_sequence",
    ]

    /// Old files feeding new partition `target`, by index.
    public static func sources(of target: Int, from oldCount: Int, to newCount: Int) -> [Int] {
        let g = gcd(oldCount, newCount)
        return (0..<oldCount).filter { $0 % g == target % g }
    }

    /// New partitions fed by old partition `source`.
    public static func targets(of source: Int, from oldCount: Int, to newCount: Int) -> [Int] {
        let g = gcd(oldCount, newCount)
        return (0..<newCount).filter { $0 % g == source % g }
    }

    static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    /// Writes the new file of partition `target` of `targetCount` at `path` (which must not
    /// exist) from the old files `sources` (all of the old layout's files, in partition order).
    /// `route` gives a user's new partition. The file is built without a journal (a crash
    /// leaves a file the tool deletes and builds again) and is fsynced before this returns.
    public static func build(target: Int, of targetCount: Int, path: String, sources: [String],
                             route: @escaping (String) -> Int, config: LedgerConfig = .init(), nowMs: Int64,
                             progress: ((_ entries: Int64) -> Void)? = nil) throws -> RepartitionCounts {
        let feeding = Self.sources(of: target, from: sources.count, to: targetCount)
        let readers = try feeding.map { try LedgerReader(path: sources[$0], config: config) }
        defer { for r in readers { try? r.close() } }
        for (i, r) in readers.enumerated() {
            try r.reader.inDatabase { db in try prepareSource(db, path: sources[feeding[i]], route: route) }
        }
        let fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        close(fd)
        var c = Configuration()
        c.busyMode = .timeout(Double(config.busyTimeoutMilliseconds) / 1000)
        c.foreignKeysEnabled = false
        c.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = OFF")
            try db.execute(sql: "PRAGMA synchronous = OFF")
            try db.execute(sql: "PRAGMA cache_size = -\(max(config.cacheMebibytes, 64) * 1024)")
        }
        let writer = try DatabaseQueue(path: path, configuration: c)
        try Schema.migrator.migrate(writer)
        var builder = Builder(target: target, targetCount: targetCount, sourceCount: sources.count, feeding: feeding, keepIds: feeding.count == 1,
                              route: route, nowMs: nowMs, progress: progress)
        try writer.writeWithoutTransaction { out in
            try withReads(readers.map(\.reader)[...]) { inputs in
                for db in inputs { try db.execute(sql: "BEGIN DEFERRED") }
                defer { for db in inputs { try? db.execute(sql: "ROLLBACK") } }
                try out.inTransaction(.immediate) {
                    try builder.run(out: out, inputs: inputs)
                    return .commit
                }
            }
            try out.execute(sql: "PRAGMA journal_mode = WAL")
        }
        try writer.close()
        try fsync(path: path)
        return builder.counts
    }

    /// Checks what only the tool can: the file's tables are all known, and its route table.
    static func prepareSource(_ db: Database, path: String, route: (String) -> Int) throws {
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        for name in tables where !knownTables.contains(name) {
            throw RepartitionError(.unknownTable, "The ledger \(path) has a table \(name) this version cannot move; repartition with the version that made it.")
        }
        try db.execute(sql: """
            CREATE TEMP TABLE IF NOT EXISTS repartition_route (account_id INTEGER PRIMARY KEY, target INTEGER NOT NULL);
            DELETE FROM temp.repartition_route;
            """)
        let insert = try RawStatement(db, "INSERT INTO temp.repartition_route (account_id, target) VALUES (?, ?)")
        let accounts = try RawStatement(db, "SELECT id, user_id FROM main.accounts")
        accounts.reset()
        while try accounts.step() {
            insert.reset()
            try insert.bind(1, accounts.int64(0))
            try insert.bind(2, Int64(route(accounts.text(1))))
            try insert.run()
        }
        accounts.reset()
    }

    /// Runs `body` with a connection of each queue, all open at once (nested, so GRDB allows
    /// the outer ones inside the inner).
    static func withReads<T>(_ queues: ArraySlice<DatabaseQueue>, _ dbs: [Database] = [], _ body: ([Database]) throws -> T) throws -> T {
        guard let first = queues.first else { return try body(dbs) }
        return try first.inDatabase { db in try withReads(queues.dropFirst(), dbs + [db], body) }
    }

    static func fsync(path: String) throws {
        for p in [path, URL(fileURLWithPath: path).deletingLastPathComponent().path] {
            let fd = open(p, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            defer { close(fd) }
            guard Foundation.fsync(fd) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        }
    }
}

/// What a build moved (summed over the new files by the tool).
public struct RepartitionCounts: Sendable, Equatable {
    public var accounts: Int64 = 0, entries: Int64 = 0, jobResults: Int64 = 0, payments: Int64 = 0
    public var refundRecords: Int64 = 0, holds: Int64 = 0, grants: Int64 = 0, monitors: Int64 = 0
    public var pendingSends: Int64 = 0, schedulerRuns: Int64 = 0
    public init() {}

    public static func + (a: Self, b: Self) -> Self {
        var s = a
        s.accounts += b.accounts; s.entries += b.entries; s.jobResults += b.jobResults; s.payments += b.payments
        s.refundRecords += b.refundRecords; s.holds += b.holds; s.grants += b.grants; s.monitors += b.monitors
        s.pendingSends += b.pendingSends; s.schedulerRuns += b.schedulerRuns
        return s
    }

    public var summary: String {
        "\(accounts) accounts, \(entries) entries, \(jobResults) stored results, \(payments) payments, \(refundRecords) refund records, "
            + "\(holds) holds, \(grants) grants, \(monitors) monitors, \(pendingSends) pending sends, \(schedulerRuns) renewal runs"
    }
}

/// Why a repartition stopped; the old ledger is untouched whenever one is thrown.
public struct RepartitionError: Error, CustomStringConvertible, Sendable {
    public struct Code: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// A table the tool does not know how to move.
        public static let unknownTable = Code(rawValue: "unknown_table")
        /// Two old files that merge into one new file use one id (job, payment, hold, grant).
        public static let idConflict = Code(rawValue: "id_conflict")
        /// A reference to a row that is not there (an entry of a refund, a stored result's entry).
        public static let danglingReference = Code(rawValue: "dangling_reference")
        /// The new files do not answer what the old ones did.
        public static let totalsMismatch = Code(rawValue: "totals_mismatch")
    }
    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) { self.code = code; self.message = message }
    public var description: String { message }
}

/// The per-file copy. Ids are mapped per old file (identity when the new file has one source).
struct Builder {
    let target: Int, targetCount: Int, sourceCount: Int
    let feeding: [Int]
    let keepIds: Bool
    let route: (String) -> Int
    let nowMs: Int64
    let progress: ((Int64) -> Void)?
    var counts = RepartitionCounts()
    var accountMaps: [[Int64: Int64]] = []
    var entryMaps: [[Int64: Int64]] = []

    init(target: Int, targetCount: Int, sourceCount: Int, feeding: [Int], keepIds: Bool, route: @escaping (String) -> Int, nowMs: Int64,
         progress: ((Int64) -> Void)?) {
        self.target = target; self.targetCount = targetCount; self.sourceCount = sourceCount; self.feeding = feeding; self.keepIds = keepIds
        self.route = route; self.nowMs = nowMs; self.progress = progress
        accountMaps = Array(repeating: [:], count: feeding.count)
        entryMaps = Array(repeating: [:], count: feeding.count)
    }

    func account(_ s: Int, _ id: Int64) throws -> Int64 {
        if keepIds { return id }
        guard let mapped = accountMaps[s][id] else {
            throw RepartitionError(.danglingReference, "old partition \(feeding[s]): account \(id) is referred to but not moved")
        }
        return mapped
    }

    func entry(_ s: Int, _ id: Int64) throws -> Int64 {
        if keepIds { return id }
        guard let mapped = entryMaps[s][id] else {
            throw RepartitionError(.danglingReference, "old partition \(feeding[s]): entry \(id) is referred to but not moved")
        }
        return mapped
    }

    /// One account being rebuilt: its row (as read) and what its entries give.
    struct Account {
        var columns: [String]
        var values: [DatabaseValue]
        var userId: String
        var balance: Int64 = 0, spent: Int64 = 0, count: Int64 = 0, lastEntryId: Int64? = nil
    }

    mutating func run(out: Database, inputs: [Database]) throws {
        let t = Int64(target)
        // Accounts first (in memory: the entries' hashes need their users), written after the entries.
        var accounts: [Int64: Account] = [:]
        var order: [Int64] = []
        var nextAccount: Int64 = 1
        for (s, db) in inputs.enumerated() {
            let rows = try Row.fetchCursor(db, sql: """
                SELECT a.* FROM main.accounts a JOIN temp.repartition_route r ON r.account_id = a.id WHERE r.target = ? ORDER BY a.id
                """, arguments: [t])
            while let row = try rows.next() {
                let old: Int64 = row["id"]
                let id = keepIds ? old : nextAccount
                nextAccount += 1
                if !keepIds { accountMaps[s][old] = id }
                accounts[id] = Account(columns: Array(row.columnNames), values: Array(row.databaseValues), userId: row["user_id"])
                order.append(id)
            }
        }
        try copyEntries(out: out, inputs: inputs, accounts: &accounts)
        for id in order {
            guard let a = accounts[id] else { continue }
            var values = a.values
            for (i, name) in a.columns.enumerated() {
                switch name {
                case "id": values[i] = id.databaseValue
                case "balance": values[i] = a.balance.databaseValue
                case "spent": values[i] = a.spent.databaseValue
                case "entry_count": values[i] = a.count.databaseValue
                case "last_entry_id": values[i] = a.lastEntryId.databaseValue
                default: break
                }
            }
            try insert(out, "accounts", a.columns, values, what: "account \(a.userId)")
            counts.accounts += 1
        }
        try copyJobs(out: out, inputs: inputs)
        try copyOwned(out: out, inputs: inputs)
        try copyPendingSends(out: out, inputs: inputs)
        try copyRuns(out: out, inputs: inputs)
        var epoch: Int64 = 0
        for db in inputs { epoch = max(epoch, try Int64.fetchOne(db, sql: "SELECT max(epoch) FROM main.epochs") ?? 0) }
        // A worker that still held an old epoch is fenced here too.
        try out.execute(sql: "INSERT INTO epochs (epoch, owner, acquired_ms) VALUES (?, 'repartition', ?)", arguments: [epoch + 1, nowMs])
        try out.execute(sql: "INSERT INTO partition_layout (id, partition_count, partition) VALUES (1, ?, ?)", arguments: [targetCount, target])
    }

    /// Entries in the order of their new ids: one old file's in id order, or several merged by
    /// time (then old file, then old id), so ids keep rising with time.
    mutating func copyEntries(out: Database, inputs: [Database], accounts: inout [Int64: Account]) throws {
        let select = """
            SELECT e.id, e.account_id, e.created_ms, e.kind, e.operation_type, e.amount, e.balance_before, e.balance_after,
                e.job_id, e.refund_of, e.metadata
            FROM main.entries e JOIN temp.repartition_route r ON r.account_id = e.account_id WHERE r.target = ? ORDER BY e.id
            """
        let cursors = try inputs.map { try RawStatement($0, select) }
        for q in cursors { q.reset(); try q.bind(1, Int64(target)) }
        defer { for q in cursors { q.reset() } }
        var live = try cursors.map { try $0.step() }
        let insertEntry = try RawStatement(out, """
            INSERT INTO entries (id, account_id, created_ms, kind, operation_type, amount, balance_before, balance_after,
                job_id, refund_of, metadata, hash, spent_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let insertIndex = try RawStatement(out, "INSERT INTO entry_index (account_id, created_ms, entry_id) VALUES (?, ?, ?)")
        var hasher = EntryHasher()
        var previous = EntryHasher.genesis
        var nextId: Int64 = 1
        var lastId: Int64 = 0
        while true {
            var pick = -1
            for (s, q) in cursors.enumerated() where live[s] {
                if pick < 0 { pick = s; continue }
                let p = cursors[pick]
                if (q.int64(2), s, q.int64(0)) < (p.int64(2), pick, p.int64(0)) { pick = s }
            }
            guard pick >= 0 else { break }
            let q = cursors[pick]
            let oldId = q.int64(0)
            let id = keepIds ? oldId : nextId
            nextId += 1
            if !keepIds { entryMaps[pick][oldId] = id }
            let accountId = try account(pick, q.int64(1))
            guard var a = accounts[accountId] else {
                throw RepartitionError(.danglingReference, "old partition \(feeding[pick]): entry \(oldId) names an account that is not moved")
            }
            let createdMs = q.int64(2), kind = q.int64(3), operationType = q.text(4), amount = q.int64(5)
            let before = q.int64(6), after = q.int64(7), jobId = q.optionalText(8), metadata = q.optionalText(10)
            let refundOf = try q.optionalInt64(9).map { try entry(pick, $0) }
            a.spent = Schema.Kind.spentAfter(kind: kind, amount: amount, spentBefore: a.spent)
            a.balance = after
            a.count += 1
            a.lastEntryId = id
            accounts[accountId] = a
            let hash = hasher.hash(previous: previous, .init(
                id: id, accountId: accountId, userId: a.userId, createdMs: createdMs, kind: kind, operationType: operationType,
                amount: amount, balanceBefore: before, balanceAfter: after, jobId: jobId, refundOf: refundOf, metadata: metadata))
            previous = hash
            insertEntry.reset()
            try insertEntry.bind(1, id); try insertEntry.bind(2, accountId); try insertEntry.bind(3, createdMs)
            try insertEntry.bind(4, kind); try insertEntry.bind(5, operationType); try insertEntry.bind(6, amount)
            try insertEntry.bind(7, before); try insertEntry.bind(8, after); try insertEntry.bind(9, jobId)
            try insertEntry.bind(10, refundOf); try insertEntry.bind(11, metadata); try insertEntry.bind(12, blob: hash)
            try insertEntry.bind(13, a.spent)
            try insertEntry.run()
            insertIndex.reset()
            try insertIndex.bind(1, accountId); try insertIndex.bind(2, createdMs); try insertIndex.bind(3, id)
            try insertIndex.run()
            lastId = max(lastId, id)
            counts.entries += 1
            if counts.entries % 8192 == 0 { progress?(counts.entries) }
            live[pick] = try q.step()
        }
        progress?(counts.entries)
        try out.execute(sql: "UPDATE storage_state SET value = ? WHERE name = 'merged_entry_id'", arguments: [lastId])
        try out.execute(sql: "UPDATE storage_state SET value = 0 WHERE name = 'merged_job_seq'")
        try out.execute(sql: "INSERT OR REPLACE INTO storage_state (name, value) VALUES ('repartition_entries', ?), ('repartition_last_entry_id', ?)",
                        arguments: [counts.entries, lastId])
    }

    /// Stored results: the merged index and the unmerged log of each old file, both into the new
    /// file's merged index (its log starts empty). Those of an account first, then the
    /// account-less ones (kept once when two old files hold the same id).
    mutating func copyJobs(out: Database, inputs: [Database]) throws {
        for (s, db) in inputs.enumerated() {
            let mergedSeq = try Int64.fetchOne(db, sql: "SELECT value FROM main.storage_state WHERE name = 'merged_job_seq'") ?? 0
            for sql in [
                """
                SELECT j.job_id, j.entry_id, j.account_id, j.result FROM main.jobs j LEFT JOIN main.entries e ON e.id = j.entry_id
                JOIN temp.repartition_route r ON r.account_id = coalesce(j.account_id, e.account_id) WHERE r.target = ?1
                """,
                """
                SELECT l.job_id, l.entry_id, l.account_id, l.result FROM main.job_log l LEFT JOIN main.entries e ON e.id = l.entry_id
                JOIN temp.repartition_route r ON r.account_id = coalesce(l.account_id, e.account_id)
                WHERE r.target = ?1 AND l.seq > ?2 AND NOT EXISTS (SELECT 1 FROM main.jobs j WHERE j.job_id = l.job_id) ORDER BY l.seq
                """,
            ] {
                let arguments: StatementArguments = sql.contains("?2") ? [target, mergedSeq] : [target]
                try copyJobRows(out, s, try Row.fetchCursor(db, sql: sql, arguments: arguments), ignoreRepeats: false)
            }
        }
        for (s, db) in inputs.enumerated() {
            let mergedSeq = try Int64.fetchOne(db, sql: "SELECT value FROM main.storage_state WHERE name = 'merged_job_seq'") ?? 0
            for sql in [
                "SELECT job_id, entry_id, account_id, result FROM main.jobs WHERE entry_id IS NULL AND account_id IS NULL",
                """
                SELECT l.job_id, l.entry_id, l.account_id, l.result FROM main.job_log l WHERE l.entry_id IS NULL AND l.account_id IS NULL
                AND l.seq > ?1 AND NOT EXISTS (SELECT 1 FROM main.jobs j WHERE j.job_id = l.job_id) ORDER BY l.seq
                """,
            ] {
                let arguments: StatementArguments = sql.contains("?1") ? [mergedSeq] : []
                try copyJobRows(out, s, try Row.fetchCursor(db, sql: sql, arguments: arguments), ignoreRepeats: true)
            }
        }
    }

    private mutating func copyJobRows(_ out: Database, _ s: Int, _ rows: RowCursor, ignoreRepeats: Bool) throws {
        while let r = try rows.next() {
            let jobId: String = r[0]
            let entryId = try (r[1] as Int64?).map { try entry(s, $0) }
            let accountId = try (r[2] as Int64?).map { try account(s, $0) }
            let values: [DatabaseValue] = [jobId.databaseValue, entryId.databaseValue, accountId.databaseValue, r[3]]
            if ignoreRepeats {
                try out.execute(sql: "INSERT OR IGNORE INTO jobs (job_id, entry_id, account_id, result) VALUES (?, ?, ?, ?)",
                                arguments: StatementArguments(values))
                if out.changesCount > 0 { counts.jobResults += 1 }
            } else {
                try insert(out, "jobs", ["job_id", "entry_id", "account_id", "result"], values, what: "the job id \(jobId)")
                counts.jobResults += 1
            }
        }
    }

    /// Payments, refund records, holds, their grant shares, grants and monitors: each follows its
    /// account (a refund record, its charge's entry; a grant share, its hold).
    mutating func copyOwned(out: Database, inputs: [Database]) throws {
        let tables: [(table: String, select: String, what: String, count: WritableKeyPath<RepartitionCounts, Int64>?)] = [
            ("payments", "SELECT x.* FROM main.payments x JOIN temp.repartition_route r ON r.account_id = x.account_id WHERE r.target = ?",
             "the payment id", \.payments),
            ("refunded", """
                SELECT x.* FROM main.refunded x JOIN main.entries e ON e.id = x.entry_id
                JOIN temp.repartition_route r ON r.account_id = e.account_id WHERE r.target = ?
                """, "the refund record of entry", \.refundRecords),
            ("holds", "SELECT x.* FROM main.holds x JOIN temp.repartition_route r ON r.account_id = x.account_id WHERE r.target = ?",
             "the hold id", \.holds),
            ("hold_grants", """
                SELECT x.* FROM main.hold_grants x JOIN main.holds h ON h.hold_id = x.hold_id
                JOIN temp.repartition_route r ON r.account_id = h.account_id WHERE r.target = ?
                """, "the hold share", nil),
            ("grants", "SELECT x.* FROM main.grants x JOIN temp.repartition_route r ON r.account_id = x.account_id WHERE r.target = ?",
             "the grant id", \.grants),
            ("monitors", "SELECT x.* FROM main.monitors x JOIN temp.repartition_route r ON r.account_id = x.account_id WHERE r.target = ?",
             "the monitor", \.monitors),
        ]
        for (s, db) in inputs.enumerated() {
            for t in tables {
                let rows = try Row.fetchCursor(db, sql: t.select, arguments: [target])
                while let row = try rows.next() {
                    let columns = Array(row.columnNames)
                    var values = Array(row.databaseValues)
                    for (i, name) in columns.enumerated() where !values[i].isNull {
                        switch name {
                        case "account_id": values[i] = try account(s, Int64.fromDatabaseValue(values[i]) ?? 0).databaseValue
                        case "entry_id": values[i] = try entry(s, Int64.fromDatabaseValue(values[i]) ?? 0).databaseValue
                        default: break
                        }
                    }
                    try insert(out, t.table, columns, values, what: "\(t.what) \(values[0])")
                    if let k = t.count { counts[keyPath: k] += 1 }
                }
            }
        }
    }

    /// What the old worker had kept to announce and not yet sent: an invalidation or event of a
    /// user goes with the user; one of no user (a run's `renewal.completed`) to the first new
    /// file its old file feeds, so it is sent once.
    mutating func copyPendingSends(out: Database, inputs: [Database]) throws {
        for (s, db) in inputs.enumerated() {
            let firstTarget = LedgerRepartition.targets(of: feeding[s], from: sourceCount, to: targetCount).first
            let rows = try Row.fetchCursor(db, sql: "SELECT kind, payload FROM main.pending_sends ORDER BY seq")
            while let r = try rows.next() {
                let payload: String = r[1]
                // Read as the worker reads it to send it: the stored encoding, or an older row's JSON.
                let owner = try PendingSend(kind: r[0], payload: payload)?.userId
                guard owner.map({ route($0) == target }) ?? (firstTarget == target) else { continue }
                try out.execute(sql: "INSERT INTO pending_sends (kind, payload) VALUES (?, ?)", arguments: [r[0] as Int64, payload])
                counts.pendingSends += 1
            }
        }
    }

    /// Completed renewal runs. From one old file, as they are; from several, each run's earliest
    /// slot, kept only when every old file completed it: a run the new file believes missed is
    /// caught up at start-up and renews no account twice (each account's period says whether it
    /// is due), while a run believed done that was not would leave accounts unrenewed a day.
    mutating func copyRuns(out: Database, inputs: [Database]) throws {
        var runs: [String: (slot: Int64, completed: Int64, seen: Int)] = [:]
        for db in inputs {
            for r in try Row.fetchAll(db, sql: "SELECT name, slot_ms, completed_ms FROM main.scheduler_runs") {
                let name: String = r[0], slot: Int64 = r[1], completed: Int64 = r[2]
                if let known = runs[name] {
                    runs[name] = slot < known.slot ? (slot, completed, known.seen + 1) : (known.slot, known.completed, known.seen + 1)
                } else {
                    runs[name] = (slot, completed, 1)
                }
            }
        }
        for (name, run) in runs.sorted(by: { $0.key < $1.key }) where run.seen == inputs.count {
            try out.execute(sql: "INSERT INTO scheduler_runs (name, slot_ms, completed_ms) VALUES (?, ?, ?)",
                            arguments: [name, run.slot, run.completed])
            counts.schedulerRuns += 1
        }
    }

    /// An INSERT whose primary-key conflict is reported as two old files sharing an id.
    func insert(_ out: Database, _ table: String, _ columns: [String], _ values: [DatabaseValue], what: String) throws {
        let sql = "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
        do {
            try out.cachedStatement(sql: sql).execute(arguments: StatementArguments(values))
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw RepartitionError(.idConflict, "New partition \(target) of \(targetCount) would hold \(what) twice: the old partitions \(feeding.map(String.init).joined(separator: ", ")) that merge into it both use it (ids are unique per partition). Rename one, or choose a count that does not merge them (a multiple of the old count). (\(error.message ?? "constraint"))")
        }
    }
}
