import Foundation

/// One committed balance or tier change, published by the worker after the commit (the wire target writes its message).
///
/// It carries the whole account state, not a delta, so a repeated message is harmless.
public struct BalanceChange: Sendable, Equatable {
    public var userId: String
    public var tokensBalance: Int64
    public var tokensSpent: Int64
    public var tier: String
    /// Nil for a change without an entry (a tier change, a hold made or closed).
    public var ledgerEntryId: Int64?
    /// Nil for a change without an entry.
    public var operationType: String?
    /// Nil for a change without an entry.
    public var tokensAmount: Int64?
    public var at: Date
    /// The sum of the account's open holds, and `tokensBalance - held`.
    public var held: Int64
    public var available: Int64

    public init(userId: String, tokensBalance: Int64, tokensSpent: Int64, tier: String, ledgerEntryId: Int64?,
                operationType: String?, tokensAmount: Int64?, at: Date, held: Int64 = 0) {
        self.userId = userId
        self.tokensBalance = tokensBalance
        self.tokensSpent = tokensSpent
        self.tier = tier
        self.ledgerEntryId = ledgerEntryId
        self.operationType = operationType
        self.tokensAmount = tokensAmount
        self.at = at
        self.held = held
        self.available = tokensBalance - held
    }
}
