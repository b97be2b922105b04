import GRDB
import GRDBSQLite
import LedgerModel

/// How a job's result is kept under its id (`job_log.result`, `jobs.result`) and how what is
/// kept until sent is written (`pending_sends.payload`).
///
/// New rows hold a compact, versioned text form: the version digit (`1`), then a case tag and
/// the case's fields in a fixed order, each self-delimiting: an integer in decimal ended by `;`,
/// a string as its UTF-8 length, `:`, then its bytes (so no byte needs escaping), a boolean as
/// `t`/`f`, an absent optional as `~`. It is text because the columns are TEXT in STRICT tables
/// (a BLOB would need every `jobs` row rewritten to change the type), and valid UTF-8 because
/// every string in it is. Rows written before it hold JSON (`{` first: the reply's object, an
/// invalidation; `[` for an event's `[name, key, value...]`), so the first byte tells the two
/// apart and an old row is answered exactly as it was stored. Tags are never reused: a new case
/// takes a new one; a new version digit marks a changed layout.
enum StoredResult: Sendable, Equatable {
    case encoded([UInt8])
    /// A row of the schema before this encoding: the reply's JSON object (its UTF-8), answered
    /// verbatim. Bytes, not a `String`, for both: the tail keeps one per unmerged job, and an
    /// optional of this enum is then one word.
    case legacyJSON([UInt8])

    /// Reads a stored column's bytes.
    init(text bytes: [UInt8]) {
        if bytes.first == UInt8(ascii: "{") || bytes.first == UInt8(ascii: "[") {
            self = .legacyJSON(bytes)
        } else {
            self = .encoded(bytes)
        }
    }

    /// The column's text.
    var text: String { String(decoding: bytes, as: UTF8.self) }

    var bytes: [UInt8] {
        switch self {
        case .encoded(let bytes), .legacyJSON(let bytes): bytes
        }
    }
}

/// A stored value that cannot be read back: the file was written by a newer ledger, or damaged.
struct StoredOutcomeError: Error, CustomStringConvertible {
    let description: String
}

struct OutcomeWriter {
    /// The encoding's version, the first byte of every encoded value.
    static let version = UInt8(ascii: "1")
    private(set) var bytes: [UInt8]

    init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes.append(Self.version)
    }

    mutating func tag(_ t: UInt8) { int(Int64(t)) }
    mutating func bool(_ b: Bool) { bytes.append(b ? UInt8(ascii: "t") : UInt8(ascii: "f")) }

    mutating func int(_ v: Int64) {
        if v < 0 { bytes.append(UInt8(ascii: "-")) }
        var m = v.magnitude
        let start = bytes.count
        repeat { bytes.append(UInt8(48 + m % 10)); m /= 10 } while m > 0
        bytes[start...].reverse()
        bytes.append(UInt8(ascii: ";"))
    }

    mutating func int(_ v: Int64?) {
        guard let v else { bytes.append(Self.absent); return }
        int(v)
    }

    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            int(Int64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func string(_ s: String?) {
        guard let s else { bytes.append(Self.absent); return }
        string(s)
    }

    mutating func count(_ n: Int) { int(Int64(n)) }

    static let absent = UInt8(ascii: "~")
}

struct OutcomeReader {
    private let bytes: [UInt8]
    private var index = 0

    /// Checks the version byte.
    init(_ bytes: [UInt8]) throws {
        self.bytes = bytes
        guard let v = bytes.first else { throw StoredOutcomeError(description: "an empty stored value") }
        guard v == OutcomeWriter.version else {
            throw StoredOutcomeError(description: "a stored value of encoding version \(v); this ledger reads \(OutcomeWriter.version)")
        }
        index = 1
    }

    var atEnd: Bool { index == bytes.count }

    private mutating func byte() throws -> UInt8 {
        guard index < bytes.count else { throw StoredOutcomeError(description: "a stored value ends early") }
        defer { index += 1 }
        return bytes[index]
    }

    /// Consumes the absent marker if it is next.
    private mutating func absent() -> Bool {
        guard index < bytes.count, bytes[index] == OutcomeWriter.absent else { return false }
        index += 1
        return true
    }

    mutating func tag() throws -> UInt8 {
        let t = try int()
        guard let tag = UInt8(exactly: t) else { throw StoredOutcomeError(description: "a stored tag of \(t)") }
        return tag
    }

    mutating func bool() throws -> Bool {
        switch try byte() {
        case UInt8(ascii: "f"): return false
        case UInt8(ascii: "t"): return true
        case let b: throw StoredOutcomeError(description: "a stored boolean of byte \(b)")
        }
    }

    mutating func int() throws -> Int64 {
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        var m: UInt64 = 0
        var digits = 0
        while true {
            let b = try byte()
            if b == UInt8(ascii: ";") { break }
            guard b >= 48, b <= 57, digits < 20 else { throw StoredOutcomeError(description: "a stored integer with byte \(b)") }
            let (times, o1) = m.multipliedReportingOverflow(by: 10)
            let (plus, o2) = times.addingReportingOverflow(UInt64(b - 48))
            guard !o1, !o2 else { throw StoredOutcomeError(description: "a stored integer beyond 64 bits") }
            m = plus
            digits += 1
        }
        guard digits > 0 else { throw StoredOutcomeError(description: "a stored integer without digits") }
        if negative {
            guard m <= UInt64(Int64.max) + 1 else { throw StoredOutcomeError(description: "a stored integer beyond 64 bits") }
            return m == UInt64(Int64.max) + 1 ? Int64.min : -Int64(m)
        }
        guard m <= UInt64(Int64.max) else { throw StoredOutcomeError(description: "a stored integer beyond 64 bits") }
        return Int64(m)
    }

    mutating func optionalInt() throws -> Int64? { absent() ? nil : try int() }

    mutating func string() throws -> String {
        let n = try int()
        guard n >= 0, n <= bytes.count - index else { throw StoredOutcomeError(description: "a stored string overruns its value") }
        defer { index += Int(n) }
        return String(decoding: bytes[index..<index + Int(n)], as: UTF8.self)
    }

    mutating func optionalString() throws -> String? { absent() ? nil : try string() }

    /// A list length, bounded by the bytes left (each element takes at least one).
    mutating func count() throws -> Int {
        let n = try int()
        guard n >= 0, n <= bytes.count - index else { throw StoredOutcomeError(description: "a stored list longer than its value") }
        return Int(n)
    }

    func end() throws {
        guard atEnd else { throw StoredOutcomeError(description: "\(bytes.count - index) bytes after a stored value") }
    }
}

/// The tags of `Outcome`'s cases. Never renumber; `legacy` is never encoded (it is TEXT).
private enum OutcomeTag: UInt8 {
    case opened = 1, entry, expiringCredit, purchased, renewed, renewedAll, tierSet, held, captured, released
    case monitorSet, monitorRemoved, balance, affordability, history, statistics, eligibility, holds, balanceAt
    case refused
}

extension Outcome {
    /// The stored form of a result (`legacy` keeps its text).
    var stored: StoredResult {
        if case .legacy(let l) = self { return .legacyJSON(Array(l.json.utf8)) }
        var w = OutcomeWriter()
        encode(into: &w)
        return .encoded(w.bytes)
    }

    private func encode(into w: inout OutcomeWriter) {
        switch self {
        case .opened(let o):
            w.tag(OutcomeTag.opened.rawValue)
            w.string(o.userId); w.string(o.tier); w.int(o.newBalance); w.int(o.ledgerEntryId)
            w.int(o.lastRenewalMs); w.int(o.nextRenewalMs); w.grant(o.grant)
        case .entry(let e):
            w.tag(OutcomeTag.entry.rawValue)
            w.entry(e)
        case .expiringCredit(let c):
            w.tag(OutcomeTag.expiringCredit.rawValue)
            w.entry(c.entry); w.string(c.grant.grantId); w.int(c.grant.expiresMs)
        case .purchased(let p):
            w.tag(OutcomeTag.purchased.rawValue)
            w.string(p.userId); w.string(p.tier); w.string(p.paymentId); w.int(p.months); w.int(p.newBalance)
            w.int(p.ledgerEntryId); w.int(p.tokensAdded); w.int(p.subscriptionExpiresMs); w.int(p.lastRenewalMs)
            w.int(p.nextRenewalMs); w.grant(p.grant)
        case .renewed(let r):
            w.tag(OutcomeTag.renewed.rawValue)
            w.string(r.userId); w.string(r.tier); w.bool(r.downgraded); w.int(r.tokensAdded); w.int(r.newBalance)
            w.int(r.ledgerEntryId); w.int(r.lastRenewalMs); w.int(r.nextRenewalMs); w.rollover(r.rollover)
        case .renewedAll(let r):
            w.tag(OutcomeTag.renewedAll.rawValue)
            w.bool(r.dryRun); w.int(r.limit); w.bool(r.more); w.int(r.totalProcessed); w.int(r.successful); w.int(r.failed)
            w.count(r.errors.count)
            for e in r.errors { w.string(e.userId); w.string(e.code.rawValue); w.string(e.message) }
            w.count(r.renewals.count)
            for o in r.renewals {
                w.string(o.userId); w.string(o.tier); w.int(o.tokensAdded); w.int(o.newBalance); w.int(o.tokensCarried); w.int(o.tokensLapsed)
            }
            w.tag(r.figures.rawValue)
        case .tierSet(let t):
            w.tag(OutcomeTag.tierSet.rawValue)
            w.string(t.userId); w.string(t.tier); w.string(t.previousTier); w.int(t.subscriptionExpiresMs)
            w.int(t.lastRenewalMs); w.int(t.nextRenewalMs)
        case .held(let h):
            w.tag(OutcomeTag.held.rawValue)
            w.string(h.userId); w.string(h.holdId); w.int(h.amount); w.int(h.available); w.int(h.expiresMs)
        case .captured(let c):
            w.tag(OutcomeTag.captured.rawValue)
            w.entry(c.entry); w.string(c.holdId); w.int(c.released); w.int(c.available)
        case .released(let r):
            w.tag(OutcomeTag.released.rawValue)
            w.string(r.holdId); w.int(r.released); w.int(r.available)
        case .monitorSet(let m):
            w.tag(OutcomeTag.monitorSet.rawValue)
            w.string(m.userId); w.string(m.monitorId); w.int(m.threshold); w.bool(m.armed); w.bool(m.replaced)
        case .monitorRemoved(let m):
            w.tag(OutcomeTag.monitorRemoved.rawValue)
            w.string(m.userId); w.string(m.monitorId)
        case .balance(let b):
            w.tag(OutcomeTag.balance.rawValue)
            w.string(b.userId); w.int(b.tokensBalance); w.int(b.tokensSpent); w.string(b.tier); w.int(b.lastRenewalMs)
            w.int(b.nextRenewalMs); w.int(b.subscriptionExpiresMs); w.int(b.held); w.int(b.available)
            w.count(b.grants.count)
            for g in b.grants { w.string(g.grantId); w.int(g.remaining); w.int(g.expiresMs) }
        case .affordability(let a):
            w.tag(OutcomeTag.affordability.rawValue)
            w.bool(a.canAfford); w.int(a.cost); w.int(a.balance); w.int(a.available); w.int(a.deficit)
        case .history(let h):
            w.tag(OutcomeTag.history.rawValue)
            w.string(h.userId)
            w.count(h.entries.count)
            for e in h.entries {
                w.int(e.id); w.string(e.jobId); w.string(e.operationType); w.int(e.tokensAmount); w.int(e.balanceBefore)
                w.int(e.balanceAfter); w.int(e.createdMs); w.string(e.metadata)
            }
            w.int(h.total); w.int(h.limit); w.int(h.offset)
        case .statistics(let s):
            w.tag(OutcomeTag.statistics.rawValue)
            w.string(s.userId); w.int(s.startMs); w.int(s.endMs); w.int(s.totalSpent); w.int(s.totalEarned)
            w.int(s.operationCount); w.rollover(s.rollover)
            w.count(s.byOperation.count)
            for g in s.byOperation { w.string(g.operationType); w.int(g.count); w.int(g.tokens) }
        case .eligibility(let e):
            w.tag(OutcomeTag.eligibility.rawValue)
            w.string(e.userId); w.bool(e.eligible); w.string(e.tier); w.int(e.lastRenewalMs); w.int(e.nextRenewalMs)
            w.int(e.daysUntilRenewal)
        case .holds(let h):
            w.tag(OutcomeTag.holds.rawValue)
            w.string(h.userId)
            w.count(h.holds.count)
            for o in h.holds { w.string(o.holdId); w.int(o.amount); w.string(o.operationType); w.int(o.createdMs); w.int(o.expiresMs) }
            w.int(h.held); w.int(h.available)
        case .balanceAt(let b):
            w.tag(OutcomeTag.balanceAt.rawValue)
            w.string(b.userId); w.int(b.atMs)
            w.bool(b.point != nil)
            if let p = b.point { w.int(p.tokensBalance); w.int(p.tokensSpent); w.int(p.ledgerEntryId); w.int(p.createdMs) }
        case .refused(let r):
            w.tag(OutcomeTag.refused.rawValue)
            w.string(r.code.rawValue); w.string(r.message)
            w.count(r.details.count)
            for d in r.details {
                w.string(d.key)
                switch d.value {
                case .int(let v): w.tag(0); w.int(v)
                case .string(let v): w.tag(1); w.string(v)
                case .bool(let v): w.tag(2); w.bool(v)
                case .time(let ms): w.tag(3); w.int(ms)
                case .null: w.tag(4)
                }
            }
        case .legacy:
            break  // kept as its text (see `stored`)
        }
    }

    /// Reads a stored result back: an encoded one, or a legacy row's text as it was.
    init(stored: StoredResult) throws {
        switch stored {
        case .legacyJSON(let bytes):
            let text = String(decoding: bytes, as: UTF8.self)
            self = .legacy(LegacyResult(json: text, refusalCode: Self.legacyRefusalCode(text)))
        case .encoded(let bytes):
            var r = try OutcomeReader(bytes)
            self = try Self.decode(&r)
            try r.end()
        }
    }

    /// A legacy row is a success when it starts `{"success":true`; otherwise its code is the
    /// first `"code":"…"` (the refusal's, written right after `"error":{`).
    private static func legacyRefusalCode(_ text: String) -> RefusalCode? {
        guard !text.hasPrefix(#"{"success":true"#) else { return nil }
        guard let r = text.range(of: #""code":""#) else { return RefusalCode("") }
        return RefusalCode(String(text[r.upperBound...].prefix { $0 != "\"" }))
    }

    private static func decode(_ r: inout OutcomeReader) throws -> Outcome {
        let raw = try r.tag()
        guard let tag = OutcomeTag(rawValue: raw) else { throw StoredOutcomeError(description: "a stored result of unknown kind \(raw)") }
        switch tag {
        case .opened:
            return .opened(Opened(userId: try r.string(), tier: try r.string(), newBalance: try r.int(), ledgerEntryId: try r.optionalInt(),
                                  lastRenewalMs: try r.int(), nextRenewalMs: try r.int(), grant: try r.grant()))
        case .entry:
            return .entry(try r.entry())
        case .expiringCredit:
            return .expiringCredit(ExpiringCredit(entry: try r.entry(), grant: GrantMade(grantId: try r.string(), expiresMs: try r.int())))
        case .purchased:
            return .purchased(Purchased(userId: try r.string(), tier: try r.string(), paymentId: try r.string(), months: try r.int(),
                                        newBalance: try r.int(), ledgerEntryId: try r.optionalInt(), tokensAdded: try r.int(),
                                        subscriptionExpiresMs: try r.optionalInt(), lastRenewalMs: try r.int(),
                                        nextRenewalMs: try r.int(), grant: try r.grant()))
        case .renewed:
            return .renewed(Renewed(userId: try r.string(), tier: try r.string(), downgraded: try r.bool(), tokensAdded: try r.int(),
                                    newBalance: try r.int(), ledgerEntryId: try r.optionalInt(), lastRenewalMs: try r.int(),
                                    nextRenewalMs: try r.int(), rollover: try r.rollover()))
        case .renewedAll:
            let dryRun = try r.bool(), limit = try r.int(), more = try r.bool()
            let total = try r.int(), successful = try r.int(), failed = try r.int()
            var errors: [RenewalFailure] = []
            for _ in 0..<(try r.count()) {
                errors.append(RenewalFailure(userId: try r.string(), code: RefusalCode(try r.string()), message: try r.string()))
            }
            var renewals: [RenewalOutcome] = []
            for _ in 0..<(try r.count()) {
                renewals.append(RenewalOutcome(userId: try r.string(), tier: try r.string(), tokensAdded: try r.int(), newBalance: try r.int(),
                                               tokensCarried: try r.int(), tokensLapsed: try r.int()))
            }
            let figuresRaw = try r.tag()
            guard let figures = RenewalFigures(rawValue: figuresRaw) else {
                throw StoredOutcomeError(description: "renewal figures of unknown kind \(figuresRaw)")
            }
            return .renewedAll(RenewAllReport(dryRun: dryRun, limit: limit, more: more, totalProcessed: total, successful: successful,
                                              failed: failed, errors: errors, renewals: renewals, figures: figures))
        case .tierSet:
            return .tierSet(TierSet(userId: try r.string(), tier: try r.string(), previousTier: try r.string(),
                                    subscriptionExpiresMs: try r.optionalInt(), lastRenewalMs: try r.int(), nextRenewalMs: try r.int()))
        case .held:
            return .held(Held(userId: try r.string(), holdId: try r.string(), amount: try r.int(), available: try r.int(),
                              expiresMs: try r.int()))
        case .captured:
            return .captured(Captured(entry: try r.entry(), holdId: try r.string(), released: try r.int(), available: try r.int()))
        case .released:
            return .released(Released(holdId: try r.string(), released: try r.int(), available: try r.int()))
        case .monitorSet:
            return .monitorSet(MonitorSet(userId: try r.string(), monitorId: try r.string(), threshold: try r.int(), armed: try r.bool(),
                                          replaced: try r.bool()))
        case .monitorRemoved:
            return .monitorRemoved(MonitorRemoved(userId: try r.string(), monitorId: try r.string()))
        case .balance:
            let userId = try r.string(), balance = try r.int(), spent = try r.int(), tier = try r.string()
            let last = try r.int(), next = try r.int(), expires = try r.optionalInt(), held = try r.int(), available = try r.int()
            var grants: [GrantBalance] = []
            for _ in 0..<(try r.count()) { grants.append(GrantBalance(grantId: try r.string(), remaining: try r.int(), expiresMs: try r.int())) }
            return .balance(BalanceReport(userId: userId, tokensBalance: balance, tokensSpent: spent, tier: tier, lastRenewalMs: last,
                                          nextRenewalMs: next, subscriptionExpiresMs: expires, held: held, available: available, grants: grants))
        case .affordability:
            return .affordability(Affordability(canAfford: try r.bool(), cost: try r.int(), balance: try r.int(), available: try r.int(),
                                                deficit: try r.int()))
        case .history:
            let userId = try r.string()
            var entries: [HistoryEntry] = []
            for _ in 0..<(try r.count()) {
                entries.append(HistoryEntry(id: try r.int(), jobId: try r.optionalString(), operationType: try r.string(),
                                            tokensAmount: try r.int(), balanceBefore: try r.int(), balanceAfter: try r.int(),
                                            createdMs: try r.int(), metadata: try r.optionalString()))
            }
            return .history(HistoryPage(userId: userId, entries: entries, total: try r.int(), limit: try r.int(), offset: try r.int()))
        case .statistics:
            let userId = try r.string(), start = try r.int(), end = try r.int(), spent = try r.int(), earned = try r.int()
            let count = try r.int(), rollover = try r.rollover()
            var groups: [OperationTotal] = []
            for _ in 0..<(try r.count()) { groups.append(OperationTotal(operationType: try r.string(), count: try r.int(), tokens: try r.int())) }
            return .statistics(StatisticsReport(userId: userId, startMs: start, endMs: end, totalSpent: spent, totalEarned: earned,
                                                operationCount: count, rollover: rollover, byOperation: groups))
        case .eligibility:
            return .eligibility(EligibilityReport(userId: try r.string(), eligible: try r.bool(), tier: try r.string(),
                                                  lastRenewalMs: try r.int(), nextRenewalMs: try r.int(), daysUntilRenewal: try r.int()))
        case .holds:
            let userId = try r.string()
            var holds: [OpenHold] = []
            for _ in 0..<(try r.count()) {
                holds.append(OpenHold(holdId: try r.string(), amount: try r.int(), operationType: try r.optionalString(),
                                      createdMs: try r.int(), expiresMs: try r.int()))
            }
            return .holds(HoldList(userId: userId, holds: holds, held: try r.int(), available: try r.int()))
        case .balanceAt:
            let userId = try r.string(), at = try r.int()
            let point = try r.bool()
                ? BalancePoint(tokensBalance: try r.int(), tokensSpent: try r.int(), ledgerEntryId: try r.int(), createdMs: try r.int()) : nil
            return .balanceAt(BalanceAtReport(userId: userId, atMs: at, point: point))
        case .refused:
            let code = RefusalCode(try r.string()), message = try r.string()
            var details: [RefusalDetail] = []
            for _ in 0..<(try r.count()) {
                let key = try r.string()
                let value: LedgerValue
                switch try r.tag() {
                case 0: value = .int(try r.int())
                case 1: value = .string(try r.string())
                case 2: value = .bool(try r.bool())
                case 3: value = .time(ms: try r.int())
                case 4: value = .null
                case let t: throw StoredOutcomeError(description: "a refusal detail of unknown kind \(t)")
                }
                details.append(RefusalDetail(key, value))
            }
            return .refused(Refusal(code: code, message: message, details: details))
        }
    }
}

private extension OutcomeWriter {
    mutating func entry(_ e: EntryWritten) { int(e.newBalance); int(e.ledgerEntryId); int(e.tokensAmount) }

    mutating func grant(_ g: GrantMade?) {
        bool(g != nil)
        if let g { string(g.grantId); int(g.expiresMs) }
    }

    mutating func rollover(_ r: Rollover?) {
        bool(r != nil)
        if let r { int(r.tokensCarried); int(r.tokensLapsed) }
    }
}

private extension OutcomeReader {
    mutating func entry() throws -> EntryWritten {
        EntryWritten(newBalance: try int(), ledgerEntryId: try int(), tokensAmount: try int())
    }

    mutating func grant() throws -> GrantMade? {
        try bool() ? GrantMade(grantId: try string(), expiresMs: try int()) : nil
    }

    mutating func rollover() throws -> Rollover? {
        try bool() ? Rollover(tokensCarried: try int(), tokensLapsed: try int()) : nil
    }
}

// MARK: What is kept until sent

/// The tags of `pending_sends` payloads (the row's `kind` column says which it is as well).
private enum PendingTag: UInt8 {
    case change = 1, event = 2
}

extension BalanceChange {
    /// The stored form of an invalidation kept until sent.
    var stored: [UInt8] {
        var w = OutcomeWriter(capacity: 64)
        w.tag(PendingTag.change.rawValue)
        w.string(userId); w.int(tokensBalance); w.int(tokensSpent); w.string(tier); w.int(ledgerEntryId)
        w.string(operationType); w.int(tokensAmount); w.int(LedgerTime.milliseconds(at)); w.int(held)
        return w.bytes
    }

    init(stored bytes: [UInt8]) throws {
        var r = try OutcomeReader(bytes)
        guard try r.tag() == PendingTag.change.rawValue else { throw StoredOutcomeError(description: "a kept change of another kind") }
        self.init(userId: try r.string(), tokensBalance: try r.int(), tokensSpent: try r.int(), tier: try r.string(),
                  ledgerEntryId: try r.optionalInt(), operationType: try r.optionalString(), tokensAmount: try r.optionalInt(),
                  at: LedgerTime.date(try r.int()), held: try r.int())
        try r.end()
    }
}

extension LedgerEvent {
    /// The stored form of an event kept until sent: its name, then its fields in order.
    var stored: [UInt8] {
        var w = OutcomeWriter(capacity: 128)
        w.tag(PendingTag.event.rawValue)
        w.string(name)
        w.count(fields.count)
        for f in fields { w.string(f.key); w.string(f.value) }
        return w.bytes
    }

    init(stored bytes: [UInt8]) throws {
        var r = try OutcomeReader(bytes)
        guard try r.tag() == PendingTag.event.rawValue else { throw StoredOutcomeError(description: "a kept event of another kind") }
        let name = try r.string()
        var fields: [Field] = []
        for _ in 0..<(try r.count()) { fields.append(Field(try r.string(), try r.string())) }
        try r.end()
        self.init(name, fields)
    }
}

extension RawStatement {
    /// A stored result column: TEXT in the stored encoding, or a legacy row's JSON; NULL none.
    func storedResult(_ column: Int32) -> StoredResult? {
        guard !isNull(column) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let base = sqlite3_column_text(handle, column) else { return .encoded([]) }
        return StoredResult(text: Array(UnsafeBufferPointer(start: base, count: count)))
    }

    func bind(_ index: Int32, _ result: StoredResult?) throws {
        switch result {
        case nil: try bind(index, nil as String?)
        case .legacyJSON(let bytes)?, .encoded(let bytes)?:
            let code = bytes.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { chars -> Int32 in
                    guard let base = chars.baseAddress else { return sqlite3_bind_text(handle, index, "", 0, storedTextTransient) }
                    return sqlite3_bind_text(handle, index, base, Int32(clamping: chars.count), storedTextTransient)
                }
            }
            guard code == SQLITE_OK else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: "cannot bind a stored result: \(String(cString: sqlite3_errstr(code)))", sql: sql)
            }
        }
    }
}

private let storedTextTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
