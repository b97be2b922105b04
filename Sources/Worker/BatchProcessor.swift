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
struct BatchProcessor {
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

    /// Commits the whole batch in one transaction under `epoch` and returns what to send, ending
    /// with the acknowledgement that deletes the batch's list. Throws what the ledger throws
    /// (storage errors, fencing): then nothing was committed and nothing is acknowledged.
    func commit(_ batch: TakenBatch, epoch: Int64) throws -> Outbox {
        let (body, applied) = try apply(batch.jobs, raws: batch.raws, epoch: epoch, recovered: batch.recovered, list: batch.list)
        var outbox = body
        outbox.acknowledge(Acknowledgement(batch: batch.list, recording: applied, keys: keys, windowMilliseconds: recoveryWindowMilliseconds))
        return outbox
    }

    /// Commits the job at `index` alone; its acknowledgement removes that job only (a job that
    /// cannot be read is removed by its dead letter).
    func commit(jobAt index: Int, of batch: TakenBatch, epoch: Int64) throws -> Outbox {
        let (body, applied) = try apply([batch.jobs[index]], raws: [batch.raws[index]], epoch: epoch, recovered: batch.recovered,
                                        list: batch.list)
        var outbox = body
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
        deadLetter(InvalidJob(raw: batch.raws[index], error: JobError(code: "storage_error", reason),
                              id: job?.id, type: job?.type.rawValue, replyTo: job?.replyTo), into: &outbox, list: batch.list)
        return outbox
    }

    /// After every job of a batch was settled one at a time: forgets its (now empty) list.
    func forget(_ batch: TakenBatch) -> Outbox {
        var outbox = Outbox(keys: keys, replyExpirySeconds: replyExpirySeconds)
        outbox.acknowledge(Acknowledgement(emptied: batch.list, keys: keys))
        return outbox
    }

    /// Also returns what the acknowledgement records on `P:applied`: every job with an id (its
    /// result is stored under it, a query's too), duplicates too (a replay after a lost
    /// acknowledgement is acknowledged now, so it must be recorded now); never a dead letter,
    /// which changed nothing and stays on `P:dead`.
    private func apply(_ decoded: [Result<Job, InvalidJob>], raws: [[UInt8]], epoch: Int64, recovered: Bool,
                       list: String) throws -> (Outbox, AppliedJobs) {
        let started = ContinuousClock.now
        let commands = decoded.compactMap { try? $0.get().command }
        let results = commands.isEmpty ? [] : try ledger.apply(commands, epoch: epoch)
        let elapsed = (ContinuousClock.now - started).nanoseconds
        var outbox = Outbox(keys: keys, replyExpirySeconds: replyExpirySeconds, capacity: raws.count * 3 + 2)
        var next = results.makeIterator()
        var applied = AppliedJobs()
        for (job, raw) in zip(decoded, raws) {
            switch job {
            case .success(let job):
                guard let result = next.next() else { break }
                if job.id != nil { applied.add(raw, result) }
                if let replyTo = job.replyTo { outbox.reply(to: replyTo, job: job, result) }
                for change in result.changes { outbox.publish(change) }
                events.write(result, of: job, recovered: recovered, into: &outbox)
                outbox.announces(pendingThrough: result.pendingSeq)
                let outcome = result.duplicate ? "duplicate" : (result.success ? "success" : "refused")
                metrics.job(type: job.type.rawValue, outcome: outcome)
                metrics.latency(type: job.type.rawValue, nanoseconds: elapsed)
                if logger.logLevel <= .debug {
                    logger.debug("job applied", metadata: ["id": "\(job.id ?? "-")", "type": "\(job.type.rawValue)",
                                                           "outcome": "\(outcome)", "code": "\(result.errorCode ?? "-")"])
                }
            case .failure(let invalid):
                deadLetter(invalid, into: &outbox, list: list)
            }
        }
        metrics.batchSize.record(raws.count)
        metrics.batchDuration.recordNanoseconds(elapsed)
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
        metrics.job(type: invalid.type.flatMap { JobType(rawValue: $0)?.rawValue } ?? "unknown", outcome: "invalid")
        metrics.deadLetters.increment()
        logger.info("dead letter", metadata: ["code": "\(invalid.error.code)", "reason": "\(invalid.error.message)",
                                              "id": "\(invalid.id ?? "-")", "bytes": "\(invalid.raw.count)"])
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
        var command = RedisCommand(script: Self.recordDeleteThenForget, keys: [keys.processing(list), keys.workers, keys.applied],
                                   arguments: [list])
        applied.append(to: &command, windowMilliseconds: windowMilliseconds)
        commands = [command]
    }

    /// One job is committed alone: recorded, then that job leaves the list.
    fileprivate init(job raw: [UInt8], recording applied: AppliedJobs, in list: String, keys: QueueKeys, windowMilliseconds: Int) {
        var command = RedisCommand(script: Self.recordThenRemove, keys: [keys.processing(list), keys.workers, keys.applied],
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
        commands = [RedisCommand(script: Self.forgetIfEmpty, keys: [keys.processing(list), keys.workers], arguments: [list])]
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
