import Metrics

/// The worker's metrics, through swift-metrics (the executable bootstraps Prometheus).
///
/// Handles are made once and cached: a swift-metrics handle costs a factory lookup, which the
/// hot path should not pay per job. Counters add up across the partitions a process serves;
/// gauges, which describe one queue or one ledger, carry a `partition` label when the ledger is split.
final class WorkerMetrics {
    private var jobs: [String: Counter] = [:]
    private var latencies: [String: Timer] = [:]
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

    /// Counts one job by type and outcome (`success`, `refused`, `duplicate`, `invalid`).
    func job(type: String, outcome: String) {
        let key = type + "|" + outcome
        if let counter = jobs[key] { counter.increment(); return }
        let counter = Counter(label: "tokenledger_jobs_total", dimensions: [("type", type), ("outcome", outcome)])
        jobs[key] = counter
        counter.increment()
    }

    /// Records how long a job of this type waited for its batch's commit, in nanoseconds.
    func latency(type: String, nanoseconds: Int64) {
        if let timer = latencies[type] { timer.recordNanoseconds(nanoseconds); return }
        let timer = Timer(label: "tokenledger_job_duration_seconds", dimensions: [("type", type)], preferredDisplayUnit: .seconds)
        latencies[type] = timer
        timer.recordNanoseconds(nanoseconds)
    }
}
