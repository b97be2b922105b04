import Foundation
import GRDB
import LedgerModel

extension Ledger {
    /// How many holds are open and how many tokens they hold (expired ones not yet written
    /// included), for the worker's metrics.
    public func openHoldTotals() throws -> (count: Int64, tokens: Int64) {
        try writer.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT count(*), coalesce(sum(amount), 0) FROM holds WHERE state = 0")
            return (row?[0] ?? 0, row?[1] ?? 0)
        }
    }
}

extension LedgerReader {
    /// How many accounts have a hold expiry or a grant lapse due at or before now, not yet
    /// swept (for operators and tests: it falls to zero within seconds while a worker runs).
    public func unsweptDueAccounts() throws -> Int64 {
        let nowMs = LedgerTime.milliseconds(clock.now())
        return try reader.read { db in
            try Int64.fetchOne(db, sql: "SELECT count(*) FROM accounts WHERE next_due_ms <= ?", arguments: [nowMs]) ?? 0
        }
    }
}

/// A change or event the ledger made on its own and kept until sent (see `Schema+Extras`).
public enum PendingSend: Sendable, Equatable {
    /// An invalidation, with the account's state as it is now (see `pendingSends`).
    case change(BalanceChange)
    case event(LedgerEvent)
}

extension PendingSend {
    /// A `pending_sends` row as stored: the stored encoding (`StoredOutcome`), or a row of the
    /// schema before it, JSON (nil when that cannot be read; see `LegacyPending`).
    init?(kind: Int64, payload: String) throws {
        let stored = StoredResult(text: Array(payload.utf8))
        if kind == LedgerTransaction.PendingKind.change.rawValue {
            switch stored {
            case .encoded(let bytes): self = .change(try BalanceChange(stored: bytes))
            case .legacyJSON(let bytes):
                guard let change = LegacyPending.change(String(decoding: bytes, as: UTF8.self)) else { return nil }
                self = .change(change)
            }
        } else {
            switch stored {
            case .encoded(let bytes): self = .event(try LedgerEvent(stored: bytes))
            case .legacyJSON(let bytes):
                guard let event = LegacyPending.event(String(decoding: bytes, as: UTF8.self)) else { return nil }
                self = .event(event)
            }
        }
    }

    /// The user it announces: an invalidation's, or an event's `userId` field (none for a
    /// renewal run's `renewal.completed`).
    var userId: String? {
        switch self {
        case .change(let change): return change.userId
        case .event(let event): return event.fields.first { $0.key == "userId" }?.value
        }
    }
}

extension Ledger {
    /// What was kept to announce and not yet forgotten, after the row `after` (already known to
    /// have left), oldest first, with the last seq: a new active worker sends it all again (at
    /// least once), then forgets it through that seq.
    ///
    /// An invalidation sent again carries the account's state as it is now (its entry's fields
    /// kept), like a replayed job's: the stored snapshot may already have left, followed by newer
    /// commits' messages, and must never be published after them as the latest state.
    ///
    /// Rows are in the stored encoding (`StoredOutcome`); rows of the schema before it hold JSON
    /// (the invalidation's object, the event's `[name, key, value...]`) and are read as such.
    public func pendingSends(after: Int64 = 0) throws -> (sends: [PendingSend], through: Int64?) {
        let nowMs = LedgerTime.milliseconds(clock.now())
        return try writer.read { db in
            try tail.refreshIfChanged(db)
            let transaction = try LedgerTransaction(db: db, config: config, tail: tail, clockMs: nowMs, writable: false)
            var sends: [PendingSend] = []
            var last: Int64? = nil
            for row in try Row.fetchAll(db, sql: "SELECT seq, kind, payload FROM pending_sends WHERE seq > ? ORDER BY seq",
                                        arguments: [after]) {
                last = row[0]
                let kind: Int64 = row[1], payload: String = row[2]
                switch try PendingSend(kind: kind, payload: payload) {
                case .change(let change)?: sends.append(.change(try transaction.currentState(of: change)))
                case .event(let event)?: sends.append(.event(event))
                case nil: break
                }
            }
            return (sends, last)
        }
    }
}

extension LedgerTransaction {
    /// A stored invalidation with the account's current balance, spent, tier and holds; its
    /// entry's own fields (id, operation type, amount, time) as they were. As stored when the
    /// account is gone.
    func currentState(of stored: BalanceChange) throws -> BalanceChange {
        guard let a = try account(stored.userId) else { return stored }
        return change(a, entryId: stored.ledgerEntryId, operationType: stored.operationType, amount: stored.tokensAmount,
                      atMs: LedgerTime.milliseconds(stored.at))
    }
}

/// `pending_sends` rows of the schema before the stored encoding: JSON text, read once when a
/// worker sends them again.
enum LegacyPending {
    /// An invalidation's JSON; nil when it cannot be read (then it is not sent: its account's
    /// state is sent by every later change anyway).
    static func change(_ json: String) -> BalanceChange? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let userId = object["userId"] as? String else { return nil }
        func int(_ key: String) -> Int64? { (object[key] as? NSNumber)?.int64Value }
        let atMs = (object["at"] as? String).flatMap(LedgerTime.parseMilliseconds) ?? 0
        return BalanceChange(userId: userId, tokensBalance: int("tokensBalance") ?? 0, tokensSpent: int("tokensSpent") ?? 0,
                             tier: object["tier"] as? String ?? "", ledgerEntryId: int("ledgerEntryId"),
                             operationType: object["operationType"] as? String, tokensAmount: int("tokensAmount"),
                             at: LedgerTime.date(atMs), held: int("held") ?? 0)
    }

    /// An event's `[name, key, value, key, value, ...]`.
    static func event(_ text: String) -> LedgerEvent? {
        guard let items = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String], let name = items.first else {
            return nil
        }
        var fields: [LedgerEvent.Field] = []
        var i = 1
        while i + 1 < items.count {
            fields.append(LedgerEvent.Field(items[i], items[i + 1]))
            i += 2
        }
        return LedgerEvent(name, fields)
    }
}
