import Foundation
import JobWire
import Redis

/// Everything the worker needs to serve a queue, resolved from flags, environment, config file and
/// defaults by the executable.
public struct WorkerConfiguration: Sendable {
    /// One server or a Redis Cluster; on a cluster the keys must carry a partition's tag.
    public var redis: RedisTarget
    /// The keys of the one partition this worker serves (`keys.partition`), or of the whole
    /// ledger when it is not split.
    public var keys: QueueKeys
    /// How the ledger is split; jobs of another partition's users are dead letters here.
    public var partitioning: Partitioning
    /// Names this worker's processing lists (and shows in logs and `P:workers`). It need not be
    /// unique: the lease is claimed by `leaseHolder`.
    public var workerId: String
    /// The value of `P:lease` while this worker holds it: `<workerId>:<16 hex digits>`, random per
    /// start of a worker (the worker draws its own when it starts), so that two processes given
    /// one worker id never both hold the lease.
    public internal(set) var leaseHolder: String
    /// The most jobs taken and committed together.
    public var batchSize: Int
    public var replyExpirySeconds: Int
    /// How long the lease lasts without renewal; a standby takes over this long after a crash.
    public var leaseMilliseconds: Int
    /// Tries of a whole batch whose commit fails before its jobs are tried one at a time (to find
    /// a poison job among them). An outage is retried for as long as it lasts either way.
    public var maxAttempts: Int
    /// How long one wait for the first job of a batch lasts; also bounds how quickly a stop is seen.
    public var pollSeconds: Double
    /// The longest wait of an idle worker: waits double from `pollSeconds` up to this while the
    /// queue stays empty (a job ends any wait at once), so an idle partition sends a command every
    /// this many seconds; a stop of an idle worker is seen within it.
    public var idleWaitSeconds: Double = 2
    public var renewalSchedule: CronSchedule
    /// Accounts renewed per transaction by the scheduler.
    public var renewalChunkSize: Int
    /// The events stream's approximate length (`XADD ... MAXLEN ~`); nil turns the stream off
    /// (alerts are still published on `P:alerts`). Default 100,000.
    public var eventsMaxLength: Int? = 100_000
    /// How often the expiry sweep looks for due accounts no job touched, and how many accounts
    /// one of its transactions settles.
    public var settleIntervalSeconds: Double = 1
    public var settleBatchSize: Int = 1000
    /// How long one sweep transaction may settle before it commits and lets waiting jobs in.
    public var settleChunkMilliseconds: Int = 5
    /// How long `P:applied` keeps an acknowledged job (`XTRIM ... MINID ~ <now - window>`, by
    /// Redis's clock): it must outlast the longest replica lag a restore is to recover from.
    public var recoveryWindowMilliseconds: Int = WorkerConfiguration.defaultRecoveryWindowMilliseconds
    /// 15 minutes: far longer than a healthy replica's lag of a second or two.
    public static let defaultRecoveryWindowMilliseconds = 15 * 60 * 1000

    public init(
        redis: RedisTarget = .single(.init()),
        keys: QueueKeys = .init(),
        partitioning: Partitioning = .single,
        workerId: String = WorkerConfiguration.defaultWorkerId(),
        batchSize: Int = 256,
        replyExpirySeconds: Int = 600,
        leaseMilliseconds: Int = 5000,
        maxAttempts: Int = 3,
        pollSeconds: Double = 0.5,
        renewalSchedule: CronSchedule = .dailyAt2UTC,
        renewalChunkSize: Int = 1000
    ) {
        self.redis = redis
        self.keys = keys
        self.partitioning = partitioning
        self.workerId = workerId
        leaseHolder = Lease.holder(workerId: workerId)
        self.batchSize = batchSize
        self.replyExpirySeconds = replyExpirySeconds
        self.leaseMilliseconds = leaseMilliseconds
        self.maxAttempts = maxAttempts
        self.pollSeconds = pollSeconds
        self.renewalSchedule = renewalSchedule
        self.renewalChunkSize = renewalChunkSize
    }

    /// `hostname-pid`: readable in `P:workers`; not unique where containers run as pid 1, which
    /// is why the lease holds `leaseHolder`, not this.
    public static func defaultWorkerId() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "worker"
        return "\(host)-\(ProcessInfo.processInfo.processIdentifier)"
    }
}
