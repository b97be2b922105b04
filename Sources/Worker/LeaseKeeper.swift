import Foundation
import Logging
import Redis
import Synchronization

/// Renews the lease from a thread and connection of its own, so that a long batch (a large
/// `renewAll`, a slow disk) never lets it lapse by accident.
///
/// When a renewal finds the lease taken by another worker, or when no renewal has succeeded for
/// a whole lease period (Redis unreachable), `isHeld` turns false and the worker stops taking jobs
/// at once. The ledger's epoch check still fences any batch already in flight.
final class LeaseKeeper: Sendable {
    private let lease: Lease
    private let configuration: RedisConfiguration
    private let logger: Logger
    private let held = Atomic<Bool>(true)
    private let running = Atomic<Bool>(true)
    private let finished = Mutex<Bool>(true)

    init(lease: Lease, configuration: RedisConfiguration, logger: Logger) {
        self.lease = lease
        self.configuration = configuration
        self.logger = logger
    }

    var isHeld: Bool { held.load(ordering: .acquiring) }

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

    private func run() {
        defer { finished.withLock { $0 = true } }
        let interval = Double(lease.milliseconds) / 3 / 1000
        var config = configuration
        config.commandTimeout = min(config.commandTimeout, interval)
        config.reconnect.maxAttempts = 1
        var redis: RedisConnection?
        var lastRenewal = ContinuousClock.now
        while running.load(ordering: .acquiring) && isHeld {
            do {
                if redis == nil { redis = try RedisConnection(configuration: config) }
                if try lease.renew(redis!) {
                    lastRenewal = ContinuousClock.now
                } else {
                    logger.warning("lease lost to another worker", metadata: ["lease": "\(lease.key)"])
                    held.store(false, ordering: .releasing)
                }
            } catch {
                redis = nil
                if ContinuousClock.now - lastRenewal > .milliseconds(lease.milliseconds) {
                    logger.warning("lease not renewed for a whole period; standing by", metadata: ["error": "\(error)"])
                    held.store(false, ordering: .releasing)
                }
            }
            var slept = 0.0
            while slept < interval && running.load(ordering: .acquiring) {
                usleep(20_000)
                slept += 0.02
            }
        }
    }
}
