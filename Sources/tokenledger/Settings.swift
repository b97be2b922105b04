import ArgumentParser
import Foundation
import JobWire
import Ledger
import LedgerModel
import Logging
import OperatorHTTP
import Redis
import Worker

/// The options every subcommand shares. Precedence: flags, then environment, then the config
/// file, then defaults. The Redis password is never a flag: it comes from
/// `TOKENLEDGER_REDIS_PASSWORD`, a password file, or the URL.
struct SettingsOptions: ParsableArguments {
    @Option(help: "Config file (JSON). Env: TOKENLEDGER_CONFIG.")
    var config: String?

    @Option(help: "Redis URL: redis://[user@]host[:port][/db], unix:///path?db=N, or a Redis Cluster by its seed nodes: redis-cluster://host:port[,host:port...] (needs a partition count of 2 or more). Env: TOKENLEDGER_REDIS_URL. Default: redis://127.0.0.1:6379/0.")
    var redisUrl: String?

    @Option(help: "SQLite ledger file. Env: TOKENLEDGER_DATABASE. Default: tokenledger.sqlite in the working folder.")
    var database: String?

    @Option(help: "Key prefix of the queue, lists and channel. Env: TOKENLEDGER_PREFIX. Default: tokens.")
    var prefix: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical. Env: TOKENLEDGER_LOG_LEVEL. Default: info.")
    var logLevel: String?

    @Option(help: "Partitions of the ledger (fixed when it is created). Env: TOKENLEDGER_PARTITION_COUNT. Default: 1.")
    var partitionCount: Int?

    func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Settings {
        try Settings(options: self, environment: environment)
    }
}

/// Every setting, resolved.
struct Settings {
    /// One server, or a Redis Cluster (`redis-cluster://`).
    var redis: RedisTarget
    var database: String
    var keys: QueueKeys
    var http: String
    var workerId: String
    var batchSize: Int
    var replyExpirySeconds: Int
    var leaseMilliseconds: Int
    var maxAttempts: Int
    var logLevel: Logger.Level
    var ledger: LedgerConfig
    var renewalSchedule: CronSchedule
    var renewalChunkSize: Int
    /// How the ledger is split (the count is fixed when it is created).
    var partitioning: Partitioning
    /// The partitions this process serves (`all` by default).
    var servedPartitions: [Int]
    /// Where the partitions publish their invalidations (`single`, the contract's `P:balance`, by
    /// default).
    var invalidationChannels: InvalidationChannels
    /// nil: the events stream is off.
    var eventsMaxLength: Int?
    var settleIntervalSeconds: Double
    var settleBatchSize: Int
    var settleChunkMilliseconds: Int
    /// How long `P:applied` keeps an acknowledged job, for `restore`.
    var recoveryWindowSeconds: Int
    /// The console's token (bytes); nil: the console is off.
    var consoleToken: [UInt8]?

    init(options: SettingsOptions, environment env: [String: String], workerOptions: WorkerOptions? = nil) throws {
        let file = try (options.config ?? env["TOKENLEDGER_CONFIG"]).map(ConfigFile.load(path:)) ?? ConfigFile()

        let url = options.redisUrl ?? env["TOKENLEDGER_REDIS_URL"] ?? file.redisUrl ?? "redis://127.0.0.1:6379/0"
        do {
            redis = try RedisTarget(url: url)
        } catch {
            throw SettingsError("redis URL: \(error)")
        }
        // A flag is visible to every user of the machine (ps, /proc): no secret goes there.
        if options.redisUrl != nil, redis.password != nil {
            throw SettingsError("--redis-url must not carry a password (it would show in the process list): use TOKENLEDGER_REDIS_PASSWORD, TOKENLEDGER_REDIS_PASSWORD_FILE or the config file's redisPasswordFile")
        }
        if let user = env["TOKENLEDGER_REDIS_USERNAME"] ?? file.redisUsername { redis.username = user }
        if let password = env["TOKENLEDGER_REDIS_PASSWORD"] {
            redis.password = password
        } else if let path = env["TOKENLEDGER_REDIS_PASSWORD_FILE"] ?? file.redisPasswordFile {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw SettingsError("cannot read the Redis password file \(path)")
            }
            redis.password = text.trimmingCharacters(in: .newlines)
        }

        database = options.database ?? env["TOKENLEDGER_DATABASE"] ?? file.database ?? "tokenledger.sqlite"
        let prefix = options.prefix ?? env["TOKENLEDGER_PREFIX"] ?? file.prefix ?? "tokens"
        guard !prefix.isEmpty else { throw SettingsError("prefix must not be empty") }
        keys = QueueKeys(prefix: prefix)
        let countText = options.partitionCount.map(String.init) ?? env["TOKENLEDGER_PARTITION_COUNT"] ?? file.partitionCount.map(String.init) ?? "1"
        do {
            guard let count = Int(countText) else { throw PartitionError("'\(countText)' is not a number") }
            partitioning = try Partitioning(count: count)
            servedPartitions = try partitioning.served(workerOptions?.partitions ?? env["TOKENLEDGER_PARTITIONS"] ?? file.partitions ?? "all")
        } catch {
            throw SettingsError("partitions: \(error)")
        }
        // With one partition the keys carry no hash tag (the contract's `P:jobs`, `P:lease`, ...),
        // so the take script's keys would lie in different slots of a cluster.
        if redis.isCluster, partitioning.count == 1 {
            throw SettingsError("a Redis Cluster needs a partition count of 2 or more (TOKENLEDGER_PARTITION_COUNT): with one partition the queue's keys have no hash tag and fall in different slots")
        }
        let channelsText = file.invalidationChannels ?? InvalidationChannels.single.rawValue
        guard let channels = InvalidationChannels(rawValue: channelsText) else {
            throw SettingsError("invalidationChannels '\(channelsText)' is not one of \(InvalidationChannels.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        // An unsplit ledger's keys have no tag: there is no partition slot for a channel to
        // share, and quietly keeping `P:balance` would leave subscribers of the sharded channels
        // hearing nothing.
        if channels == .sharded, partitioning.count == 1 {
            throw SettingsError("invalidationChannels 'sharded' needs a partition count of 2 or more (TOKENLEDGER_PARTITION_COUNT): partition k publishes on P:{k}:balance, and an unsplit ledger has no partitions; use 'single' (PUBLISH on \(prefix):balance)")
        }
        invalidationChannels = channels
        http = workerOptions?.http ?? env["TOKENLEDGER_HTTP"] ?? file.http ?? "127.0.0.1:9464"
        workerId = workerOptions?.workerId ?? env["TOKENLEDGER_WORKER_ID"] ?? file.workerId ?? WorkerConfiguration.defaultWorkerId()
        guard !workerId.isEmpty, !workerId.contains(where: { $0.isWhitespace }) else {
            throw SettingsError("workerId must be non-empty without spaces")
        }

        let batchText = workerOptions?.batchSize.map(String.init) ?? env["TOKENLEDGER_BATCH_SIZE"]
        if let batchText {
            guard let n = Int(batchText) else { throw SettingsError("batch size '\(batchText)' is not a number") }
            batchSize = n
        } else {
            batchSize = file.batchSize ?? 256
        }
        guard (1...4096).contains(batchSize) else { throw SettingsError("batchSize must be from 1 to 4096") }
        replyExpirySeconds = file.replyExpirySeconds ?? 600
        guard replyExpirySeconds >= 1 else { throw SettingsError("replyExpirySeconds must be >= 1") }
        let leaseSeconds = file.leaseSeconds ?? 5
        guard leaseSeconds >= 1 else { throw SettingsError("leaseSeconds must be >= 1") }
        leaseMilliseconds = Int(leaseSeconds * 1000)
        maxAttempts = file.maxAttempts ?? 3
        guard maxAttempts >= 1 else { throw SettingsError("maxAttempts must be >= 1") }

        let level = options.logLevel ?? env["TOKENLEDGER_LOG_LEVEL"] ?? file.logLevel ?? "info"
        guard let parsed = Logger.Level(rawValue: level) else { throw SettingsError("logLevel '\(level)' is not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))") }
        logLevel = parsed

        var ledger = LedgerConfig()
        if let costs = file.costs { ledger.costs = costs }
        if let tiers = file.tiers { ledger.tiers = tiers }
        if let policy = file.renewal?.policy { ledger.renewalPolicy = policy }
        ledger.rolloverMax = file.renewal?.rolloverMax
        if let months = file.renewal?.rolloverMonths { ledger.rolloverMonths = months }
        if let most = file.renewal?.renewAllMaxAccounts { ledger.renewAllMaxAccounts = most }
        if let sync = file.synchronous { ledger.synchronous = sync }
        if let pages = file.walAutoCheckpointPages { ledger.walAutoCheckpointPages = pages }
        if let cache = file.cacheMebibytes { ledger.cacheMebibytes = cache }
        if let rows = file.mergeThresholdRows { ledger.mergeThresholdRows = rows }
        if let rows = file.mergeSliceRows { ledger.mergeSliceRows = rows }
        if let ms = file.mergePauseMilliseconds { ledger.mergePauseMilliseconds = ms }
        if let busy = file.busyTimeoutMilliseconds { ledger.busyTimeoutMilliseconds = busy }
        ledger.defaultMonitorThreshold = file.defaultMonitorThreshold
        do {
            try ledger.validate()
        } catch {
            throw SettingsError("config: \(error)")
        }
        self.ledger = ledger

        let zoneName = file.renewal?.timeZone ?? "UTC"
        guard let zone = TimeZone(identifier: zoneName) else { throw SettingsError("renewal.timeZone '\(zoneName)' is not a known time zone") }
        do {
            renewalSchedule = try CronSchedule(file.renewal?.cron ?? "0 2 * * *", timeZone: zone)
        } catch {
            throw SettingsError("renewal.cron: \(error)")
        }
        renewalChunkSize = file.renewal?.batchSize ?? 1000
        guard renewalChunkSize >= 1 else { throw SettingsError("renewal.batchSize must be >= 1") }

        let eventsOn = env["TOKENLEDGER_EVENTS"].map { $0 != "off" } ?? file.events?.enabled ?? true
        let maxLength = file.events?.maxLength ?? 100_000
        guard maxLength >= 1 else { throw SettingsError("events.maxLength must be >= 1") }
        eventsMaxLength = eventsOn ? maxLength : nil
        settleIntervalSeconds = file.settleIntervalSeconds ?? 1
        guard settleIntervalSeconds > 0 else { throw SettingsError("settleIntervalSeconds must be > 0") }
        settleBatchSize = file.settleBatchSize ?? 1000
        guard settleBatchSize >= 1 else { throw SettingsError("settleBatchSize must be >= 1") }
        settleChunkMilliseconds = file.settleChunkMilliseconds ?? 5
        guard settleChunkMilliseconds >= 1 else { throw SettingsError("settleChunkMilliseconds must be >= 1") }

        let windowText = env["TOKENLEDGER_RECOVERY_WINDOW_SECONDS"]
        if let windowText {
            guard let n = Int(windowText) else { throw SettingsError("recovery window '\(windowText)' is not a number of seconds") }
            recoveryWindowSeconds = n
        } else {
            recoveryWindowSeconds = file.recoveryWindowSeconds ?? WorkerConfiguration.defaultRecoveryWindowMilliseconds / 1000
        }
        // Longer than a day would keep a day of jobs in Redis's memory for a lag no replica has.
        guard (1...Self.maxRecoveryWindowSeconds).contains(recoveryWindowSeconds) else {
            throw SettingsError("recoveryWindowSeconds must be from 1 to \(Self.maxRecoveryWindowSeconds)")
        }

        // The console token is a secret: the environment or a file, never a flag.
        if let token = env["TOKENLEDGER_CONSOLE_TOKEN"] {
            consoleToken = Array(token.utf8)
        } else if let path = env["TOKENLEDGER_CONSOLE_TOKEN_FILE"] ?? file.consoleTokenFile {
            guard let data = FileManager.default.contents(atPath: path) else { throw SettingsError("cannot read the console token file \(path)") }
            var bytes = Array(data)
            while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
            consoleToken = bytes
        }
        if let consoleToken {
            guard consoleToken.count >= ConsoleSettings.minimumTokenBytes else {
                throw SettingsError("the console token must be at least \(ConsoleSettings.minimumTokenBytes) bytes (try: openssl rand -hex 32)")
            }
            guard http != "off" else { throw SettingsError("a console token is set but the operator endpoints are off (TOKENLEDGER_HTTP=off)") }
        }
    }

    /// One day: `P:applied` holds about (jobs per second x window) entries in Redis's memory.
    static let maxRecoveryWindowSeconds = 86_400

    /// The console's settings over the partitions this process serves; nil when it is off.
    func consoleSettings() throws -> ConsoleSettings? {
        guard let consoleToken else { return nil }
        let partitioning = self.partitioning
        let partitions = servedPartitions.map { index in
            let keys = queueKeys(partition: index)
            return ConsolePartition(index: index, jobsKey: keys.jobs, deadKey: keys.dead, leaseKey: keys.lease, processingListsKey: keys.processingLists,
                                    processingKeyPrefix: keys.processing(""), ledgerPath: databasePath(partition: index))
        }
        return try ConsoleSettings(token: consoleToken, partitions: partitions, ledgerConfig: ledger,
                                   partitionOf: { partitioning.partition(of: $0) })
    }

    /// The worker of one partition: its tagged keys (untagged when the ledger is not split).
    func workerConfiguration(partition: Int) -> WorkerConfiguration {
        var c = WorkerConfiguration(redis: redis, keys: queueKeys(partition: partition), partitioning: partitioning, workerId: workerId,
                                    batchSize: batchSize, replyExpirySeconds: replyExpirySeconds, leaseMilliseconds: leaseMilliseconds,
                                    maxAttempts: maxAttempts, renewalSchedule: renewalSchedule, renewalChunkSize: renewalChunkSize)
        c.eventsMaxLength = eventsMaxLength
        c.settleIntervalSeconds = settleIntervalSeconds
        c.settleBatchSize = settleBatchSize
        c.settleChunkMilliseconds = settleChunkMilliseconds
        c.recoveryWindowMilliseconds = recoveryWindowSeconds * 1000
        return c
    }

    func queueKeys(partition: Int) -> QueueKeys {
        partitioning.count == 1 ? keys : QueueKeys(prefix: keys.prefix, partition: partition, invalidationChannels: invalidationChannels)
    }

    /// Each partition has a ledger file of its own: `tokenledger.sqlite` is `tokenledger-p3.sqlite`
    /// for partition 3; an unsplit ledger keeps the configured name.
    func databasePath(partition: Int) -> String { partitionFile(database, partition: partition) }

    /// `base` for an unsplit ledger, else `base` with `-p<k>` before its extension.
    func partitionFile(_ base: String, partition: Int) -> String {
        guard partitioning.count > 1 else { return base }
        let url = URL(fileURLWithPath: base)
        let ext = url.pathExtension
        let stem = url.deletingPathExtension().lastPathComponent
        let name = ext.isEmpty ? "\(stem)-p\(partition)" : "\(stem)-p\(partition).\(ext)"
        return url.deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// Every partition's ledger file, for the admin commands that cover them all.
    var databasePaths: [String] { (0..<partitioning.count).map(databasePath(partition:)) }

    /// `host:port` of the operator endpoints, or nil when they are `off`.
    func httpAddress() throws -> (host: String, port: UInt16)? {
        if http == "off" { return nil }
        guard let colon = http.lastIndex(of: ":"), let port = UInt16(http[http.index(after: colon)...]) else {
            throw SettingsError("http '\(http)' must be host:port or off")
        }
        return (String(http[..<colon]), port)
    }

    func makeLogger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = logLevel
        return logger
    }

    /// Opens a partition's ledger read-only for the queries (no migration, no checkpoint, no file
    /// created).
    func openReader(partition: Int = 0) throws -> LedgerReader {
        let path = databasePath(partition: partition)
        do {
            return try LedgerReader(path: path, config: ledger)
        } catch LedgerOpenError.notFound {
            throw SettingsError("no ledger at \(path) (set --database or TOKENLEDGER_DATABASE)")
        }
    }

    /// Ledger files beside the configured one that belong to another partition count: the
    /// unsplit file when the ledger is split, `-p<k>` files when it is not or when `k` is past
    /// the count. (Files of this layout made with another count are refused by
    /// `Ledger.claimPartition`, which reads the count each file records.)
    func foreignLedgerFiles() -> [String] {
        let url = URL(fileURLWithPath: database)
        let folder = url.deletingLastPathComponent()
        let ext = url.pathExtension
        let stem = Array("\(url.deletingPathExtension().lastPathComponent)-p".utf8)
        let suffix = Array((ext.isEmpty ? "" : ".\(ext)").utf8)
        let unsplit = Array(url.lastPathComponent.utf8)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        var found: [String] = []
        for name in names {
            let bytes = Array(name.utf8)
            if bytes == unsplit {
                if partitioning.count > 1 { found.append(folder.appendingPathComponent(name).path) }
                continue
            }
            guard bytes.count > stem.count + suffix.count, bytes.starts(with: stem), bytes.reversed().starts(with: suffix.reversed()) else { continue }
            let digits = bytes[stem.count..<(bytes.count - suffix.count)]
            guard digits.allSatisfy({ (0x30...0x39).contains($0) }), let k = Int(String(decoding: digits, as: UTF8.self)) else { continue }
            if partitioning.count == 1 || k >= partitioning.count { found.append(folder.appendingPathComponent(name).path) }
        }
        return found.sorted()
    }

    /// The refusal to start on another partition layout, naming what was found (at most
    /// `ForeignLayout.maxNamed` items) and the way out.
    func anotherLayoutError(_ found: [String], what: String) -> SettingsError {
        let named = found.prefix(ForeignLayout.maxNamed).joined(separator: ", ")
        let more = found.count > ForeignLayout.maxNamed ? " and \(found.count - ForeignLayout.maxNamed) more" : ""
        let count = partitioning.count
        return SettingsError(
            "refusing to start with \(count) partition\(count == 1 ? "" : "s"): the partition count is fixed when a ledger is made, "
            + "and \(what) of another partition count exist: \(named)\(more). "
            + "Starting would begin empty ledgers beside them (balances would read user_not_found, open would make second accounts, "
            + "and the jobs queued under the old count would never be read). Start with the count they were made with "
            + "(TOKENLEDGER_PARTITION_COUNT); the count changes only through `tokenledger repartition --to \(count)` "
            + "(with the workers stopped and the old count given), which moves every account and queued job.")
    }

    /// The switch of `tokenledger repartition`: while it exists the files and queues are between
    /// two layouts, and nothing but the command itself may use them.
    var repartitionJournalPath: String { database + ".repartition.json" }

    /// Refuses (throws) when a ledger file of another partition layout lies beside the configured
    /// one. Nothing is created or opened.
    func refuseForeignLedgerFiles() throws {
        if FileManager.default.fileExists(atPath: repartitionJournalPath) {
            throw SettingsError("refusing to start: a repartition of this ledger is under way (\(repartitionJournalPath)); "
                + "run the same `tokenledger repartition --to M` again to finish it, then start with the new count")
        }
        let files = foreignLedgerFiles()
        if !files.isEmpty { throw anotherLayoutError(files, what: "ledger files") }
    }

    /// Opens (creating if needed) a partition's ledger for writing, and records or checks the
    /// partition it holds: for the worker and `migrate`. Waits out a busy or failing ledger.
    func openLedger(partition: Int = 0, logger: Logger? = nil, clock: any LedgerClock = SystemClock(),
                    stopRequested: () -> Bool = { false }) throws -> Ledger {
        let path = databasePath(partition: partition)
        return try waitingOut("opening the ledger \(path)", logger: logger, stopRequested: stopRequested) {
            let opened = try Ledger(path: path, config: ledgerConfig(serving: servedPartitions.count), clock: clock)
            try opened.claimPartition(partition, of: partitioning.count)
            return opened
        }
    }

    /// One process serving many partitions shares its memory among them: past four, each
    /// ledger's page cache and in-memory tail (the bulk of a partition's memory) are its share
    /// of what four would use, so 64 partitions fit where 4 do. A partition busy alone then
    /// merges more often, in the same slices.
    func ledgerConfig(serving count: Int) -> LedgerConfig {
        guard count > 4 else { return ledger }
        var config = ledger
        config.cacheMebibytes = max(1, ledger.cacheMebibytes * 4 / count)
        config.mergeThresholdRows = max(4096, ledger.mergeThresholdRows * 4 / count)
        return config
    }

    /// The loop's outage rules for start-up and the CLI: a ledger that is busy, locked, full or
    /// failing is waited for with capped backoff and reported (the log, else standard error),
    /// never a reason to exit. A stop asked for meanwhile throws `StorageFailure.Stopped`.
    func waitingOut<T>(_ what: String, logger: Logger? = nil, stopRequested: () -> Bool = { false },
                       _ body: () throws -> T) throws -> T {
        try StorageFailure.waitingOut(stopRequested: stopRequested, report: { error, cause, attempt in
            if let logger {
                logger.warning("the ledger does not answer; waiting", metadata: [
                    "while": "\(what)", "cause": "\(cause.rawValue)", "attempt": "\(attempt)", "error": "\(error)"])
            } else {
                FileHandle.standardError.write(Data("the ledger does not answer (\(cause.rawValue)) while \(what); waiting (attempt \(attempt)): \(error)\n".utf8))
            }
        }, body)
    }
}
