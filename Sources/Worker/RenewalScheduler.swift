import Foundation
import Ledger
import Logging

/// Runs the renewal of all eligible accounts at each cron slot, in chunks the main loop
/// interleaves with job batches, and catches up a slot missed while the worker was down.
///
/// A run is recorded in the ledger only once no eligible account is left. Renewing twice in one
/// period is impossible whatever crashes happen: an account renewed moves its `lastRenewalAt` to
/// the current period's start in the same transaction, so it is not eligible again until the next.
struct RenewalScheduler {
    static let runName = "renewal"

    let schedule: CronSchedule
    let chunkSize: Int
    let clock: any LedgerClock
    let logger: Logger
    /// The slot of the last completed run, read from the ledger once, then kept.
    private var lastCompleted: Date??
    /// The slot being worked on.
    private(set) var current: Date?
    /// The totals of the run in progress, and the `renewal.completed` event of the run that
    /// completed in the last chunk (written once, from the chunk that records the run).
    private var totals = RenewAllSummary()
    private(set) var completedEvent: LedgerEvent?
    /// The run's carried and lapsed tokens so far (its chunks' renewals are not kept).
    private var carried: Int64 = 0, lapsed: Int64 = 0

    init(schedule: CronSchedule, chunkSize: Int, clock: any LedgerClock, logger: Logger) {
        self.schedule = schedule
        self.chunkSize = chunkSize
        self.clock = clock
        self.logger = logger
    }

    /// Forgets what it knew: after a takeover, another worker may have completed runs.
    mutating func reset() {
        lastCompleted = nil
        current = nil
        totals = RenewAllSummary()
        (carried, lapsed) = (0, 0)
        completedEvent = nil
    }

    /// The slot due now, if its run has not completed: the latest cron time at or before now.
    mutating func dueSlot(_ ledger: Ledger) throws -> Date? {
        if let current { return current }
        guard let slot = schedule.previous(atOrBefore: clock.now()) else { return nil }
        if lastCompleted == nil { lastCompleted = .some(try ledger.lastCompletedRun(name: Self.runName)) }
        if let last = lastCompleted!, last >= slot { return nil }
        logger.info("renewal run starting", metadata: ["slot": "\(LedgerTime.format(slot))", "cron": "\(schedule)"])
        current = slot
        return slot
    }

    /// Renews one chunk; returns its summary, and whether the run is now complete (recorded).
    mutating func runChunk(_ ledger: Ledger, epoch: Int64) throws -> (RenewAllSummary, done: Bool) {
        guard let slot = current else { return (RenewAllSummary(), true) }
        completedEvent = nil
        let summary = try ledger.renewDue(limit: chunkSize, tier: nil, epoch: epoch)
        totals.totalProcessed += summary.totalProcessed
        totals.successful += summary.successful
        totals.failed += summary.failed
        carried += summary.tokensCarried
        lapsed += summary.tokensLapsed
        // Done when nothing was left, or when nothing could be renewed (only failures): those
        // accounts would come back in every chunk, so they wait for the next run.
        if summary.totalProcessed == 0 || summary.successful == 0 {
            try ledger.recordCompletedRun(name: Self.runName, slot: slot)
            lastCompleted = .some(slot)
            current = nil
            var e = LedgerEvent(LedgerEvent.renewalCompleted)
            e.add("slot", ms: LedgerTime.milliseconds(slot))
            e.add("totalProcessed", Int64(totals.totalProcessed))
            e.add("successful", Int64(totals.successful))
            e.add("failed", Int64(totals.failed))
            e.add("tokensCarried", carried)  // under `rollover`; 0 under the other policies
            e.add("tokensLapsed", lapsed)
            e.add("at", ms: LedgerTime.milliseconds(clock.now()))
            completedEvent = e
            totals = RenewAllSummary()
            (carried, lapsed) = (0, 0)
            logger.info("renewal run complete", metadata: ["slot": "\(LedgerTime.format(slot))", "failed": "\(summary.failed)"])
            return (summary, true)
        }
        return (summary, false)
    }
}
