import Foundation
import Ledger
import Logging
import ServiceLifecycle

/// The worker as a swift-service-lifecycle `Service`: SIGTERM or SIGINT (through the service
/// group's graceful shutdown) stops it taking jobs; it finishes the batch in hand, releases the
/// lease and returns, so the process exits 0.
///
/// One service serves every partition of the process: the group shuts its services down one
/// after another, so a service per partition would make a stop wait out each partition's idle
/// wait in turn, while here one stop reaches every loop at once.
public struct WorkerService: Service {
    /// One partition served: its configuration, its ledger and what keeps it from serving.
    public struct Partition: Sendable {
        public let configuration: WorkerConfiguration
        public let ledger: Ledger
        public let health: WorkerHealth

        public init(configuration: WorkerConfiguration, ledger: Ledger, health: WorkerHealth = WorkerHealth()) {
            self.configuration = configuration
            self.ledger = ledger
            self.health = health
        }
    }

    public let partitions: [Partition]
    public let clock: any LedgerClock
    public let logger: Logger
    /// The threads that run the partitions' turns, whatever their number.
    public let loopThreads: Int

    public init(partitions: [Partition], clock: any LedgerClock = SystemClock(), logger: Logger,
                loopThreads: Int = WorkerService.defaultLoopThreads) {
        self.partitions = partitions
        self.clock = clock
        self.logger = logger
        self.loopThreads = loopThreads
    }

    /// As many as the cores, at least two.
    public static var defaultLoopThreads: Int { LoopPool.defaultThreadCount }

    /// One partition (or the whole ledger when it is not split).
    public init(configuration: WorkerConfiguration, ledger: Ledger, clock: any LedgerClock = SystemClock(), logger: Logger,
                health: WorkerHealth = WorkerHealth()) {
        self.init(partitions: [Partition(configuration: configuration, ledger: ledger, health: health)], clock: clock, logger: logger)
    }

    public func run() async throws {
        let stop = StopSignal()
        // Asked to stop while starting: the group traps signals now, but that one came before.
        if EarlyShutdownSignals.wereReceived { stop.stop() }
        let (partitions, clock, logger, loopThreads) = (self.partitions, self.clock, self.logger, self.loopThreads)
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    // Each loop blocks on Redis and SQLite, so turns run on the pool's plain
                    // threads rather than in slots of the cooperative pool.
                    let loops = partitions.map {
                        QueueWorker(configuration: $0.configuration, ledger: $0.ledger, clock: clock, stop: stop,
                                    health: $0.health, logger: logger)
                    }
                    LoopPool(loops: loops, stop: stop, threadCount: loopThreads).start { done.resume() }
                }
            } onGracefulShutdown: {
                logger.info("graceful shutdown requested: finishing the batch in hand")
                stop.stop()
            }
        } onCancel: {
            stop.stop()
        }
    }
}
