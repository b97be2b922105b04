import Ledger

/// Settling a taken batch: committed and acknowledged, or, for a job that is poison, dead-lettered.
///
/// An outage is not poison. While the ledger refuses writes (locked, disk full, I/O errors) the
/// jobs stay in their processing list and are retried with capped backoff, `/readyz` answers 503,
/// and the worker carries on once the ledger answers. Only a job that fails alone while the
/// ledger commits other writes is poison: after `poisonStrikes` such failures it becomes a dead
/// letter with `storage_error`, and nothing is stored under its id.
extension QueueWorker {
    /// Returns true once every job of `batch` is settled; false when a stop came first, in which
    /// case nothing more was acknowledged and the rest stays in its list. Throws on fencing (the
    /// ledger has a newer active worker) and on Redis failures (the outbox could not be queued).
    @discardableResult
    func settle(_ batch: TakenBatch, in term: ActiveTerm) throws -> Bool {
        var attempt = 0
        while true {
            let started = ContinuousClock.now
            guard let outbox = try attemptCommit(attempt: &attempt, { try processor.commit(batch, epoch: term.epoch) }) else {
                if attempt >= configuration.maxAttempts { return try settleOneByOne(batch, in: term) }
                pause(seconds: Self.backoff(attempt))
                if stop.isStopped { return false }
                continue
            }
            let committed = ContinuousClock.now
            metrics.invalidations.increment(by: outbox.invalidations)
            try term.send(outbox)
            logger.info("batch committed", metadata: [
                "jobs": "\(batch.count)", "replies": "\(outbox.replies)", "invalidations": "\(outbox.invalidations)",
                "deadLetters": "\(outbox.deadLetters)", "applyMs": "\((committed - started).milliseconds)",
            ])
            return true
        }
    }

    /// The batch keeps failing: each job alone, in order, so that the failing one is found and
    /// the others commit. A job waits for the one before it, so each user's order holds.
    private func settleOneByOne(_ batch: TakenBatch, in term: ActiveTerm) throws -> Bool {
        logger.warning("batch keeps failing; trying its jobs one at a time", metadata: ["list": "\(batch.list)", "jobs": "\(batch.count)"])
        for index in 0..<batch.count {
            var attempt = 0
            var strikes = 0
            while true {
                if let outbox = try attemptCommit(attempt: &attempt, { try processor.commit(jobAt: index, of: batch, epoch: term.epoch) }) {
                    metrics.invalidations.increment(by: outbox.invalidations)
                    try term.send(outbox)
                    break
                }
                if try ledger.commitsOtherWrites(epoch: term.epoch) {
                    strikes += 1
                    logger.warning("a job failed alone while the ledger commits", metadata: ["strikes": "\(strikes)", "list": "\(batch.list)"])
                    if strikes >= Self.poisonStrikes {
                        try term.send(processor.deadLetter(jobAt: index, of: batch, reason:
                            "The job failed alone \(strikes) times while the ledger committed other writes: \(chores.lastLedgerError)"))
                        health.recovered(.ledger)
                        break
                    }
                }
                pause(seconds: Self.backoff(attempt))
                if stop.isStopped { return false }
            }
        }
        try term.send(processor.forget(batch))
        return true
    }

    /// One attempt: the outbox on success; nil after a storage failure, which is counted,
    /// logged and reported on `/readyz`. Fencing is rethrown: it is no failure to retry.
    private func attemptCommit(attempt: inout Int, _ commit: () throws -> Outbox) throws -> Outbox? {
        do {
            let outbox = try commit()
            if attempt > 0 || chores.ledgerFailing { ledgerAnswered() }
            return outbox
        } catch let error as LedgerStorageError {
            throw error
        } catch {
            attempt += 1
            ledgerFailed(error, attempt: attempt)
            return nil
        }
    }

    func ledgerFailed(_ error: any Error, attempt: Int) {
        metrics.storageErrors.increment()
        metrics.ledgerReady.record(0)
        health.failing(.ledger, "\(error)")
        chores.ledgerFailing = true
        chores.lastLedgerError = "\(error)"
        logger.error("the ledger refused a write; the jobs stay in their processing list",
                     metadata: ["attempt": "\(attempt)", "error": "\(error)"])
    }

    func ledgerAnswered() {
        guard chores.ledgerFailing else { return }
        chores.ledgerFailing = false
        metrics.ledgerReady.record(1)
        health.recovered(.ledger)
        logger.info("the ledger answers again")
    }
}
