import Foundation

/// A typed command: what the worker makes of a job once its shape is valid.
///
/// Not `Operation`: Foundation has an `Operation` class, and the clash made every file that
/// imports both ambiguous.
///
/// Shapes (types, id formats, sizes) are the worker's to check; value refusals (an amount
/// below 1 or one that would overflow, an unknown operation or tier, months below 1) are the
/// ledger's, so that they are stored under the job id like every other result.
/// `metadata` is the serialized JSON text of an object, already validated (<= 16 KiB); the
/// ledger keeps it as it is and embeds it raw in history.
public enum LedgerOperation: Sendable, Equatable {
    case open(userId: String)
    case charge(userId: String, operation: String, metadata: String?)
    case debit(userId: String, operationType: String, amount: Int64, metadata: String?)
    /// With `expiry`, the credited tokens form a grant (id: the job id) that lapses then.
    case credit(userId: String, operationType: String, amount: Int64, metadata: String?, expiry: GrantExpiry? = nil)
    /// `refundOf` is the job id of an earlier charge or debit of this user.
    case refund(userId: String, refundOf: String?, amount: Int64?, metadata: String?)
    /// With `allocationExpiresIn` (seconds), the allocation is a grant that lapses then.
    case purchase(userId: String, tier: String, paymentId: String, months: Int, metadata: String?,
                  allocationExpiresIn: Int64? = nil)
    case renew(userId: String)
    /// `limit` nil means every eligible account.
    case renewAll(dryRun: Bool, tier: String?, limit: Int?, continueOnError: Bool)
    case balance(userId: String)
    case canAfford(userId: String, operation: String)
    case history(userId: String, limit: Int, offset: Int, operationType: String?, startDate: Date?, endDate: Date?)
    case statistics(userId: String, startDate: Date, endDate: Date)
    case eligibility(userId: String)
    // -- extras (issue 13) --
    /// Reserves `amount`, or the cost of `operation` (exactly one is set), for `expiresIn`
    /// seconds (default 900, at most 7 days). The hold's id is the job id.
    case hold(userId: String, amount: Int64?, operation: String?, expiresIn: Int64?, metadata: String?)
    /// Spends `amount` (default: all) of a hold and frees the rest.
    case capture(userId: String, holdId: String, amount: Int64?, operationType: String?, metadata: String?)
    case release(userId: String, holdId: String)
    /// The open holds of an account.
    case holds(userId: String)
    /// Watches `available`; `monitorId` nil means the job id.
    case monitor(userId: String, monitorId: String?, threshold: Int64)
    case unmonitor(userId: String, monitorId: String)
    // -- end extras --
    /// Sets the tier, and the subscription's expiry when asked, without crediting anything and
    /// without moving the renewal clock: what an application's own "update the user's tier" did.
    case setTier(userId: String, tier: String, subscriptionExpiry: SubscriptionExpiryChange)
    /// The balance and spent total as they stood at `at`.
    case balanceAt(userId: String, at: Date)
    /// A refusal the worker decided before it could type the job (for instance an `amount`
    /// beyond 64 bits, which the contract makes `invalid_amount`, not a dead letter). Applying
    /// it stores the refusal under the job id, so a replay answers it like any refusal.
    case refusal(Refusal)

    /// Whether the command only reads (its result is still stored when it has a job id).
    public var isQuery: Bool {
        switch self {
        case .balance, .canAfford, .history, .statistics, .eligibility, .holds, .balanceAt: return true
        case .renewAll(let dryRun, _, _, _): return dryRun
        default: return false
        }
    }
}


/// One job of a batch: the job id (the idempotency key; optional on queries) and its command.
public struct Command: Sendable, Equatable {
    public var jobId: String?
    public var operation: LedgerOperation

    public init(jobId: String?, operation: LedgerOperation) {
        self.jobId = jobId
        self.operation = operation
    }
}

/// When a credit's tokens lapse: at a time, or after some seconds (both checked by the ledger:
/// a time not in the future, or seconds below 1, is `invalid_expiry`).
public enum GrantExpiry: Sendable, Equatable {
    case at(Date)
    case afterSeconds(Int64)
}

/// What a `setTier` does to `subscriptionExpiresAt`: the field left out keeps it, `null` clears it.
public enum SubscriptionExpiryChange: Sendable, Equatable {
    case unchanged
    case cleared
    case at(Date)
}
