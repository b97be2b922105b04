extension LedgerOperation {
    /// The user the command is about; nil for `renewAll` and a refusal decided before typing.
    public var userId: String? {
        switch self {
        case .open(let u), .renew(let u), .balance(let u), .eligibility(let u), .holds(let u): return u
        case .charge(let u, _, _), .debit(let u, _, _, _), .credit(let u, _, _, _, _), .refund(let u, _, _, _): return u
        case .purchase(let u, _, _, _, _, _), .canAfford(let u, _), .history(let u, _, _, _, _, _), .statistics(let u, _, _): return u
        case .hold(let u, _, _, _, _), .capture(let u, _, _, _, _), .release(let u, _), .monitor(let u, _, _), .unmonitor(let u, _): return u
        case .setTier(let u, _, _), .balanceAt(let u, _): return u
        case .renewAll, .refusal: return nil
        }
    }
}
