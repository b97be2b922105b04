import Foundation
import GRDB
import LedgerModel

/// hold, capture, release, holds: reservations.
///
/// A hold writes no entry: it moves `amount` from `available` to `held` and records which grants
/// its tokens came from (`hold_grants`), soonest lapsing first, as a spend would. Those tokens
/// stay the hold's: a lapse takes only free tokens. Closing a hold (capture, release, expiry)
/// happens once (`state = open` is checked by the UPDATE); the tokens it does not spend go back
/// to their grants, or lapse at once (an `expiry` entry) when their grant lapsed meanwhile.
extension LedgerTransaction {
    struct HoldRow {
        var accountId: Int64
        var amount: Int64
        var operationType: String?
        var metadata: String?
        var expiresMs: Int64
        var state: Schema.HoldState
    }

    func holdRow(_ holdId: String) throws -> HoldRow? {
        guard let r = try Row.fetchOne(db.cachedStatement(sql: SQL.holdById), arguments: [holdId]) else { return nil }
        return HoldRow(accountId: r[0], amount: r[1], operationType: r[2], metadata: r[3], expiresMs: r[4],
                       state: Schema.HoldState(rawValue: r[5]) ?? .open)
    }

    func hold(_ userId: String, amount: Int64?, operation: String?, expiresIn: Int64?, jobId: String?,
              metadata: String?) throws -> Executed {
        let value: Int64
        if let operation {
            guard let cost = config.cost(of: operation) else {
                return .refused(Refusal(code: .unknownOperation, message: "The operation \(operation) has no configured cost."))
            }
            value = cost
        } else {
            value = amount ?? 0
        }
        if let e = Self.checkAmount(value) { return .refused(e) }
        let expiresMs: Int64
        switch expiry(.afterSeconds(expiresIn ?? Self.defaultHoldSeconds), maxSeconds: Self.maxHoldSeconds) {
        case .failure(let e): return .refused(e)
        case .success(let ms): expiresMs = ms
        }
        guard let holdId = jobId else {
            return .refused(Refusal(code: .invalidJob, message: "A hold needs an id: it is the hold's id."))
        }
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        guard a.available >= value else {
            return .refused(.insufficient(balance: a.balance, available: a.available, required: value))
        }
        willChange(a)
        for portion in try takeFromGrants(a, value) {
            try db.cachedStatement(sql: SQL.insertHoldGrant).execute(arguments: [holdId, portion.grantId, portion.amount])
        }
        try db.cachedStatement(sql: SQL.insertHold).execute(arguments: [holdId, a.id, value, operation, metadata, decisionNowMs, expiresMs])
        a.held += value
        a.dirtyExtras = true
        dueNoLaterThan(a, expiresMs)
        let c = change(a, entryId: nil, operationType: nil, amount: nil, atMs: entryTimeMs)
        let held = Held(userId: userId, holdId: holdId, amount: value, available: a.available, expiresMs: expiresMs)
        return Executed(result: CommandResult(.held(held), changes: [c]), accountId: a.id)
    }

    /// The hold `holdId` of `a` if it can still be closed, else the refusal.
    private func openHold(_ a: AccountRecord, _ holdId: String) throws -> Result<HoldRow, Refusal> {
        guard let h = try holdRow(holdId), h.accountId == a.id else {
            return .failure(Refusal(code: .holdNotFound, message: "No hold of user \(a.userId) has the id \(holdId)."))
        }
        switch h.state {
        case .captured, .released:
            return .failure(Refusal(code: .holdClosed, message: "The hold \(holdId) is already \(h.state.name).",
                                    details: [.init("state", .string(h.state.name))]))
        case .expired:
            return .failure(Refusal(code: .holdExpired, message: "The hold \(holdId) expired at \(LedgerTime.format(ms: h.expiresMs)).",
                                    details: [.init("expiresAt", .time(ms: h.expiresMs))]))
        case .open:
            // Loading the account wrote its expiries, so an open hold is unexpired; checked all the same.
            if h.expiresMs <= decisionNowMs {
                return .failure(Refusal(code: .holdExpired, message: "The hold \(holdId) expired at \(LedgerTime.format(ms: h.expiresMs)).",
                                        details: [.init("expiresAt", .time(ms: h.expiresMs))]))
            }
            return .success(h)
        }
    }

    func capture(_ userId: String, holdId: String, amount: Int64?, operationType: String?, jobId: String?,
                 metadata: String?) throws -> Executed {
        if let e = Self.reserved(operationType) { return .refused(e) }
        if let amount, let e = Self.checkAmount(amount) { return .refused(e) }
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        let h: HoldRow
        switch try openHold(a, holdId) {
        case .failure(let e): return .refused(e)
        case .success(let row): h = row
        }
        let value = amount ?? h.amount
        guard value <= h.amount else {
            return .refused(Refusal(code: .captureExceedsHold,
                                    message: "The capture of \(value) tokens exceeds the \(h.amount) tokens held by \(holdId).",
                                    details: [.init("held", .int(h.amount)), .init("requested", .int(value))]))
        }
        let (spent, overflow) = a.spent.addingReportingOverflow(value)
        if overflow { return .refused(.overflow("tokens spent")) }
        let type = operationType ?? h.operationType ?? "capture"
        let id = try appendEntry(a, kind: .debit, operationType: type, amount: -value, jobId: jobId, metadata: metadata ?? h.metadata)
        a.spent = spent
        let lapses = try closeHold(a, holdId: holdId, amount: h.amount, spend: value, state: .captured, closedMs: entryTimeMs, entryId: id)
        try refreshNextDue(a)
        let c = change(a, entryId: id, operationType: type, amount: -value, atMs: entryTimeMs)
        let captured = Captured(entry: EntryWritten(newBalance: a.balance, ledgerEntryId: id, tokensAmount: -value), holdId: holdId,
                                released: h.amount - value, available: a.available)
        var result = CommandResult(.captured(captured), changes: [c] + lapses)
        result.own = c
        return Executed(result: result, entryId: id, accountId: a.id)
    }

    func release(_ userId: String, holdId: String) throws -> Executed {
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        let h: HoldRow
        switch try openHold(a, holdId) {
        case .failure(let e): return .refused(e)
        case .success(let row): h = row
        }
        let lapses = try closeHold(a, holdId: holdId, amount: h.amount, spend: 0, state: .released, closedMs: entryTimeMs)
        try refreshNextDue(a)
        let c = change(a, entryId: nil, operationType: nil, amount: nil, atMs: entryTimeMs)
        var result = CommandResult(.released(Released(holdId: holdId, released: h.amount, available: a.available)), changes: [c] + lapses)
        result.own = c
        return Executed(result: result, accountId: a.id)
    }

    /// Closes an open hold once: `spend` of its tokens were spent by the caller's entry (taken
    /// from its grant portions soonest lapsing first, then from its never-lapsing part); the
    /// rest goes back to live grants, or lapses now when its grant has lapsed. Returns the
    /// changes of the `expiry` entries written.
    func closeHold(_ a: AccountRecord, holdId: String, amount: Int64, spend: Int64, state: Schema.HoldState,
                   closedMs: Int64, entryId: Int64? = nil) throws -> [BalanceChange] {
        try db.cachedStatement(sql: SQL.closeHold).execute(arguments: [state.rawValue, closedMs, spend, entryId, holdId])
        guard db.changesCount == 1 else { throw LedgerInvariantError("hold \(holdId) closed twice") }
        willChange(a)
        a.held -= amount
        a.dirtyExtras = true
        var portions: [(grantId: String, amount: Int64, expiresMs: Int64, lapsed: Bool)] = []
        let rows = try Row.fetchCursor(db.cachedStatement(sql: SQL.holdPortions), arguments: [holdId])
        while let r = try rows.next() { portions.append((r[0], r[1], r[2], (r[3] as Int64?) != nil)) }
        var toSpend = spend
        var lapses: [BalanceChange] = []
        for p in portions {
            let used = min(toSpend, p.amount)
            toSpend -= used
            let back = p.amount - used
            guard back > 0 else { continue }
            if p.lapsed {
                let id = try appendEntry(a, kind: .expiry, operationType: Self.expiryOperationType, amount: -back, jobId: nil,
                                         metadata: Self.lapseMetadata(grantId: p.grantId, expiresMs: p.expiresMs, holdId: holdId))
                try db.cachedStatement(sql: SQL.addLapsed).execute(arguments: [back, p.grantId])
                lapses.append(change(a, entryId: id, operationType: Self.expiryOperationType, amount: -back, atMs: entryTimeMs))
            } else {
                try db.cachedStatement(sql: SQL.giveBackToGrant).execute(arguments: [back, p.grantId])
                a.granted += back
            }
        }
        return lapses
    }

    func holds(_ userId: String) throws -> Executed {
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        var holds: [OpenHold] = []
        var held: Int64 = 0
        if a.held > 0 || !writable {
            let rows = try Row.fetchCursor(db.cachedStatement(sql: SQL.openHolds), arguments: [a.id, decisionNowMs])
            while let r = try rows.next() {
                let hold = OpenHold(holdId: r[0], amount: r[1], operationType: r[2], createdMs: r[3], expiresMs: r[4])
                holds.append(hold)
                held += hold.amount
            }
        }
        return Executed(result: CommandResult(.holds(HoldList(userId: userId, holds: holds, held: held, available: a.balance - held))))
    }

    /// The sum of the unexpired open holds: `a.held` in a write transaction (which wrote the expiries of the
    /// account); read from the holds in a read-only one, where nothing due could be written.
    func currentHeld(_ a: AccountRecord) throws -> Int64 {
        if writable || a.held == 0 { return a.held }
        return try Int64.fetchOne(db.cachedStatement(sql: SQL.heldNow), arguments: [a.id, decisionNowMs]) ?? 0
    }
}

extension LedgerTransaction.SQL {
    static let holdById = "SELECT account_id, amount, operation_type, metadata, expires_ms, state FROM holds WHERE hold_id = ?"
    static let insertHold = """
        INSERT INTO holds (hold_id, account_id, amount, operation_type, metadata, created_ms, expires_ms, state)
        VALUES (?, ?, ?, ?, ?, ?, ?, 0)
        """
    static let insertHoldGrant = "INSERT INTO hold_grants (hold_id, grant_id, amount) VALUES (?, ?, ?)"
    static let closeHold = """
        UPDATE holds SET state = ?1, closed_ms = ?2, captured = ?3, entry_id = ?4 WHERE hold_id = ?5 AND state = 0
        """
    static let holdPortions = """
        SELECT p.grant_id, p.amount, g.expires_ms, g.lapsed_ms FROM hold_grants p JOIN grants g ON g.grant_id = p.grant_id
        WHERE p.hold_id = ? ORDER BY g.expires_ms, p.grant_id
        """
    static let giveBackToGrant = "UPDATE grants SET remaining = remaining + ?1 WHERE grant_id = ?2"
    static let addLapsed = "UPDATE grants SET lapsed = lapsed + ?1 WHERE grant_id = ?2"
    static let openHolds = """
        SELECT hold_id, amount, operation_type, created_ms, expires_ms FROM holds
        WHERE account_id = ?1 AND state = 0 AND expires_ms > ?2 ORDER BY expires_ms, hold_id
        """
    static let heldNow = "SELECT sum(amount) FROM holds WHERE account_id = ?1 AND state = 0 AND expires_ms > ?2"
}
