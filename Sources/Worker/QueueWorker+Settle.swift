import Ledger

/// Settling a taken batch: committed and acknowledged, or, for a job that is poison, dead-lettered.
///
/// An outage is not poison. Each failure is classified by its SQLite result code
/// (`StorageFailure.Cause`): a failure whose cause is the storage (busy, locked, full, read-only,
/// I/O, out of memory, cannot open, corrupt) never counts against a job, however long or often
/// it comes; the jobs stay in their processing list and are retried with capped backoff,
/// `/readyz` answers 503, and the worker carries on once the ledger answers. Only a job whose
/// own statements fail for a reason of their own (a constraint, a size, a type) is struck, and
/// after `poisonStrikes` strikes it becomes a dead letter with `storage_error`, with nothing
/// stored under its id.
///
/// Order: once a batch is left unsettled (a stop came first), nothing newer is committed in
/// this term (`ActiveTerm.holdsUnsettled`), so the next term settles the older lists first.
extension QueueWorker {
    /// The outcome of one commit attempt.
    enum Attempt<Committed> {
        case committed(Committed)
        case failed(StorageFailure.Cause)
    }

    /// Returns true once every job of `batch` is settled; false when a stop came first (or an
    /// older batch of this term was left unsettled), in which case nothing more was
    /// acknowledged and the rest stays in its list. Throws on fencing (the ledger has a newer
    /// active worker) and on Redis failures (the outbox could not be queued).
    func settle(_ batch: TakenBatch, in term: ActiveTerm) throws -> Bool {
        // A newer batch must never commit before an older one of the same term.
        guard !term.holdsUnsettled else { return false }
        var ownFailures = 0
        var attempt = 0
        while true {
            let started = ContinuousClock.now
            switch try attemptCommit(attempt: &attempt, { try processor.commit(batch, epoch: term.epoch) }) {
            case .failed(let cause):
                // Only a failure of the batch's own statements means one of its jobs may be
                // poison; then each job alone finds it. A storage failure retries the batch.
                if cause.isTheJobsOwn { ownFailures += 1 }
                if ownFailures >= configuration.maxAttempts { return try settleOneByOne(batch, in: term) }
                pause(seconds: Self.backoff(attempt))
                if stop.isStopped { return unsettled(term) }
            case .committed(let done):
                let committed = ContinuousClock.now
                metrics.invalidations.increment(by: done.invalidations)
                // Encoded and sent on the Redis thread, while this one goes on to the next batch.
                try term.send(done, by: processor)
                logger.info("batch committed", metadata: [
                    "jobs": "\(batch.count)", "replies": "\(done.replies)", "invalidations": "\(done.invalidations)",
                    "deadLetters": "\(done.deadLetters)", "applyMs": "\((committed - started).milliseconds)",
                ])
                return true
            }
        }
    }

    /// A failure of the batch's own statements: each job alone, in order, so that the failing
    /// one is found and the others commit. A job waits for the one before it, so each user's
    /// order holds.
    private func settleOneByOne(_ batch: TakenBatch, in term: ActiveTerm) throws -> Bool {
        logger.warning("batch keeps failing; trying its jobs one at a time", metadata: ["list": "\(batch.list)", "jobs": "\(batch.count)"])
        for index in 0..<batch.count {
            var attempt = 0
            var strikes = 0
            retrying: while true {
                switch try attemptCommit(attempt: &attempt, { try processor.commit(jobAt: index, of: batch, epoch: term.epoch) }) {
                case .committed(let outbox):
                    metrics.invalidations.increment(by: outbox.invalidations)
                    try term.send(outbox)
                    break retrying
                case .failed(let cause) where cause.isTheJobsOwn:
                    strikes += 1
                    logger.warning("a job failed for a reason of its own", metadata: [
                        "strikes": "\(strikes)", "cause": "\(cause.rawValue)", "list": "\(batch.list)"])
                    if strikes >= Self.poisonStrikes {
                        try term.send(processor.deadLetter(jobAt: index, of: batch, reason:
                            "The job's own statements failed \(strikes) times (\(cause.rawValue)): \(chores.lastLedgerError)"))
                        health.recovered(.ledger)
                        break retrying
                    }
                case .failed:
                    break  // the storage's condition: no strike, however often
                }
                pause(seconds: Self.backoff(attempt))
                if stop.isStopped { return unsettled(term) }
            }
        }
        try term.send(processor.forget(batch))
        return true
    }

    /// Marks the term as holding an unsettled batch; returns false for `settle`.
    private func unsettled(_ term: ActiveTerm) -> Bool {
        term.leaveUnsettled()
        return false
    }

    /// One attempt: the outbox on success; the classified cause after a failure, which is
    /// counted, logged and reported on `/readyz`. Fencing is rethrown: it is no failure to retry.
    private func attemptCommit<Committed>(attempt: inout Int, _ commit: () throws -> Committed) throws -> Attempt<Committed> {
        do {
            let committed = try commit()
            if attempt > 0 || chores.ledgerFailing { ledgerAnswered() }
            return .committed(committed)
        } catch let error as LedgerStorageError {
            throw error
        } catch {
            attempt += 1
            ledgerFailed(error, attempt: attempt)
            return .failed(StorageFailure.cause(of: error))
        }
    }

    func ledgerFailed(_ error: any Error, attempt: Int) {
        metrics.storageErrors.increment()
        metrics.ledgerReady.record(0)
        health.failing(.ledger, "\(error)")
        chores.ledgerFailing = true
        chores.lastLedgerError = "\(error)"
        logger.error("the ledger refused a write; the jobs stay in their processing list",
                     metadata: ["attempt": "\(attempt)", "cause": "\(StorageFailure.cause(of: error).rawValue)", "error": "\(error)"])
    }

    func ledgerAnswered() {
        guard chores.ledgerFailing else { return }
        chores.ledgerFailing = false
        metrics.ledgerReady.record(1)
        health.recovered(.ledger)
        logger.info("the ledger answers again")
    }
}
