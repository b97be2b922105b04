import Ledger

/// The expiry sweep: settles accounts on which a hold expiry or a grant lapse fell due while no
/// job touched them, between batches, in chunks (one transaction each) so the queue keeps
/// moving. Its outbox goes on the one ordered path (`term.send`), so its invalidations and events
/// leave in commit order with the batches'. The first turn after becoming active runs at once:
/// what fell due while the worker was down is settled at start-up.
extension QueueWorker {
    /// Settles one chunk when the sweep is due; true while due accounts remain (the loop then
    /// takes only jobs already waiting, and comes back for the next chunk).
    func sweepIfDue(_ term: ActiveTerm) throws -> Bool {
        guard chores.sweepBacklog || chores.due(\.expirySweep, every: .milliseconds(Int(configuration.settleIntervalSeconds * 1000))) else {
            return false
        }
        let limit = max(configuration.settleBatchSize, 1)
        var forget: Int64? = nil
        if let sent = term.pendingConfirmed, sent > chores.pendingForgotten {
            forget = sent
        }
        let summary = try ledger.sweepDue(limit: limit, epoch: term.epoch, forgetSentThrough: forget,
                                           budget: .milliseconds(max(configuration.settleChunkMilliseconds, 1)))
        if let forget { chores.pendingForgotten = forget }
        chores.sweepBacklog = summary.more || summary.accounts >= limit
        guard summary.accounts > 0 else { return false }
        var outbox = Outbox(keys: configuration.keys, replyExpirySeconds: configuration.replyExpirySeconds,
                            capacity: summary.changes.count + summary.events.count)
        for change in summary.changes { outbox.publish(change) }
        processor.events.write(summary.events, into: &outbox)
        outbox.announces(pendingThrough: summary.pendingSeq)
        metrics.invalidations.increment(by: outbox.invalidations)
        metrics.settledAccounts.increment(by: summary.accounts)
        metrics.eventsWritten.increment(by: outbox.events)
        try term.send(outbox)
        logger.info("expiries settled", metadata: [
            "accounts": "\(summary.accounts)", "holdsExpired": "\(summary.holdsExpired)",
            "grantsLapsed": "\(summary.grantsLapsed)", "tokensLapsed": "\(summary.tokensLapsed)",
        ])
        return chores.sweepBacklog
    }

    /// Sends again what the ledger kept to announce and has not forgotten: after a crash
    /// between a commit and its send, or a Redis failure, these messages and events might never
    /// have left (at least once; consumers dedupe events by their ids). Only rows this term has
    /// not seen leave are sent: a row confirmed sent is never republished after newer messages.
    func resendPending(_ term: ActiveTerm) throws {
        let (sends, through) = try ledger.pendingSends(after: term.pendingConfirmed ?? 0)
        term.resentPending = true
        guard !sends.isEmpty else { return }
        var outbox = Outbox(keys: configuration.keys, replyExpirySeconds: configuration.replyExpirySeconds, capacity: sends.count)
        for send in sends {
            switch send {
            case .change(let change): outbox.publish(change)
            case .event(let e): processor.events.write([e], into: &outbox)
            }
        }
        outbox.announces(pendingThrough: through)
        metrics.eventsWritten.increment(by: outbox.events)
        try term.send(outbox)
        logger.info("sent again what the ledger kept to announce", metadata: ["messages": "\(sends.count)"])
    }

    /// Open holds and held tokens, for `/metrics`.
    func sampleHolds() {
        guard let totals = try? ledger.openHoldTotals() else { return }
        metrics.openHolds.record(totals.count)
        metrics.heldTokens.record(totals.tokens)
    }
}
