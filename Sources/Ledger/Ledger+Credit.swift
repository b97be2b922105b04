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
