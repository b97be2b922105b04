import Foundation
import GRDB
import LedgerModel

/// Epochs fence a worker that lost its lease but still runs (paused, partitioned): each
/// worker that becomes active acquires a new, strictly higher epoch and passes it with every
/// write; a write carrying an older epoch than the newest recorded is refused whole, so two
/// workers can never both commit after a takeover. The check is one read of the rightmost page
/// of a tiny table, inside the write transaction, so it is atomic with the batch.
extension Ledger {
    /// Records and returns a new epoch, strictly higher than every epoch before it.
    public func acquireEpoch(owner: String) throws -> Int64 {
        let nowMs = LedgerTime.milliseconds(clock.now())
        return try writeTransaction(epoch: nil) { db in
            let epoch = (try Int64.fetchOne(db, sql: "SELECT max(epoch) FROM epochs") ?? 0) + 1
            try db.execute(sql: "INSERT INTO epochs (epoch, owner, acquired_ms) VALUES (?, ?, ?)",
                           arguments: [epoch, owner, nowMs])
            return epoch
        }
    }

    /// The newest epoch and its owner, if any was acquired.
    public func currentEpoch() throws -> (epoch: Int64, owner: String)? {
        try reader.read { db in
            try Row.fetchOne(db, sql: "SELECT epoch, owner FROM epochs ORDER BY epoch DESC LIMIT 1").map { ($0[0], $0[1]) }
        }
    }

    static func checkEpoch(_ db: Database, _ epoch: Int64) throws {
        let current = try Int64.fetchOne(db.cachedStatement(sql: "SELECT max(epoch) FROM epochs")) ?? 0
        if current > epoch { throw LedgerStorageError.fenced(callerEpoch: epoch, currentEpoch: current) }
    }

    /// The slot of the last completed run of the scheduled job `name` (say `renewal`), if any.
    public func lastCompletedRun(name: String) throws -> Date? {
        try reader.read { db in
            try Int64.fetchOne(db, sql: "SELECT slot_ms FROM scheduler_runs WHERE name = ?", arguments: [name])
                .map(LedgerTime.date)
        }
    }

    /// Records that the run of `name` for `slot` (the cron slot, not the moment it ran) has
    /// completed. A slot older than the recorded one is ignored, so the record only moves forward.
    public func recordCompletedRun(name: String, slot: Date, epoch: Int64? = nil) throws {
        let nowMs = LedgerTime.milliseconds(clock.now())
        try writeTransaction(epoch: epoch) { db in
            try Self.recordRun(db, name: name, slotMs: LedgerTime.milliseconds(slot), completedMs: nowMs)
        }
    }

    /// The record of `recordCompletedRun`, inside the caller's transaction (the renewal chunk
    /// that completes a run writes it with its entries and its event).
    static func recordRun(_ db: Database, name: String, slotMs: Int64, completedMs: Int64) throws {
        try db.execute(sql: """
            INSERT INTO scheduler_runs (name, slot_ms, completed_ms) VALUES (?1, ?2, ?3)
            ON CONFLICT (name) DO UPDATE SET slot_ms = max(slot_ms, ?2), completed_ms = ?3
            """, arguments: [name, slotMs, completedMs])
    }

    /// Copies the WAL into the database file and restarts the WAL (a PASSIVE pass that does
    /// not hold up the writer, then a RESTART pass for the frames committed meanwhile). The
    /// ledger does this by itself in the background whenever a commit leaves more than
    /// `walAutoCheckpointPages` pages in the WAL; with that setting at 0, call this from
    /// elsewhere than the writer's path (a timer), or the WAL grows without bound. It runs on its
    /// own connection. Returns the WAL size in frames and how many the PASSIVE pass copied.
    @discardableResult
    public func checkpoint() throws -> (walFrames: Int, checkpointed: Int) {
        try checkpointer.run()
    }
}
