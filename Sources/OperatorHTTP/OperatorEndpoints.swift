import FlyingFox
import FlyingSocks
import Foundation
import Ledger
import Logging
import Prometheus
import Redis
import ServiceLifecycle

/// The operator's HTTP endpoints, served by FlyingFox (small, no further dependencies):
/// `GET /metrics` (Prometheus text), `GET /healthz` (200 while the process runs) and
/// `GET /readyz` (200 only while Redis and the ledger both answer, and the worker reports no
/// problem of its own, such as a ledger that refuses writes; else 503), and, only when a console
/// token is set, the console under `/console` (see `Console`).
public struct OperatorEndpoints: Service {
    public let host: String
    public let port: UInt16
    public let registry: PrometheusCollectorRegistry
    /// One server or a cluster: `/readyz` pings it through a client of its kind.
    public let redis: RedisTarget
    /// The ledger of every partition this process serves.
    public let ledgers: [Ledger]
    public let logger: Logger
    /// What the worker itself reports as keeping it from serving (one line per problem).
    public let workerProblems: @Sendable () -> [String]
    /// nil: no console (its paths answer 404 like any unknown path).
    public let console: ConsoleSettings?

    public init(host: String, port: UInt16, registry: PrometheusCollectorRegistry, redis: RedisTarget,
                ledgers: [Ledger], logger: Logger, workerProblems: @escaping @Sendable () -> [String] = { [] },
                console: ConsoleSettings? = nil) {
        self.workerProblems = workerProblems
        self.console = console
        self.host = host
        self.port = port
        self.registry = registry
        self.redis = redis
        self.ledgers = ledgers
        self.logger = logger
    }

    public func run() async throws {
        let address = try sockaddr_in.inet(ip4: host == "localhost" ? "127.0.0.1" : host, port: port)
        let server = HTTPServer(address: address, logger: .disabled)
        let (registry, ledgers, workerProblems) = (self.registry, self.ledgers, self.workerProblems)
        let probe = redis.impatient(seconds: 1)
        await server.appendRoute("GET /metrics") { _ in
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: Data(buffer))
        }
        await server.appendRoute("GET /healthz") { _ in
            HTTPResponse(statusCode: .ok, body: Data("ok\n".utf8))
        }
        let checker = ReadinessChecker(redis: probe, ledgers: ledgers)
        await server.appendRoute("GET /readyz") { _ in
            let problems = await checker.problems() + workerProblems()
            if problems.isEmpty { return HTTPResponse(statusCode: .ok, body: Data("ready\n".utf8)) }
            return HTTPResponse(statusCode: .serviceUnavailable, body: Data((problems.joined(separator: "\n") + "\n").utf8))
        }
        var sampling: Task<Void, Never>?
        if let settings = console {
            let console = Console(settings: settings, redis: redis)
            for route in ["GET /console", "GET /console/*", "POST /console/*"] {
                await server.appendRoute(HTTPRoute(stringLiteral: route)) { await console.handle($0) }
            }
            // The overview's rate chart: one sample per interval, taken on the console's queue.
            sampling = Task {
                while !Task.isCancelled {
                    _ = try? await console.reads.run { $0.sample() }
                    try? await Task.sleep(for: .seconds(ConsoleSampler.intervalSeconds))
                }
            }
            logger.info("operator console on", metadata: ["path": "/console"])
        }
        defer { sampling?.cancel() }
        logger.info("operator endpoints listening", metadata: ["address": "\(host):\(port)"])
        try await withGracefulShutdownHandler {
            do {
                try await server.run()
            } catch where Task.isShuttingDownGracefully {
                // Stopping closes the listening socket under `run()`: that is the way out, not a failure.
            }
        } onGracefulShutdown: {
            Task { await server.stop() }
        }
    }

    /// What keeps the worker from serving: empty when Redis and the ledger both answer.
    static func readiness(redis: RedisTarget, ledgers: [Ledger]) -> [String] {
        var problems: [String] = []
        do {
            let connection = try redis.connect()
            if try !connection.ping() { problems.append("redis: no PONG") }
        } catch {
            problems.append("redis: \(error)")
        }
        for ledger in ledgers {
            do {
                _ = try ledger.currentEpoch()  // a read: the file opens and answers
            } catch {
                problems.append("ledger \(ledger.path): \(error)")
            }
        }
        return problems
    }
}

/// Runs `/readyz`'s checks (a blocking hiredis connect and PING, an SQLite read per ledger) on a
/// thread of its own, never on the async handler's cooperative threads: a Redis that does not
/// answer would hold each of those threads for up to a second, and with as few of them as cores,
/// a handful of probes would stall `/metrics`, `/healthz` and the process's other tasks.
/// Requests that arrive while a check runs wait for that check's answer instead of starting
/// their own, so one check runs at a time however often the endpoint is asked.
final class ReadinessChecker: @unchecked Sendable {
    private let redis: RedisTarget
    private let ledgers: [Ledger]
    private let queue = DispatchQueue(label: "tokenledger.readyz")
    private let lock = NSLock()
    /// The requests waiting for the check in progress; nil while none runs.
    private var waiting: [CheckedContinuation<[String], Never>]?

    init(redis: RedisTarget, ledgers: [Ledger]) {
        self.redis = redis
        self.ledgers = ledgers
    }

    func problems() async -> [String] {
        await withCheckedContinuation { continuation in
            lock.lock()
            if waiting != nil {
                waiting?.append(continuation)
                lock.unlock()
                return
            }
            waiting = [continuation]
            lock.unlock()
            queue.async { [self] in
                let found = OperatorEndpoints.readiness(redis: redis, ledgers: ledgers)
                lock.lock()
                let answered = waiting ?? []
                waiting = nil
                lock.unlock()
                for c in answered { c.resume(returning: found) }
            }
        }
    }
}
