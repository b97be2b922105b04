import Foundation
import GRDB
import LedgerModel

/// One transaction of the ledger: the state the writer keeps while it applies a batch.
///
/// - Each touched account is loaded once (the tail's lagging record, else its row). Only a
///   tier or renewal change writes the row (`flush`); a balance-only change leaves the row to
///   the merge and the account to the tail, so a job writes no random page.
/// - Every entry and every stored result is an append (`entries`, `job_log`), recorded in the
///   tail as it is written, so later commands of the batch see it. Should the transaction not
///   commit, the ledger marks the tail stale and rereads it from the file before its next use
///   (`LedgerTail.invalidate`): rollbacks are rare, and copying state to undo them would cost
///   every batch.
/// - Entry ids are assigned here (`lastEntryId + 1`) and the hash chain is extended in memory;
///   both are reloaded from the last entry when the transaction starts (one read of the rightmost
///   page), so nothing is trusted across transactions or across writers.
/// - Every command checks all its refusals before it writes anything, so a refused command
///   leaves no trace but its stored result and no savepoint is needed; an SQLite error aborts
///   the whole transaction, and the worker retries the batch.
/// - Time is read once per transaction, as two values. `decisionNowMs` is the clock: every
///   decision (is a hold or grant due, is an account due for renewal, when does a new hold or
///   grant expire, where does a renewal period start) follows it. `entryTimeMs` is the clock, or
///   the last entry's time if that is later: it stamps what is written (entries, their
///   invalidations and events), so entry ids and `createdAt` increase together even if the clock
///   steps back. After a forward jump is corrected, entries keep the jumped time until the clock
///   catches up, but nothing falls due early: decisions never take the last entry's time.
final class LedgerTransaction {
    let db: Database
    let config: LedgerConfig
    /// The clock: what every due, eligible and expired decision compares with.
    let decisionNowMs: Int64
    /// The clock, never before the last entry's time: what stamps entries and their messages.
    let entryTimeMs: Int64
    let writable: Bool
    /// The unmerged tail, which a writable transaction extends as it writes.
    let tail: LedgerTail

    /// By the user id's bytes (see `IdentityKey`).
    private var byUser: [IdentityKey: AccountRecord] = [:]
    private var byId: [Int64: AccountRecord] = [:]
    private var missing: Set<IdentityKey> = []
    private(set) var lastEntryId: Int64 = 0
    private var lastHash = EntryHasher.genesis
    private var hasher = EntryHasher()
    /// The statements every job runs, fetched once per transaction (see `RawStatement`).
    let hot: HotStatements
    /// Reservations, grants and monitors: what the current command changed on the side.
    var extras = ExtrasState()

    struct HotStatements {
        let jobById, appendJob, insertEntry, accountByUser, updateAccountFull: RawStatement

        init(_ db: Database) throws {
            jobById = try RawStatement(db, SQL.jobById)
            appendJob = try RawStatement(db, SQL.appendJob)
            insertEntry = try RawStatement(db, SQL.insertEntry)
            accountByUser = try RawStatement(db, SQL.accountByUser)
            updateAccountFull = try RawStatement(db, SQL.updateAccountFull)
        }
    }

    init(db: Database, config: LedgerConfig, tail: LedgerTail, clockMs: Int64, writable: Bool) throws {
        self.db = db
        self.config = config
        self.writable = writable
        self.tail = tail
        hot = try HotStatements(db)
        var lastCreated = Int64.min
        if let row = try Row.fetchOne(db.cachedStatement(sql: SQL.lastEntry)) {
            lastEntryId = row[0]
            lastHash = [UInt8](row[1] as Data)
            lastCreated = row[2]
        }
        decisionNowMs = clockMs
        entryTimeMs = max(clockMs, lastCreated)
    }

    // MARK: Accounts

    func account(_ userId: String) throws -> AccountRecord? {
        let key = IdentityKey(userId)
        if let a = byUser[key] { return a }
        if missing.contains(key) { return nil }
        if let lagging = tail.account(userId: userId) { return try expiredIfDue(remember(lagging)) }
        let q = hot.accountByUser
        q.reset()
        try q.bind(1, userId)
        guard try q.step() else {
            q.reset()
            missing.insert(key)
            return nil
        }
        let a = AccountRecord(q)
        q.reset()
        return try expiredIfDue(remember(a))
    }

    func account(id: Int64) throws -> AccountRecord? {
        if let a = byId[id] { return a }
        if let lagging = tail.account(id: id) { return try expiredIfDue(remember(lagging)) }
        let q = try RawStatement(db, SQL.accountById)
        q.reset()
        try q.bind(1, id)
        guard try q.step() else {
            q.reset()
            return nil
        }
        let a = AccountRecord(q)
        q.reset()
        return try expiredIfDue(remember(a))
    }

    /// Keeps the account of the statement's current row (selecting `AccountRecord.columns`),
    /// unless the batch already holds a newer copy of it.
    func account(current q: RawStatement) -> AccountRecord {
        let id = q.int64(0)
        return byId[id] ?? remember(tail.account(id: id) ?? AccountRecord(q))
    }

    private func remember(_ a: AccountRecord) -> AccountRecord {
        byUser[IdentityKey(a.userId)] = a
        byId[a.id] = a
        return a
    }

    /// Inserts a new account at once (entries need its rowid); later changes go through `flush`.
    func createAccount(_ userId: String, tier: String) throws -> AccountRecord {
        let stmt = try db.cachedStatement(sql: SQL.insertAccount)
        try stmt.execute(arguments: [userId, tier, decisionNowMs, decisionNowMs, CalendarMonth.adding(months: 1, to: decisionNowMs), decisionNowMs])
        missing.remove(IdentityKey(userId))
        return remember(AccountRecord(id: db.lastInsertedRowID, userId: userId, tier: tier, nowMs: decisionNowMs))
    }

    /// Writes the row of every account whose tier or renewal clock changed in this transaction
    /// (the renewal selection reads them by SQL); a balance-only change marks the account
    /// lagging instead, and its row is written by the merge.
    func flush() throws {
        for a in byId.values where a.dirtyBalance || a.dirtyRenewal {
            if a.dirtyRenewal {
                let u = hot.updateAccountFull
                u.reset()
                try u.bind(1, a.tier); try u.bind(2, a.balance); try u.bind(3, a.spent); try u.bind(4, a.anchorMs); try u.bind(5, a.periods)
                try u.bind(6, a.lastRenewalMs); try u.bind(7, a.nextRenewalMs); try u.bind(8, a.expiresMs); try u.bind(9, a.entryCount)
                try u.bind(10, a.lastEntryId); try u.bind(11, a.id)
                try u.run()
                a.lagging = false
            } else {
                a.lagging = true
            }
            try assertReservations(a)
            tail.track(a)
            a.dirtyBalance = false
            a.dirtyRenewal = false
        }
        try flushExtras()
    }

    /// Appends the result of `jobId` to `job_log` and to the tail (see `perform`).
    func appendJob(_ jobId: String, entryId: Int64?, accountId: Int64?, result: StoredResult?) throws {
        let seq = tail.lastJobSeq + 1
        let q = hot.appendJob
        q.reset()
        try q.bind(1, seq)
        try q.bind(2, jobId)
        try q.bind(3, entryId)
        try q.bind(4, accountId)
        try q.bind(5, result)
        try q.run()
        tail.lastJobSeq = seq
        try tail.storeJob(jobId, LedgerTail.Job(seq: seq, entryId: entryId, accountId: accountId, result: result))
    }

    /// The tail's entries of an account (all after `tail.mergedEntryId`, this batch's
    /// included), oldest first.
    func tailEntries(of accountId: Int64) -> [LedgerTail.Entry] {
        tail.entries[accountId] ?? []
    }
    /// The accounts whose extras columns changed (see `flushExtras`).
    func dirtyExtrasAccounts() -> [AccountRecord] { byId.values.filter(\.dirtyExtras) }

    // MARK: Entries

    /// Appends an entry moving `a`'s balance by `amount` (the caller has checked the range).
    func appendEntry(_ a: AccountRecord, kind: Schema.Kind, operationType: String, amount: Int64,
                     jobId: String?, refundOf: Int64? = nil, metadata: String?) throws -> Int64 {
        let id = lastEntryId + 1
        willChange(a)
        let before = a.balance
        let after = before + amount
        let hash = hasher.hash(previous: lastHash, .init(
            id: id, accountId: a.id, userId: a.userId, createdMs: entryTimeMs, kind: kind.rawValue,
            operationType: operationType, amount: amount, balanceBefore: before, balanceAfter: after,
            jobId: jobId, refundOf: refundOf, metadata: metadata))
        let q = hot.insertEntry
        q.reset()
        try q.bind(1, id); try q.bind(2, a.id); try q.bind(3, entryTimeMs); try q.bind(4, kind.rawValue); try q.bind(5, operationType)
        try q.bind(6, amount); try q.bind(7, before); try q.bind(8, after); try q.bind(9, jobId); try q.bind(10, refundOf)
        try q.bind(11, metadata); try q.bind(12, blob: hash)
        try q.bind(13, Schema.Kind.spentAfter(kind: kind.rawValue, amount: amount, spentBefore: a.spent))
        try q.run()
        if writable {
            tail.entries[a.id, default: []].append(.init(id: id, createdMs: entryTimeMs, operationType: tail.intern(operationType), amount: amount))
            tail.entryCount += 1
            tail.lastEntryId = id
        }
        lastEntryId = id
        lastHash = hash
        a.balance = after
        a.entryCount += 1
        a.lastEntryId = id
        a.dirtyBalance = true
        a.entryInCommand = id
        return id
    }

    struct EntryInfo {
        var accountId: Int64
        var kind: Int64
        var operationType: String
        var amount: Int64
        var balanceAfter: Int64
        var createdMs: Int64
    }

    func entry(_ id: Int64) throws -> EntryInfo? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: SQL.entryById), arguments: [id]) else { return nil }
        return EntryInfo(accountId: row[0], kind: row[1], operationType: row[2], amount: row[3],
                         balanceAfter: row[4], createdMs: row[5])
    }

    /// The change to publish for an entry or a tier change of `a`, with `a`'s current state.
    func change(_ a: AccountRecord, entryId: Int64?, operationType: String?, amount: Int64?, atMs: Int64) -> BalanceChange {
        BalanceChange(userId: a.userId, tokensBalance: a.balance, tokensSpent: a.spent, tier: a.tier,
                      ledgerEntryId: entryId, operationType: operationType, tokensAmount: amount,
                      at: LedgerTime.date(atMs), held: a.held)
    }

    // MARK: SQL

    enum SQL {
        static let lastEntry = "SELECT id, hash, created_ms FROM entries ORDER BY id DESC LIMIT 1"
        static let accountByUser = "SELECT \(AccountRecord.columns) FROM accounts WHERE user_id = ?"
        static let accountById = "SELECT \(AccountRecord.columns) FROM accounts WHERE id = ?"
        static let insertAccount = """
            INSERT INTO accounts (user_id, tier, balance, spent, anchor_ms, periods, last_renewal_ms,
                next_renewal_ms, expires_ms, created_ms, entry_count, last_entry_id)
            VALUES (?, ?, 0, 0, ?, 0, ?, ?, NULL, ?, 0, NULL)
            """
        static let updateAccountFull = """
            UPDATE accounts SET tier = ?, balance = ?, spent = ?, anchor_ms = ?, periods = ?,
                last_renewal_ms = ?, next_renewal_ms = ?, expires_ms = ?, entry_count = ?, last_entry_id = ?
            WHERE id = ?
            """
        static let updateAccountBalance =
            "UPDATE accounts SET balance = ?, spent = ?, entry_count = ?, last_entry_id = ? WHERE id = ?"
        static let appendJob = "INSERT INTO job_log (seq, job_id, entry_id, account_id, result) VALUES (?, ?, ?, ?, ?)"
        static let insertEntry = """
            INSERT INTO entries (id, account_id, created_ms, kind, operation_type, amount, balance_before,
                balance_after, job_id, refund_of, metadata, hash, spent_after)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """
        static let entryById =
            "SELECT account_id, kind, operation_type, amount, balance_after, created_ms FROM entries WHERE id = ?"
        static let jobById = "SELECT entry_id, account_id, result FROM jobs WHERE job_id = ?"
        static let mergeJob = "INSERT OR IGNORE INTO jobs (job_id, entry_id, account_id, result) VALUES (?, ?, ?, ?)"
    }
}
