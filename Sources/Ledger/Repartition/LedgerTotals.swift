import GRDB

/// One account as its entries give it: what `repartition` compares between the old files and
/// the new before it switches (the contract: every balance, spent total and history count).
public struct AccountTotals: Sendable, Equatable {
    public var balance: Int64 = 0
    public var spent: Int64 = 0
    public var entries: Int64 = 0
}

extension LedgerRepartition {
    /// Every account of the file at `path` with its totals, by user (bytes), from one read
    /// transaction and one pass over the entries in id order. Independent of the account rows
    /// (which `verify` checks against the same entries) and of the build.
    public static func totals(path: String, config: LedgerConfig = .init()) throws -> [IdentityKey: AccountTotals] {
        let reader = try LedgerReader(path: path, config: config)
        defer { try? reader.close() }
        return try reader.reader.read { db in
            var users: [Int64: IdentityKey] = [:]
            var totals: [IdentityKey: AccountTotals] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT id, user_id FROM accounts") {
                let key = IdentityKey(r[1] as String)
                users[r[0]] = key
                totals[key] = AccountTotals()
            }
            var byAccount: [Int64: AccountTotals] = [:]
            let q = try RawStatement(db, "SELECT account_id, kind, amount, balance_after FROM entries ORDER BY id")
            q.reset()
            defer { q.reset() }
            while try q.step() {
                var t = byAccount[q.int64(0)] ?? AccountTotals()
                t.balance = q.int64(3)
                t.spent = Schema.Kind.spentAfter(kind: q.int64(1), amount: q.int64(2), spentBefore: t.spent)
                t.entries += 1
                byAccount[q.int64(0)] = t
            }
            for (id, t) in byAccount {
                if let key = users[id] { totals[key] = t }
            }
            return totals
        }
    }

    /// The differences between the old layout's totals and the new one's, at most `limit`
    /// described (and how many more): empty when every account answers as it did.
    public static func differences(old: [IdentityKey: AccountTotals], new: [IdentityKey: AccountTotals], limit: Int = 20) -> [String] {
        var found: [String] = []
        var more = 0
        func note(_ s: String) { if found.count < limit { found.append(s) } else { more += 1 } }
        for (user, was) in old.sorted(by: { Array($0.key.text.utf8).lexicographicallyPrecedes(Array($1.key.text.utf8)) }) {
            guard let now = new[user] else { note("the account \(user) is missing from the new files"); continue }
            if now != was {
                note("the account \(user) had balance \(was.balance), spent \(was.spent), \(was.entries) entries; the new files give \(now.balance), \(now.spent), \(now.entries)")
            }
        }
        for user in new.keys where old[user] == nil { note("the account \(user) is in the new files only") }
        if more > 0 { found.append("and \(more) more differences") }
        return found
    }
}
