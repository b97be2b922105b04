import Foundation
import Ledger
import Logging
import ServiceLifecycle

/// The worker as a swift-service-lifecycle `Service`: SIGTERM or SIGINT (through the service
/// group's graceful shutdown) stops it taking jobs; it finishes the batch in hand, releases the
/// lease and returns, so the process exits 0.
public struct WorkerService: Service {
    public let configuration: WorkerConfiguration
    public let ledger: Ledger
    public let clock: any LedgerClock
    public let logger: Logger
    /// What keeps the worker from serving, for `/readyz`.
    public let health: WorkerHealth

    public init(configuration: WorkerConfiguration, ledger: Ledger, clock: any LedgerClock = SystemClock(), logger: Logger,
                health: WorkerHealth = WorkerHealth()) {
        self.configuration = configuration
        self.ledger = ledger
        self.clock = clock
        self.logger = logger
        self.health = health
    }

    public func run() async throws {
        let stop = StopSignal()
        // Asked to stop while starting: the group traps signals now, but that one came before.
        if EarlyShutdownSignals.wereReceived { stop.stop() }
        let (configuration, ledger, clock, logger, health) = (self.configuration, self.ledger, self.clock, self.logger, self.health)
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    // The loop blocks on Redis and SQLite, so it gets a thread of its own rather
                    // than a slot of the cooperative pool.
                    let thread = Thread {
                        QueueWorker(configuration: configuration, ledger: ledger, clock: clock, stop: stop, health: health, logger: logger).run()
                        done.resume()
                    }
                    thread.name = "tokenledger-worker"
                    thread.stackSize = 8 << 20
                    thread.start()
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
