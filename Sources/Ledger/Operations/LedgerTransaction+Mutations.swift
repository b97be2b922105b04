import GRDB
import LedgerModel

/// open, charge, debit, credit, refund.
extension LedgerTransaction {
    /// The operation type of a change that moved a tier without an entry.
    static let tierChange = "tier_change"

    func open(_ userId: String, jobId: String?) throws -> Executed {
        if try account(userId) != nil {
            return .refused(Refusal(code: .accountExists, message: "An account already exists for user \(userId)."))
        }
        // `validate()` (run by `Ledger.init`) requires Gift; refused, not trapped, should that change.
        guard let gift = config.tier(named: "Gift") else {
            return .refused(Refusal(code: .unknownTier, message: "The tier Gift is not configured."))
        }
        let a = try createAccount(userId, tier: "Gift")
        var entryId: Int64? = nil
        if gift.allocation > 0 {
            entryId = try appendEntry(a, kind: .renewal, operationType: "renewal", amount: gift.allocation, jobId: jobId, metadata: nil)
        }
        // extras: under the `expire` policy the first period's allocation is a grant too.
        let grant = try renewalGrant(a, amount: entryId == nil ? 0 : gift.allocation)
        let opened = Opened(userId: userId, tier: a.tier, newBalance: a.balance, ledgerEntryId: entryId, lastRenewalMs: a.lastRenewalMs,
                            nextRenewalMs: a.nextRenewalMs, grant: grant.map { GrantMade(grantId: $0.grantId, expiresMs: $0.expiresMs) })
        let c = change(a, entryId: entryId, operationType: entryId == nil ? nil : "renewal", amount: entryId == nil ? nil : a.balance, atMs: entryTimeMs)
        return Executed(result: CommandResult(.opened(opened), changes: [c]), entryId: entryId, accountId: a.id)
    }

    /// charge and debit: takes `amount` (>= 0) from the balance and adds it to tokensSpent.
    func spend(_ userId: String, kind: Schema.Kind, operationType: String, amount: Int64, jobId: String?,
               metadata: String?) throws -> Executed {
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        guard a.available >= amount else { return .refused(.insufficient(balance: a.balance, available: a.available, required: amount)) }
        let (spent, overflow) = a.spent.addingReportingOverflow(amount)
        if overflow { return .refused(.overflow("tokens spent")) }
        let id = try appendEntry(a, kind: kind, operationType: operationType, amount: -amount, jobId: jobId, metadata: metadata)
        a.spent = spent
        if a.granted > 0 { _ = try takeFromGrants(a, amount) }  // extras: soonest-lapsing grants first
        return entryOutcome(a, entryId: id, operationType: operationType, amount: -amount)
    }

    func credit(_ userId: String, operationType: String, amount: Int64, jobId: String?, metadata: String?) throws -> Executed {
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        if a.balance.addingReportingOverflow(amount).overflow { return .refused(.overflow("balance")) }
        let id = try appendEntry(a, kind: .credit, operationType: operationType, amount: amount, jobId: jobId, metadata: metadata)
        return entryOutcome(a, entryId: id, operationType: operationType, amount: amount)
    }

    /// Credits back tokens (operationType `refund`). With `refundOf`, the job id of an earlier
    /// charge or debit of this user, the amount defaults to what remains refundable of it, and
    /// the refunds of one job never exceed it. tokensSpent goes down by the amount, never below 0.
    func refund(_ userId: String, refundOf: String?, amount: Int64?, jobId: String?, metadata: String?) throws -> Executed {
        if let amount, let e = Self.checkAmount(amount) { return .refused(e) }
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        var value: Int64
        var chargeEntry: Int64? = nil
        var refundedBefore: Int64 = 0
        if let refundOf {
            let notFound = Refusal(code: .chargeNotFound,
                                       message: "No charge or debit of user \(userId) has the job id \(refundOf).")
            guard let job = try storedJob(refundOf), let entryId = job.entryId, let e = try entry(entryId),
                  e.accountId == a.id, let kind = Schema.Kind(rawValue: e.kind), kind.isSpending
            else { return .refused(notFound) }
            refundedBefore = try Int64.fetchOne(db.cachedStatement(sql: SQL.refundedTotal), arguments: [entryId]) ?? 0
            let remaining = -e.amount - refundedBefore
            value = amount ?? remaining
            if remaining <= 0 || value > remaining {
                return .refused(Refusal(
                    code: .refundExceedsCharge,
                    message: remaining <= 0
                        ? "Nothing remains refundable of job \(refundOf)."
                        : "Only \(remaining) tokens remain refundable of job \(refundOf); \(value) were asked.",
                    details: [.init("refundable", .int(max(remaining, 0))), .init("requested", .int(value))]))
            }
            chargeEntry = entryId
        } else {
            guard let amount else {
                return .refused(Refusal(code: .invalidAmount,
                                            message: "A refund without refundOf needs an amount."))
            }
            value = amount
        }
        if a.balance.addingReportingOverflow(value).overflow { return .refused(.overflow("balance")) }
        let id = try appendEntry(a, kind: .refund, operationType: "refund", amount: value, jobId: jobId,
                                 refundOf: chargeEntry, metadata: metadata)
        a.spent = max(0, a.spent - value)
        if let chargeEntry {
            try db.cachedStatement(sql: SQL.upsertRefunded).execute(arguments: [chargeEntry, refundedBefore + value])
        }
        return entryOutcome(a, entryId: id, operationType: "refund", amount: value)
    }
}

extension LedgerTransaction.SQL {
    static let refundedTotal = "SELECT amount FROM refunded WHERE entry_id = ?"
    static let upsertRefunded = """
        INSERT INTO refunded (entry_id, amount) VALUES (?1, ?2)
        ON CONFLICT (entry_id) DO UPDATE SET amount = ?2
        """
}
