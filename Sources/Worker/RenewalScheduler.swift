import Foundation
import Ledger
import LedgerModel
import Logging

/// Runs the renewal of all eligible accounts at each cron slot, in chunks the main loop
/// interleaves with job batches, and catches up a slot missed while the worker was down.
///
/// A run is recorded in the ledger once no eligible account is left after its cursor, in the
/// transaction of its last chunk, which also keeps its `renewal.completed` in `pending_sends`:
/// a crash after that commit re-sends the event, never loses it. Renewing twice in one period
/// is impossible whatever crashes happen: an account renewed moves its `lastRenewalAt` to the
/// current period's start in the same transaction, so it is not eligible again until the next.
///
/// Each chunk starts after the last account the previous one took (`RenewalCursor`): an account
/// that cannot renew (its tier removed from the config, an overflow) keeps its due date and
/// sorts first, so without the cursor it would fill every chunk and hold back the accounts
/// behind it. It is taken once per run, counted in `failed`, logged, and tried again next run.
struct RenewalScheduler {
    static let runName = "renewal"
    /// The failures of one run kept for its log line; the count is kept whole.
    static let maxLoggedFailures = 20

    let schedule: CronSchedule
    let chunkSize: Int
    let clock: any LedgerClock
    let logger: Logger
    /// The slot of the last completed run, read from the ledger once, then kept.
    private var lastCompleted: Date??
    /// The slot being worked on.
    private(set) var current: Date?
    /// The totals of the run in progress, and where its next chunk starts.
    private var totals = RenewAllSummary()
    private var cursor: RenewalCursor?
    /// The run's carried and lapsed tokens so far (`totals` keeps no renewals).
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
        cursor = nil
        (carried, lapsed) = (0, 0)
    }

    /// The slot due now, if its run has not completed: the latest cron time at or before now.
    mutating func dueSlot(_ ledger: Ledger) throws -> Date? {
        if let current { return current }
        guard let slot = schedule.previous(atOrBefore: clock.now()) else { return nil }
        if lastCompleted == nil { lastCompleted = .some(try ledger.lastCompletedRun(name: Self.runName)) }
        if let last = lastCompleted!, last >= slot { return nil }
        logger.info("renewal run starting", metadata: ["slot": "\(LedgerTime.format(slot))", "cron": "\(schedule)"])
        current = slot
        totals = RenewAllSummary()
        cursor = nil
        return slot
    }

    /// Renews one chunk; returns its summary (its events include the run's `renewal.completed`
    /// when this chunk completed the run), and whether the run is now complete (recorded).
    mutating func runChunk(_ ledger: Ledger, epoch: Int64) throws -> (RenewAllSummary, done: Bool) {
        guard let slot = current else { return (RenewAllSummary(), true) }
        let completion = ScheduledRunCompletion(name: Self.runName, slot: slot, totalProcessed: totals.totalProcessed,
                                                successful: totals.successful, failed: totals.failed,
                                                tokensCarried: carried, tokensLapsed: lapsed)
        let summary = try ledger.renewDue(limit: chunkSize, tier: nil, epoch: epoch, after: cursor, completing: completion)
        totals.totalProcessed += summary.totalProcessed
        totals.successful += summary.successful
        totals.failed += summary.failed
        carried += summary.tokensCarried
        lapsed += summary.tokensLapsed
        totals.errors += summary.errors.prefix(max(0, Self.maxLoggedFailures - totals.errors.count))
        switch summary.remaining {
        case .more(let after):
            cursor = after
            return (summary, false)
        case .allTaken:
            lastCompleted = .some(slot)
            current = nil
            cursor = nil
            var metadata: Logger.Metadata = [
                "slot": "\(LedgerTime.format(slot))", "totalProcessed": "\(totals.totalProcessed)",
                "successful": "\(totals.successful)", "failed": "\(totals.failed)"]
            if totals.failed > 0 {
                // Skipped until the next run: say who and why, so that an operator can mend it.
                let named = totals.errors.map { "\($0.userId): \($0.code)" }.joined(separator: ", ")
                metadata["skipped"] = "\(named)\(totals.failed > totals.errors.count ? ", ..." : "")"
                logger.warning("renewal run complete; accounts that could not renew wait for the next run", metadata: metadata)
            } else {
                logger.info("renewal run complete", metadata: metadata)
            }
            totals = RenewAllSummary()
            (carried, lapsed) = (0, 0)
            return (summary, true)
        }
    }
}
