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
    let worker: WorkerProcess
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
            return try redis.smembers(keys.workers).allSatisfy { try redis.llen(keys.processing(String(decoding: $0, as: UTF8.self))) == 0 }
        }
    }
}
