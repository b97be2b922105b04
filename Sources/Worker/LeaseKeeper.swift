import Foundation
import Logging
import Redis
import Synchronization

/// Renews the lease from a thread and connection of its own, so that a long batch (a large
/// `renewAll`, a slow disk) never lets it lapse by accident.
///
/// `isHeld` turns false when a renewal finds the lease taken by another worker, and as soon as
/// two thirds of a lease period have passed since the last renewal was sent (Redis unreachable,
/// or this process paused by SIGSTOP or a VM stall): the worker stops taking jobs while the
/// lease can still be its own, not after it may have passed to another. The check is made on
/// the monotonic clock at each read, so a process resumed after a pause sees it at once, before
/// this thread has run again. Two further locks stand behind it: the take script checks the
/// lease's holder, and the ledger's epoch fences any batch already in flight.
final class LeaseKeeper: Sendable {
    private let lease: Lease
    private let target: RedisTarget
    private let logger: Logger
    private let lost = Atomic<Bool>(false)
    /// When the last successful renewal was sent, in nanoseconds of the monotonic clock.
    private let renewedAt = Atomic<Int64>(0)
    private let running = Atomic<Bool>(true)
    private let finished = Mutex<Bool>(true)

    init(lease: Lease, target: RedisTarget, logger: Logger) {
        self.lease = lease
        self.target = target
        self.logger = logger
        renewedAt.store(Self.now(), ordering: .relaxed)
    }

    /// The part of a lease period after which the keeper no longer counts on the lease.
    static let safeFraction = 2.0 / 3.0

    var isHeld: Bool {
        guard !lost.load(ordering: .acquiring) else { return false }
        let age = Self.now() - renewedAt.load(ordering: .acquiring)
        return Double(age) < Double(lease.milliseconds) * 1_000_000 * Self.safeFraction
    }

    func start() {
        finished.withLock { $0 = false }
        let thread = Thread { [self] in run() }
        thread.name = "lease-keeper"
        thread.start()
    }

    /// Stops renewing; the worker releases or abandons the lease itself.
    func stop() {
        running.store(false, ordering: .releasing)
        while !finished.withLock({ $0 }) { usleep(1000) }
    }

    private static func now() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }

    private func run() {
        defer { finished.withLock { $0 = true } }
        let interval = Double(lease.milliseconds) / 4 / 1000
        // One attempt per renewal, bounded by the interval: a renewal that waits on a failing
        // node (a cluster's master failing over) must not hold the keeper past its next turn.
        let impatient = target.impatient(seconds: interval)
        var redis: (any RedisClient)?
        while running.load(ordering: .acquiring) && isHeld {
            let sent = Self.now()
            do {
                if redis == nil { redis = try impatient.connect() }
                guard let connection = redis else { continue }
                if try lease.renew(connection) {
                    renewedAt.store(sent, ordering: .releasing)
                } else {
                    logger.warning("lease lost to another worker", metadata: ["lease": "\(lease.key)"])
                    lost.store(true, ordering: .releasing)
                }
            } catch {
                redis = nil
                logger.warning("lease renewal failed", metadata: ["error": "\(error)"])
            }
            var slept = 0.0
            while slept < interval && running.load(ordering: .acquiring) {
                usleep(10_000)
                slept += 0.01
            }
        }
        if running.load(ordering: .acquiring) {
            logger.warning("lease no longer safe to count on; standing by", metadata: ["lease": "\(lease.key)"])
        }
    }
}
