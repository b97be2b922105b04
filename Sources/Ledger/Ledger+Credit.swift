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
    /// What was kept to announce and not yet forgotten, oldest first, with the last seq: a new
    /// active worker sends it all again (at least once), then forgets it through that seq.
    public func pendingSends() throws -> (sends: [PendingSend], through: Int64?) {
        try writer.read { db in
            var sends: [PendingSend] = []
            var last: Int64? = nil
            for row in try Row.fetchAll(db, sql: "SELECT seq, kind, payload FROM pending_sends ORDER BY seq") {
                last = row[0]
                let kind: Int64 = row[1], payload: String = row[2]
                if kind == LedgerTransaction.PendingKind.change.rawValue {
                    sends.append(.change(json: payload))
                } else if let e = LedgerEvent(storedJSON: payload) {
                    sends.append(.event(e))
                }
            }
            return (sends, last)
        }
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
