import Foundation
import LedgerModel

/// setTier: the tier an application or support staff sets, apart from any payment.
///
/// The original service let an application write the tier into its own user table after it
/// credited a purchase; the ledger now owns the tier, so that write becomes this job. It credits
/// nothing and leaves the renewal clock where it is: the next renewal grants the new tier's
/// allocation on the date the account already had.
extension LedgerTransaction {
    func setTier(_ userId: String, tier: String, subscriptionExpiry: SubscriptionExpiryChange) throws -> Executed {
        guard config.tier(named: tier) != nil else {
            return .refused(Refusal(code: .unknownTier, message: "The tier \(tier) does not exist."))
        }
        if case .at(let date) = subscriptionExpiry, LedgerTime.milliseconds(date) <= decisionNowMs {
            return .refused(Refusal(code: .invalidExpiry, message: "subscriptionExpiresAt must be in the future."))
        }
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        let previousTier = a.tier
        a.tier = tier
        switch subscriptionExpiry {
        case .unchanged: break
        case .cleared: a.expiresMs = nil
        case .at(let date): a.expiresMs = LedgerTime.milliseconds(date)
        }
        // The full row write carries the tier; the renewal dates are written back as they were.
        a.dirtyRenewal = true

        let set = TierSet(userId: userId, tier: tier, previousTier: previousTier, subscriptionExpiresMs: a.expiresMs,
                          lastRenewalMs: a.lastRenewalMs, nextRenewalMs: a.nextRenewalMs)
        var result = CommandResult(.tierSet(set), changes: [change(a, entryId: nil, operationType: nil, amount: nil, atMs: entryTimeMs)])
        result.own = result.changes.first
        return Executed(result: result, accountId: a.id)
    }
}
