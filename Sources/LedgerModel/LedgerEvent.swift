import Foundation

/// One event of the events stream (`P:events`): a name and its fields, in order, every value a
/// string (numbers in decimal, `true`/`false`, times in ISO 8601 with milliseconds). Absent
/// fields are left out rather than written empty.
///
/// These are the ledger's events: those of the changes it commits (`hold.expired`,
/// `grant.expired`, `balance.low`) and the end of a scheduled renewal run (`renewal.completed`).
/// The worker's own `job.applied`, the partition field and every encoding (stream fields, the
/// alert's JSON) belong to the wire target.
public struct LedgerEvent: Sendable, Equatable {
    public static let holdExpired = "hold.expired"
    public static let grantExpired = "grant.expired"
    public static let balanceLow = "balance.low"
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
}
