import Foundation
import Logging
import Redis
import Synchronization

/// Keeps one partition's lease renewed, through the process's one `LeaseRenewer`, so that a long
/// batch (a large `renewAll`, a slow disk) never lets it lapse by accident.
///
/// `isHeld` turns false when a renewal finds the lease taken by another worker, and as soon as
/// two thirds of a lease period have passed since the last renewal was sent (Redis unreachable,
/// or this process paused by SIGSTOP or a VM stall): the worker stops taking jobs while the
/// lease can still be its own, not after it may have passed to another. The check is made on
/// the monotonic clock at each read, so a process resumed after a pause sees it at once, before
/// the renewer has run again. Two further locks stand behind it: the take script checks the
/// lease's holder, and the ledger's epoch fences any batch already in flight.
final class LeaseKeeper: Sendable {
    let lease: Lease
    let target: RedisTarget
    let logger: Logger
    private let lost = Atomic<Bool>(false)
    /// When the last successful renewal was sent, in nanoseconds of the monotonic clock.
    private let renewedAt = Atomic<Int64>(0)
    /// When the next renewal is due to be sent (monotonic nanoseconds).
    private let nextSendAt = Atomic<Int64>(0)
    private let renewer: LeaseRenewer

    init(lease: Lease, target: RedisTarget, logger: Logger, renewer: LeaseRenewer = .shared) {
        self.lease = lease
        self.target = target
        self.logger = logger
        self.renewer = renewer
        renewedAt.store(Self.now(), ordering: .relaxed)
        nextSendAt.store(Self.now() + intervalNanoseconds, ordering: .relaxed)
    }

    /// The part of a lease period after which the keeper no longer counts on the lease.
    static let safeFraction = 2.0 / 3.0

    /// A renewal every quarter period: two may fail before the safe part runs out.
    var intervalNanoseconds: Int64 { Int64(lease.milliseconds) * 1_000_000 / 4 }

    var isHeld: Bool {
        guard !lost.load(ordering: .acquiring) else { return false }
        let age = Self.now() - renewedAt.load(ordering: .acquiring)
        return Double(age) < Double(lease.milliseconds) * 1_000_000 * Self.safeFraction
    }

    func start() { renewer.register(self) }

    /// Stops renewing (no renewal of this lease is in flight once it returns); the worker
    /// releases or abandons the lease itself.
    func stop() { renewer.unregister(self) }

    static func now() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }

    func isDue(at now: Int64) -> Bool { now >= nextSendAt.load(ordering: .relaxed) }

    /// A renewal was sent at `sent` and answered: `kept` is false when another worker holds it.
    func renewed(sentAt sent: Int64, kept: Bool) {
        nextSendAt.store(sent + intervalNanoseconds, ordering: .relaxed)
        if kept {
            renewedAt.store(sent, ordering: .releasing)
        } else {
            logger.warning("lease lost to another worker", metadata: ["lease": "\(lease.key)"])
            lost.store(true, ordering: .releasing)
        }
    }

    /// A renewal sent at `sent` got no answer: the next is due after one interval, as after a success.
    func failed(sentAt sent: Int64) {
        nextSendAt.store(sent + intervalNanoseconds, ordering: .relaxed)
    }
}
