/// One account a renewal run could not renew, and why.
public struct RenewalFailure: Sendable, Equatable {
    public var userId: String
    public var code: RefusalCode
    public var message: String
    public init(userId: String, code: RefusalCode, message: String) {
        self.userId = userId
        self.code = code
        self.message = message
    }
}

/// One account a renewal run renewed (or, in a dry run, would renew).
public struct RenewalOutcome: Sendable, Equatable {
    public var userId: String
    /// The tier after the renewal (after a downgrade of an expired subscription).
    public var tier: String
    public var tokensAdded: Int64
    public var newBalance: Int64
    /// Under `rollover`: what the ended period's grant carried into this one, and what of it
    /// lapsed above the cap.
    public var tokensCarried: Int64
    public var tokensLapsed: Int64
    public init(userId: String, tier: String, tokensAdded: Int64, newBalance: Int64, tokensCarried: Int64 = 0, tokensLapsed: Int64 = 0) {
        self.userId = userId
        self.tier = tier
        self.tokensAdded = tokensAdded
        self.newBalance = newBalance
        self.tokensCarried = tokensCarried
        self.tokensLapsed = tokensLapsed
    }
}
