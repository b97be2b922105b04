import Foundation
import Redis

/// Why a dead letter could not be requeued.
public struct DeadLetterError: Error, Sendable, Equatable, RawRepresentable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    /// The letter carries neither `job` nor `jobBase64`: it stays where it was.
    public static let noJob = DeadLetterError(rawValue: "dead_letter_without_job")
    public var description: String {
        switch self {
        case .noJob: return "a dead letter without its job was left in place"
        default: return rawValue
        }
    }
}

/// Requeueing dead letters: one act shared by `tokenledger dead-letters requeue` and the
/// console, so both put a job back the same way (its raw bytes, at the front of its own
/// partition's queue, where the worker takes next).
public enum DeadLetters {
    /// Moves up to `count` letters, oldest first, from `dead` back to `jobs`. Returns how many.
    /// Only letters there when it starts: a requeued job that is still invalid comes back as a new
    /// letter at the newest end while the loop runs, and must not be requeued again by it.
    public static func requeue(_ redis: any RedisClient, jobs: String, dead: String, count: Int) throws -> Int {
        var moved = 0
        let waiting = try redis.send(RedisCommand("LLEN", dead)).int ?? 0
        for _ in 0..<max(0, min(count, Int(waiting))) {
            guard let letter = try redis.send(RedisCommand("RPOP", dead)).bytes else { break }
            guard let raw = rawJob(of: letter) else {
                try redis.send(RedisCommand("RPUSH", dead, letter))
                throw DeadLetterError.noJob
            }
            try redis.send(RedisCommand("RPUSH", jobs, raw))
            moved += 1
        }
        return moved
    }

    /// Removes the letter with exactly these bytes and queues its job, in one script (so two
    /// operators confirming the same letter requeue it once). False when it is no longer there.
    public static func requeue(_ redis: any RedisClient, jobs: String, dead: String, letter: [UInt8]) throws -> Bool {
        guard let raw = rawJob(of: letter) else { throw DeadLetterError.noJob }
        let script = """
            if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
              redis.call('RPUSH', KEYS[2], ARGV[2])
              return 1
            end
            return 0
            """
        return try redis.eval(script, keys: [dead, jobs], arguments: [letter, raw]).int == 1
    }

    /// The raw job a letter carries (`job` as text, or `jobBase64` for bytes that are not UTF-8).
    public static func rawJob(of letter: [UInt8]) -> [UInt8]? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(letter)) as? [String: Any] else { return nil }
        if let job = object["job"] as? String { return Array(job.utf8) }
        if let encoded = object["jobBase64"] as? String, let data = Data(base64Encoded: encoded) { return Array(data) }
        return nil
    }
}
