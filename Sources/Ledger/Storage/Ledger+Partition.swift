import GRDB

/// A ledger split into partitions keeps one file per partition; each file records the split it
/// was made for, so that a worker started with another count (which would route users to other
/// files) refuses to start instead of splitting an account's history.
extension Ledger {
    /// Records `partition` of `count` in a ledger that has none recorded, or checks the record.
    /// A ledger that holds entries and no record was made unsplit (1 partition).
    public func claimPartition(_ partition: Int, of count: Int) throws {
        try writeTransaction(epoch: nil) { db in
            if let row = try Row.fetchOne(db, sql: "SELECT partition_count, partition FROM partition_layout WHERE id = 1") {
                let (recordedCount, recorded): (Int, Int) = (row[0], row[1])
                guard recordedCount == count, recorded == partition else {
                    throw LedgerStorageError.partitionMismatch(
                        path: path, recorded: "\(recorded) of \(recordedCount)", requested: "\(partition) of \(count)")
                }
                return
            }
            let used = try Int64.fetchOne(db, sql: "SELECT count(*) FROM (SELECT 1 FROM accounts LIMIT 1)") ?? 0
            if used > 0 && (count != 1 || partition != 0) {
                throw LedgerStorageError.partitionMismatch(path: path, recorded: "0 of 1 (an unsplit ledger)",
                                                           requested: "\(partition) of \(count)")
            }
            try db.execute(sql: "INSERT INTO partition_layout (id, partition_count, partition) VALUES (1, ?, ?)",
                           arguments: [count, partition])
        }
    }
}
