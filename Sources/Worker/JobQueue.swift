import JobWire
import Redis

/// The reliable queue: each take moves the oldest jobs of `P:jobs` atomically into a processing
/// list of their own, registered in `P:workers`; the list is deleted once its jobs are settled.
///
/// Order: producers `LPUSH`, so the right end of `P:jobs` is the oldest job. Moved jobs keep that
/// orientation (right = oldest), so a list left behind by a crash is replayed oldest first.
final class JobQueue {
    /// One server or a cluster: every key the queue touches carries the partition's tag, so the
    /// take script and the wait go to the one master that serves the partition.
    let redis: any RedisClient
    let keys: QueueKeys
    let workerId: String
    /// The lease value of this worker start (`Lease.holder`), which the take checks.
    let leaseHolder: String
    let partitioning: Partitioning
    /// `<n>` of the next list: microseconds at start, then +1 per take, so that lists of one
    /// worker id sort in take order across restarts too.
    private var nextSequence: UInt64

    /// Moves up to ARGV[1] of the oldest jobs into the list KEYS[2] (named ARGV[2] in KEYS[3]),
    /// only while this worker start (ARGV[3], its lease holder value) holds the lease KEYS[4], and
    /// returns them oldest first.
    /// The lease check is inside the script, so a worker that was paused past its lease cannot
    /// take a job, whatever it believes.
    ///
    /// Sent by digest (`EVALSHA`, computed here); a server that lost its script cache is sent the
    /// text once (`RedisClient.pipeline(_:)`).
    private static let takeScript = RedisScript(source: """
        if redis.call('GET', KEYS[4]) ~= ARGV[3] then
            return redis.error_reply('NOTHOLDER the lease is not held by this worker')
        end
        local items = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
        local k = #items
        if k == 0 then return items end
        redis.call('LTRIM', KEYS[1], 0, -k - 1)
        local oldestFirst = {}
        for i = k, 1, -1 do oldestFirst[#oldestFirst + 1] = items[i] end
        redis.call('SADD', KEYS[3], ARGV[2])
        redis.call('LPUSH', KEYS[2], unpack(oldestFirst))
        return oldestFirst
        """)

    init(redis: any RedisClient, configuration: WorkerConfiguration, firstSequence: UInt64) {
        self.redis = redis
        keys = configuration.keys
        workerId = configuration.workerId
        leaseHolder = configuration.leaseHolder
        partitioning = configuration.partitioning
        nextSequence = firstSequence
    }

    private func batch(_ list: String, _ raws: [[UInt8]], recovered: Bool = false) -> TakenBatch {
        TakenBatch(list: list, raws: raws, partitioning: partitioning, partition: keys.partition ?? 0, recovered: recovered)
    }

    /// Takes up to `max` of the jobs waiting, oldest first, in one round trip; none when the
    /// queue is empty (the wait for a job is `startWaitForJobs`, which takes nothing).
    /// Throws `QueueError.leaseNotHeld` when this worker does not hold the lease.
    func take(max: Int) throws -> TakenBatch {
        try takeWaiting(max: max)
    }

    /// Starts a wait of up to `timeout` seconds until `P:jobs` holds a job, without taking it:
    /// `BLMOVE` of the list onto itself (right to right) moves nothing, so no job is ever outside
    /// both the queue and a registered processing list, and the take that follows checks the
    /// lease. Returns the socket the answer arrives on, for the loop pool's one `poll(2)` of every
    /// idle partition; `finishWaitForJobs()` reads it.
    func startWaitForJobs(timeout: Double) throws(RedisError) -> Int32 {
        try redis.startWait(RedisCommand("BLMOVE", keys.jobs, keys.jobs, ListEnd.right.rawValue, ListEnd.right.rawValue, timeout))
    }

    /// How the wait ended: a job in `P:jobs`, the queue still empty, or an error reply (a
    /// cluster's `MOVED` or `ASK` during a reshard, say), which the take that follows meets and
    /// follows as any command does.
    func finishWaitForJobs() throws(RedisError) -> WaitEnd {
        switch try redis.finishWait() {
        case .null: return .empty
        case .error(let message): return .refused(message)
        default: return .jobs
        }
    }

    enum WaitEnd: Equatable {
        case jobs, empty
        case refused(String)
    }

    private func takeWaiting(max: Int) throws -> TakenBatch {
        let list = "\(workerId):\(nextSequence)"
        let reply: RedisValue
        do {
            reply = try redis.evalsha(Self.takeScript, keys: [keys.jobs, keys.processing(list), keys.processingLists, keys.lease],
                                      arguments: [max, list, leaseHolder])
        } catch {
            if case .server(let message) = error, message.hasPrefix("NOTHOLDER") { throw QueueError.leaseNotHeld }
            throw error
        }
        let raws = reply.array?.compactMap(\.bytes) ?? []
        if !raws.isEmpty { nextSequence += 1 }
        return batch(list, raws)
    }

    /// Every registered processing list that still holds jobs, oldest first: lists of workers
    /// that crashed, stood by or stopped, and this worker's own after a Redis failure. Lists
    /// found empty are forgotten (a take registers its list and fills it in one step, so an
    /// empty registered list is a settled one).
    func unfinished() throws(RedisError) -> [TakenBatch] {
        let names = try redis.smembers(keys.processingLists).map { String(decoding: $0, as: UTF8.self) }
        guard !names.isEmpty else { return [] }
        let contents = try redis.pipeline(names.map { RedisCommand("LRANGE", keys.processing($0), 0, -1) })
        var batches: [TakenBatch] = []
        var settled: [String] = []
        for (name, content) in zip(names, contents) {
            let raws = content.array?.compactMap(\.bytes) ?? []
            if raws.isEmpty { settled.append(name) } else { batches.append(batch(name, raws.reversed(), recovered: true)) }
        }
        if !settled.isEmpty { try redis.send(RedisCommand("SREM", arguments: [keys.processingLists] + settled)) }
        return batches.sorted { ($0.sequence, $0.list) < ($1.sequence, $1.list) }
    }
}

/// Why the queue refused to hand out jobs.
enum QueueError: Error, Equatable, CustomStringConvertible {
    /// The take found `P:lease` held by another worker, or by none.
    case leaseNotHeld

    var code: String { "lease_not_held" }
    var description: String { "the lease is not held by this worker: it takes no job" }
}
