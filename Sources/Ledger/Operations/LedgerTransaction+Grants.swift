import Foundation
import GRDB
import LedgerModel

/// Expiring grants: credits, purchase allocations and (under the `expire` policy) renewal
/// allocations whose tokens lapse at a time.
///
/// An account's balance is its never-lapsing tokens plus, for each live grant, its `remaining`
/// (free) tokens, plus what its open holds took. Spending (charge, debit, capture) and holding
/// take from the grant that lapses soonest first, never-lapsing tokens last; refunds give back
/// never-lapsing tokens. `accounts.granted` is the sum of the live grants' `remaining`, so an
/// account without grants (granted = 0) pays no query for them.
extension LedgerTransaction {
    /// The longest a hold may last.
    static let maxHoldSeconds: Int64 = 7 * 86_400
    static let defaultHoldSeconds: Int64 = 900

    /// The expiry time in ms, or `invalid_expiry` (a time not in the future, seconds below 1 or
    /// above `maxSeconds`, or beyond 64 bits).
    func expiry(_ expiry: GrantExpiry, maxSeconds: Int64?) -> Result<Int64, Refusal> {
        switch expiry {
        case .at(let date):
            let ms = LedgerTime.milliseconds(date)
            guard ms > decisionNowMs else {
                return .failure(Refusal(code: .invalidExpiry, message: "expiresAt \(LedgerTime.format(ms: ms)) is not in the future."))
            }
            return .success(ms)
        case .afterSeconds(let seconds):
            guard seconds >= 1, seconds <= (maxSeconds ?? Int64.max) else {
                let bound = maxSeconds.map { " and at most \($0)" } ?? ""
                return .failure(Refusal(code: .invalidExpiry, message: "The expiry in seconds must be at least 1\(bound); it is \(seconds)."))
            }
            let (ms, o1) = seconds.multipliedReportingOverflow(by: 1000)
            let (at, o2) = decisionNowMs.addingReportingOverflow(ms)
            guard !o1, !o2 else {
                return .failure(Refusal(code: .invalidExpiry, message: "The expiry in seconds is too far away: \(seconds)."))
            }
            return .success(at)
        }
    }

    /// Renewal grants are named `renewal:<userId>:<period start>`; a producer's grant (named by its
    /// job id) may not take that form, or it could collide with one and fail every renewal of it.
    static func reservedGrant(_ jobId: String?) -> Refusal? {
        guard let jobId, jobId.utf8.starts(with: periodGrantPrefix.utf8) || jobId.utf8.starts(with: carriedGrantPrefix.utf8) else { return nil }
        return Refusal(code: .reservedGrantId,
                       message: "A job that makes an expiring grant may not have an id starting with renewal: or rollover: (the ledger's renewal and carried grants use them).")
    }

    /// Records a grant of `amount` tokens just credited to `a` (the entry is the caller's), or
    /// carried from the grant `source` (no entry: the tokens were in the balance already).
    func makeGrant(_ a: AccountRecord, grantId: String, amount: Int64, expiresMs: Int64, source: String? = nil) throws {
        try db.cachedStatement(sql: SQL.insertGrant).execute(arguments: [grantId, a.id, amount, amount, expiresMs, decisionNowMs, source])
        willChange(a)
        a.granted += amount
        a.dirtyExtras = true
        dueNoLaterThan(a, expiresMs)
    }

    /// Under the `expire` and `rollover` policies, makes the period's allocation just credited a
    /// grant `renewal:<userId>:<period start>` lapsing at the next renewal; nil under the others.
    func renewalGrant(_ a: AccountRecord, amount: Int64) throws -> (grantId: String, expiresMs: Int64)? {
        guard config.renewalPolicy == .expire || config.renewalPolicy == .rollover, amount > 0 else { return nil }
        let id = "renewal:\(a.userId):\(LedgerTime.format(ms: a.lastRenewalMs))"
        try makeGrant(a, grantId: id, amount: amount, expiresMs: a.nextRenewalMs)
        return (id, a.nextRenewalMs)
    }

    /// Takes up to `amount` free tokens from `a`'s live grants, soonest lapsing first; returns
    /// the portions taken (the rest of `amount` is never-lapsing tokens).
    func takeFromGrants(_ a: AccountRecord, _ amount: Int64) throws -> [(grantId: String, amount: Int64)] {
        guard a.granted > 0, amount > 0 else { return [] }
        var grants: [(String, Int64)] = []
        let rows = try Row.fetchCursor(db.cachedStatement(sql: SQL.liveGrants), arguments: [a.id])
        while let r = try rows.next() { grants.append((r[0], r[1])) }
        var left = amount
        var taken: [(grantId: String, amount: Int64)] = []
        for (id, remaining) in grants where left > 0 {
            let part = min(left, remaining)
            try db.cachedStatement(sql: SQL.takeFromGrant).execute(arguments: [part, id])
            taken.append((id, part))
            left -= part
        }
        let total = amount - left
        a.granted -= total
        a.dirtyExtras = true
        return taken
    }

    func creditExpiring(_ userId: String, operationType: String, amount: Int64, expiry expiresAt: GrantExpiry,
                        jobId: String?, metadata: String?) throws -> Executed {
        let expiresMs: Int64
        switch expiry(expiresAt, maxSeconds: nil) {
        case .failure(let e): return .refused(e)
        case .success(let ms): expiresMs = ms
        }
        if let e = Self.reservedGrant(jobId) { return .refused(e) }
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        if a.balance.addingReportingOverflow(amount).overflow { return .refused(.overflow("balance")) }
        let grantId = jobId ?? "credit:\(entryTimeMs)"
        let id = try appendEntry(a, kind: .credit, operationType: operationType, amount: amount, jobId: jobId, metadata: metadata)
        try makeGrant(a, grantId: grantId, amount: amount, expiresMs: expiresMs)
        let c = change(a, entryId: id, operationType: operationType, amount: amount, atMs: entryTimeMs)
        let credited = ExpiringCredit(entry: EntryWritten(newBalance: a.balance, ledgerEntryId: id, tokensAmount: amount),
                                      grant: GrantMade(grantId: grantId, expiresMs: expiresMs))
        return Executed(result: CommandResult(.expiringCredit(credited), changes: [c]), entryId: id, accountId: a.id)
    }

    /// The account's live grants with free tokens, soonest lapsing first (for `balance`).
    func grantList(_ a: AccountRecord) throws -> [(grantId: String, remaining: Int64, expiresMs: Int64)] {
        guard a.granted > 0 else { return [] }
        var list: [(grantId: String, remaining: Int64, expiresMs: Int64)] = []
        let rows = try Row.fetchCursor(db.cachedStatement(sql: SQL.grantList), arguments: [a.id, decisionNowMs])
        while let r = try rows.next() { list.append((r[0], r[1], r[2])) }
        return list
    }
}

extension LedgerTransaction.SQL {
    static let insertGrant = """
        INSERT INTO grants (grant_id, account_id, amount, remaining, expires_ms, created_ms, source) VALUES (?, ?, ?, ?, ?, ?, ?)
        """
    static let liveGrants = """
        SELECT grant_id, remaining FROM grants WHERE account_id = ?1 AND lapsed_ms IS NULL AND remaining > 0
        ORDER BY expires_ms, grant_id
        """
    static let grantList = """
        SELECT grant_id, remaining, expires_ms FROM grants
        WHERE account_id = ?1 AND lapsed_ms IS NULL AND remaining > 0 AND expires_ms > ?2 AND expires_ms < \(Int64.max)
        ORDER BY expires_ms, grant_id
        """
    static let takeFromGrant = "UPDATE grants SET remaining = remaining - ?1 WHERE grant_id = ?2"
}
