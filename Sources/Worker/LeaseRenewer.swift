import Foundation
import Redis
import Synchronization

/// One thread renews every lease this process holds, whatever the number of partitions it
/// serves: a thread and a connection per partition cost more than the renewals themselves.
///
/// On one Redis server the leases due together are renewed by one script call (each lease still
/// checked against its own holder), so an idle partition adds a fraction of a command a second;
/// on a cluster each lease lives in its partition's slot, so each is renewed by its own call.
/// Each attempt is bounded by the renewal interval (`RedisTarget.impatient`): a renewal that
/// waits on a failing node (a cluster's master failing over) must not hold the others past
/// their next turn.
final class LeaseRenewer: Sendable {
    static let shared = LeaseRenewer()

    private struct Registry {
        var keepers: [ObjectIdentifier: LeaseKeeper] = [:]
        var threadRunning = false
    }
    private let registry = Mutex(Registry())
    /// Held while a round sends renewals, so that `unregister` returns only once none of the
    /// keeper's is in flight.
    private let round = Mutex(())

    /// Renews every lease given in KEYS whose value is still the holder ARGV[2i-1], for ARGV[2i]
    /// milliseconds; answers 1 (renewed) or 0 (held by another, or by none) per key.
    private static let renewAllScript = RedisScript(source: """
        local out = {}
        for i, key in ipairs(KEYS) do
            if redis.call('GET', key) == ARGV[2 * i - 1] then
                out[i] = redis.call('PEXPIRE', key, ARGV[2 * i])
            else
                out[i] = 0
            end
        end
        return out
        """)

    func register(_ keeper: LeaseKeeper) {
        let startThread = registry.withLock { r -> Bool in
            r.keepers[ObjectIdentifier(keeper)] = keeper
            guard !r.threadRunning else { return false }
            r.threadRunning = true
            return true
        }
        guard startThread else { return }
        let thread = Thread { [self] in run() }
        thread.name = "lease-renewer"
        thread.start()
    }

    func unregister(_ keeper: LeaseKeeper) {
        registry.withLock { _ = $0.keepers.removeValue(forKey: ObjectIdentifier(keeper)) }
        round.withLock { _ in }
    }

    /// Runs while any lease is registered; a later `register` starts a new thread.
    private func run() {
        var connections: [(target: RedisTarget, redis: any RedisClient)] = []
        while true {
            let now = LeaseKeeper.now()
            let due = registry.withLock { r -> [LeaseKeeper]? in
                // A lease no longer safe to count on is not renewed: the worker stands by.
                for (id, keeper) in r.keepers where !keeper.isHeld {
                    keeper.logger.warning("lease no longer safe to count on; standing by", metadata: ["lease": "\(keeper.lease.key)"])
                    r.keepers.removeValue(forKey: id)
                }
                if r.keepers.isEmpty {
                    r.threadRunning = false
                    return nil
                }
                // Leases due within half an interval go with the one due now (renewing early only
                // extends from now), so the leases fall into step and a round is one call.
                guard r.keepers.values.contains(where: { $0.isDue(at: now) }) else { return [] }
                return r.keepers.values.filter { $0.isDue(at: now + $0.intervalNanoseconds / 2) }
            }
            guard let due else { return }
            if !due.isEmpty {
                round.withLock { _ in
                    for group in Self.grouped(due) { renew(group, connections: &connections) }
                }
            }
            usleep(10_000)
        }
    }

    private static func grouped(_ keepers: [LeaseKeeper]) -> [[LeaseKeeper]] {
        var groups: [[LeaseKeeper]] = []
        for keeper in keepers {
            if let i = groups.firstIndex(where: { $0[0].target == keeper.target && $0[0].lease.milliseconds == keeper.lease.milliseconds }) {
                groups[i].append(keeper)
            } else {
                groups.append([keeper])
            }
        }
        return groups
    }

    /// Renews one group of leases on one target; a failure drops that target's connection.
    private func renew(_ keepers: [LeaseKeeper], connections: inout [(target: RedisTarget, redis: any RedisClient)]) {
        let target = keepers[0].target
        let sent = LeaseKeeper.now()
        do {
            let redis: any RedisClient
            if let known = connections.first(where: { $0.target == target }) {
                redis = known.redis
            } else {
                let seconds = Double(keepers[0].intervalNanoseconds) / 1e9
                redis = try target.impatient(seconds: seconds).connect()
                connections.append((target, redis))
            }
            if target.isCluster {
                for keeper in keepers { keeper.renewed(sentAt: sent, kept: try keeper.lease.renew(redis)) }
            } else {
                let reply = try redis.evalsha(Self.renewAllScript, keys: keepers.map(\.lease.key),
                                              arguments: keepers.flatMap { [$0.lease.holder, $0.lease.milliseconds] as [any RedisArgument] })
                let answers = reply.array ?? []
                guard answers.count == keepers.count else {
                    throw RedisError.connection("the lease renewal answered \(answers.count) of \(keepers.count) leases")
                }
                for (keeper, answer) in zip(keepers, answers) { keeper.renewed(sentAt: sent, kept: answer.int == 1) }
            }
        } catch {
            connections.removeAll { $0.target == target }
            for keeper in keepers { keeper.failed(sentAt: sent) }
            keepers[0].logger.warning("lease renewal failed", metadata: ["error": "\(error)", "leases": "\(keepers.count)"])
        }
    }
}
