import Foundation
import JobWire
import Ledger
import Logging
import Redis

/// Turns taken jobs into ledger transactions and the outboxes that follow them.
///
/// Jobs keep their queue order: invalid ones become dead letters in place, valid ones go to the
/// ledger's group commit in order, so a user's jobs are applied as they were queued.
///
/// This is the only place an `Acknowledgement` is made, and each is made right after the commit
/// (or dead letter) of exactly the jobs it names: whatever stops, fails or takes over elsewhere,
/// no path can acknowledge a job that was not settled.
struct BatchProcessor: Sendable {
    let ledger: Ledger
    let keys: QueueKeys
    let replyExpirySeconds: Int
    let clock: any LedgerClock
    let logger: Logger
    let metrics: WorkerMetrics
    /// Writes the events stream and alerts (issue 13).
    let events: EventWriter

    /// Commits the whole batch in one transaction under `epoch` and returns it committed, to be
    /// encoded (`outbox(for:)`), on the Redis thread, into what to send, ending with the
    /// acknowledgement that deletes the batch's list. Throws what the ledger throws (storage
    /// errors, fencing): then nothing was committed and nothing is acknowledged.
    func commit(_ batch: TakenBatch, epoch: Int64) throws -> CommittedBatch {
        let started = ContinuousClock.now
        let results = batch.commands.isEmpty ? [] : try ledger.apply(batch.commands, epoch: epoch)
        let committed = CommittedBatch(batch: batch, results: results, ledgerNanoseconds: (ContinuousClock.now - started).nanoseconds)
        record(committed)
        return committed
    }

    /// The outbox of a committed batch: replies, invalidations, events and dead letters in queue
    /// order, then the acknowledgement of the whole list. Any thread may build it: the worker
    /// builds it on the Redis thread, right before sending it, while the loop commits the next batch.
    func outbox(for committed: CommittedBatch) -> Outbox {
        let started = ContinuousClock.now
        var outbox = encode(committed, list: committed.batch.list)
        outbox.acknowledge(Acknowledgement(batch: committed.batch.list, keys: keys))
        metrics.eventsWritten.increment(by: outbox.events)
        metrics.record(.redisEncode, nanoseconds: (ContinuousClock.now - started).nanoseconds)
        return outbox
    }

    /// Commits the job at `index` alone; its acknowledgement removes that job only (a job that
    /// cannot be read is removed by its dead letter).
    func commit(jobAt index: Int, of batch: TakenBatch, epoch: Int64) throws -> Outbox {
        let decoded = [batch.jobs[index]]
        let commands = decoded.compactMap { try? $0.get().command }
        let started = ContinuousClock.now
        let results = commands.isEmpty ? [] : try ledger.apply(commands, epoch: epoch)
        let committed = CommittedBatch(batch: batch, jobs: decoded, results: results,
                                       ledgerNanoseconds: (ContinuousClock.now - started).nanoseconds)
        record(committed)
        var outbox = encode(committed, list: batch.list)
        metrics.eventsWritten.increment(by: outbox.events)
        if case .success = batch.jobs[index] {
            outbox.acknowledge(Acknowledgement(job: batch.raws[index], in: batch.list, keys: keys))
        }
        return outbox
    }

    /// Gives up on the job at `index`, which failed alone while the ledger committed other
    /// writes: a dead letter with `storage_error`, and nothing stored under its id.
    func deadLetter(jobAt index: Int, of batch: TakenBatch, reason: String) -> Outbox {
        var outbox = Outbox(keys: keys, replyExpirySeconds: replyExpirySeconds)
        let job = try? batch.jobs[index].get()
        let invalid = InvalidJob(raw: batch.raws[index], error: JobError(code: "storage_error", reason),
                                 id: job?.id, type: job?.type.rawValue, replyTo: job?.replyTo)
        deadLetter(invalid, into: &outbox, list: batch.list)
        metrics.job(type: Self.metricType(of: invalid), outcome: "invalid")
        return outbox
    }

    /// After every job of a batch was settled one at a time: forgets its (now empty) list.
    func forget(_ batch: TakenBatch) -> Outbox {
        var outbox = Outbox(keys: keys, replyExpirySeconds: replyExpirySeconds)
        outbox.acknowledge(Acknowledgement(emptied: batch.list, keys: keys))
        return outbox
    }

    /// The batch's metrics, once per batch: jobs by type and outcome, how long each type waited
    /// for the commit, the batch's size and duration. Counting a batch costs a pass over its
    /// results; the counters and timers are touched once per distinct type and outcome.
    private func record(_ committed: CommittedBatch) {
        var counts: [(type: String, outcome: String, count: Int)] = []
        func count(_ type: String, _ outcome: String) {
            if let i = counts.firstIndex(where: { $0.outcome == outcome && $0.type == type }) { counts[i].count += 1 }
            else { counts.append((type, outcome, 1)) }
        }
        var next = committed.results.makeIterator()
        for job in committed.jobs {
            switch job {
            case .success(let job):
                guard let result = next.next() else { break }
                count(job.type.rawValue, result.duplicate ? "duplicate" : (result.success ? "success" : "refused"))
            case .failure(let invalid):
                count(Self.metricType(of: invalid), "invalid")
            }
        }
        var timed: [String] = []
        for c in counts {
            metrics.jobs(type: c.type, outcome: c.outcome, count: c.count)
            if c.outcome != "invalid" && !timed.contains(c.type) {
                timed.append(c.type)
                metrics.latency(type: c.type, nanoseconds: committed.ledgerNanoseconds)
            }
        }
        metrics.batchSize.record(committed.jobs.count)
        metrics.batchDuration.recordNanoseconds(committed.ledgerNanoseconds)
    }

    private static func metricType(of invalid: InvalidJob) -> String {
        invalid.type.flatMap { JobType(rawValue: $0)?.rawValue } ?? "unknown"
    }

    /// Replies, invalidations, events and dead letters of committed jobs, in queue order.
    private func encode(_ committed: CommittedBatch, list: String) -> Outbox {
        var outbox = Outbox(keys: keys, replyExpirySeconds: replyExpirySeconds, capacity: committed.jobs.count * 3 + 2)
        var next = committed.results.makeIterator()
        for job in committed.jobs {
            switch job {
            case .success(let job):
                guard let result = next.next() else { break }
                if let replyTo = job.replyTo { outbox.reply(to: replyTo, Replies.result(for: job, result)) }
                for change in result.changes { outbox.publish(change.json) }
                events.write(result, of: job, recovered: committed.batch.recovered, into: &outbox)
                outbox.announces(pendingThrough: result.pendingSeq)
                if logger.logLevel <= .debug {
                    let outcome = result.duplicate ? "duplicate" : (result.success ? "success" : "refused")
                    logger.debug("job applied", metadata: ["id": "\(job.id ?? "-")", "type": "\(job.type.rawValue)",
                                                           "outcome": "\(outcome)", "code": "\(result.errorCode ?? "-")"])
                }
            case .failure(let invalid):
                deadLetter(invalid, into: &outbox, list: list)
            }
        }
        return outbox
    }

    /// A job that cannot be read: kept whole on `P:dead`, with a failure reply if it named a
    /// `replyTo`. The dead letter and the job's removal from its list are one step (see
    /// `Outbox.deadLetter`), so no crash or restart between them can make it twice.
    func deadLetter(_ invalid: InvalidJob, into outbox: inout Outbox, list: String) {
        outbox.deadLetter(Replies.deadLetter(raw: invalid.raw, error: invalid.error, at: clock.now()),
                          acknowledging: Acknowledgement(job: invalid.raw, in: list, keys: keys))
        if let replyTo = invalid.replyTo {
            outbox.failureReply(to: replyTo, Replies.failure(id: invalid.id, type: invalid.type, error: invalid.error))
        }
        metrics.deadLetters.increment()
        logger.info("dead letter", metadata: ["code": "\(invalid.error.code)", "reason": "\(invalid.error.message)",
                                              "id": "\(invalid.id ?? "-")", "bytes": "\(invalid.raw.count)"])
    }
}

/// A batch (or one job of it) the ledger committed, with its results in order: what its outbox
/// is built from. Only `BatchProcessor.commit` makes one (the initializer is private to its
/// file), right after the COMMIT, so an outbox built from it, acknowledgement included, is
/// always one of committed jobs.
struct CommittedBatch: Sendable {
    let batch: TakenBatch
    /// The jobs committed: the whole batch, or the one job settled alone.
    let jobs: [Result<Job, InvalidJob>]
    let results: [CommandResult]
    /// How long the ledger took, from the call to the COMMIT's end.
    let ledgerNanoseconds: Int64
    /// The last `pending_sends` row its outbox announces (see `Outbox.announces`).
    let pendingSeq: Int64?
    /// Counted on the loop thread for its log line and `/metrics`, as the outbox will hold them.
    let replies: Int
    let invalidations: Int
    let deadLetters: Int

    fileprivate init(batch: TakenBatch, jobs: [Result<Job, InvalidJob>]? = nil, results: [CommandResult], ledgerNanoseconds: Int64) {
        self.batch = batch
        let jobs = jobs ?? batch.jobs
        self.jobs = jobs
        self.results = results
        self.ledgerNanoseconds = ledgerNanoseconds
        pendingSeq = results.lazy.compactMap(\.pendingSeq).max()
        var replies = 0, invalidations = 0, deadLetters = 0
        var next = results.makeIterator()
        for job in jobs {
            switch job {
            case .success(let job):
                guard let result = next.next() else { break }
                if job.replyTo != nil { replies += 1 }
                invalidations += result.changes.count
            case .failure(let invalid):
                deadLetters += 1
                if invalid.replyTo != nil { replies += 1 }
            }
        }
        (self.replies, self.invalidations, self.deadLetters) = (replies, invalidations, deadLetters)
    }
}

/// The commands that remove settled jobs from Redis, naming exactly what they remove. Only
/// `BatchProcessor` can make one (the initializers are private to its file), and only once the
/// jobs it names are committed or dead-lettered.
struct Acknowledgement: Sendable {
    let commands: [RedisCommand]
    /// The processing list one job leaves (for a dead letter's removal inside the ordered script).
    private(set) var listKey: String?

    /// Removes a list and its name whenever no job of it remains unsettled: the only script
    /// here, used when a batch was settled one job at a time.
    private static let forgetIfEmpty = """
        if redis.call('LLEN', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end
        return 0
        """

    /// Deletes a settled batch's list, and only then forgets its name: were the name forgotten
    /// while the delete was refused, the jobs would sit in a list no worker looks for.
    private static let deleteThenForget = """
        redis.call('DEL', KEYS[1])
        return redis.call('SREM', KEYS[2], ARGV[1])
        """

    /// Every job of the batch is committed: its list goes, and its name.
    fileprivate init(batch list: String, keys: QueueKeys) {
        commands = [RedisCommand("EVAL", Self.deleteThenForget, 2, keys.processing(list), keys.workers, list)]
    }

    /// One job is settled: that job (these bytes, from the oldest end) leaves the list.
    fileprivate init(job raw: [UInt8], in list: String, keys: QueueKeys) {
        commands = [RedisCommand("LREM", keys.processing(list), -1, raw)]
        listKey = keys.processing(list)
    }

    fileprivate init(emptied list: String, keys: QueueKeys) {
        commands = [RedisCommand("EVAL", Self.forgetIfEmpty, 2, keys.processing(list), keys.workers, list)]
    }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }

    /// Milliseconds with two decimals, for logs.
    var milliseconds: Double {
        (Double(nanoseconds) / 10_000).rounded() / 100
    }
}
