import Foundation
import GRDB
import GRDBSQLite

/// Copies the WAL back into the database, mostly on a background connection, off the
/// writer's path.
///
/// SQLite's own automatic checkpoint runs inside the commit that crosses the threshold, so one
/// batch in every few pays for copying the whole WAL and syncing the database file. Here the
/// writer's commit only notices the WAL size (a `sqlite3_wal_hook`, which replaces SQLite's
/// automatic checkpoint):
/// - past the threshold, it schedules a PASSIVE checkpoint on a serial queue with its own
///   connection, which copies the bulk of the WAL while the writer keeps committing;
/// - past four times the threshold, the writer itself runs a PASSIVE checkpoint right after
///   its commit. It only copies what the background pass has not (a few batches), and as it
///   runs between the writer's transactions it can catch up completely, which lets the next
///   transaction start the WAL over: the WAL file stays near `4 x threshold` pages. (A
///   RESTART checkpoint from the background connection would have to win the write lock from
///   a writer that holds it nearly all the time, and would block the writer while waiting.)
/// PASSIVE checkpoints never wait for locks, so neither path can stall the writer behind a long
/// reader (a `backup`, a `verify`); such a reader only delays the WAL's restart until it ends.
final class Checkpointer: @unchecked Sendable {
    let connection: DatabaseQueue
    let thresholdFrames: Int32
    private let queue = DispatchQueue(label: "ledger.checkpoint")
    private let lock = NSLock()
    private var scheduled = false
    private var status = CheckpointStatus()
    /// Time spent in checkpoints run inside the writer's COMMIT, summed (`WriteTimings`). Read and
    /// written only on the writer's queue (the hook runs inside its COMMIT), so it takes no lock.
    private(set) var inlineNanoseconds: Int64 = 0

    init(path: String, config: LedgerConfig) throws {
        var c = Ledger.configuration(config, small: true)
        c.busyMode = .timeout(0.2)
        connection = try DatabaseQueue(path: path, configuration: c)
        thresholdFrames = Int32(clamping: config.walAutoCheckpointPages)
    }

    /// Copies the WAL into the database, then tries (for up to 200 ms) to restart it; for
    /// `Ledger.checkpoint()`. Returns the WAL size in frames and how many frames were copied.
    @discardableResult
    func run() throws -> (walFrames: Int, checkpointed: Int) {
        try connection.writeWithoutTransaction { db in
            guard let passive = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(PASSIVE)") else {
                throw DatabaseError(resultCode: .SQLITE_ERROR, message: "wal_checkpoint returned no row")
            }
            _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(RESTART)")
            return (passive[1], passive[2])
        }
    }

    /// Called on the writer's thread after each commit (from the WAL hook).
    func walCommitted(_ writer: OpaquePointer?, frames: Int32) {
        guard thresholdFrames > 0, frames >= thresholdFrames else { return }
        lock.lock()
        status.walFrames = Int(frames)
        lock.unlock()
        if frames >= 4 * thresholdFrames {
            // SQLITE_BUSY while the background pass runs: tried again after the next commit.
            let started = DispatchTime.now().uptimeNanoseconds
            let code = sqlite3_wal_checkpoint_v2(writer, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            inlineNanoseconds += Int64(DispatchTime.now().uptimeNanoseconds - started)
            if code != SQLITE_OK && code != SQLITE_BUSY {
                failed(String(cString: sqlite3_errstr(code)))
            }
            return
        }
        lock.lock()
        if scheduled { lock.unlock(); return }
        scheduled = true
        lock.unlock()
        queue.async { [self] in
            // A failed pass is tried again after a later commit; it is counted and reported.
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                _ = try connection.writeWithoutTransaction { db in try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(PASSIVE)") }
            } catch {
                failed("\(error)")
            }
            lock.lock()
            scheduled = false
            status.backgroundNanoseconds += Int64(DispatchTime.now().uptimeNanoseconds - started)
            lock.unlock()
        }
    }

    private func failed(_ reason: String) {
        lock.lock()
        status.failures += 1
        status.lastError = reason
        lock.unlock()
    }

    /// The WAL's size at the last commit and the checkpoints that failed so far.
    var current: CheckpointStatus {
        lock.lock()
        defer { lock.unlock() }
        return status
    }

    /// Waits until a scheduled checkpoint has finished (tests).
    func drain() { queue.sync {} }

    /// Installs the hook on the writer's connection; SQLite's own automatic checkpoint goes.
    func install(on db: Database) {
        sqlite3_wal_hook(db.sqliteConnection, { context, connection, _, frames in
            guard let context else { return SQLITE_OK }  // always set below
            Unmanaged<Checkpointer>.fromOpaque(context).takeUnretainedValue().walCommitted(connection, frames: frames)
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }
}

/// How checkpoints are going: a WAL that keeps growing while `failures` rises means the
/// database file is not being brought up to date (the worker reports both on `/metrics`).
public struct CheckpointStatus: Sendable, Equatable {
    /// Frames in the WAL after the last commit.
    public var walFrames = 0
    /// Checkpoint passes that failed with an error other than a busy lock, since the ledger opened.
    public var failures = 0
    public var lastError: String?
    /// Time the background passes took, summed (`WriteTimings.backgroundCheckpointNanoseconds`).
    public var backgroundNanoseconds: Int64 = 0
}
