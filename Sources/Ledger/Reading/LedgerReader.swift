import Foundation
import GRDB
import LedgerModel

/// Why a ledger file could not be opened for reading. Stable codes for scripts and logs.
public enum LedgerOpenError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No file at the path. Reading never creates one: a mistyped path must not answer from a
    /// new, empty ledger.
    case notFound(path: String)
    /// The file's schema has migrations this code does not know: a newer version wrote it.
    case schemaNewer(path: String)
    /// The file lacks migrations this code needs (an older ledger, or not a ledger at all); the
    /// worker or `tokenledger migrate` brings it up to date, a reader never does.
    case schemaOlder(path: String)

    public var code: String {
        switch self {
        case .notFound: return "ledger_not_found"
        case .schemaNewer: return "ledger_schema_newer"
        case .schemaOlder: return "ledger_schema_older"
        }
    }

    public var description: String {
        switch self {
        case .notFound(let path): return "no ledger at \(path)"
        case .schemaNewer(let path): return "the ledger at \(path) was written by a newer version of tokenledger"
        case .schemaOlder(let path): return "the ledger at \(path) has an older schema (run tokenledger migrate) or is not a ledger"
        }
    }
}

/// A read-only view of a ledger file, for processes that are not its writer: the CLI's
/// queries, `verify` and `backup`'s source.
///
/// Why not `Ledger`: opening a `Ledger` migrates the schema, sets WAL pragmas and starts a
/// checkpointer, and closing the last read-write connection checkpoints the WAL into the file.
/// A query must not write to the ledger it reads (nor need write access to it). This opens
/// one connection with SQLite's read-only flag, runs no migration and no checkpoint, and checks
/// instead that the schema is exactly the one this code knows.
public final class LedgerReader: Sendable {
    public let path: String
    public let config: LedgerConfig
    let clock: any LedgerClock
    let reader: DatabaseQueue

    public init(path: String, config: LedgerConfig = .init(), clock: any LedgerClock = SystemClock()) throws {
        try config.validate()
        // Checked first: SQLite's own error for a missing file names no path and no cause.
        guard FileManager.default.fileExists(atPath: path) else { throw LedgerOpenError.notFound(path: path) }
        self.path = path
        self.config = config
        self.clock = clock
        reader = try DatabaseQueue(path: path, configuration: Ledger.configuration(config, readonly: true))
        try reader.read { db in
            let migrator = Schema.migrator
            if try migrator.hasBeenSuperseded(db) { throw LedgerOpenError.schemaNewer(path: path) }
            if try !migrator.hasCompletedMigrations(db) { throw LedgerOpenError.schemaOlder(path: path) }
        }
    }

    /// Answers a query (balance, canAfford, history, statistics, eligibility, a dry-run
    /// renewAll) from one read transaction. Throws `LedgerStorageError.notAQuery` otherwise.
    public func read(_ operation: LedgerOperation) throws -> CommandResult {
        guard operation.isQuery else { throw LedgerStorageError.notAQuery }
        let nowMs = LedgerTime.milliseconds(clock.now())
        return try reader.read { db in
            // The unmerged tail, read in the same transaction as the rest (see `LedgerTail`).
            let tail = try LedgerTail.load(db)
            return try LedgerTransaction(db: db, config: config, tail: tail, clockMs: nowMs, writable: false)
                .execute(operation, jobId: nil).result
        }
    }

    /// Every violation of the ledger's invariants, from one read transaction (see `Auditor`).
    public func verify(progress: ((_ checked: Int64, _ total: Int64) -> Void)? = nil) throws -> [AuditViolation] {
        try reader.read { db in
            var audit = Auditor(db: db)
            audit.progress = progress
            try audit.run()
            return audit.violations
        }
    }

    /// Closes the connection now rather than when the reader is released.
    public func close() throws { try reader.close() }
}
