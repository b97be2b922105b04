import GRDB
import LedgerModel

/// The `rollover` renewal policy: a period's allowance that is not used is carried, up to a cap.
///
/// Each period's allocation is a grant `renewal:<userId>:<period start>` that falls due at the
/// next renewal date, as under `expire`. When it falls due (in the same transaction as the
/// renewal that touches the account, or earlier in the sweep, whichever comes first: the tokens
/// above the cap must not be spent past the date), what is left of it is split: up to the tier's
/// `rolloverMax` becomes a grant `rollover:<userId>:<period start>` (no entry: the tokens are in
/// the balance already), named by the period the renewal starts and living `rolloverMonths`
/// periods from it; the rest lapses with an `expiry` entry and `grant.expired`. The source grant
/// records what it carried, and the renewal of that period reads it back for `tokensCarried` and
/// `tokensLapsed`. Carrying happens once, because the source grant is closed by the same
/// `UPDATE ... WHERE lapsed_ms IS NULL` that closes any lapse.
extension LedgerTransaction {
    static let periodGrantPrefix = "renewal:"
    static let carriedGrantPrefix = "rollover:"
    /// A carried grant that never lapses (`rolloverMonths` 0) keeps this as its expiry, so that it
    /// is spent after every grant that does lapse and is never due.
    static let neverMs = Int64.max

    func carry(_ a: AccountRecord, grantId: String, remaining: Int64, expiresMs: Int64) throws {
        let carried = min(remaining, config.rolloverCap(tier: a.tier) ?? remaining)
        // The part above the cap lapses like any grant; the carried part leaves it without an entry.
        try lapse(a, grantId: grantId, remaining: remaining - carried, expiresMs: expiresMs)
        guard carried > 0 else { return }
        try db.cachedStatement(sql: SQL.recordCarried).execute(arguments: [carried, grantId])
        a.granted -= carried
        let periods = CalendarMonth.periods(from: a.anchorMs, to: decisionNowMs)
        let periodStart = CalendarMonth.adding(months: periods, to: a.anchorMs)
        let months = Int64(config.rolloverMonths)
        let carriedExpiresMs = months == 0 ? Self.neverMs : CalendarMonth.adding(months: periods + months, to: a.anchorMs)
        try makeGrant(a, grantId: Self.carriedGrantId(a, periodStart: periodStart), amount: carried,
                      expiresMs: carriedExpiresMs, source: grantId)
    }

    static func carriedGrantId(_ a: AccountRecord, periodStart: Int64) -> String {
        carriedGrantPrefix + a.userId + ":" + LedgerTime.format(ms: periodStart)
    }

    /// What the period grant that ended at this renewal carried and lapsed (0, 0 when none did).
    func carriedIntoRenewal(_ a: AccountRecord, previousPeriodStart: Int64) throws -> (carried: Int64, lapsed: Int64) {
        let id = Self.periodGrantPrefix + a.userId + ":" + LedgerTime.format(ms: previousPeriodStart)
        guard let row = try Row.fetchOne(db.cachedStatement(sql: SQL.carriedOf), arguments: [id]) else { return (0, 0) }
        return (row[0], row[1])
    }

    /// Tokens carried into the account's periods that started in [startMs, endMs] (statistics).
    func tokensCarried(_ a: AccountRecord, startMs: Int64, endMs: Int64) throws -> Int64 {
        let low = Self.carriedGrantPrefix + a.userId + ":"
        let high = Self.carriedGrantPrefix + a.userId + ";"  // ':' + 1: the end of that key range
        return try Int64.fetchOne(db.cachedStatement(sql: SQL.carriedBetween), arguments: [low, high, startMs, endMs]) ?? 0
    }
}

extension LedgerTransaction.SQL {
    static let recordCarried = "UPDATE grants SET carried = carried + ?1 WHERE grant_id = ?2"
    static let carriedOf = "SELECT carried, lapsed FROM grants WHERE grant_id = ? AND lapsed_ms IS NOT NULL"
    static let carriedBetween = """
        SELECT sum(amount) FROM grants WHERE grant_id >= ?1 AND grant_id < ?2 AND created_ms BETWEEN ?3 AND ?4
        """
}
