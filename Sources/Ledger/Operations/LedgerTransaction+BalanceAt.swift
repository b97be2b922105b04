import GRDB
import LedgerModel

/// balanceAt: the balance and spent total as they stood at a moment ("what did I have on the 3rd?").
///
/// Entry ids and times rise together, so the last entry at or before `at` is one seek: among the
/// account's tail entries in memory (the newest), else in `entry_index` below the merge
/// watermark. That entry's `balance_after` is the balance; its `spent_after` is the spent total
/// (written with every entry since the migration `entries-spent-after`; older entries are folded
/// once from the account's first entry, as `verify` folds them).
extension LedgerTransaction {
    func balanceAt(_ userId: String, atMs: Int64) throws -> Executed {
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        var point: BalancePoint? = nil
        if let entryId = try lastEntry(of: a, atOrBefore: atMs),
           let row = try Row.fetchOne(db.cachedStatement(sql: SQL.balanceAtEntry), arguments: [entryId]) {
            let balance: Int64 = row[0], createdMs: Int64 = row[2]
            let spent: Int64 = try (row[1] as Int64?) ?? foldedSpent(accountId: a.id, through: entryId)
            point = BalancePoint(tokensBalance: balance, tokensSpent: spent, ledgerEntryId: entryId, createdMs: createdMs)
        }
        return Executed(result: CommandResult(.balanceAt(BalanceAtReport(userId: userId, atMs: atMs, point: point))))
    }

    /// The id of the account's last entry created at or before `atMs`, if any.
    private func lastEntry(of a: AccountRecord, atOrBefore atMs: Int64) throws -> Int64? {
        if let e = tailEntries(of: a.id).last(where: { $0.createdMs <= atMs }) { return e.id }
        return try Int64.fetchOne(db.cachedStatement(sql: SQL.lastMergedEntryAt),
                                  arguments: [a.id, atMs, tail.mergedEntryId])
    }

    /// tokensSpent after `entryId` for entries written before `spent_after` existed: charges and
    /// debits add, refunds take back (never below 0), as `AccountRecord.replay` does.
    private func foldedSpent(accountId: Int64, through entryId: Int64) throws -> Int64 {
        var spent: Int64 = 0
        let rows = try Row.fetchCursor(db.cachedStatement(sql: SQL.mergedEntriesForSpent),
                                       arguments: [accountId, min(entryId, tail.mergedEntryId)])
        while let r = try rows.next() {
            spent = (r[2] as Int64?) ?? Schema.Kind.spentAfter(kind: r[0], amount: r[1], spentBefore: spent)
        }
        for e in tailEntries(of: accountId) where e.id <= entryId {
            guard let info = try entry(e.id) else { continue }
            spent = Schema.Kind.spentAfter(kind: info.kind, amount: info.amount, spentBefore: spent)
        }
        return spent
    }
}

extension LedgerTransaction.SQL {
    static let balanceAtEntry = "SELECT balance_after, spent_after, created_ms FROM entries WHERE id = ?"
    static let lastMergedEntryAt = """
        SELECT entry_id FROM entry_index WHERE account_id = ? AND created_ms <= ? AND entry_id <= ?
        ORDER BY created_ms DESC, entry_id DESC LIMIT 1
        """
    /// The account's merged entries up to an id, oldest first (only for entries older than the
    /// `spent_after` column).
    static let mergedEntriesForSpent = """
        SELECT e.kind, e.amount, e.spent_after FROM entry_index i JOIN entries e ON e.id = i.entry_id
        WHERE i.account_id = ? AND i.entry_id <= ? ORDER BY i.created_ms, i.entry_id
        """
}
