/// A business refusal: a well-formed command whose values or whose account state the ledger
/// refuses. It is a result, not a failure of the worker: it is stored under the job id, and a
/// replay answers it again.
///
/// `code` is one of the contract's stable snake_case words; `message` is a sentence for
/// people; `details` are extra top-level result fields (for `insufficient_tokens`: `balance`,
/// `required`, `deficit`), in the order they are written.
public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: String
    public let message: String
    public let details: [RefusalDetail]

    public init(code: String, message: String, details: [RefusalDetail] = []) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code): \(message)" }

    /// The value of an integer detail, for tests and metrics.
    public func detail(_ key: String) -> LedgerValue? { details.first { $0.key == key }?.value }

    // The stable codes. Contract codes first, then the ones this ledger adds.
    public static let invalidJob = "invalid_job"
    public static let userNotFound = "user_not_found"
    public static let accountExists = "account_exists"
    public static let insufficientTokens = "insufficient_tokens"
    public static let unknownOperation = "unknown_operation"
    public static let invalidAmount = "invalid_amount"
    public static let refundExceedsCharge = "refund_exceeds_charge"
    public static let notEligible = "not_eligible"
    public static let duplicatePayment = "duplicate_payment"
    public static let chargeNotFound = "charge_not_found"
    public static let unknownTier = "unknown_tier"
    public static let invalidDateRange = "invalid_date_range"
    /// `months` of a purchase below 1 or above 1200.
    public static let invalidMonths = "invalid_months"
    /// `limit`/`offset` of history or renewAll out of range.
    public static let invalidLimit = "invalid_limit"

    static func userNotFound(_ userId: String) -> Refusal {
        Refusal(code: userNotFound, message: "No account exists for user \(userId).")
    }

    static func insufficient(balance: Int64, available: Int64, required: Int64) -> Refusal {
        Refusal(
            code: insufficientTokens,
            message: available == balance
                ? "The balance of \(balance) tokens does not cover the \(required) tokens required."
                : "The \(available) tokens available (balance \(balance), less \(balance - available) held) do not cover the \(required) tokens required.",
            details: [.init("balance", .int(balance)), .init("available", .int(available)), .init("required", .int(required)),
                      .init("deficit", .int(required - available))])
    }

    // Reservations, expiring grants, monitors (issue 13).
    public static let holdNotFound = "hold_not_found"
    public static let holdClosed = "hold_closed"
    public static let holdExpired = "hold_expired"
    public static let captureExceedsHold = "capture_exceeds_hold"
    public static let monitorNotFound = "monitor_not_found"
    /// An `expiresAt` not in the future, an `expiresIn` below 1 (or, for holds, above 7 days).
    public static let invalidExpiry = "invalid_expiry"
    /// A monitor threshold below 0 or beyond 64 bits.
    public static let invalidThreshold = "invalid_threshold"
    /// A credit or purchase whose grant would take an id of the form the ledger keeps for renewal
    /// grants (`renewal:...`).
    public static let reservedGrantId = "reserved_grant_id"
    /// A producer's job naming the worker's own operationType `expiry`.
    public static let reservedOperationType = "reserved_operation_type"

    static func overflow(_ what: String) -> Refusal {
        Refusal(code: invalidAmount, message: "The \(what) would overflow a 64-bit integer.")
    }
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
