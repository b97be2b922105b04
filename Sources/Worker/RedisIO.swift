import Dispatch
import Foundation
import Redis
import Synchronization

/// The Redis side of the steady state, off the loop's thread: taking the next batch and sending
/// the last one's outbox overlap with the ledger's commit, which is mostly a wait for fsync.
///
/// Work runs in submission order on one serial queue (on a lane shared with other partitions):
/// it is the one path by which the active worker sends outboxes (batches, renewal chunks,
/// recoveries), so invalidations leave in commit order, and a take queued after an outbox runs
/// after it. The connection is touched
/// only on that queue; that invariant is what `@unchecked Sendable` records.
/// After the first failure every later operation fails at once with the same error, so the worker
/// sees it on its next wait, drops this object and recovers on its own connection.
final class RedisIO: @unchecked Sendable {
    /// One partition's work, in order, on one of the process's lanes.
    private let serial: DispatchQueue

    /// The threads that carry every partition's Redis work: as many as the cores (at least
    /// two), whatever the number of partitions. Their work is round trips and encoding, never a
    /// long wait (the wait for a job is polled by the loop pool, on the loop's own connection), so partitions that
    /// share a lane only queue behind each other's sends.
    static let lanes: [DispatchQueue] = (0..<max(2, ProcessInfo.processInfo.activeProcessorCount)).map {
        DispatchQueue(label: "tokenledger.redis-io.\($0)")
    }
    private let queue: JobQueue
    private var failure: (any Error)?
    private let reconnects = Atomic<Int>(0)

    /// How many times this thread's connection replaced a broken link by itself (for logs).
    var reconnectCount: Int { reconnects.load(ordering: .relaxed) }

    init(configuration: WorkerConfiguration, firstSequence: UInt64) throws(RedisError) {
        queue = JobQueue(redis: try configuration.redis.connect(), configuration: configuration,
                         firstSequence: firstSequence)
        serial = DispatchQueue(label: "tokenledger.redis-io", target: Self.lanes[(configuration.keys.partition ?? 0) % Self.lanes.count])
    }

    /// The result of work submitted to the I/O thread.
    final class Pending<Value>: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var result: Result<Value, any Error>?

        fileprivate func finish(_ result: Result<Value, any Error>) {
            self.result = result
            done.signal()
        }

        /// Blocks until the work is done; the semaphore orders the read after the write.
        func wait() throws -> Value {
            done.wait()
            done.signal()
            guard let result else { throw RedisError.connection("the Redis thread finished without a result") }
            return try result.get()
        }
    }

    private func submit<Value>(_ work: @escaping @Sendable (JobQueue) throws -> Value) -> Pending<Value> {
        let pending = Pending<Value>()
        serial.async { [self] in
            if let failure { return pending.finish(.failure(failure)) }
            defer { reconnects.store(queue.redis.reconnectCount, ordering: .relaxed) }
            do {
                pending.finish(.success(try work(queue)))
            } catch {
                failure = error
                pending.finish(.failure(error))
            }
        }
        return pending
    }

    /// Takes up to `max` of the jobs waiting (see `JobQueue.take`) and decodes them here, off
    /// the ledger's thread.
    func take(max: Int) -> Pending<TakenBatch> {
        submit { queue in try queue.take(max: max) }
    }

    /// Sends an outbox; returns the refusals that were the producer's own. Its ordered part
    /// checks that the lease is still held by this worker (the holder the take script checks).
    func send(_ outbox: Outbox) -> Pending<[String]> {
        submit { queue in try outbox.flush(queue.redis, holder: queue.leaseHolder) }
    }

    /// Builds an outbox here (`make`: a committed batch's encoding, off the ledger's thread),
    /// then sends it as `send` does, in the same place on the one ordered path.
    func send(building make: @escaping @Sendable () -> Outbox) -> Pending<[String]> {
        submit { queue in try make().flush(queue.redis, holder: queue.leaseHolder) }
    }

    /// Waits until everything submitted so far is done (whatever its outcome).
    func drain() {
        serial.sync {}
    }
}
