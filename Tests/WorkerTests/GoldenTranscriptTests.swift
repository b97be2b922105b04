import Foundation
import Redis
import TestSupport
import Worker
import XCTest

/// Replays Tests/Golden/transcript.json against the real `tokenledger worker` and a real
/// redis-server: every job in order, and every reply, invalidation, event, alert and dead letter
/// compared with the transcript after its normalisation (Tests/Golden/README.md). A value that
/// changes, or a field that goes missing, fails; a new field does not. Messages are matched by
/// count per kind in order, not by timing: what arrives late is matched to the next step, and
/// whatever is left at the end fails.
final class GoldenTranscriptTests: XCTestCase {
    static let transcriptURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Golden").appendingPathComponent("transcript.json")

    func testTheWorkerAnswersEveryGoldenStepAsTheTranscriptSays() throws {
        let transcript = try GoldenJSON.parse(Array(try Data(contentsOf: Self.transcriptURL)))
        let scenarios = try XCTUnwrap(transcript["scenarios"]?.array)
        XCTAssertGreaterThanOrEqual(scenarios.count, 2)
        for scenario in scenarios {
            try GoldenReplay(scenario: scenario, workerId: try XCTUnwrap(transcript["workerId"]?.string)).run()
        }
    }
}

/// One scenario: a worker of its own on a fresh ledger, the steps pushed one at a time.
private final class GoldenReplay {
    let name: String
    let steps: [GoldenJSON]
    let partitionCount: Int
    let h: WorkerHarness
    var worker: WorkerProcess
    let workerId: String
    let configPath: String
    var restarts = 0
    let subscriber: RedisSubscriber
    let normaliser: GoldenNormaliser
    /// What arrived and has not yet been matched to a step, and what was (to know a resend).
    var buffered: [Kind: [GoldenJSON]] = [:]
    var matched: [Kind: Set<String>] = [:]
    var lastStreamId: [Int?: String] = [:]
    var deadLettersSeen: [Int?: Int] = [:]
    var failures = 0

    init(scenario: GoldenJSON, workerId: String) throws {
        name = scenario["name"]?.string ?? "?"
        steps = scenario["steps"]?.array ?? []
        partitionCount = Int(scenario["partitionCount"]?.int ?? 1)
        h = try WorkerHarness()
        let config = h.directory.appendingPathComponent("config.json")
        try Data((scenario["config"] ?? .object([])).text.utf8).write(to: config)
        subscriber = try RedisSubscriber(url: h.redisURL)
        try subscriber.subscribe([h.keys.balance, h.keys.alerts])
        normaliser = GoldenNormaliser(prefix: h.keys.prefix, start: Date())
        self.workerId = workerId
        configPath = config.path
        worker = try WorkerProcess(h, workerId: workerId, configFile: config.path)
    }

    var stopped = false

    deinit { if !stopped { _ = worker.terminate() } }

    var partitions: [Int?] { partitionCount == 1 ? [nil] : (0..<partitionCount).map { $0 } }

    func keys(_ partition: Int?) -> QueueKeys { QueueKeys(prefix: h.keys.prefix, partition: partition) }

    func run() throws {
        XCTAssertGreaterThan(steps.count, 0, name)
        for (index, step) in steps.enumerated() {
            try play(step, index: index)
            if failures > 0 { break }  // later steps would only repeat the first difference
        }
        if failures == 0 { try checkNothingIsLeft() }
        stopped = true
        XCTAssertEqual(worker.terminate(), 0, "\(name): the worker exits cleanly\n\(worker.log.suffix(3000))")
    }

    func play(_ step: GoldenJSON, index: Int) throws {
        let label = "\(name) / \(step["name"]?.string ?? "step \(index)")"
        let partition = step["partition"]?.int.map { Int($0) }
        var replyKey: String?
        if let sql = step["restart"]?["sql"]?.string { try restart(label, sql: sql) }
        if let job = step["job"] {
            var body = job
            if step["noReply"]?.bool != true, case .object(let members) = job {
                replyKey = "\(h.keys.prefix):reply:\(index)"
                body = .object(members + [("replyTo", .string(replyKey!))])
            }
            _ = try h.redis.lpush(keys(partition).jobs, Array(body.text.utf8))
        } else if let raw = step["raw"]?.string {
            _ = try h.redis.lpush(keys(partition).jobs, Array(normaliser.expand(raw).utf8))
            replyKey = step["replyTo"]?.string.map(normaliser.expand)
        } else if let base64 = step["rawBase64"]?.string {
            _ = try h.redis.lpush(keys(partition).jobs, Array(try XCTUnwrap(Data(base64Encoded: base64), label)))
        }

        if let expected = step["reply"] {
            let key = try XCTUnwrap(replyKey, "\(label): the transcript has a reply but the step names no replyTo")
            let answer = try h.redis.send(RedisCommand("BRPOP", key, 60), blockingFor: 60)
            guard let pair = answer.array, pair.count == 2, let bytes = pair[1].bytes else {
                return fail(label, "no reply on \(key) within 60 s\n\(worker.log.suffix(3000))")
            }
            compare(label, "reply", expected, normaliser.normalise(try GoldenJSON.parse(bytes)))
            if step["restart"] != nil { try discardResends(label) }
        }
        try match(label, "invalidations", step["invalidations"]?.array ?? [], kind: .invalidations)
        try match(label, "alerts", step["alerts"]?.array ?? [], kind: .alerts)
        // Events: each from the stream of its partition (the field `partition`; none on one ledger).
        let expectedEvents = step["events"]?.array ?? []
        for p in partitions {
            let mine = expectedEvents.filter { event in event["partition"]?.string.flatMap { Int($0) } == p }
            try match(label, "events" + (p.map { " of partition \($0)" } ?? ""), mine, kind: .events(p))
        }
        // Dead letters: from the dead-letter list of the queue the step was pushed on.
        try match(label, "dead letters", step["deadLetters"]?.array ?? [], kind: .deadLetters(partition))
    }

    /// Where a kind of message comes from.
    enum Kind: Hashable {
        case invalidations, alerts
        case events(Int?)
        case deadLetters(Int?)
    }

    /// Stops the worker, runs `sql` on its ledger with the sqlite3 shell, and starts it again.
    func restart(_ label: String, sql: String) throws {
        let status = worker.terminate()
        guard status == 0 else { return fail(label, "the worker exited with \(status) at SIGTERM\n\(worker.log.suffix(3000))") }
        let (code, output) = ChaosDisk.run("/usr/bin/env", ["sqlite3", h.databasePath, sql])
        guard code == 0 else { return fail(label, "sqlite3 failed: \(output)") }
        restarts += 1
        worker = try WorkerProcess(h, workerId: workerId, configFile: configPath, logName: "\(workerId)-\(restarts)")
    }

    /// What a restarted worker sends before it answers its first job is what its ledger kept to
    /// announce (at least once, with the balance as it stands now): no answer to any step. The
    /// restart step's job is a query, which sends nothing, so everything up to its reply goes.
    func discardResends(_ label: String) throws {
        let marker = "golden-marker-\(UUID().uuidString)"
        _ = try h.redis.publish(h.keys.balance, marker)
        _ = try h.redis.publish(h.keys.alerts, marker)
        var markers = 0, resent = 0
        let deadline = Date().addingTimeInterval(60)
        while markers < 2, Date() < deadline {
            guard let message = try subscriber.receive(timeout: 1) else { continue }
            if message.text == marker { markers += 1 } else { resent += 1 }
        }
        for p in partitions {
            for entry in try h.redis.xrange(keys(p).events, "(" + (lastStreamId[p] ?? "0-0"), "+") {
                lastStreamId[p] = entry.id
                resent += 1
            }
        }
        if markers < 2 { fail(label, "the subscriber did not read its own markers within 60 s") }
        if resent > 0 { print("\(label): \(resent) messages sent again by the restarted worker, not compared") }
    }

    /// Matches the next live messages of `kind` with `expected`, in order, waiting for them. A
    /// live message that differs but repeats one already matched is a resend (the contract's
    /// at-least-once delivery, after a lease renewal that came late on a loaded machine) and is
    /// skipped; any other difference fails.
    func match(_ label: String, _ what: String, _ expected: [GoldenJSON], kind: Kind) throws {
        for (index, golden) in expected.enumerated() {
            let deadline = Date().addingTimeInterval(60)
            while true {
                guard let live = try next(kind, until: deadline) else {
                    return fail(label, "\(what)[\(index)]: nothing came within 60 s; the transcript has \(golden.text)")
                }
                let differences = GoldenJSON.differences(golden: golden, live: live)
                if differences.isEmpty {
                    matched[kind, default: []].insert(live.canonical)
                    break
                }
                if matched[kind, default: []].contains(live.canonical) { continue }
                return fail(label, "\(what)[\(index)] differs from the transcript:\n  " + differences.joined(separator: "\n  ") + "\n  live: \(live.text)")
            }
        }
    }

    /// The next message of `kind` not yet matched, waiting until `deadline`.
    func next(_ kind: Kind, until deadline: Date) throws -> GoldenJSON? {
        while buffered[kind, default: []].isEmpty {
            switch kind {
            case .invalidations, .alerts:
                if let message = try subscriber.receive(timeout: 0.5) { try take(message) }
            case .events(let p):
                try readEvents(p)
            case .deadLetters(let p):
                try readDeadLetters(p)
            }
            if buffered[kind, default: []].isEmpty {
                guard Date() < deadline else { return nil }
                if case .events = kind { usleep(20_000) }
                if case .deadLetters = kind { usleep(20_000) }
            }
        }
        return buffered[kind]?.removeFirst()
    }

    func take(_ message: RedisMessage) throws {
        let value = normaliser.normalise(try GoldenJSON.parse(message.payload))
        buffered[message.channel == h.keys.balance ? .invalidations : .alerts, default: []].append(value)
    }

    func readEvents(_ partition: Int?) throws {
        for entry in try h.redis.xrange(keys(partition).events, "(" + (lastStreamId[partition] ?? "0-0"), "+") {
            lastStreamId[partition] = entry.id
            let fields = entry.fields.map { (String(decoding: $0.key, as: UTF8.self), GoldenJSON.string(String(decoding: $0.value, as: UTF8.self))) }
            buffered[.events(partition), default: []].append(normaliser.normalise(.object(fields)))
        }
    }

    func readDeadLetters(_ partition: Int?) throws {
        let key = keys(partition).dead
        let seen = deadLettersSeen[partition] ?? 0
        let length = Int(try h.redis.llen(key))
        guard length > seen else { return }
        // LPUSH puts the newest first: those after the `seen` oldest, oldest first.
        for letter in try h.redis.lrange(key, 0, length - seen - 1).reversed() {
            buffered[.deadLetters(partition), default: []].append(normaliser.normalise(try GoldenJSON.parse(letter)))
        }
        deadLettersSeen[partition] = length
    }

    /// After the last step: nothing more came out than the transcript says.
    func checkNothingIsLeft() throws {
        try h.waitUntilDrained(timeout: 60)
        for p in partitions where p != nil { try h.waitUntilDrainedPartition(keys(p)) }
        let marker = "golden-marker-\(UUID().uuidString)"
        _ = try h.redis.publish(h.keys.balance, marker)
        _ = try h.redis.publish(h.keys.alerts, marker)
        var markers = 0
        let deadline = Date().addingTimeInterval(60)
        while markers < 2, Date() < deadline {
            guard let message = try subscriber.receive(timeout: 1) else { continue }
            if message.text == marker { markers += 1 } else { try take(message) }
        }
        XCTAssertEqual(markers, 2, "\(name): the subscriber read its own markers")
        var kinds: [Kind] = [.invalidations, .alerts]
        for p in partitions {
            try readEvents(p)
            try readDeadLetters(p)
            kinds += [.events(p), .deadLetters(p)]
        }
        for kind in kinds {
            let extra = buffered[kind, default: []].filter { !matched[kind, default: []].contains($0.canonical) }
            XCTAssertEqual(extra.map(\.text), [], "\(name): \(kind) the transcript does not have")
        }
    }

    func compare(_ label: String, _ what: String, _ golden: GoldenJSON, _ live: GoldenJSON) {
        let differences = GoldenJSON.differences(golden: golden, live: live)
        guard !differences.isEmpty else { return }
        fail(label, "\(what) differs from the transcript:\n  " + differences.joined(separator: "\n  ") + "\n  live: \(live.text)")
    }

    func fail(_ label: String, _ message: String) {
        failures += 1
        XCTFail("\(label): \(message)")
    }
}

private extension WorkerHarness {
    /// Waits until one partition's queue is empty and its taken batches are settled.
    func waitUntilDrainedPartition(_ keys: QueueKeys, timeout: Double = 60) throws {
        try eventually(timeout: timeout, "partition \(keys.partition.map(String.init) ?? "-") drained") {
            guard try redis.llen(keys.jobs) == 0 else { return false }
            return try redis.smembers(keys.processingLists).allSatisfy { try redis.llen(keys.processing(String(decoding: $0, as: UTF8.self))) == 0 }
        }
    }
}

/// The comparison itself, without a worker: what it lets through and what it catches.
final class GoldenComparisonTests: XCTestCase {
    func testAChangedOrMissingValueDiffersAndANewFieldDoesNot() throws {
        let golden = try GoldenJSON.parse(Array(#"{"id":"c","newBalance":90,"duplicate":false,"entries":[{"id":2,"metadata":null}],"userId":"caf\u00e9"}"#.utf8))
        func differences(_ live: String) throws -> [String] {
            GoldenJSON.differences(golden: golden, live: try GoldenJSON.parse(Array(live.utf8)))
        }
        XCTAssertEqual(try differences(#"{"userId":"caf\u00e9","entries":[{"metadata":null,"id":2}],"duplicate":false,"newBalance":90,"id":"c"}"#), [], "key order is free")
        XCTAssertEqual(try differences(#"{"id":"c","newBalance":90,"duplicate":false,"entries":[{"id":2,"metadata":null,"new":1}],"userId":"caf\u00e9","added":true}"#), [], "a new field is fine")
        XCTAssertEqual(try differences(#"{"id":"c","newBalance":91,"duplicate":false,"entries":[{"id":2,"metadata":null}],"userId":"caf\u00e9"}"#), [".newBalance: the transcript has 90, live 91"])
        XCTAssertEqual(try differences(#"{"id":"c","newBalance":90,"duplicate":0,"entries":[{"id":2,"metadata":null}],"userId":"caf\u00e9"}"#), [".duplicate: the transcript has false, live 0"], "a boolean is no number")
        XCTAssertEqual(try differences(#"{"id":"c","newBalance":90,"duplicate":false,"entries":[{"id":2,"metadata":{}}],"userId":"caf\u00e9"}"#), [".entries[0].metadata: the transcript has null, live {}"])
        XCTAssertEqual(try differences(#"{"id":"c","newBalance":90,"duplicate":false,"entries":[],"userId":"caf\u00e9"}"#).count, 1, "an item fewer")
        XCTAssertEqual(try differences(#"{"id":"c","duplicate":false,"entries":[{"id":2,"metadata":null}],"userId":"caf\u00e9"}"#), [".newBalance: missing (the transcript has 90)"])
        XCTAssertEqual(try differences(#"{"id":"c","newBalance":90,"duplicate":false,"entries":[{"id":2,"metadata":null}],"userId":"cafe\u0301"}"#).count, 1,
                       "identity is bytes: the decomposed e-acute is another string")
    }

    func testTheNormalisationKeepsTimesTheJobsNameAndReplacesTheRunsOwn() {
        let start = Date(timeIntervalSince1970: 1_796_000_000)  // 2026-11-29
        let n = GoldenNormaliser(prefix: "tl:ab12", start: start)
        XCTAssertEqual(n.normalise("renewal:u:2026-11-29T10:00:00.000Z"), "renewal:u:<time>")
        XCTAssertEqual(n.normalise("2100-01-01T00:00:00.000Z"), "2100-01-01T00:00:00.000Z")
        XCTAssertEqual(n.normalise("2024-02-29T02:00:00.000Z"), "2024-02-29T02:00:00.000Z")
        XCTAssertEqual(n.normalise("tl:ab12:reply:7"), "<P>:reply:7")
        XCTAssertEqual(n.normalise(String(repeating: "x", count: 1200)), "<x*1200>")
        XCTAssertEqual(n.expand("<P>:<x*3>"), "tl:ab12:xxx")
        XCTAssertEqual(n.normalise(.object([("daysUntilRenewal", .int(31)), ("n", .int(31))])).canonical, #"{"daysUntilRenewal":"<int>","n":31}"#)
    }
}
