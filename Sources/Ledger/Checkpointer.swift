import Foundation
import GRDB
import GRDBSQLite

/// Copies the WAL back into the database on a background connection, off the writer's path.
///
/// SQLite's own automatic checkpoint runs inside the commit that crosses the threshold, so one
/// batch in every few pays for copying the whole WAL and syncing the database file (measured:
/// about 40% of throughput lost). Here the writer's commit only notices the WAL size (a
/// `sqlite3_wal_hook`, which replaces SQLite's automatic checkpoint) and schedules a checkpoint
/// on a serial queue with its own connection: a PASSIVE checkpoint copies the bulk while the
/// writer keeps committing, then a RESTART checkpoint finishes the few frames committed
/// meanwhile and makes the next writer start the WAL over, so the WAL file stays small. RESTART
/// holds new writers back only for those last frames (they wait through their busy timeout).
final class Checkpointer: @unchecked Sendable {
    let connection: DatabaseQueue
    let thresholdFrames: Int32
    private let queue = DispatchQueue(label: "ledger.checkpoint")
    private let lock = NSLock()
    private var scheduled = false

    init(path: String, config: LedgerConfig) throws {
        connection = try DatabaseQueue(path: path, configuration: Ledger.configuration(config))
        thresholdFrames = Int32(clamping: config.walAutoCheckpointPages)
    }

    /// Copies the WAL into the database and restarts it. Returns the WAL size in frames before,
    /// and how many frames the PASSIVE pass copied.
    @discardableResult
    func run() throws -> (walFrames: Int, checkpointed: Int) {
        try connection.writeWithoutTransaction { db in
            let passive = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(PASSIVE)")!
            _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(RESTART)")
            return (passive[1], passive[2])
        }
    }

    /// Called on the writer's thread after each commit (from the WAL hook).
    func walCommitted(frames: Int32) {
        guard thresholdFrames > 0, frames >= thresholdFrames else { return }
        lock.lock()
        if scheduled { lock.unlock(); return }
        scheduled = true
        lock.unlock()
        queue.async { [self] in
            _ = try? run()  // a failed checkpoint is retried after the next commit
            lock.lock()
            scheduled = false
            lock.unlock()
        }
    }

    /// Waits until a scheduled checkpoint has finished (tests).
    func drain() { queue.sync {} }

    /// Installs the hook on the writer's connection; SQLite's own automatic checkpoint goes.
    func install(on db: Database) {
        sqlite3_wal_hook(db.sqliteConnection, { context, _, _, frames in
            Unmanaged<Checkpointer>.fromOpaque(context!).takeUnretainedValue().walCommitted(frames: frames)
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }
}
