import Foundation
import Ledger
import LedgerModel
import Logging
import Redis

/// One partition's loop, run a turn at a time by the loop pool: stand by until the lease is
/// free, then take batches, settle them, and run scheduled renewals between batches.
///
/// Blocking hiredis calls and SQLite commits would starve Swift's cooperative thread pool, so
/// turns run on the pool's plain threads; an idle partition holds no thread at all, only a wait
/// written on its connection, which the pool polls. The loop owns its Redis connection and the
/// ledger's write side; nothing here is shared with another thread except the stop signal, the
/// health report and the lease keeper's flag, and the pool gives a loop one turn at a time.
final class QueueWorker: PooledLoop {
    let configuration: WorkerConfiguration
    let ledger: Ledger
    let stop: StopSignal
    let health: WorkerHealth
    var logger: Logger
    let metrics: WorkerMetrics
    let lease: Lease
    let processor: BatchProcessor
    var scheduler: RenewalScheduler
    /// The loop's own connection: the lease, recovery reads, queue depth, the wait for jobs.
    var link: JobQueue?
    /// Standing by, serving a term as the active worker, or stopping.
    var state = LoopState.standingBy
    var chores = Chores()
    /// The seconds of the wait for jobs written on `link` and not yet answered; nil when none is.
    private var waitingSeconds: Double?
    private var failures = 0
    private var started = false

    /// A job whose own statements fail this many times is poison (storage failures never count).
    static let poisonStrikes = 3

    init(configuration: WorkerConfiguration, ledger: Ledger, clock: any LedgerClock, stop: StopSignal,
         health: WorkerHealth, logger: Logger) {
        var configuration = configuration
        // A claim of this start alone, even if a twin was given the same configuration.
        configuration.leaseHolder = Lease.holder(workerId: configuration.workerId)
        self.configuration = configuration
        self.ledger = ledger
        self.stop = stop
        self.health = health
        metrics = WorkerMetrics(partition: configuration.keys.partition)
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.workerId)"
        if let partition = configuration.keys.partition { logger[metadataKey: "partition"] = "\(partition)" }
        self.logger = logger
        lease = Lease(key: configuration.keys.lease, holder: configuration.leaseHolder,
                      milliseconds: configuration.leaseMilliseconds)
        scheduler = RenewalScheduler(schedule: configuration.renewalSchedule, chunkSize: configuration.renewalChunkSize,
                                     clock: clock, logger: logger)
        processor = BatchProcessor(ledger: ledger, keys: configuration.keys, replyExpirySeconds: configuration.replyExpirySeconds,
                                   clock: clock, logger: logger, metrics: metrics,
                                   events: EventWriter(streamMaxLength: configuration.eventsMaxLength, metrics: metrics),
                                   recoveryWindowMilliseconds: configuration.recoveryWindowMilliseconds)
    }

    /// One turn: take the lease, or settle one batch, or find the queue empty and leave a wait for
    /// jobs to the pool. At the stop, it finishes the batch in hand, releases the lease and ends.
    func turn(_ wake: Wake) -> Turn {
        if !started {
            started = true
            logger.info("worker starting", metadata: ["redis": "\(configuration.redis)", "queue": "\(configuration.keys.jobs)"])
        }
        if stop.isStopped {
            // A wait's answer will never be read: the link is closed, and reconnects for the release.
            if waitingSeconds != nil { link?.redis.close() }
            waitingSeconds = nil
            shutDown()
            return .finished
        }
        do {
            try endWait(wake)
            let link = try connection()
            if case .standingBy = state {
                guard try becomeActive(link) else { return .sleep(seconds: min(1, Double(configuration.leaseMilliseconds) / 5000)) }
            }
            guard let term = state.term, term.keeper.isHeld else {
                standBy(reason: "the lease may have lapsed")
                return .again
            }
            let next = try step(link, term)
            health.recovered(.redis)
            failures = 0
            return next
        } catch LedgerStorageError.fenced(let mine, let current) {
            standBy(reason: "fenced by a newer worker (epoch \(mine) < \(current))")
        } catch QueueError.leaseNotHeld {
            standBy(reason: "a take or a send found the lease held by another worker")
        } catch let error as RedisError {
            metrics.redisErrors.increment()
            health.failing(.redis, "\(error)")
            if let term = state.term {
                logSendProblems(term.dropIO())
                term.recoveryDue = true
            }
            logger.error("redis unavailable; retrying", metadata: ["error": "\(error)"])
            return failed()
        } catch {
            ledgerFailed(error, attempt: failures + 1)
            return failed()
        }
        return .again
    }

    /// Reads how the wait for jobs ended, if one was written: an answer, or none in time (the
    /// link is then closed, and the next command reconnects). Either way the queue is looked at.
    private func endWait(_ wake: Wake) throws {
        guard let seconds = waitingSeconds, let link else { return }
        waitingSeconds = nil
        var found = true
        if wake == .answered {
            switch try link.finishWaitForJobs() {
            case .jobs: break
            case .empty: found = false
            case .refused(let message):
                // An `ASK` sends the take to the right node but the next wait to the same one:
                // waits pause a poll interval so that a reshard is no loop at round-trip speed.
                logger.notice("the wait for jobs was refused; taking, then waiting again after a pause", metadata: ["reply": "\(message)"])
                chores.waitRefused = true
            }
        } else {
            metrics.redisErrors.increment()
            logger.warning("the wait for jobs went unanswered past its timeout; reconnecting",
                           metadata: ["seconds": "\(seconds + configuration.redis.commandTimeout)"])
            link.redis.close()
        }
        state.term?.waited(found: found)
        // Waits double while the queue stays empty (`idleWaitSeconds`); a job ends the doubling.
        chores.idleWaitSeconds = found ? nil : min(seconds * 2, configuration.idleWaitSeconds)
    }

    /// One turn of the active loop.
    private func step(_ link: JobQueue, _ term: ActiveTerm) throws -> Turn {
        var budget = BatchBudget()
        // The stored snapshots the ledger kept to announce go first in a term and after a drop
        // of the Redis thread: before recovery commits anything and before any newer message.
        if !term.resentPending { try resendPending(term) }
        if term.recoveryDue {
            // Left unsettled (a stop came first), recovery stays due and nothing newer is taken.
            guard try recover(link, term) else { return .again }
            term.recoveryDue = false
        }
        let renewing = try renewIfDue(term)
        let sweeping = try sweepIfDue(term)  // the expiry sweep (QueueWorker+Expiry)
        if chores.due(\.ledgerSample, every: .seconds(2)) {
            sampleLedger()
            sampleHolds()
        }
        budget.lap(.chores)
        // While a renewal run is in progress, take only what is already waiting.
        let wait = renewing || sweeping ? 0 : chores.idleWaitSeconds ?? configuration.pollSeconds
        let taken = try term.nextBatch(mayWait: wait > 0)
        budget.lap(.take)
        // The depth after the take: what waits behind this batch (before it, the jobs a wait just
        // found would read as a backlog until the next sample). Idle, the waits find nothing and
        // Redis is asked less often.
        if chores.due(\.depthSample, every: chores.idleWaitSeconds == nil ? .seconds(2) : .seconds(30)) {
            metrics.queueDepth.record(try link.redis.llen(configuration.keys.jobs))
            try sampleRecoveryStream(link)
        } else if taken == nil {
            metrics.queueDepth.record(0)  // the take found the queue empty
        }
        budget.lap(.chores)
        guard let batch = taken, !batch.isEmpty else {
            logSendProblems(try term.collectSent())
            noteReconnects(link.redis.reconnectCount + term.reconnects)
            // Idle, with every outbox sent: any registered list, this worker's too, is a leftover
            // (an acknowledgement lost with a Redis restart, say) and is settled again.
            if chores.due(\.leftoverLists, every: .seconds(5)) {
                term.recoveryDue = try !recover(link, term)
                if term.recoveryDue { return .again }
            }
            guard taken == nil else { return .again }
            if chores.waitRefused {
                chores.waitRefused = false
                return .sleep(seconds: configuration.pollSeconds)
            }
            let descriptor = try link.startWaitForJobs(timeout: wait)
            waitingSeconds = wait
            // The server answers at `wait` seconds; past that and the command timeout, the link is suspect.
            return .wait(descriptor: descriptor, seconds: wait + configuration.redis.commandTimeout)
        }
        chores.idleWaitSeconds = nil
        // Take the next batch while this one commits; its outbox leaves after this one's.
        if !stop.isStopped { term.prefetch(after: batch) }
        let beforeCommit = ledger.writeTimings
        budget.lap(.other)
        // The Redis thread meanwhile builds and sends the last batch's outbox: the two overlap.
        guard try settle(batch, in: term) else { return .again }
        let committed = ledger.writeTimings
        budget.lap(.encode)
        budget.split(committed.since(beforeCommit), outOf: .encode)
        // The outboxes queued before this batch's: a failure among them surfaces here, after
        // this commit (whose own outbox then fails on the same failed path: recovery settles
        // both lists again, in order).
        logSendProblems(try term.collectSent(leaving: 1))
        budget.lap(.send)
        noteReconnects(link.redis.reconnectCount + term.reconnects)
        // Index maintenance (at most `mergePauseMilliseconds`), while the Redis thread sends this batch's outbox.
        try ledger.maintainAfterBatch(epoch: term.epoch)
        budget.lap(.merge)
        budget.split(ledger.writeTimings.since(committed), outOf: .merge)
        budget[.decode] = batch.decodeNanoseconds
        metrics.record(budget)
        return .again
    }

    /// Renews one chunk of a due renewal run; true while the run goes on.
    private func renewIfDue(_ term: ActiveTerm) throws -> Bool {
        guard try scheduler.dueSlot(ledger) != nil else { return false }
        let (summary, done) = try scheduler.runChunk(ledger, epoch: term.epoch)
        var outbox = Outbox(keys: configuration.keys, replyExpirySeconds: configuration.replyExpirySeconds)
        for change in summary.changes { outbox.publish(change) }
        processor.events.write(summary.events, into: &outbox)
        outbox.announces(pendingThrough: summary.pendingSeq)  // renewal.completed among the events
        metrics.invalidations.increment(by: outbox.invalidations)
        metrics.eventsWritten.increment(by: outbox.events)
        try term.send(outbox)
        metrics.renewals.increment(by: summary.successful)
        if done { metrics.renewalRuns.increment() }
        return !done
    }

    /// Connections replace a broken link by themselves when they can (a Redis restart noticed
    /// before a command was written loses nothing); this makes it visible.
    private func noteReconnects(_ total: Int) {
        guard total > chores.reconnectsSeen else { return }
        metrics.redisReconnects.increment(by: total - chores.reconnectsSeen)
        chores.reconnectsSeen = total
        logger.warning("redis link broke and was re-established", metadata: ["reconnects": "\(total)"])
    }

    /// Error replies of single commands in a sent outbox (a `replyTo` naming a key of another
    /// type, say): the rest went out; each is logged and counted.
    func logSendProblems(_ problems: [String]) {
        guard !problems.isEmpty else { return }
        metrics.sendErrors.increment(by: problems.count)
        for problem in problems {
            logger.warning("a reply or message was refused by Redis", metadata: ["error": "\(problem)"])
        }
    }

    /// The WAL's size and the checkpoints that failed, for `/metrics` and the log.
    private func sampleLedger() {
        let status = ledger.checkpointStatus
        metrics.walFrames.record(status.walFrames)
        if status.failures > chores.checkpointFailuresSeen {
            metrics.checkpointFailures.increment(by: status.failures - chores.checkpointFailuresSeen)
            chores.checkpointFailuresSeen = status.failures
            logger.error("checkpoints are failing; the WAL grows", metadata: [
                "walFrames": "\(status.walFrames)", "error": "\(status.lastError ?? "-")"])
        }
        // A merge that failed after a commit: the batch stood; the tail merges again later.
        let merges = ledger.boundedMergeStatus
        if merges.failures > chores.boundedMergeFailuresSeen {
            chores.boundedMergeFailuresSeen = merges.failures
            logger.error("a merge after a commit failed; the commit stands and the merge is retried",
                         metadata: ["failures": "\(merges.failures)", "error": "\(merges.lastError ?? "-")"])
        }
    }

    // MARK: Helpers

    private func connection() throws(RedisError) -> JobQueue {
        if let link { return link }
        let made = JobQueue(redis: try configuration.redis.connect(), configuration: configuration,
                            firstSequence: 0)
        link = made
        return made
    }

    /// Backs off after a failure, without holding a thread: the pool runs the loop again later.
    private func failed() -> Turn {
        failures += 1
        return .sleep(seconds: Self.backoff(failures))
    }

    /// Capped exponential backoff: 0.1 s, 0.2 s, ... up to 5 s.
    static func backoff(_ attempt: Int) -> Double {
        StorageFailure.backoffSeconds(attempt)  // one curve for the loop, start-up and the CLI
    }

    /// Sleeps in short slices so that a stop is seen quickly. Only a storage failure inside a
    /// settle sleeps in a turn (its batch is in hand, and must not be let go between retries).
    func pause(seconds: Double) {
        var left = seconds
        while left > 0 && !stop.isStopped {
            usleep(useconds_t(min(left, 0.05) * 1_000_000))
            left -= 0.05
        }
    }
}

/// What the loop is doing. A term begins when the lease is taken and ends when it is lost (back to
/// standing by) or at the stop.
enum LoopState {
    case standingBy
    case active(ActiveTerm)
    case stopping

    var term: ActiveTerm? {
        if case .active(let term) = self { return term }
        return nil
    }
}

/// Housekeeping between batches: when each chore last ran, and counters already reported.
struct Chores {
    var depthSample = ContinuousClock.now - .seconds(60)
    var ledgerSample = ContinuousClock.now - .seconds(60)
    /// The next wait for a job while the queue stays empty; nil while jobs come (`pollSeconds`).
    var idleWaitSeconds: Double?
    /// The last wait for jobs was answered with an error reply: the next one waits a pause first.
    var waitRefused = false
    /// The expiry sweep's last look: in the past, so the first turn (start-up) settles at once.
    var expirySweep = ContinuousClock.now - .seconds(60)
    /// The last sweep chunk was full: more due accounts wait.
    var sweepBacklog = false
    /// The ledger's `pending_sends` rows forgotten through this seq in this term (reset when a
    /// term starts: another worker may have forgotten more meanwhile).
    var pendingForgotten: Int64 = 0
    var leftoverLists = ContinuousClock.now
    var reconnectsSeen = 0
    var checkpointFailuresSeen = 0
    var boundedMergeFailuresSeen = 0
    var ledgerFailing = false
    var lastLedgerError = ""

    /// True, and the chore's time reset, when `interval` has passed since it last ran.
    mutating func due(_ chore: WritableKeyPath<Chores, ContinuousClock.Instant>, every interval: Duration) -> Bool {
        guard ContinuousClock.now - self[keyPath: chore] > interval else { return false }
        self[keyPath: chore] = ContinuousClock.now
        return true
    }
}
