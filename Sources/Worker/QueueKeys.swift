/// The Redis keys of one queue, all under the configured prefix (`tokens` by default).
public struct QueueKeys: Sendable, Equatable {
    public let prefix: String

    public init(prefix: String = "tokens") { self.prefix = prefix }

    /// Producers `LPUSH` here; the worker takes the oldest (right) end first.
    public var jobs: String { "\(prefix):jobs" }
    /// Which worker is active, as a key with expiry.
    public var lease: String { "\(prefix):lease" }
    /// Ids of workers that may hold a processing list, so none is found by scanning keys.
    public var workers: String { "\(prefix):workers" }
    public var dead: String { "\(prefix):dead" }
    /// The pub/sub channel of balance invalidations.
    public var balance: String { "\(prefix):balance" }

    /// Jobs a worker has taken and not yet finished.
    public func processing(_ workerId: String) -> String { "\(prefix):processing:\(workerId)" }
}
