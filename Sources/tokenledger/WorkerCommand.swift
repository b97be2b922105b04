import ArgumentParser
import Foundation
import Ledger
import Logging
import Metrics
import OperatorHTTP
import Prometheus
import Redis
import ServiceLifecycle
import Worker

/// Options only the worker has.
struct WorkerOptions: ParsableArguments {
    @Option(help: "host:port of /metrics, /healthz and /readyz, or 'off'. Env: TOKENLEDGER_HTTP. Default: 127.0.0.1:9464.")
    var http: String?

    @Option(help: "This worker's id (names its processing list). Env: TOKENLEDGER_WORKER_ID. Default: hostname-pid.")
    var workerId: String?

    @Option(help: "The most jobs applied in one transaction (1-4096). Env: TOKENLEDGER_BATCH_SIZE. Default: 256.")
    var batchSize: Int?

    @Option(help: "The partitions this process serves: 'all' or a list such as 0-1,3. Env: TOKENLEDGER_PARTITIONS. Default: all.")
    var partitions: String?
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Serve the queue until SIGTERM or SIGINT (then finish the batch in hand and exit 0).")

    @OptionGroup var settings: SettingsOptions
    @OptionGroup var worker: WorkerOptions

    func run() async throws {
        #if canImport(Glibc)
        // At most two malloc arenas, before the loop's, Redis and checkpoint threads start: glibc
        // would give each allocating thread an arena of its own, each keeping freed memory.
        // Measured (docs/BENCHMARKS.md): peak RSS in a drain 74.4 -> 70.2 MB, CPU per job unchanged.
        if ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil { _ = glibcMallopt(glibcMArenaMax, 2) }
        #endif
        let settings = try Settings(options: self.settings, environment: ProcessInfo.processInfo.environment, workerOptions: worker)
        let level = settings.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = settings.makeLogger("tokenledger")
        if settings.invalidationChannels == .sharded {
            // Subscribers of the default channel hear nothing from now on: say where they went.
            logger.notice("invalidations are sharded: partition k publishes with SPUBLISH on \(settings.keys.prefix):{k}:balance, nothing on \(settings.keys.balance)")
        }
        // Before anything is created: a ledger or queue of another partition count would be
        // silently left behind by new, empty ones.
        try settings.refuseForeignLedgerFiles()
        guard try await refuseForeignLists(settings, logger) else { return }
        // One loop, ledger file, lease and scheduler per partition served.
        var partitions: [WorkerService.Partition] = []
        var ledgers: [Ledger] = []
        var healths: [(partition: Int, health: WorkerHealth)] = []
        for partition in settings.servedPartitions {
            // A busy or failing ledger at start is waited out like an outage in the loop; a
            // stop asked for meanwhile ends the process with 0.
            let ledger: Ledger
            do {
                ledger = try settings.openLedger(partition: partition, logger: logger,
                                                 stopRequested: { EarlyShutdownSignals.wereReceived })
            } catch is StorageFailure.Stopped {
                logger.info("stopped while waiting for the ledger at start")
                return
            }
            let health = WorkerHealth()
            ledgers.append(ledger)
            healths.append((partition, health))
            partitions.append(.init(configuration: settings.workerConfiguration(partition: partition), ledger: ledger, health: health))
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: WorkerService(partitions: partitions, logger: logger),
                  successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
        ]
        if let address = try settings.httpAddress() {
            let split = settings.partitioning.count > 1
            let healths = healths
            let problems: @Sendable () -> [String] = {
                healths.flatMap { entry in entry.health.problems.map { split ? "partition \(entry.partition) \($0)" : $0 } }
            }
            services.append(.init(service: OperatorEndpoints(host: address.host, port: address.port, registry: registry,
                                                             redis: settings.redis, ledgers: ledgers, logger: logger,
                                                             workerProblems: problems, console: try settings.consoleSettings())))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// Throws when Redis holds unsettled lists of another partition layout. Waits for a Redis
    /// that does not answer yet, as the worker would (false: stopped while waiting).
    private func refuseForeignLists(_ settings: Settings, _ logger: Logger) async throws -> Bool {
        var waiting = false
        while !EarlyShutdownSignals.wereReceived {
            do {
                let redis = try settings.redis.connect()
                let found = try ForeignLayout.unsettledLists(redis, prefix: settings.keys.prefix, count: settings.partitioning.count)
                if !found.isEmpty { throw settings.anotherLayoutError(found, what: "unsettled job lists") }
                return true
            } catch let error as RedisError {
                if !waiting { logger.error("redis unavailable; retrying before the partition layout check", metadata: ["error": "\(error)"]) }
                waiting = true
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        return false
    }
}

#if canImport(Glibc)
/// glibc's `mallopt` and `M_ARENA_MAX` (malloc.h, which the Glibc module does not export).
@_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
private let glibcMArenaMax: Int32 = -8
#endif
