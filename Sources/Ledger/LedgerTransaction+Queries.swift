import GRDB

/// balance, canAfford, history, statistics.
///
/// Account totals come from the batch's copy of the account (so a query sees the earlier jobs
/// of its own batch); entries are read by SQL through `entries_by_account (account_id,
/// created_ms)`, whose implicit rowid suffix also gives "newest first" (`created_ms DESC, id
/// DESC`) without a sort.
extension LedgerTransaction {
    static let maxHistoryLimit = 1000

    func balance(_ userId: String) throws -> Outcome {
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        var w = JSONWriter()
        w.beginObject()
        w.key("success"); w.bool(true)
        w.key("userId"); w.string(userId)
        w.key("tokensBalance"); w.int(a.balance)
        w.key("tokensSpent"); w.int(a.spent)
        w.key("tier"); w.string(a.tier)
        w.key("lastRenewalAt"); w.time(ms: a.lastRenewalMs)
        w.key("nextRenewalDate"); w.time(ms: a.nextRenewalMs)
        w.key("subscriptionExpiresAt"); w.time(ms: a.expiresMs)
        // credit: held, available and the expiring grants not used up, soonest first.
        let held = try currentHeld(a)
        w.key("held"); w.int(held)
        w.key("available"); w.int(a.balance - held)
        w.key("grants"); w.beginArray()
        for g in try grantList(a) {
            w.beginObject()
            w.key("grantId"); w.string(g.grantId)
            w.key("remaining"); w.int(g.remaining)
            w.key("expiresAt"); w.time(ms: g.expiresMs)
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return Outcome(result: CommandResult(success: true, json: w.text))
    }

    func canAfford(_ userId: String, operation: String) throws -> Outcome {
        guard let cost = config.costs[operation] else {
            return .refused(Refusal(code: Refusal.unknownOperation, message: "The operation \(operation) has no configured cost."))
        }
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        var w = JSONWriter()
        w.beginObject()
        w.key("success"); w.bool(true)
        let available = a.balance - (try currentHeld(a))  // credit: judged on available
        w.key("canAfford"); w.bool(available >= cost)
        w.key("cost"); w.int(cost)
        w.key("balance"); w.int(a.balance)
        w.key("available"); w.int(available)
        w.key("deficit"); w.int(max(0, cost - available))
        w.endObject()
        return Outcome(result: CommandResult(success: true, json: w.text))
    }

    static func dateRange(_ startMs: Int64?, _ endMs: Int64?) -> Refusal? {
        guard let startMs, let endMs, startMs > endMs else { return nil }
        return Refusal(code: Refusal.invalidDateRange, message: "startDate must not be after endDate.")
    }

    func history(_ userId: String, limit: Int, offset: Int, operationType: String?, startMs: Int64?, endMs: Int64?) throws -> Outcome {
        guard (1...Self.maxHistoryLimit).contains(limit) else {
            return .refused(Refusal(code: Refusal.invalidLimit, message: "limit must be between 1 and \(Self.maxHistoryLimit); it is \(limit)."))
        }
        guard offset >= 0 else {
            return .refused(Refusal(code: Refusal.invalidLimit, message: "offset must be at least 0; it is \(offset)."))
        }
        if let e = Self.dateRange(startMs, endMs) { return .refused(e) }
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        let lo = startMs ?? Int64.min, hi = endMs ?? Int64.max
        var w = JSONWriter(capacity: 256 + limit * 160)
        w.beginObject()
        w.key("success"); w.bool(true)
        w.key("userId"); w.string(userId)
        w.key("entries"); w.beginArray()
        let page = try db.cachedStatement(sql: operationType == nil ? SQL.historyPage : SQL.historyPageOfType)
        let pageArgs: StatementArguments = operationType == nil
            ? [a.id, lo, hi, limit, offset] : [a.id, lo, hi, limit, offset, operationType]
        let rows = try Row.fetchCursor(page, arguments: pageArgs)
        while let r = try rows.next() {
            w.beginObject()
            w.key("id"); w.int(r[0] as Int64)
            w.key("jobId"); w.string(r[1] as String?)
            w.key("operationType"); w.string(r[2] as String)
            w.key("tokensAmount"); w.int(r[3] as Int64)
            w.key("balanceBefore"); w.int(r[4] as Int64)
            w.key("balanceAfter"); w.int(r[5] as Int64)
            w.key("createdAt"); w.time(ms: r[6] as Int64)
            w.key("metadata"); w.raw(r[7] as String?)
            w.endObject()
        }
        w.endArray()
        let total: Int64
        if operationType == nil && startMs == nil && endMs == nil {
            total = a.entryCount
        } else {
            let count = try db.cachedStatement(sql: operationType == nil ? SQL.historyCount : SQL.historyCountOfType)
            let countArgs: StatementArguments = operationType == nil ? [a.id, lo, hi] : [a.id, lo, hi, operationType]
            total = try Int64.fetchOne(count, arguments: countArgs) ?? 0
        }
        w.key("total"); w.int(total)
        w.key("limit"); w.int(limit)
        w.key("offset"); w.int(offset)
        w.endObject()
        return Outcome(result: CommandResult(success: true, json: w.text))
    }

    func statistics(_ userId: String, startMs: Int64, endMs: Int64) throws -> Outcome {
        if let e = Self.dateRange(startMs, endMs) { return .refused(e) }
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        struct Group { var type: String; var count: Int64; var tokens: Int64; var spent: Int64; var earned: Int64 }
        var groups: [Group] = []
        do {
            let rows = try Row.fetchCursor(db.cachedStatement(sql: SQL.statistics), arguments: [a.id, startMs, endMs])
            while let r = try rows.next() { groups.append(Group(type: r[0], count: r[1], tokens: r[2], spent: r[3], earned: r[4])) }
        } catch let e as DatabaseError where e.message?.contains("integer overflow") == true {
            return .refused(.overflow("statistics sum"))
        }
        var spent: Int64 = 0, earned: Int64 = 0, count: Int64 = 0
        for g in groups {
            var o1 = false, o2 = false
            (spent, o1) = spent.addingReportingOverflow(g.spent)
            (earned, o2) = earned.addingReportingOverflow(g.earned)
            if o1 || o2 { return .refused(.overflow("statistics sum")) }
            count += g.count
        }
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.key("success"); w.bool(true)
        w.key("userId"); w.string(userId)
        w.key("startDate"); w.time(ms: startMs)
        w.key("endDate"); w.time(ms: endMs)
        w.key("totalSpent"); w.int(spent)
        w.key("totalEarned"); w.int(earned)
        w.key("netChange"); w.int(earned - spent)
        w.key("operationCount"); w.int(count)
        w.key("byOperation"); w.beginObject()
        for g in groups {
            w.key(dynamic: g.type)
            w.beginObject()
            w.key("count"); w.int(g.count)
            w.key("tokens"); w.int(g.tokens)
            w.endObject()
        }
        w.endObject()
        w.endObject()
        return Outcome(result: CommandResult(success: true, json: w.text))
    }
}

extension LedgerTransaction.SQL {
    static let historyColumns = "id, job_id, operation_type, amount, balance_before, balance_after, created_ms, metadata"
    static let historyPage = """
        SELECT \(historyColumns) FROM entries WHERE account_id = ?1 AND created_ms BETWEEN ?2 AND ?3
        ORDER BY created_ms DESC, id DESC LIMIT ?4 OFFSET ?5
        """
    static let historyPageOfType = """
        SELECT \(historyColumns) FROM entries WHERE account_id = ?1 AND created_ms BETWEEN ?2 AND ?3
        AND operation_type = ?6 ORDER BY created_ms DESC, id DESC LIMIT ?4 OFFSET ?5
        """
    static let historyCount = "SELECT count(*) FROM entries WHERE account_id = ?1 AND created_ms BETWEEN ?2 AND ?3"
    static let historyCountOfType = """
        SELECT count(*) FROM entries WHERE account_id = ?1 AND created_ms BETWEEN ?2 AND ?3 AND operation_type = ?4
        """
    static let statistics = """
        SELECT operation_type, count(*), sum(amount),
            sum(CASE WHEN amount < 0 THEN -amount ELSE 0 END), sum(CASE WHEN amount > 0 THEN amount ELSE 0 END)
        FROM entries WHERE account_id = ?1 AND created_ms BETWEEN ?2 AND ?3
        GROUP BY operation_type ORDER BY operation_type
        """
}
