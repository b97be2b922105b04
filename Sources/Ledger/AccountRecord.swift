import LedgerModel


/// An account as the writer holds it during one transaction.
///
/// A batch loads each account it touches once and writes it back once, at the end (or before a
/// statement that reads accounts by SQL, such as the renewAll selection): many jobs of one user
/// in a batch cost one row write. It is a class so that the batch's two maps (by user id, by
/// rowid) share one copy.
final class AccountRecord {
    let id: Int64
    let userId: String
    var tier: String
    var balance: Int64
    var spent: Int64
    /// Start of the renewal clock; periods count from it (see `CalendarMonth`).
    var anchorMs: Int64
    /// Whole periods from the anchor to `lastRenewalMs`.
    var periods: Int64
    var lastRenewalMs: Int64
    var nextRenewalMs: Int64
    var expiresMs: Int64?
    let createdMs: Int64
    var entryCount: Int64
    var lastEntryId: Int64?

    /// Balance, spending or entry bookkeeping changed: the narrow UPDATE.
    var dirtyBalance = false
    /// Tier, subscription or renewal clock changed: the full UPDATE (touches the due index).
    var dirtyRenewal = false
    /// The stored row is behind this copy by balance-only changes (entries after its
    /// `last_entry_id`): it is written by the merge, not by the batch (see `LedgerTail`).
    var lagging = false

    // -- extras (issue 13): see `Schema+Extras` --
    /// The sum of the open holds.
    var held: Int64 = 0
    /// The free tokens of live grants (not spent, held or lapsed).
    var granted: Int64 = 0
    /// The soonest expiry among open holds and live grants; nil when there is none.
    var nextDueMs: Int64?
    /// How many monitors the account has.
    var monitors: Int64 = 0
    /// held, granted, nextDueMs or monitors changed: one more UPDATE, only for such accounts.
    var dirtyExtras = false
    /// `available` when the current command first changed the account (monitors compare it).
    var availableBefore: Int64?
    /// The last entry the current command wrote on the account.
    var entryInCommand: Int64?

    /// What can be spent or held: the balance less the open holds.
    var available: Int64 { balance - held }
    // -- end extras --

    static let columns = """
        id, user_id, tier, balance, spent, anchor_ms, periods, last_renewal_ms, next_renewal_ms,
        expires_ms, created_ms, entry_count, last_entry_id, held, granted, next_due_ms, monitors
        """

    /// From the current row of a statement selecting `columns`.
    init(_ q: RawStatement) {
        id = q.int64(0)
        userId = q.text(1)
        tier = q.text(2)
        balance = q.int64(3)
        spent = q.int64(4)
        anchorMs = q.int64(5)
        periods = q.int64(6)
        lastRenewalMs = q.int64(7)
        nextRenewalMs = q.int64(8)
        expiresMs = q.optionalInt64(9)
        createdMs = q.int64(10)
        entryCount = q.int64(11)
        lastEntryId = q.optionalInt64(12)
        held = q.int64(13)
        granted = q.int64(14)
        nextDueMs = q.optionalInt64(15)
        monitors = q.int64(16)
    }

    init(id: Int64, userId: String, tier: String, nowMs: Int64) {
        self.id = id
        self.userId = userId
        self.tier = tier
        balance = 0
        spent = 0
        anchorMs = nowMs
        periods = 0
        lastRenewalMs = nowMs
        nextRenewalMs = CalendarMonth.adding(months: 1, to: nowMs)
        expiresMs = nil
        createdMs = nowMs
        entryCount = 0
        lastEntryId = nil
    }

    /// Folds in an entry written after this row's `last_entry_id`, as the transaction that wrote
    /// it did (see `LedgerTransaction.appendEntry`, `spend`, `refund`).
    func foldIn(entryId: Int64, kind: Int64, amount: Int64, balanceAfter: Int64) {
        balance = balanceAfter
        entryCount += 1
        lastEntryId = entryId
        spent = Schema.Kind.spentAfter(kind: kind, amount: amount, spentBefore: spent)
    }

    /// Restarts the renewal clock at `nowMs` (open, purchase).
    func restartRenewalClock(at nowMs: Int64) {
        anchorMs = nowMs
        periods = 0
        lastRenewalMs = nowMs
        nextRenewalMs = CalendarMonth.adding(months: 1, to: nowMs)
        dirtyRenewal = true
    }
}
