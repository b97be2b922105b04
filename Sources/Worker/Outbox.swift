import Foundation
import Ledger
import Redis

/// Everything a committed batch sends, gathered so that it leaves in one pipeline: each reply
/// (`LPUSH` + `EXPIRE`), each invalidation (`PUBLISH`), each dead letter, and last the
/// acknowledgement that removes the settled jobs from their processing list.
///
/// It is only flushed after the ledger commit: a cache never hears of a balance that could still
/// roll back, and a crash before the flush leaves the jobs to be replayed, which answers the same
/// stored results again (at-least-once messages, exactly-once effects).
struct Outbox {
    let keys: QueueKeys
    let replyExpirySeconds: Int
    private(set) var commands: [RedisCommand] = []
    private(set) var replies = 0
    private(set) var invalidations = 0
    private(set) var deadLetters = 0
    /// The last commands: the acknowledgement (see `flush`).
    private var acknowledgementCommands = 0
    private(set) var events = 0
    private(set) var alerts = 0
    /// The last row of the ledger's `pending_sends` this outbox announces: once it has left,
    /// the ledger may forget the rows through it.
    private(set) var pendingSeq: Int64?

    mutating func announces(pendingThrough seq: Int64?) {
        guard let seq else { return }
        pendingSeq = max(pendingSeq ?? seq, seq)
    }

    init(keys: QueueKeys, replyExpirySeconds: Int, capacity: Int = 0) {
        self.keys = keys
        self.replyExpirySeconds = replyExpirySeconds
        commands.reserveCapacity(capacity)
    }

    mutating func reply(to key: String, _ json: String) {
        commands.append(RedisCommand("LPUSH", key, json))
        commands.append(RedisCommand("EXPIRE", key, replyExpirySeconds))
        replies += 1
    }

    /// An invalidation; on a split ledger it names its partition (`"partition": k` first), since
    /// every partition publishes on the one channel.
    mutating func publish(_ json: String) {
        let message = keys.partition.map { #"{"partition":\#($0),"# + json.dropFirst() } ?? json
        commands.append(RedisCommand("PUBLISH", keys.balance, message))
        invalidations += 1
    }

    /// Writes an event on the stream (`XADD P:events MAXLEN ~ <max> * event <name> ...`) when
    /// `maxLength` is set (the stream is on); a `balance.low` is also published on `P:alerts`.
    mutating func event(_ e: LedgerEvent, streamMaxLength maxLength: Int?) {
        var e = e
        // With N > 1 partitions, events carry their partition (the contract's Partitions).
        if let partition = keys.partition { e.add("partition", Int64(partition)) }
        if let maxLength {
            var command = RedisCommand("XADD", keys.events, "MAXLEN", "~", maxLength, "*", "event", e.name)
            for f in e.fields {
                command.append(f.key)
                command.append(f.value)
            }
            commands.append(command)
            events += 1
        }
        if e.name == LedgerEvent.balanceLow {
            commands.append(RedisCommand("PUBLISH", keys.alerts, e.json))
            alerts += 1
        }
    }

    mutating func deadLetter(_ json: String) {
        commands.append(RedisCommand("LPUSH", keys.dead, json))
        deadLetters += 1
    }

    /// Ends the outbox with the removal of the settled jobs from their processing list: sent
    /// after everything else, so a crash in between replays the jobs rather than losing a reply.
    mutating func acknowledge(_ acknowledgement: Acknowledgement) {
        commands.append(contentsOf: acknowledgement.commands)
        acknowledgementCommands += acknowledgement.commands.count
    }

    var isEmpty: Bool { commands.isEmpty }

    /// Sends everything in one round trip. Error replies of single commands (a `replyTo` that names
    /// a key of another type, say) are returned, not thrown: the rest of the batch still goes out.
    ///
    /// An acknowledgement that Redis refused (a server still `LOADING` its data after a restart,
    /// say) is thrown instead: the jobs are committed but still in their list, and the worker must
    /// treat it as a Redis failure and settle its lists again (they answer as duplicates).
    func flush(_ redis: any RedisClient) throws(RedisError) -> [String] {
        guard !commands.isEmpty else { return [] }
        let answers = try redis.pipeline(commands)
        for (command, answer) in zip(commands, answers).suffix(acknowledgementCommands) {
            if let message = answer.errorMessage { throw .server("the acknowledgement \(command.name) was refused: \(message)") }
        }
        return zip(commands, answers).compactMap { command, answer in
            answer.errorMessage.map { "\(command.name): \($0)" }
        }
    }
}
