import Redis

/// `P:lease`: which worker is active. Only the holder applies jobs; the others stand by and take
/// over once it lapses.
///
/// A lease alone cannot stop a worker that stalled past the expiry from writing, so each takeover
/// also records a higher epoch in the ledger, and a batch commits only under the latest epoch.
///
/// The value is the holder, `<workerId>:<nonce>` (see `holder(workerId:)`), never the worker id
/// alone: the default id (`hostname-pid`) repeats across containers that run as pid 1, and two
/// processes started with one id must not both find the lease "already theirs".
struct Lease {
    let key: String
    /// This process start's claim: what acquire, renew, release and the take script compare.
    let holder: String
    let milliseconds: Int

    /// A holder value unique to one start of one worker: its id (readable, and the name of its
    /// processing lists) and 64 random bits.
    static func holder(workerId: String) -> String {
        var rng = SystemRandomNumberGenerator()
        let nonce = String(rng.next() as UInt64, radix: 16)
        return "\(workerId):\(String(repeating: "0", count: 16 - nonce.count))\(nonce)"
    }

    /// The scripts go by digest (`evalsha`), their text only to a server that lost its cache.
    private static let renewScript = RedisScript(source: """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return 0
        """)
    private static let releaseScript = RedisScript(source: """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0
        """)

    private static let acquireScript = RedisScript(source: """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
        return 0
        """)

    /// Takes the lease if nobody holds it, or keeps it if this very worker start already does
    /// (say, after a failure between taking the lease and recording the epoch).
    func acquire(_ redis: any RedisClient) throws(RedisError) -> Bool {
        try redis.evalsha(Self.acquireScript, keys: [key], arguments: [holder, milliseconds]).int == 1
    }

    /// Extends the lease if this worker still holds it; false means it was lost.
    func renew(_ redis: any RedisClient) throws(RedisError) -> Bool {
        try redis.evalsha(Self.renewScript, keys: [key], arguments: [holder, milliseconds]).int == 1
    }

    /// Gives the lease up at once (graceful stop), so a standby need not wait for the expiry.
    func release(_ redis: any RedisClient) throws(RedisError) {
        try redis.evalsha(Self.releaseScript, keys: [key], arguments: [holder])
    }

    func currentHolder(_ redis: any RedisClient) throws(RedisError) -> String? {
        try redis.get(key).map { String(decoding: $0, as: UTF8.self) }
    }
}
