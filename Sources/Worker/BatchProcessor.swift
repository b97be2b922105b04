import Foundation
import JobWire
import Ledger
import Logging
import Redis

/// Turns a batch of raw jobs into one ledger transaction and the outbox that follows it.
///
/// Jobs keep their queue order: invalid ones become dead letters in place, valid ones go to the
/// ledger's group commit in order, so a user's jobs are applied as they were queued.
struct BatchProcessor {
    let ledger: Ledger
    let keys: QueueKeys
    let replyExpirySeconds: Int
    let clock: any LedgerClock
    let logger: Logger
    let metrics: WorkerMetrics

    /// Applies a batch under `epoch` and returns what to send; `acknowledgement` ends the outbox.
    /// Throws what the ledger throws (storage errors, fencing): then nothing was committed.
    func process(_ batch: DecodedBatch, epoch: Int64, acknowledgement: RedisCommand) throws -> Outbox {
        let started = ContinuousClock.now
        let (raws, decoded) = (batch.raws, batch.jobs)
        let commands = decoded.compactMap { try? $0.get().command }
        let results = commands.isEmpty ? [] : try ledger.apply(commands, epoch: epoch)
        let elapsed = (ContinuousClock.now - started).nanoseconds
        var outbox = Outbox(keys: keys, replyExpirySeconds: replyExpirySeconds, capacity: raws.count * 3 + 1)
        var next = results.makeIterator()
        for job in decoded {
            switch job {
            case .success(let job):
                guard let result = next.next() else { break }
                if let replyTo = job.replyTo { outbox.reply(to: replyTo, Replies.result(for: job, result)) }
                for change in result.changes { outbox.publish(change.json) }
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
        outbox.append(acknowledgement)
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

/// Raw jobs as taken, oldest first, and what each decodes to.
struct DecodedBatch: Sendable {
    let raws: [[UInt8]]
    let jobs: [Result<Job, InvalidJob>]

    init(_ raws: [[UInt8]]) {
        self.raws = raws
        jobs = raws.map(Job.decode)
    }

    var isEmpty: Bool { raws.isEmpty }
    var count: Int { raws.count }
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
