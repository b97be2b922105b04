import ArgumentParser
import Foundation
import Redis

/// `tokenledger events`: follows the events stream (`P:events`) for operators, one JSON line
/// per event. It reads with plain `XREAD` (no consumer group), so it disturbs no consumer.
struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Follow the events stream (P:events), one JSON object per line.")
    @OptionGroup var settings: SettingsOptions
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
        let key = settings.keys.events
        var after = from
        var printed = 0
        let wanted = Set(type)
        while count.map({ printed < $0 }) ?? true {
            let entries = try redis.xread(key, after: after, count: 500, blockMilliseconds: noFollow ? 1 : 2000)
            if entries.isEmpty {
                if noFollow { return }
                continue
            }
            for entry in entries {
                after = entry.id
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
    }
}
