/// The Redis keys of one queue, all under the configured prefix (`tokens` by default).
///
/// A ledger split into partitions has one queue per partition: its keys carry the hash tag `{k}`
/// (`P:{k}:jobs`), so that one Redis Cluster slot holds all of a partition's keys and its scripts
/// may touch several of them. The channels stay one per prefix.
public struct QueueKeys: Sendable, Equatable {
    public let prefix: String
    /// Nil for an unpartitioned ledger (the count is 1): the keys have no tag.
    public let partition: Int?

    public init(prefix: String = "tokens", partition: Int? = nil) {
        self.prefix = prefix
        self.partition = partition
    }

    /// The prefix of the partition's own keys: `P` or `P:{k}`.
    private var base: String { partition.map { "\(prefix):{\($0)}" } ?? prefix }

    /// Producers `LPUSH` here; the worker takes the oldest (right) end first.
    public var jobs: String { "\(base):jobs" }
    /// Which worker is active, as a key with expiry.
    public var lease: String { "\(base):lease" }
    /// The names of the processing lists that may hold taken jobs (`<workerId>:<n>`, one per
    /// taken batch), so that none is found by scanning keys.
    public var processingLists: String { "\(base):workers" }
    public var dead: String { "\(base):dead" }
    /// The stream of applied jobs and events.
    public var events: String { "\(base):events" }
    /// Each acknowledged job's raw bytes, kept for a window so that `tokenledger restore` can
    /// apply what a lost ledger's replica lacks (the contract's "Recovery past the replica").
    public var applied: String { "\(base):applied" }
    /// The pub/sub channel of balance invalidations: one for every partition.
    public var balance: String { "\(prefix):balance" }
    /// The pub/sub channel of `balance.low` alerts: one for every partition.
    public var alerts: String { "\(prefix):alerts" }

    /// The processing list named `list` (a member of `workers`): the jobs of one taken batch,
    /// `<workerId>:<n>`. A name without `:<n>` is the single list of a worker from before
    /// batches had lists of their own; it is recovered the same way.
    public func processing(_ list: String) -> String { "\(base):processing:\(list)" }
}
