import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A loop the pool runs one turn at a time. A turn may block on the ledger (a commit is mostly a
/// wait for fsync) or on a round trip, but never on an idle queue: it returns `.wait`, and the
/// pool's one poller watches the wait's socket with every other idle partition's.
protocol PooledLoop: AnyObject {
    func turn(_ wake: Wake) -> Turn
}

/// What a loop asks of the pool after a turn.
enum Turn: Equatable {
    /// Run again as soon as a thread is free: work in hand, or a chore due.
    case again
    /// Idle: a wait for jobs was written on the socket `descriptor`; run again when its answer
    /// is readable, or after `seconds` at the latest (a server that never answers).
    case wait(descriptor: Int32, seconds: Double)
    /// Run again after `seconds`: standing by, or backing off after a failure.
    case sleep(seconds: Double)
    /// Stopped: never run again.
    case finished
}

/// Why a turn runs.
enum Wake: Equatable {
    /// The first turn, a turn after `.again`, or after a sleep.
    case ready
    /// The wait's socket is readable: its answer can be read without blocking.
    case answered
    /// The wait's time ran out with no answer: the link is suspect.
    case unanswered
    /// The stop came while the loop waited or slept: a wait's answer will never be read.
    case stopped
}

/// The threads that run every partition's loop: as many as the cores (at least two) whatever the
/// number of partitions, plus one poller for all the idle ones. A thread per partition cost 64
/// threads for 64 partitions, each mostly parked in a wait for jobs.
///
/// Each loop is in exactly one place at a time: queued to run, running on one thread, or parked
/// with the poller; a turn ends before the loop moves, and the hand-offs go through the queue's
/// lock, so a loop's state is only ever touched by one thread at a time. That invariant is what
/// `@unchecked Sendable` records, and `inTurn` checks it at every turn.
///
/// Loops ready to run are served in turn (first in, first out): a partition with a deep queue
/// takes one batch per turn, then goes behind the others.
final class LoopPool: @unchecked Sendable {
    static let defaultThreadCount = max(2, ProcessInfo.processInfo.activeProcessorCount)

    private let loops: [any PooledLoop]
    private let stop: StopSignal
    private let threadCount: Int

    private struct Parked: Sendable {
        var loop: Int
        var descriptor: Int32?
        var deadline: ContinuousClock.Instant
    }

    /// Guards `ready`, `readyHead`, `finished` and `inTurn`.
    private let readyLock = NSCondition()
    private var ready: [(loop: Int, wake: Wake)] = []
    private var readyHead = 0
    private var finished = 0
    private let parked = Mutex<[Parked]>([])
    private var inTurn: [Bool]
    /// A pipe that wakes the poller: a loop parked, the stop came, or every loop finished.
    private let doorbell: (read: Int32, write: Int32)

    init(loops: [any PooledLoop], stop: StopSignal, threadCount: Int = LoopPool.defaultThreadCount) {
        precondition(threadCount > 0, "a loop pool needs a thread")
        self.loops = loops
        self.stop = stop
        self.threadCount = min(threadCount, max(1, loops.count))
        inTurn = Array(repeating: false, count: loops.count)
        var ends: [Int32] = [0, 0]
        precondition(pipe(&ends) == 0, "no pipe for the loop pool: \(errno)")
        for end in ends { _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK) }
        doorbell = (ends[0], ends[1])
    }

    deinit {
        close(doorbell.read)
        close(doorbell.write)
    }

    /// Starts the threads; `done` runs once every loop has finished (after the stop).
    func start(done: @escaping @Sendable () -> Void) {
        guard !loops.isEmpty else { return done() }
        ready = loops.indices.map { ($0, .ready) }
        stop.onStop { [self] in ring() }
        for number in 0..<threadCount {
            let thread = Thread { [self] in
                serve()
                if number == 0 { done() }
            }
            thread.name = "tokenledger-loop-\(number)"
            thread.stackSize = 8 << 20
            thread.start()
        }
        let poller = Thread { [self] in poll() }
        poller.name = "tokenledger-poller"
        poller.start()
    }

    // MARK: Running turns

    /// Runs turns until every loop has finished (so `done`, on thread 0, runs after every turn).
    private func serve() {
        while let (loop, wake) = next() {
            let turn = loops[loop].turn(wake)
            readyLock.lock()
            inTurn[loop] = false
            readyLock.unlock()
            switch turn {
            case .again: enqueue(loop, .ready)
            case .wait(let descriptor, let seconds): park(Parked(loop: loop, descriptor: descriptor, deadline: .now + .seconds(seconds)))
            case .sleep(let seconds): park(Parked(loop: loop, descriptor: nil, deadline: .now + .seconds(seconds)))
            case .finished: finish()
            }
        }
    }

    /// The next loop to run; nil once every loop has finished.
    private func next() -> (Int, Wake)? {
        readyLock.lock()
        defer { readyLock.unlock() }
        while readyHead == ready.count && finished < loops.count { readyLock.wait() }
        guard finished < loops.count else { return nil }
        let item = ready[readyHead]
        precondition(!inTurn[item.loop], "loop \(item.loop) given two turns at once")
        inTurn[item.loop] = true
        readyHead += 1
        // Under load the queue never empties (each turn queues its loop again behind the
        // others), so what was served is dropped once it is half the array.
        if readyHead == ready.count {
            ready.removeAll(keepingCapacity: true)
            readyHead = 0
        } else if readyHead >= 64 && readyHead * 2 >= ready.count {
            ready.removeFirst(readyHead)
            readyHead = 0
        }
        return item
    }

    private func enqueue(_ loop: Int, _ wake: Wake) {
        readyLock.lock()
        ready.append((loop, wake))
        readyLock.signal()
        readyLock.unlock()
    }

    private func finish() {
        readyLock.lock()
        finished += 1
        let all = finished == loops.count
        if all { readyLock.broadcast() }
        readyLock.unlock()
        if all { ring() }
    }

    /// Entries of the ready queue held, served ones included (for tests: it stays bounded).
    var readyBacklog: Int {
        readyLock.lock()
        defer { readyLock.unlock() }
        return ready.count
    }

    private var allFinished: Bool {
        readyLock.lock()
        defer { readyLock.unlock() }
        return finished == loops.count
    }

    // MARK: The poller

    private func park(_ loop: Parked) {
        parked.withLock { $0.append(loop) }
        ring()
    }

    private func ring() {
        var byte: UInt8 = 1
        _ = write(doorbell.write, &byte, 1)  // a full pipe has rung already
    }

    /// Watches every parked loop's socket and deadline with one `poll(2)`, and queues each loop
    /// whose answer came, whose time ran out, or, at the stop, every one.
    private func poll() {
        var drained = [UInt8](repeating: 0, count: 64)
        while !allFinished {
            let now = ContinuousClock.now
            let waiting = parked.withLock { $0 }
            var descriptors = [pollfd(fd: doorbell.read, events: Int16(POLLIN), revents: 0)]
            var watched: [Int] = []  // index into `waiting` of each descriptor after the doorbell
            var soonest: ContinuousClock.Instant?
            for (index, loop) in waiting.enumerated() {
                if let fd = loop.descriptor {
                    descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
                    watched.append(index)
                }
                soonest = min(soonest ?? loop.deadline, loop.deadline)
            }
            let stopping = stop.isStopped
            var timeout: Int32 = -1
            if stopping {
                // Loops still in their last turn park nothing more; each that finishes rings.
                timeout = waiting.isEmpty ? -1 : 0
            } else if let soonest {
                let left = soonest - now
                timeout = left <= .zero ? 0 : Int32(min(60_000, left.nanoseconds / 1_000_000 + 1))
            }
            _ = Glibc.poll(&descriptors, nfds_t(descriptors.count), timeout)
            if descriptors[0].revents != 0 { while read(doorbell.read, &drained, drained.count) > 0 {} }
            let after = ContinuousClock.now
            var due: [(loop: Int, wake: Wake)] = []
            var answered = Set<Int>()
            for (slot, index) in watched.enumerated() where descriptors[slot + 1].revents != 0 {
                answered.insert(index)
            }
            for (index, loop) in waiting.enumerated() {
                if stop.isStopped {
                    due.append((loop.loop, .stopped))
                } else if answered.contains(index) {
                    due.append((loop.loop, .answered))
                } else if loop.deadline <= after {
                    due.append((loop.loop, loop.descriptor == nil ? .ready : .unanswered))
                }
            }
            guard !due.isEmpty else { continue }
            let leaving = Set(due.map(\.loop))
            parked.withLock { $0.removeAll { leaving.contains($0.loop) } }
            for (loop, wake) in due { enqueue(loop, wake) }
        }
    }
}
