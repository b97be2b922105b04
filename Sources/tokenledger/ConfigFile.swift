import Foundation
import Ledger

/// The optional JSON config file (`--config` or `TOKENLEDGER_CONFIG`). Every key is optional;
/// deploy/tokenledger.example.json lists them all with their defaults.
struct ConfigFile: Decodable {
    var redisUrl: String?
    var redisUsername: String?
    var redisPasswordFile: String?
    var database: String?
    var prefix: String?
    var partitionCount: Int?
    var partitions: String?
    /// `single` (default: every partition publishes on `P:balance`) or `sharded` (partition `k`
    /// publishes with `SPUBLISH` on `P:{k}:balance`); needs a partition count of 2 or more.
    var invalidationChannels: String?
    var http: String?
    /// A file holding the console's token (the console is off without one).
    var consoleTokenFile: String?
    var workerId: String?
    var batchSize: Int?
    var replyExpirySeconds: Int?
    var leaseSeconds: Double?
    var maxAttempts: Int?
    var logLevel: String?
    var synchronous: SynchronousMode?
    var walAutoCheckpointPages: Int?
    var cacheMebibytes: Int?
    /// The merge of the in-memory tail (LedgerConfig): where it starts, a slice's rows, the
    /// longest pause between two batches.
    var mergeThresholdRows: Int?
    var mergeSliceRows: Int?
    var mergePauseMilliseconds: Int?
    var busyTimeoutMilliseconds: Int?
    var renewal: Renewal?
    var costs: [String: Int64]?
    var tiers: [String: TierConfig]?
    /// The events stream and alerts (issue 13).
    var events: Events?
    /// The threshold of the monitor every account has under the id `default` (none by default).
    var defaultMonitorThreshold: Int64?
    /// How often (seconds) the worker sweeps: writes the hold expiries and grant lapses no job touched.
    var settleIntervalSeconds: Double?
    /// Accounts one sweep transaction writes (default 1000).
    var settleBatchSize: Int?
    /// How long (ms) one sweep transaction may write before waiting jobs go in (default 5).
    var settleChunkMilliseconds: Int?
    /// How long (s) `P:applied` keeps an acknowledged job for `restore` (default 900).
    var recoveryWindowSeconds: Int?

    struct Events: Decodable {
        /// Write `P:events` (default true); alerts go to `P:alerts` either way.
        var enabled: Bool?
        /// `XADD ... MAXLEN ~` (default 100000).
        var maxLength: Int?
    }

    struct Renewal: Decodable {
        var cron: String?
        var timeZone: String?
        var policy: RenewalPolicy?
        var batchSize: Int?
        /// Under `rollover`: the most tokens carried (all tiers; `tiers.<Tier>.rolloverMax` wins).
        var rolloverMax: Int64?
        /// Under `rollover`: periods a carried grant lives (0: never lapses; default 1).
        var rolloverMonths: Int?
        /// The most accounts one `renewAll` job renews (default 1000).
        var renewAllMaxAccounts: Int?
    }

    /// Reads and decodes the file; the error names the file and the offending field.
    static func load(path: String) throws -> ConfigFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw SettingsError("cannot read config file \(path): \(error.localizedDescription)")
        }
        do {
            return try JSONDecoder().decode(ConfigFile.self, from: data)
        } catch let error as DecodingError {
            throw SettingsError("config file \(path): \(Self.describe(error))")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "the file" : "field '\(p)'"
        }
        switch error {
        case .typeMismatch(let type, let c): return "\(path(c)) must be of type \(type)"
        case .valueNotFound(let type, let c): return "\(path(c)) must be a \(type), not null"
        case .keyNotFound(let key, let c): return "\(path(c)) needs the key '\(key.stringValue)'"
        case .dataCorrupted(let c): return "\(path(c)) is invalid: \(c.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

/// A setting that cannot be used; the message names it.
struct SettingsError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
