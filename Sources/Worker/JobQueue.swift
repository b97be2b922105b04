import Redis

/// The reliable queue: jobs move atomically from `P:jobs` into this worker's processing list, and
/// leave it only once their effect is committed.
///
/// Order: producers `LPUSH`, so the right end of `P:jobs` is the oldest job. Moved jobs keep that
/// orientation in the processing list (right = oldest), so a list left behind by a crash is
/// replayed oldest first.
final class JobQueue {
    let redis: RedisConnection
    let keys: QueueKeys
    let workerId: String
    var processingKey: String { keys.processing(workerId) }

    /// Moves up to ARGV[1] of the oldest jobs in one step and returns them oldest first.
    private static let takeScript = """
        local items = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
        local k = #items
        if k == 0 then return items end
        redis.call('LTRIM', KEYS[1], 0, -k - 1)
        local oldestFirst = {}
        for i = k, 1, -1 do oldestFirst[#oldestFirst + 1] = items[i] end
        redis.call('LPUSH', KEYS[2], unpack(oldestFirst))
        return oldestFirst
        """
    private var takeScriptHandle: RedisScript?

    /// Puts a processing list back at the oldest end of the queue, oldest last-out, in one step.
    private static let requeueScript = """
        local n = 0
        while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do n = n + 1 end
        return n
        """

    init(redis: RedisConnection, keys: QueueKeys, workerId: String) {
        self.redis = redis
        self.keys = keys
        self.workerId = workerId
    }

    /// Announces this worker, so the next active worker finds its processing list after a crash.
    func register() throws(RedisError) {
        try redis.sadd(keys.workers, workerId)
    }

    /// Takes up to `max` jobs, oldest first: everything already waiting in one round trip, or,
    /// when the queue is empty, the first job to arrive within `timeout` seconds.
    ///
    /// A job that wakes the wait is returned alone, without another round trip for what came
    /// with it: the worker takes the next batch while this one commits, which picks those up.
    func take(max: Int, timeout: Double) throws(RedisError) -> [[UInt8]] {
        let waiting = try takeWaiting(max: max)
        if !waiting.isEmpty || timeout <= 0 { return waiting }
        return try waitForOne(timeout: timeout)
    }

    /// Blocks up to `timeout` seconds for one job (`BLMOVE`).
    func waitForOne(timeout: Double) throws(RedisError) -> [[UInt8]] {
        try redis.blmove(keys.jobs, processingKey, from: .right, to: .left, timeout: timeout).map { [$0] } ?? []
    }

    private func takeWaiting(max: Int) throws(RedisError) -> [[UInt8]] {
        let script: RedisScript
        if let loaded = takeScriptHandle {
            script = loaded
        } else {
            script = try redis.load(Self.takeScript)
            takeScriptHandle = script
        }
        let reply = try redis.evalsha(script, keys: [keys.jobs, processingKey], arguments: [max])
        return reply.array?.compactMap(\.bytes) ?? []
    }

    /// The command that removes the `count` oldest jobs of the processing list: sent in the
    /// outbox pipeline, after the batch is committed.
    func acknowledgement(count: Int) -> RedisCommand {
        RedisCommand("LTRIM", processingKey, 0, -(count + 1))
    }

    /// Jobs left in a worker's processing list, oldest first.
    func pending(of workerId: String) throws(RedisError) -> [[UInt8]] {
        Array(try redis.lrange(keys.processing(workerId), 0, -1).reversed())
    }

    /// Other workers that announced themselves and still hold taken jobs.
    func otherWorkersWithPendingJobs() throws(RedisError) -> [String] {
        let ids = try redis.smembers(keys.workers).map { String(decoding: $0, as: UTF8.self) }.filter { $0 != workerId }
        guard !ids.isEmpty else { return [] }
        let lengths = try redis.pipeline(ids.map { RedisCommand("LLEN", keys.processing($0)) })
        return zip(ids, lengths).filter { ($0.1.int ?? 0) > 0 }.map(\.0)
    }

    /// Removes `count` finished jobs from another worker's list, and forgets the worker once its
    /// list is empty.
    func finishRecovery(of workerId: String, count: Int) throws(RedisError) {
        let key = keys.processing(workerId)
        try redis.send(RedisCommand("LTRIM", key, 0, -(count + 1)))
        if try redis.llen(key) == 0 { try redis.srem(keys.workers, workerId) }
    }

    /// A worker fenced off by a newer one gives back the jobs it took and could not apply, at the
    /// oldest end of the queue, so that the active worker applies them next and in order.
    @discardableResult
    func requeueOwnPending() throws(RedisError) -> Int64 {
        try redis.eval(Self.requeueScript, keys: [processingKey, keys.jobs]).int ?? 0
    }
}
