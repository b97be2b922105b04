import ArgumentParser
import Foundation
import Redis
import JobWire

struct EnqueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Push a job (JSON) on the queue; with --wait, print its reply.",
        discussion: """
            Reads the job from standard input when JOB is '-'. With --wait and no replyTo in the job,
            a unique <prefix>:reply:<uuid> is added. Exits 3 when no reply came within --timeout.
            """)

    @OptionGroup var settings: SettingsOptions

    @Argument(help: "The job, as JSON, or '-' for standard input.")
    var job: String

    @Flag(help: "Wait for the reply and print it.")
    var wait = false

    @Option(help: "Seconds to wait for the reply.")
    var timeout: Double = 10

    func run() throws {
        let settings = try self.settings.resolve()
        let text = job == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) : job
        let reply = try JobClient(settings: settings).send(text, wait: wait, timeout: timeout)
        if let reply { print(reply) }
    }
}

/// Pushes jobs as any producer would, and optionally waits on a reply list.
struct JobClient {
    let settings: Settings

    /// Returns the reply when `wait` is set; throws when none came within `timeout`. The job goes
    /// on its user's partition (`partition` for jobs without a user, such as `renewAll`).
    func send(_ json: String, wait: Bool, timeout: Double, partition: Int = 0) throws -> String? {
        let redis = try settings.redis.connect()
        let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let queue = settings.queueKeys(partition: (object?["userId"] as? String).map(settings.partitioning.partition(of:)) ?? partition).jobs
        guard wait else {
            try redis.lpush(queue, json)
            return nil
        }
        guard var object else {
            throw ValidationError("--wait needs the job to be a JSON object")
        }
        let replyTo = object["replyTo"] as? String ?? "\(settings.keys.prefix):reply:\(UUID().uuidString.lowercased())"
        object["replyTo"] = replyTo
        let body = try JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])
        try redis.lpush(queue, Array(body))
        let answer = try redis.send(RedisCommand("BRPOP", replyTo, timeout), blockingFor: timeout)
        guard let pair = answer.array, pair.count == 2, let reply = pair[1].string else {
            // Not a usage error: the job is queued, its reply did not come in time.
            FileHandle.standardError.write(Data("no reply on \(replyTo) within \(timeout) s: is a worker running on \(queue)?\n".utf8))
            throw ExitCode(3)
        }
        return reply
    }

    /// Builds a job object as JSON text.
    static func json(_ fields: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }
}
