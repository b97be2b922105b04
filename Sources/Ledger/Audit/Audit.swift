import Foundation
import GRDB

/// `verify`: checks every invariant of a ledger file and reports every violation.
///
/// One read transaction (a consistent snapshot, even while a worker writes), one pass over the
/// entries in id order: memory is one small record per account.
extension Ledger {
    /// Opens `path` read-only and returns every violation found (empty: the ledger is sound).
    /// Throws only when the file cannot be read as a ledger.
    /// `progress` hears (entries checked, entries in all) now and then during the pass.
    public static func verify(path: String, progress: ((_ checked: Int64, _ total: Int64) -> Void)? = nil) throws -> [AuditViolation] {
        // Read-only: a check must not migrate or checkpoint what it checks (see `LedgerReader`).
        try LedgerReader(path: path).verify(progress: progress)
    }
}

struct Auditor {
    typealias Code = AuditViolation.Code
    let db: Database
    var violations: [AuditViolation] = []
    /// Hears (entries checked, entries in all): the pass over the entries is what takes long.
    var progress: ((_ checked: Int64, _ total: Int64) -> Void)?
    /// How many entries there are: the highest id, since ids run from 1 without gaps (a gap is a
    /// violation), but for the gaps a repartition recorded.
    var entryTotal: Int64 = 0

    /// One account: its row brought forward by the entries after the row's `last_entry_id`
    /// (the unmerged tail; see `LedgerTail`), exactly as the ledger does at open, and what all
    /// its entries give. The first must equal the second.
    struct AccountCheck {
        var userId: String
        var balance: Int64, spent: Int64, entryCount: Int64, lastEntryId: Int64?
        let rowLastEntryId: Int64?
        let rowBalance: Int64, rowSpent: Int64, rowCount: Int64
        var runningAfter: Int64 = 0, sum: Int64 = 0, replaySpent: Int64 = 0, count: Int64 = 0, lastSeen: Int64? = nil
        var lagReported = false

        init(userId: String, balance: Int64, spent: Int64, entryCount: Int64, lastEntryId: Int64?) {
            self.userId = userId
            self.balance = balance
            self.spent = spent
            self.entryCount = entryCount
            self.lastEntryId = lastEntryId
            rowLastEntryId = lastEntryId
            (rowBalance, rowSpent, rowCount) = (balance, spent, entryCount)
        }
    }
    /// Entries up to this id are merged: in `entry_index`, and in their account's row.
    var mergedEntryId: Int64 = 0
    var mergedEntryCount: Int64 = 0
    /// A file built by `repartition` keeps its entries' old ids, with gaps, up to this id, and
    /// records how many entries it was built with (see `LedgerRepartition`).
    var repartitionLastEntryId: Int64 = 0
    var repartitionEntries: Int64 = 0
    var repartitionSeen: Int64 = 0
    /// Entries read so far (the progress; equal to the id in a file without gaps).
    var checked: Int64 = 0

    init(db: Database) { self.db = db }

    mutating func add(_ code: String, user: String? = nil, entry: Int64? = nil, _ message: String) {
        violations.append(AuditViolation(code: code, userId: user, entryId: entry, message: message))
    }

    mutating func run() throws {
        for line in try String.fetchAll(db, sql: "PRAGMA quick_check") where line != "ok" {
            add(Code.integrity, "SQLite quick_check: \(line)")
        }
        let triggers = Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        for name in ["entries_no_update", "entries_no_delete"] where !triggers.contains(name) {
            add(Code.triggersMissing, "The append-only trigger \(name) is missing.")
        }
        // A v1 file (not opened by this version yet) has no tail: every entry is in its row.
        let v2 = try Bool.fetchOne(db, sql: "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'storage_state'") ?? false
        mergedEntryId = v2
            ? try Int64.fetchOne(db, sql: "SELECT value FROM storage_state WHERE name = 'merged_entry_id'") ?? 0
            : Int64.max
        if v2 {
            repartitionLastEntryId = try Int64.fetchOne(db, sql: "SELECT value FROM storage_state WHERE name = 'repartition_last_entry_id'") ?? 0
            repartitionEntries = try Int64.fetchOne(db, sql: "SELECT value FROM storage_state WHERE name = 'repartition_entries'") ?? 0
        }
        var accounts: [Int64: AccountCheck] = [:]
        for r in try Row.fetchAll(db, sql: "SELECT id, user_id, balance, spent, entry_count, last_entry_id FROM accounts") {
            let a = AccountCheck(userId: r[1], balance: r[2], spent: r[3], entryCount: r[4], lastEntryId: r[5])
            if a.balance < 0 { add(Code.negativeBalance, user: a.userId, "The account of \(a.userId) has a negative balance of \(a.balance).") }
            accounts[r[0]] = a
        }
        entryTotal = try Int64.fetchOne(db, sql: "SELECT max(id) FROM entries") ?? 0
        if repartitionLastEntryId > 0 { entryTotal = repartitionEntries + max(0, entryTotal - repartitionLastEntryId) }
        progress?(0, entryTotal)
        try checkEntries(&accounts)
        progress?(entryTotal, entryTotal)
        if repartitionSeen != repartitionEntries {
            add(Code.entryGap, "The ledger was built by repartition with \(repartitionEntries) entries up to entry \(repartitionLastEntryId); \(repartitionSeen) are there.")
        }
        if v2 { try checkEntryIndex(mergedEntries: mergedEntryCount) }
        for a in accounts.values.sorted(by: { $0.userId < $1.userId }) {
            let u = a.userId
            if a.rowLastEntryId == nil && (a.rowBalance != 0 || a.rowSpent != 0 || a.rowCount != 0) {
                add(Code.balanceMismatch, user: u, "The account row of \(u) records no entry but a balance of \(a.rowBalance), spent \(a.rowSpent) and \(a.rowCount) entries.")
            }
            if a.balance != a.sum { add(Code.balanceMismatch, user: u, "The balance of \(u) is \(a.balance) but its entries sum to \(a.sum).") }
            if a.spent != a.replaySpent { add(Code.spentMismatch, user: u, "The tokensSpent of \(u) is \(a.spent) but its entries give \(a.replaySpent).") }
            if a.entryCount != a.count || a.lastEntryId != a.lastSeen {
                add(Code.accountBookkeeping, user: u, "The account of \(u) records \(a.entryCount) entries ending at \(a.lastEntryId.map(String.init) ?? "none"); found \(a.count) ending at \(a.lastSeen.map(String.init) ?? "none").")
            }
        }
        try checkRefunds(accounts)
        try checkJobs(v2: v2)
        // holds, grants, lapses, monitors (Audit+Extras), against the balances the entries give: an
        // account row lags behind its unmerged entries.
        try checkExtras(balances: Dictionary(uniqueKeysWithValues: accounts.map { ($0.key, $0.value.sum) }))
    }

    mutating func checkEntries(_ accounts: inout [Int64: AccountCheck]) throws {
        var hasher = EntryHasher()
        var previousHash = EntryHasher.genesis
        var previousId: Int64 = 0
        // A file older than the migration `entries-spent-after` (the audit accepts v1) has no column.
        let spentAfter = try db.columns(in: "entries").contains { $0.name == "spent_after" } ? "spent_after" : "NULL"
        let rows = try Row.fetchCursor(db, sql: """
            SELECT id, account_id, created_ms, kind, operation_type, amount, balance_before, balance_after,
                job_id, refund_of, metadata, hash, \(spentAfter) FROM entries ORDER BY id
            """)
        while let r = try rows.next() {
            let id: Int64 = r[0], accountId: Int64 = r[1], kind: Int64 = r[3]
            let amount: Int64 = r[5], before: Int64 = r[6], after: Int64 = r[7]
            let stored = [UInt8]((r[11] as Data?) ?? Data())
            if id <= repartitionLastEntryId { repartitionSeen += 1 }
            // Ids kept by a repartition may skip (the other partitions' entries went elsewhere).
            if id != previousId + 1 && !(id > previousId && id <= repartitionLastEntryId) {
                add(Code.entryGap, entry: id, id > previousId + 1
                    ? "Entries \(previousId + 1) to \(id - 1) are missing before entry \(id)."
                    : "Entry \(id) follows entry \(previousId) out of order.")
            }
            let userId = accounts[accountId]?.userId
            let expected = hasher.hash(previous: previousHash, .init(
                id: id, accountId: accountId, userId: userId ?? "", createdMs: r[2], kind: kind, operationType: r[4],
                amount: amount, balanceBefore: before, balanceAfter: after, jobId: r[8], refundOf: r[9], metadata: r[10]))
            if expected != stored {
                add(Code.hashMismatch, user: userId, entry: id, "Entry \(id) does not match the hash chain: it was altered, or an entry before it was removed or moved.")
            }
            previousHash = stored
            previousId = max(previousId, id)
            checked += 1
            if checked % 4096 == 0 { progress?(checked, entryTotal) }
            guard var a = accounts[accountId] else {
                add(Code.orphanEntry, entry: id, "Entry \(id) refers to account \(accountId), which does not exist.")
                continue
            }
            let u = a.userId
            if before != a.runningAfter {
                add(Code.chainBroken, user: u, entry: id, "Entry \(id) of \(u) starts from \(before) but the previous entry left \(a.runningAfter).")
            }
            let (sumAfter, overflow) = before.addingReportingOverflow(amount)
            let spending = kind == Schema.Kind.charge.rawValue || kind == Schema.Kind.debit.rawValue
            let negative = spending || kind == Schema.Kind.expiry.rawValue  // extras: a lapse writes tokens off
            if overflow || sumAfter != after || Schema.Kind(rawValue: kind) == nil || (negative ? amount > 0 : amount < 0) {
                add(Code.entryArithmetic, user: u, entry: id, "Entry \(id) of \(u) is inconsistent: \(before) + \(amount) recorded as \(after) (kind \(kind)).")
            }
            if after < 0 { add(Code.negativeBalance, user: u, entry: id, "Entry \(id) leaves \(u) with a negative balance of \(after).") }
            var o = false
            (a.sum, o) = a.sum.addingReportingOverflow(amount)
            if o { add(Code.overflow, user: u, entry: id, "The entries of \(u) overflow 64 bits at entry \(id).") }
            if spending {
                (a.replaySpent, o) = a.replaySpent.addingReportingOverflow(-amount)
                if o { add(Code.overflow, user: u, entry: id, "The tokensSpent of \(u) overflows 64 bits at entry \(id).") }
            } else if kind == Schema.Kind.refund.rawValue {
                a.replaySpent = max(0, a.replaySpent - amount)
            }
            if let recorded: Int64 = r[12], recorded != a.replaySpent {
                add(Code.spentAfterMismatch, user: u, entry: id, "Entry \(id) of \(u) records tokensSpent \(recorded) after it; its entries up to there give \(a.replaySpent).")
            }
            if id <= mergedEntryId { mergedEntryCount += 1 }
            a.runningAfter = after
            a.count += 1
            a.lastSeen = id
            if id == a.rowLastEntryId && (a.sum != a.rowBalance || a.replaySpent != a.rowSpent || a.count != a.rowCount) {
                // The row as it was written: its entries up to its last entry must agree with it.
                add(Code.balanceMismatch, user: u, entry: id, "The account row of \(u) records balance \(a.rowBalance), spent \(a.rowSpent) and \(a.rowCount) entries at entry \(id); its entries up to there give \(a.sum), \(a.replaySpent) and \(a.count).")
            }
            if id > a.rowLastEntryId ?? 0 {
                // After the row: the tail, folded into the row as the ledger does.
                if id <= mergedEntryId && !a.lagReported {
                    a.lagReported = true
                    add(Code.accountBookkeeping, user: u, entry: id, "The account row of \(u) ends at entry \(a.rowLastEntryId.map(String.init) ?? "none") but entry \(id) is merged: merged entries must be in the row.")
                }
                a.balance = after
                a.entryCount += 1
                a.lastEntryId = id
                if spending { a.spent = a.spent &- amount } else if kind == Schema.Kind.refund.rawValue { a.spent = max(0, a.spent - amount) }
            }
            accounts[accountId] = a
        }
    }

    /// `entry_index` holds one row per merged entry (counted in `checkEntries`): a merge that
    /// skipped or doubled entries would show here.
    mutating func checkEntryIndex(mergedEntries: Int64) throws {
        let rows = try Int64.fetchOne(db, sql: "SELECT count(*) FROM entry_index WHERE entry_id <= ?", arguments: [mergedEntryId]) ?? 0
        if rows != mergedEntries {
            add(Code.indexIncomplete, "The history index holds \(rows) rows for the \(mergedEntries) merged entries.")
        }
    }

    mutating func checkRefunds(_ accounts: [Int64: AccountCheck]) throws {
        var recorded: [Int64: Int64] = [:]
        for r in try Row.fetchAll(db, sql: "SELECT entry_id, amount FROM refunded") { recorded[r[0]] = r[1] }
        let rows = try Row.fetchAll(db, sql: """
            SELECT r.refund_of, sum(r.amount), r.account_id, c.id, c.account_id, c.kind, c.amount
            FROM entries r LEFT JOIN entries c ON c.id = r.refund_of
            WHERE r.refund_of IS NOT NULL GROUP BY r.refund_of, r.account_id ORDER BY r.refund_of
            """)
        for r in rows {
            let chargeId: Int64 = r[0], refunded: Int64 = r[1], accountId: Int64 = r[2]
            let u = accounts[accountId]?.userId
            let found: Int64? = r[3], chargeAccount: Int64? = r[4], kind: Int64? = r[5], charged: Int64? = r[6]
            guard found != nil, chargeAccount == accountId,
                  kind == Schema.Kind.charge.rawValue || kind == Schema.Kind.debit.rawValue, let charged
            else {
                add(Code.refundOrphan, user: u, entry: chargeId, "Refunds of \(u ?? "?") name entry \(chargeId), which is not a charge or debit of the same account.")
                continue
            }
            if refunded > -charged {
                add(Code.refundExceedsCharge, user: u, entry: chargeId, "Entry \(chargeId) charged \(-charged) but \(refunded) were refunded.")
            }
            if recorded.removeValue(forKey: chargeId) != refunded {
                add(Code.refundedTotal, user: u, entry: chargeId, "The refunded total of entry \(chargeId) disagrees with its refund entries (\(refunded)).")
            }
        }
        for (chargeId, amount) in recorded.sorted(by: { $0.key < $1.key }) where amount != 0 {
            add(Code.refundedTotal, entry: chargeId, "Entry \(chargeId) is recorded as refunded by \(amount) but no refund entry names it.")
        }
    }
}
