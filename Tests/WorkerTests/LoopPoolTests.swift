import Foundation
import XCTest
@testable import Worker

/// The loop pool on its own: turns served in turn, one at a time per loop, sleeps and the stop.
final class LoopPoolTests: XCTestCase {
    /// Which loop ran, turn by turn, across the pool's threads.
    final class TurnLog: @unchecked Sendable {
        private let lock = NSLock()
        private var ids: [Int] = []
        func append(_ id: Int) { lock.withLock { ids.append(id) } }
        var all: [Int] { lock.withLock { ids } }
    }

    /// A loop that asks for `turns` turns, each right after the last, and counts them.
    final class Busy: PooledLoop, @unchecked Sendable {
        let turns: Int
        var done = 0
        let id: Int
        weak var pool: LoopPool?
        var largestBacklog = 0
        let log: TurnLog

        init(id: Int, turns: Int, log: TurnLog) {
            self.id = id
            self.turns = turns
            self.log = log
        }

        func turn(_ wake: Wake) -> Turn {
            done += 1
            log.append(id)
            largestBacklog = max(largestBacklog, pool?.readyBacklog ?? 0)
            return done == turns ? .finished : .again
        }
    }

    func testBusyLoopsTakeTurnsInTurnAndTheQueueStaysBounded() throws {
        let log = TurnLog()
        let loops = (0..<3).map { Busy(id: $0, turns: 20_000, log: log) }
        let pool = LoopPool(loops: loops, stop: StopSignal(), threadCount: 1)
        for loop in loops { loop.pool = pool }
        let finished = DispatchSemaphore(value: 0)
        pool.start { finished.signal() }
        XCTAssertEqual(finished.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(loops.map { $0.done }, [20_000, 20_000, 20_000])
        let order = log.all
        XCTAssertEqual(Array(order.prefix(9)), [0, 1, 2, 0, 1, 2, 0, 1, 2], "first in, first out")
        XCTAssertLessThan(loops.map { $0.largestBacklog }.max() ?? 0, 200, "served entries are dropped while the queue never empties")
    }

    /// A loop that sleeps, then sees the stop: the stop ends its sleep at once.
    final class Sleeper: PooledLoop, @unchecked Sendable {
        var wakes: [Wake] = []
        func turn(_ wake: Wake) -> Turn {
            wakes.append(wake)
            return wake == .stopped ? .finished : .sleep(seconds: 30)
        }
    }

    func testTheStopEndsEverySleepAtOnce() throws {
        let loops = (0..<8).map { _ in Sleeper() }
        let stop = StopSignal()
        let pool = LoopPool(loops: loops, stop: stop, threadCount: 2)
        let finished = DispatchSemaphore(value: 0)
        pool.start { finished.signal() }
        usleep(200_000)
        let stopped = ContinuousClock.now
        stop.stop()
        XCTAssertEqual(finished.wait(timeout: .now() + 5), .success)
        XCTAssertLessThan(ContinuousClock.now - stopped, .seconds(1))
        for loop in loops { XCTAssertEqual(loop.wakes, [.ready, .stopped]) }
    }
}
