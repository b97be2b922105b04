import Foundation
import JobWire
import Ledger
import LedgerModel
import Redis

/// Everything a committed batch sends: each reply (`LPUSH`, and one `EXPIRE` per distinct reply
/// key), each invalidation (`PUBLISH`, or `SPUBLISH` when sharded), each event (`XADD`), each
/// dead letter, and last the acknowledgement that removes the settled jobs from their processing
/// list.
///
/// Each round trip is written as RESP into one buffer (`RedisCommandBuffer`) and its scripts go
/// by digest (`EVALSHA`): the messages' bytes are written once, as they are added, and hiredis
/// formats nothing.
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
    /// Invalidations, events, alerts and dead letters, in commit order, already written as the
    /// arguments of `orderedScript`: each command as its argument count, then its arguments.
    private(set) var ordered: RedisArgumentList
    /// How many commands `ordered` holds.
    private(set) var orderedCount = 0
    /// Replies on the producers' keys, which may live on other cluster nodes than the partition.
    private(set) var replyPushes = ReplyPushes()
    /// The acknowledgement (see `flush`).
    private(set) var acknowledgementCommands: [RedisCommand] = []
    /// The processing list whose dead-lettered jobs the ordered script removes (one batch's).
    private var deadLetterList: String?
    /// Failure replies of dead-lettered jobs (see `failureReply`).
    private(set) var failureReplyPushes = ReplyPushes()
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
        ordered = RedisArgumentList(capacity: capacity * 48)
    }

    /// A job's reply, written by the wire target straight into the command's buffer.
    mutating func reply(to key: String, job: Job, _ result: CommandResult) {
        replyPushes.push(WireMessage.reply(job, result.outcome, duplicate: result.duplicate), to: key)
        replies += 1
    }

    /// The failure reply of a job that becomes a dead letter: sent before the ordered script,
    /// which removes the job (see `flush`).
    mutating func failureReply(to key: String, _ json: String) {
        failureReplyPushes.push(json, to: key)
        replies += 1
    }

    /// An invalidation; on a split ledger it names its partition (the wire target writes it),
    /// since by default every partition publishes on the one channel. Sharded, it is an
    /// `SPUBLISH` on the partition's channel, which shares the slot of the script's keys, so it
    /// keeps its place in the ordered script like any other message.
    mutating func publish(_ change: BalanceChange) {
        orderedCommand(keys.invalidationCommand, argumentCount: 2)
        ordered.append(keys.balance)
        ordered.append(WireMessage.invalidation(change, partition: keys.partition))
        invalidations += 1
    }

    /// Writes an event on the stream (`XADD P:events MAXLEN ~ <max> * event <name> ...`) when
    /// `maxLength` is set (the stream is on); a `balance.low` is also published on `P:alerts`.
    mutating func event(_ e: LedgerEvent, streamMaxLength maxLength: Int?) {
        let e = StreamEvents.outgoing(e, partition: keys.partition)
        if let maxLength {
            orderedCommand("XADD", argumentCount: 7 + 2 * e.fields.count)
            ordered.append(keys.events)
            ordered.append("MAXLEN")
            ordered.append("~")
            ordered.append(maxLength)
            ordered.append("*")
            ordered.append("event")
            ordered.append(e.name)
            for f in e.fields {
                ordered.append(f.key)
                ordered.append(f.value)
            }
            events += 1
        }
        if e.name == LedgerEvent.balanceLow {
            orderedCommand("PUBLISH", argumentCount: 2)
            ordered.append(keys.alerts)
            ordered.append(WireMessage.alert(e))
            alerts += 1
        }
    }

    /// A dead letter and, in the same atomic script, its job's removal from the processing list:
    /// a replay after a crash or a Redis restart then finds neither or both, never a job whose
    /// dead letter was already pushed (which would push it twice).
    mutating func deadLetter(_ json: String, acknowledging removal: Acknowledgement) {
        orderedCommand("LPUSH", argumentCount: 2)
        ordered.append(keys.dead)
        ordered.append(json)
        for command in removal.commands {
            ordered.append(command.argumentCount)
            for index in 0..<command.argumentCount {
                if let argument = command.argument(index) { ordered.append(argument) }
            }
            orderedCount += 1
        }
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
        orderedCount == 0 && replyPushes.isEmpty && failureReplyPushes.isEmpty && acknowledgementCommands.isEmpty
    }

    /// Starts one command of the ordered part: its argument count (the name included), its name.
    private mutating func orderedCommand(_ name: String, argumentCount: Int) {
        ordered.append(argumentCount + 1)
        ordered.append(name)
        orderedCount += 1
    }

    /// Runs the ordered part: KEYS = lease, events stream, dead letters (one slot: the partition's
    /// tag); ARGV[1] = the lease holder this worker writes, then each command as its argument
    /// count followed by its arguments. Nothing runs unless the lease is still ours, and the
    /// script is atomic, so nothing of it can land after a successor's first message. It stops
    /// at the first refused command (a refusal of ours, never the producer's) and answers how many
    /// ran and the refusal, so a resend repeats a prefix rather than reordering messages.
    static let orderedScript = RedisScript(source: """
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
        """)

    /// The one `EVALSHA` of the ordered part, written into `body`.
    func writeOrdered(holder: String, into body: inout RedisCommandBuffer) {
        body.beginScript(Self.orderedScript, keyCount: deadLetterList == nil ? 3 : 4, argumentCount: 1 + ordered.count)
        body.argument(keys.lease)
        body.argument(keys.events)
        body.argument(keys.dead)
        if let deadLetterList { body.argument(deadLetterList) }  // declared: the script removes its jobs
        body.argument(holder)
        body.arguments(ordered)
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
        var problems: [String] = []
        if !failureReplyPushes.isEmpty {
            var failures = RedisCommandBuffer(capacity: failureReplyPushes.byteCount)
            failureReplyPushes.write(into: &failures, expirySeconds: replyExpirySeconds)
            problems = try Self.replyProblems(failures, try redis.pipeline(failures), from: 0)
        }
        if orderedCount > 0 || !replyPushes.isEmpty {
            var body = RedisCommandBuffer(capacity: ordered.bytes.count + replyPushes.byteCount + 256)
            if orderedCount > 0 { writeOrdered(holder: holder, into: &body) }
            let firstReply = body.count
            replyPushes.write(into: &body, expirySeconds: replyExpirySeconds)
            let answers = try redis.pipeline(body)
            if orderedCount > 0, let answer = answers.first {
                try Self.check(ordered: answer, count: orderedCount)
            }
            problems += try Self.replyProblems(body, answers, from: firstReply)
        }
        guard !acknowledgementCommands.isEmpty else { return problems }
        var acknowledgement = RedisCommandBuffer()
        for command in acknowledgementCommands { acknowledgement.append(command) }
        let answers = try redis.pipeline(acknowledgement)
        for (index, answer) in answers.enumerated() {
            if let message = answer.errorMessage {
                throw RedisError.server("the acknowledgement \(acknowledgement.name(at: index)) was refused: \(message)")
            }
        }
        return problems
    }

    /// The replies' refusals (commands `from` on) that are the producer's own; throws on any other.
    private static func replyProblems(_ sent: RedisCommandBuffer, _ answers: [RedisValue], from first: Int) throws -> [String] {
        var problems: [String] = []
        for index in first..<min(sent.count, answers.count) {
            let answer = answers[index]
            guard let code = answer.refusalCode, let message = answer.errorMessage else { continue }
            let name = sent.name(at: index)
            guard code.isAboutTheKey else {
                throw RedisError.server("a reply's \(name) was refused (\(code)); the jobs stay in their list: \(message)")
            }
            problems.append("\(name): \(message)")
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

/// The reply pushes of one round trip, written as RESP as they are added, and each distinct reply
/// key once for its `EXPIRE` (many jobs of one producer share a `replyTo`). Keys are told apart by
/// their bytes (`IdentityKey`), as Redis tells them apart. Bounded by the batch: one push per job.
struct ReplyPushes {
    private(set) var buffer = RedisCommandBuffer()
    /// The distinct keys, in the order of their first push.
    private(set) var keys: [String] = []
    private var seen: Set<IdentityKey> = []

    var isEmpty: Bool { buffer.isEmpty }
    /// The pushes' bytes, and room for the expiries.
    var byteCount: Int { buffer.bytes.count + keys.count * 64 }

    mutating func push(_ message: some RedisArgument, to key: String) {
        buffer.begin("LPUSH", argumentCount: 2)
        buffer.argument(key)
        buffer.argument(message)
        if seen.insert(IdentityKey(key)).inserted { keys.append(key) }
    }

    /// The pushes, then one `EXPIRE` per key: after its key's last push, so it never lands on a
    /// key that a later push of the round trip creates again.
    func write(into out: inout RedisCommandBuffer, expirySeconds: Int) {
        out.append(contentsOf: buffer)
        for key in keys {
            out.begin("EXPIRE", argumentCount: 2)
            out.argument(key)
            out.argument(expirySeconds)
        }
    }
}
