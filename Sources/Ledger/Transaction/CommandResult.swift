import Foundation

/// The answer to one command.
///
/// `json` is the complete JSON object of the result fields except `id`, `type` and
/// `duplicate`, which the worker splices in: it always starts with `{"success":true` or
/// `{"success":false,"error":{...}`. For a duplicate, `json` is the first result's text.
public struct CommandResult: Sendable {
    public var success: Bool
    public var json: String
    /// True when the job id (or the payment id) was already applied: `json` is the first result.
    public var duplicate: Bool
    /// The balance or tier changes to publish after the commit, one per ledger entry or tier
    /// change; a duplicate mutation repeats them with the account's current state.
    public var changes: [BalanceChange]
    /// The refusal's code when `success` is false (for metrics and logs).
    public var errorCode: String?
    // -- credit (issue 13) --
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
    /// the worker tells the ledger once it has sent them (`Ledger.settleDue(forgetSentThrough:)`).
    public var pendingSeq: Int64?
    // -- end credit --

    public init(success: Bool, json: String, duplicate: Bool = false, changes: [BalanceChange] = [], errorCode: String? = nil) {
        self.success = success
        self.json = json
        self.duplicate = duplicate
        self.changes = changes
        self.errorCode = errorCode
    }

    /// The JSON of a refusal: `{"success":false,"error":{"code":…,"message":…},…details}`.
    public static func refusal(_ error: Refusal) -> CommandResult {
        var w = JSONWriter()
        w.beginObject()
        w.key("success"); w.bool(false)
        w.key("error"); w.beginObject()
        w.key("code"); w.string(error.code)
        w.key("message"); w.string(error.message)
        w.endObject()
        for d in error.details {
            w.key(dynamic: d.key)
            switch d.value {
            case .int(let v): w.int(v)
            case .string(let v): w.string(v)
            case .bool(let v): w.bool(v)
            case .time(let ms): w.time(ms: ms)
            case .null: w.null()
            }
        }
        w.endObject()
        return CommandResult(success: false, json: w.text, errorCode: error.code)
    }
}

/// One committed balance or tier change, published by the worker after the commit.
///
/// It carries the whole account state, not a delta, so a repeated message is harmless.
public struct BalanceChange: Sendable, Equatable {
    public var userId: String
    public var tokensBalance: Int64
    public var tokensSpent: Int64
    public var tier: String
    /// Nil for a change without an entry (a tier change, a hold made or closed).
    public var ledgerEntryId: Int64?
    /// Nil for a change without an entry.
    public var operationType: String?
    /// Nil for a change without an entry.
    public var tokensAmount: Int64?
    public var at: Date
    /// The sum of the account's open holds, and `tokensBalance - held`.
    public var held: Int64
    public var available: Int64

    public init(userId: String, tokensBalance: Int64, tokensSpent: Int64, tier: String, ledgerEntryId: Int64?,
                operationType: String?, tokensAmount: Int64?, at: Date, held: Int64 = 0) {
        self.userId = userId
        self.tokensBalance = tokensBalance
        self.tokensSpent = tokensSpent
        self.tier = tier
        self.ledgerEntryId = ledgerEntryId
        self.operationType = operationType
        self.tokensAmount = tokensAmount
        self.at = at
        self.held = held
        self.available = tokensBalance - held
    }

    /// The invalidation message of the contract: `{"userId","tokensBalance","tokensSpent","held",
    /// "available","tier","ledgerEntryId","operationType","tokensAmount","at"}`.
    public var json: String {
        var w = JSONWriter()
        w.beginObject()
        w.key("userId"); w.string(userId)
        w.key("tokensBalance"); w.int(tokensBalance)
        w.key("tokensSpent"); w.int(tokensSpent)
        w.key("held"); w.int(held)
        w.key("available"); w.int(available)
        w.key("tier"); w.string(tier)
        w.key("ledgerEntryId"); if let ledgerEntryId { w.int(ledgerEntryId) } else { w.null() }
        w.key("operationType"); w.string(operationType)
        w.key("tokensAmount"); if let tokensAmount { w.int(tokensAmount) } else { w.null() }
        w.key("at"); w.time(ms: LedgerTime.milliseconds(at))
        w.endObject()
        return w.text
    }
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

public struct RenewalFailure: Sendable, Equatable {
    public var userId: String
    public var code: String
    public var message: String
    public init(userId: String, code: String, message: String) {
        self.userId = userId
        self.code = code
        self.message = message
    }
}

public struct RenewalOutcome: Sendable, Equatable {
    public var userId: String
    /// The tier after the renewal (after a downgrade of an expired subscription).
    public var tier: String
    public var tokensAdded: Int64
    public var newBalance: Int64
    /// Under `rollover`: what the ended period's grant carried into this one, and what of it
    /// lapsed above the cap.
    public var tokensCarried: Int64
    public var tokensLapsed: Int64
    public init(userId: String, tier: String, tokensAdded: Int64, newBalance: Int64, tokensCarried: Int64 = 0, tokensLapsed: Int64 = 0) {
        self.userId = userId
        self.tier = tier
        self.tokensAdded = tokensAdded
        self.newBalance = newBalance
        self.tokensCarried = tokensCarried
        self.tokensLapsed = tokensLapsed
    }
}
