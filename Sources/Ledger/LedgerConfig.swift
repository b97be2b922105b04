/// Business settings and storage tuning of a ledger.
///
/// Every field has a default, and decoding tolerates missing keys, so a config file names only
/// what it changes. A map given in a file (`costs`, `tiers`) replaces the default map whole:
/// merging would make it impossible to remove an operation or a tier.
public struct LedgerConfig: Sendable, Codable, Equatable {
    /// Tokens debited by a `charge` of each operation. Default: `image_generation` 10,
    /// `chatgpt_message` 5. A charge of an operation not listed is `unknown_operation`.
    public var costs: [String: Int64]
    /// Tiers by name. `Gift` must exist: `open` and expired subscriptions fall back to it.
    /// Default: `Gift` 100 tokens a month (free), `Professional` 2000, `Business` 10000.
    public var tiers: [String: TierConfig]
    /// How a renewal grants the monthly allocation. Default `topUp`.
    public var renewalPolicy: RenewalPolicy
    /// SQLite `synchronous`. Default `full`: a committed batch survives power loss, which is what
    /// lets the worker acknowledge jobs after the commit. `normal` may lose the last batches on
    /// power loss (not on a process crash) and the jobs would then be applied again.
    public var synchronous: SynchronousMode
    /// How long a connection waits for a lock held by another process (the CLI, a backup)
    /// before failing. Default 5000.
    public var busyTimeoutMilliseconds: Int
    /// WAL size in pages that makes the ledger copy the WAL back into the database. Default
    /// 1000. The copy runs in the background on its own connection, not inside the commit that
    /// crosses the threshold as SQLite's own automatic checkpoint would (see `Checkpointer`).
    /// 0 turns it off: the owner must then call `Ledger.checkpoint()` now and then, or the WAL
    /// grows without bound.
    public var walAutoCheckpointPages: Int
    /// SQLite's page cache per connection, in MiB. Default 8, to keep the worker's memory small
    /// now that the unmerged tail lives in memory (v1 measured no gain above 16 even when every
    /// job wrote random index pages; since v2 the writer's pages are appends and merge slices in
    /// key order, and only the probe of the merged job-id index reads random pages, each miss a
    /// read system call of a page the OS usually holds).
    public var cacheMebibytes: Int
    /// Unmerged job results and entries (the tail, kept in memory and rebuilt from the file at
    /// open) at which the ledger starts merging them into its indexes. Default 49,152: large
    /// enough that a merge, done in key order, writes each index page once for many keys; small
    /// enough that the tail (about 200 bytes a row in memory, up to twice this while a merge runs)
    /// keeps the worker near 64-80 MB and is rebuilt in well under a second at open. Half of it
    /// (24,576) measured 66 MB against 68-83 MB at the peak but 10-28 % more CPU per job, the
    /// merges writing fewer keys per index page (docs/BENCHMARKS.md, "Issue 17's remaining
    /// targets"). The tail grows further while a merge is under way; past twice this, a write
    /// merges by itself.
    public var mergeThresholdRows: Int
    /// Rows one merge slice writes (one short transaction; see `Ledger.maintain`). Default 1024:
    /// a slice runs between two batches, so it is a pause for the jobs behind it, and a short
    /// pause keeps the latency tail short; its commit (one fsync) is amortized over 1024 rows.
    public var mergeSliceRows: Int
    /// The longest pause `Ledger.maintainAfterBatch` makes between two batches, in ms. Default
    /// 8: the merge keeps ahead of the tail in slices that fit, and a pause stays under 10 ms.
    public var mergePauseMilliseconds: Int = 8
    /// The threshold of the monitor every account has under the id `default` (nil: none, the
    /// default): `balance.low` fires when `available` falls below it.
    public var defaultMonitorThreshold: Int64?
    /// Under the `rollover` policy, the most tokens of a period's grant carried into the next
    /// period (a tier's own `rolloverMax` wins); nil: no cap.
    public var rolloverMax: Int64?
    /// Under `rollover`, how many periods a carried grant lives from the period it starts in;
    /// 0: it never lapses. Default 1.
    public var rolloverMonths: Int = 1

    /// The cap on what a `tier` account carries over (its own, else the ledger's).
    public func rolloverCap(tier: String) -> Int64? { self.tier(named: tier)?.rolloverMax ?? rolloverMax }
    /// The most accounts one `renewAll` job renews, and so the size of its transaction and of
    /// its reply (one `renewals[]` or `errors[]` item per account). A job without `limit` takes
    /// this many; a larger `limit` is refused (`invalid_limit`). Default 1000.
    public var renewAllMaxAccounts: Int

    public static let defaultCosts: [String: Int64] = ["image_generation": 10, "chatgpt_message": 5]
    public static let defaultTiers: [String: TierConfig] = [
        "Gift": TierConfig(allocation: 100, price: 0),
        "Professional": TierConfig(allocation: 2000, price: 1900),
        "Business": TierConfig(allocation: 10000, price: 9900),
    ]

    public init(
        costs: [String: Int64] = LedgerConfig.defaultCosts,
        tiers: [String: TierConfig] = LedgerConfig.defaultTiers,
        renewalPolicy: RenewalPolicy = .topUp,
        synchronous: SynchronousMode = .full,
        busyTimeoutMilliseconds: Int = 5000,
        walAutoCheckpointPages: Int = 1000,
        cacheMebibytes: Int = 8,
        mergeThresholdRows: Int = 49_152,
        mergeSliceRows: Int = 1024,
        defaultMonitorThreshold: Int64? = nil,
        renewAllMaxAccounts: Int = 1000
    ) {
        self.defaultMonitorThreshold = defaultMonitorThreshold
        self.renewAllMaxAccounts = renewAllMaxAccounts
        self.costs = costs
        self.tiers = tiers
        self.renewalPolicy = renewalPolicy
        self.synchronous = synchronous
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
        self.walAutoCheckpointPages = walAutoCheckpointPages
        self.cacheMebibytes = cacheMebibytes
        self.mergeThresholdRows = mergeThresholdRows
        self.mergeSliceRows = mergeSliceRows
    }

    enum CodingKeys: String, CodingKey {
        case costs, tiers, renewalPolicy, synchronous, busyTimeoutMilliseconds, walAutoCheckpointPages, cacheMebibytes
        case mergeThresholdRows, mergeSliceRows, mergePauseMilliseconds
        case defaultMonitorThreshold, rolloverMax, rolloverMonths
        case renewAllMaxAccounts
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        if let v = try c.decodeIfPresent([String: Int64].self, forKey: .costs) { costs = v }
        if let v = try c.decodeIfPresent([String: TierConfig].self, forKey: .tiers) { tiers = v }
        if let v = try c.decodeIfPresent(RenewalPolicy.self, forKey: .renewalPolicy) { renewalPolicy = v }
        if let v = try c.decodeIfPresent(SynchronousMode.self, forKey: .synchronous) { synchronous = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .busyTimeoutMilliseconds) { busyTimeoutMilliseconds = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .walAutoCheckpointPages) { walAutoCheckpointPages = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .cacheMebibytes) { cacheMebibytes = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .mergeThresholdRows) { mergeThresholdRows = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .mergeSliceRows) { mergeSliceRows = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .mergePauseMilliseconds) { mergePauseMilliseconds = v }
        defaultMonitorThreshold = try c.decodeIfPresent(Int64.self, forKey: .defaultMonitorThreshold)
        rolloverMax = try c.decodeIfPresent(Int64.self, forKey: .rolloverMax)
        if let v = try c.decodeIfPresent(Int.self, forKey: .rolloverMonths) { rolloverMonths = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .renewAllMaxAccounts) { renewAllMaxAccounts = v }
    }

    /// The configured cost of `operation`, matched by its bytes: a dictionary lookup alone
    /// would price an NFD name by its configured NFC twin (see `IdentityKey`). Keys are unique
    /// up to canonical equivalence, so the one key found is the only candidate.
    public func cost(of operation: String) -> Int64? {
        guard let i = costs.index(forKey: operation), costs[i].key.hasSameBytes(as: operation) else { return nil }
        return costs[i].value
    }

    /// The tier named `name`, matched by its bytes (as `cost(of:)`).
    public func tier(named name: String) -> TierConfig? {
        guard let i = tiers.index(forKey: name), tiers[i].key.hasSameBytes(as: name) else { return nil }
        return tiers[i].value
    }

    /// Checks the values decoding cannot: throws `LedgerConfigError` naming the first
    /// offending field (for instance `tiers.Gift.allocation must be >= 0`).
    public func validate() throws {
        for (name, cost) in costs.sorted(by: { $0.key < $1.key }) {
            if name.isEmpty { throw LedgerConfigError("costs: an operation name must not be empty") }
            if cost < 0 { throw LedgerConfigError("costs.\(name) must be >= 0") }
        }
        if tier(named: "Gift") == nil { throw LedgerConfigError("tiers.Gift must exist (new and expired accounts use it)") }
        for (name, tier) in tiers.sorted(by: { $0.key < $1.key }) {
            if name.isEmpty { throw LedgerConfigError("tiers: a tier name must not be empty") }
            if tier.allocation < 0 { throw LedgerConfigError("tiers.\(name).allocation must be >= 0") }
            if tier.price < 0 { throw LedgerConfigError("tiers.\(name).price must be >= 0") }
        }
        if busyTimeoutMilliseconds < 0 { throw LedgerConfigError("busyTimeoutMilliseconds must be >= 0") }
        if walAutoCheckpointPages < 0 { throw LedgerConfigError("walAutoCheckpointPages must be >= 0") }
        if cacheMebibytes < 1 { throw LedgerConfigError("cacheMebibytes must be >= 1") }
        if mergeThresholdRows < 1 { throw LedgerConfigError("mergeThresholdRows must be >= 1") }
        if mergeSliceRows < 1 { throw LedgerConfigError("mergeSliceRows must be >= 1") }
        if mergePauseMilliseconds < 1 { throw LedgerConfigError("mergePauseMilliseconds must be >= 1") }
        if cost(of: "expiry") != nil { throw LedgerConfigError("costs.expiry: expiry is the ledger's own operation type") }
        if let t = defaultMonitorThreshold, t < 0 { throw LedgerConfigError("defaultMonitorThreshold must be >= 0") }
        if let m = rolloverMax, m < 0 { throw LedgerConfigError("renewal.rolloverMax must be >= 0") }
        if !(0...1200).contains(rolloverMonths) { throw LedgerConfigError("renewal.rolloverMonths must be between 0 and 1200") }
        for (name, tier) in tiers.sorted(by: { $0.key < $1.key }) {
            if let m = tier.rolloverMax, m < 0 { throw LedgerConfigError("tiers.\(name).rolloverMax must be >= 0") }
        }
        if renewAllMaxAccounts < 1 { throw LedgerConfigError("renewAllMaxAccounts must be >= 1") }
    }
}

/// A subscription tier: the tokens granted each month and the informational list price in
/// minor currency units (the ledger records no money; payments happen elsewhere).
public struct TierConfig: Sendable, Codable, Equatable {
    public var allocation: Int64
    public var price: Int64
    /// Under the `rollover` policy, this tier's cap on carried tokens (wins over the ledger's).
    public var rolloverMax: Int64?

    public init(allocation: Int64, price: Int64 = 0, rolloverMax: Int64? = nil) {
        self.allocation = allocation
        self.price = price
        self.rolloverMax = rolloverMax
    }

    enum CodingKeys: String, CodingKey { case allocation, price, rolloverMax }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        allocation = try c.decode(Int64.self, forKey: .allocation)
        price = try c.decodeIfPresent(Int64.self, forKey: .price) ?? 0
        rolloverMax = try c.decodeIfPresent(Int64.self, forKey: .rolloverMax)
    }
}

/// How renewal grants an allocation.
public enum RenewalPolicy: String, Sendable, Codable, Equatable {
    /// Raise the balance to the allocation; an account at or above it gets no entry (still renews).
    case topUp
    /// Add the allocation to whatever is left.
    case accumulate
    /// Each period's allocation is a grant that lapses at the next renewal: no roll-over.
    case expire
    /// Each period's allocation is a grant; when it falls due, what is left of it, up to the
    /// tier's `rolloverMax`, is carried as a grant that lives `rolloverMonths` periods, and the
    /// part above the cap lapses.
    case rollover
}

public enum SynchronousMode: String, Sendable, Codable, Equatable {
    case full
    case normal
}

/// An invalid configuration; the message names the field.
public struct LedgerConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
