import Foundation
import Redis
import TestSupport

/// What the chaos test expects of one valid job: the fields a producer acts on.
struct ChaosExpected: Equatable, CustomStringConvertible {
    var success: Bool
    var code: String?
    /// On success, the balance after the job; on `insufficient_tokens`, the balance it saw.
    var balance: Int64?

    static func ok(_ balance: Int64) -> ChaosExpected { ChaosExpected(success: true, code: nil, balance: balance) }
    static func refused(_ code: String, balance: Int64? = nil) -> ChaosExpected {
        ChaosExpected(success: false, code: code, balance: balance)
    }

    /// Reads a reply or a `job.applied` event in the same terms.
    init(success: Bool, code: String?, balance: Int64?) {
        self.success = success
        self.code = code
        self.balance = balance
    }

    init(reply: [String: Any]) {
        success = reply.bool("success") ?? false
        code = reply.errorCode
        balance = success ? reply.int("newBalance") : (code == "insufficient_tokens" ? reply.int("balance") : nil)
    }

    init(event fields: [String: String]) {
        success = fields["success"] == "true"
        code = fields["code"]
        balance = success ? fields["newBalance"].flatMap { Int64($0) } : nil
    }

    /// Events carry `newBalance` only, so a refusal is compared on its code.
    var withoutRefusalBalance: ChaosExpected { success ? self : ChaosExpected(success: false, code: code, balance: nil) }

    var description: String { success ? "ok(\(balance.map(String.init) ?? "-"))" : "\(code ?? "?")(\(balance.map(String.init) ?? "-"))" }
}

/// One push the producers made, after Redis accepted it.
struct ChaosPush {
    enum Kind {
        /// A job the model predicts: its first push, or a re-push of the same bytes (`repeated`).
        case valid(jobId: String, expected: ChaosExpected, repeated: Bool)
        /// A job whose shape is wrong: exactly one dead letter; `replyId` when the worker can read
        /// the job's `id` and `replyTo`, so a failure reply under that id is owed.
        case malformed(replyId: String?)
    }
    let raw: [UInt8]
    let kind: Kind
    let user: Int?
    /// Seconds since the run started when Redis accepted it, to set a problem beside the fault log.
    var at: Double = 0
}

/// One user as the model sees it. Users are known by index, never by `String` equality: two of
/// them differ only in Unicode normalisation.
final class ChaosUser {
    let index: Int
    let userId: String
    var exists = false
    var balance: Int64 = 0
    var spent: Int64 = 0
    /// Successful charges and debits, with what remains refundable of each.
    var spends: [(jobId: String, remaining: Int64)] = []
    /// Valid jobs pushed so far, raw bytes and first result, for re-pushes.
    var valid: [(raw: [UInt8], jobId: String, expected: ChaosExpected)] = []
    /// Job ids with a ledger entry, in push order.
    var effects: [String] = []

    init(index: Int, userId: String) {
        self.index = index
        self.userId = userId
    }
}

/// Builds one producer's seeded stream of jobs and predicts each one's result, given that a
/// user's jobs apply in push order. The stream depends on the seed alone, not on timing.
struct ChaosWorkload {
    static let costs: [String: Int64] = ["image_generation": 10, "chatgpt_message": 5]
    static let giftAllocation: Int64 = 100

    var rng: SeededGenerator
    let producer: Int
    let users: [ChaosUser]
    /// Never opened: every job on it is `user_not_found`.
    let ghost: ChaosUser
    let replyTo: String
    private var counter = 0

    init(seed: UInt64, producer: Int, users: [ChaosUser], ghost: ChaosUser, replyTo: String) {
        rng = SeededGenerator(seed: seed)
        self.producer = producer
        self.users = users
        self.ghost = ghost
        self.replyTo = replyTo
    }

    private mutating func nextId(_ stem: String) -> String {
        counter += 1
        return "\(stem)-\(producer)-\(counter)"
    }

    private mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < percent }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    private func json(_ fields: [(String, String)]) -> [UInt8] {
        Array(("{" + (fields + [("replyTo", Self.quoted(replyTo))]).map { "\(Self.quoted($0.0)):\($0.1)" }.joined(separator: ",") + "}").utf8)
    }

    /// The next push: a valid job (new or repeated) or a malformed one.
    mutating func next() -> ChaosPush {
        if chance(4) { return malformed() }
        if chance(3) { return ghostJob() }
        let user = users[Int.random(in: 0..<users.count, using: &rng)]
        if !user.exists {
            if chance(85) { return open(user) }
            return credit(user)
        }
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<22: return credit(user)
        case 22..<44: return charge(user)
        case 44..<60: return debit(user)
        case 60..<78: return refund(user)
        case 78..<80: return open(user)
        default: return repeated(user)
        }
    }

    private mutating func record(_ user: ChaosUser, _ raw: [UInt8], _ id: String, _ expected: ChaosExpected) -> ChaosPush {
        if expected.success { user.effects.append(id) }
        user.valid.append((raw, id, expected))
        return ChaosPush(raw: raw, kind: .valid(jobId: id, expected: expected, repeated: false), user: user.index)
    }

    private mutating func open(_ user: ChaosUser) -> ChaosPush {
        let id = nextId("open")
        let raw = json([("type", "\"open\""), ("id", Self.quoted(id)), ("userId", Self.quoted(user.userId))])
        guard !user.exists else { return record(user, raw, id, .refused("account_exists")) }
        user.exists = true
        user.balance = Self.giftAllocation
        return record(user, raw, id, .ok(user.balance))
    }

    private mutating func credit(_ user: ChaosUser) -> ChaosPush {
        let id = nextId("credit")
        let amount: Int64 = chance(3) ? 0 : Int64.random(in: 1...50, using: &rng)
        let raw = json([("type", "\"credit\""), ("id", Self.quoted(id)), ("userId", Self.quoted(user.userId)),
                        ("operationType", "\"bonus\""), ("amount", "\(amount)"), ("metadata", #"{"chaos":true}"#)])
        if amount < 1 { return record(user, raw, id, .refused("invalid_amount")) }
        guard user.exists else { return record(user, raw, id, .refused("user_not_found")) }
        user.balance += amount
        return record(user, raw, id, .ok(user.balance))
    }

    private mutating func charge(_ user: ChaosUser) -> ChaosPush {
        let id = nextId("charge")
        let operation = chance(3) ? "teleport" : (chance(50) ? "image_generation" : "chatgpt_message")
        let raw = json([("type", "\"charge\""), ("id", Self.quoted(id)), ("userId", Self.quoted(user.userId)),
                        ("operation", Self.quoted(operation))])
        // The ledger prices the operation before it looks up the account.
        guard let cost = Self.costs[operation] else { return record(user, raw, id, .refused("unknown_operation")) }
        guard user.exists else { return record(user, raw, id, .refused("user_not_found")) }
        return spend(user, raw, id, cost)
    }

    private mutating func debit(_ user: ChaosUser) -> ChaosPush {
        let id = nextId("debit")
        // Some debits ask more than the balance: `insufficient_tokens`.
        let amount: Int64 = chance(3) ? 0 : Int64.random(in: 1...(user.balance / 2 + 60), using: &rng)
        let raw = json([("type", "\"debit\""), ("id", Self.quoted(id)), ("userId", Self.quoted(user.userId)),
                        ("operationType", "\"compute\""), ("amount", "\(amount)")])
        if amount < 1 { return record(user, raw, id, .refused("invalid_amount")) }
        guard user.exists else { return record(user, raw, id, .refused("user_not_found")) }
        return spend(user, raw, id, amount)
    }

    private mutating func spend(_ user: ChaosUser, _ raw: [UInt8], _ id: String, _ amount: Int64) -> ChaosPush {
        guard user.balance >= amount else { return record(user, raw, id, .refused("insufficient_tokens", balance: user.balance)) }
        user.balance -= amount
        user.spent += amount
        user.spends.append((id, amount))
        return record(user, raw, id, .ok(user.balance))
    }

    private mutating func refund(_ user: ChaosUser) -> ChaosPush {
        let id = nextId("refund")
        var fields: [(String, String)] = [("type", "\"refund\""), ("id", Self.quoted(id)), ("userId", Self.quoted(user.userId))]
        if user.spends.isEmpty || chance(15) {
            if chance(40) {
                fields.append(("refundOf", Self.quoted(nextId("nocharge"))))
                return record(user, json(fields), id, .refused("charge_not_found"))
            }
            let amount = Int64.random(in: 1...20, using: &rng)
            fields.append(("amount", "\(amount)"))
            return credited(user, json(fields), id, amount)
        }
        let pick = Int.random(in: 0..<user.spends.count, using: &rng)
        let (of, remaining) = user.spends[pick]
        fields.append(("refundOf", Self.quoted(of)))
        let asked: Int64
        if chance(50) {
            asked = remaining
        } else {
            asked = Int64.random(in: 1...(remaining + 3), using: &rng)
            fields.append(("amount", "\(asked)"))
        }
        guard remaining > 0, asked <= remaining else { return record(user, json(fields), id, .refused("refund_exceeds_charge")) }
        user.spends[pick].remaining -= asked
        return credited(user, json(fields), id, asked)
    }

    private mutating func credited(_ user: ChaosUser, _ raw: [UInt8], _ id: String, _ amount: Int64) -> ChaosPush {
        user.balance += amount
        user.spent = max(0, user.spent - amount)
        return record(user, raw, id, .ok(user.balance))
    }

    /// The same bytes again: the first result, with `duplicate: true`.
    private mutating func repeated(_ user: ChaosUser) -> ChaosPush {
        guard !user.valid.isEmpty else { return credit(user) }
        let earlier = user.valid[Int.random(in: 0..<user.valid.count, using: &rng)]
        return ChaosPush(raw: earlier.raw, kind: .valid(jobId: earlier.jobId, expected: earlier.expected, repeated: true), user: user.index)
    }

    private mutating func ghostJob() -> ChaosPush {
        chance(50) ? credit(ghost) : charge(ghost)
    }

    private mutating func malformed() -> ChaosPush {
        let id = nextId("bad")
        let user = Self.quoted(users[0].userId)
        let reply = Self.quoted(replyTo)
        switch Int.random(in: 0..<6, using: &rng) {
        case 0:
            return ChaosPush(raw: Array(#"{"type":"credit","id":"\#(id)","userId":\#(user),"amount":"#.utf8), kind: .malformed(replyId: nil), user: nil)
        case 1:
            return ChaosPush(raw: Array(#"{"type":"explode","id":"\#(id)","userId":\#(user),"replyTo":\#(reply)}"#.utf8),
                             kind: .malformed(replyId: id), user: nil)
        case 2:
            return ChaosPush(raw: Array(#"{"type":"credit","id":"\#(id)","userId":\#(user),"operationType":"bonus","amount":"5","replyTo":\#(reply)}"#.utf8),
                             kind: .malformed(replyId: id), user: nil)
        case 3:
            return ChaosPush(raw: Array(#"{"type":"credit","id":"\#(id) !","userId":\#(user),"operationType":"bonus","amount":5,"replyTo":\#(reply)}"#.utf8),
                             kind: .malformed(replyId: nil), user: nil)
        case 4:
            // Not UTF-8: the dead letter keeps it as `jobBase64`.
            return ChaosPush(raw: Array(#"{"type":"credit","id":"\#(id)","userId":""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8),
                             kind: .malformed(replyId: nil), user: nil)
        default:
            return ChaosPush(raw: Array(#"["\#(id)",1,2]"#.utf8), kind: .malformed(replyId: nil), user: nil)
        }
    }
}

/// State shared by the producers, the fault driver and the reconciliation.
final class ChaosShared: @unchecked Sendable {
    let log: ChaosLog
    private let lock = NSLock()
    private var _pushes: [ChaosPush] = []
    private var _stopped = false
    private var _burst = 0

    init(log: ChaosLog) { self.log = log }

    func append(_ push: ChaosPush) {
        var push = push
        push.at = log.elapsed
        lock.withLock { _pushes.append(push) }
    }
    var pushes: [ChaosPush] { lock.withLock { _pushes } }
    var stopped: Bool { lock.withLock { _stopped } }
    func stop() { lock.withLock { _stopped = true } }
    /// Asks every producer for a burst of jobs at once, so that a fault finds a batch in hand.
    func requestBurst() { lock.withLock { _burst += 1 } }
    var burst: Int { lock.withLock { _burst } }
}

/// One producer thread: owns its users (so their jobs keep their order), pushes each job once,
/// whatever Redis does meanwhile.
final class ChaosProducer: @unchecked Sendable {
    /// Pushes `ARGV[1]` unless the push `ARGV[2]` already went through: a push retried after a
    /// lost reply (a Redis killed between its fsync and its answer) is not pushed twice.
    static let pushScript = """
        if redis.call('SADD', KEYS[2], ARGV[2]) == 1 then redis.call('LPUSH', KEYS[1], ARGV[1]) end
        return 1
        """

    let index: Int
    let redisURL: String
    let jobsKey: String
    let pushedKey: String
    let shared: ChaosShared
    private var workload: ChaosWorkload
    private let done = DispatchSemaphore(value: 0)

    init(index: Int, seed: UInt64, users: [ChaosUser], ghost: ChaosUser, redisURL: String, jobsKey: String,
         pushedKey: String, replyTo: String, shared: ChaosShared) {
        self.index = index
        self.redisURL = redisURL
        self.jobsKey = jobsKey
        self.pushedKey = pushedKey
        self.shared = shared
        workload = ChaosWorkload(seed: seed, producer: index, users: users, ghost: ghost, replyTo: replyTo)
    }

    func start() {
        let t = Thread { [self] in
            run()
            done.signal()
        }
        t.start()
    }

    func join() { done.wait() }

    private func run() {
        var redis: RedisConnection?
        var sequence = 0
        var seenBurst = shared.burst
        while !shared.stopped {
            let burst = shared.burst
            let count = burst != seenBurst ? 6 : 1
            seenBurst = burst
            for _ in 0..<count {
                let push = workload.next()
                sequence += 1
                let token = "\(index):\(sequence)"
                while true {
                    do {
                        if redis == nil { redis = try RedisConnection(url: redisURL) }
                        _ = try redis?.eval(Self.pushScript, keys: [jobsKey, pushedKey], arguments: [push.raw, token])
                        break
                    } catch {
                        // Down, restarting, loading or out of memory: the push waits, in order.
                        if case .connection = error { redis = nil }
                        usleep(50_000)
                    }
                }
                shared.append(push)
            }
            usleep(useconds_t(60_000 + index * 7_000))
        }
    }
}
