import Foundation

/// Where the ledger's writes spent their time since it opened, summed, for a caller that wants a
/// time budget of its own work (the worker's per-batch phases on `/metrics`): it reads the sums
/// before and after a call and takes the difference.
///
/// Why the ledger measures this itself: only inside the write transaction can the statements
/// (CPU on the caller's thread) be told from the COMMIT (the WAL write and its fsync, a wait), and
/// only the WAL hook knows that a COMMIT also ran a checkpoint.
public struct WriteTimings: Sendable, Equatable {
    /// Write transactions committed (commands, sweeps, renewals, merge slices).
    public var commits = 0
    /// From BEGIN to the end of the statements, in the transactions of commands, sweeps and
    /// renewals: the CPU of applying them, and the reads of pages not in the cache.
    public var statementsNanoseconds: Int64 = 0
    /// Their COMMITs, less the checkpoints run inside them: writing the WAL and waiting for fsync.
    public var commitNanoseconds: Int64 = 0
    /// Checkpoints the writer ran inside a COMMIT (the WAL past four times its threshold; see
    /// `Checkpointer`), merge slices' included.
    public var checkpointNanoseconds: Int64 = 0
    /// Merge slices, whole (statements and COMMIT, less a checkpoint inside it): those the
    /// caller ran (`maintain`) and those a write ran after its COMMIT (`boundTail`).
    public var mergeNanoseconds: Int64 = 0
    /// PASSIVE checkpoints on the background connection: off the writer's thread, but they
    /// share the disk with its fsyncs.
    public var backgroundCheckpointNanoseconds: Int64 = 0

    public init() {}

    /// What was spent between `earlier` and this reading.
    public func since(_ earlier: WriteTimings) -> WriteTimings {
        var d = WriteTimings()
        d.commits = commits - earlier.commits
        d.statementsNanoseconds = statementsNanoseconds - earlier.statementsNanoseconds
        d.commitNanoseconds = commitNanoseconds - earlier.commitNanoseconds
        d.checkpointNanoseconds = checkpointNanoseconds - earlier.checkpointNanoseconds
        d.mergeNanoseconds = mergeNanoseconds - earlier.mergeNanoseconds
        d.backgroundCheckpointNanoseconds = backgroundCheckpointNanoseconds - earlier.backgroundCheckpointNanoseconds
        return d
    }
}

/// The writer's side of `WriteTimings`: one monotonic clock reading before BEGIN, one after the
/// statements, one after COMMIT; used only on the writer's queue.
struct WriteStopwatch {
    private let started = DispatchTime.now().uptimeNanoseconds
    private var statementsEnded: UInt64 = 0
    private let checkpointAtStart: Int64

    init(checkpointer: Checkpointer) {
        checkpointAtStart = checkpointer.inlineNanoseconds
    }

    mutating func statementsDone() { statementsEnded = DispatchTime.now().uptimeNanoseconds }

    /// Adds a committed transaction of commands to `timings`.
    func committed(_ timings: inout WriteTimings, checkpointer: Checkpointer) {
        let now = DispatchTime.now().uptimeNanoseconds
        let checkpoint = checkpointer.inlineNanoseconds - checkpointAtStart
        let statementsEnded = max(self.statementsEnded, started)
        timings.commits += 1
        timings.statementsNanoseconds += Int64(statementsEnded - started)
        timings.commitNanoseconds += Int64(now - statementsEnded) - checkpoint
        timings.checkpointNanoseconds += checkpoint
    }

    /// Adds a committed merge slice to `timings`.
    func mergeCommitted(_ timings: inout WriteTimings, checkpointer: Checkpointer) {
        let now = DispatchTime.now().uptimeNanoseconds
        let checkpoint = checkpointer.inlineNanoseconds - checkpointAtStart
        timings.commits += 1
        timings.mergeNanoseconds += Int64(now - started) - checkpoint
        timings.checkpointNanoseconds += checkpoint
    }
}
