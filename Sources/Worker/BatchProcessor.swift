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

    /// Commits the whole batch in one transaction under `epoch` and returns what to send, ending
    /// with the acknowledgement that deletes the batch's list. Throws what the ledger throws
    /// (storage errors, fencing): then nothing was committed and nothing is acknowledged.
    func commit(_ batch: TakenBatch, epoch: Int64) throws -> Outbox {
        var outbox = try apply(batch.jobs, raws: batch.raws, epoch: epoch, recovered: batch.recovered)
        outbox.acknowledge(Acknowledgement(batch: batch.list, keys: keys))
        return outbox
    }

    /// Commits the job at `index` alone; its acknowledgement removes that job only.
    func commit(jobAt index: Int, of batch: TakenBatch, epoch: Int64) throws -> Outbox {
        var outbox = try apply([batch.jobs[index]], raws: [batch.raws[index]], epoch: epoch, recovered: batch.recovered)
        outbox.acknowledge(Acknowledgement(job: batch.raws[index], in: batch.list, keys: keys))
        return outbox
    }

    /// Gives up on the job at `index`, which failed alone while the ledger committed other
    /// writes: a dead letter with `storage_error`, and nothing stored under its id.
    func deadLetter(jobAt index: Int, of batch: TakenBatch, reason: String) -> Outbox {
        var outbox = Outbox(keys: keys, replyExpirySeconds: replyExpirySeconds)
        let job = try? batch.jobs[index].get()
        deadLetter(InvalidJob(raw: batch.raws[index], error: JobError(code: "storage_error", reason),
                              id: job?.id, type: job?.type.rawValue, replyTo: job?.replyTo), into: &outbox)
        outbox.acknowledge(Acknowledgement(job: batch.raws[index], in: batch.list, keys: keys))
        return outbox
    }

    /// After every job of a batch was settled one at a time: forgets its (now empty) list.
    func forget(_ batch: TakenBatch) -> Outbox {
        var outbox = Outbox(keys: keys, replyExpirySeconds: replyExpirySeconds)
        outbox.acknowledge(Acknowledgement(emptied: batch.list, keys: keys))
        return outbox
    }

    private func apply(_ decoded: [Result<Job, InvalidJob>], raws: [[UInt8]], epoch: Int64, recovered: Bool) throws -> Outbox {
        let started = ContinuousClock.now
        let commands = decoded.compactMap { try? $0.get().command }
        let results = commands.isEmpty ? [] : try ledger.apply(commands, epoch: epoch)
        let elapsed = (ContinuousClock.now - started).nanoseconds
        var outbox = Outbox(keys: keys, replyExpirySeconds: replyExpirySeconds, capacity: raws.count * 3 + 2)
        var next = results.makeIterator()
        for job in decoded {
            switch job {
            case .success(let job):
                guard let result = next.next() else { break }
                if let replyTo = job.replyTo { outbox.reply(to: replyTo, Replies.result(for: job, result)) }
                for change in result.changes { outbox.publish(change.json) }
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
                deadLetter(invalid, into: &outbox)
            }
        }
        metrics.batchSize.record(raws.count)
        metrics.batchDuration.recordNanoseconds(elapsed)
        return outbox
    }

    /// A job that cannot be read: kept whole on `P:dead`, with a failure reply if it named a `replyTo`.
    func deadLetter(_ invalid: InvalidJob, into outbox: inout Outbox) {
        outbox.deadLetter(Replies.deadLetter(raw: invalid.raw, error: invalid.error, at: clock.now()))
        if let replyTo = invalid.replyTo {
            outbox.reply(to: replyTo, Replies.failure(id: invalid.id, type: invalid.type, error: invalid.error))
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

    /// Removes a list and its name whenever no job of it remains unsettled: the only script
    /// here, used when a batch was settled one job at a time.
    private static let forgetIfEmpty = """
        if redis.call('LLEN', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end
        return 0
        """

    /// Every job of the batch is committed: its list goes, and its name.
    fileprivate init(batch list: String, keys: QueueKeys) {
        commands = [RedisCommand("DEL", keys.processing(list)), RedisCommand("SREM", keys.workers, list)]
    }

    /// One job is settled: that job (these bytes, from the oldest end) leaves the list.
    fileprivate init(job raw: [UInt8], in list: String, keys: QueueKeys) {
        commands = [RedisCommand("LREM", keys.processing(list), -1, raw)]
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
