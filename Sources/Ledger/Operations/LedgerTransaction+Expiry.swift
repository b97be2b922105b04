import Foundation
import GRDB
import LedgerModel

/// What the current command changed besides its own work: lapses and hold expiries written when
/// an account was loaded, and the accounts whose `available` moved (for monitors).
struct ExtrasState {
    var sideChanges: [BalanceChange] = []
    var sideEvents: [LedgerEvent] = []
    /// Accounts whose `available` the current command may have moved, in first-touch order.
    var touched: [AccountRecord] = []
}

/// Expiry: writing what fell due on an account (hold expiries, then grant lapses) before any
/// job sees it, so no token is spent after its grant's expiry and no expired hold counts.
///
/// An account is due when `next_due_ms <= now`. Every write transaction that loads a due account
/// writes it first (`expiredIfDue`, called by `account(_:)`); the worker's sweep
/// (`Ledger.sweepDue`) writes it on the accounts no job touches. Both run in the transaction that
/// then commits, and a hold closes (`state = open` checked) and a grant lapses (`lapsed_ms IS
/// NULL` checked) once: a crash or a replay can never write either twice.
extension LedgerTransaction {
    static let expiryOperationType = "expiry"

    /// Notes that `a` is about to change: the first time in a command, its `available` is kept
    /// so that monitors can compare (one optional check per change on the hot path).
    func willChange(_ a: AccountRecord) {
        if a.availableBefore == nil {
            a.availableBefore = a.available
            extras.touched.append(a)
        }
    }

    /// The account, its expiries written first when something fell due on it (only in a write transaction).
    func expiredIfDue(_ a: AccountRecord) throws -> AccountRecord {
        try expireIfDue(a)
        return a
    }

    func expireIfDue(_ a: AccountRecord) throws {
        guard writable, let due = a.nextDueMs, due <= decisionNowMs else { return }
        try writeExpiries(a)
    }

    /// Expires the due holds (their grant tokens go back to live grants, or lapse when their
    /// grant lapsed before), then lapses the due grants (an `expiry` entry for the free tokens
    /// left), then recomputes `next_due_ms`.
    func writeExpiries(_ a: AccountRecord) throws {
        var holds: [(id: String, amount: Int64, expiresMs: Int64)] = []
        let q = try db.cachedStatement(sql: SQL.dueHolds)
        let rows = try Row.fetchCursor(q, arguments: [a.id, decisionNowMs])
        while let r = try rows.next() { holds.append((r[0], r[1], r[2])) }
        for h in holds {
            let lapses = try closeHold(a, holdId: h.id, amount: h.amount, spend: 0, state: .expired, closedMs: h.expiresMs)
            extras.sideChanges.append(change(a, entryId: nil, operationType: nil, amount: nil, atMs: entryTimeMs))
            extras.sideChanges += lapses
            var e = LedgerEvent(LedgerEvent.holdExpired)
            e.add("userId", a.userId)
            e.add("holdId", h.id)
            e.add("amount", h.amount)
            e.add("at", ms: h.expiresMs)
            extras.sideEvents.append(e)
        }
        var grants: [(id: String, remaining: Int64, expiresMs: Int64)] = []
        let g = try Row.fetchCursor(db.cachedStatement(sql: SQL.dueGrants), arguments: [a.id, decisionNowMs])
        while let r = try g.next() { grants.append((r[0], r[1], r[2])) }
        for grant in grants {
            if config.renewalPolicy == .rollover, grant.id.utf8.starts(with: Self.periodGrantPrefix.utf8) {
                try carry(a, grantId: grant.id, remaining: grant.remaining, expiresMs: grant.expiresMs)
            } else {
                try lapse(a, grantId: grant.id, remaining: grant.remaining, expiresMs: grant.expiresMs)
            }
        }
        try refreshNextDue(a)
    }

    /// Writes a grant's lapse: an `expiry` entry for its free tokens (none when nothing is
    /// left), its `lapsed_ms`, and the `grant.expired` event when tokens lapsed.
    func lapse(_ a: AccountRecord, grantId: String, remaining: Int64, expiresMs: Int64) throws {
        willChange(a)
        var entryId: Int64? = nil
        if remaining > 0 {
            entryId = try appendEntry(a, kind: .expiry, operationType: Self.expiryOperationType, amount: -remaining,
                                      jobId: nil, metadata: Self.lapseMetadata(grantId: grantId, expiresMs: expiresMs, holdId: nil))
            a.granted -= remaining
        }
        try db.cachedStatement(sql: SQL.markLapsed).execute(arguments: [entryTimeMs, remaining, grantId])
        guard db.changesCount == 1 else { throw LedgerInvariantError("grant \(grantId) lapsed twice") }
        a.dirtyExtras = true
        guard let entryId else { return }
        extras.sideChanges.append(change(a, entryId: entryId, operationType: Self.expiryOperationType, amount: -remaining, atMs: entryTimeMs))
        var e = LedgerEvent(LedgerEvent.grantExpired)
        e.add("userId", a.userId)
        e.add("grantId", grantId)
        e.add("tokensAmount", -remaining)
        e.add("expiresAt", ms: expiresMs)
        e.add("at", ms: entryTimeMs)
        extras.sideEvents.append(e)
    }

    /// `{"grantId","expiresAt"}`, plus `holdId` when a closing hold gave back tokens of a grant
    /// that had lapsed meanwhile. The one JSON the ledger writes: it is the `expiry` entry's
    /// metadata, which the hash chain covers, so its bytes are fixed here and not by the wire.
    static func lapseMetadata(grantId: String, expiresMs: Int64, holdId: String?) -> String {
        var text = #"{"grantId":"# + MetadataText.quoted(grantId) + #","expiresAt":""# + LedgerTime.format(ms: expiresMs) + "\""
        if let holdId { text += #","holdId":"# + MetadataText.quoted(holdId) }
        return text + "}"
    }

    /// The soonest expiry among the account's open holds and live grants.
    func refreshNextDue(_ a: AccountRecord) throws {
        let next = try Int64.fetchOne(db.cachedStatement(sql: SQL.nextDue), arguments: [a.id])
        if next != a.nextDueMs {
            a.nextDueMs = next
            a.dirtyExtras = true
        }
    }

    /// Moves `a`'s next due time earlier to `ms` if it is sooner.
    func dueNoLaterThan(_ a: AccountRecord, _ ms: Int64) {
        if a.nextDueMs.map({ ms < $0 }) ?? true {
            a.nextDueMs = ms
            a.dirtyExtras = true
        }
    }

    /// The side effects gathered so far, handed over once.
    func takeSideEffects() -> (changes: [BalanceChange], events: [LedgerEvent]) {
        defer {
            extras.sideChanges.removeAll(keepingCapacity: true)
            extras.sideEvents.removeAll(keepingCapacity: true)
        }
        return (extras.sideChanges, extras.sideEvents)
    }

    /// Completes a command's result: its own change and time (for `job.applied`), the side
    /// effects written before it, and the alerts its changes fired.
    func finishCommand(_ result: CommandResult) throws -> CommandResult {
        var result = result
        result.atMs = entryTimeMs
        if result.own == nil { result.own = result.changes.last }
        var pendingChanges: [BalanceChange] = []
        if !extras.sideChanges.isEmpty || !extras.sideEvents.isEmpty {
            let side = takeSideEffects()
            result.changes = side.changes + result.changes
            result.events = side.events + result.events
            pendingChanges = side.changes
        }
        if !extras.touched.isEmpty { result.alerts = try evaluateMonitors() }
        // A replay of the job resends its own change, not these: they are kept until sent.
        if result.pendingSeq == nil, !pendingChanges.isEmpty || !result.events.isEmpty || !result.alerts.isEmpty {
            result.pendingSeq = try keepUntilSent(changes: pendingChanges, events: result.events + result.alerts)
        }
        return result
    }

    /// Writes the extras columns of the accounts that changed them (accounts that never used
    /// holds, grants or monitors never get here).
    func flushExtras() throws {
        for a in dirtyExtrasAccounts() {
            try assertReservations(a)
            try db.cachedStatement(sql: SQL.updateAccountExtras)
                .execute(arguments: [a.held, a.granted, a.nextDueMs, a.monitors, a.id])
            a.dirtyExtras = false
        }
    }
}

/// What the ledger did on its own, kept until the worker has sent it (see `Schema+Extras`).
extension LedgerTransaction {
    enum PendingKind: Int64 {
        case change = 0, event = 1
    }

    /// Writes the changes and events to `pending_sends`; returns the last row's seq.
    func keepUntilSent(changes: [BalanceChange], events: [LedgerEvent]) throws -> Int64? {
        guard writable else { return nil }
        let insert = try db.cachedStatement(sql: SQL.insertPending)
        for c in changes { try insert.execute(arguments: [PendingKind.change.rawValue, String(decoding: c.stored, as: UTF8.self)]) }
        for e in events { try insert.execute(arguments: [PendingKind.event.rawValue, String(decoding: e.stored, as: UTF8.self)]) }
        return db.lastInsertedRowID
    }
}

/// A JSON string literal for the ledger's own metadata (`lapseMetadata`): quotes, backslashes
/// and control characters escaped as the wire target's writer escapes them.
enum MetadataText {
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// A state the ledger's own bookkeeping should make impossible (a hold closed twice, a grant
/// lapsed twice): the transaction rolls back rather than write it.
struct LedgerInvariantError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension LedgerTransaction.SQL {
    static let dueHolds = """
        SELECT hold_id, amount, expires_ms FROM holds WHERE account_id = ?1 AND state = 0 AND expires_ms <= ?2
        ORDER BY expires_ms, hold_id
        """
    static let dueGrants = """
        SELECT grant_id, remaining, expires_ms FROM grants WHERE account_id = ?1 AND lapsed_ms IS NULL AND expires_ms <= ?2
        ORDER BY expires_ms, grant_id
        """
    static let markLapsed = "UPDATE grants SET lapsed_ms = ?1, lapsed = lapsed + ?2, remaining = 0 WHERE grant_id = ?3 AND lapsed_ms IS NULL"
    static let nextDue = """
        SELECT min(m) FROM (
            SELECT min(expires_ms) AS m FROM holds WHERE account_id = ?1 AND state = 0
            UNION ALL SELECT min(expires_ms) FROM grants WHERE account_id = ?1 AND lapsed_ms IS NULL)
        """
    static let insertPending = "INSERT INTO pending_sends (kind, payload) VALUES (?, ?)"
    static let updateAccountExtras = "UPDATE accounts SET held = ?, granted = ?, next_due_ms = ?, monitors = ? WHERE id = ?"
    static let dueAccountsToSweep = """
        SELECT \(AccountRecord.columns) FROM accounts WHERE next_due_ms <= ?1 ORDER BY next_due_ms, id LIMIT ?2
        """
}

extension LedgerTransaction {
    /// The sweep: writes the expiries of the due accounts, soonest due first, at most `limit`.
    func sweepDue(limit: Int, deadline: ContinuousClock.Instant? = nil) throws -> SweepSummary {
        try flush()  // the selection below reads accounts by SQL
        let q = try RawStatement(db, SQL.dueAccountsToSweep)
        q.reset()
        try q.bind(1, decisionNowMs)
        try q.bind(2, Int64(limit))
        var due: [AccountRecord] = []
        while try q.step() { due.append(account(current: q)) }
        q.reset()
        var summary = SweepSummary()
        for a in due {
            if let deadline, summary.accounts > 0, ContinuousClock.now >= deadline {
                summary.more = true
                break
            }
            try expireIfDue(a)
            summary.accounts += 1
        }
        let side = takeSideEffects()
        summary.changes = side.changes
        summary.events = side.events + (try evaluateMonitors())
        if !summary.changes.isEmpty || !summary.events.isEmpty {
            summary.pendingSeq = try keepUntilSent(changes: summary.changes, events: summary.events)
        }
        for e in side.events {
            if e.name == LedgerEvent.holdExpired { summary.holdsExpired += 1 }
            if e.name == LedgerEvent.grantExpired {
                summary.grantsLapsed += 1
                summary.tokensLapsed -= Int64(e.value("tokensAmount") ?? "0") ?? 0
            }
        }
        return summary
    }
}
