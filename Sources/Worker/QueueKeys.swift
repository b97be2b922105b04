/// The Redis keys of one queue, all under the configured prefix (`tokens` by default).
public struct QueueKeys: Sendable, Equatable {
    public let prefix: String

    public init(prefix: String = "tokens") { self.prefix = prefix }

    /// Producers `LPUSH` here; the worker takes the oldest (right) end first.
    public var jobs: String { "\(prefix):jobs" }
    /// Which worker is active, as a key with expiry.
    public var lease: String { "\(prefix):lease" }
    /// The names of the processing lists that may hold taken jobs (`<workerId>:<n>`, one per
    /// taken batch), so that none is found by scanning keys.
    public var workers: String { "\(prefix):workers" }
    public var dead: String { "\(prefix):dead" }
    /// The pub/sub channel of balance invalidations.
    public var balance: String { "\(prefix):balance" }

    /// The processing list named `list` (a member of `workers`): the jobs of one taken batch,
    /// `<workerId>:<n>`. A name without `:<n>` is the single list of a worker from before
    /// batches had lists of their own; it is recovered the same way.
    public func processing(_ list: String) -> String { "\(prefix):processing:\(list)" }
}
