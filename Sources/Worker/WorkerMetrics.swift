import Dispatch
import Ledger
import Metrics
import Synchronization

/// The worker's metrics, through swift-metrics (the executable bootstraps Prometheus).
///
/// Handles are made once and cached: a swift-metrics handle costs a factory lookup, which the
/// hot path should not pay per job. Counters add up across the partitions a process serves;
/// gauges, which describe one queue or one ledger, carry a `partition` label when the ledger is split.
///
/// Shared by the loop and the Redis thread (which counts the events of the outboxes it builds):
/// handles are thread-safe, and the per-type caches sit behind a lock taken once per batch.
final class WorkerMetrics: Sendable {
    private let jobCounters = Mutex<[String: Counter]>([:])
    private let latencies = Mutex<[String: Timer]>([:])
    let batchSize = Recorder(label: "tokenledger_batch_size", aggregate: true)
    let batchDuration = Timer(label: "tokenledger_batch_duration_seconds", preferredDisplayUnit: .seconds)
    let queueDepth: Gauge
    let deadLetters = Counter(label: "tokenledger_dead_letters_total")
    let renewalRuns = Counter(label: "tokenledger_renewal_runs_total")
    let renewals = Counter(label: "tokenledger_renewals_total")
    let leaseHeld: Gauge
    let redisErrors = Counter(label: "tokenledger_redis_errors_total")
    let redisReconnects = Counter(label: "tokenledger_redis_reconnects_total")
    let storageErrors = Counter(label: "tokenledger_storage_errors_total")
    let invalidations = Counter(label: "tokenledger_invalidations_total")
    /// Single commands of a sent outbox that Redis refused (a reply key of another type, say).
    let sendErrors = Counter(label: "tokenledger_send_errors_total")
    /// 1 while the ledger takes writes, 0 while it refuses them (the jobs wait, /readyz is 503).
    let ledgerReady: Gauge
    let walFrames: Gauge
    let checkpointFailures = Counter(label: "tokenledger_checkpoint_failures_total")
    // Reservations, grants, monitors, events (issue 13).
    let openHolds: Gauge
    let heldTokens: Gauge
    let tokensLapsed = Counter(label: "tokenledger_lapsed_tokens_total")
    let holdsExpired = Counter(label: "tokenledger_holds_expired_total")
    let alertsFired = Counter(label: "tokenledger_alerts_fired_total")
    let eventsWritten = Counter(label: "tokenledger_events_total")
    let settledAccounts = Counter(label: "tokenledger_settled_accounts_total")
    /// How far back `P:applied` reaches: the longest replica lag a restore can recover past.
    let appliedStreamAge: Gauge
    /// `tokenledger_batch_seconds{phase, thread}`: where each batch's time went (`BatchBudget`),
    /// one sample per batch and phase, indexed by `BatchPhase`.
    private let phases: [Timer] = BatchPhase.allCases.map {
        Timer(label: "tokenledger_batch_seconds", dimensions: [("phase", $0.name), ("thread", $0.thread)],
              preferredDisplayUnit: .seconds)
    }

    init(partition: Int?) {
        let dimensions = partition.map { [("partition", "\($0)")] } ?? []
        queueDepth = Gauge(label: "tokenledger_queue_depth", dimensions: dimensions)
        leaseHeld = Gauge(label: "tokenledger_lease_held", dimensions: dimensions)
        ledgerReady = Gauge(label: "tokenledger_ledger_ready", dimensions: dimensions)
        walFrames = Gauge(label: "tokenledger_wal_frames", dimensions: dimensions)
        openHolds = Gauge(label: "tokenledger_open_holds", dimensions: dimensions)
        heldTokens = Gauge(label: "tokenledger_held_tokens", dimensions: dimensions)
        appliedStreamAge = Gauge(label: "tokenledger_applied_stream_age_seconds", dimensions: dimensions)
        // The ledger was opened before the worker starts, and only a failed write reports an outage:
        // without this a healthy worker would read as not ready until its first recovery.
        ledgerReady.record(1)
    }

    /// One batch's budget: every phase of the loop thread (zeros too, so each phase's count is the
    /// number of batches), and what the other threads spent on it.
    func record(_ budget: BatchBudget) {
        for phase in BatchPhase.allCases where phase.onLoopThread || budget[phase] > 0 {
            phases[phase.index].recordNanoseconds(budget[phase])
        }
    }

    /// One phase that another thread measured for a batch (the Redis thread's encoding).
    func record(_ phase: BatchPhase, nanoseconds: Int64) {
        phases[phase.index].recordNanoseconds(nanoseconds)
    }

    /// Counts one job by type and outcome (`success`, `refused`, `duplicate`, `invalid`).
    func job(type: String, outcome: String) { jobs(type: type, outcome: outcome, count: 1) }

    /// Counts `count` jobs of one type and outcome: once per batch for each pair it holds.
    func jobs(type: String, outcome: String, count: Int) {
        let key = type + "|" + outcome
        let counter = jobCounters.withLock { jobs in
            if let counter = jobs[key] { return counter }
            let counter = Counter(label: "tokenledger_jobs_total", dimensions: [("type", type), ("outcome", outcome)])
            jobs[key] = counter
            return counter
        }
        counter.increment(by: count)
    }

    /// Records how long the jobs of this type in a batch waited for its commit, in nanoseconds:
    /// once per batch and type (every job of a batch waits the same commit).
    func latency(type: String, nanoseconds: Int64) {
        let timer = latencies.withLock { timers in
            if let timer = timers[type] { return timer }
            let timer = Timer(label: "tokenledger_job_duration_seconds", dimensions: [("type", type)], preferredDisplayUnit: .seconds)
            timers[type] = timer
            return timer
        }
        timer.recordNanoseconds(nanoseconds)
    }
}

/// The phases of one batch. Those of the loop thread add up to its wall time from one batch to
/// the next: CPU (`apply`, `encode`, `other`) and waits (`take` and `send` on Redis, `commit` on
/// fsync, `checkpoint` and `merge` on the ledger's upkeep). The others ran on another thread,
/// overlapping the loop's: the Redis thread's decoding of the batch and encoding of its outbox,
/// the background checkpoint.
enum BatchPhase: Int, CaseIterable {
    /// The chores between batches: a sweep, a renewal chunk, a sample of the queue's depth.
    case chores
    /// Waiting for the take of this batch (taken ahead during the last commit, or a new take).
    case take
    /// Waiting for the last batch's outbox to leave.
    case send
    /// The transaction's statements, from BEGIN to COMMIT (CPU, and reads of uncached pages).
    case apply
    /// The COMMIT: writing the WAL and waiting for its fsync.
    case commit
    /// Checkpoints run inside a COMMIT.
    case checkpoint
    /// The rest of the loop's work on the committed batch: building its outbox (when that is
    /// done on the loop thread), handing it to the Redis thread, the batch's log line.
    case encode
    /// Merge slices: the one run after the batch, and any the write ran after its COMMIT.
    case merge
    /// Everything else on the loop thread (taking the next batch ahead, the budget itself).
    case other
    /// On the Redis thread: decoding the batch's jobs.
    case decode
    /// On the Redis thread: encoding the committed batch's outbox (recorded there).
    case redisEncode
    /// On the checkpointer's thread: background checkpoint passes during the batch.
    case backgroundCheckpoint

    var index: Int { rawValue }
    var onLoopThread: Bool { thread == "loop" }
    var thread: String {
        switch self {
        case .decode, .redisEncode: "redis"
        case .backgroundCheckpoint: "checkpointer"
        default: "loop"
        }
    }
    var name: String {
        switch self {
        case .backgroundCheckpoint: "checkpoint"
        case .redisEncode: "encode"
        default: "\(self)"
        }
    }
}

/// One batch's time, phase by phase, measured on the loop thread with a monotonic clock: each
/// `lap` gives the time since the last one to a phase; the ledger's own sums (`WriteTimings`)
/// then split a lap that contained a write into its statements, COMMIT, checkpoint and merge.
struct BatchBudget {
    private var nanoseconds = [Int64](repeating: 0, count: BatchPhase.allCases.count)
    private var mark = DispatchTime.now().uptimeNanoseconds

    subscript(phase: BatchPhase) -> Int64 {
        get { nanoseconds[phase.index] }
        set { nanoseconds[phase.index] = newValue }
    }

    /// Gives the time since the last lap to `phase`.
    mutating func lap(_ phase: BatchPhase) {
        let now = DispatchTime.now().uptimeNanoseconds
        self[phase] += Int64(now &- mark)
        mark = now
    }

    /// Moves what the ledger measured during a lap given to `phase` into the ledger's phases
    /// (never more than the lap held: the two clocks are read at slightly different instants).
    mutating func split(_ ledger: WriteTimings, outOf phase: BatchPhase) {
        move(ledger.statementsNanoseconds, from: phase, to: .apply)
        move(ledger.commitNanoseconds, from: phase, to: .commit)
        move(ledger.checkpointNanoseconds, from: phase, to: .checkpoint)
        move(ledger.mergeNanoseconds, from: phase, to: .merge)
        self[.backgroundCheckpoint] += ledger.backgroundCheckpointNanoseconds
    }

    private mutating func move(_ amount: Int64, from: BatchPhase, to: BatchPhase) {
        guard from != to else { return }
        let moved = min(max(amount, 0), self[from])
        self[from] -= moved
        self[to] += moved
    }
}
