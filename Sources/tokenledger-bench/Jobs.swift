import ArgumentParser
import Foundation
import JobWire
import Ledger
import LedgerModel
import Redis

/// How job ids are made: `uuid` as the example producers do (`charge:<uuid>`, random keys in the
/// ledger's job index), or `sequential` (`charge:<run>-<zero-padded n>`, keys that only grow).
enum IdStyle: String, ExpressibleByArgument, CaseIterable, Sendable {
    case uuid, sequential

    func id(_ kind: String, _ run: String, _ n: Int) -> String {
        switch self {
        case .uuid: return "\(kind):\(UUID().uuidString.lowercased())"
        case .sequential: return "\(kind):\(run)-\(String(n + 1_000_000_000))"
        }
    }
}

/// Job texts as producers write them (compact JSON, fields in the contract's words).
enum JobText {
    static func charge(id: String, userId: String, operation: String, replyTo: String?) -> String {
        if let replyTo {
            return #"{"type":"charge","id":"\#(id)","userId":"\#(userId)","operation":"\#(operation)","replyTo":"\#(replyTo)"}"#
        }
        return #"{"type":"charge","id":"\#(id)","userId":"\#(userId)","operation":"\#(operation)"}"#
    }

    static func balance(userId: String, replyTo: String) -> String {
        #"{"type":"balance","userId":"\#(userId)","replyTo":"\#(replyTo)"}"#
    }

    /// The integer after `"key":` in a JSON text (the ledger's and the worker's results are compact).
    static func int(_ key: String, in json: String) -> Int64? {
        guard let r = json.range(of: "\"\(key)\":") else { return nil }
        return Int64(json[r.upperBound...].prefix { $0 == "-" || $0.isNumber })
    }

    /// The string after `"key":"` in a JSON text without escapes in that value.
    static func string(_ key: String, in bytes: [UInt8]) -> Substring? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let r = text.range(of: "\"\(key)\":\"") else { return nil }
        return text[r.upperBound...].prefix { $0 != "\"" }
    }
}

/// The users of a scenario: `user-0` … `user-<n-1>`, each opened and credited through the ledger
/// API before the worker starts, so that no charge is refused.
enum Accounts {
    static func userId(_ n: Int) -> String { "user-\(n)" }

    /// Opens `count` accounts (Gift allocation, 100) and credits each `credit` tokens, 1000 per
    /// transaction; returns the balance each now has.
    @discardableResult
    static func open(_ ledger: Ledger, count: Int, credit: Int64, run: String) throws -> Int64 {
        try open(ledger, users: Array(0..<count), credit: credit, run: run)
    }

    /// Opens and credits the accounts numbered `users` (those of one partition's ledger).
    @discardableResult
    static func open(_ ledger: Ledger, users: [Int], credit: Int64, run: String) throws -> Int64 {
        for start in stride(from: 0, to: users.count, by: 1000) {
            let range = users[start..<min(users.count, start + 1000)]
            var commands = range.map { Command(jobId: "open:\(run)-\($0)", operation: .open(userId: userId($0))) }
            if credit > 0 {
                commands += range.map {
                    Command(jobId: "credit:\(run)-\($0)", operation: .credit(userId: userId($0), operationType: "bench_seed",
                                                                            amount: credit, metadata: nil))
                }
            }
            let results = try ledger.apply(commands)
            if let refused = results.first(where: { !$0.success }) { throw BenchError("account setup refused: \(refused.json)") }
        }
        let gift = LedgerConfig().tiers["Gift"]!.allocation
        return gift + credit
    }
}

extension RedisConnection {
    /// Pushes `count` jobs made by `job(n)` onto `key` with pipelined multi-value LPUSH (in
    /// order: job 0 is the oldest); returns the seconds it took.
    @discardableResult
    func enqueue(_ key: String, count: Int, valuesPerCommand: Int = 1000, commandsPerPipeline: Int = 20,
                 _ job: (Int) -> String) throws -> Double {
        let started = System.nowNs()
        var n = 0
        while n < count {
            var commands: [RedisCommand] = []
            for _ in 0..<commandsPerPipeline where n < count {
                var command = RedisCommand("LPUSH", key)
                for _ in 0..<valuesPerCommand where n < count {
                    command.append(job(n))
                    n += 1
                }
                commands.append(command)
            }
            for answer in try pipeline(commands) { try answer.throwingOnError() }
        }
        return System.seconds(since: started)
    }

    /// Pushes `count` jobs, each on the queue `keys[partition(n)]`, with pipelined multi-value
    /// LPUSH (job 0 is the oldest of its queue); returns the seconds it took.
    @discardableResult
    func enqueue(_ keys: [String], count: Int, partition: (Int) -> Int, valuesPerCommand: Int = 1000,
                 commandsPerPipeline: Int = 20, _ job: (Int) -> String) throws -> Double {
        if keys.count == 1 { return try enqueue(keys[0], count: count, valuesPerCommand: valuesPerCommand, job) }
        let started = System.nowNs()
        var filling = keys.map { RedisCommand("LPUSH", $0) }
        var full: [RedisCommand] = []
        for n in 0..<count {
            let k = partition(n)
            filling[k].append(job(n))
            if filling[k].argumentCount > valuesPerCommand + 1 {
                full.append(filling[k])
                filling[k] = RedisCommand("LPUSH", keys[k])
            }
            if full.count >= commandsPerPipeline || n == count - 1 {
                if n == count - 1 { full += filling.filter { $0.argumentCount > 2 } }
                for answer in try pipeline(full) { try answer.throwingOnError() }
                full = []
            }
        }
        return System.seconds(since: started)
    }

    /// Deletes every key under `prefix:` (SCAN + UNLINK), so a run leaves the server as it found it.
    func deleteKeys(prefix: String) throws {
        var cursor = "0"
        repeat {
            let reply = try send(RedisCommand("SCAN", cursor, "MATCH", "\(prefix):*", "COUNT", 10_000))
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let keys = parts[1].array else { break }
            cursor = next
            let names = keys.compactMap(\.bytes)
            if !names.isEmpty { try send(RedisCommand("UNLINK", arguments: names)) }
        } while cursor != "0"
    }

    /// CPU seconds (user + system) the server has used (INFO cpu).
    func serverCPU() throws -> Double {
        let text = try send(RedisCommand("INFO", "cpu")).string ?? ""
        var total = 0.0
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":")
            if parts.count == 2, parts[0] == "used_cpu_sys" || parts[0] == "used_cpu_user" { total += Double(parts[1]) ?? 0 }
        }
        return total
    }

    /// Lengths of many lists, in pipelines of 10,000.
    func lengths(of keys: [String]) throws -> [Int64] {
        var out: [Int64] = []
        out.reserveCapacity(keys.count)
        for start in stride(from: 0, to: keys.count, by: 10_000) {
            let chunk = keys[start..<min(keys.count, start + 10_000)]
            out += try pipeline(chunk.map { RedisCommand("LLEN", $0) }).map { $0.int ?? -1 }
        }
        return out
    }
}

extension CommandResult {
    /// The reply's fields as the wire writes them (`{"success":…}`), for checks and messages.
    var json: String { Replies.fields(of: outcome) }
}
