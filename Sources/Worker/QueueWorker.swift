import Foundation
import JobWire
import Ledger
import Logging
import Redis

/// The worker's loop, on a thread of its own: stand by until the lease is free, then take
/// batches, apply them, send what follows, and run scheduled renewals between batches.
///
/// Blocking hiredis calls and SQLite commits would starve Swift's cooperative thread pool, so
/// this loop owns a plain thread, its Redis connection and the ledger's write side; nothing here
/// is shared with another thread except the stop signal and the lease keeper's flag.
final class QueueWorker {
    let configuration: WorkerConfiguration
    let ledger: Ledger
    let clock: any LedgerClock
    let stop: StopSignal
    var logger: Logger
    let metrics = WorkerMetrics()

    var redis: RedisConnection?
    var queue: JobQueue?
    var keeper: LeaseKeeper?
    var epoch: Int64?
    var scheduler: RenewalScheduler
    let lease: Lease
    private let processor: BatchProcessor
    /// Set after any Redis failure: taken jobs may sit in our processing list unanswered.
    var needsRecovery = true
    /// The steady state's Redis thread, and what it has in flight.
    var io: RedisIO?
    var prefetched: RedisIO.Pending<DecodedBatch>?
    var sending: [RedisIO.Pending<[String]>] = []
    private var lastSweep = ContinuousClock.now
    private var reconnectsSeen = 0
    private var lastDepthSample = ContinuousClock.now - .seconds(60)

    init(configuration: WorkerConfiguration, ledger: Ledger, clock: any LedgerClock, stop: StopSignal, logger: Logger) {
        self.configuration = configuration
        self.ledger = ledger
        self.clock = clock
        self.stop = stop
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.workerId)"
        self.logger = logger
        lease = Lease(key: configuration.keys.lease, workerId: configuration.workerId,
                      milliseconds: configuration.leaseMilliseconds)
        scheduler = RenewalScheduler(schedule: configuration.renewalSchedule, chunkSize: configuration.renewalBatchSize,
                                     clock: clock, logger: logger)
        processor = BatchProcessor(ledger: ledger, keys: configuration.keys, replyExpirySeconds: configuration.replyExpirySeconds,
                                   clock: clock, logger: logger, metrics: metrics)
    }

    var isActive: Bool { epoch != nil }

    /// Runs until the stop signal: finishes the batch in hand, releases the lease, returns.
    func run() {
        logger.info("worker starting", metadata: ["redis": "\(configuration.redis)", "queue": "\(configuration.keys.jobs)"])
        var failures = 0
        while !stop.isStopped {
            do {
                let redis = try connection()
                if !isActive {
                    guard try becomeActive(redis) else {
                        pause(seconds: min(1, Double(configuration.leaseMilliseconds) / 5000))
                        continue
                    }
                }
                guard keeper?.isHeld == true else {
                    standBy(reason: "lease lost")
                    continue
                }
                try step(redis)
                failures = 0
            } catch let error as LedgerStorageError {
                if case .fenced = error { standBy(reason: "fenced by a newer worker: \(error)") } else { failed(error, &failures) }
            } catch let error as RedisError {
                metrics.redisErrors.increment()
                settleIO()
                needsRecovery = true
                logger.error("redis unavailable; retrying", metadata: ["error": "\(error)"])
                failed(error, &failures)
            } catch {
                metrics.storageErrors.increment()
                failed(error, &failures)
            }
        }
        shutDown()
    }

    /// One turn of the active loop.
    private func step(_ redis: RedisConnection) throws {
        guard let queue, let epoch else { return }
        if needsRecovery {
            try recover(queue, epoch: epoch)
            needsRecovery = false
        }
        var renewing = false
        if try scheduler.dueSlot(ledger) != nil {
            let (summary, done) = try scheduler.runChunk(ledger, epoch: epoch)
            var outbox = Outbox(keys: configuration.keys, replyExpirySeconds: configuration.replyExpirySeconds)
            for change in summary.changes { outbox.publish(change.json) }
            metrics.invalidations.increment(by: outbox.invalidations)
            try sendNow(outbox)
            metrics.renewals.increment(by: summary.successful)
            if done { metrics.renewalRuns.increment() }
            renewing = !done
        }
        if ContinuousClock.now - lastDepthSample > .seconds(2) {
            lastDepthSample = ContinuousClock.now
            metrics.queueDepth.record(try redis.llen(configuration.keys.jobs))
        }
        // While a renewal run is in progress, take only what is already waiting.
        let io = try self.io ?? RedisIO(configuration: configuration.redis, keys: configuration.keys, workerId: configuration.workerId)
        self.io = io
        let wait = renewing ? 0 : configuration.pollSeconds
        var batch: DecodedBatch
        if let next = prefetched {
            prefetched = nil
            batch = try next.wait()
            // The queue was empty a moment ago: block for the next job without asking again.
            if batch.isEmpty && wait > 0 { batch = try io.waitForOne(timeout: wait).wait() }
        } else {
            batch = try io.take(max: configuration.batchSize, timeout: wait).wait()
        }
        try collectSent()
        noteReconnects(redis.reconnectCount + io.reconnectCount)
        if batch.isEmpty {
            if ContinuousClock.now - lastSweep > .seconds(5) {
                lastSweep = ContinuousClock.now
                try recoverOthers(queue, epoch: epoch)
            }
            return
        }
        // Take the next batch while this one commits; send this one's outbox after it.
        if !stop.isStopped { prefetched = io.take(max: configuration.batchSize, timeout: 0) }
        try apply(batch, epoch: epoch, acknowledgement: { queue.acknowledgement(count: $0) }) { outbox in
            sending.append(io.send(outbox))
        }
        // One slice of index maintenance, while the Redis thread sends this batch's outbox.
        try ledger.maintain(epoch: epoch)
    }

    /// Connections replace a broken link by themselves when they can (a Redis restart noticed
    /// before a command was written loses nothing); this makes it visible.
    private func noteReconnects(_ total: Int) {
        guard total > reconnectsSeen else { return }
        metrics.redisReconnects.increment(by: total - reconnectsSeen)
        reconnectsSeen = total
        logger.warning("redis link broke and was re-established", metadata: ["reconnects": "\(total)"])
    }

    /// Checks the outboxes sent so far: error replies are logged; a broken link is thrown.
    private func collectSent() throws(RedisError) {
        let done = sending
        sending = []
        for pending in done {
            for problem in try pending.wait() {
                logger.warning("a reply or message was refused by Redis", metadata: ["error": "\(problem)"])
            }
        }
    }

    /// Lets the Redis thread finish what it has in flight (a prefetched batch stays in the
    /// processing list, to be replayed or given back) and drops it.
    func settleIO() {
        io?.drain()
        _ = try? collectSent()
        reconnectsSeen -= io?.reconnectCount ?? 0
        io = nil
        prefetched = nil
    }

    /// Applies jobs and sends their outbox. A storage failure is retried with backoff; after
    /// `maxAttempts`, the batch is applied one job at a time, and a job that still fails is
    /// dead-lettered with the reason, so a poisoned write cannot stall the queue.
    func apply(_ batch: DecodedBatch, epoch: Int64, acknowledgement: (Int) -> RedisCommand,
                       send: (Outbox) throws -> Void) throws {
        var attempt = 0
        while true {
            do {
                let started = ContinuousClock.now
                let outbox = try processor.process(batch, epoch: epoch, acknowledgement: acknowledgement(batch.count))
                let committed = ContinuousClock.now
                metrics.invalidations.increment(by: outbox.invalidations)
                try send(outbox)
                logger.info("batch committed", metadata: [
                    "jobs": "\(batch.count)", "replies": "\(outbox.replies)", "invalidations": "\(outbox.invalidations)",
                    "deadLetters": "\(outbox.deadLetters)", "applyMs": "\((committed - started).milliseconds)",
                    "sendMs": "\((ContinuousClock.now - committed).milliseconds)",
                ])
                return
            } catch let error as LedgerStorageError {
                throw error
            } catch let error as RedisError {
                throw error
            } catch {
                attempt += 1
                lastErrorDescription = "\(error)"
                metrics.storageErrors.increment()
                logger.error("batch failed; it stays in the processing list", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                if attempt >= configuration.maxAttempts { break }
                pause(seconds: min(2, 0.05 * Double(1 << attempt)))
                if stop.isStopped { return }
            }
        }
        guard batch.count > 1 else {
            // One job that keeps failing: dead-letter it with the reason.
            var outbox = Outbox(keys: configuration.keys, replyExpirySeconds: configuration.replyExpirySeconds)
            let job = try? batch.jobs[0].get()
            let invalid = InvalidJob(raw: batch.raws[0], error: JobError(code: "storage_error", "The job failed \(configuration.maxAttempts) times: \(lastErrorDescription)"),
                                     id: job?.id, type: job?.type.rawValue, replyTo: job?.replyTo)
            processor.deadLetter(invalid, into: &outbox)
            outbox.append(acknowledgement(1))
            try send(outbox)
            return
        }
        for raw in batch.raws { try apply(DecodedBatch([raw]), epoch: epoch, acknowledgement: acknowledgement, send: send) }
    }

    private var lastErrorDescription = ""

    /// Sends an outbox on the loop's own connection; error replies of single commands are logged.
    func sendNow(_ outbox: Outbox) throws {
        guard let redis else { throw RedisError.connection("not connected") }
        for problem in try outbox.flush(redis) {
            logger.warning("a reply or message was refused by Redis", metadata: ["error": "\(problem)"])
        }
    }

    // MARK: Helpers

    private func connection() throws(RedisError) -> RedisConnection {
        if let redis { return redis }
        let made = try RedisConnection(configuration: configuration.redis)
        redis = made
        queue = JobQueue(redis: made, keys: configuration.keys, workerId: configuration.workerId)
        return made
    }

    private func failed(_ error: any Error, _ failures: inout Int) {
        failures += 1
        lastErrorDescription = "\(error)"
        if !(error is RedisError) { logger.error("worker step failed", metadata: ["error": "\(error)"]) }
        pause(seconds: min(5, 0.05 * Double(1 << min(failures, 7))))
    }

    /// Sleeps in short slices so that a stop is seen quickly.
    func pause(seconds: Double) {
        var left = seconds
        while left > 0 && !stop.isStopped {
            usleep(useconds_t(min(left, 0.05) * 1_000_000))
            left -= 0.05
        }
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: Swift.max(1, size)).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
