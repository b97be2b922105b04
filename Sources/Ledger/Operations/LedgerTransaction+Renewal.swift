import GRDB
import LedgerModel

/// renew, renewAll, eligibility, and the scheduler's `renewDue`.
///
/// An account is due when `now >= nextRenewalMs`, where `nextRenewalMs` is the anchor plus
/// `periods + 1` calendar months (`CalendarMonth`). Renewing sets `periods` to the number of
/// whole periods elapsed at `now`, so `lastRenewalAt` is the start of the current period (no
/// drift) and several missed periods give one renewal. Because a renewal moves the account's
/// `nextRenewalMs` past `now` in the same transaction as its entry, a second run for the same
/// period finds it not due: no account is renewed twice for one period, whatever the scheduler
/// does (retries, overlapping runs, a crash between batches).
extension LedgerTransaction {
    struct AccountRenewal {
        var outcome: RenewalOutcome
        var downgraded: Bool
        var entryId: Int64?
        var changes: [BalanceChange]
    }

    func notEligible(_ a: AccountRecord) -> Refusal {
        Refusal(code: .notEligible,
                    message: "The account of \(a.userId) is not due for renewal before \(LedgerTime.format(ms: a.nextRenewalMs)).",
                    details: [.init("eligible", .bool(false)), .init("reason", .string("not_yet_due")),
                              .init("nextRenewalDate", .time(ms: a.nextRenewalMs)),
                              .init("daysUntilRenewal", .int(daysUntil(a.nextRenewalMs)))])
    }

    /// Whole days until `ms`, rounded up; 0 when it has passed.
    func daysUntil(_ ms: Int64) -> Int64 {
        ms <= decisionNowMs ? 0 : (ms - decisionNowMs + CalendarMonth.msPerDay - 1) / CalendarMonth.msPerDay
    }

    /// Renews a due account (the caller checked it is due): downgrades an expired paid
    /// subscription to Gift, then grants the tier's allocation by the configured policy.
    /// Checks everything before writing; with `dryRun` computes the outcome only.
    func renewAccount(_ a: AccountRecord, jobId: String?, dryRun: Bool) throws -> Result<AccountRenewal, Refusal> {
        var tier = a.tier
        var expires = a.expiresMs
        var downgraded = false
        if !tier.hasSameBytes(as: "Gift"), let e = expires, e <= decisionNowMs {
            tier = "Gift"
            expires = nil
            downgraded = true
        }
        guard let tierConfig = config.tier(named: tier) else {
            return .failure(Refusal(code: .unknownTier, message: "The tier \(tier) of \(a.userId) is no longer configured."))
        }
        var grant: Int64
        switch config.renewalPolicy {
        case .topUp:
            grant = max(0, tierConfig.allocation - a.balance)
        case .accumulate, .expire, .rollover:  // expire, rollover: the old grant lapsed or was carried when it fell due
            grant = tierConfig.allocation
            if a.balance.addingReportingOverflow(grant).overflow { return .failure(.overflow("balance")) }
        }
        let rolled = config.renewalPolicy == .rollover
            ? try carriedIntoRenewal(a, previousPeriodStart: a.lastRenewalMs) : (carried: Int64(0), lapsed: Int64(0))
        if dryRun {
            return .success(AccountRenewal(outcome: RenewalOutcome(userId: a.userId, tier: tier, tokensAdded: grant, newBalance: a.balance + grant,
                                                            tokensCarried: rolled.carried, tokensLapsed: rolled.lapsed),
                                    downgraded: downgraded, entryId: nil, changes: []))
        }
        a.tier = tier
        a.expiresMs = expires
        a.periods = CalendarMonth.periods(from: a.anchorMs, to: decisionNowMs)
        a.lastRenewalMs = CalendarMonth.adding(months: a.periods, to: a.anchorMs)
        a.nextRenewalMs = CalendarMonth.adding(months: a.periods + 1, to: a.anchorMs)
        a.dirtyRenewal = true
        var entryId: Int64? = nil
        var changes: [BalanceChange] = []
        if grant > 0 {
            entryId = try appendEntry(a, kind: .renewal, operationType: "renewal", amount: grant, jobId: jobId, metadata: nil)
            _ = try renewalGrant(a, amount: grant)  // extras: a grant under the `expire` policy
            changes.append(change(a, entryId: entryId, operationType: "renewal", amount: grant, atMs: entryTimeMs))
        } else if downgraded {
            changes.append(change(a, entryId: nil, operationType: nil, amount: nil, atMs: entryTimeMs))
        }
        return .success(AccountRenewal(outcome: RenewalOutcome(userId: a.userId, tier: tier, tokensAdded: grant, newBalance: a.balance,
                                                        tokensCarried: rolled.carried, tokensLapsed: rolled.lapsed),
                                downgraded: downgraded, entryId: entryId, changes: changes))
    }

    func renew(_ userId: String, jobId: String?) throws -> Executed {
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        guard decisionNowMs >= a.nextRenewalMs else { return .refused(notEligible(a)) }
        switch try renewAccount(a, jobId: jobId, dryRun: false) {
        case .failure(let e):
            return .refused(e)
        case .success(let r):
            let renewed = Renewed(userId: userId, tier: a.tier, downgraded: r.downgraded, tokensAdded: r.outcome.tokensAdded,
                                  newBalance: a.balance, ledgerEntryId: r.entryId, lastRenewalMs: a.lastRenewalMs,
                                  nextRenewalMs: a.nextRenewalMs,
                                  rollover: config.renewalPolicy == .rollover
                                      ? Rollover(tokensCarried: r.outcome.tokensCarried, tokensLapsed: r.outcome.tokensLapsed) : nil)
            return Executed(result: CommandResult(.renewed(renewed), changes: r.changes),
                           entryId: r.entryId, accountId: r.changes.isEmpty ? nil : a.id)
        }
    }

    /// Renews the due accounts, oldest due first, at most `limit`, starting after `cursor` (a
    /// run's earlier chunks). With `run`, a selection that leaves no due account behind records
    /// the run complete and keeps its `renewal.completed` with this chunk's messages.
    func renewDue(dryRun: Bool, tier: String?, limit: Int, continueOnError: Bool,
                  after cursor: RenewalCursor? = nil, completing run: ScheduledRunCompletion? = nil) throws -> RenewAllSummary {
        try flush()  // the selection below reads accounts by SQL
        let sql = switch (tier == nil, cursor == nil) {
        case (true, true): SQL.dueAccounts
        case (false, true): SQL.dueAccountsOfTier
        case (true, false): SQL.dueAccountsAfter
        case (false, false): SQL.dueAccountsOfTierAfter
        }
        let q = try RawStatement(db, sql)
        q.reset()
        try q.bind(1, decisionNowMs)
        try q.bind(2, Int64(min(limit, 1 << 40)) + 1)  // one more than taken: tells whether any are left
        if let tier { try q.bind(3, tier) }
        if let cursor {
            try q.bind(4, cursor.nextRenewalMs)
            try q.bind(5, cursor.accountId)
        }
        var due: [AccountRecord] = []
        while try q.step() { due.append(account(current: q)) }
        q.reset()
        var summary = RenewAllSummary()
        var last: RenewalCursor?
        var left = due.count > limit
        for a in due.prefix(limit) {
            if summary.failed > 0 && !continueOnError {
                left = true
                break
            }
            // Taken before renewing moves it: the place of the row the selection read.
            last = RenewalCursor(nextRenewalMs: a.nextRenewalMs, accountId: a.id)
            guard a.nextRenewalMs <= decisionNowMs else { continue }
            // extras: lapses and hold expiries due are written before the renewal.
            if !dryRun {
                try expireIfDue(a)
                let side = takeSideEffects()
                summary.changes += side.changes
                summary.events += side.events
            }
            summary.totalProcessed += 1
            switch try renewAccount(a, jobId: nil, dryRun: dryRun) {
            case .success(let r):
                summary.successful += 1
                summary.renewals.append(r.outcome)
                summary.changes.append(contentsOf: r.changes)
            case .failure(let e):
                summary.failed += 1
                summary.errors.append(RenewalFailure(userId: a.userId, code: e.code, message: e.message))
            }
        }
        if left, let last { summary.remaining = .more(after: last) }
        if !dryRun {  // extras: alerts, and what to announce kept until sent
            summary.events += try evaluateMonitors()
            if let run, summary.remaining == .allTaken {
                summary.events.append(try completeRun(run, adding: summary))
            }
            if !summary.changes.isEmpty || !summary.events.isEmpty {
                summary.pendingSeq = try keepUntilSent(changes: summary.changes, events: summary.events)
            }
        }
        return summary
    }

    /// Records `run` complete (see `Ledger.recordCompletedRun`) and returns its event, with the
    /// totals of its earlier chunks and of this one.
    private func completeRun(_ run: ScheduledRunCompletion, adding chunk: RenewAllSummary) throws -> LedgerEvent {
        let slotMs = LedgerTime.milliseconds(run.slot)
        try Ledger.recordRun(db, name: run.name, slotMs: slotMs, completedMs: decisionNowMs)
        var e = LedgerEvent(LedgerEvent.renewalCompleted)
        e.add("slot", ms: slotMs)
        e.add("totalProcessed", Int64(run.totalProcessed + chunk.totalProcessed))
        e.add("successful", Int64(run.successful + chunk.successful))
        e.add("failed", Int64(run.failed + chunk.failed))
        e.add("tokensCarried", run.tokensCarried + chunk.tokensCarried)  // under `rollover`; 0 otherwise
        e.add("tokensLapsed", run.tokensLapsed + chunk.tokensLapsed)
        e.add("at", ms: entryTimeMs)
        return e
    }

    func renewAll(dryRun: Bool, tier: String?, limit: Int?, continueOnError: Bool) throws -> Executed {
        if let limit, limit < 1 {
            return .refused(Refusal(code: .invalidLimit, message: "limit must be at least 1; it is \(limit)."))
        }
        // One job is one transaction and one reply: both bounded by the configured maximum.
        let most = config.renewAllMaxAccounts
        if let limit, limit > most {
            return .refused(Refusal(code: .invalidLimit,
                                    message: "limit must be at most \(most) (renewAllMaxAccounts); it is \(limit)."))
        }
        if let tier, config.tier(named: tier) == nil {
            return .refused(Refusal(code: .unknownTier, message: "No tier of that name is configured."))
        }
        let s = try renewDue(dryRun: dryRun, tier: tier, limit: limit ?? most, continueOnError: continueOnError)
        let report = RenewAllReport(dryRun: dryRun, limit: Int64(limit ?? most), more: s.remaining != .allTaken,
                                    totalProcessed: Int64(s.totalProcessed), successful: Int64(s.successful), failed: Int64(s.failed),
                                    errors: s.errors, renewals: s.renewals,
                                    figures: config.renewalPolicy == .rollover ? .withRollover : .plain)
        var result = CommandResult(.renewedAll(report), changes: s.changes)
        result.events = s.events  // extras: lapses before the renewals, alerts; kept until sent
        result.pendingSeq = s.pendingSeq
        return Executed(result: result)
    }

    func eligibility(_ userId: String) throws -> Executed {
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        let due = decisionNowMs >= a.nextRenewalMs
        return Executed(result: CommandResult(.eligibility(EligibilityReport(
            userId: userId, eligible: due, tier: a.tier, lastRenewalMs: a.lastRenewalMs, nextRenewalMs: a.nextRenewalMs,
            daysUntilRenewal: daysUntil(a.nextRenewalMs)))))
    }
}

extension LedgerTransaction.SQL {
    static let dueAccounts = """
        SELECT \(AccountRecord.columns) FROM accounts WHERE next_renewal_ms <= ?1
        ORDER BY next_renewal_ms, id LIMIT ?2
        """
    static let dueAccountsOfTier = """
        SELECT \(AccountRecord.columns) FROM accounts WHERE next_renewal_ms <= ?1 AND tier = ?3
        ORDER BY next_renewal_ms, id LIMIT ?2
        """
    static let dueAccountsAfter = """
        SELECT \(AccountRecord.columns) FROM accounts WHERE next_renewal_ms <= ?1
            AND (next_renewal_ms > ?4 OR (next_renewal_ms = ?4 AND id > ?5))
        ORDER BY next_renewal_ms, id LIMIT ?2
        """
    static let dueAccountsOfTierAfter = """
        SELECT \(AccountRecord.columns) FROM accounts WHERE next_renewal_ms <= ?1 AND tier = ?3
            AND (next_renewal_ms > ?4 OR (next_renewal_ms = ?4 AND id > ?5))
        ORDER BY next_renewal_ms, id LIMIT ?2
        """
}
