import GRDB

extension Ledger {
    /// How many holds are open and how many tokens they hold (expired ones not yet settled
    /// included), for the worker's metrics.
    public func openHoldTotals() throws -> (count: Int64, tokens: Int64) {
        try writer.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT count(*), coalesce(sum(amount), 0) FROM holds WHERE state = 0")
            return (row?[0] ?? 0, row?[1] ?? 0)
        }
    }
}

extension LedgerReader {
    /// How many accounts have a hold expiry or a grant lapse due at or before now, not yet
    /// settled (for operators and tests: it falls to zero within seconds while a worker runs).
    public func unsettledDueAccounts() throws -> Int64 {
        let nowMs = LedgerTime.milliseconds(clock.now())
        return try reader.read { db in
            try Int64.fetchOne(db, sql: "SELECT count(*) FROM accounts WHERE next_due_ms <= ?", arguments: [nowMs]) ?? 0
        }
    }
}
