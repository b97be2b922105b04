/// One broken invariant found by `Ledger.verify`.
///
/// `code` is stable (for scripts and alerts); `message` is a sentence for people.
public struct AuditViolation: Sendable, Equatable, CustomStringConvertible {
    public let code: String
    public let userId: String?
    public let entryId: Int64?
    public let message: String

    public init(code: String, userId: String? = nil, entryId: Int64? = nil, message: String) {
        self.code = code
        self.userId = userId
        self.entryId = entryId
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// The stable codes.
    public enum Code {
        /// SQLite's own `quick_check` found a damaged file.
        public static let integrity = "integrity_check"
        /// The append-only triggers were dropped.
        public static let triggersMissing = "triggers_missing"
        /// An entry's hash does not follow from the previous hash and its fields (edited, deleted
        /// before it, or reordered).
        public static let hashMismatch = "hash_mismatch"
        /// Entry ids are not dense: entries were deleted.
        public static let entryGap = "entry_gap"
        /// An entry refers to no account.
        public static let orphanEntry = "orphan_entry"
        /// An entry's balanceBefore is not its account's previous balanceAfter.
        public static let chainBroken = "balance_chain_broken"
        /// balanceAfter != balanceBefore + amount, or the amount's sign contradicts its kind.
        public static let entryArithmetic = "entry_arithmetic"
        public static let negativeBalance = "negative_balance"
        /// An account's balance differs from the sum of its entries.
        public static let balanceMismatch = "balance_mismatch"
        /// An account's tokensSpent differs from its charges and debits less its refunds.
        public static let spentMismatch = "spent_mismatch"
        /// An entry's recorded spent total (`spent_after`, what `balanceAt` answers) differs from
        /// its account's charges and debits less refunds up to it.
        public static let spentAfterMismatch = "spent_after_mismatch"
        /// Under `rollover`: a carried grant without the period grant it came from, or a period
        /// grant whose recorded carry has no carried grant (or more than one).
        public static let carryOrphan = "carry_orphan"
        /// An account's entry count or last entry differs from its entries.
        public static let accountBookkeeping = "account_bookkeeping"
        /// The refunds of a charge exceed it.
        public static let refundExceedsCharge = "refund_exceeds_charge"
        /// A refund names an entry that is not a charge or debit of the same account.
        public static let refundOrphan = "refund_orphan"
        /// The refunded-totals table disagrees with the refund entries.
        public static let refundedTotal = "refunded_total_mismatch"
        /// A sum overflowed 64 bits.
        public static let overflow = "overflow"
        /// `entry_index` does not hold exactly the merged entries.
        public static let indexIncomplete = "index_incomplete"
        // Reservations and grants (issue 13).
        /// An account's `held` differs from the sum of its open holds.
        public static let heldMismatch = "held_mismatch"
        /// An account's `granted` differs from its live grants' remaining tokens.
        public static let grantedMismatch = "granted_mismatch"
        /// The grants' remaining tokens plus the held tokens exceed the balance.
        public static let reservedBeyondBalance = "reserved_beyond_balance"
        /// An account's next due time differs from its holds' and grants' expiries.
        public static let nextDueMismatch = "next_due_mismatch"
        public static let monitorCount = "monitor_count_mismatch"
        /// A grant lapsed twice, or its expiry entries disagree with what it records as lapsed.
        public static let lapseTwice = "lapse_mismatch"
        /// An expiry entry names no grant of its account.
        public static let lapseOrphan = "lapse_orphan"
        /// A hold closed twice, or its state, capture entry or grant portions disagree.
        public static let holdInconsistent = "hold_inconsistent"
        // Idempotency.
        /// A job id has more than one entry, or more than one stored result: it took effect twice.
        public static let jobAppliedTwice = "job_applied_twice"
        /// A stored result names an entry that is missing or carries another job id.
        public static let jobEntryMismatch = "job_entry_mismatch"
        /// An entry carries a job id under which no result is stored: a replay of the job would
        /// not find it and would take effect again.
        public static let jobResultMissing = "job_result_missing"
        /// `jobs` and `job_log` disagree: a merged row differs from its log row, or a log row at or
        /// below the merge watermark has no merged row.
        public static let jobStoreMismatch = "job_store_mismatch"
    }
}
