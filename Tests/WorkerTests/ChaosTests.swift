import Foundation
import Redis
import TestSupport
import XCTest

/// A seeded chaos run against two real `tokenledger worker` processes (active and standby) on one
/// ledger and one queue, with a private redis-server that persists every write: producers push a
/// seeded mix of valid, refused, repeated and malformed jobs while faults are injected on a
/// seeded schedule; then the workers drain everything and each job is reconciled against the
/// model's prediction: its replies, its dead letter, its events, its ledger entry.
///
/// `CHAOS_SECONDS` (default 60: the CI run), `CHAOS_SEED` (replays a run: the job stream and the
/// fault schedule follow from it), `CHAOS_FAULTS` (a comma list of kill, stop, term, redis, lock,
/// disk, oom: one class alone, for diagnosis). `deploy/chaos.sh` runs the long version.
final class ChaosTests: XCTestCase {
    func testSeededChaosLosesNothingAndAppliesEachJobOnceInOrder() throws {
        let settings = try ChaosSettings.fromEnvironment()
        print("chaos: \(settings) (set CHAOS_SEED to replay this run)")
        let run = try ChaosRun(settings)
        defer { run.cleanUp() }
        try run.execute()
    }
}

final class ChaosRun {
    let settings: ChaosSettings
    let log: ChaosLog
    let server: RedisServerProcess
    let h: WorkerHarness
    let disk: ChaosDisk
    let workers: ChaosWorkers
    let shared: ChaosShared
    var rng: SeededGenerator
    var faults: [ChaosFault]
    var users: [ChaosUser] = []
    var ghosts: [ChaosUser] = []
    var producers: [ChaosProducer] = []
    let replyKey: String
    let pushedKey: String
    /// A storage fault running in the background while other faults go on.
    private var background: DispatchSemaphore?
    private var problems: [String: [String]] = [:]

    init(_ settings: ChaosSettings) throws {
        self.settings = settings
        let log = ChaosLog()
        self.log = log
        shared = ChaosShared(log: log)
        var seeds = SeededGenerator(seed: settings.seed)
        rng = SeededGenerator(seed: seeds.next())
        faults = settings.faults
        // Every acknowledged write is on disk before Redis answers, so a kill -9 of the server
        // loses no queued job, reply or dead letter.
        server = try RedisServerProcess(extraArguments: ["--appendonly", "yes", "--appendfsync", "always"])
        h = try WorkerHarness(redisURL: server.url)
        replyKey = "\(h.keys.prefix):replies"
        pushedKey = "chaos:\(h.keys.prefix):pushed"
        disk = ChaosDisk(directory: h.directory)
        let configFile = h.directory.appendingPathComponent("chaos.json").path
        // A busy timeout well below the locks' durations, so that a lock is an outage the worker
        // must ride out (failed attempts, retries), not only a wait inside SQLite.
        try Data(#"{"leaseSeconds": \#(settings.leaseSeconds), "busyTimeoutMilliseconds": \#(settings.busyTimeoutMilliseconds)}"#.utf8)
            .write(to: URL(fileURLWithPath: configFile))
        workers = ChaosWorkers(h, configFile: configFile, seed: seeds.next(), log: log)
        let names = (0..<(settings.users - 2)).map { String(format: "u%02d", $0) } + ["zo\u{e9}", "zoe\u{301}"]
        users = names.enumerated().map { ChaosUser(index: $0.offset, userId: $0.element) }
        ghosts = (0..<settings.producers).map { ChaosUser(index: names.count + $0, userId: "ghost-\($0)") }
        for p in 0..<settings.producers {
            let own = users.filter { $0.index % settings.producers == p }
            producers.append(ChaosProducer(index: p, seed: seeds.next(), users: own, ghost: ghosts[p], redisURL: server.url,
                                           jobsKey: h.keys.jobs, pushedKey: pushedKey, replyTo: replyKey, shared: shared))
        }
    }

    func cleanUp() {
        shared.stop()
        workers.killAll()
        disk.unmount()
    }

    private func problem(_ category: String, _ text: String) {
        problems[category, default: []].append(text)
    }

    // MARK: The run

    func execute() throws {
        try setUp()
        for producer in producers { producer.start() }
        try injectFaults()
        try finish()
        try reconcile()
        report()
    }

    private func setUp() throws {
        let redis = try RedisConnection(url: server.url)
        XCTAssertEqual(try redis.send("CONFIG", "GET", "appendonly").array?.last?.string, "yes", "the chaos Redis persists")
        if faults.contains(.disk) {
            let (ok, output) = disk.mount(megabytes: settings.long ? 256 : 96)
            if ok {
                // Before any worker opens it: the ledger lives on the tmpfs, reached by its usual path.
                try FileManager.default.createSymbolicLink(atPath: h.databasePath,
                                                           withDestinationPath: disk.mountPoint.appendingPathComponent("ledger.sqlite").path)
                log.note("ledger on a tmpfs at \(disk.mountPoint.path)")
            } else {
                log.note("NOTE: the disk fault is skipped: mount is not permitted here (\(output.trimmingCharacters(in: .whitespacesAndNewlines)))")
                faults.removeAll { $0 == .disk }
            }
        }
        try workers.start(0)
        try workers.start(1)
        try h.eventually(timeout: 60, "a worker takes the lease", log: workers.logTails()) { workers.activeSlot(redis) != nil }
        if disk.mounted {
            let wal = disk.mountPoint.appendingPathComponent("ledger.sqlite-wal").path
            try h.eventually(timeout: 20, "the ledger's WAL is on the tmpfs") { FileManager.default.fileExists(atPath: wal) }
        }
    }

    private func pause(_ seconds: Double) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            try workers.supervise()
            usleep(100_000)
        }
    }

    private func driverRedis() throws -> RedisConnection {
        var last: (any Error)?
        for _ in 0..<100 {
            do { return try RedisConnection(url: server.url) } catch { last = error; usleep(100_000) }
        }
        throw last ?? ChaosSetupError("no Redis")
    }

    private func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < percent }
    private func uniform(_ range: ClosedRange<Double>) -> Double { Double.random(in: range, using: &rng) }

    private func injectFaults() throws {
        guard !faults.isEmpty else {
            try pause(settings.seconds)
            return
        }
        try pause(2)
        while log.elapsed < settings.seconds {
            // Every parameter is drawn from the seed whether or not it is used, so the schedule
            // replays the same way.
            let fault = faults[Int.random(in: 0..<faults.count, using: &rng)]
            let gap = uniform(0.3...2.5)
            let inBackground = chance(50)
            let lockSeconds = settings.long ? uniform(1...20) : uniform(1...5)
            let flicker = chance(35)
            let fullSeconds = settings.long ? uniform(3...5) : uniform(2...4)
            let stopSeconds = settings.leaseSeconds * 2 + uniform(0.5...3)
            let downSeconds = uniform(0.1...2)
            let oomSeconds = uniform(2...5)
            let targetActive = chance(75)
            let restartAfter = uniform(0...1.5)
            try run(fault, inBackground: inBackground, lockSeconds: lockSeconds, flicker: flicker, fullSeconds: fullSeconds,
                    stopSeconds: stopSeconds, downSeconds: downSeconds, oomSeconds: oomSeconds, targetActive: targetActive,
                    restartAfter: restartAfter)
            try pause(gap)
        }
        background?.wait()
        background = nil
    }

    private func target(_ active: Bool) throws -> Int {
        let redis = try driverRedis()
        let slot = workers.activeSlot(redis) ?? 0
        return active ? slot : 1 - slot
    }

    private func run(_ fault: ChaosFault, inBackground: Bool, lockSeconds: Double, flicker: Bool, fullSeconds: Double,
                     stopSeconds: Double, downSeconds: Double, oomSeconds: Double, targetActive: Bool, restartAfter: Double) throws {
        switch fault {
        case .kill:
            let slot = try target(targetActive)
            log.note("kill -9 \(workers.id(slot))\(targetActive ? " (active)" : "")")
            workers.kill9(slot)
            try pause(restartAfter)
            try workers.start(slot)
        case .term:
            let slot = try target(targetActive)
            log.note("SIGTERM \(workers.id(slot))\(targetActive ? " (active)" : "")")
            workers.terminate(slot)
            try pause(restartAfter)
            try workers.start(slot)
        case .stop:
            let slot = try target(true)
            log.note("SIGSTOP \(workers.id(slot)) for \(String(format: "%.1f", stopSeconds)) s (lease \(settings.leaseSeconds) s)")
            workers.signal(slot, SIGSTOP)
            try pause(stopSeconds)
            workers.signal(slot, SIGCONT)
            log.note("SIGCONT \(workers.id(slot))")
        case .redis:
            log.note("redis-server kill -9, down \(String(format: "%.1f", downSeconds)) s")
            server.stop()
            try pause(downSeconds)
            try server.start()
            log.note("redis-server started again")
        case .lock, .disk:
            let work: @Sendable () -> Void
            let path = h.databasePath, log = self.log, disk = self.disk
            if fault == .lock {
                work = {
                    log.note("ledger write lock held \(String(format: "%.1f", lockSeconds)) s\(flicker ? ", freed every 0.35 s" : "")")
                    do { try ChaosLock.hold(path: path, seconds: lockSeconds, flicker: flicker) } catch { log.note("the lock failed: \(error)") }
                    log.note("ledger write lock released")
                }
            } else {
                work = {
                    let name = "filler-\(UUID().uuidString.prefix(6))"
                    let bytes = disk.fill(name)
                    log.note("ledger disk full for \(String(format: "%.1f", fullSeconds)) s (\(bytes) bytes written, \(disk.available) free)")
                    usleep(useconds_t(fullSeconds * 1_000_000))
                    disk.free(name)
                    log.note("ledger disk freed")
                }
            }
            if inBackground && background == nil {
                let done = DispatchSemaphore(value: 0)
                background = done
                Thread { work(); done.signal() }.start()
            } else {
                work()
            }
            // One background storage fault at a time; the next may start once it ends.
            if let background, background.wait(timeout: .now()) == .success { self.background = nil }
        case .oom:
            try outOfMemory(seconds: oomSeconds)
        }
    }

    /// Redis refuses writes while the worker has a committed batch to answer: a short lock (within
    /// the busy timeout) keeps the batch in hand until Redis is out of memory.
    private func outOfMemory(seconds: Double) throws {
        let redis = try driverRedis()
        let shell = try StorageFailureTests.SQLiteShell(h.databasePath, ".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 1;\n")
        shared.requestBurst()
        let deadline = Date().addingTimeInterval(0.5)
        while Date() < deadline, ((try? h.jobsInProcessingLists(redis: redis)) ?? 0) == 0 { usleep(10_000) }
        let inHand = (try? h.jobsInProcessingLists(redis: redis)) ?? -1
        let info = try redis.send("INFO", "memory").string ?? ""
        let used = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("used_memory:") }
            .flatMap { Int($0.dropFirst("used_memory:".count)) } ?? 2_000_000
        _ = try redis.send("CONFIG", "SET", "maxmemory-policy", "noeviction")
        _ = try redis.send("CONFIG", "SET", "maxmemory", "\(used / 2)")
        log.note("redis OOM: maxmemory \(used / 2) < used \(used), noeviction, \(inHand) job(s) in hand, for \(String(format: "%.1f", seconds)) s")
        shell.release()
        try pause(seconds)
        _ = try driverRedis().send("CONFIG", "SET", "maxmemory", "0")
        log.note("redis OOM lifted")
    }

    /// Every fault lifted, both workers running; the producers stop and the workers drain.
    private func finish() throws {
        background?.wait()
        shared.stop()
        for producer in producers { producer.join() }
        if (try? driverRedis()) == nil { try server.start() }
        _ = try? driverRedis().send("CONFIG", "SET", "maxmemory", "0")
        for slot in 0..<2 { workers.signal(slot, SIGCONT) }
        try workers.supervise()
        for slot in 0..<2 where workers.current[slot] == nil { try workers.start(slot) }
        log.note("faults over: \(shared.pushes.count) pushes; draining")

        let redis = try driverRedis()
        let deadline = Date().addingTimeInterval(240)
        var drained = 0
        while Date() < deadline && drained < 3 {
            try workers.supervise()
            let queued = (try? redis.llen(h.keys.jobs)) ?? -1
            let inLists = (try? h.jobsInProcessingLists(redis: redis)) ?? -1
            drained = queued == 0 && inLists == 0 ? drained + 1 : 0
            usleep(200_000)
        }
        if drained < 3 {
            let queued = (try? redis.llen(h.keys.jobs)) ?? -1
            let inLists = (try? h.jobsInProcessingLists(redis: redis)) ?? -1
            problem("not drained", "after 240 s: \(queued) queued, \(inLists) in processing lists")
        }
        log.note("drained; stopping the workers")
        for slot in 0..<2 { workers.terminate(slot) }
    }

    // MARK: Reconciliation, job by job

    private func reconcile() throws {
        let redis = try driverRedis()
        let pushes = shared.pushes
        var validRaw: [[UInt8]: String] = [:]
        var valid: [String: (expected: ChaosExpected, pushes: Int, user: Int, at: Double)] = [:]
        var malformed: [[UInt8]: String?] = [:]
        var pushedAt: [[UInt8]: Double] = [:]
        for push in pushes {
            switch push.kind {
            case let .valid(jobId, expected, _):
                validRaw[push.raw] = jobId
                valid[jobId, default: (expected: expected, pushes: 0, user: push.user ?? -1, at: push.at)].pushes += 1
            case let .malformed(replyId):
                malformed[push.raw] = replyId
            }
            if pushedAt[push.raw] == nil { pushedAt[push.raw] = push.at }
        }
        func when(_ at: Double?) -> String { at.map { String(format: "first pushed at %.2fs", $0) } ?? "" }
        let malformedIds = Set(malformed.values.compactMap { $0 })
        log.note("reconciling \(valid.count) valid job ids (\(pushes.count) pushes), \(malformed.count) malformed")

        // Replies: every push answered, each answer the model's, one first answer at most.
        var replies: [String: [[String: Any]]] = [:]
        var start = 0
        while true {
            let page = try redis.lrange(replyKey, start, start + 4999)
            for raw in page {
                guard let reply = (try? JSONSerialization.jsonObject(with: Data(raw))) as? [String: Any] else {
                    problem("unreadable reply", String(decoding: raw, as: UTF8.self)); continue
                }
                guard let id = reply.string("id") else {
                    if reply.errorCode != "invalid_job" { problem("reply without id", String(decoding: raw, as: UTF8.self)) }
                    continue
                }
                replies[id, default: []].append(reply)
            }
            if page.count < 5000 { break }
            start += 5000
        }
        for (id, job) in valid.sorted(by: { $0.key < $1.key }) {
            let answers = replies[id] ?? []
            let label = "\(id) (\(userName(job.user)), \(when(job.at)))"
            if answers.count < job.pushes { problem("missing reply", "\(label): pushed \(job.pushes)x, \(answers.count) repl(ies)") }
            for answer in answers where ChaosExpected(reply: answer) != job.expected {
                problem("wrong reply", "\(label): model \(job.expected), reply \(ChaosExpected(reply: answer)) duplicate=\(answer.bool("duplicate").map(String.init) ?? "absent")")
            }
            let first = answers.filter { $0.bool("duplicate") == false }.count
            let repeats = answers.filter { $0.bool("duplicate") == true }.count
            if first + repeats != answers.count { problem("reply without duplicate", label) }
            if first > 1 { problem("applied twice?", "\(label): \(first) replies with duplicate:false") }
            if repeats < job.pushes - 1 { problem("repeat not answered as duplicate", "\(label): pushed \(job.pushes)x, \(repeats) duplicate:true") }
        }
        for id in malformedIds where (replies[id] ?? []).isEmpty {
            problem("malformed job without failure reply", id)
        }
        for (id, answers) in replies where valid[id] == nil {
            // A malformed job with an invalid `id` may be answered under that id as it was written.
            if malformedIds.contains(id) || (id.hasPrefix("bad-") && id.hasSuffix(" !")) {
                for answer in answers where answer.errorCode != "invalid_job" { problem("malformed job's reply", "\(id): \(answer.errorCode ?? "success")") }
            } else {
                problem("reply for no pushed job", id)
            }
        }

        // Dead letters: each malformed job exactly once, no valid job ever.
        var dead: [[UInt8]: [String]] = [:]
        for raw in try redis.lrange(h.keys.dead, 0, -1) {
            guard let letter = (try? JSONSerialization.jsonObject(with: Data(raw))) as? [String: Any] else {
                problem("unreadable dead letter", String(decoding: raw, as: UTF8.self)); continue
            }
            let job: [UInt8]? = letter.string("job").map { Array($0.utf8) } ?? letter.string("jobBase64").flatMap { Data(base64Encoded: $0) }.map { Array($0) }
            guard let job else { problem("dead letter without its job", String(decoding: raw, as: UTF8.self)); continue }
            let error = letter["error"] as? [String: Any]
            dead[job, default: []].append("\(error?["code"] as? String ?? "?"): \(error?["message"] as? String ?? "")")
        }
        for (raw, replyId) in malformed {
            let letters = dead[raw] ?? []
            let label = (replyId ?? String(decoding: raw.prefix(60), as: UTF8.self)) + " (\(when(pushedAt[raw])))"
            if letters.count != 1 { problem("malformed job not exactly one dead letter", "\(label): \(letters.count) dead letters") }
            for letter in letters where !letter.hasPrefix("invalid_job:") { problem("malformed job's dead letter code", "\(label): \(letter)") }
        }
        for (raw, letters) in dead where malformed[raw] == nil {
            if let id = validRaw[raw] {
                problem("valid job dead-lettered", "\(id) (\(when(pushedAt[raw]))): \(letters.joined(separator: " | "))")
            } else {
                problem("dead letter of no pushed job", String(decoding: raw.prefix(120), as: UTF8.self))
            }
        }

        // Events: every valid job's first application, as the model says.
        var applied: [String: [ChaosExpected]] = [:]
        var after = "-"
        var eventCount = 0
        while true {
            let page = try redis.xrange(h.keys.events, after, "+", count: 2000)
            for entry in page {
                eventCount += 1
                var fields: [String: String] = [:]
                for (key, value) in entry.fields { fields[String(decoding: key, as: UTF8.self)] = String(decoding: value, as: UTF8.self) }
                guard fields["event"] == "job.applied", let id = fields["id"] else { continue }
                applied[id, default: []].append(ChaosExpected(event: fields))
            }
            guard let last = page.last, page.count == 2000 else { break }
            after = "(" + last.id
        }
        for (id, job) in valid.sorted(by: { $0.key < $1.key }) {
            let events = applied[id] ?? []
            if events.isEmpty { problem("missing job.applied event", "\(id) (\(userName(job.user)), \(when(job.at)))") }
            for event in events where event != job.expected.withoutRefusalBalance {
                problem("wrong job.applied event", "\(id) (\(userName(job.user)), \(when(job.at))): model \(job.expected.withoutRefusalBalance), event \(event)")
            }
        }
        for id in applied.keys where valid[id] == nil { problem("job.applied for no valid job", id) }

        // The ledger, read as bytes from the file: each user's entries are the model's, in push
        // order, once each, and end at the model's balance.
        let rows = try sqlite("SELECT hex(a.user_id), e.job_id, e.balance_after FROM entries e JOIN accounts a ON a.id = e.account_id ORDER BY e.id;")
        var entries: [String: [(job: String, after: Int64)]] = [:]
        var seenJobs: [String: Int] = [:]
        for row in rows.split(separator: "\n") {
            let parts = row.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3 else { continue }
            entries[parts[0], default: []].append((parts[1], Int64(parts[2]) ?? -1))
            if !parts[1].isEmpty { seenJobs[parts[1], default: 0] += 1 }
        }
        for (job, count) in seenJobs where count > 1 { problem("job applied more than once", "\(job): \(count) entries") }
        for user in users + ghosts {
            let hex = user.userId.utf8.map { String(format: "%02X", $0) }.joined()
            let got = entries.removeValue(forKey: hex) ?? []
            let label = "\(user.userId) (bytes \(hex))"
            if got.map(\.job) != user.effects {
                let firstDiff = zip(got.map(\.job), user.effects).enumerated().first { $0.element.0 != $0.element.1 }
                let at = firstDiff?.offset ?? min(got.count, user.effects.count)
                problem("entries differ from the model", "\(label): \(got.count) entries, model \(user.effects.count); first difference at #\(at): ledger \(at < got.count ? got[at].job : "-"), model \(at < user.effects.count ? user.effects[at] : "-")")
            }
            let balance = got.last?.after ?? 0
            if user.exists && balance != user.balance { problem("final balance", "\(label): ledger \(balance), model \(user.balance)") }
        }
        for (hex, got) in entries { problem("entries of no known user", "user bytes \(hex): \(got.count) entries") }

        let (status, output) = try runTokenLedger(["verify", "--database", h.databasePath])
        if status != 0 { problem("tokenledger verify", "exit \(status): \(output.suffix(2000))") }
        for exit in workers.unexpected { problem("worker exit", exit) }
    }

    private func userName(_ index: Int) -> String {
        (users + ghosts).first { $0.index == index }?.userId ?? "?"
    }

    private func sqlite(_ sql: String) throws -> String {
        let (status, output) = ChaosDisk.run("/usr/bin/env", ["sqlite3", h.databasePath, sql])
        guard status == 0 else { throw ChaosSetupError("sqlite3 failed: \(output)") }
        return output
    }

    private func report() {
        guard !problems.isEmpty else {
            print("chaos: \(settings): every job reconciled")
            return
        }
        var text = "chaos run failed: \(settings)\n"
        for (category, list) in problems.sorted(by: { $0.key < $1.key }) {
            text += "== \(category): \(list.count)\n" + list.prefix(12).map { "   " + $0 }.joined(separator: "\n") + "\n"
        }
        let full = text + "\n== fault log\n" + log.text + "\n\n== worker logs\n" + workers.logTails()
        print(full)
        // Every problem, not only the first of each kind, kept past the run's temporary folder.
        let every = problems.sorted(by: { $0.key < $1.key }).map { "== \($0.key): \($0.value.count)\n" + $0.value.joined(separator: "\n") }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("chaos-\(settings.seed).txt")
        try? Data((every.joined(separator: "\n") + "\n\n== fault log\n" + log.text + "\n").utf8).write(to: file)
        XCTFail(text + "(every problem in \(file.path); fault log and worker logs printed above; replay with \(settings))")
    }
}
