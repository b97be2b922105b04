import LedgerModel

/// What one `Ledger.sweepDue` call did: the accounts whose hold expiries and grant lapses fell
/// due were written (as entries and state changes), and what to send after the commit.
public struct SweepSummary: Sendable, Equatable {
    /// Accounts swept in this call; the worker calls again while it equals the limit.
    public var accounts: Int = 0
    /// The call stopped at its time budget with due accounts left: call again.
    public var more = false
    public var holdsExpired: Int = 0
    public var grantsLapsed: Int = 0
    /// Tokens written off by `expiry` entries.
    public var tokensLapsed: Int64 = 0
    /// The invalidations to publish, in commit order.
    public var changes: [BalanceChange] = []
    /// `hold.expired`, `grant.expired` and `balance.low` events, in commit order.
    public var events: [LedgerEvent] = []
    /// The last row of `pending_sends` written for these changes and events.
    public var pendingSeq: Int64?

    public init() {}
}
