import LedgerModel

/// The refusals several operations share, with their messages.
extension Refusal {
    static func userNotFound(_ userId: String) -> Refusal {
        Refusal(code: .userNotFound, message: "No account exists for user \(userId).")
    }

    static func insufficient(balance: Int64, available: Int64, required: Int64) -> Refusal {
        Refusal(
            code: .insufficientTokens,
            message: available == balance
                ? "The balance of \(balance) tokens does not cover the \(required) tokens required."
                : "The \(available) tokens available (balance \(balance), less \(balance - available) held) do not cover the \(required) tokens required.",
            details: [.init("balance", .int(balance)), .init("available", .int(available)), .init("required", .int(required)),
                      .init("deficit", .int(required - available))])
    }

    static func overflow(_ what: String) -> Refusal {
        Refusal(code: .invalidAmount, message: "The \(what) would overflow a 64-bit integer.")
    }
}
