import Foundation
import JobWire
import Ledger
import LedgerModel
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
    /// How long `P:applied` keeps an acknowledged job (see `Acknowledgement`).
    var recoveryWindowMilliseconds = WorkerConfiguration.defaultRecoveryWindowMilliseconds

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
        var (outbox, applied) = encode(committed, list: committed.batch.list)
        outbox.acknowledge(Acknowledgement(batch: committed.batch.list, recording: applied, keys: keys,
                                           windowMilliseconds: recoveryWindowMilliseconds))
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
        let committed = CommittedBatch(batch: batch, jobAt: index, results: results,
                                       ledgerNanoseconds: (ContinuousClock.now - started).nanoseconds)
        record(committed)
        var (outbox, applied) = encode(committed, list: batch.list)
        metrics.eventsWritten.increment(by: outbox.events)
        if case .success = batch.jobs[index] {
            outbox.acknowledge(Acknowledgement(job: batch.raws[index], recording: applied, in: batch.list, keys: keys,
                                               windowMilliseconds: recoveryWindowMilliseconds))
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

    /// Replies, invalidations, events and dead letters of committed jobs, in queue order; and
    /// what the acknowledgement records on `P:applied`: every job with an id (its result is
    /// stored under it, a query's too), duplicates too (a replay after a lost acknowledgement is
    /// acknowledged now, so it must be recorded now); never a dead letter, which changed nothing
    /// and stays on `P:dead`.
    private func encode(_ committed: CommittedBatch, list: String) -> (Outbox, AppliedJobs) {
        var outbox = Outbox(keys: keys, replyExpirySeconds: replyExpirySeconds, capacity: committed.jobs.count * 3 + 2)
        var applied = AppliedJobs()
        var next = committed.results.makeIterator()
        for (job, raw) in zip(committed.jobs, committed.raws) {
            switch job {
            case .success(let job):
                guard let result = next.next() else { break }
                if job.id != nil { applied.add(raw, result) }
                if let replyTo = job.replyTo { outbox.reply(to: replyTo, job: job, result) }
                for change in result.changes { outbox.publish(change) }
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
        return (outbox, applied)
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
    /// The jobs committed: the whole batch, or the one job settled alone; and their bytes.
    let jobs: [Result<Job, InvalidJob>]
    let raws: [[UInt8]]
    let results: [CommandResult]
    /// How long the ledger took, from the call to the COMMIT's end.
    let ledgerNanoseconds: Int64
    /// The last `pending_sends` row its outbox announces (see `Outbox.announces`).
    let pendingSeq: Int64?
    /// Counted on the loop thread for its log line and `/metrics`, as the outbox will hold them.
    let replies: Int
    let invalidations: Int
    let deadLetters: Int

    fileprivate init(batch: TakenBatch, jobAt index: Int? = nil, results: [CommandResult], ledgerNanoseconds: Int64) {
        self.batch = batch
        let jobs = index.map { [batch.jobs[$0]] } ?? batch.jobs
        self.jobs = jobs
        raws = index.map { [batch.raws[$0]] } ?? batch.raws
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

    /// Removes a list and its name whenever no job of it remains unsettled: used when a batch
    /// was settled one job at a time. Both scripts go by digest (`RedisCommand(script:...)`).
    private static let forgetIfEmpty = RedisScript(source: """
        if redis.call('LLEN', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end
        return 0
        """)

    /// Records the batch's applied jobs on `P:applied` (KEYS[3]), trims it to the window, then
    /// deletes the settled batch's list (KEYS[1]), and only then forgets its name (ARGV[1], in
    /// KEYS[2]): were the name forgotten while the delete was refused, the jobs would sit in a
    /// list no worker looks for. ARGV[2] is the window in milliseconds, ARGV[3] the time the
    /// batch was applied, then each job as its bytes and "1" when this delivery was a duplicate.
    ///
    /// One script, so the record and the delete are one step: no job leaves its list unrecorded
    /// (a refused XADD stops the script before the DEL), and none is recorded while it stays (a
    /// replay after a lost answer records it again, which a restore applies by id: harmless).
    /// The window is counted on Redis's clock, the one the entry ids are made of.
    private static let recordDeleteThenForget = RedisScript(source: """
        \(recordApplied)
        redis.call('DEL', KEYS[1])
        return redis.call('SREM', KEYS[2], ARGV[1])
        """)

    /// The part shared by both recording scripts: ARGV[2...] as above, the stream KEYS[3].
    private static let recordApplied = """
        if #ARGV > 3 then
            for i = 4, #ARGV, 2 do
                if ARGV[i + 1] == '1' then
                    redis.call('XADD', KEYS[3], '*', 'job', ARGV[i], 'at', ARGV[3], 'duplicate', 'true')
                else
                    redis.call('XADD', KEYS[3], '*', 'job', ARGV[i], 'at', ARGV[3])
                end
            end
            local now = redis.call('TIME')
            local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[2])
            redis.call('XTRIM', KEYS[3], 'MINID', '~', string.format('%d', oldest))
        end
        """

    /// One job settled alone: recorded as above, then that job (these bytes, from the oldest
    /// end, KEYS[2]'s ARGV[1]) leaves its list KEYS[1].
    private static let recordThenRemove = RedisScript(source: """
        \(recordApplied)
        return redis.call('LREM', KEYS[1], -1, ARGV[1])
        """)

    /// Every job of the batch is committed: recorded, then its list goes, and its name.
    fileprivate init(batch list: String, recording applied: AppliedJobs, keys: QueueKeys, windowMilliseconds: Int) {
        var command = RedisCommand(script: Self.recordDeleteThenForget, keys: [keys.processing(list), keys.processingLists, keys.applied],
                                   arguments: [list])
        applied.append(to: &command, windowMilliseconds: windowMilliseconds)
        commands = [command]
    }

    /// One job is committed alone: recorded, then that job leaves the list.
    fileprivate init(job raw: [UInt8], recording applied: AppliedJobs, in list: String, keys: QueueKeys, windowMilliseconds: Int) {
        var command = RedisCommand(script: Self.recordThenRemove, keys: [keys.processing(list), keys.processingLists, keys.applied],
                                   arguments: [raw])
        applied.append(to: &command, windowMilliseconds: windowMilliseconds)
        commands = [command]
    }

    /// One job is dead-lettered: that job (these bytes, from the oldest end) leaves the list,
    /// inside the ordered script beside its dead letter; a dead letter changed nothing, so it is
    /// not recorded on `P:applied` (it stays on `P:dead`, which nothing trims).
    fileprivate init(job raw: [UInt8], in list: String, keys: QueueKeys) {
        commands = [RedisCommand("LREM", keys.processing(list), -1, raw)]
        listKey = keys.processing(list)
    }

    fileprivate init(emptied list: String, keys: QueueKeys) {
        commands = [RedisCommand(script: Self.forgetIfEmpty, keys: [keys.processing(list), keys.processingLists], arguments: [list])]
    }
}

/// The jobs an acknowledgement records on `P:applied`, in queue order, with the time their
/// transaction ran (one per acknowledgement: a batch is one transaction).
struct AppliedJobs {
    private(set) var raws: [[UInt8]] = []
    private(set) var duplicates: [Bool] = []
    private(set) var atMs: Int64 = 0

    mutating func add(_ raw: [UInt8], _ result: CommandResult) {
        raws.append(raw)
        duplicates.append(result.duplicate)
        atMs = max(atMs, result.atMs)
    }

    var isEmpty: Bool { raws.isEmpty }

    /// ARGV[2...] of the recording scripts: the window, the time, then each job and its flag.
    func append(to command: inout RedisCommand, windowMilliseconds: Int) {
        command.append(windowMilliseconds)
        command.append(LedgerTime.format(ms: atMs))
        for (raw, duplicate) in zip(raws, duplicates) {
            command.append(raw)
            command.append(duplicate ? "1" : "0")
        }
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
