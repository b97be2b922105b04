import GRDB

/// One monitor of an account, for the operator console.
public struct MonitorRecord: Sendable, Equatable {
    public let monitorId: String
    public let threshold: Int64
}

/// The figures of one period, for the console's charts. Days are UTC days (their start, ms).
public struct PeriodFigures: Sendable, Equatable {
    /// Tokens spent (charges and debits, as positive numbers) per day and operation type (its UTF-8 bytes).
    public var spentByDay: [Int64: [[UInt8]: Int64]] = [:]
    /// Tokens credited (every positive entry) per day.
    public var creditedByDay: [Int64: Int64] = [:]
    /// Tokens debited (every negative entry but lapses, as positive numbers) per day.
    public var debitedByDay: [Int64: Int64] = [:]
    /// Purchases per tier the buying account holds now (an entry does not record its tier).
    public var purchasesByTier: [[UInt8]: Int64] = [:]
    /// Accounts renewed per day (the scheduler runs once a day by default: one day, one run).
    public var renewalsByDay: [Int64: Int64] = [:]
    /// Tokens written off when grants lapsed.
    public var tokensLapsed: Int64 = 0
    /// Entries read; when `truncated`, the period has more than the limit and the figures cover
    /// only its first `entriesRead` entries: a later read from `nextEntryId` carries on.
    public var entriesRead = 0
    public var truncated = false
    /// Where a later read of the same period carries on (every entry below it has been counted).
    public var nextEntryId: Int64 = 1

    public init() {}

    /// Adds the figures of other entries (another read of the same period, or another partition's).
    public mutating func add(_ other: PeriodFigures) {
        for (d, m) in other.spentByDay { for (t, v) in m { spentByDay[d, default: [:]][t, default: 0] += v } }
        for (d, v) in other.creditedByDay { creditedByDay[d, default: 0] += v }
        for (d, v) in other.debitedByDay { debitedByDay[d, default: 0] += v }
        for (t, v) in other.purchasesByTier { purchasesByTier[t, default: 0] += v }
        for (d, v) in other.renewalsByDay { renewalsByDay[d, default: 0] += v }
        tokensLapsed += other.tokensLapsed
        entriesRead += other.entriesRead
    }
}

/// Reads the console needs beyond the job queries: each a few index seeks, or a scan with a
/// stated limit, so a page stays fast on a ledger of any size.
extension LedgerReader {
    /// The id of the newest entry (0 for none).
    public func lastEntryId() throws -> Int64 {
        try reader.read { db in try Int64.fetchOne(db, sql: "SELECT max(id) FROM entries") ?? 0 }
    }

    /// How many job results this file has stored (every job with an id, a refusal or a query
    /// too): `job_log`'s newest `seq`, or the merge watermark once the log is pruned behind it.
    /// Sampled over time it is the rate jobs are applied, which the entries alone miss (a
    /// refusal, a hold or a tier change writes no entry).
    public func appliedJobCount() throws -> Int64 {
        try reader.read { db in
            try Int64.fetchOne(db, sql: """
                SELECT max(coalesce((SELECT max(seq) FROM job_log), 0),
                           coalesce((SELECT value FROM storage_state WHERE name = 'merged_job_seq'), 0))
                """) ?? 0
        }
    }

    /// The newest lease epoch recorded in this file (nil before any worker took the lease).
    public func currentEpoch() throws -> Int64? {
        try reader.read { db in try Int64.fetchOne(db, sql: "SELECT max(epoch) FROM epochs") }
    }

    /// An account's monitors, at most `limit` (by id bytes).
    public func monitors(userId: String, limit: Int) throws -> [MonitorRecord] {
        try reader.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT m.monitor_id, m.threshold FROM monitors m JOIN accounts a ON a.id = m.account_id
                WHERE a.user_id = ? ORDER BY CAST(m.monitor_id AS BLOB) LIMIT ?
                """, arguments: [userId, max(0, limit)])
            return rows.map { MonitorRecord(monitorId: $0[0], threshold: $0[1]) }
        }
    }

    /// The figures of the entries written in `[startMs, endMs)`, reading at most `maxEntries`,
    /// from the period's first entry or, with `fromEntryId`, from where an earlier read stopped
    /// (its `nextEntryId`).
    ///
    /// Entry ids and times rise together, so the period's first entry is found by a binary
    /// search over ids (a few dozen seeks) and the period is then read in id order: no index on
    /// time is needed and none is added to the hot path.
    public func figures(startMs: Int64, endMs: Int64, maxEntries: Int, fromEntryId: Int64? = nil) throws -> PeriodFigures {
        try reader.read { db in
            var figures = PeriodFigures()
            var lo: Int64 = 1
            if let fromEntryId {
                lo = fromEntryId
            } else {
                let maxId = try Int64.fetchOne(db, sql: "SELECT max(id) FROM entries") ?? 0
                let timeAt = try db.cachedStatement(sql: "SELECT id, created_ms FROM entries WHERE id >= ? ORDER BY id LIMIT 1")
                // The smallest id whose entry is at or after startMs.
                var hi = maxId + 1
                while lo < hi {
                    let mid = lo + (hi - lo) / 2
                    guard let row = try Row.fetchOne(timeAt, arguments: [mid]) else { hi = mid; continue }
                    let created: Int64 = row[1]
                    if created < startMs { lo = (row[0] as Int64) + 1 } else { hi = mid }
                }
            }
            figures.nextEntryId = lo
            let day: Int64 = 86_400_000
            // Only the columns every entry needs; the operation type is decoded for spending
            // entries alone, and a buyer's tier is looked up for purchases alone.
            let rows = try Row.fetchCursor(db, sql: """
                SELECT created_ms, kind, amount, id, operation_type, account_id
                FROM entries WHERE id >= ? ORDER BY id LIMIT ?
                """, arguments: [lo, maxEntries + 1])
            let tierOf = try db.cachedStatement(sql: "SELECT tier FROM accounts WHERE id = ?")
            while let r = try rows.next() {
                let created: Int64 = r[0]
                if created >= endMs { break }
                if figures.entriesRead == maxEntries { figures.truncated = true; break }
                figures.entriesRead += 1
                figures.nextEntryId = (r[3] as Int64) + 1
                let kind: Int64 = r[1], amount: Int64 = r[2]
                let d = created - ((created % day) + day) % day
                switch Schema.Kind(rawValue: kind) {
                case .charge, .debit:
                    figures.spentByDay[d, default: [:]][Array((r[4] as String).utf8), default: 0] += -amount
                case .expiry:
                    figures.tokensLapsed += -amount
                case .purchase:
                    let tier = try String.fetchOne(tierOf, arguments: [r[5] as Int64]) ?? ""
                    figures.purchasesByTier[Array(tier.utf8), default: 0] += 1
                case .renewal:
                    figures.renewalsByDay[d, default: 0] += 1
                default: break
                }
                if Schema.Kind(rawValue: kind) != .expiry {
                    if amount > 0 { figures.creditedByDay[d, default: 0] += amount }
                    if amount < 0 { figures.debitedByDay[d, default: 0] += -amount }
                }
            }
            return figures
        }
    }
}
