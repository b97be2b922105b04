import Foundation
import LedgerModel

/// The answer to one command: its `Outcome` (the values the reply is written from, by the wire
/// target) and what the worker sends after the commit.
public struct CommandResult: Sendable {
    public var outcome: Outcome
    /// True when the job id (or the payment id) was already applied: `outcome` is the first one.
    public var duplicate: Bool
    /// The balance or tier changes to publish after the commit, one per ledger entry or tier
    /// change; a duplicate mutation repeats them with the account's current state.
    public var changes: [BalanceChange]
    // -- extras (issue 13) --
    /// The job's own change (its entry, or its hold), for the `job.applied` event; nil for a
    /// refusal, a query or a job that changed nothing.
    public var own: BalanceChange?
    /// When the transaction ran (the time of a first application's event).
    public var atMs: Int64 = 0
    /// Events of changes the ledger made on its own before the job, in the same transaction
    /// (`hold.expired`, `grant.expired` of the accounts the job touched).
    public var events: [LedgerEvent] = []
    /// `balance.low` events the job's changes fired (written to the stream and `P:alerts`).
    public var alerts: [LedgerEvent] = []
    /// The last row of `pending_sends` this command wrote (its side changes, events, alerts):
    /// the worker tells the ledger once it has sent them (`Ledger.sweepDue(forgetSentThrough:)`).
    public var pendingSeq: Int64?
    // -- end extras --

    public init(_ outcome: Outcome, duplicate: Bool = false, changes: [BalanceChange] = []) {
        self.outcome = outcome
        self.duplicate = duplicate
        self.changes = changes
    }

    public var success: Bool { outcome.isSuccess }
    /// The refusal's code when `success` is false.
    public var refusalCode: RefusalCode? { outcome.refusalCode }
    /// `refusalCode` as its word, for metrics and logs.
    public var errorCode: String? { outcome.refusalCode?.rawValue }

    public static func refusal(_ error: Refusal) -> CommandResult { CommandResult(.refused(error)) }
}

/// What one `renewDue` call (or a `renewAll` job) did.
public struct RenewAllSummary: Sendable, Equatable {
    public var totalProcessed: Int
    public var successful: Int
    public var failed: Int
    public var errors: [RenewalFailure]
    public var renewals: [RenewalOutcome]
    /// The changes to publish after the commit (empty for a dry run).
    public var changes: [BalanceChange]
    /// Events of lapses and hold expiries written before the renewals, and alerts fired.
    public var events: [LedgerEvent] = []
    /// The last row of `pending_sends` written for these changes and events.
    public var pendingSeq: Int64?
    /// Under `rollover`: the renewals' carried tokens, and those lapsed above the cap.
    public var tokensCarried: Int64 { renewals.reduce(0) { $0 + $1.tokensCarried } }
    public var tokensLapsed: Int64 { renewals.reduce(0) { $0 + $1.tokensLapsed } }
    /// Whether due accounts were left after this selection (the limit was reached), and where
    /// the next one continues: past every account this one took, renewed or failed.
    public var remaining: RenewalRemaining = .allTaken

    public init(totalProcessed: Int = 0, successful: Int = 0, failed: Int = 0, errors: [RenewalFailure] = [],
                renewals: [RenewalOutcome] = [], changes: [BalanceChange] = []) {
        self.totalProcessed = totalProcessed
        self.successful = successful
        self.failed = failed
        self.errors = errors
        self.renewals = renewals
        self.changes = changes
    }
}

/// Where a renewal selection stopped.
public enum RenewalRemaining: Sendable, Equatable {
    /// Every due account (after the cursor it started from) was taken.
    case allTaken
    /// More are due after this account of the order `(next_renewal_ms, id)`.
    case more(after: RenewalCursor)
}

/// A place in the renewal order `(next_renewal_ms, id)`. A run's next chunk selects only the
/// accounts after it, so accounts that failed (and keep their `next_renewal_ms`, so sort first)
/// are not taken again by every chunk; renewed ones have left the due set anyway.
public struct RenewalCursor: Sendable, Equatable {
    public var nextRenewalMs: Int64
    public var accountId: Int64
    public init(nextRenewalMs: Int64, accountId: Int64) {
        self.nextRenewalMs = nextRenewalMs
        self.accountId = accountId
    }
}

/// A scheduled run to record as complete, in the transaction of the chunk that leaves no due
/// account behind, with the totals of its earlier chunks; that transaction also keeps its
/// `renewal.completed` in `pending_sends`, so the event survives a crash right after the commit.
public struct ScheduledRunCompletion: Sendable, Equatable {
    public var name: String
    public var slot: Date
    public var totalProcessed: Int
    public var successful: Int
    public var failed: Int
    /// Under `rollover`: what the run's earlier chunks carried, and lapsed above the cap.
    public var tokensCarried: Int64
    public var tokensLapsed: Int64
    public init(name: String, slot: Date, totalProcessed: Int, successful: Int, failed: Int,
                tokensCarried: Int64 = 0, tokensLapsed: Int64 = 0) {
        self.name = name
        self.slot = slot
        self.totalProcessed = totalProcessed
        self.successful = successful
        self.failed = failed
        self.tokensCarried = tokensCarried
        self.tokensLapsed = tokensLapsed
    }
}

