import Foundation
import Ledger
import Logging
import ServiceLifecycle
import Synchronization

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

    public init(partitions: [Partition], clock: any LedgerClock = SystemClock(), logger: Logger) {
        self.partitions = partitions
        self.clock = clock
        self.logger = logger
    }

    /// One partition (or the whole ledger when it is not split).
    public init(configuration: WorkerConfiguration, ledger: Ledger, clock: any LedgerClock = SystemClock(), logger: Logger,
                health: WorkerHealth = WorkerHealth()) {
        self.init(partitions: [Partition(configuration: configuration, ledger: ledger, health: health)], clock: clock, logger: logger)
    }

    public func run() async throws {
        let stop = StopSignal()
        // Asked to stop while starting: the group traps signals now, but that one came before.
        if EarlyShutdownSignals.wereReceived { stop.stop() }
        let (partitions, clock, logger) = (self.partitions, self.clock, self.logger)
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    let running = Atomic<Int>(partitions.count)
                    guard !partitions.isEmpty else { return done.resume() }
                    for partition in partitions {
                        // Each loop blocks on Redis and SQLite, so it gets a thread of its own
                        // rather than a slot of the cooperative pool.
                        let thread = Thread {
                            QueueWorker(configuration: partition.configuration, ledger: partition.ledger, clock: clock, stop: stop,
                                        health: partition.health, logger: logger).run()
                            if running.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { done.resume() }
                        }
                        thread.name = "tokenledger-worker"
                        thread.stackSize = 8 << 20
                        thread.start()
                    }
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
