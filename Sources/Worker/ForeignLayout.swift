import JobWire
import Redis

/// What Redis still holds for a partition layout other than the configured one.
///
/// Why: changing the partition count renames every key (`P:jobs` becomes `P:{k}:jobs`), so jobs
/// queued or taken under the old count would never be read again, with no error anywhere. A
/// worker refuses to start while any of them holds a job (see `tokenledger worker`).
public enum ForeignLayout {
    /// The most lists named in a report; the count of the rest is given.
    public static let maxNamed = 10

    /// Every non-empty queue, and every registered processing list that holds jobs, of the
    /// layouts that are not `count` partitions under `prefix`: the untagged keys when `count > 1`,
    /// the tagged ones of partitions `count` and above (every tag when `count == 1`), up to
    /// `Partitioning.maxCount`. Two pipelines, one key per command, so a cluster routes each.
    public static func unsettledLists(_ redis: any RedisClient, prefix: String, count: Int) throws(RedisError) -> [String] {
        var layouts: [QueueKeys] = count > 1 ? [QueueKeys(prefix: prefix)] : []
        for k in (count == 1 ? 0 : count)..<Partitioning.maxCount { layouts.append(QueueKeys(prefix: prefix, partition: k)) }
        guard !layouts.isEmpty else { return [] }
        let replies = try redis.pipeline(layouts.flatMap { [RedisCommand("LLEN", $0.jobs), RedisCommand("SMEMBERS", $0.processingLists)] })
        var found: [String] = []
        var registered: [String] = []
        for (i, keys) in layouts.enumerated() where 2 * i + 1 < replies.count {
            if let n = replies[2 * i].int, n > 0 { found.append("\(keys.jobs) (\(n) jobs)") }
            for member in replies[2 * i + 1].array ?? [] {
                if let name = member.bytes { registered.append(keys.processing(String(decoding: name, as: UTF8.self))) }
            }
        }
        if !registered.isEmpty {
            let lengths = try redis.pipeline(registered.map { RedisCommand("LLEN", $0) })
            for (list, length) in zip(registered, lengths) {
                if let n = length.int, n > 0 { found.append("\(list) (\(n) jobs)") }
            }
        }
        return found
    }
}
