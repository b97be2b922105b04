import Foundation
import Ledger

/// One partition as the console sees it: its Redis keys and its ledger file.
public struct ConsolePartition: Sendable {
    public let index: Int
    public let jobsKey: String
    public let deadKey: String
    public let leaseKey: String
    /// The set naming the processing lists that may hold taken jobs.
    public let processingListsKey: String
    /// A processing list's key is this prefix and the list's name.
    public let processingKeyPrefix: String
    public let ledgerPath: String

    public init(index: Int, jobsKey: String, deadKey: String, leaseKey: String, processingListsKey: String,
                processingKeyPrefix: String, ledgerPath: String) {
        self.index = index
        self.jobsKey = jobsKey
        self.deadKey = deadKey
        self.leaseKey = leaseKey
        self.processingListsKey = processingListsKey
        self.processingKeyPrefix = processingKeyPrefix
        self.ledgerPath = ledgerPath
    }
}

/// What turns the console on. Without a token there is no console: the routes answer 404 as for
/// any unknown path, so an operator endpoint exposed by mistake shows nothing but metrics.
public struct ConsoleSettings: Sendable {
    /// The bearer token, as bytes (compared in constant time, never as a `String`).
    public let token: [UInt8]
    public let partitions: [ConsolePartition]
    public let ledgerConfig: LedgerConfig
    /// The partition a user id lives in.
    public let partitionOf: @Sendable (String) -> Int

    /// Shorter tokens are refused: the console can requeue jobs, and a token is its only lock.
    public static let minimumTokenBytes = 16

    public init(token: [UInt8], partitions: [ConsolePartition], ledgerConfig: LedgerConfig,
                partitionOf: @escaping @Sendable (String) -> Int) throws {
        guard token.count >= Self.minimumTokenBytes else { throw ConsoleSettingsError.tokenTooShort }
        guard !partitions.isEmpty else { throw ConsoleSettingsError.noPartition }
        self.token = token
        self.partitions = partitions
        self.ledgerConfig = ledgerConfig
        self.partitionOf = partitionOf
    }
}

/// Why a console setting cannot be used.
public struct ConsoleSettingsError: Error, Sendable, Equatable, RawRepresentable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let tokenTooShort = ConsoleSettingsError(rawValue: "console_token_too_short")
    public static let noPartition = ConsoleSettingsError(rawValue: "console_no_partition")
    public var description: String {
        switch self {
        case .tokenTooShort: return "the console token must be at least \(ConsoleSettings.minimumTokenBytes) bytes"
        case .noPartition: return "the console needs at least one served partition"
        default: return rawValue
        }
    }
}

/// Comparisons of secrets whose time does not depend on where they differ.
public enum ConstantTime {
    /// True when both byte strings are equal. Every byte of the longer one is looked at, and
    /// the result is folded without early exit, so timing tells an attacker only the length.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        let n = max(a.count, b.count)
        for i in 0..<n {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            difference |= x ^ y
        }
        return difference == 0 && a.count == b.count
    }
}
