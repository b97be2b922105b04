import Foundation
import JobWire
import Ledger
import LedgerModel
import Redis

/// Everything a committed batch sends: each reply (`LPUSH` + `EXPIRE`), each invalidation
/// (`PUBLISH`), each event (`XADD`), each dead letter, and last the acknowledgement that removes
/// the settled jobs from their processing list.
///
/// It is only flushed after the ledger commit: a cache never hears of a balance that could still
/// roll back, and a crash before the flush leaves the jobs to be replayed, which answers the same
/// stored results again (at-least-once messages, exactly-once effects).
///
/// Two rules make the flush safe (see `flush`): the acknowledgement is sent only once Redis has
/// accepted everything before it, so a refusal that passes (OOM, LOADING, READONLY...) never
/// loses a reply, a dead letter or an event; and the ordered part (invalidations, events, dead
/// letters) runs in one script that first checks the lease, so a worker that stalled or was
/// fenced cannot send after its successor.
struct Outbox {
    let keys: QueueKeys
    let replyExpirySeconds: Int
    /// Invalidations, events, alerts and dead letters, in commit order: sent by `orderedScript`.
    private(set) var ordered: [RedisCommand] = []
    /// Replies on the producers' keys, which may live on other cluster nodes than the partition.
    private(set) var replyCommands: [RedisCommand] = []
    /// The acknowledgement (see `flush`).
    private(set) var acknowledgementCommands: [RedisCommand] = []
    /// The processing list whose dead-lettered jobs the ordered script removes (one batch's).
    private var deadLetterList: String?
    /// Failure replies of dead-lettered jobs (see `failureReply`).
    private(set) var failureReplyCommands: [RedisCommand] = []
    private(set) var replies = 0
    private(set) var invalidations = 0
    private(set) var deadLetters = 0
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
        ordered.reserveCapacity(capacity)
    }

    /// A job's reply, written by the wire target straight into the command's buffer.
    mutating func reply(to key: String, job: Job, _ result: CommandResult) {
        replyCommands.append(RedisCommand("LPUSH", key, WireMessage.reply(job, result.outcome, duplicate: result.duplicate)))
        replyCommands.append(RedisCommand("EXPIRE", key, replyExpirySeconds))
        replies += 1
    }

    /// The failure reply of a job that becomes a dead letter: sent before the ordered script,
    /// which removes the job (see `flush`).
    mutating func failureReply(to key: String, _ json: String) {
        failureReplyCommands.append(RedisCommand("LPUSH", key, json))
        failureReplyCommands.append(RedisCommand("EXPIRE", key, replyExpirySeconds))
        replies += 1
    }

    /// An invalidation; on a split ledger it names its partition (the wire target writes it),
    /// since every partition publishes on the one channel.
    mutating func publish(_ change: BalanceChange) {
        ordered.append(RedisCommand("PUBLISH", keys.balance, WireMessage.invalidation(change, partition: keys.partition)))
        invalidations += 1
    }

    /// Writes an event on the stream (`XADD P:events MAXLEN ~ <max> * event <name> ...`) when
    /// `maxLength` is set (the stream is on); a `balance.low` is also published on `P:alerts`.
    mutating func event(_ e: LedgerEvent, streamMaxLength maxLength: Int?) {
        let e = StreamEvents.outgoing(e, partition: keys.partition)
        if let maxLength {
            var command = RedisCommand("XADD", keys.events, "MAXLEN", "~", maxLength, "*", "event", e.name)
            for f in e.fields {
                command.append(f.key)
                command.append(f.value)
            }
            ordered.append(command)
            events += 1
        }
        if e.name == LedgerEvent.balanceLow {
            ordered.append(RedisCommand("PUBLISH", keys.alerts, WireMessage.alert(e)))
            alerts += 1
        }
    }

    /// A dead letter and, in the same atomic script, its job's removal from the processing list:
    /// a replay after a crash or a Redis restart then finds neither or both, never a job whose
    /// dead letter was already pushed (which would push it twice).
    mutating func deadLetter(_ json: String, acknowledging removal: Acknowledgement) {
        ordered.append(RedisCommand("LPUSH", keys.dead, json))
        ordered.append(contentsOf: removal.commands)
        deadLetterList = removal.listKey
        deadLetters += 1
    }

    /// Ends the outbox with the removal of the settled jobs from their processing list: sent
    /// after everything else was accepted, so a crash or a refusal in between replays the jobs
    /// rather than losing a reply.
    mutating func acknowledge(_ acknowledgement: Acknowledgement) {
        acknowledgementCommands.append(contentsOf: acknowledgement.commands)
    }

    var isEmpty: Bool {
        ordered.isEmpty && replyCommands.isEmpty && failureReplyCommands.isEmpty && acknowledgementCommands.isEmpty
    }

    /// Runs the ordered part: KEYS = lease, events stream, dead letters (one slot: the partition's
    /// tag); ARGV[1] = the lease holder this worker writes, then each command as its argument
    /// count followed by its arguments. Nothing runs unless the lease is still ours, and the
    /// script is atomic, so nothing of it can land after a successor's first message. It stops
    /// at the first refused command (a refusal of ours, never the producer's) and answers how many
    /// ran and the refusal, so a resend repeats a prefix rather than reordering messages.
    static let orderedScript = """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then
            return redis.error_reply('NOTHOLDER the lease is not held by this worker')
        end
        local i = 2
        local n = 0
        while i <= #ARGV do
            local argc = tonumber(ARGV[i])
            local answer = redis.pcall(unpack(ARGV, i + 1, i + argc))
            if type(answer) == 'table' and answer.err then return {n, answer.err} end
            n = n + 1
            i = i + argc + 1
        end
        return {n}
        """

    /// The one `EVAL` of the ordered part.
    func orderedCommand(holder: String) -> RedisCommand {
        var command = RedisCommand("EVAL", Self.orderedScript, deadLetterList == nil ? 3 : 4, keys.lease, keys.events, keys.dead)
        if let deadLetterList { command.append(deadLetterList) }  // declared: the script removes its jobs
        command.append(holder)
        for inner in ordered {
            command.append(inner.argumentCount)
            for index in 0..<inner.argumentCount {
                if let argument = inner.argument(index) { command.append(argument) }
            }
        }
        return command
    }

    /// Sends the outbox in at most two round trips and returns the refusals that are the
    /// producer's own (a `replyTo` naming a key of another type), to be counted and logged.
    ///
    /// First the failure replies of dead-lettered jobs, if any; then the ordered part (behind the
    /// lease check) and the replies; then, only if Redis accepted all of it, the acknowledgement. Throws `QueueError.leaseNotHeld` when the lease is
    /// another's (nothing ordered was sent, nothing acknowledged), and `RedisError.server` for
    /// any other refusal, of the body or of the acknowledgement: the jobs stay in their list, the
    /// worker drops its Redis thread, backs off and settles the list again (duplicates, with
    /// their replies and messages sent again: at least once).
    func flush(_ redis: any RedisClient, holder: String) throws -> [String] {
        // A dead letter removes its job from the list in the script: its failure reply must be
        // accepted before, or a refused reply would leave with the job (one more round trip, only
        // for a batch with such replies).
        var problems = failureReplyCommands.isEmpty ? []
            : try Self.replyProblems(failureReplyCommands, try redis.pipeline(failureReplyCommands)[...])
        if !ordered.isEmpty || !replyCommands.isEmpty {
            var body: [RedisCommand] = []
            body.reserveCapacity(replyCommands.count + 1)
            if !ordered.isEmpty { body.append(orderedCommand(holder: holder)) }
            body.append(contentsOf: replyCommands)
            let answers = try redis.pipeline(body)
            var replyAnswers = answers[...]
            if !ordered.isEmpty, let answer = answers.first {
                replyAnswers = answers.dropFirst()
                try Self.check(ordered: answer, count: ordered.count)
            }
            problems += try Self.replyProblems(replyCommands, replyAnswers)
        }
        guard !acknowledgementCommands.isEmpty else { return problems }
        let answers = try redis.pipeline(acknowledgementCommands)
        for (command, answer) in zip(acknowledgementCommands, answers) {
            if let message = answer.errorMessage { throw RedisError.server("the acknowledgement \(command.name) was refused: \(message)") }
        }
        return problems
    }

    /// The replies' refusals that are the producer's own; throws on any other.
    private static func replyProblems(_ commands: [RedisCommand], _ answers: ArraySlice<RedisValue>) throws -> [String] {
        var problems: [String] = []
        for (command, answer) in zip(commands, answers) {
            guard let code = answer.refusalCode, let message = answer.errorMessage else { continue }
            guard code.isAboutTheKey else {
                throw RedisError.server("a reply's \(command.name) was refused (\(code)); the jobs stay in their list: \(message)")
            }
            problems.append("\(command.name): \(message)")
        }
        return problems
    }

    /// Reads the ordered script's answer: all `count` commands ran, or it throws.
    private static func check(ordered answer: RedisValue, count: Int) throws {
        if let message = answer.errorMessage {
            if message.hasPrefix("NOTHOLDER") { throw QueueError.leaseNotHeld }
            throw RedisError.server("the outbox's messages were refused (\(answer.refusalCode ?? .generic)): \(message)")
        }
        let parts = answer.array ?? []
        let ran = parts.first?.int ?? -1
        guard ran == Int64(count) else {
            let refusal = parts.count > 1 ? (parts[1].string ?? "?") : "an unexpected answer"
            throw RedisError.server("the outbox stopped after \(ran) of \(count) messages (\(RedisRefusalCode(message: refusal))): \(refusal)")
        }
    }
}

/// A message the wire target writes into the argument buffer of the command that carries it,
/// so no intermediate string is built per message.
enum WireMessage: RedisArgument {
    case reply(Job, Outcome, duplicate: Bool)
    case invalidation(BalanceChange, partition: Int?)
    case alert(LedgerEvent)

    func appendRedisBytes(to buffer: inout [UInt8]) {
        switch self {
        case let .reply(job, outcome, duplicate): Replies.appendResult(for: job, outcome, duplicate: duplicate, to: &buffer)
        case let .invalidation(change, partition): Invalidations.append(change, partition: partition, to: &buffer)
        case .alert(let e): StreamEvents.appendAlert(e, to: &buffer)
        }
    }
}
