import Redis

/// `P:lease`: which worker is active. Only the holder applies jobs; the others stand by and take
/// over once it lapses.
///
/// A lease alone cannot stop a worker that stalled past the expiry from writing, so each takeover
/// also records a higher epoch in the ledger, and a batch commits only under the latest epoch.
struct Lease {
    let key: String
    let workerId: String
    let milliseconds: Int

    private static let renewScript = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return 0
        """
    private static let releaseScript = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0
        """

    private static let acquireScript = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
        return 0
        """

    /// Takes the lease if nobody holds it, or keeps it if this worker already does (say, after a
    /// failure between taking the lease and recording the epoch).
    func acquire(_ redis: any RedisClient) throws(RedisError) -> Bool {
        try redis.eval(Self.acquireScript, keys: [key], arguments: [workerId, milliseconds]).int == 1
    }

    /// Extends the lease if this worker still holds it; false means it was lost.
    func renew(_ redis: any RedisClient) throws(RedisError) -> Bool {
        try redis.eval(Self.renewScript, keys: [key], arguments: [workerId, milliseconds]).int == 1
    }

    /// Gives the lease up at once (graceful stop), so a standby need not wait for the expiry.
    func release(_ redis: any RedisClient) throws(RedisError) {
        try redis.eval(Self.releaseScript, keys: [key], arguments: [workerId])
    }

    func holder(_ redis: any RedisClient) throws(RedisError) -> String? {
        try redis.get(key).map { String(decoding: $0, as: UTF8.self) }
    }
}
