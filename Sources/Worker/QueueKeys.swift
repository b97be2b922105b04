/// The Redis keys of one queue, all under the configured prefix (`tokens` by default).
///
/// A ledger split into partitions has one queue per partition: its keys carry the hash tag `{k}`
/// (`P:{k}:jobs`), so that one Redis Cluster slot holds all of a partition's keys and its scripts
/// may touch several of them. The channels stay one per prefix, unless the invalidations are
/// sharded (`InvalidationChannels.sharded`).
public struct QueueKeys: Sendable, Equatable {
    public let prefix: String
    /// Nil for an unpartitioned ledger (the count is 1): the keys have no tag.
    public let partition: Int?
    /// How invalidations are published; only a partition's keys can shard them (`balance`).
    public let invalidationChannels: InvalidationChannels

    public init(prefix: String = "tokens", partition: Int? = nil, invalidationChannels: InvalidationChannels = .single) {
        self.prefix = prefix
        self.partition = partition
        self.invalidationChannels = invalidationChannels
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
    /// The pub/sub channel of balance invalidations: one for every partition (`P:balance`), or
    /// with sharded invalidations the partition's own, `P:{k}:balance`, in the partition's slot.
    public var balance: String { shardsInvalidations ? "\(base):balance" : "\(prefix):balance" }
    /// Whether invalidations go by `SPUBLISH` on the partition's channel: sharded invalidations
    /// on a partition's keys. An unsplit ledger has no slot of its own to shard into, so it keeps
    /// `PUBLISH P:balance` (the settings refuse that combination outright).
    public var shardsInvalidations: Bool { invalidationChannels == .sharded && partition != nil }
    /// The command that publishes on `balance`.
    public var invalidationCommand: String { shardsInvalidations ? "SPUBLISH" : "PUBLISH" }
    /// The pub/sub channel of `balance.low` alerts: one for every partition.
    public var alerts: String { "\(prefix):alerts" }

    /// The processing list named `list` (a member of `workers`): the jobs of one taken batch,
    /// `<workerId>:<n>`. A name without `:<n>` is the single list of a worker from before
    /// batches had lists of their own; it is recovered the same way.
    public func processing(_ list: String) -> String { "\(base):processing:\(list)" }
}

/// Where a split ledger's partitions publish their invalidations (the config key
/// `invalidationChannels`).
public enum InvalidationChannels: String, Sendable, CaseIterable {
    /// `PUBLISH P:balance` from every partition: the contract's default. On a Redis Cluster a
    /// plain `PUBLISH` crosses the bus to every node, and each subscriber hears every partition.
    case single
    /// `SPUBLISH P:{k}:balance` from partition `k`: the channel lies in the partition's slot, so
    /// a message stays on the shard that serves the partition's keys. Subscribers `SSUBSCRIBE`
    /// to each partition's channel on the node that serves it.
    case sharded
}
