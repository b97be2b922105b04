/// The fields of a job as they came, each read on its own: one mistyped field must not hide the
/// `id` and `replyTo` that the failure reply needs. Unknown fields are validated and ignored.
struct RawJob {
    /// A field's value, or a note that it was present with the wrong JSON type.
    struct Field<T> {
        var value: T?
        var wrongType = false
        var isPresent: Bool { value != nil || wrongType }
    }

    /// An integer amount, told apart from a fraction and from an integer too large for 64 bits
    /// (a refusal, `invalid_amount`, rather than a shape error).
    enum Amount {
        case exact(Int64)
        case outOfRange
    }

    var id = Field<String>(), type = Field<String>(), userId = Field<String>(), replyTo = Field<String>()
    var operation = Field<String>(), operationType = Field<String>(), refundOf = Field<String>()
    var tier = Field<String>(), paymentId = Field<String>(), startDate = Field<String>(), endDate = Field<String>()
    var amount = Field<Amount>()
    var months = Field<Int>(), limit = Field<Int>(), offset = Field<Int>()
    var dryRun = Field<Bool>(), continueOnError = Field<Bool>()
    /// The metadata object's JSON text, as sent (validated; key order and spacing kept).
    var metadata = Field<String>()
    // Reservations, grants, monitors (issue 13).
    var holdId = Field<String>(), monitorId = Field<String>(), expiresAt = Field<String>()
    var expiresIn = Field<Amount>(), allocationExpiresIn = Field<Amount>(), threshold = Field<Amount>()
    // setTier, balanceAt.
    var at = Field<String>(), subscriptionExpiresAt = Field<String>()
    /// `subscriptionExpiresAt` was sent as `null`: a `setTier` that clears the expiry, which is
    /// not the same as leaving the field out (the expiry stays).
    var subscriptionExpiresAtIsNull = false

    /// Reads the job's bytes (valid UTF-8); throws when they are not one JSON object.
    init(_ raw: [UInt8]) throws(JobError) {
        do {
            try JSONScanner.scanObject(raw) { key, value in set(key, value) }
        } catch {
            // The scanner's message names the fault ("it is not a JSON object", "it is not valid
            // JSON: ..."), so the lead-in must not name one too.
            throw JobError("The job cannot be read: \(error.message).")
        }
    }

    private mutating func set(_ key: String, _ value: JSONScanner.Value) {
        if case .null = value {  // null reads as absent, but for the one field where it means "clear"
            if key == "subscriptionExpiresAt" { subscriptionExpiresAtIsNull = true }
            return
        }
        switch key {
        case "id": id = Self.string(value)
        case "type": type = Self.string(value)
        case "userId": userId = Self.string(value)
        case "replyTo": replyTo = Self.string(value)
        case "operation": operation = Self.string(value)
        case "operationType": operationType = Self.string(value)
        case "refundOf": refundOf = Self.string(value)
        case "tier": tier = Self.string(value)
        case "paymentId": paymentId = Self.string(value)
        case "startDate": startDate = Self.string(value)
        case "endDate": endDate = Self.string(value)
        case "months": months = Self.int(value)
        case "limit": limit = Self.int(value)
        case "offset": offset = Self.int(value)
        case "dryRun": dryRun = Self.bool(value)
        case "continueOnError": continueOnError = Self.bool(value)
        case "amount": amount = Self.amount(value)
        case "holdId": holdId = Self.string(value)
        case "monitorId": monitorId = Self.string(value)
        case "expiresAt": expiresAt = Self.string(value)
        case "expiresIn": expiresIn = Self.amount(value)
        case "allocationExpiresIn": allocationExpiresIn = Self.amount(value)
        case "threshold": threshold = Self.amount(value)
        case "at": at = Self.string(value)
        case "subscriptionExpiresAt": subscriptionExpiresAt = Self.string(value)
        case "metadata":
            if case .object(let text) = value { metadata = Field(value: text) } else { metadata = Field(wrongType: true) }
        default: break
        }
    }

    private static func amount(_ value: JSONScanner.Value) -> Field<Amount> {
        switch value {
        case .integer(let n): return Field(value: .exact(n))
        case .bigInteger: return Field(value: .outOfRange)
        default: return Field(wrongType: true)
        }
    }

    private static func string(_ value: JSONScanner.Value) -> Field<String> {
        if case .string(let s) = value { return Field(value: s) }
        return Field(wrongType: true)
    }

    private static func int(_ value: JSONScanner.Value) -> Field<Int> {
        if case .integer(let n) = value, let small = Int(exactly: n) { return Field(value: small) }
        return Field(wrongType: true)
    }

    private static func bool(_ value: JSONScanner.Value) -> Field<Bool> {
        if case .bool(let b) = value { return Field(value: b) }
        return Field(wrongType: true)
    }
}
