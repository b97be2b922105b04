import Foundation

/// One merge of the unmerged tail into the indexes, done in slices (see `Ledger.maintain`).
///
/// A merge covers the tail as it was when the merge started: `job_log` rows up to `jobSeq` and
/// entries up to `entryId`. It goes through three phases, each a series of short transactions:
/// 1. `jobs`: the covered job ids, sorted, `sliceRows` at a time, each slice one key range of
///    `jobs` (`INSERT OR IGNORE`), so that the merge as a whole writes each leaf of the job-id
///    index once per merge instead of once per batch;
/// 2. `accounts`: the covered accounts in rowid order: their entries into `entry_index`
///    (`INSERT OR IGNORE`, at the right end of each account's key range) and, for a lagging
///    account, its row;
/// 3. `finish`: one transaction moves `storage_state`'s watermarks to `jobSeq` and `entryId`.
/// Afterwards, `job_log` rows at or below the watermark are deleted in slices (`prune`).
///
/// The plan lives in memory only. Every write of phases 1-2 is idempotent and leaves the
/// answers unchanged (a key found in the tail and in `jobs` has the same row in both; queries read
/// `entry_index` only up to the watermark), and the watermarks move in one transaction, so a
/// crash at any instruction leaves a file whose next open rebuilds the same tail and merges it
/// again, rewriting what was already written with what is already there.
struct MergePlan {
    enum Phase { case jobs, accounts, finish }

    let jobSeq: Int64
    let entryId: Int64
    /// Job ids covered, in SQLite's BINARY order (bytes).
    let jobIds: [String]
    /// Accounts with covered entries or a lagging row, by rowid.
    let accountIds: [Int64]
    var jobCursor = 0
    var accountCursor = 0

    var phase: Phase {
        if jobCursor < jobIds.count { return .jobs }
        if accountCursor < accountIds.count { return .accounts }
        return .finish
    }

    /// SQLite's BINARY collation: memcmp of the UTF-8 bytes, then the shorter first. (String's
    /// own `<` compares after Unicode normalization, which may order non-ASCII text otherwise.)
    static func bytewise(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in
                let n = min(x.count, y.count)
                if n > 0, let xb = x.baseAddress, let yb = y.baseAddress {
                    let c = memcmp(xb, yb, n)
                    if c != 0 { return c < 0 }
                }
                return x.count < y.count
            }
        }
    }

    /// The first 8 bytes, big-endian, zero-padded: a smaller prefix means a smaller string in
    /// BINARY order (a shorter string padded with zeros sorts before any longer one it begins), so
    /// only equal prefixes need the full comparison.
    static func prefixKey(_ s: String) -> UInt64 {
        var s = s
        return s.withUTF8 { bytes in
            var key: UInt64 = 0
            for i in 0..<8 { key = key << 8 | UInt64(i < bytes.count ? bytes[i] : 0) }
            return key
        }
    }

    /// The job ids in BINARY order. Why by prefix first: this sort is one call, a pause between
    /// two batches (the merge's slices come after it), and comparing two integers costs a
    /// fraction of `bytewise` on two strings; random ids (UUIDs) almost never share 8 bytes.
    static func sortedJobIds(_ ids: [String]) -> [String] {
        var keyed = ids.enumerated().map { (key: prefixKey($0.element), index: $0.offset) }
        keyed.sort { a, b in a.key != b.key ? a.key < b.key : bytewise(ids[a.index], ids[b.index]) }
        return keyed.map { ids[$0.index] }
    }

    init(tail: LedgerTail) {
        jobSeq = tail.lastJobSeq
        entryId = tail.lastEntryId
        jobIds = Self.sortedJobIds(tail.jobs.keys.map(\.text))
        accountIds = Set(tail.entries.keys).union(tail.accounts.keys).sorted()
    }
}
