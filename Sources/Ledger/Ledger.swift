import Foundation
import CSQLiteTuning
import GRDB
import Synchronization
import LedgerModel

/// The token ledger: an append-only SQLite ledger of token balances.
///
/// One `Ledger` is the one writer of its file (the worker holding the queue's lease); other
/// processes (the CLI, a backup) may read it at the same time thanks to WAL. All writes go
/// through `apply` (a group commit of a batch of commands) or `renewDue` (the scheduler).
///
/// Every per-job write is an append (`entries`, `job_log`); the indexes are brought up to date
/// later, in key order, by the merge (`maintain`, `Ledger+Merge`), and until then the unmerged
/// tail is answered from memory (`LedgerTail`).
///
/// Thread safety: the connection is a GRDB `DatabaseQueue`, which serializes every access, so
/// a `Ledger` may be shared between tasks; the tail, its only other mutable state, is used only
/// inside that queue. `currentEpoch` and `lastCompletedRun` read on a connection of their own,
/// so `/readyz` never waits behind a commit or a merge.
public final class Ledger: Sendable {
    public let path: String
    public let config: LedgerConfig
    let clock: any LedgerClock
    let writer: DatabaseQueue
    /// Checkpoints on a second connection, in the background (see `Checkpointer`).
    let checkpointer: Checkpointer
    /// A read-only connection for small reads that must not wait behind the writer.
    let reader: DatabaseQueue
    /// What the indexes do not hold yet; used only on `writer`'s queue.
    let tail = LedgerTail()
    /// Failures of the merge a write runs after its COMMIT (see `boundTail`).
    let boundedMerge = Mutex(BoundedMergeStatus())
    /// Where writes spent their time (see `writeTimings`); added to on the writer's queue.
    let timings = Mutex(WriteTimings())

    /// Opens (creating if needed, with mode 0600) the ledger at `path`, in WAL mode with the
    /// configured `synchronous`, busy timeout and automatic checkpoint, and migrates its schema.
    public init(path: String, config: LedgerConfig = .init(), clock: any LedgerClock = SystemClock()) throws {
        try config.validate()
        self.path = path
        self.config = config
        self.clock = clock
        if !FileManager.default.fileExists(atPath: path) {
            // SQLite gives the -wal and -shm files the mode of the database file.
            let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) }
        }
        var writerConfig = Self.configuration(config)
        let checkpointer = try Checkpointer(path: path, config: config)
        // The configuration (so the writer) keeps the checkpointer alive for the hook's sake.
        writerConfig.prepareDatabase { db in checkpointer.install(on: db) }
        self.checkpointer = checkpointer
        writer = try DatabaseQueue(path: path, configuration: writerConfig)
        // GRDB's migrator reads which migrations have run and runs the rest in transactions of their
        // own, so two processes opening a new ledger at once would both create its tables.
        let writer = self.writer
        try MigrationLock.holding(for: path) { try Schema.migrator.migrate(writer) }
        reader = try DatabaseQueue(path: path, configuration: Self.configuration(config, readonly: true, small: true))
        let tail = self.tail
        // The job-id filter of a large ledger is built from a snapshot of its own, in the
        // background, and installed on the writer's queue (see `LedgerTail.catchUpFilter`).
        tail.filterBuilder = { [writer, config] build in
            DispatchQueue.global(qos: .utility).async {
                var filter = JobIdFilter(expectedIds: build.expectedIds, seed: build.seed)
                do {
                    let scan = try DatabaseQueue(path: path, configuration: Self.configuration(config, readonly: true))
                    try scan.read { db in try LedgerTail.scanJobs(db, into: &filter) }
                    try scan.close()
                } catch {
                    return  // the filter stays incomplete (every id is looked up) until the next build
                }
                let built = filter
                writer.writeWithoutTransaction { _ in tail.installFilter(built, generation: build.generation) }
            }
        }
        try writer.read { db in try tail.reload(db) }
    }

    /// The WAL's size and the checkpoint failures so far.
    public var checkpointStatus: CheckpointStatus { checkpointer.current }

    /// Where the writes spent their time since the ledger opened: statements, COMMIT (fsync),
    /// checkpoints, merge slices (see `WriteTimings`). Cheap: one lock, no I/O.
    public var writeTimings: WriteTimings {
        var t = timings.withLock { $0 }
        t.backgroundCheckpointNanoseconds = checkpointer.current.backgroundNanoseconds
        return t
    }

    /// `small`: a connection that runs only a few small statements (the reader of epochs, the
    /// checkpointer) gets a page cache of `smallCachePages`: it holds no more than it reads.
    static func configuration(_ config: LedgerConfig, readonly: Bool = false, small: Bool = false) -> Configuration {
        _ = Self.pageCacheAllocation
        var c = Configuration()
        c.readonly = readonly
        // WAL is set here, not with GRDB's `journalMode = .wal`, which would then force
        // `synchronous = NORMAL` over ours.
        c.journalMode = .default
        c.busyMode = .timeout(Double(config.busyTimeoutMilliseconds) / 1000)
        c.foreignKeysEnabled = false  // the schema declares none; verify checks references
        let sync = config.synchronous == .full ? "FULL" : "NORMAL"
        let cacheSize = small ? "\(Self.smallCachePages)" : "-\(config.cacheMebibytes * 1024)"
        c.prepareDatabase { db in
            // First, before any statement reads a page: the cache's first allocation follows its size.
            try db.execute(sql: "PRAGMA cache_size = \(cacheSize)")
            if !readonly {
                try enableWAL(db, timeoutMilliseconds: config.busyTimeoutMilliseconds)
                try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")  // see Checkpointer
            }
            try db.execute(sql: "PRAGMA synchronous = \(sync)")
        }
        return c
    }

    /// The page cache of a `small` connection, in pages.
    static let smallCachePages = 4

    /// Set once, before the process's first SQLite connection (every connection of the ledger is
    /// configured here first): page caches allocate pages as they use them. SQLite would give
    /// each connection 20 pages at its first read (about 90 KiB), which three connections per
    /// ledger and the idle ledgers of 64 partitions multiply (docs/SCALING.md). Zero when it took
    /// effect; `SQLITE_MISUSE` (21) if SQLite had opened a connection before.
    static let pageCacheAllocation: Int32 = tokenledger_sqlite_no_initial_page_allocation()

    /// Turns WAL on, which the file then keeps. Only a new file's first connections change the
    /// mode, and the change needs the file to itself: SQLite answers BUSY at once, without its busy
    /// handler, while another new connection reads it. So a connection that finds WAL on already
    /// changes nothing, and one that races others retries within the busy timeout.
    static func enableWAL(_ db: Database, timeoutMilliseconds: Int) throws {
        let deadline = ContinuousClock.now + .milliseconds(max(timeoutMilliseconds, 100))
        while true {
            if try String.fetchOne(db, sql: "PRAGMA journal_mode") == "wal" { return }
            do {
                let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                guard mode == "wal" else { throw DatabaseError(message: "could not activate WAL mode") }
                return
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && ContinuousClock.now < deadline {
                usleep(5_000)
            }
        }
    }

    /// The group commit: applies `commands` in order in ONE write transaction and returns one
    /// result per command, in order.
    ///
    /// - A refused command does not undo the others; each result of a command with a job id,
    ///   a refusal too, is stored under the job id in the same transaction.
    /// - A job id already stored answers its first result with `duplicate: true`, also when it
    ///   appears twice in `commands`.
    /// - Queries see the effect of the commands before them.
    /// - With `epoch`, throws `LedgerStorageError.fenced` and writes nothing when a higher
    ///   epoch has been acquired (another worker took over).
    /// - Any SQLite error before the COMMIT is thrown and the whole batch is rolled back: retry
    ///   the whole batch. Nothing after the COMMIT throws (see `boundTail`).
    ///
    /// The results' `changes` are to be published only after this returns (the commit).
    public func apply(_ commands: [Command], epoch: Int64? = nil) throws -> [CommandResult] {
        if commands.isEmpty { return [] }
        let nowMs = LedgerTime.milliseconds(clock.now())
        let (results, tailRows) = try commandTransaction(epoch: epoch) { db in
            let transaction = try LedgerTransaction(db: db, config: config, tail: tail, clockMs: nowMs, writable: true)
            var results: [CommandResult] = []
            results.reserveCapacity(commands.count)
            for command in commands { results.append(try transaction.perform(command)) }
            try transaction.flush()
            return (results, transaction)
        }
        boundTail(tailRows, epoch: epoch)
        return results
    }

    /// Answers a query (balance, canAfford, history, statistics, eligibility, a dry-run
    /// renewAll) without writing; for the CLI. Throws `LedgerStorageError.notAQuery` otherwise.
    public func read(_ operation: LedgerOperation) throws -> CommandResult {
        guard operation.isQuery else { throw LedgerStorageError.notAQuery }
        let nowMs = LedgerTime.milliseconds(clock.now())
        return try writer.read { db in
            try tail.refreshIfChanged(db)
            return try LedgerTransaction(db: db, config: config, tail: tail, clockMs: nowMs, writable: false)
                .execute(operation, jobId: nil).result
        }
    }

    /// Renews at most `limit` due accounts (oldest due first, optionally of one `tier`, after
    /// `cursor`) in one transaction. The scheduler calls it with the cursor of the previous
    /// chunk (`remaining`) until none remain, so an account that fails (a tier no longer
    /// configured, an overflow) is taken once per run and never holds back those behind it.
    /// With `run`, the chunk that leaves none recorded the run complete and kept its
    /// `renewal.completed` (in `events`) until sent, in its own transaction.
    public func renewDue(limit: Int, tier: String? = nil, epoch: Int64? = nil, after cursor: RenewalCursor? = nil,
                         completing run: ScheduledRunCompletion? = nil) throws -> RenewAllSummary {
        let nowMs = LedgerTime.milliseconds(clock.now())
        let (summary, tailRows) = try commandTransaction(epoch: epoch) { db in
            let transaction = try LedgerTransaction(db: db, config: config, tail: tail, clockMs: nowMs, writable: true)
            let summary = try transaction.renewDue(dryRun: false, tier: tier, limit: max(limit, 1), continueOnError: true,
                                                   after: cursor, completing: run)
            try transaction.flush()
            return (summary, transaction)
        }
        boundTail(tailRows, epoch: epoch)
        return summary
    }

    /// The caller is expected to call `maintainAfterBatch` between batches; should it not (or
    /// should the merge fall behind), the tail is still bounded: past twice the threshold, each
    /// write merges four rows for each row it appended (a pause in proportion to the write, never
    /// the whole merge at once), so a merge started at the bound finishes before the tail has
    /// grown by a quarter more.
    ///
    /// It runs after the write's COMMIT, so it never throws: the write's results are committed
    /// and must reach the caller (a batch reported failed would be retried as duplicates, which
    /// never write their `job.applied`). A failed merge is a storage condition of its own,
    /// counted in `boundedMergeStatus`; the tail stays as it was, and the next `maintain` (or
    /// write) merges again.
    private func boundTail(_ size: TailSize, epoch: Int64?) {
        guard size.rows >= 2 * config.mergeThresholdRows else { return }
        do {
            var owed = 4 * size.appended
            while owed > 0, try maintain(epoch: epoch) { owed -= config.mergeSliceRows }
        } catch {
            boundedMerge.withLock {
                $0.failures += 1
                $0.lastError = "\(error)"
            }
        }
    }

    /// The tail after a write: its rows, and how many the write appended.
    struct TailSize {
        var rows = 0
        var appended = 0
    }

    /// Merges that a write ran after its COMMIT and that failed, and the last error.
    public var boundedMergeStatus: BoundedMergeStatus { boundedMerge.withLock { $0 } }

    /// One IMMEDIATE transaction of ledger commands, fenced by `epoch`: commits what `body` did,
    /// or nothing. The transaction extends the tail as it writes; if it does not commit, the
    /// tail is marked stale and reread before its next use. Returns the value and the tail's size.
    func commandTransaction<T>(epoch: Int64?, _ body: (Database) throws -> (T, LedgerTransaction)) throws -> (T, TailSize) {
        var size = TailSize()
        var before: Int64 = 0
        let value = try writeTransaction(epoch: epoch, { db in
            before = tail.appendedRows
            return try body(db)
        }, afterCommit: { _ in
            size = TailSize(rows: tail.rowCount, appended: Int(clamping: tail.appendedRows - before))
        }).0
        return (value, size)
    }

    /// Writes the expiries of at most `limit` accounts on which a hold expiry or a grant lapse fell due (soonest
    /// due first) in one transaction: the worker's sweep of accounts no job touches. Call again
    /// while `accounts == limit`.
    /// `forgetSentThrough`: the worker has sent every row of `pending_sends` up to this seq.
    /// `budget`: stop sweeping once this much time has passed (`more` is then true), so that a
    /// chunk holds the queue up for about that long whatever the machine's load.
    public func sweepDue(limit: Int, epoch: Int64? = nil, forgetSentThrough: Int64? = nil,
                          budget: Duration? = nil) throws -> SweepSummary {
        let deadline = budget.map { ContinuousClock.now + $0 }
        let nowMs = LedgerTime.milliseconds(clock.now())
        let (summary, tailRows) = try commandTransaction(epoch: epoch) { db in
            if let sent = forgetSentThrough {
                try db.execute(sql: "DELETE FROM pending_sends WHERE seq <= ?", arguments: [sent])
            }
            let transaction = try LedgerTransaction(db: db, config: config, tail: tail, clockMs: nowMs, writable: true)
            let summary = try transaction.sweepDue(limit: max(limit, 1), deadline: deadline)
            try transaction.flush()
            return (summary, transaction)
        }
        boundTail(tailRows, epoch: epoch)
        return summary
    }

    /// One IMMEDIATE transaction, fenced by `epoch`: commits what `body` did, or nothing.
    /// `afterCommit` runs on the writer's queue once the COMMIT has succeeded, never after a
    /// rollback; after a rollback the tail is marked stale, so it is reread before its next use.
    func writeTransaction<T>(epoch: Int64?, _ body: (Database) throws -> T, afterCommit: (T) -> Void = { _ in }) throws -> T {
        try writer.writeWithoutTransaction { db in
            var value: T?
            var stopwatch = WriteStopwatch(checkpointer: checkpointer)
            do {
                try db.inTransaction(.immediate) {
                    if let epoch { try Self.checkEpoch(db, epoch) }
                    try tail.refreshIfChanged(db)
                    value = try body(db)
                    stopwatch.statementsDone()
                    return .commit
                }
            } catch {
                // Rolled back: the tail may hold what was not committed (see `LedgerTransaction`).
                tail.invalidate()
                throw error
            }
            guard let value else { throw LedgerStorageError.transactionWithoutValue }
            tail.committed()
            timings.withLock { stopwatch.committed(&$0, checkpointer: checkpointer) }
            afterCommit(value)
            return value
        }
    }
}

/// Failures of the bounded merge after a write's COMMIT: reported apart from the write, whose
/// results stand.
public struct BoundedMergeStatus: Sendable, Equatable {
    public var failures = 0
    public var lastError: String?
}
