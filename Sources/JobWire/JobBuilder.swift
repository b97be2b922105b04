import Foundation
import LedgerModel

/// Checks a job's fields against its type and builds the ledger command.
struct JobBuilder {
    let fields: RawJob

    init(_ fields: RawJob) { self.fields = fields }

    func build() throws(JobError) -> Job {
        guard fields.type.isPresent else { throw JobError("Field 'type' is required.") }
        guard let typeName = fields.type.value else { throw JobError("Field 'type' must be a string.") }
        guard let type = JobType(rawValue: typeName) else {
            throw JobError("Unknown job type '\(typeName.prefix(64))'; expected one of \(JobType.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        let replyTo = try optional(\.replyTo, "replyTo")
        if let replyTo, replyTo.isEmpty || replyTo.utf8.count > 512 {
            throw JobError("Field 'replyTo' must be 1 to 512 bytes.")
        }
        let id = try optional(\.id, "id")
        if let id { try Self.checkID(id, "id") }
        if type.isMutation && id == nil && !(type == .renewAll && fields.dryRun.value == true) {
            throw JobError("Field 'id' is required on '\(type.rawValue)' jobs: it is the idempotency key.")
        }
        let operation = try operation(for: type)
        let storesResult = type.isMutation && id != nil
        return Job(id: id, type: type, replyTo: replyTo, userId: type == .renewAll ? nil : fields.userId.value,
                   command: Command(jobId: storesResult ? id : nil, operation: operation))
    }

    private func operation(for type: JobType) throws(JobError) -> LedgerOperation {
        switch type {
        case .open:
            return .open(userId: try userId())
        case .charge:
            let (userId, operation, metadata) = (try userId(), try required(\.operation, "operation"), try metadata())
            guard Self.isName(operation) else { return Self.unknownOperation }
            return .charge(userId: userId, operation: operation, metadata: metadata)
        case .debit, .credit:
            let (userId, operationType, metadata) = (try userId(), try name(\.operationType, "operationType"), try metadata())
            let expiry = type == .credit ? try grantExpiry() : nil
            guard let amount = try amount() else { return Self.amountOutOfRange }
            if case .refused(let refusal)? = expiry { return .refusal(refusal) }
            guard type == .credit else {
                return .debit(userId: userId, operationType: operationType, amount: amount, metadata: metadata)
            }
            if case .expiry(let e)? = expiry {
                return .credit(userId: userId, operationType: operationType, amount: amount, metadata: metadata, expiry: e)
            }
            return .credit(userId: userId, operationType: operationType, amount: amount, metadata: metadata)
        case .refund:
            let refundOf = try optional(\.refundOf, "refundOf")
            if let refundOf { try Self.checkID(refundOf, "refundOf") }
            let (userId, metadata) = (try userId(), try metadata())
            var amount: Int64?
            if fields.amount.isPresent || refundOf == nil {
                guard let exact = try self.amount() else { return Self.amountOutOfRange }
                amount = exact
            }
            return .refund(userId: userId, refundOf: refundOf, amount: amount, metadata: metadata)
        case .purchase:
            let paymentId = try required(\.paymentId, "paymentId")
            guard (1...256).contains(paymentId.count), !Self.hasControlCharacters(paymentId) else {
                throw JobError("Field 'paymentId' must be 1 to 256 characters without control characters.")
            }
            let (userId, tier) = (try userId(), try required(\.tier, "tier"))
            let (months, metadata) = (try optionalInt(\.months, "months") ?? 1, try metadata())
            guard Self.isName(tier) else { return Self.unknownTier }
            switch try seconds(\.allocationExpiresIn, "allocationExpiresIn") {
            case nil:
                return .purchase(userId: userId, tier: tier, paymentId: paymentId, months: months, metadata: metadata)
            case .exact(let s)?:
                return .purchase(userId: userId, tier: tier, paymentId: paymentId, months: months, metadata: metadata,
                                 allocationExpiresIn: s)
            case .outOfRange?:
                return Self.expiryOutOfRange
            }
        case .renew:
            return .renew(userId: try userId())
        case .renewAll:
            let tier = try optional(\.tier, "tier")
            let (dryRun, limit) = (try optionalBool(\.dryRun, "dryRun") ?? false, try optionalInt(\.limit, "limit"))
            let continueOnError = try optionalBool(\.continueOnError, "continueOnError") ?? true
            if let tier, !Self.isName(tier) { return Self.unknownTier }
            return .renewAll(dryRun: dryRun, tier: tier, limit: limit, continueOnError: continueOnError)
        case .balance:
            return .balance(userId: try userId())
        case .canAfford:
            let (userId, operation) = (try userId(), try required(\.operation, "operation"))
            guard Self.isName(operation) else { return Self.unknownOperation }
            return .canAfford(userId: userId, operation: operation)
        case .history:
            let operationType = fields.operationType.isPresent ? try name(\.operationType, "operationType") : nil
            return .history(userId: try userId(), limit: try optionalInt(\.limit, "limit") ?? 20,
                            offset: try optionalInt(\.offset, "offset") ?? 0, operationType: operationType,
                            startDate: try optionalDate(\.startDate, "startDate"),
                            endDate: try optionalDate(\.endDate, "endDate"))
        case .statistics:
            guard let start = try optionalDate(\.startDate, "startDate") else { throw JobError("Field 'startDate' is required.") }
            guard let end = try optionalDate(\.endDate, "endDate") else { throw JobError("Field 'endDate' is required.") }
            return .statistics(userId: try userId(), startDate: start, endDate: end)
        case .eligibility:
            return .eligibility(userId: try userId())
        case .hold, .capture, .release, .holds, .monitor, .unmonitor:
            return try creditOperation(for: type)
        case .setTier:
            let (userId, tier) = (try userId(), try required(\.tier, "tier"))
            let expiry: SubscriptionExpiryChange
            if let date = try optionalDate(\.subscriptionExpiresAt, "subscriptionExpiresAt") {
                expiry = .at(date)
            } else {
                expiry = fields.subscriptionExpiresAtIsNull ? .cleared : .unchanged
            }
            guard Self.isName(tier) else { return Self.unknownTier }
            return .setTier(userId: userId, tier: tier, subscriptionExpiry: expiry)
        case .balanceAt:
            guard let at = try optionalDate(\.at, "at") else { throw JobError("Field 'at' is required.") }
            return .balanceAt(userId: try userId(), at: at)
        }
    }

    // MARK: Reservations, grants, monitors (issue 13)

    private enum ExpiryField {
        case expiry(GrantExpiry)
        case refused(Refusal)
    }

    private static let expiryOutOfRange = LedgerOperation.refusal(Refusal(
        code: .invalidExpiry, message: "The expiry in seconds does not fit in 64 bits."))

    /// `expiresAt` (ISO time) or `expiresIn` (seconds) of a credit; both is a shape error.
    private func grantExpiry() throws(JobError) -> ExpiryField? {
        if fields.expiresAt.isPresent && fields.expiresIn.isPresent {
            throw JobError("Fields 'expiresAt' and 'expiresIn' exclude each other.")
        }
        if let date = try optionalDate(\.expiresAt, "expiresAt") { return .expiry(.at(date)) }
        switch try seconds(\.expiresIn, "expiresIn") {
        case nil: return nil
        case .exact(let s)?: return .expiry(.afterSeconds(s))
        case .outOfRange?: return .refused(Refusal(code: .invalidExpiry, message: "expiresIn does not fit in 64 bits."))
        }
    }

    private func seconds(_ key: KeyPath<RawJob, RawJob.Field<RawJob.Amount>>, _ name: String) throws(JobError) -> RawJob.Amount? {
        let field = fields[keyPath: key]
        if field.wrongType { throw JobError("Field '\(name)' must be an integer.") }
        return field.value
    }

    private func holdId() throws(JobError) -> String {
        let id = try required(\.holdId, "holdId")
        try Self.checkID(id, "holdId")
        return id
    }

    private func creditOperation(for type: JobType) throws(JobError) -> LedgerOperation {
        switch type {
        case .hold:
            let (userId, metadata) = (try userId(), try metadata())
            let hasAmount = fields.amount.isPresent, hasOperation = fields.operation.isPresent
            guard hasAmount != hasOperation else {
                throw JobError("A hold needs exactly one of the fields 'amount' and 'operation'.")
            }
            let operation = hasOperation ? try required(\.operation, "operation") : nil
            if let operation, !Self.isName(operation) { return Self.unknownOperation }
            var amount: Int64? = nil
            if hasAmount {
                guard let exact = try self.amount() else { return Self.amountOutOfRange }
                amount = exact
            }
            let expiresIn: Int64?
            switch try seconds(\.expiresIn, "expiresIn") {
            case nil: expiresIn = nil
            case .exact(let s)?: expiresIn = s
            case .outOfRange?: return Self.expiryOutOfRange
            }
            return .hold(userId: userId, amount: amount, operation: operation, expiresIn: expiresIn, metadata: metadata)
        case .capture:
            let (userId, holdId, metadata) = (try userId(), try holdId(), try metadata())
            let operationType = fields.operationType.isPresent ? try name(\.operationType, "operationType") : nil
            var amount: Int64? = nil
            if fields.amount.isPresent {
                guard let exact = try self.amount() else { return Self.amountOutOfRange }
                amount = exact
            }
            return .capture(userId: userId, holdId: holdId, amount: amount, operationType: operationType, metadata: metadata)
        case .release:
            return .release(userId: try userId(), holdId: try holdId())
        case .holds:
            return .holds(userId: try userId())
        case .monitor:
            let userId = try userId()
            let monitorId = try optional(\.monitorId, "monitorId")
            if let monitorId { try Self.checkID(monitorId, "monitorId") }
            guard fields.threshold.isPresent else { throw JobError("Field 'threshold' is required.") }
            switch try seconds(\.threshold, "threshold") {
            case .exact(let t)?:
                return .monitor(userId: userId, monitorId: monitorId, threshold: t)
            default:
                return .refusal(Refusal(code: .invalidThreshold, message: "The threshold does not fit in 64 bits."))
            }
        case .unmonitor:
            let userId = try userId()
            let monitorId = try required(\.monitorId, "monitorId")
            try Self.checkID(monitorId, "monitorId")
            return .unmonitor(userId: userId, monitorId: monitorId)
        default:
            throw JobError("Job type '\(type.rawValue)' is not a reservation, grant or monitor job.")
        }
    }

    // MARK: Field readers: each names its field in the error.

    private func optional(_ key: KeyPath<RawJob, RawJob.Field<String>>, _ name: String) throws(JobError) -> String? {
        let field = fields[keyPath: key]
        if field.wrongType { throw JobError("Field '\(name)' must be a string.") }
        return field.value
    }

    private func required(_ key: KeyPath<RawJob, RawJob.Field<String>>, _ name: String) throws(JobError) -> String {
        guard let value = try optional(key, name) else { throw JobError("Field '\(name)' is required.") }
        return value
    }

    private func userId() throws(JobError) -> String {
        let value = try required(\.userId, "userId")
        guard (1...128).contains(value.unicodeScalars.count), !Self.hasControlCharacters(value) else {
            throw JobError("Field 'userId' must be 1 to 128 characters without control characters.")
        }
        return value
    }

    /// A free-form name (`operationType`): 1 to 64 characters, no control characters, else the job
    /// is malformed. It names nothing configured, so no value of it can be "unknown".
    private func name(_ key: KeyPath<RawJob, RawJob.Field<String>>, _ name: String) throws(JobError) -> String {
        let value = try required(key, name)
        guard Self.isName(value) else {
            throw JobError("Field '\(name)' must be 1 to 64 characters without control characters.")
        }
        return value
    }

    /// Whether `value` can be a configured name (1 to 64 characters, no control characters).
    ///
    /// `operation` and `tier` are looked up in the configuration: a string that cannot be a
    /// configured name is simply not one, so it is refused like any unknown name (a refusal stored
    /// under the job id, answered again on replay), not dead-lettered. Only a wrong JSON type or a
    /// missing field makes those jobs malformed.
    static func isName(_ value: String) -> Bool {
        (1...64).contains(value.unicodeScalars.count) && !hasControlCharacters(value)
    }

    // The refusals do not quote the name: it may be 64 KiB long or hold control characters.
    private static let unknownOperation = LedgerOperation.refusal(Refusal(
        code: .unknownOperation,
        message: "The operation has no configured cost: names are 1 to 64 characters without control characters."))
    private static let unknownTier = LedgerOperation.refusal(Refusal(
        code: .unknownTier,
        message: "The tier does not exist: names are 1 to 64 characters without control characters."))

    /// The amount, or nil when it is an integer beyond 64 bits: well-formed, but a refused value.
    private func amount() throws(JobError) -> Int64? {
        if fields.amount.wrongType { throw JobError("Field 'amount' must be an integer.") }
        switch fields.amount.value {
        case nil: throw JobError("Field 'amount' is required.")
        case .exact(let n)?: return n
        case .outOfRange?: return nil
        }
    }

    private static let amountOutOfRange = LedgerOperation.refusal(Refusal(
        code: .invalidAmount, message: "The amount does not fit in 64 bits."))

    private func optionalInt(_ key: KeyPath<RawJob, RawJob.Field<Int>>, _ name: String) throws(JobError) -> Int? {
        let field = fields[keyPath: key]
        if field.wrongType { throw JobError("Field '\(name)' must be an integer.") }
        return field.value
    }

    private func optionalBool(_ key: KeyPath<RawJob, RawJob.Field<Bool>>, _ name: String) throws(JobError) -> Bool? {
        let field = fields[keyPath: key]
        if field.wrongType { throw JobError("Field '\(name)' must be true or false.") }
        return field.value
    }

    private func optionalDate(_ key: KeyPath<RawJob, RawJob.Field<String>>, _ name: String) throws(JobError) -> Date? {
        guard let text = try optional(key, name) else { return nil }
        guard let date = LedgerTime.parse(text) else {
            throw JobError("Field '\(name)' must be an ISO 8601 date such as 2026-11-24T02:00:00.000Z.")
        }
        return date
    }

    private func metadata() throws(JobError) -> String? {
        let field = fields.metadata
        if field.wrongType { throw JobError("Field 'metadata' must be a JSON object.") }
        if let value = field.value, value.utf8.count > Job.maxMetadataBytes {
            throw JobError("Field 'metadata' is \(value.utf8.count) bytes serialized; at most \(Job.maxMetadataBytes) are accepted.")
        }
        return field.value
    }

    /// The contract's id rule: 1 to 128 characters, each an ASCII letter or digit or one of
    /// `.` `_` `:` `-`. `_` matters: payment providers' ids (`pi_3Nf...`) are used as job ids as
    /// they are, and refusing them turned a purchase into a dead letter.
    static func checkID(_ id: String, _ name: String) throws(JobError) {
        let ok = (1...128).contains(id.utf8.count) && id.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: ":") || b == UInt8(ascii: "-")
        }
        guard ok else { throw JobError("Field '\(name)' must be 1 to 128 characters of A-Z a-z 0-9 . _ : -") }
    }

    /// Unicode's control characters (category Cc): U+0000-U+001F and U+007F-U+009F.
    static func hasControlCharacters(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
    }
}
