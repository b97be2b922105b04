import GRDB
import LedgerModel

/// monitor, unmonitor, and firing `balance.low`.
///
/// A monitor fires when a command's committed changes take `available` from at or above its
/// threshold to below it; to fire again, `available` must first be back at or above it. That is
/// a property of the transition alone, so no armed flag is stored: a monitor made (or replaced)
/// while `available` is below its threshold is not armed until `available` comes back up, as the
/// contract asks. Only accounts with monitors (`accounts.monitors > 0`) or a configured default
/// monitor are looked at, and only when their `available` moved.
extension LedgerTransaction {
    static let defaultMonitorId = "default"

    func monitor(_ userId: String, monitorId: String, threshold: Int64) throws -> Executed {
        guard threshold >= 0 else {
            return .refused(Refusal(code: .invalidThreshold, message: "The threshold must be an integer of at least 0; it is \(threshold)."))
        }
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        let existed = try Row.fetchOne(db.cachedStatement(sql: SQL.monitorById), arguments: [a.id, monitorId]) != nil
        try db.cachedStatement(sql: SQL.upsertMonitor).execute(arguments: [a.id, monitorId, threshold])
        if !existed {
            a.monitors += 1
            a.dirtyExtras = true
        }
        let set = MonitorSet(userId: userId, monitorId: monitorId, threshold: threshold, armed: a.available >= threshold, replaced: existed)
        return Executed(result: CommandResult(.monitorSet(set)), accountId: nil)
    }

    func unmonitor(_ userId: String, monitorId: String) throws -> Executed {
        guard let a = try account(userId) else { return .refused(.userNotFound(userId)) }
        try db.cachedStatement(sql: SQL.deleteMonitor).execute(arguments: [a.id, monitorId])
        guard db.changesCount == 1 else {
            return .refused(Refusal(code: .monitorNotFound, message: "User \(userId) has no monitor \(monitorId)."))
        }
        a.monitors -= 1
        a.dirtyExtras = true
        return Executed(result: CommandResult(.monitorRemoved(MonitorRemoved(userId: userId, monitorId: monitorId))), accountId: nil)
    }

    /// The `balance.low` events of the accounts the current command changed, and forgets them.
    func evaluateMonitors() throws -> [LedgerEvent] {
        var fired: [LedgerEvent] = []
        for a in extras.touched {
            defer {
                a.availableBefore = nil
                a.entryInCommand = nil
            }
            guard let before = a.availableBefore, a.available < before else { continue }
            let after = a.available
            func fire(_ monitorId: String, _ threshold: Int64) {
                guard before >= threshold, after < threshold else { return }
                var e = LedgerEvent(LedgerEvent.balanceLow)
                e.add("userId", a.userId)
                e.add("monitorId", monitorId)
                e.add("threshold", threshold)
                e.add("available", after)
                e.add("ledgerEntryId", a.entryInCommand)
                e.add("at", ms: entryTimeMs)
                fired.append(e)
            }
            var own: [(String, Int64)] = []
            if a.monitors > 0 {
                let rows = try Row.fetchCursor(db.cachedStatement(sql: SQL.monitorsOf), arguments: [a.id])
                while let r = try rows.next() { own.append((r[0], r[1])) }
            }
            // A user's own monitor named `default` takes the configured one's place.
            if let t = config.defaultMonitorThreshold, !own.contains(where: { $0.0.hasSameBytes(as: Self.defaultMonitorId) }) {
                fire(Self.defaultMonitorId, t)
            }
            for (id, t) in own { fire(id, t) }
        }
        extras.touched.removeAll(keepingCapacity: true)
        return fired
    }
}

extension LedgerTransaction.SQL {
    static let monitorById = "SELECT threshold FROM monitors WHERE account_id = ? AND monitor_id = ?"
    static let upsertMonitor = """
        INSERT INTO monitors (account_id, monitor_id, threshold) VALUES (?1, ?2, ?3)
        ON CONFLICT (account_id, monitor_id) DO UPDATE SET threshold = ?3
        """
    static let deleteMonitor = "DELETE FROM monitors WHERE account_id = ? AND monitor_id = ?"
    static let monitorsOf = "SELECT monitor_id, threshold FROM monitors WHERE account_id = ? ORDER BY monitor_id"
}
