import Foundation
import Redis
#if canImport(Glibc)
import Glibc
#endif

/// A private Redis Cluster for tests: six `redis-server --cluster-enabled yes` on free TCP ports of
/// 127.0.0.1, joined by `redis-cli --cluster create ... --cluster-replicas 1` into three masters with
/// one replica each.
///
/// `cluster-node-timeout` is 1000 ms so that a killed master's replica takes over within a few
/// seconds. Everything is stopped by `stop()` and on `deinit`; a watchdog shell also kills the
/// servers if the test process itself dies, so no server outlives a run.
public final class RedisClusterProcess: @unchecked Sendable {
    public let directory: URL
    public let ports: [Int]
    private var servers: [Int: Process] = [:]
    private var watchdog: Process?

    /// Starts the servers, creates the cluster and waits until every node reports `cluster_state:ok`.
    public init(nodes: Int = 6) throws {
        directory = try TestEnvironment.temporaryDirectory()
        var chosen: [Int] = []
        while chosen.count < nodes {
            let port = Int(TestEnvironment.freePort())
            // Each node also listens on its cluster bus port, port + 10000.
            if port > 0, port < 55535, !chosen.contains(port), Self.canBind(port + 10000) { chosen.append(port) }
        }
        ports = chosen
        do {
            for port in ports { try startServer(port) }
            try startWatchdog()
            for port in ports { try waitUntilAnswering(port) }
            try Self.run(Self.redisCLI, ["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" }
                         + ["--cluster-replicas", "1", "--cluster-yes"])
            try waitUntilHealthy()
        } catch {
            stop()
            throw error
        }
    }

    deinit {
        stop()
    }

    /// The URL naming every node as a seed.
    public var url: String { "redis-cluster://" + ports.map { "127.0.0.1:\($0)" }.joined(separator: ",") }

    /// A URL naming one seed only: the client must learn the other nodes from it.
    public func url(seed port: Int) -> String { "redis-cluster://127.0.0.1:\(port)" }

    /// A plain connection to one node (for `CLUSTER ...` commands sent by hand).
    public func connection(_ port: Int) throws -> RedisConnection {
        try RedisConnection(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port),
                                                              reconnect: .init(maxAttempts: 1)))
    }

    public func isRunning(_ port: Int) -> Bool { servers[port]?.isRunning ?? false }

    /// Kills one node at once (SIGKILL): no goodbye to clients or to the other nodes.
    public func kill(_ port: Int) {
        guard let process = servers[port], process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Freezes one node (SIGSTOP): a replica frozen this way stops taking its master's writes, so
    /// whatever the master acknowledges meanwhile is on the master alone.
    public func suspend(_ port: Int) {
        guard let process = servers[port], process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGSTOP)
    }

    /// Lets a frozen node run again (SIGCONT).
    public func resume(_ port: Int) {
        guard let process = servers[port], process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGCONT)
    }

    /// Stops every node and the watchdog, and deletes the folder.
    public func stop() {
        for port in servers.keys.sorted() { kill(port) }
        servers = [:]
        if let watchdog, watchdog.isRunning {
            Glibc.kill(watchdog.processIdentifier, SIGKILL)
            watchdog.waitUntilExit()
        }
        watchdog = nil
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Cluster state, as the nodes report it

    /// The node id of the server on `port`.
    public func nodeId(_ port: Int) throws -> String {
        guard let id = try connection(port).send("CLUSTER", "MYID").string else {
            throw RedisError.unexpectedReply("CLUSTER MYID")
        }
        return id
    }

    /// The ports of the masters serving slots, as the node on `askingPort` sees them.
    public func masterPorts(askingPort: Int? = nil) throws -> [Int] {
        try nodes(askingPort: askingPort ?? firstRunningPort()).filter { $0.isMaster && !$0.failed && $0.hasSlots }.map(\.port).sorted()
    }

    /// The port of the master that serves `slot`, as the node on `askingPort` sees it.
    public func masterPort(forSlot slot: Int, askingPort: Int? = nil) throws -> Int? {
        try nodes(askingPort: askingPort ?? firstRunningPort()).first { $0.isMaster && $0.slots.contains { $0.contains(slot) } }?.port
    }

    /// The port of a replica of the master on `masterPort`.
    public func replicaPort(of masterPort: Int) throws -> Int? {
        let id = try nodeId(masterPort)
        return try nodes(askingPort: masterPort).first { $0.masterId == id }?.port
    }

    public struct NodeLine: Sendable {
        public var id: String
        public var port: Int
        public var flags: Set<String>
        public var masterId: String?
        public var slots: [ClosedRange<Int>]
        public var isMaster: Bool { flags.contains("master") }
        public var failed: Bool { flags.contains("fail") || flags.contains("fail?") }
        public var hasSlots: Bool { !slots.isEmpty }
    }

    /// `CLUSTER NODES` from one node, parsed.
    public func nodes(askingPort: Int) throws -> [NodeLine] {
        guard let text = try connection(askingPort).send("CLUSTER", "NODES").string else {
            throw RedisError.unexpectedReply("CLUSTER NODES")
        }
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count >= 8, let colon = f[1].firstIndex(of: ":") else { return nil }
            let portText = f[1][f[1].index(after: colon)...].prefix { $0.isNumber }
            guard let port = Int(portText) else { return nil }
            let slots: [ClosedRange<Int>] = f.dropFirst(8).compactMap { item in
                if item.hasPrefix("[") { return nil }  // a slot being migrated or imported
                let ends = item.split(separator: "-").compactMap { Int($0) }
                if ends.count == 2 { return ends[0]...ends[1] }
                if ends.count == 1 { return ends[0]...ends[0] }
                return nil
            }
            return NodeLine(id: String(f[0]), port: port, flags: Set(f[2].split(separator: ",").map(String.init)),
                            masterId: f[3] == "-" ? nil : String(f[3]), slots: slots)
        }
    }

    /// Waits until every running node reports `cluster_state:ok`, agrees on who serves all 16384
    /// slots, and every replica's link to its master is up.
    public func waitUntilHealthy(timeout: Double = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < deadline {
            do {
                if try isHealthy(&last) { return }
            } catch {
                last = "\(error)"
            }
            usleep(100_000)
        }
        throw RedisError.clusterUnavailable("the test cluster did not become healthy: \(last)")
    }

    private func isHealthy(_ why: inout String) throws -> Bool {
        var views: Set<String> = []
        for port in ports where isRunning(port) {
            let c = try connection(port)
            let info = try c.send("CLUSTER", "INFO").string ?? ""
            guard info.contains("cluster_state:ok"), info.contains("cluster_slots_ok:16384") else {
                why = "node \(port) is not ok yet"
                return false
            }
            let replication = try c.send("INFO", "replication").string ?? ""
            if replication.contains("role:slave"), !replication.contains("master_link_status:up") {
                why = "replica \(port) is not linked to its master yet"
                return false
            }
            let masters = try nodes(askingPort: port).filter { $0.isMaster && $0.hasSlots && !$0.failed }
            views.insert(masters.map { "\($0.port):\($0.slots)" }.sorted().joined(separator: " "))
        }
        guard views.count == 1 else {
            why = "the nodes do not agree on the slot map yet"
            return false
        }
        return true
    }

    private func firstRunningPort() throws -> Int {
        guard let port = ports.first(where: isRunning) else { throw RedisError.clusterUnavailable("no node runs") }
        return port
    }

    // MARK: Slot migration

    /// The first step of moving `slot` from the master on `from` to the master on `to`, as
    /// `redis-cli --cluster reshard` does it: `to` imports, `from` migrates. Keys still on `from`
    /// are served there; others are reached on `to` with `ASKING`.
    public func beginSlotMigration(_ slot: Int, from: Int, to: Int) throws {
        try connection(to).send("CLUSTER", "SETSLOT", slot, "IMPORTING", try nodeId(from))
        try connection(from).send("CLUSTER", "SETSLOT", slot, "MIGRATING", try nodeId(to))
    }

    /// Moves `keys` of a migrating slot from `from` to `to` (`MIGRATE ... KEYS`).
    public func migrateKeys(_ keys: [String], from: Int, to: Int) throws {
        try connection(from).send(RedisCommand("MIGRATE", arguments: ["127.0.0.1", to, "", 0, 5000, "KEYS"] + keys))
    }

    /// Moves what is left of the slot's keys, `batch` at a time, then announces the new owner to
    /// every master: clients of the old owner get `MOVED` from then on.
    public func finishSlotMigration(_ slot: Int, from: Int, to: Int, batch: Int = 100) throws {
        let owner = try nodeId(to)
        let source = try connection(from)
        while let keys = try source.send("CLUSTER", "GETKEYSINSLOT", slot, batch).array?.compactMap(\.string), !keys.isEmpty {
            try migrateKeys(keys, from: from, to: to)
        }
        for port in [to, from] + (try masterPorts()).filter({ $0 != to && $0 != from }) {
            try connection(port).send("CLUSTER", "SETSLOT", slot, "NODE", owner)
        }
    }

    // MARK: Processes

    private func startServer(_ port: Int) throws {
        let nodeDirectory = directory.appendingPathComponent("\(port)")
        try FileManager.default.createDirectory(at: nodeDirectory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [TestEnvironment.redisServerBinary,
                             "--port", "\(port)", "--bind", "127.0.0.1", "--dir", nodeDirectory.path,
                             "--cluster-enabled", "yes", "--cluster-config-file", "nodes-\(port).conf",
                             "--cluster-node-timeout", "1000", "--appendonly", "no", "--save", "",
                             "--daemonize", "no", "--loglevel", "warning",
                             "--logfile", nodeDirectory.appendingPathComponent("redis.log").path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        servers[port] = process
    }

    /// A shell that kills every server once this test process is gone (a crash, a kill -9).
    private func startWatchdog() throws {
        let pids = servers.values.map { String($0.processIdentifier) }.joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; kill -9 \(pids) 2>/dev/null"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        watchdog = process
    }

    private func waitUntilAnswering(_ port: Int) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let c = try? connection(port), (try? c.ping()) == true { return }
            usleep(20_000)
        }
        throw RedisError.connection("cluster node on port \(port) did not start")
    }

    /// Whether a TCP port of 127.0.0.1 is free right now.
    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// `redis-cli`: `REDIS_CLI`, else beside `REDIS_SERVER`, else on the PATH.
    public static var redisCLI: String {
        let environment = ProcessInfo.processInfo.environment
        if let cli = environment["REDIS_CLI"] { return cli }
        let server = TestEnvironment.redisServerBinary
        if server.contains("/") {
            let beside = URL(fileURLWithPath: server).deletingLastPathComponent().appendingPathComponent("redis-cli").path
            if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        }
        return "redis-cli"
    }

    /// Runs a program to completion; throws with its output when it fails.
    @discardableResult
    public static func run(_ program: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw RedisError.unexpectedReply("\(program) \(arguments.prefix(2).joined(separator: " ")) failed: \(text.suffix(2000))")
        }
        return text
    }
}
