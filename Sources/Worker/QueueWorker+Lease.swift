import Ledger
import LedgerModel
import Redis

/// Becoming active, standing by, recovering what was taken and not settled, stopping.
extension QueueWorker {
    func becomeActive(_ link: JobQueue) throws -> Bool {
        guard try lease.acquire(link.redis) else { return false }
        let epoch = try ledger.acquireEpoch(owner: configuration.workerId)
        let keeper = LeaseKeeper(lease: lease, target: configuration.redis, logger: logger)
        keeper.start()
        state = .active(ActiveTerm(epoch: epoch, keeper: keeper, configuration: configuration))
        scheduler.reset()
        chores.pendingForgotten = 0
        metrics.leaseHeld.record(1)
        logger.info("active: lease taken", metadata: ["epoch": "\(epoch)"])
        return true
    }

    /// Settles every registered processing list that still holds jobs, oldest first, before
    /// anything newer is taken: lists of workers that crashed or stood by (their jobs are older
    /// than anything queued), and this worker's own after a Redis failure or a restart.
    /// Returns false when one was left unsettled (a stop came first): recovery is then still due.
    func recover(_ link: JobQueue, _ term: ActiveTerm) throws -> Bool {
        for batch in try link.unfinished() {
            logger.info("settling jobs taken but not finished", metadata: ["list": "\(batch.list)", "jobs": "\(batch.count)"])
            guard try settle(batch, in: term) else { return false }
        }
        return true
    }

    /// Stops serving until the lease can be taken again. Nothing is given back to the queue:
    /// lists taken stay registered, and whichever worker is active next settles them before
    /// anything newer, which keeps each user's jobs in queue order.
    func standBy(reason: String) {
        logger.warning("standing by", metadata: ["reason": "\(reason)"])
        if let term = state.term { logSendProblems(term.end()) }
        state = .standingBy
        metrics.leaseHeld.record(0)
    }

    func shutDown() {
        if let term = state.term {
            // The batch taken ahead is in hand too: finish it, then let its outbox leave. Asked to
            // stop, `settle` makes one attempt; a batch it cannot commit stays in its list, and
            // so does this one whenever an older batch of the term was left unsettled.
            if let batch = term.takePrefetched(), !batch.isEmpty {
                do {
                    if try !settle(batch, in: term) {
                        logger.warning("the batch taken ahead stays in its processing list for the next worker",
                                       metadata: ["list": "\(batch.list)"])
                    }
                } catch {
                    logger.warning("the batch taken ahead stays in its processing list for the next worker",
                                   metadata: ["error": "\(error)"])
                }
            }
            logSendProblems(term.end())
            if let link {
                do {
                    try lease.release(link.redis)
                    logger.info("lease released")
                } catch {
                    logger.warning("could not release the lease; it expires by itself", metadata: ["error": "\(error)"])
                }
            }
        }
        state = .stopping
        logger.info("worker stopped")
    }
}
