import Foundation
import JobWire
import Ledger
import LedgerModel
import Redis

/// One partition's line of the overview.
struct PartitionState: Sendable {
    var partition: Int
    var queueDepth: Int64 = 0
    var unsettled: [(name: [UInt8], length: Int64)] = []
    var leaseHolder: [UInt8]?
    var epoch: Int64?
    var deadLetters: Int64 = 0
    /// nil: the ledger answers.
    var ledgerProblem: String?
    var walBytes: Int64 = 0
}

struct DeadLetterPage: Sendable {
    var letters: [[UInt8]]
    var total: Int
}

/// What the user page shows; the ledger's JSON answers, decoded (plain values only).
struct UserStory: @unchecked Sendable {
    var balance: [String: Any]?
    var holds: [[String: Any]] = []
    var monitors: [MonitorRecord] = []
    var entries: [[String: Any]] = []
    var historyTotal = 0
    var chart: [(x: Int64, y: Int64)] = []
}

/// Runs the console's blocking reads (hiredis, SQLite) one at a time on a thread of its own,
/// never on the async handlers' cooperative threads (see `ReadinessChecker`). The Redis
/// connection and the read-only ledger views live here and are touched only on that queue.
final class ConsoleReads: @unchecked Sendable {
    let settings: ConsoleSettings
    private let redisTarget: RedisTarget
    private let queue = DispatchQueue(label: "tokenledger.console")
    private var redis: (any RedisClient)?
    private var readers: [Int: LedgerReader] = [:]
    let sampler = ConsoleSampler()
    /// The most processing lists the overview names per partition.
    static let maxListsShown = 64

    init(settings: ConsoleSettings, redis: RedisTarget) {
        self.settings = settings
        self.redisTarget = redis.impatient(seconds: 1)
    }

    func run<T: Sendable>(_ body: @escaping @Sendable (ConsoleReads) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [self] in
                continuation.resume(with: Result { try body(self) })
            }
        }
    }

    // Everything below runs on `queue`.

    private func client() throws -> any RedisClient {
        if let redis { return redis }
        let made = try redisTarget.connect()
        redis = made
        return made
    }

    /// A Redis call; a connection that failed is dropped so the next page reconnects.
    private func withRedis<T>(_ body: (any RedisClient) throws -> T) throws -> T {
        do {
            return try body(try client())
        } catch {
            redis?.close()
            redis = nil
            throw error
        }
    }

    private func reader(_ partition: ConsolePartition) throws -> LedgerReader {
        if let r = readers[partition.index] { return r }
        let r = try LedgerReader(path: partition.ledgerPath, config: settings.ledgerConfig)
        readers[partition.index] = r
        return r
    }

    private func partition(_ index: Int) -> ConsolePartition? { settings.partitions.first { $0.index == index } }

    func overview() throws -> [PartitionState] {
        var states: [PartitionState] = []
        for p in settings.partitions {
            var s = PartitionState(partition: p.index)
            try withRedis { redis in
                s.queueDepth = try redis.llen(p.jobsKey)
                s.deadLetters = try redis.llen(p.deadKey)
                s.leaseHolder = try redis.get(p.leaseKey)
                for name in try redis.smembers(p.processingListsKey).sorted(by: { $0.lexicographicallyPrecedes($1) }).prefix(Self.maxListsShown) {
                    let length = try redis.llen(Array(p.processingKeyPrefix.utf8) + name)
                    if length > 0 { s.unsettled.append((name, length)) }
                }
            }
            do {
                let r = try reader(p)
                s.epoch = try r.currentEpoch()
            } catch {
                readers[p.index] = nil
                s.ledgerProblem = "\(error)"
            }
            let wal = (try? FileManager.default.attributesOfItem(atPath: p.ledgerPath + "-wal"))?[.size] as? NSNumber
            s.walBytes = wal?.int64Value ?? 0
            states.append(s)
        }
        return states
    }

    func deadLetters(partition index: Int, offset: Int, count: Int) throws -> DeadLetterPage {
        guard let p = partition(index) else { return DeadLetterPage(letters: [], total: 0) }
        return try withRedis { redis in
            let total = Int(try redis.llen(p.deadKey))
            let letters = try redis.lrange(p.deadKey, offset, offset + count - 1)
            return DeadLetterPage(letters: letters, total: total)
        }
    }

    func requeue(partition index: Int, letter: [UInt8]) throws -> Bool {
        guard let p = partition(index) else { return false }
        return try withRedis { try DeadLetters.requeue($0, jobs: p.jobsKey, dead: p.deadKey, letter: letter) }
    }

    func requeueAll(partition index: Int, max: Int) throws -> Int {
        guard let p = partition(index) else { return 0 }
        return try withRedis { try DeadLetters.requeue($0, jobs: p.jobsKey, dead: p.deadKey, count: max) }
    }

    func story(userId: String, offset: Int, operationType: String?) throws -> UserStory {
        let index = settings.partitionOf(userId)
        guard let p = partition(index) else { return UserStory() }
        let r = try reader(p)
        var story = UserStory()
        func object(_ result: CommandResult) -> [String: Any]? {
            guard result.success else { return nil }
            return (try? JSONSerialization.jsonObject(with: Data(Replies.fields(of: result.outcome).utf8))) as? [String: Any]
        }
        guard let balance = object(try r.read(.balance(userId: userId))) else { return story }
        story.balance = balance
        story.holds = (object(try r.read(.holds(userId: userId)))?["holds"] as? [[String: Any]]) ?? []
        story.monitors = try r.monitors(userId: userId, limit: Console.maxMonitorsShown)
        if let page = object(try r.read(.history(userId: userId, limit: Console.historyPageSize, offset: offset,
                                                 operationType: operationType, startDate: nil, endDate: nil))) {
            story.entries = (page["entries"] as? [[String: Any]]) ?? []
            story.historyTotal = (page["total"] as? Int) ?? 0
        }
        // The chart: the newest entries' balances, oldest first.
        if let recent = object(try r.read(.history(userId: userId, limit: Console.balanceChartPoints, offset: 0,
                                                   operationType: nil, startDate: nil, endDate: nil))) {
            for e in ((recent["entries"] as? [[String: Any]]) ?? []).reversed() {
                guard let when = (e["createdAt"] as? String).flatMap(LedgerTime.parseMilliseconds),
                      let after = e["balanceAfter"] as? Int else { continue }
                story.chart.append((when, Int64(after)))
            }
        }
        return story
    }

    /// The month's figures of every partition served. Entries never change and their ids rise
    /// with time, so each partition's figures are kept (for the last `maxMonthsKept` months asked)
    /// with the id where reading stopped, and a later page reads only what was written since, at
    /// most `maxEntries` per partition and page. A month with more is read on in the background,
    /// one step of `maxEntries` per item on this queue, so pages asked meanwhile wait for one
    /// step at most.
    func figures(startMs: Int64, endMs: Int64, maxEntries: Int) throws -> PeriodFigures {
        var total = PeriodFigures()
        for p in settings.partitions {
            let key = MonthKey(partition: p.index, startMs: startMs)
            let kept = try step(key, endMs: endMs, maxEntries: maxEntries)
            total.add(kept)
            total.truncated = total.truncated || kept.truncated
        }
        return total
    }

    /// Reads one step of a month's entries into what is kept; schedules the next while there is more.
    @discardableResult
    private func step(_ key: MonthKey, endMs: Int64, maxEntries: Int) throws -> PeriodFigures {
        guard let p = partition(key.partition) else { return PeriodFigures() }
        var kept = months[key] ?? PeriodFigures()
        let more = try reader(p).figures(startMs: key.startMs, endMs: endMs, maxEntries: maxEntries,
                                         fromEntryId: months[key]?.nextEntryId)
        kept.add(more)
        kept.nextEntryId = more.nextEntryId
        kept.truncated = more.truncated
        months[key] = kept
        monthOrder.removeAll { $0 == key }
        monthOrder.append(key)
        while monthOrder.count > Self.maxMonthsKept * settings.partitions.count { months[monthOrder.removeFirst()] = nil }
        if kept.truncated, !readingOn.contains(key) {
            readingOn.insert(key)
            queue.async { [self] in readOn(key, endMs: endMs, maxEntries: maxEntries) }
        }
        return kept
    }

    private func readOn(_ key: MonthKey, endMs: Int64, maxEntries: Int) {
        // A month dropped from what is kept is not read on.
        guard months[key]?.truncated == true, let kept = try? step(key, endMs: endMs, maxEntries: maxEntries), kept.truncated else {
            readingOn.remove(key)
            return
        }
        queue.async { [self] in readOn(key, endMs: endMs, maxEntries: maxEntries) }
    }

    /// What is kept of a month (for tests: the background reading's progress).
    func kept(partition: Int, startMs: Int64) -> PeriodFigures? { months[MonthKey(partition: partition, startMs: startMs)] }

    struct MonthKey: Hashable { let partition: Int; let startMs: Int64 }
    /// The months' figures read so far, and which were asked last (the oldest is dropped first).
    private var months: [MonthKey: PeriodFigures] = [:]
    private var monthOrder: [MonthKey] = []
    /// The months being read on in the background.
    private var readingOn: Set<MonthKey> = []
    static let maxMonthsKept = 3

    /// One sample of the jobs applied so far, per partition served.
    func sample() {
        var counts: [Int64] = []
        for p in settings.partitions {
            guard let count = try? reader(p).appliedJobCount() else { readers[p.index] = nil; return }
            counts.append(count)
        }
        sampler.record(atMs: LedgerTime.milliseconds(Date()), jobs: counts)
    }
}

/// The rate jobs are applied over the last minutes, per partition, from samples kept in memory
/// (a fixed number). A sample holds one count per partition served, in the settings' order.
final class ConsoleSampler: @unchecked Sendable {
    static let intervalSeconds = 10.0
    static let maxSamples = 60
    private let lock = NSLock()
    private var samples: [(atMs: Int64, jobs: [Int64])] = []

    func record(atMs: Int64, jobs: [Int64]) {
        lock.lock()
        defer { lock.unlock() }
        samples.append((atMs, jobs))
        if samples.count > Self.maxSamples + 1 { samples.removeFirst(samples.count - Self.maxSamples - 1) }
    }

    /// Jobs per second between consecutive samples, per partition (a partition whose count went
    /// back, its file replaced, counts 0 for that interval).
    func rates() -> [(atMs: Int64, perPartition: [Double])] {
        lock.lock()
        defer { lock.unlock() }
        guard samples.count >= 2 else { return [] }
        return (1..<samples.count).map { i in
            let (a, b) = (samples[i - 1], samples[i])
            let seconds = Double(max(1, b.atMs - a.atMs)) / 1000
            return (b.atMs, zip(a.jobs, b.jobs).map { Double(max(0, $1 - $0)) / seconds })
        }
    }
}
