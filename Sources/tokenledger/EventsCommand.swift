import ArgumentParser
import Foundation
import Redis

/// `tokenledger events`: follows the events stream (`P:events`) for operators, one JSON line
/// per event. It reads with plain `XREAD` (no consumer group), so it disturbs no consumer.
///
/// A split ledger writes one stream per partition (`P:{k}:events`), each in its own cluster
/// slot, so one `XREAD` cannot name them all: each is read on its own, in turn, and the
/// partition's events carry their `partition` field.
struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Follow the events stream (P:events, or every partition's P:{k}:events), one JSON object per line.")
    @OptionGroup var settings: SettingsOptions
    @Option(help: "On a split ledger, the partitions whose streams to follow: 'all' or a list such as 0-1,3. Env: TOKENLEDGER_PARTITIONS. Default: all.")
    var partitions: String?
    @Option(help: "Start after this stream id: '$' (only new events, the default), '0' (from the oldest kept), or an id such as 1764000000000-0.")
    var from: String = "$"
    @Option(help: "Only events of this kind (job.applied, hold.expired, grant.expired, balance.low, renewal.completed); repeatable.")
    var type: [String] = []
    @Option(help: "Stop after this many events (default: follow until interrupted).")
    var count: Int?
    @Flag(help: "Print what is in the stream now and exit instead of waiting for more.")
    var noFollow = false

    func run() throws {
        let settings = try self.settings.resolve()
        let redis = try settings.redis.connect()
        let served: [Int]
        if let partitions {
            do {
                served = try settings.partitioning.served(partitions)
            } catch {
                throw SettingsError("partitions: \(error)")
            }
        } else {
            served = settings.servedPartitions
        }
        var streams = try served.map { (key: settings.queueKeys(partition: $0).events, after: try start(redis, settings.queueKeys(partition: $0).events)) }
        var printed = 0
        let wanted = Set(type)
        while count.map({ printed < $0 }) ?? true {
            // One stream waits on the server; several are polled in turn, with a short pause
            // when none had anything, so no partition's events wait behind another's block.
            let single = streams.count == 1
            var any = false
            for s in streams.indices {
                let entries = try redis.xread(streams[s].key, after: streams[s].after, count: 500,
                                              blockMilliseconds: noFollow || !single ? 1 : 2000)
                for entry in entries {
                    streams[s].after = entry.id
                    any = true
                    if !wanted.isEmpty, !wanted.contains(entry.value("event") ?? "") { continue }
                    var object: [String: String] = ["streamId": entry.id]
                    for f in entry.fields { object[String(decoding: f.key, as: UTF8.self)] = String(decoding: f.value, as: UTF8.self) }
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                    // Written unbuffered, so a pipe (`| jq`) sees each event as it comes.
                    FileHandle.standardOutput.write(data + Data("\n".utf8))
                    printed += 1
                    if let count, printed >= count { return }
                }
            }
            if !any {
                if noFollow { return }
                if !single { usleep(200_000) }
            }
        }
    }

    /// Where to start reading `key`. Several streams are polled, not blocked on, so `$` is
    /// pinned to the stream's last id now: a `$` sent again on every poll would skip what came
    /// between two polls.
    private func start(_ redis: any RedisClient, _ key: String) throws -> String {
        guard from == "$" else { return from }
        let last = try redis.send("XREVRANGE", key, "+", "-", "COUNT", 1)
        guard let entry = last.array?.first?.array, let id = entry.first?.string else { return "0-0" }
        return id
    }
}
