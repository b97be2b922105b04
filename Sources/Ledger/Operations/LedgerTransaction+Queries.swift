import GRDB
import LedgerModel

/// balance, canAfford, history, statistics.
///
/// Account totals come from the batch's copy of the account (so a query sees the earlier jobs
/// of its own batch). Entries come from two places that never overlap: the unmerged tail
/// (entries after `tail.mergedEntryId`, in memory, this batch's included) and, for the rest,
/// SQL through `entry_index (account_id, created_ms, entry_id)` restricted to
/// `entry_id <= mergedEntryId` (a merge under way may have indexed some tail entries already).
/// Since ids and times rise together, every tail entry is newer than every merged one: a page
/// newest first is the tail's matches, then SQL's, with the offset carried over.
extension LedgerTransaction {
    static let maxHistoryLimit = 1000

    func balance(_ userId: String) throws -> Executed {
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        // extras: held, available and the expiring grants not used up, soonest first.
        let held = try currentHeld(a)
        let grants = try grantList(a).map { GrantBalance(grantId: $0.grantId, remaining: $0.remaining, expiresMs: $0.expiresMs) }
        return Executed(result: CommandResult(.balance(BalanceReport(
            userId: userId, tokensBalance: a.balance, tokensSpent: a.spent, tier: a.tier, lastRenewalMs: a.lastRenewalMs,
            nextRenewalMs: a.nextRenewalMs, subscriptionExpiresMs: a.expiresMs, held: held, available: a.balance - held, grants: grants))))
    }

    func canAfford(_ userId: String, operation: String) throws -> Executed {
        guard let cost = config.cost(of: operation) else {
            return .refused(Refusal(code: .unknownOperation, message: "The operation \(operation) has no configured cost."))
        }
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        let available = a.balance - (try currentHeld(a))  // extras: judged on available
        return Executed(result: CommandResult(.affordability(Affordability(
            canAfford: available >= cost, cost: cost, balance: a.balance, available: available, deficit: max(0, cost - available)))))
    }

    static func dateRange(_ startMs: Int64?, _ endMs: Int64?) -> Refusal? {
        guard let startMs, let endMs, startMs > endMs else { return nil }
        return Refusal(code: .invalidDateRange, message: "startDate must not be after endDate.")
    }

    func history(_ userId: String, limit: Int, offset: Int, operationType: String?, startMs: Int64?, endMs: Int64?) throws -> Executed {
        guard (1...Self.maxHistoryLimit).contains(limit) else {
            return .refused(Refusal(code: .invalidLimit, message: "limit must be between 1 and \(Self.maxHistoryLimit); it is \(limit)."))
        }
        guard offset >= 0 else {
            return .refused(Refusal(code: .invalidLimit, message: "offset must be at least 0; it is \(offset)."))
        }
        if let e = Self.dateRange(startMs, endMs) { return .refused(e) }
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        let lo = startMs ?? Int64.min, hi = endMs ?? Int64.max
        let merged = tail.mergedEntryId
        // The tail's matches, newest first: which of them are on the page, and how many there are.
        var tailMatches = 0
        var tailPage: [Int64] = []
        let recent = tailEntries(of: a.id)
        for e in recent.reversed() where e.createdMs >= lo && e.createdMs <= hi
            && (operationType.map(e.operationType.hasSameBytes) ?? true) {
            if tailMatches >= offset && tailPage.count < limit { tailPage.append(e.id) }
            tailMatches += 1
        }
        var entries: [HistoryEntry] = []
        entries.reserveCapacity(min(limit, 64))
        func write(_ r: Row) {
            entries.append(HistoryEntry(id: r[0], jobId: r[1], operationType: r[2], tokensAmount: r[3], balanceBefore: r[4],
                                        balanceAfter: r[5], createdMs: r[6], metadata: r[7]))
        }
        let byId = try db.cachedStatement(sql: SQL.historyEntry)
        for id in tailPage {
            if let r = try Row.fetchOne(byId, arguments: [id]) { write(r) }
        }
        let rest = limit - tailPage.count
        if rest > 0 {
            let page = try db.cachedStatement(sql: operationType == nil ? SQL.historyPage : SQL.historyPageOfType)
            let pageOffset = max(0, offset - tailMatches)
            let pageArgs: StatementArguments = operationType == nil
                ? [a.id, lo, hi, rest, pageOffset, merged] : [a.id, lo, hi, rest, pageOffset, merged, operationType]
            let rows = try Row.fetchCursor(page, arguments: pageArgs)
            while let r = try rows.next() { write(r) }
        }
        let total: Int64
        if operationType == nil && startMs == nil && endMs == nil {
            total = a.entryCount
        } else {
            let count = try db.cachedStatement(sql: operationType == nil ? SQL.historyCount : SQL.historyCountOfType)
            let countArgs: StatementArguments = operationType == nil ? [a.id, lo, hi, merged] : [a.id, lo, hi, merged, operationType]
            total = (try Int64.fetchOne(count, arguments: countArgs) ?? 0) + Int64(tailMatches)
        }
        return Executed(result: CommandResult(.history(HistoryPage(userId: userId, entries: entries, total: total, limit: Int64(limit),
                                                                   offset: Int64(offset)))))
    }

    func statistics(_ userId: String, startMs: Int64, endMs: Int64) throws -> Executed {
        if let e = Self.dateRange(startMs, endMs) { return .refused(e) }
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        struct Group { var type: String; var count: Int64; var tokens: Int64; var spent: Int64; var earned: Int64 }
        var groups: [Group] = []
        do {
            let rows = try Row.fetchCursor(db.cachedStatement(sql: SQL.statistics), arguments: [a.id, startMs, endMs, tail.mergedEntryId])
            while let r = try rows.next() { groups.append(Group(type: r[0], count: r[1], tokens: r[2], spent: r[3], earned: r[4])) }
        } catch let e as DatabaseError where e.message?.contains("integer overflow") == true {
            return .refused(.overflow("statistics sum"))
        }
        // The unmerged tail's entries in the range, added group by group.
        var overflow = false
        for e in tailEntries(of: a.id) where e.createdMs >= startMs && e.createdMs <= endMs {
            let index: Int
            if let i = groups.firstIndex(where: { $0.type.hasSameBytes(as: e.operationType) }) {
                index = i
            } else {
                groups.append(Group(type: e.operationType, count: 0, tokens: 0, spent: 0, earned: 0))
                index = groups.count - 1
            }
            var o = (false, false)
            groups[index].count += 1
            (groups[index].tokens, o.0) = groups[index].tokens.addingReportingOverflow(e.amount)
            if e.amount < 0 {
                (groups[index].spent, o.1) = groups[index].spent.addingReportingOverflow(-e.amount)
            } else {
                (groups[index].earned, o.1) = groups[index].earned.addingReportingOverflow(e.amount)
            }
            if o.0 || o.1 { overflow = true }
        }
        if overflow { return .refused(.overflow("statistics sum")) }
        groups.sort { $0.type.utf8.lexicographicallyPrecedes($1.type.utf8) }
        var spent: Int64 = 0, earned: Int64 = 0, count: Int64 = 0
        for g in groups {
            var o1 = false, o2 = false
            (spent, o1) = spent.addingReportingOverflow(g.spent)
            (earned, o2) = earned.addingReportingOverflow(g.earned)
            if o1 || o2 { return .refused(.overflow("statistics sum")) }
            count += g.count
        }
        // Under `rollover`: what renewals carried into the period, and what lapsed in it (the `expiry` entries).
        let rollover = config.renewalPolicy == .rollover
            ? Rollover(tokensCarried: try tokensCarried(a, startMs: startMs, endMs: endMs),
                       tokensLapsed: -(groups.first { $0.type == Self.expiryOperationType }?.tokens ?? 0))
            : nil
        return Executed(result: CommandResult(.statistics(StatisticsReport(
            userId: userId, startMs: startMs, endMs: endMs, totalSpent: spent, totalEarned: earned, operationCount: count,
            rollover: rollover, byOperation: groups.map { OperationTotal(operationType: $0.type, count: $0.count, tokens: $0.tokens) }))))
    }
}

extension LedgerTransaction.SQL {
    static let historyColumns = "e.id, e.job_id, e.operation_type, e.amount, e.balance_before, e.balance_after, e.created_ms, e.metadata"
    static let historyEntry = "SELECT \(historyColumns) FROM entries e WHERE e.id = ?"
    /// `?6` is the merged watermark: entries after it are the tail's.
    static let historyPage = """
        SELECT \(historyColumns) FROM entry_index x JOIN entries e ON e.id = x.entry_id
        WHERE x.account_id = ?1 AND x.created_ms BETWEEN ?2 AND ?3 AND x.entry_id <= ?6
        ORDER BY x.created_ms DESC, x.entry_id DESC LIMIT ?4 OFFSET ?5
        """
    static let historyPageOfType = """
        SELECT \(historyColumns) FROM entry_index x JOIN entries e ON e.id = x.entry_id
        WHERE x.account_id = ?1 AND x.created_ms BETWEEN ?2 AND ?3 AND x.entry_id <= ?6
        AND e.operation_type = ?7 ORDER BY x.created_ms DESC, x.entry_id DESC LIMIT ?4 OFFSET ?5
        """
    static let historyCount = """
        SELECT count(*) FROM entry_index x WHERE x.account_id = ?1 AND x.created_ms BETWEEN ?2 AND ?3 AND x.entry_id <= ?4
        """
    static let historyCountOfType = """
        SELECT count(*) FROM entry_index x JOIN entries e ON e.id = x.entry_id
        WHERE x.account_id = ?1 AND x.created_ms BETWEEN ?2 AND ?3 AND x.entry_id <= ?4 AND e.operation_type = ?5
        """
    static let statistics = """
        SELECT e.operation_type, count(*), sum(e.amount),
            sum(CASE WHEN e.amount < 0 THEN -e.amount ELSE 0 END), sum(CASE WHEN e.amount > 0 THEN e.amount ELSE 0 END)
        FROM entry_index x JOIN entries e ON e.id = x.entry_id
        WHERE x.account_id = ?1 AND x.created_ms BETWEEN ?2 AND ?3 AND x.entry_id <= ?4
        GROUP BY e.operation_type ORDER BY e.operation_type
        """
}
