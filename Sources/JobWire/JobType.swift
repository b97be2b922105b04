/// The job types of the wire contract.
public enum JobType: String, Sendable, CaseIterable {
    case open, charge, debit, credit, refund, purchase, renew, renewAll
    case balance, canAfford, history, statistics, eligibility
    case hold, capture, release, holds, monitor, unmonitor
    case setTier, balanceAt

    /// Types that change balances need an `id` (the idempotency key) and have their result stored.
    public var isMutation: Bool {
        switch self {
        case .open, .charge, .debit, .credit, .refund, .purchase, .renew, .renewAll: return true
        case .hold, .capture, .release, .monitor, .unmonitor, .setTier: return true
        case .balance, .canAfford, .history, .statistics, .eligibility, .holds, .balanceAt: return false
        }
    }
}
