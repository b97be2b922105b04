/// What one job did, as values: the ledger builds it, stores it under the job id (in its own
/// compact encoding), and the wire target writes it as the reply. One case per kind of answer;
/// times are milliseconds since 1970 (`...Ms`), ids and names are the bytes the job carried.
///
/// Why values and not reply text: the reply's bytes are the wire's to write (once, into the
/// buffer that goes to Redis), the stored form is the ledger's to choose, and a new field is one
/// change in the wire target instead of one in every operation.
public enum Outcome: Sendable, Equatable {
    case opened(Opened)
    /// A plain balance change: charge, debit, credit without expiry, refund.
    case entry(EntryWritten)
    case expiringCredit(ExpiringCredit)
    case purchased(Purchased)
    case renewed(Renewed)
    case renewedAll(RenewAllReport)
    case tierSet(TierSet)
    case held(Held)
    case captured(Captured)
    case released(Released)
    case monitorSet(MonitorSet)
    case monitorRemoved(MonitorRemoved)
    case balance(BalanceReport)
    case affordability(Affordability)
    case history(HistoryPage)
    case statistics(StatisticsReport)
    case eligibility(EligibilityReport)
    case holds(HoldList)
    case balanceAt(BalanceAtReport)
    case refused(Refusal)
    /// A result stored by an older schema as reply text: answered again exactly as it was.
    case legacy(LegacyResult)

    public var isSuccess: Bool {
        switch self {
        case .refused: false
        case .legacy(let l): l.refusalCode == nil
        default: true
        }
    }

    /// The refusal's code, for metrics, logs and `job.applied`.
    public var refusalCode: RefusalCode? {
        switch self {
        case .refused(let r): r.code
        case .legacy(let l): l.refusalCode
        default: nil
        }
    }
}

/// A grant the job made: its id and when its tokens lapse.
public struct GrantMade: Sendable, Equatable {
    public var grantId: String
    public var expiresMs: Int64
    public init(grantId: String, expiresMs: Int64) {
        self.grantId = grantId
        self.expiresMs = expiresMs
    }
}

/// What a renewal carried into its period and lapsed above the cap (the `rollover` policy only;
/// nil under the others, whose answers have no such fields).
public struct Rollover: Sendable, Equatable {
    public var tokensCarried: Int64
    public var tokensLapsed: Int64
    public init(tokensCarried: Int64, tokensLapsed: Int64) {
        self.tokensCarried = tokensCarried
        self.tokensLapsed = tokensLapsed
    }
}

public struct Opened: Sendable, Equatable {
    public var userId: String
    public var tier: String
    public var newBalance: Int64
    /// Nil when the Gift tier allocates nothing.
    public var ledgerEntryId: Int64?
    public var lastRenewalMs: Int64
    public var nextRenewalMs: Int64
    public var grant: GrantMade?
    public init(userId: String, tier: String, newBalance: Int64, ledgerEntryId: Int64?, lastRenewalMs: Int64,
                nextRenewalMs: Int64, grant: GrantMade?) {
        self.userId = userId
        self.tier = tier
        self.newBalance = newBalance
        self.ledgerEntryId = ledgerEntryId
        self.lastRenewalMs = lastRenewalMs
        self.nextRenewalMs = nextRenewalMs
        self.grant = grant
    }
}

public struct EntryWritten: Sendable, Equatable {
    public var newBalance: Int64
    public var ledgerEntryId: Int64
    public var tokensAmount: Int64
    public init(newBalance: Int64, ledgerEntryId: Int64, tokensAmount: Int64) {
        self.newBalance = newBalance
        self.ledgerEntryId = ledgerEntryId
        self.tokensAmount = tokensAmount
    }
}

public struct ExpiringCredit: Sendable, Equatable {
    public var entry: EntryWritten
    public var grant: GrantMade
    public init(entry: EntryWritten, grant: GrantMade) {
        self.entry = entry
        self.grant = grant
    }
}

public struct Purchased: Sendable, Equatable {
    public var userId: String
    public var tier: String
    public var paymentId: String
    public var months: Int64
    public var newBalance: Int64
    /// Nil when the tier allocates nothing.
    public var ledgerEntryId: Int64?
    /// The allocation credited (0 without an entry).
    public var tokensAdded: Int64
    public var subscriptionExpiresMs: Int64?
    public var lastRenewalMs: Int64
    public var nextRenewalMs: Int64
    public var grant: GrantMade?
    public init(userId: String, tier: String, paymentId: String, months: Int64, newBalance: Int64, ledgerEntryId: Int64?,
                tokensAdded: Int64, subscriptionExpiresMs: Int64?, lastRenewalMs: Int64, nextRenewalMs: Int64, grant: GrantMade?) {
        self.userId = userId
        self.tier = tier
        self.paymentId = paymentId
        self.months = months
        self.newBalance = newBalance
        self.ledgerEntryId = ledgerEntryId
        self.tokensAdded = tokensAdded
        self.subscriptionExpiresMs = subscriptionExpiresMs
        self.lastRenewalMs = lastRenewalMs
        self.nextRenewalMs = nextRenewalMs
        self.grant = grant
    }
}

public struct Renewed: Sendable, Equatable {
    public var userId: String
    public var tier: String
    public var downgraded: Bool
    public var tokensAdded: Int64
    public var newBalance: Int64
    public var ledgerEntryId: Int64?
    public var lastRenewalMs: Int64
    public var nextRenewalMs: Int64
    public var rollover: Rollover?
    public init(userId: String, tier: String, downgraded: Bool, tokensAdded: Int64, newBalance: Int64, ledgerEntryId: Int64?,
                lastRenewalMs: Int64, nextRenewalMs: Int64, rollover: Rollover?) {
        self.userId = userId
        self.tier = tier
        self.downgraded = downgraded
        self.tokensAdded = tokensAdded
        self.newBalance = newBalance
        self.ledgerEntryId = ledgerEntryId
        self.lastRenewalMs = lastRenewalMs
        self.nextRenewalMs = nextRenewalMs
        self.rollover = rollover
    }
}

/// Which policy's figures a `renewAll` answer carries per renewal.
public enum RenewalFigures: UInt8, Sendable, Equatable {
    /// `tokensAdded` and `newBalance`.
    case plain = 0
    /// Also `tokensCarried` and `tokensLapsed` (the `rollover` policy).
    case withRollover = 1
}

public struct RenewAllReport: Sendable, Equatable {
    public var dryRun: Bool
    public var limit: Int64
    /// Due accounts this job left for another (the limit, or a stop on the first failure).
    public var more: Bool
    public var totalProcessed: Int64
    public var successful: Int64
    public var failed: Int64
    public var errors: [RenewalFailure]
    public var renewals: [RenewalOutcome]
    public var figures: RenewalFigures
    public init(dryRun: Bool, limit: Int64, more: Bool, totalProcessed: Int64, successful: Int64, failed: Int64,
                errors: [RenewalFailure], renewals: [RenewalOutcome], figures: RenewalFigures) {
        self.dryRun = dryRun
        self.limit = limit
        self.more = more
        self.totalProcessed = totalProcessed
        self.successful = successful
        self.failed = failed
        self.errors = errors
        self.renewals = renewals
        self.figures = figures
    }
}

public struct TierSet: Sendable, Equatable {
    public var userId: String
    public var tier: String
    public var previousTier: String
    public var subscriptionExpiresMs: Int64?
    public var lastRenewalMs: Int64
    public var nextRenewalMs: Int64
    public init(userId: String, tier: String, previousTier: String, subscriptionExpiresMs: Int64?, lastRenewalMs: Int64,
                nextRenewalMs: Int64) {
        self.userId = userId
        self.tier = tier
        self.previousTier = previousTier
        self.subscriptionExpiresMs = subscriptionExpiresMs
        self.lastRenewalMs = lastRenewalMs
        self.nextRenewalMs = nextRenewalMs
    }
}

public struct Held: Sendable, Equatable {
    public var userId: String
    public var holdId: String
    public var amount: Int64
    public var available: Int64
    public var expiresMs: Int64
    public init(userId: String, holdId: String, amount: Int64, available: Int64, expiresMs: Int64) {
        self.userId = userId
        self.holdId = holdId
        self.amount = amount
        self.available = available
        self.expiresMs = expiresMs
    }
}

public struct Captured: Sendable, Equatable {
    public var entry: EntryWritten
    public var holdId: String
    public var released: Int64
    public var available: Int64
    public init(entry: EntryWritten, holdId: String, released: Int64, available: Int64) {
        self.entry = entry
        self.holdId = holdId
        self.released = released
        self.available = available
    }
}

public struct Released: Sendable, Equatable {
    public var holdId: String
    public var released: Int64
    public var available: Int64
    public init(holdId: String, released: Int64, available: Int64) {
        self.holdId = holdId
        self.released = released
        self.available = available
    }
}

public struct MonitorSet: Sendable, Equatable {
    public var userId: String
    public var monitorId: String
    public var threshold: Int64
    public var armed: Bool
    public var replaced: Bool
    public init(userId: String, monitorId: String, threshold: Int64, armed: Bool, replaced: Bool) {
        self.userId = userId
        self.monitorId = monitorId
        self.threshold = threshold
        self.armed = armed
        self.replaced = replaced
    }
}

public struct MonitorRemoved: Sendable, Equatable {
    public var userId: String
    public var monitorId: String
    public init(userId: String, monitorId: String) {
        self.userId = userId
        self.monitorId = monitorId
    }
}

/// An expiring grant with free tokens, as `balance` lists it.
public struct GrantBalance: Sendable, Equatable {
    public var grantId: String
    public var remaining: Int64
    public var expiresMs: Int64
    public init(grantId: String, remaining: Int64, expiresMs: Int64) {
        self.grantId = grantId
        self.remaining = remaining
        self.expiresMs = expiresMs
    }
}

public struct BalanceReport: Sendable, Equatable {
    public var userId: String
    public var tokensBalance: Int64
    public var tokensSpent: Int64
    public var tier: String
    public var lastRenewalMs: Int64
    public var nextRenewalMs: Int64
    public var subscriptionExpiresMs: Int64?
    public var held: Int64
    public var available: Int64
    public var grants: [GrantBalance]
    public init(userId: String, tokensBalance: Int64, tokensSpent: Int64, tier: String, lastRenewalMs: Int64, nextRenewalMs: Int64,
                subscriptionExpiresMs: Int64?, held: Int64, available: Int64, grants: [GrantBalance]) {
        self.userId = userId
        self.tokensBalance = tokensBalance
        self.tokensSpent = tokensSpent
        self.tier = tier
        self.lastRenewalMs = lastRenewalMs
        self.nextRenewalMs = nextRenewalMs
        self.subscriptionExpiresMs = subscriptionExpiresMs
        self.held = held
        self.available = available
        self.grants = grants
    }
}

public struct Affordability: Sendable, Equatable {
    public var canAfford: Bool
    public var cost: Int64
    public var balance: Int64
    public var available: Int64
    public var deficit: Int64
    public init(canAfford: Bool, cost: Int64, balance: Int64, available: Int64, deficit: Int64) {
        self.canAfford = canAfford
        self.cost = cost
        self.balance = balance
        self.available = available
        self.deficit = deficit
    }
}

public struct HistoryEntry: Sendable, Equatable {
    public var id: Int64
    public var jobId: String?
    public var operationType: String
    public var tokensAmount: Int64
    public var balanceBefore: Int64
    public var balanceAfter: Int64
    public var createdMs: Int64
    /// The job's metadata object as it was sent (JSON text, opaque to the ledger), or nil.
    public var metadata: String?
    public init(id: Int64, jobId: String?, operationType: String, tokensAmount: Int64, balanceBefore: Int64, balanceAfter: Int64,
                createdMs: Int64, metadata: String?) {
        self.id = id
        self.jobId = jobId
        self.operationType = operationType
        self.tokensAmount = tokensAmount
        self.balanceBefore = balanceBefore
        self.balanceAfter = balanceAfter
        self.createdMs = createdMs
        self.metadata = metadata
    }
}

public struct HistoryPage: Sendable, Equatable {
    public var userId: String
    public var entries: [HistoryEntry]
    public var total: Int64
    public var limit: Int64
    public var offset: Int64
    public init(userId: String, entries: [HistoryEntry], total: Int64, limit: Int64, offset: Int64) {
        self.userId = userId
        self.entries = entries
        self.total = total
        self.limit = limit
        self.offset = offset
    }
}

/// One operation type's totals in `statistics`.
public struct OperationTotal: Sendable, Equatable {
    public var operationType: String
    public var count: Int64
    public var tokens: Int64
    public init(operationType: String, count: Int64, tokens: Int64) {
        self.operationType = operationType
        self.count = count
        self.tokens = tokens
    }
}

public struct StatisticsReport: Sendable, Equatable {
    public var userId: String
    public var startMs: Int64
    public var endMs: Int64
    public var totalSpent: Int64
    public var totalEarned: Int64
    public var operationCount: Int64
    public var rollover: Rollover?
    /// Sorted by the operation type's UTF-8 bytes.
    public var byOperation: [OperationTotal]
    public var netChange: Int64 { totalEarned - totalSpent }
    public init(userId: String, startMs: Int64, endMs: Int64, totalSpent: Int64, totalEarned: Int64, operationCount: Int64,
                rollover: Rollover?, byOperation: [OperationTotal]) {
        self.userId = userId
        self.startMs = startMs
        self.endMs = endMs
        self.totalSpent = totalSpent
        self.totalEarned = totalEarned
        self.operationCount = operationCount
        self.rollover = rollover
        self.byOperation = byOperation
    }
}

public struct EligibilityReport: Sendable, Equatable {
    public var userId: String
    /// Due for renewal now (`reason` on the wire: `renewal_due`, else `not_yet_due`).
    public var eligible: Bool
    public var tier: String
    public var lastRenewalMs: Int64
    public var nextRenewalMs: Int64
    public var daysUntilRenewal: Int64
    public init(userId: String, eligible: Bool, tier: String, lastRenewalMs: Int64, nextRenewalMs: Int64, daysUntilRenewal: Int64) {
        self.userId = userId
        self.eligible = eligible
        self.tier = tier
        self.lastRenewalMs = lastRenewalMs
        self.nextRenewalMs = nextRenewalMs
        self.daysUntilRenewal = daysUntilRenewal
    }
}

public struct OpenHold: Sendable, Equatable {
    public var holdId: String
    public var amount: Int64
    public var operationType: String?
    public var createdMs: Int64
    public var expiresMs: Int64
    public init(holdId: String, amount: Int64, operationType: String?, createdMs: Int64, expiresMs: Int64) {
        self.holdId = holdId
        self.amount = amount
        self.operationType = operationType
        self.createdMs = createdMs
        self.expiresMs = expiresMs
    }
}

public struct HoldList: Sendable, Equatable {
    public var userId: String
    public var holds: [OpenHold]
    public var held: Int64
    public var available: Int64
    public init(userId: String, holds: [OpenHold], held: Int64, available: Int64) {
        self.userId = userId
        self.holds = holds
        self.held = held
        self.available = available
    }
}

/// The account's last entry at or before a moment.
public struct BalancePoint: Sendable, Equatable {
    public var tokensBalance: Int64
    public var tokensSpent: Int64
    public var ledgerEntryId: Int64
    public var createdMs: Int64
    public init(tokensBalance: Int64, tokensSpent: Int64, ledgerEntryId: Int64, createdMs: Int64) {
        self.tokensBalance = tokensBalance
        self.tokensSpent = tokensSpent
        self.ledgerEntryId = ledgerEntryId
        self.createdMs = createdMs
    }
}

public struct BalanceAtReport: Sendable, Equatable {
    public var userId: String
    public var atMs: Int64
    /// Nil when the account had no entry yet at `atMs` (`exists: false`, zeros on the wire).
    public var point: BalancePoint?
    public init(userId: String, atMs: Int64, point: BalancePoint?) {
        self.userId = userId
        self.atMs = atMs
        self.point = point
    }
}

/// A result an older schema stored as the reply's JSON object (`{"success":…}`, without `id`,
/// `type`, `duplicate`): opaque text, written back as it is.
public struct LegacyResult: Sendable, Equatable {
    public var json: String
    /// Read from the stored text when the row was loaded; nil for a success.
    public var refusalCode: RefusalCode?
    public init(json: String, refusalCode: RefusalCode?) {
        self.json = json
        self.refusalCode = refusalCode
    }
}
