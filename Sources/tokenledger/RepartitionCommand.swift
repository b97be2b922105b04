import ArgumentParser
import Foundation
import JobWire
import Ledger
import LedgerModel
import Redis
import Worker

/// `tokenledger repartition --to M`: changes the partition count of a stopped ledger.
///
/// The steps, and what a crash at each leaves (the journal file is the one switch):
/// 1. check: the workers are stopped (no lease held on any partition), the old files pass
///    `verify`; nothing is written.
/// 2. build the new files in a staging folder beside the ledger, each fsynced; a crash leaves the
///    old ledger as it was and a staging folder the next run deletes.
/// 3. check the new files: `verify` passes on each, and every account's balance, spent total and
///    entry count equals the old one; else the staging folder is deleted and nothing changed.
/// 4. switch: the journal `<name>.repartition.json` is written (temporary name, fsync, rename,
///    fsync of the folder). From here the new files are the ledger: every later step is redone
///    by running the command again, and a worker refuses to start while the journal is there.
/// 5. the old files (with their WAL) move into a named folder beside the ledger, the new ones into
///    place; then the jobs still queued or unsettled move, oldest first, onto their users' new
///    queues through staging lists (one `LMOVE` each, so a crash neither drops nor repeats one),
///    and the dead letters onto their users' new dead-letter lists; then the journal goes.
struct RepartitionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repartition",
        abstract: "Change the partition count of a stopped ledger (moves every account, its history and its queued jobs).",
        discussion: """
            Stop every worker first (the command refuses while any partition's lease is held) and the
            producers, or let them push to the new queues only once it has finished. Give the
            current count as usual (--partition-count or TOKENLEDGER_PARTITION_COUNT) and the new one
            with --to. The new files are built beside the ledger and become the ledger only once
            verify passes on them and every balance, spent total and history count equals the old
            one; the old files are kept in a folder named <ledger>.before-repartition-N-to-M-<time>.
            A crash at any step leaves the old ledger or the new one: run the same command again.
            Afterwards start the workers with TOKENLEDGER_PARTITION_COUNT=M and point producers at
            the new queues. See docs/SCALING.md.
            """)
    @OptionGroup var settings: SettingsOptions
    @Option(help: "The new partition count (1-\(Partitioning.maxCount)).") var to: Int

    func run() throws {
        let old = try settings.resolve()
        var journal = try RepartitionJournal.read(old)
        if let j = journal, j.toCount != to {
            throw RepartitionRefusal("a repartition from \(j.fromCount) to \(j.toCount) partitions is under way (\(old.repartitionJournalPath)): run `tokenledger repartition --to \(j.toCount)` to finish it")
        }
        var from = old
        if let j = journal { from.partitioning = try Partitioning(count: j.fromCount) }
        var new = from
        do {
            new.partitioning = try Partitioning(count: to)
        } catch {
            throw ValidationError("--to: \(error)")
        }
        let run = RepartitionRun(from: from, to: new)
        let started = ContinuousClock.now
        if journal == nil {
            guard to != from.partitioning.count else {
                throw ValidationError("the ledger already has \(to) partition\(to == 1 ? "" : "s")")
            }
            journal = try run.prepare()
        }
        guard let journal else { return }
        let moved = try run.finish(journal)
        let seconds = ProgressLine.seconds(ContinuousClock.now - started)
        print("repartitioned \(journal.fromCount) -> \(journal.toCount) partitions: moved \(journal.counts.summary), "
              + "\(moved.jobs) queued or unsettled jobs, \(moved.deadLetters) dead letters; old files kept in \(journal.archive) "
              + "(\(ProgressLine.elapsed(seconds)))")
    }
}

/// The switch: written once the new files are built and checked, removed once everything has moved.
struct RepartitionJournal: Codable {
    var fromCount: Int
    var toCount: Int
    /// The folder the old files move into.
    var archive: String
    var counts: Counts

    struct Counts: Codable {
        var accounts, entries, jobResults, payments, refundRecords, holds, grants, monitors, pendingSends, schedulerRuns: Int64

        init(_ c: RepartitionCounts) {
            (accounts, entries, jobResults, payments, refundRecords) = (c.accounts, c.entries, c.jobResults, c.payments, c.refundRecords)
            (holds, grants, monitors, pendingSends, schedulerRuns) = (c.holds, c.grants, c.monitors, c.pendingSends, c.schedulerRuns)
        }

        var summary: String {
            "\(accounts) accounts, \(entries) entries, \(jobResults) stored results, \(payments) payments, \(refundRecords) refund records, "
                + "\(holds) holds, \(grants) grants, \(monitors) monitors, \(pendingSends) pending sends, \(schedulerRuns) renewal runs"
        }
    }

    static func read(_ settings: Settings) throws -> RepartitionJournal? {
        guard let data = FileManager.default.contents(atPath: settings.repartitionJournalPath) else { return nil }
        do {
            return try JSONDecoder().decode(RepartitionJournal.self, from: data)
        } catch {
            throw RepartitionRefusal("the repartition journal \(settings.repartitionJournalPath) cannot be read (\(error)); it is the switch between the old and the new files: see docs/OPERATIONS.md before removing it")
        }
    }
}

/// The steps of one repartition from `from`'s count to `to`'s (both settings the same but for it).
struct RepartitionRun {
    let from: Settings
    let to: Settings

    var oldPaths: [String] { from.databasePaths }
    var newPaths: [String] { to.databasePaths }
    var folder: URL { URL(fileURLWithPath: from.database).deletingLastPathComponent() }
    var staging: URL { URL(fileURLWithPath: from.database + ".repartition-staging") }
    func staged(_ path: String) -> String { staging.appendingPathComponent(URL(fileURLWithPath: path).lastPathComponent).path }

    /// Stops the process as `kill -9` would at the named step, when the environment asks for it
    /// (the crash tests); never set in production.
    func crashPoint(_ step: String) {
        if ProcessInfo.processInfo.environment["TOKENLEDGER_REPARTITION_CRASH_AT"] == step { kill(getpid(), SIGKILL) }
    }

    /// Steps 1-4: checks, builds and checks the new files, and writes the switch.
    func prepare() throws -> RepartitionJournal {
        let (n, m) = (from.partitioning.count, to.partitioning.count)
        try from.refuseForeignLedgerFiles()
        for (k, path) in oldPaths.enumerated() {
            guard FileManager.default.fileExists(atPath: path) else {
                throw RepartitionRefusal("no ledger at \(path) (partition \(k) of \(n)): give the current count with --partition-count")
            }
        }
        let redis = try from.redis.connect()
        defer { redis.close() }
        try refuseHeldLeases(redis)
        let foreign = try ForeignLayout.unsettledLists(redis, prefix: from.keys.prefix, count: n)
        if !foreign.isEmpty {
            throw RepartitionRefusal("lists of a third partition layout hold jobs: \(foreign.prefix(ForeignLayout.maxNamed).joined(separator: ", ")); settle them first")
        }
        for path in oldPaths {
            let progress = ProgressLine("repartition: verify \(path)", unit: "entries")
            let violations = try from.waitingOut("verifying \(path)") { try Ledger.verify(path: path) { progress.update(done: $0, of: $1) } }
            _ = progress.finish()
            if !violations.isEmpty {
                for v in violations.prefix(20) { print(v) }
                throw RepartitionRefusal("the ledger \(path) has \(violations.count) violation(s): it is not moved")
            }
        }

        // 2. Build, from scratch: what a crashed run left in the staging folder is not trusted.
        try? FileManager.default.removeItem(at: staging)
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        // The old accounts as their entries give them: the progress total, and what step 3 compares.
        let oldTotals = try mergedTotals(oldPaths)
        let total = oldTotals.values.reduce(Int64(0)) { $0 + $1.entries }
        let progress = ProgressLine("repartition: building \(m) files", unit: "entries")
        var counts = RepartitionCounts()
        let nowMs = LedgerTime.milliseconds(Date())
        let partitioning = to.partitioning
        for (j, path) in newPaths.enumerated() {
            let before = counts.entries
            counts = counts + (try LedgerRepartition.build(target: j, of: m, path: staged(path), sources: oldPaths,
                                                            route: { partitioning.partition(of: $0) }, config: from.ledger, nowMs: nowMs) {
                progress.update(done: before + $0, of: total)
            })
            if j == 0 { crashPoint("build") }
        }
        _ = progress.finish()

        // 3. Check: verify, then every account against the old files.
        for path in newPaths.map(staged) {
            let check = ProgressLine("repartition: verify \(URL(fileURLWithPath: path).lastPathComponent)", unit: "entries")
            let violations = try Ledger.verify(path: path) { check.update(done: $0, of: $1) }
            _ = check.finish()
            if !violations.isEmpty {
                for v in violations.prefix(20) { print(v) }
                try? FileManager.default.removeItem(at: staging)
                throw RepartitionRefusal("the new file \(path) has \(violations.count) violation(s); nothing was changed")
            }
        }
        let newTotals = try mergedTotals(newPaths.map(staged))
        let differences = LedgerRepartition.differences(old: oldTotals, new: newTotals)
        if !differences.isEmpty {
            for d in differences { print(d) }
            try? FileManager.default.removeItem(at: staging)
            throw RepartitionRefusal("the new files do not answer what the old ones did; nothing was changed")
        }
        crashPoint("check")
        // Workers may have been started meanwhile: the last look before the switch.
        try refuseHeldLeases(redis)

        // 4. The switch.
        let format = DateFormatter()
        format.locale = Locale(identifier: "en_US_POSIX")
        format.timeZone = TimeZone(identifier: "UTC")
        format.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let archive = "\(from.database).before-repartition-\(n)-to-\(m)-\(format.string(from: Date()))"
        let journal = RepartitionJournal(fromCount: n, toCount: m, archive: archive, counts: .init(counts))
        let path = from.repartitionJournalPath
        let temporary = path + ".tmp"
        let data = try JSONEncoder().encode(journal)
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw RepartitionRefusal("cannot write \(temporary)")
        }
        try Self.fsync(temporary)
        guard rename(temporary, path) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        try Self.fsync(folder.path)
        crashPoint("switch")
        return journal
    }

    func mergedTotals(_ paths: [String]) throws -> [IdentityKey: AccountTotals] {
        var all: [IdentityKey: AccountTotals] = [:]
        for path in paths {
            for (user, t) in try LedgerRepartition.totals(path: path, config: from.ledger) {
                if all.updateValue(t, forKey: user) != nil {
                    throw RepartitionRefusal("the account \(user) is in two files of one layout (\(path) and another)")
                }
            }
        }
        return all
    }

    func refuseHeldLeases(_ redis: any RedisClient) throws {
        var keys: [String] = (0..<from.partitioning.count).map { from.queueKeys(partition: $0).lease }
        keys += (0..<to.partitioning.count).map { to.queueKeys(partition: $0).lease }
        let unique = Array(Set(keys)).sorted()
        let values = try redis.pipeline(unique.map { RedisCommand("GET", $0) })
        let held = zip(unique, values).compactMap { key, v in v.bytes.map { "\(key) (held by \(String(decoding: $0, as: UTF8.self)))" } }
        if !held.isEmpty {
            throw RepartitionRefusal("workers are running: \(held.prefix(ForeignLayout.maxNamed).joined(separator: ", ")). Stop every worker (SIGTERM) before repartitioning; a lease left by a killed worker expires within its lease time.")
        }
    }

    /// Step 5, done again by every run until the journal is removed.
    func finish(_ journal: RepartitionJournal) throws -> (jobs: Int, deadLetters: Int) {
        let manager = FileManager.default
        let archive = URL(fileURLWithPath: journal.archive)
        if !manager.fileExists(atPath: archive.path) {
            try manager.createDirectory(at: archive, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        }
        // Old files out first (a name both layouts use is the old file while its new one is still
        // staged), each with its WAL and shared memory before the file itself.
        let newNames = Set(newPaths.map { URL(fileURLWithPath: $0).lastPathComponent })
        var archived = 0
        for path in oldPaths {
            let name = URL(fileURLWithPath: path).lastPathComponent
            let stillOld = !newNames.contains(name) || manager.fileExists(atPath: staging.appendingPathComponent(name).path)
            guard stillOld else { continue }
            for suffix in ["-wal", "-shm", ""] where manager.fileExists(atPath: path + suffix) {
                try move(path + suffix, archive.appendingPathComponent(name + suffix).path)
                archived += 1
                if archived == 1 { crashPoint("archive") }
            }
        }
        try Self.fsync(archive.path)
        for (j, path) in newPaths.enumerated() where manager.fileExists(atPath: staged(path)) {
            for suffix in ["-wal", "-shm"] where manager.fileExists(atPath: path + suffix) {
                // Left by no ledger this layout knows: kept with the old files rather than read.
                try move(path + suffix, archive.appendingPathComponent("stale-" + URL(fileURLWithPath: path).lastPathComponent + suffix).path)
            }
            try move(staged(path), path)
            if j == 0 { crashPoint("install") }
        }
        try Self.fsync(folder.path)
        try? manager.removeItem(at: staging)

        let redis = try from.redis.connect()
        defer { redis.close() }
        let mover = QueueMover(redis: redis, from: from, to: to, crashPoint: crashPoint)
        let moved = try mover.run()
        crashPoint("done")
        try manager.removeItem(atPath: from.repartitionJournalPath)
        try Self.fsync(folder.path)
        return moved
    }

    func move(_ source: String, _ destination: String) throws {
        guard rename(source, destination) == 0 else {
            let code = errno
            throw RepartitionRefusal("cannot move \(source) to \(destination): \(String(cString: strerror(code)))")
        }
    }

    static func fsync(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        guard Foundation.fsync(fd) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }
}

/// Moves the old layout's queued and unsettled jobs, and its dead letters, onto the new layout's
/// lists, each user's in their order.
///
/// Why staging lists: an old list may have the name of a new one (`P:{0}:jobs` is in both 4 and
/// 16 partitions), and moving a list onto itself job by job would reorder it if the run stopped
/// midway. So every job goes first to `...:repartition:jobs` of its new partition (oldest first:
/// a processing list before the queue, processing lists in the order a worker recovers them),
/// and only once every old list is empty does each staging list go to its queue: by `RENAME`
/// when the queue is empty, else job by job to its oldest end. On one server each move is one
/// `LMOVE`, so a crash drops or repeats nothing; on a cluster (keys of two slots) a job is
/// pushed, then popped, so a crash between may deliver it twice, which the job id makes harmless.
struct QueueMover {
    let redis: any RedisClient
    let from: Settings
    let to: Settings
    let crashPoint: (String) -> Void
    static let batch = 256

    func stagingKey(_ t: Int, _ kind: String) -> String {
        to.partitioning.count == 1 ? "\(to.keys.prefix):repartition:\(kind)" : "\(to.keys.prefix):{\(t)}:repartition:\(kind)"
    }

    /// New partitions of a job taken from old partition `k`: its user's; a `renewAll` (no user)
    /// to every new partition that holds users of `k`, so it still covers them; a job that cannot
    /// be read to one of those, where its worker dead-letters it.
    func route(_ raw: [UInt8], oldPartition k: Int, fanOut: Bool) -> [Int] {
        let fed = LedgerRepartition.targets(of: k, from: from.partitioning.count, to: to.partitioning.count)
        switch Job.decode(raw) {
        case .success(let job):
            if let user = job.userId { return [to.partitioning.partition(of: user)] }
            return fanOut ? fed : [fed[0]]
        case .failure:
            return [fed[0]]
        }
    }

    /// The job inside a dead letter (`job`, or `jobBase64`).
    func deadJob(_ letter: [UInt8]) -> [UInt8] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(letter)) as? [String: Any] else { return [] }
        if let job = object["job"] as? String { return Array(job.utf8) }
        if let b64 = object["jobBase64"] as? String, let data = Data(base64Encoded: b64) { return Array(data) }
        return []
    }

    func run() throws -> (jobs: Int, deadLetters: Int) {
        var sources: [(list: String, k: Int)] = []
        var deadSources: [(list: String, k: Int)] = []
        for k in 0..<from.partitioning.count {
            let keys = from.queueKeys(partition: k)
            let names = try redis.smembers(keys.processingLists).map { String(decoding: $0, as: UTF8.self) }
            let ordered = names.sorted { a, b in
                let (sa, sb) = (Self.sequence(a), Self.sequence(b))
                return sa != sb ? sa < sb : Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
            }
            sources += ordered.map { (keys.processing($0), k) }
            sources.append((keys.jobs, k))
            deadSources.append((keys.dead, k))
        }
        var total: Int64 = 0
        for s in sources + deadSources { total += try redis.llen(s.list) }
        let progress = ProgressLine("repartition: moving jobs and dead letters", unit: "jobs")
        var done: Int64 = 0
        var first = true
        func drain(_ list: String, _ k: Int, kind: String, job: ([UInt8]) -> [UInt8], fanOut: Bool) throws -> Int {
            var moved = 0
            while true {
                let oldest = try redis.lrange(list, -Self.batch, -1)
                if oldest.isEmpty { return moved }
                var commands: [RedisCommand] = []
                var expected: [(index: Int, raw: [UInt8])] = []
                for raw in oldest.reversed() {
                    let targets = route(job(raw), oldPartition: k, fanOut: fanOut).map { stagingKey($0, kind) }
                    for extra in targets.dropLast() { commands.append(RedisCommand("LPUSH", extra, raw)) }
                    if to.redis.isCluster {
                        if let last = targets.last { commands.append(RedisCommand("LPUSH", last, raw)) }
                        commands.append(RedisCommand("RPOP", list))
                    } else {
                        commands.append(RedisCommand("LMOVE", list, targets.last ?? stagingKey(0, kind), "RIGHT", "LEFT"))
                    }
                    expected.append((commands.count - 1, raw))
                }
                let replies = try redis.pipeline(commands)
                for (index, raw) in expected where replies.count <= index || replies[index].bytes != raw {
                    throw RepartitionRefusal("\(list) changed while its jobs were moved (is a worker or producer using it?); run the command again once it is stopped")
                }
                moved += oldest.count
                done += Int64(oldest.count)
                progress.update(done: done, of: total)
                if first { first = false; crashPoint("queues") }
            }
        }
        var jobs = 0, dead = 0
        for s in sources { jobs += try drain(s.list, s.k, kind: "jobs", job: { $0 }, fanOut: true) }
        for s in deadSources { dead += try drain(s.list, s.k, kind: "dead", job: deadJob, fanOut: false) }
        // Every old list is empty: forget the old processing lists (an empty one is settled).
        for k in 0..<from.partitioning.count { _ = try redis.del([from.queueKeys(partition: k).processingLists]) }
        for t in 0..<to.partitioning.count {
            let keys = to.queueKeys(partition: t)
            try settle(stagingKey(t, "jobs"), into: keys.jobs)
            try settle(stagingKey(t, "dead"), into: keys.dead)
            if t == 0 { crashPoint("finalize") }
        }
        _ = progress.finish()
        return (jobs, dead)
    }

    /// The staging list becomes the oldest part of `list`.
    func settle(_ staging: String, into list: String) throws {
        while try redis.llen(staging) > 0 {
            if try redis.llen(list) == 0 {
                _ = try redis.send(RedisCommand("RENAME", staging, list))
                return
            }
            let n = min(Int(try redis.llen(staging)), Self.batch)
            _ = try redis.pipeline((0..<n).map { _ in RedisCommand("LMOVE", staging, list, "LEFT", "RIGHT") })
        }
    }

    /// `<workerId>:<n>`'s n, as the worker orders the lists it recovers (a legacy list first).
    static func sequence(_ list: String) -> UInt64 {
        guard let colon = list.lastIndex(of: ":") else { return 0 }
        return UInt64(list[list.index(after: colon)...]) ?? 0
    }
}

/// Why the command stopped (the ledger as it was, or the move to be finished by a run again).
struct RepartitionRefusal: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
