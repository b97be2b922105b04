import Foundation
import JobWire
import Ledger
import LedgerModel
import Redis

/// Reads a partition's `P:applied` and applies to a restored ledger the jobs it lacks: the
/// contract's "Recovery past the replica", for `tokenledger restore`.
///
/// The stream holds every acknowledged job (each acknowledgement records its batch before it
/// deletes the batch's list, in one script), in acknowledgement order, which is commit order. A
/// replica is a prefix of the commits, so applying the whole stream in order through the
/// worker's own decode and `Ledger.apply` brings the ledger to where it was: jobs the replica
/// has answer as duplicates and change nothing, the others take effect now, each id once (a job
/// recorded twice, after a lost acknowledgement, is a duplicate the second time).
///
/// Each job is applied with the ledger's clock at the time it was first applied (the entry's
/// `at`), so what depends on time (a hold's expiry, a grant's lapse, a renewal's eligibility)
/// is decided as it was.
public struct RecoveryStream {
    public let redis: any RedisClient
    public let keys: QueueKeys
    public let partitioning: Partitioning
    /// Entries read per `XRANGE`, and the most jobs applied in one transaction.
    public var pageSize = 500

    public init(redis: any RedisClient, keys: QueueKeys, partitioning: Partitioning) {
        self.redis = redis
        self.keys = keys
        self.partitioning = partitioning
    }

    /// What `XINFO STREAM` says of the stream's ends.
    public struct Extent: Sendable, Equatable {
        public var length: Int64
        /// Every entry ever added; more than `length` once the window trimmed some.
        public var entriesAdded: Int64
        /// The newest entry trimmed away (`0-0` when none was).
        public var maxDeletedId: String
        public var firstId: String?
        public var lastId: String?
        public var wasTrimmed: Bool { entriesAdded > length }
    }

    /// Whether the stream reaches back to the restored ledger.
    public enum Continuity: Sendable, Equatable {
        /// Every job acknowledged after the ledger's last commit is in the stream.
        case continuous
        /// The stream does not exist (or is empty) although the ledger is not: Redis lost it,
        /// or the worker never wrote it. What was acknowledged after the replica is unknown.
        case noStream
        /// The window trimmed away jobs the ledger lacks: they cannot be recovered.
        case gap(Gap)
    }

    /// The jobs that can no longer be recovered lie between the ledger's last entry and the
    /// stream's oldest kept job.
    public struct Gap: Sendable, Equatable, CustomStringConvertible {
        public var stream: String
        public var ledgerLastEntryMs: Int64?
        public var oldestKeptId: String
        public var oldestKeptAtMs: Int64?
        /// The newest entry removed, when Redis says (`XINFO STREAM`'s `max-deleted-entry-id`,
        /// which Redis 7.0 moves on `XDEL` only, not when a trim removes entries).
        public var lastTrimmedId: String?

        public var description: String {
            let ledger = ledgerLastEntryMs.map { "its last entry is of \(LedgerTime.format(ms: $0))" } ?? "it has no entry"
            let oldest = oldestKeptAtMs.map { " (applied \(LedgerTime.format(ms: $0)))" } ?? ""
            let trimmed = lastTrimmedId.map { " up to \($0) (\(Self.streamTime($0)) by Redis's clock)" } ?? ""
            return "the replica is older than \(stream) reaches back: \(ledger), but the stream's oldest kept job, entry "
                + "\(oldestKeptId)\(oldest), is not in it, and the window trimmed the entries before it\(trimmed). "
                + "Jobs acknowledged between \(ledgerLastEntryMs.map { LedgerTime.format(ms: $0) } ?? "the replica's last commit") and "
                + "\(Self.streamTime(oldestKeptId)) (the entry's Redis time) are lost: their producers must send them again (same ids)"
        }

        /// A stream id's time part (`<ms>-<seq>`) as an ISO time.
        static func streamTime(_ id: String) -> String {
            RecoveryStream.milliseconds(ofStreamId: id).map { LedgerTime.format(ms: $0) } ?? id
        }
    }

    /// What `apply` did.
    public struct Summary: Sendable, Equatable {
        /// Entries read from the stream.
        public var read: Int64 = 0
        /// Jobs that took effect now: the replica lacked them.
        public var applied: Int64 = 0
        /// Jobs the ledger already had (the replica's, or recorded twice).
        public var alreadyApplied: Int64 = 0
        /// Entries that are not a job this partition applies (unreadable, another partition's):
        /// the worker records none, so any here was written by something else.
        public var skipped: Int64 = 0
    }

    public func extent() throws(RedisError) -> Extent? {
        let reply = try redis.pipeline([RedisCommand("XINFO", "STREAM", keys.applied)])[0]
        if let message = reply.errorMessage {
            if message.lowercased().contains("no such key") { return nil }
            throw RedisError.reply(message)
        }
        guard let flat = reply.array else { throw .unexpectedReply("XINFO STREAM did not answer an array") }
        var fields: [String: RedisValue] = [:]
        var i = 0
        while i + 1 < flat.count {
            if let key = flat[i].string { fields[key] = flat[i + 1] }
            i += 2
        }
        func entryId(_ key: String) -> String? { fields[key]?.array?.first?.string }
        return Extent(length: fields["length"]?.int ?? 0, entriesAdded: fields["entries-added"]?.int ?? 0,
                      maxDeletedId: fields["max-deleted-entry-id"]?.string ?? "0-0",
                      firstId: entryId("first-entry"), lastId: entryId("last-entry"))
    }

    /// Looks at the oldest kept first application (a duplicate's first application may be far
    /// older than its entry): when the window trimmed entries before it and the ledger lacks it,
    /// so may it lack the trimmed ones.
    public func continuity(of ledger: Ledger) throws -> Continuity {
        guard let extent = try extent(), extent.length > 0 else {
            return try ledger.lastEntryMilliseconds() == nil ? .continuous : .noStream
        }
        guard extent.wasTrimmed else { return .continuous }
        var oldest: StreamEntry?
        var start = "-"
        search: while true {
            let page = try redis.xrange(keys.applied, start, "+", count: pageSize)
            for entry in page {
                if oldest == nil { oldest = entry }
                if entry.value("duplicate") != "true" {
                    oldest = entry
                    break search
                }
            }
            guard let last = page.last, page.count == pageSize else { break }
            start = "(" + last.id
        }
        guard let oldest else { return .continuous }
        if let id = Self.jobId(of: oldest), try ledger.hasStoredResult(jobId: id) { return .continuous }
        return .gap(Gap(stream: keys.applied, ledgerLastEntryMs: try ledger.lastEntryMilliseconds(), oldestKeptId: oldest.id,
                        oldestKeptAtMs: oldest.value("at").flatMap(LedgerTime.parseMilliseconds),
                        lastTrimmedId: extent.maxDeletedId == "0-0" ? nil : extent.maxDeletedId))
    }

    /// Applies the stream's jobs in order, `pageSize` at a time and never two `at`s in one
    /// transaction, with `clock` (the ledger's) set to each group's `at`. `progress` gets the
    /// entries read of the stream's length.
    public func apply(to ledger: Ledger, clock: ManualClock,
                      progress: (_ read: Int64, _ total: Int64) -> Void = { _, _ in }) throws -> Summary {
        let total = try extent()?.length ?? 0
        var summary = Summary()
        var start = "-"
        var group: [Job] = []
        var groupAtMs: Int64?
        func flush() throws {
            guard !group.isEmpty else { return }
            // Backwards too: entry times never go back (the ledger dates an entry no earlier than
            // the last), while decisions are made at the time they were first made.
            clock.set(groupAtMs.map(LedgerTime.date) ?? Date())
            for result in try ledger.apply(group.map(\.command)) {
                if result.duplicate { summary.alreadyApplied += 1 } else { summary.applied += 1 }
            }
            group.removeAll(keepingCapacity: true)
        }
        while true {
            let page = try redis.xrange(keys.applied, start, "+", count: pageSize)
            for entry in page {
                summary.read += 1
                let raw = entry.fields.first { $0.key == Array("job".utf8) }?.value ?? []
                let atMs = entry.value("at").flatMap(LedgerTime.parseMilliseconds)
                guard case .success(let job) = partitioning.admit(Job.decode(raw), raw: raw, on: keys.partition ?? 0),
                      job.id != nil else {
                    summary.skipped += 1
                    continue
                }
                if atMs != groupAtMs || group.count >= pageSize { try flush() }
                groupAtMs = atMs
                group.append(job)
            }
            try flush()
            progress(summary.read, max(total, summary.read))
            guard let last = page.last, page.count == pageSize else { break }
            start = "(" + last.id
        }
        return summary
    }

    /// The time part of a stream id (`<ms>-<seq>`).
    public static func milliseconds(ofStreamId id: String) -> Int64? {
        guard let dash = id.firstIndex(of: "-") else { return nil }
        return Int64(id[..<dash])
    }

    static func jobId(of entry: StreamEntry) -> String? {
        let raw = entry.fields.first { $0.key == Array("job".utf8) }?.value ?? []
        guard case .success(let job) = Job.decode(raw) else { return nil }
        return job.id
    }
}
