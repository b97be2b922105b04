import Foundation

/// One event of the events stream (`P:events`): a name and its fields, in order, every value a
/// string (numbers in decimal, `true`/`false`, times in ISO 8601 with milliseconds). Absent
/// fields are left out rather than written empty.
///
/// The ledger makes the events of the changes it commits (`hold.expired`, `grant.expired`,
/// `balance.low`); the worker adds `job.applied` and `renewal.completed`, and writes them all
/// after the commit on the one ordered send path.
public struct LedgerEvent: Sendable, Equatable {
    public static let holdExpired = "hold.expired"
    public static let grantExpired = "grant.expired"
    public static let balanceLow = "balance.low"
    public static let jobApplied = "job.applied"
    public static let renewalCompleted = "renewal.completed"

    public var name: String
    public var fields: [Field]

    public struct Field: Sendable, Equatable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    public init(_ name: String, _ fields: [Field] = []) {
        self.name = name
        self.fields = fields
    }

    /// Appends a field; nil leaves it out.
    public mutating func add(_ key: String, _ value: String?) {
        if let value { fields.append(Field(key, value)) }
    }

    public mutating func add(_ key: String, _ value: Int64?) {
        if let value { fields.append(Field(key, String(value))) }
    }

    public mutating func add(_ key: String, _ value: Bool) {
        fields.append(Field(key, value ? "true" : "false"))
    }

    public mutating func add(_ key: String, ms: Int64?) {
        if let ms { fields.append(Field(key, LedgerTime.format(ms: ms))) }
    }

    public func value(_ key: String) -> String? { fields.first { $0.key == key }?.value }

    /// `{"event": name, field: value, ...}`: the message published on `P:alerts`. Values that
    /// are numbers on the stream are numbers here too.
    public var json: String {
        var w = JSONWriter(capacity: 160)
        w.beginObject()
        w.key("event"); w.string(name)
        for f in fields {
            w.key(dynamic: f.key)
            if Self.numericKeys.contains(f.key), let n = Int64(f.value) { w.int(n) } else { w.string(f.value) }
        }
        w.endObject()
        return w.text
    }

    static let numericKeys: Set<String> = ["threshold", "available", "ledgerEntryId", "amount", "tokensAmount", "partition",
                                           "newBalance", "totalProcessed", "successful", "failed"]
}
