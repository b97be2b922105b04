import GRDB
import LedgerModel

/// What executing one command produced, and how to store it under its job id.
struct Executed {
    var result: CommandResult
    var entryId: Int64? = nil
    var accountId: Int64? = nil
    /// The outcome is exactly the `.entry` of `entryId` (`LedgerTransaction.entryOutcome`):
    /// store only the entry id.
    var derived = false
    /// False when the answer belongs to another job (a purchase replayed under a new job id).
    var store = true

    static func refused(_ e: Refusal) -> Executed { Executed(result: .refusal(e)) }
}

/// Idempotency: stored results under job ids.
extension LedgerTransaction {
    struct StoredJob {
        var entryId: Int64?
        var accountId: Int64?
        var result: StoredResult?
    }

    /// Performs one command: a job id already stored answers its stored result (also when it
    /// was stored earlier in this same transaction); otherwise the command runs and its result,
    /// a refusal too, is stored under its job id.
    func perform(_ command: Command) throws -> CommandResult {
        try finishCommand(performOnce(command))
    }

    private func performOnce(_ command: Command) throws -> CommandResult {
        if let jobId = command.jobId, let stored = try storedJob(jobId) {
            return try replay(stored)
        }
        let executed = try execute(command.operation, jobId: command.jobId)
        if let jobId = command.jobId, executed.store, writable {
            try appendJob(jobId, entryId: executed.entryId, accountId: executed.derived ? nil : executed.accountId,
                          result: executed.derived ? nil : executed.result.outcome.stored)
        }
        return executed.result
    }

    /// The stored result of `jobId`: in the unmerged tail (this batch's results included), or
    /// in the merged index `jobs` (a job being merged may be in both; they hold the same row).
    /// An id the tail's filter has never seen skips both (nearly every new job; see `JobIdFilter`).
    func storedJob(_ jobId: String) throws -> StoredJob? {
        guard tail.mayHaveStored(jobId) else { return nil }
        if let job = tail.jobs[IdentityKey(jobId)] {
            return StoredJob(entryId: job.entryId, accountId: job.accountId, result: job.result)
        }
        let q = hot.jobById
        q.reset()
        try q.bind(1, jobId)
        defer { q.reset() }
        guard try q.step() else {
            tail.filterFalsePositives += 1
            return nil
        }
        return StoredJob(entryId: q.optionalInt64(0), accountId: q.optionalInt64(1), result: q.storedResult(2))
    }

    /// The first result of a stored job, marked duplicate, with its changes repeated carrying
    /// the account's current state (a crash between commit and publish must not lose an
    /// invalidation; repeating one is harmless). Its `own` change is the job's own entry as it
    /// was written (`balanceAfter`), so a `job.applied` sent again says what the job did, not
    /// what the account holds now.
    func replay(_ stored: StoredJob) throws -> CommandResult {
        var outcome: Outcome? = try stored.result.map(Outcome.init(stored:))
        var changes: [BalanceChange] = []
        var own: BalanceChange? = nil
        if let entryId = stored.entryId, let e = try entry(entryId) {
            if outcome == nil { outcome = .entry(EntryWritten(newBalance: e.balanceAfter, ledgerEntryId: entryId, tokensAmount: e.amount)) }
            if let a = try account(id: e.accountId) {
                let current = change(a, entryId: entryId, operationType: e.operationType, amount: e.amount, atMs: e.createdMs)
                changes.append(current)
                var written = current
                written.tokensBalance = e.balanceAfter
                written.available = e.balanceAfter - current.held
                own = written
            }
        } else if let accountId = stored.accountId, let a = try account(id: accountId) {
            changes.append(change(a, entryId: nil, operationType: nil, amount: nil, atMs: entryTimeMs))
        }
        // A row naming a missing entry and no result (never written so) answers as before: empty.
        var result = CommandResult(outcome ?? .legacy(LegacyResult(json: "", refusalCode: RefusalCode(""))), duplicate: true,
                                   changes: changes)
        result.own = own
        return result
    }

    /// The outcome of a plain balance change just appended: derived from its entry alone, so
    /// that only the entry id need be stored.
    func entryOutcome(_ a: AccountRecord, entryId: Int64, operationType: String, amount: Int64) -> Executed {
        let c = change(a, entryId: entryId, operationType: operationType, amount: amount, atMs: entryTimeMs)
        return Executed(result: CommandResult(.entry(EntryWritten(newBalance: a.balance, ledgerEntryId: entryId, tokensAmount: amount)),
                                              changes: [c]),
                        entryId: entryId, accountId: a.id, derived: true)
    }

    /// Runs one command (no idempotency here; see `apply`).
    func execute(_ op: LedgerOperation, jobId: String?) throws -> Executed {
        switch op {
        case .open(let userId):
            return try open(userId, jobId: jobId)
        case let .charge(userId, operation, metadata):
            guard let cost = config.cost(of: operation) else {
                return .refused(Refusal(code: .unknownOperation,
                                            message: "The operation \(operation) has no configured cost."))
            }
            return try spend(userId, kind: .charge, operationType: operation, amount: cost, jobId: jobId, metadata: metadata)
        case let .debit(userId, operationType, amount, metadata):
            if let e = Self.reserved(operationType) { return .refused(e) }
            if let e = Self.checkAmount(amount) { return .refused(e) }
            return try spend(userId, kind: .debit, operationType: operationType, amount: amount, jobId: jobId, metadata: metadata)
        case let .credit(userId, operationType, amount, metadata, expiry):
            if let e = Self.reserved(operationType) { return .refused(e) }
            if let e = Self.checkAmount(amount) { return .refused(e) }
            if let expiry {
                return try creditExpiring(userId, operationType: operationType, amount: amount, expiry: expiry, jobId: jobId, metadata: metadata)
            }
            return try credit(userId, operationType: operationType, amount: amount, jobId: jobId, metadata: metadata)
        case let .refund(userId, refundOf, amount, metadata):
            return try refund(userId, refundOf: refundOf, amount: amount, jobId: jobId, metadata: metadata)
        case let .purchase(userId, tier, paymentId, months, metadata, allocationExpiresIn):
            return try purchase(userId, tier: tier, paymentId: paymentId, months: months, jobId: jobId, metadata: metadata,
                                allocationExpiresIn: allocationExpiresIn)
        case .renew(let userId):
            return try renew(userId, jobId: jobId)
        case let .renewAll(dryRun, tier, limit, continueOnError):
            return try renewAll(dryRun: dryRun, tier: tier, limit: limit, continueOnError: continueOnError)
        case .balance(let userId):
            return try balance(userId)
        case let .canAfford(userId, operation):
            return try canAfford(userId, operation: operation)
        case let .history(userId, limit, offset, operationType, startDate, endDate):
            return try history(userId, limit: limit, offset: offset, operationType: operationType,
                               startMs: startDate.map(LedgerTime.milliseconds), endMs: endDate.map(LedgerTime.milliseconds))
        case let .statistics(userId, startDate, endDate):
            return try statistics(userId, startMs: LedgerTime.milliseconds(startDate), endMs: LedgerTime.milliseconds(endDate))
        case .eligibility(let userId):
            return try eligibility(userId)
        case let .hold(userId, amount, operation, expiresIn, metadata):
            return try hold(userId, amount: amount, operation: operation, expiresIn: expiresIn, jobId: jobId, metadata: metadata)
        case let .capture(userId, holdId, amount, operationType, metadata):
            return try capture(userId, holdId: holdId, amount: amount, operationType: operationType, jobId: jobId, metadata: metadata)
        case let .release(userId, holdId):
            return try release(userId, holdId: holdId)
        case .holds(let userId):
            return try holds(userId)
        case let .monitor(userId, monitorId, threshold):
            return try monitor(userId, monitorId: monitorId ?? jobId ?? "", threshold: threshold)
        case let .unmonitor(userId, monitorId):
            return try unmonitor(userId, monitorId: monitorId)
        case let .setTier(userId, tier, expiry):
            return try setTier(userId, tier: tier, subscriptionExpiry: expiry)
        case let .balanceAt(userId, at):
            return try balanceAt(userId, atMs: LedgerTime.milliseconds(at))
        case .refusal(let error):
            return .refused(error)
        }
    }

    /// `expiry` is the ledger's own operationType: no producer job may name it.
    static func reserved(_ operationType: String?) -> Refusal? {
        operationType.map(expiryOperationType.hasSameBytes) ?? false
            ? Refusal(code: .reservedOperationType, message: "The operationType expiry is reserved for lapsed grants.")
            : nil
    }

    static func checkAmount(_ amount: Int64) -> Refusal? {
        amount >= 1 ? nil : Refusal(code: .invalidAmount, message: "The amount must be an integer of at least 1; it is \(amount).")
    }
}
