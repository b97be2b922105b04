/// A refusal's code: one of the contract's stable snake_case words, classified by type rather
/// than compared as text at call sites. `rawValue` is the word the wire carries.
public struct RefusalCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    // The stable codes. Contract codes first, then the ones this ledger adds.
    public static let invalidJob = RefusalCode("invalid_job")
    public static let userNotFound = RefusalCode("user_not_found")
    public static let accountExists = RefusalCode("account_exists")
    public static let insufficientTokens = RefusalCode("insufficient_tokens")
    public static let unknownOperation = RefusalCode("unknown_operation")
    public static let invalidAmount = RefusalCode("invalid_amount")
    public static let refundExceedsCharge = RefusalCode("refund_exceeds_charge")
    public static let notEligible = RefusalCode("not_eligible")
    public static let duplicatePayment = RefusalCode("duplicate_payment")
    public static let chargeNotFound = RefusalCode("charge_not_found")
    public static let unknownTier = RefusalCode("unknown_tier")
    public static let invalidDateRange = RefusalCode("invalid_date_range")
    /// `months` of a purchase below 1 or above 1200.
    public static let invalidMonths = RefusalCode("invalid_months")
    /// `limit`/`offset` of history or renewAll out of range.
    public static let invalidLimit = RefusalCode("invalid_limit")
    public static let holdNotFound = RefusalCode("hold_not_found")
    public static let holdClosed = RefusalCode("hold_closed")
    public static let holdExpired = RefusalCode("hold_expired")
    public static let captureExceedsHold = RefusalCode("capture_exceeds_hold")
    public static let monitorNotFound = RefusalCode("monitor_not_found")
    /// An `expiresAt` not in the future, an `expiresIn` below 1 (or, for holds, above 7 days).
    public static let invalidExpiry = RefusalCode("invalid_expiry")
    /// A monitor threshold below 0 or beyond 64 bits.
    public static let invalidThreshold = RefusalCode("invalid_threshold")
    /// A credit or purchase whose grant would take an id of the form the ledger keeps for renewal
    /// grants (`renewal:...`).
    public static let reservedGrantId = RefusalCode("reserved_grant_id")
    /// A producer's job naming the worker's own operationType `expiry`.
    public static let reservedOperationType = RefusalCode("reserved_operation_type")
}

/// A business refusal: a well-formed command whose values or whose account state the ledger
/// refuses. It is a result, not a failure of the worker: it is stored under the job id, and a
/// replay answers it again.
///
/// `code` is one of the contract's stable snake_case words; `message` is a sentence for
/// people; `details` are extra top-level result fields (for `insufficient_tokens`: `balance`,
/// `required`, `deficit`), in the order they are written.
public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: RefusalCode
    public let message: String
    public let details: [RefusalDetail]

    public init(code: RefusalCode, message: String, details: [RefusalDetail] = []) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// The value of an integer detail, for tests and metrics.
    public func detail(_ key: String) -> LedgerValue? { details.first { $0.key == key }?.value }
}

/// One extra result field of a refusal.
public struct RefusalDetail: Sendable, Equatable {
    public let key: String
    public let value: LedgerValue
    public init(_ key: String, _ value: LedgerValue) {
        self.key = key
        self.value = value
    }
}

/// A JSON scalar.
public enum LedgerValue: Sendable, Equatable {
    case int(Int64)
    case string(String)
    case bool(Bool)
    /// An ISO 8601 time, written as a string.
    case time(ms: Int64)
    case null
}
