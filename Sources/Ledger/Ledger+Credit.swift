import Foundation
import GRDB

extension Ledger {
    /// How many holds are open and how many tokens they hold (expired ones not yet settled
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
    /// settled (for operators and tests: it falls to zero within seconds while a worker runs).
    public func unsettledDueAccounts() throws -> Int64 {
        let nowMs = LedgerTime.milliseconds(clock.now())
        return try reader.read { db in
            try Int64.fetchOne(db, sql: "SELECT count(*) FROM accounts WHERE next_due_ms <= ?", arguments: [nowMs]) ?? 0
        }
    }
}

/// A change or event the ledger made on its own and kept until sent (see `Schema+Credit`).
public enum PendingSend: Sendable, Equatable {
    /// An invalidation's JSON, as published.
    case change(json: String)
    case event(LedgerEvent)
}

extension Ledger {
    /// What was kept to announce and not yet forgotten, after the row `after` (already known to
    /// have left), oldest first, with the last seq: a new active worker sends it all again (at
    /// least once), then forgets it through that seq.
    ///
    /// An invalidation sent again carries the account's state as it is now (its entry's fields
    /// kept), like a replayed job's: the stored snapshot may already have left, followed by newer
    /// commits' messages, and must never be published after them as the latest state.
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
                if kind == LedgerTransaction.PendingKind.change.rawValue {
                    sends.append(.change(json: try transaction.currentState(ofChange: payload) ?? payload))
                } else if let e = LedgerEvent(storedJSON: payload) {
                    sends.append(.event(e))
                }
            }
            return (sends, last)
        }
    }
}

extension LedgerTransaction {
    /// A stored invalidation with the account's current balance, spent, tier and holds; its
    /// entry's own fields (id, operation type, amount, time) as they were. Nil when it cannot be
    /// read or the account is gone (then it is sent as stored).
    func currentState(ofChange json: String) throws -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let userId = object["userId"] as? String, let a = try account(userId) else { return nil }
        let atMs = (object["at"] as? String).flatMap(LedgerTime.parseMilliseconds) ?? entryTimeMs
        return change(a, entryId: (object["ledgerEntryId"] as? NSNumber)?.int64Value,
                      operationType: object["operationType"] as? String,
                      amount: (object["tokensAmount"] as? NSNumber)?.int64Value, atMs: atMs).json
    }
}

extension LedgerEvent {
    /// Reads `storedJSON` back.
    init?(storedJSON text: String) {
        guard let items = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String], let name = items.first else {
            return nil
        }
        var fields: [Field] = []
        var i = 1
        while i + 1 < items.count {
            fields.append(Field(items[i], items[i + 1]))
            i += 2
        }
        self.init(name, fields)
    }
}
