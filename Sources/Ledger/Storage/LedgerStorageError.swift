/// A failure of storage rather than a refusal of a command: nothing of the call was written.
/// The worker retries the batch on SQLite errors; on `fenced` it must stop writing, because
/// another worker has taken the ledger over.
public enum LedgerStorageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A newer epoch than the caller's was recorded by `acquireEpoch`.
    case fenced(callerEpoch: Int64, currentEpoch: Int64)
    /// `backup(to:)` refuses to overwrite an existing file.
    case backupDestinationExists(path: String)
    /// `read(_:)` accepts only queries.
    case notAQuery
    /// The file was made for another partition, or another partition count, than asked for.
    case partitionMismatch(path: String, recorded: String, requested: String)
    /// A write transaction committed without producing its value (a bug, never expected).
    case transactionWithoutValue

    public var description: String {
        switch self {
        case let .fenced(mine, current):
            return "fenced: this writer holds epoch \(mine) but epoch \(current) has been acquired since"
        case let .backupDestinationExists(path):
            return "backup destination already exists: \(path)"
        case .notAQuery:
            return "read(_:) only answers queries"
        case let .partitionMismatch(path, recorded, requested):
            return "the ledger \(path) holds partition \(recorded); this worker was started for partition \(requested): the partition count is fixed when a ledger is made, and changes only through the growth tool (`tokenledger repartition --to M`, not built yet)"
        case .transactionWithoutValue:
            return "a write transaction committed without producing its value"
        }
    }
}
