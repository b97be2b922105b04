import Ledger
import Redis

/// Becoming active, standing by, and finishing what crashed or fenced workers left behind.
extension QueueWorker {
    func becomeActive(_ redis: RedisConnection) throws -> Bool {
        guard try lease.acquire(redis) else { return false }
        let newEpoch = try ledger.acquireEpoch(owner: configuration.workerId)
        let keeper = LeaseKeeper(lease: lease, configuration: configuration.redis, logger: logger)
        keeper.start()
        self.keeper = keeper
        epoch = newEpoch
        scheduler.reset()
        needsRecovery = true
        metrics.leaseHeld.record(1)
        try queue?.register()
        logger.info("active: lease taken", metadata: ["epoch": "\(newEpoch)"])
        try recoverOthers(queue!, epoch: newEpoch)
        return true
    }

    /// Replays this worker's own processing list (jobs taken before a Redis failure).
    func recover(_ queue: JobQueue, epoch: Int64) throws {
        let pending = try queue.pending(of: configuration.workerId)
        guard !pending.isEmpty else { return }
        logger.info("replaying own unfinished jobs", metadata: ["jobs": "\(pending.count)"])
        for chunk in pending.chunked(configuration.batchSize) {
            try apply(DecodedBatch(Array(chunk)), epoch: epoch, acknowledgement: { queue.acknowledgement(count: $0) }, send: sendNow)
        }
    }

    /// Finishes the jobs other workers took and did not finish (they crashed, or were fenced):
    /// they are older than anything in the queue, so they go first.
    func recoverOthers(_ queue: JobQueue, epoch: Int64) throws {
        for other in try queue.otherWorkersWithPendingJobs() {
            let pending = try queue.pending(of: other)
            logger.info("finishing another worker's unfinished jobs", metadata: ["from": "\(other)", "jobs": "\(pending.count)"])
            for chunk in pending.chunked(configuration.batchSize) {
                try apply(DecodedBatch(Array(chunk)), epoch: epoch, acknowledgement: { RedisCommand("LTRIM", queue.keys.processing(other), 0, -($0 + 1)) },
                          send: sendNow)
            }
            try queue.finishRecovery(of: other, count: 0)
        }
    }

    func standBy(reason: String) {
        logger.warning("standing by", metadata: ["reason": "\(reason)"])
        settleIO()
        keeper?.stop()
        keeper = nil
        epoch = nil
        metrics.leaseHeld.record(0)
        // Give back what we took and could not apply, at the front of the queue.
        if let queue, let n = try? queue.requeueOwnPending(), n > 0 {
            logger.info("requeued unfinished jobs for the active worker", metadata: ["jobs": "\(n)"])
        }
    }

    func shutDown() {
        // The batch taken ahead is in hand too: finish it, then let its outbox leave.
        if let next = prefetched, let queue, let epoch, let io {
            prefetched = nil
            if let batch = try? next.wait(), !batch.isEmpty {
                do {
                    try apply(batch, epoch: epoch, acknowledgement: { queue.acknowledgement(count: $0) }) { sending.append(io.send($0)) }
                } catch {
                    logger.warning("the batch taken ahead stays in the processing list for the next worker", metadata: ["error": "\(error)"])
                }
            }
        }
        settleIO()
        keeper?.stop()
        if isActive, let redis {
            do {
                try lease.release(redis)
                logger.info("lease released")
            } catch {
                logger.warning("could not release the lease; it expires by itself", metadata: ["error": "\(error)"])
            }
        }
        epoch = nil
        logger.info("worker stopped")
    }
}
