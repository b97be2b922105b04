import GRDB

/// `verify` for reservations and expiring grants (issue 13): every account's `held` and
/// `granted` agree with its holds and grants and never exceed its balance together; each lapse
/// is written once and matches its grant; each hold is closed once.
extension Auditor {
    mutating func checkExtras(balances: [Int64: Int64]) throws {
        let tables = Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'"))
        guard tables.contains("holds"), tables.contains("grants") else { return }  // a ledger from before v2-credit
        let rows = try Row.fetchAll(db, sql: """
            SELECT a.user_id, a.id, a.held, a.granted,
                (SELECT coalesce(sum(amount), 0) FROM holds h WHERE h.account_id = a.id AND h.state = 0),
                (SELECT coalesce(sum(remaining), 0) FROM grants g WHERE g.account_id = a.id AND g.lapsed_ms IS NULL),
                a.next_due_ms,
                (SELECT min(m) FROM (SELECT min(expires_ms) AS m FROM holds WHERE account_id = a.id AND state = 0
                    UNION ALL SELECT min(expires_ms) FROM grants WHERE account_id = a.id AND lapsed_ms IS NULL)),
                a.monitors, (SELECT count(*) FROM monitors m WHERE m.account_id = a.id)
            FROM accounts a
            WHERE a.held != 0 OR a.granted != 0 OR a.next_due_ms IS NOT NULL OR a.monitors != 0
                OR EXISTS (SELECT 1 FROM holds h WHERE h.account_id = a.id AND h.state = 0)
                OR EXISTS (SELECT 1 FROM grants g WHERE g.account_id = a.id AND g.lapsed_ms IS NULL AND g.remaining > 0)
            ORDER BY a.user_id
            """)
        for r in rows {
            let u: String = r[0]
            let balance: Int64 = balances[r[1] as Int64] ?? 0, held: Int64 = r[2], granted: Int64 = r[3], openHolds: Int64 = r[4], live: Int64 = r[5]
            let nextDue: Int64? = r[6], soonest: Int64? = r[7], monitors: Int64 = r[8], monitorRows: Int64 = r[9]
            if held != openHolds {
                add(Code.heldMismatch, user: u, "The account of \(u) records \(held) held tokens but its open holds sum to \(openHolds).")
            }
            if granted != live {
                add(Code.grantedMismatch, user: u, "The account of \(u) records \(granted) granted tokens but its live grants have \(live) left.")
            }
            // Both what the holds and grants give and what the row records (what the ledger
            // decides by: `available` is the balance less `held`), as asserted at write.
            let (sum, overflow) = live.addingReportingOverflow(openHolds)
            let (recorded, recordedOverflow) = granted.addingReportingOverflow(held)
            if overflow || sum > balance || held < 0 || granted < 0 || recordedOverflow || recorded > balance {
                add(Code.reservedBeyondBalance, user: u, "The grants' remaining \(live) plus the held \(openHolds) tokens of \(u) (its row: \(granted) granted, \(held) held) exceed its balance of \(balance) or are negative.")
            }
            if nextDue != soonest {
                add(Code.nextDueMismatch, user: u, "The account of \(u) is due at \(nextDue.map(String.init) ?? "never") but its holds and grants are due at \(soonest.map(String.init) ?? "never").")
            }
            if monitors != monitorRows {
                add(Code.monitorCount, user: u, "The account of \(u) counts \(monitors) monitors but has \(monitorRows).")
            }
        }
        try checkLapses()
        try checkHolds()
        try checkCarries()
    }

    /// Under `rollover`: every carried grant names a period grant of its account that recorded
    /// carrying exactly that many tokens, and every period grant that carried has its one carry.
    mutating func checkCarries() throws {
        guard try db.columns(in: "grants").contains(where: { $0.name == "source" }) else { return }
        let rows = try Row.fetchCursor(db, sql: """
            SELECT c.grant_id, c.amount, c.account_id, s.grant_id, s.carried, s.account_id,
                (SELECT count(*) FROM grants o WHERE o.source = c.source)
            FROM grants c LEFT JOIN grants s ON s.grant_id = c.source
            WHERE c.source IS NOT NULL OR substr(c.grant_id, 1, 9) = 'rollover:'
            """)
        while let r = try rows.next() {
            let id: String = r[0], amount: Int64 = r[1], account: Int64 = r[2]
            let source: String? = r[3], carried: Int64? = r[4], sourceAccount: Int64? = r[5], carries: Int64 = r[6]
            if source == nil || sourceAccount != account || carried != amount || carries != 1 {
                add(Code.carryOrphan, "The carried grant \(id) of \(amount) tokens has no period grant of its account that carried exactly that once (source \(source ?? "none"), recorded \(carried.map(String.init) ?? "none")).")
            }
        }
        let sources = try Row.fetchCursor(db, sql: """
            SELECT s.grant_id, s.carried FROM grants s WHERE s.carried > 0
                AND NOT EXISTS (SELECT 1 FROM grants c WHERE c.source = s.grant_id)
            """)
        while let r = try sources.next() {
            let id: String = r[0], carried: Int64 = r[1]
            add(Code.carryOrphan, "The grant \(id) records \(carried) carried tokens but no carried grant names it.")
        }
    }

    mutating func checkLapses() throws {
        // Per grant: the expiry entries naming it, the lapse proper (no holdId) at most once.
        let lapses = try Row.fetchAll(db, sql: """
            SELECT json_extract(e.metadata, '$.grantId') AS gid, sum(-e.amount),
                sum(json_extract(e.metadata, '$.holdId') IS NULL), min(e.id), g.lapsed, g.lapsed_ms, g.account_id, e.account_id,
                count(DISTINCT json_extract(e.metadata, '$.holdId'))
                    = count(json_extract(e.metadata, '$.holdId'))
            FROM entries e LEFT JOIN grants g ON g.grant_id = json_extract(e.metadata, '$.grantId')
            WHERE e.kind = \(Schema.Kind.expiry.rawValue) GROUP BY gid ORDER BY gid
            """)
        for r in lapses {
            let grantId: String? = r[0], total: Int64 = r[1], proper: Int64 = r[2], firstEntry: Int64 = r[3]
            let recorded: Int64? = r[4], lapsedMs: Int64? = r[5], grantAccount: Int64? = r[6], entryAccount: Int64 = r[7]
            let distinctHolds: Bool = r[8]
            guard let grantId, let recorded, grantAccount == entryAccount else {
                add(Code.lapseOrphan, entry: firstEntry, "An expiry entry names the grant \(grantId ?? "?"), which is not a grant of the same account.")
                continue
            }
            if proper > 1 || !distinctHolds {
                add(Code.lapseTwice, entry: firstEntry, "The grant \(grantId) lapsed more than once.")
            }
            if lapsedMs == nil || total != recorded {
                add(Code.lapseTwice, entry: firstEntry, "The expiry entries of grant \(grantId) write off \(total) tokens but the grant records \(recorded) lapsed.")
            }
        }
        // Grants recorded as lapsed that no expiry entry names (one pass, not a scan per grant).
        var named = Set<IdentityKey>()
        for r in lapses { if let id: String = r[0] { named.insert(IdentityKey(id)) } }
        let recorded = try Row.fetchCursor(db, sql: "SELECT grant_id, lapsed FROM grants WHERE lapsed > 0 ORDER BY grant_id")
        while let r = try recorded.next() {
            let grantId: String = r[0], lapsed: Int64 = r[1]
            if !named.contains(IdentityKey(grantId)) {
                add(Code.lapseTwice, "The grant \(grantId) records \(lapsed) lapsed tokens but no expiry entry names it.")
            }
        }
    }

    mutating func checkHolds() throws {
        for r in try Row.fetchAll(db, sql: """
            SELECT h.hold_id, h.state, h.closed_ms, h.captured, h.entry_id, h.amount, e.amount, e.account_id, h.account_id,
                (SELECT coalesce(sum(amount), 0) FROM hold_grants p WHERE p.hold_id = h.hold_id)
            FROM holds h LEFT JOIN entries e ON e.id = h.entry_id
            WHERE NOT ((h.state = 0 AND h.closed_ms IS NULL AND h.entry_id IS NULL)
                OR (h.state IN (2, 3) AND h.closed_ms IS NOT NULL AND h.entry_id IS NULL)
                OR (h.state = 1 AND h.closed_ms IS NOT NULL AND e.amount = -h.captured AND h.captured <= h.amount
                    AND e.account_id = h.account_id))
                OR (SELECT coalesce(sum(amount), 0) FROM hold_grants p WHERE p.hold_id = h.hold_id) > h.amount
            """) {
            let holdId: String = r[0], state: Int64 = r[1]
            add(Code.holdInconsistent, entry: r[4], "The hold \(holdId) (state \(state)) is inconsistent: its closing, its capture entry or its grant portions disagree.")
        }
        for r in try Row.fetchAll(db, sql: """
            SELECT entry_id, count(*) FROM holds WHERE entry_id IS NOT NULL GROUP BY entry_id HAVING count(*) > 1
            """) {
            let entryId: Int64 = r[0]
            add(Code.holdInconsistent, entry: entryId, "Entry \(entryId) captures more than one hold.")
        }
    }
}
