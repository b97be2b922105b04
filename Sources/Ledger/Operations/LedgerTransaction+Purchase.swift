import GRDB
import LedgerModel

/// purchase.
///
/// A payment id counts once, whatever the job id. A purchase that arrives again under a
/// new job id with a used payment id answers the first purchase's result with
/// `duplicate: true` when it names the same user and tier (a producer retrying with a fresh
/// job id), and is refused with `duplicate_payment` when the user or the tier differs (the
/// payment id was reused by mistake, and crediting either account would be wrong). The months
/// are not compared: the payment, not the request, is what was paid.
extension LedgerTransaction {
    /// The longest subscription extension one purchase may ask for (100 years).
    static let maxMonths = 1200

    func purchase(_ userId: String, tier: String, paymentId: String, months: Int, jobId: String?,
                  metadata: String?, allocationExpiresIn: Int64? = nil) throws -> Executed {
        guard let tierConfig = config.tier(named: tier) else {
            return .refused(Refusal(code: .unknownTier, message: "The tier \(tier) does not exist."))
        }
        guard months >= 1 && months <= Self.maxMonths else {
            return .refused(Refusal(code: .invalidMonths,
                                        message: "months must be between 1 and \(Self.maxMonths); it is \(months)."))
        }
        // extras: an expiring allocation is checked before anything is written.
        var grantExpiresMs: Int64? = nil
        if allocationExpiresIn != nil || config.renewalPolicy == .expire, let e = Self.reservedGrant(jobId) { return .refused(e) }
        if let seconds = allocationExpiresIn {
            switch expiry(.afterSeconds(seconds), maxSeconds: nil) {
            case .failure(let e): return .refused(e)
            case .success(let ms): grantExpiresMs = ms
            }
        }
        let existing = try account(userId)
        if let row = try Row.fetchOne(db.cachedStatement(sql: SQL.paymentById), arguments: [paymentId]) {
            let firstJob: String = row[0], accountId: Int64 = row[1], firstTier: String = row[2]
            if accountId == existing?.id, firstTier.hasSameBytes(as: tier), let stored = try storedJob(firstJob) {
                return Executed(result: try replay(stored), store: false)
            }
            return .refused(Refusal(code: .duplicatePayment,
                                        message: "The payment \(paymentId) was already applied to another purchase."))
        }
        if let existing, existing.balance.addingReportingOverflow(tierConfig.allocation).overflow {
            return .refused(.overflow("balance"))
        }
        let a = try existing ?? createAccount(userId, tier: tier)
        a.tier = tier
        a.expiresMs = CalendarMonth.adding(months: Int64(months), to: max(decisionNowMs, a.expiresMs ?? decisionNowMs))
        a.restartRenewalClock(at: decisionNowMs)
        var entryId: Int64? = nil
        if tierConfig.allocation > 0 {
            entryId = try appendEntry(a, kind: .purchase, operationType: "purchase", amount: tierConfig.allocation,
                                      jobId: jobId, metadata: metadata)
        }
        // extras: the allocation as a grant (`allocationExpiresIn`, or the period under `expire`).
        var grant: (grantId: String, expiresMs: Int64)? = nil
        if entryId != nil, let expiresMs = grantExpiresMs ?? (config.renewalPolicy == .expire ? a.nextRenewalMs : nil) {
            grant = (jobId ?? paymentId, expiresMs)
            try makeGrant(a, grantId: jobId ?? paymentId, amount: tierConfig.allocation, expiresMs: expiresMs)
        }
        try db.cachedStatement(sql: SQL.insertPayment).execute(arguments: [paymentId, jobId ?? "", a.id, tier])

        let purchased = Purchased(userId: userId, tier: tier, paymentId: paymentId, months: Int64(months), newBalance: a.balance,
                                  ledgerEntryId: entryId, tokensAdded: entryId == nil ? 0 : tierConfig.allocation,
                                  subscriptionExpiresMs: a.expiresMs, lastRenewalMs: a.lastRenewalMs, nextRenewalMs: a.nextRenewalMs,
                                  grant: grant.map { GrantMade(grantId: $0.grantId, expiresMs: $0.expiresMs) })
        let c = change(a, entryId: entryId, operationType: entryId == nil ? nil : "purchase",
                       amount: entryId == nil ? nil : tierConfig.allocation, atMs: entryTimeMs)
        return Executed(result: CommandResult(.purchased(purchased), changes: [c]), entryId: entryId, accountId: a.id)
    }
}

extension LedgerTransaction.SQL {
    static let paymentById = "SELECT job_id, account_id, tier FROM payments WHERE payment_id = ?"
    static let insertPayment = "INSERT INTO payments (payment_id, job_id, account_id, tier) VALUES (?, ?, ?, ?)"
}
