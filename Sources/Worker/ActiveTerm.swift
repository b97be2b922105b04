import Foundation
import Redis

/// What a worker holds while it is the active one: its epoch in the ledger, the lease keeper,
/// and the Redis thread with the work it has in flight. Standing by ends the term; the next
/// takeover starts a new one, with a new epoch.
final class ActiveTerm {
    let epoch: Int64
    let keeper: LeaseKeeper
    private let configuration: WorkerConfiguration
    private var io: RedisIO?
    private var prefetched: RedisIO.Pending<TakenBatch>?
    /// Outboxes in flight, each with the last `pending_sends` row it announces.
    private var sending: [(sent: RedisIO.Pending<[String]>, pendingSeq: Int64?)] = []
    /// Reconnects counted by Redis threads this term has dropped (for the metric).
    private(set) var droppedReconnects = 0
    /// The ledger's `pending_sends` rows queued on the path, and those known to have left.
    private(set) var pendingQueued: Int64?
    private(set) var pendingConfirmed: Int64?
    /// Whether what the ledger kept to send was sent again in this term (at start, after a drop).
    var resentPending = false
    /// Processing lists may hold jobs taken and not answered: at the term's start (a crashed or
    /// stopped worker's, this one's before a restart) and after any Redis failure. Recovery
    /// settles them before anything newer is taken.
    var recoveryDue = true
    /// A batch of this term was left unsettled (a stop came while the ledger failed): from then
    /// on no batch commits in this term, so nothing newer can precede it. Never reset; the next
    /// term settles the lists left, oldest first.
    private(set) var holdsUnsettled = false

    func leaveUnsettled() { holdsUnsettled = true }

    init(epoch: Int64, keeper: LeaseKeeper, configuration: WorkerConfiguration) {
        self.epoch = epoch
        self.keeper = keeper
        self.configuration = configuration
    }

    /// The last wait timed out with `P:jobs` empty, and no take has run since.
    private var waitFoundNothing = false

    var reconnects: Int { droppedReconnects + (io?.reconnectCount ?? 0) }

    private func redisIO() throws(RedisError) -> RedisIO {
        if let io { return io }
        // Lists are numbered from the time the thread starts, so that a new thread's lists sort
        // after the ones before it.
        let made = try RedisIO(configuration: configuration, firstSequence: UInt64(Date().timeIntervalSince1970 * 1_000_000))
        io = made
        return made
    }

    /// The batch taken ahead if any, else a take of what waits. Nil, when `mayWait`, once the
    /// queue is found empty: the loop then starts a wait for jobs (`JobQueue.startWaitForJobs`)
    /// on its own connection, which the loop pool polls, never on the Redis thread, which
    /// partitions share (`RedisIO.lanes`) and which stays free to send meanwhile. After a wait
    /// that found the queue empty, the next turn waits again without a take: a job pushed since
    /// ends that wait at once, so an idle partition sends one command per wait.
    func nextBatch(mayWait: Bool) throws -> TakenBatch? {
        let io = try redisIO()
        if let next = prefetched {
            prefetched = nil
            let batch = try next.wait()
            if !batch.isEmpty || !mayWait { return batch }
        }
        if waitFoundNothing && mayWait { return nil }
        let batch = try io.take(max: configuration.batchSize).wait()
        return batch.isEmpty && mayWait ? nil : batch
    }

    /// How the wait for jobs ended: with jobs in the queue (or a reply to look into), or empty.
    func waited(found: Bool) {
        waitFoundNothing = !found
    }

    /// Takes the next batch while the current one commits. Only after a full batch: a batch
    /// that was not full emptied the queue, and jobs that come during its commit are taken
    /// sooner by the take after it than by one made at its start.
    func prefetch(after batch: TakenBatch) {
        guard batch.count >= configuration.batchSize else { return }
        guard let io, prefetched == nil else { return }
        prefetched = io.take(max: configuration.batchSize)
    }

    /// The batch taken ahead, for a stop: it is in hand, so it is finished before exiting.
    func takePrefetched() -> TakenBatch? {
        defer { prefetched = nil }
        return try? prefetched?.wait()
    }

    /// Queues an outbox on the one ordered path; it leaves after everything queued before it.
    func send(_ outbox: Outbox) throws(RedisError) {
        guard !outbox.isEmpty else { return }
        sending.append((try redisIO().send(outbox), outbox.pendingSeq))
        if let seq = outbox.pendingSeq { pendingQueued = max(pendingQueued ?? seq, seq) }
    }

    /// Queues a committed batch on the one ordered path: the Redis thread builds its outbox
    /// (`processor.outbox(for:)`) and sends it after everything queued before it, while this
    /// thread goes on to the next batch.
    func send(_ committed: CommittedBatch, by processor: BatchProcessor) throws(RedisError) {
        sending.append((try redisIO().send(building: { processor.outbox(for: committed) }), committed.pendingSeq))
        if let seq = committed.pendingSeq { pendingQueued = max(pendingQueued ?? seq, seq) }
    }

    /// Waits for the outboxes queued so far (all but the last `leaving` of them); returns the
    /// refusals that were the producer's own and throws when the link broke or Redis refused.
    /// Each outbox that left confirms its rows at once, so after a failure only the rows of
    /// outboxes that did not leave are sent again.
    func collectSent(leaving: Int = 0) throws -> [String] {
        let done = sending.dropLast(leaving)
        sending.removeFirst(done.count)
        var problems: [String] = []
        for (pending, seq) in done {
            problems += try pending.wait()
            if let seq { pendingConfirmed = max(pendingConfirmed ?? seq, seq) }
        }
        return problems
    }

    /// Lets the Redis thread finish what it has in flight and drops it (after a Redis failure):
    /// a batch taken ahead stays in its processing list, to be settled by recovery.
    func dropIO() -> [String] {
        io?.drain()
        let problems = (try? collectSent()) ?? []
        droppedReconnects += io?.reconnectCount ?? 0
        io = nil
        prefetched = nil
        // What was queued may not have left: send the kept rows again from the ledger.
        pendingQueued = pendingConfirmed
        resentPending = false
        return problems
    }

    /// Ends the term: outboxes already queued leave, the keeper stops renewing.
    func end() -> [String] {
        let problems = dropIO()
        keeper.stop()
        return problems
    }
}
