import LedgerModel

/// The reply fields of every `Outcome`: the one place their names, order and forms are written.
///
/// The order is the contract's (and what the ledger wrote before outcomes were typed): `success`
/// first, then the case's fields; a refusal is `"success":false,"error":{code,message}` followed
/// by its details. A legacy outcome's stored object is written as it was stored.
extension JSONWriter {
    /// Writes the outcome's members into the object being written (no braces).
    public mutating func members(of outcome: Outcome) {
        if case .legacy(let l) = outcome {
            members(of: l.json)
            return
        }
        key("success"); bool(outcome.isSuccess)
        switch outcome {
        case .opened(let o):
            key("userId"); string(o.userId)
            key("tier"); string(o.tier)
            key("newBalance"); int(o.newBalance)
            key("ledgerEntryId"); int(o.ledgerEntryId)
            key("tokensAmount"); int(o.newBalance)
            key("lastRenewalAt"); time(ms: o.lastRenewalMs)
            key("nextRenewalDate"); time(ms: o.nextRenewalMs)
            grant(o.grant)
        case .entry(let e):
            entry(e)
        case .expiringCredit(let c):
            entry(c.entry)
            grant(c.grant)
        case .purchased(let p):
            key("userId"); string(p.userId)
            key("tier"); string(p.tier)
            key("paymentId"); string(p.paymentId)
            key("months"); int(p.months)
            key("newBalance"); int(p.newBalance)
            key("ledgerEntryId"); int(p.ledgerEntryId)
            key("tokensAmount"); int(p.tokensAdded)
            key("tokensAdded"); int(p.tokensAdded)
            key("subscriptionExpiresAt"); time(ms: p.subscriptionExpiresMs)
            key("lastRenewalAt"); time(ms: p.lastRenewalMs)
            key("nextRenewalDate"); time(ms: p.nextRenewalMs)
            grant(p.grant)
        case .renewed(let r):
            key("userId"); string(r.userId)
            key("tier"); string(r.tier)
            key("downgraded"); bool(r.downgraded)
            key("tokensAdded"); int(r.tokensAdded)
            key("newBalance"); int(r.newBalance)
            key("ledgerEntryId"); int(r.ledgerEntryId)
            key("tokensAmount"); int(r.tokensAdded)
            key("lastRenewalAt"); time(ms: r.lastRenewalMs)
            key("nextRenewalDate"); time(ms: r.nextRenewalMs)
            rollover(r.rollover)
        case .renewedAll(let r):
            key("dryRun"); bool(r.dryRun)
            key("limit"); int(r.limit)
            key("more"); bool(r.more)
            key("totalProcessed"); int(r.totalProcessed)
            key("successful"); int(r.successful)
            key("failed"); int(r.failed)
            key("errors"); beginArray()
            for e in r.errors {
                beginObject()
                key("userId"); string(e.userId)
                key("code"); string(e.code.rawValue)
                key("message"); string(e.message)
                endObject()
            }
            endArray()
            key("renewals"); beginArray()
            for o in r.renewals {
                beginObject()
                key("userId"); string(o.userId)
                key("tier"); string(o.tier)
                key("tokensAdded"); int(o.tokensAdded)
                key("newBalance"); int(o.newBalance)
                if r.figures == .withRollover {
                    key("tokensCarried"); int(o.tokensCarried)
                    key("tokensLapsed"); int(o.tokensLapsed)
                }
                endObject()
            }
            endArray()
        case .tierSet(let t):
            key("userId"); string(t.userId)
            key("tier"); string(t.tier)
            key("previousTier"); string(t.previousTier)
            key("subscriptionExpiresAt"); time(ms: t.subscriptionExpiresMs)
            key("lastRenewalAt"); time(ms: t.lastRenewalMs)
            key("nextRenewalDate"); time(ms: t.nextRenewalMs)
        case .held(let h):
            key("userId"); string(h.userId)
            key("holdId"); string(h.holdId)
            key("amount"); int(h.amount)
            key("available"); int(h.available)
            key("expiresAt"); time(ms: h.expiresMs)
        case .captured(let c):
            entry(c.entry)
            key("holdId"); string(c.holdId)
            key("released"); int(c.released)
            key("available"); int(c.available)
        case .released(let r):
            key("holdId"); string(r.holdId)
            key("released"); int(r.released)
            key("available"); int(r.available)
        case .monitorSet(let m):
            key("userId"); string(m.userId)
            key("monitorId"); string(m.monitorId)
            key("threshold"); int(m.threshold)
            key("armed"); bool(m.armed)
            key("replaced"); bool(m.replaced)
        case .monitorRemoved(let m):
            key("userId"); string(m.userId)
            key("monitorId"); string(m.monitorId)
        case .balance(let b):
            key("userId"); string(b.userId)
            key("tokensBalance"); int(b.tokensBalance)
            key("tokensSpent"); int(b.tokensSpent)
            key("tier"); string(b.tier)
            key("lastRenewalAt"); time(ms: b.lastRenewalMs)
            key("nextRenewalDate"); time(ms: b.nextRenewalMs)
            key("subscriptionExpiresAt"); time(ms: b.subscriptionExpiresMs)
            key("held"); int(b.held)
            key("available"); int(b.available)
            key("grants"); beginArray()
            for g in b.grants {
                beginObject()
                key("grantId"); string(g.grantId)
                key("remaining"); int(g.remaining)
                key("expiresAt"); time(ms: g.expiresMs)
                endObject()
            }
            endArray()
        case .affordability(let a):
            key("canAfford"); bool(a.canAfford)
            key("cost"); int(a.cost)
            key("balance"); int(a.balance)
            key("available"); int(a.available)
            key("deficit"); int(a.deficit)
        case .history(let h):
            key("userId"); string(h.userId)
            key("entries"); beginArray()
            for e in h.entries {
                beginObject()
                key("id"); int(e.id)
                key("jobId"); string(e.jobId)
                key("operationType"); string(e.operationType)
                key("tokensAmount"); int(e.tokensAmount)
                key("balanceBefore"); int(e.balanceBefore)
                key("balanceAfter"); int(e.balanceAfter)
                key("createdAt"); time(ms: e.createdMs)
                key("metadata"); raw(e.metadata)
                endObject()
            }
            endArray()
            key("total"); int(h.total)
            key("limit"); int(h.limit)
            key("offset"); int(h.offset)
        case .statistics(let s):
            key("userId"); string(s.userId)
            key("startDate"); time(ms: s.startMs)
            key("endDate"); time(ms: s.endMs)
            key("totalSpent"); int(s.totalSpent)
            key("totalEarned"); int(s.totalEarned)
            key("netChange"); int(s.netChange)
            key("operationCount"); int(s.operationCount)
            rollover(s.rollover)
            key("byOperation"); beginObject()
            for g in s.byOperation {
                key(dynamic: g.operationType)
                beginObject()
                key("count"); int(g.count)
                key("tokens"); int(g.tokens)
                endObject()
            }
            endObject()
        case .eligibility(let e):
            key("userId"); string(e.userId)
            key("eligible"); bool(e.eligible)
            key("reason"); string(e.eligible ? "renewal_due" : "not_yet_due")
            key("tier"); string(e.tier)
            key("lastRenewalAt"); time(ms: e.lastRenewalMs)
            key("nextRenewalDate"); time(ms: e.nextRenewalMs)
            key("daysUntilRenewal"); int(e.daysUntilRenewal)
        case .holds(let h):
            key("userId"); string(h.userId)
            key("holds"); beginArray()
            for o in h.holds {
                beginObject()
                key("holdId"); string(o.holdId)
                key("amount"); int(o.amount)
                key("operationType"); string(o.operationType)
                key("createdAt"); time(ms: o.createdMs)
                key("expiresAt"); time(ms: o.expiresMs)
                endObject()
            }
            endArray()
            key("held"); int(h.held)
            key("available"); int(h.available)
        case .balanceAt(let b):
            key("userId"); string(b.userId)
            key("at"); time(ms: b.atMs)
            key("exists"); bool(b.point != nil)
            key("tokensBalance"); int(b.point?.tokensBalance ?? 0)
            key("tokensSpent"); int(b.point?.tokensSpent ?? 0)
            key("ledgerEntryId"); int(b.point?.ledgerEntryId)
            key("createdAt"); time(ms: b.point?.createdMs)
        case .refused(let r):
            key("error"); beginObject()
            key("code"); string(r.code.rawValue)
            key("message"); string(r.message)
            endObject()
            for d in r.details {
                key(dynamic: d.key)
                switch d.value {
                case .int(let v): int(v)
                case .string(let v): string(v)
                case .bool(let v): bool(v)
                case .time(let ms): time(ms: ms)
                case .null: null()
                }
            }
        case .legacy:
            break  // written above
        }
    }

    /// An integer, or null.
    public mutating func int(_ v: Int64?) {
        if let v { int(v) } else { null() }
    }

    private mutating func entry(_ e: EntryWritten) {
        key("newBalance"); int(e.newBalance)
        key("ledgerEntryId"); int(e.ledgerEntryId)
        key("tokensAmount"); int(e.tokensAmount)
    }

    private mutating func grant(_ g: GrantMade?) {
        guard let g else { return }
        key("grantId"); string(g.grantId)
        key("expiresAt"); time(ms: g.expiresMs)
    }

    private mutating func rollover(_ r: Rollover?) {
        guard let r else { return }
        key("tokensCarried"); int(r.tokensCarried)
        key("tokensLapsed"); int(r.tokensLapsed)
    }
}
