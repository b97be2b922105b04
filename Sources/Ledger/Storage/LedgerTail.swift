import GRDB

/// The unmerged tail of the ledger, in memory: what the on-disk indexes do not hold yet.
///
/// Why: a job used to write three random pages (a leaf of the job-id index, a leaf of the
/// account-history index, an account row), each written twice (WAL, then checkpoint). Since v2
/// a job only appends: its entry to `entries` and its result to `job_log`. What the indexes
/// would have answered, this tail answers until the merge (`Ledger+Merge`) has moved the rows
/// into `jobs` and `entry_index` in key order, many keys per page:
/// - `jobs`: job id -> stored result, for every `job_log` row after `mergedJobSeq`;
/// - `entries`: account -> its entries after `mergedEntryId` (id, time, type, amount), for
///   history and statistics;
/// - `accounts`: the accounts whose row lags behind their entries (only balance, spent and entry
///   bookkeeping lag; tier and renewal changes are written at once, since the renewal scheduler
///   selects accounts by SQL).
///
/// Nothing here is the truth: it is rebuilt from the file by `load` (at open, whenever another
/// connection has written the file, and after a transaction that changed it failed to commit:
/// see `invalidate`). It is used only on the writer's
/// `DatabaseQueue`, which serializes every access (hence `@unchecked Sendable`).
final class LedgerTail: @unchecked Sendable {
    /// One stored result. Ids are kept as plain integers with 0 for "none" (rowids start at 1):
    /// 32 bytes instead of 56 with optionals (the stored result is one word, `StoredResult`), for tens of thousands of them.
    struct Job {
        var seq: Int64
        private var entry: Int64
        private var account: Int64
        var result: StoredResult?

        init(seq: Int64, entryId: Int64?, accountId: Int64?, result: StoredResult?) {
            self.seq = seq
            entry = entryId ?? 0
            account = accountId ?? 0
            self.result = result
        }

        var entryId: Int64? { entry == 0 ? nil : entry }
        var accountId: Int64? { account == 0 ? nil : account }
    }

    struct Entry {
        var id: Int64
        var createdMs: Int64
        var operationType: String
        var amount: Int64
    }

    /// Stored results not yet merged into `jobs`, by job id (its bytes, as `jobs` keys them).
    var jobs: [IdentityKey: Job] = [:]
    /// Entries after `mergedEntryId`, by account rowid, in id order.
    var entries: [Int64: [Entry]] = [:]
    var entryCount = 0
    /// Accounts whose stored row lags: the current state, by rowid.
    var accounts: [Int64: AccountRecord] = [:]
    var accountIdByUser: [IdentityKey: Int64] = [:]
    /// `job_log` rows up to this seq are in `jobs`; entries up to this id are in `entry_index`.
    var mergedJobSeq: Int64 = 0
    var mergedEntryId: Int64 = 0
    var lastJobSeq: Int64 = 0
    var lastEntryId: Int64 = 0
    /// `job_log` rows up to this seq are deleted (merged rows are deleted after the merge).
    var prunedJobSeq: Int64 = 0
    /// The merge under way, if any (see `MergePlan`).
    var merge: MergePlan?
    /// Every job id stored in the file, merged or not, and those this connection appended since:
    /// a job id it does not hold skips both lookups (see `JobIdFilter`). Writer only.
    private(set) var jobFilter = JobIdFilter(expectedIds: 0)
    /// What `jobFilter` covers: nothing (a read-only tail, `load`: every id must be looked up);
    /// being built (it holds the tail's ids and this connection's appends, and a scan of `jobs`
    /// runs in the background: every id is still looked up); or every job id of `jobs` and of
    /// the `job_log` rows up to a committed seq. Either of the last two is caught up at each
    /// reload (`catchUpFilter`).
    private(set) var filterCoverage = FilterCoverage.none
    /// Lookups the filter answered, and those it sent to the indexes that found nothing.
    private(set) var filterSkips = 0
    var filterFalsePositives = 0
    /// Full builds of the filter (a scan of `jobs`): at open, and after another writer pruned
    /// rows this connection never saw.
    private(set) var filterBuilds = 0
    /// Starts the scan of `jobs` for a build, off the writer's queue (set by `Ledger`; a tail
    /// without it builds in line).
    var filterBuilder: (@Sendable (FilterBuild) -> Void)?
    /// Up to this many ids (estimated from the seqs) the scan runs in line, at the reload: a
    /// few tens of milliseconds. Beyond, it runs in the background (10M ids took 14-34 s at a
    /// load of 20 on 2 cores) so that an open or a takeover never waits for it.
    nonisolated(unsafe) static var inlineBuildIds = 262_144

    enum FilterCoverage: Equatable {
        case none
        case building(generation: Int, jobSeq: Int64)
        case through(jobSeq: Int64)

        var jobSeq: Int64? {
            switch self {
            case .none: nil
            case .building(_, let seq), .through(let seq): seq
            }
        }
    }

    /// What a background scan must build to be installed: the same geometry and seed as the
    /// filter it is merged into.
    struct FilterBuild: Sendable {
        let generation: Int
        let expectedIds: Int
        let seed: UInt64
    }

    /// `PRAGMA data_version` when the tail was last known to match the file.
    var dataVersion: Int64 = -1
    /// How many times the tail was read from the file (once at open; more means other writers).
    private(set) var reloads = 0
    /// Operation types are few: one String storage per distinct type (by bytes: an NFD type must
    /// not come back as its NFC twin).
    private var interned: [IdentityKey: String] = [:]
    private var lastInterned: String?
    /// Operation types are free-form text from producers: past this many distinct ones, new ones
    /// are kept as they come (a copy each) rather than remembered forever.
    static let internLimit = 4_096

    /// Rows the tail holds (what a merge would write).
    var rowCount: Int { jobs.count + entryCount }
    /// Rows ever appended (`job_log` seqs plus entry ids, both dense and rising): the difference
    /// of two readings is what was appended between them (see `Ledger.maintainAfterBatch`).
    var appendedRows: Int64 { lastJobSeq + lastEntryId }
    /// `appendedRows` at the last `maintainAfterBatch`.
    var pacedThrough: Int64 = 0
    /// What one merged row has cost (a slice's time over its rows, smoothed), to size the slices
    /// of `maintainAfterBatch` to its pause; 0 until a slice has been timed.
    var mergeNanosecondsPerRow: Double = 0

    func intern(_ s: String) -> String {
        // A run of jobs mostly repeats one type: compare bytes before hashing them.
        if let last = lastInterned, last.hasSameBytes(as: s) { return last }
        let key = IdentityKey(s)
        let known = interned[key] ?? s
        if interned.count < Self.internLimit { interned[key] = known }
        lastInterned = known
        return known
    }

    /// Reads the tail from the file (inside the caller's transaction, for a consistent view),
    /// folding the entries after each lagging account row's `last_entry_id` into it (`foldIn`).
    func reload(_ db: Database) throws {
        let tail = try Self.load(db)
        reloads += 1
        jobs = tail.jobs
        entries = tail.entries
        entryCount = tail.entryCount
        accounts = tail.accounts
        accountIdByUser = tail.accountIdByUser
        mergedJobSeq = tail.mergedJobSeq
        mergedEntryId = tail.mergedEntryId
        lastJobSeq = tail.lastJobSeq
        lastEntryId = tail.lastEntryId
        prunedJobSeq = tail.prunedJobSeq
        merge = nil
        dataVersion = tail.dataVersion
        interned = tail.interned
        lastInterned = nil
        try catchUpFilter(db)
    }

    /// Brings the filter up to the file just read. Ids only ever enter `jobs` from `job_log`
    /// (a merge copies them; v1's rows are there before any open), and `job_log` only grows at
    /// its end and loses rows only at its front (the prune, below the merge watermark). So if
    /// no row after what the filter covers was pruned, adding the rows after it is enough; else
    /// another writer merged and pruned ids this connection never saw, and only a scan of
    /// `jobs` finds them. Ids the filter holds that the file does not (a rolled-back batch's)
    /// only cost a probe.
    private func catchUpFilter(_ db: Database) throws {
        if let covered = filterCoverage.jobSeq, prunedJobSeq <= covered {
            if covered < lastJobSeq {
                let rows = try RawStatement(db, "SELECT job_id FROM job_log WHERE seq > ?")
                rows.reset()
                try rows.bind(1, covered)
                while try rows.step() { rows.withBytes(0) { jobFilter.insert(bytes: $0) } }
                rows.reset()
            }
            switch filterCoverage {
            case .building(let generation, _): filterCoverage = .building(generation: generation, jobSeq: lastJobSeq)
            case .through, .none: filterCoverage = .through(jobSeq: lastJobSeq)
            }
            return
        }
        // A new build: the tail's ids now, `jobs` by a scan. Room for half as many ids again
        // before the filter adds a segment.
        let build = FilterBuild(generation: filterBuilds + 1, expectedIds: Int(clamping: lastJobSeq) / 2 * 3,
                                seed: UInt64.random(in: 0...UInt64.max))
        filterBuilds = build.generation
        jobFilter = JobIdFilter(expectedIds: build.expectedIds, seed: build.seed)
        for key in jobs.keys { jobFilter.insert(key.text) }
        if let filterBuilder, build.expectedIds > Self.inlineBuildIds {
            filterCoverage = .building(generation: build.generation, jobSeq: lastJobSeq)
            filterBuilder(build)
        } else {
            try Self.scanJobs(db, into: &jobFilter)
            filterCoverage = .through(jobSeq: lastJobSeq)
        }
    }

    /// Inserts every job id of `jobs` (inside the caller's read transaction).
    static func scanJobs(_ db: Database, into filter: inout JobIdFilter) throws {
        let rows = try RawStatement(db, "SELECT job_id FROM jobs")
        rows.reset()
        while try rows.step() { rows.withBytes(0) { filter.insert(bytes: $0) } }
        rows.reset()
    }

    /// Installs a background scan of `jobs` (on the writer's queue, between transactions),
    /// unless a newer build has started since (another writer's prune). The scan read a
    /// snapshot taken after the build began: ids merged into `jobs` after it came from the tail,
    /// which the filter being built already holds; rows another writer added since are caught
    /// up at the reload that notices them, as for a complete filter.
    func installFilter(_ scanned: JobIdFilter, generation: Int) {
        guard case .building(generation, let seq) = filterCoverage, jobFilter.formUnion(scanned) else { return }
        filterCoverage = .through(jobSeq: seq)
    }

    /// Whether `jobId` may be stored: false only when the filter is sure it is not.
    func mayHaveStored(_ jobId: String) -> Bool {
        guard case .through = filterCoverage else { return true }  // none, or being built
        if jobFilter.mayContain(jobId) { return true }
        filterSkips += 1
        return false
    }

    /// Records a result this connection appended to `job_log` (not committed yet).
    ///
    /// Asserts a job id's one effect at write (paired with `verify`'s `job_applied_twice`): the
    /// lookup before it found no result, so a result already in the tail means the lookup was
    /// wrong (a filter that lost an id), and the transaction rolls back rather than store twice.
    func storeJob(_ jobId: String, _ job: Job) throws {
        if let earlier = jobs.updateValue(job, forKey: IdentityKey(jobId)) {
            jobs[IdentityKey(jobId)] = earlier
            throw LedgerInvariantError("job \(jobId) stored twice (seq \(earlier.seq) and \(job.seq))")
        }
        if filterCoverage != .none { jobFilter.insert(jobId) }
    }

    /// The write transaction that extended the tail committed: what it appended is in the file,
    /// so the filter covers `job_log` through the tail's last seq.
    func committed() {
        switch filterCoverage {
        case .none: break
        case .building(let generation, _): filterCoverage = .building(generation: generation, jobSeq: lastJobSeq)
        case .through: filterCoverage = .through(jobSeq: lastJobSeq)
        }
    }

    /// Makes every id "maybe stored", so that every lookup probes (tests of the probe path).
    func saturateFilter() {
        jobFilter.saturate()
    }

    /// Empties the filter while it still claims to cover every id: what a bug in it would do
    /// (tests of the assertion at write and of `verify`).
    func dropFilterContents() {
        jobFilter = JobIdFilter(expectedIds: 0)
    }

    /// Reloads the tail when a connection other than the writer's has changed the file since it
    /// was read (a second writer process, a worker that took over while this one was fenced):
    /// nothing in memory may then be trusted.
    func refreshIfChanged(_ db: Database) throws {
        if try Self.dataVersion(db) != dataVersion { try reload(db) }
    }

    static func load(_ db: Database) throws -> LedgerTail {
        let tail = LedgerTail()
        tail.mergedJobSeq = try Int64.fetchOne(db, sql: "SELECT value FROM storage_state WHERE name = 'merged_job_seq'") ?? 0
        tail.mergedEntryId = try Int64.fetchOne(db, sql: "SELECT value FROM storage_state WHERE name = 'merged_entry_id'") ?? 0
        tail.lastJobSeq = max(tail.mergedJobSeq, try Int64.fetchOne(db, sql: "SELECT max(seq) FROM job_log") ?? 0)
        tail.lastEntryId = max(tail.mergedEntryId, try Int64.fetchOne(db, sql: "SELECT max(id) FROM entries") ?? 0)
        let firstSeq = try Int64.fetchOne(db, sql: "SELECT min(seq) FROM job_log")
        tail.prunedJobSeq = firstSeq.map { min($0 - 1, tail.mergedJobSeq) } ?? tail.mergedJobSeq

        let jobs = try RawStatement(db, "SELECT seq, job_id, entry_id, account_id, result FROM job_log WHERE seq > ? ORDER BY seq")
        jobs.reset()
        try jobs.bind(1, tail.mergedJobSeq)
        while try jobs.step() {
            tail.jobs[IdentityKey(jobs.text(1))] = Job(seq: jobs.int64(0), entryId: jobs.optionalInt64(2),
                                          accountId: jobs.optionalInt64(3), result: jobs.storedResult(4))
        }
        jobs.reset()

        let entries = try RawStatement(db, """
            SELECT id, account_id, created_ms, kind, operation_type, amount, balance_after FROM entries WHERE id > ? ORDER BY id
            """)
        let accountById = try RawStatement(db, LedgerTransaction.SQL.accountById)
        var rows: [Int64: AccountRecord] = [:]
        entries.reset()
        try entries.bind(1, tail.mergedEntryId)
        while try entries.step() {
            let id = entries.int64(0), accountId = entries.int64(1), kind = entries.int64(3), amount = entries.int64(5)
            tail.entries[accountId, default: []].append(
                Entry(id: id, createdMs: entries.int64(2), operationType: tail.intern(entries.text(4)), amount: amount))
            tail.entryCount += 1
            var row = rows[accountId]
            if row == nil {
                accountById.reset()
                try accountById.bind(1, accountId)
                if try accountById.step() { row = AccountRecord(accountById) }
                accountById.reset()
                rows[accountId] = row
            }
            guard let a = row, id > a.lastEntryId ?? 0 else { continue }
            a.foldIn(entryId: id, kind: kind, amount: amount, balanceAfter: entries.int64(6))
            a.lagging = true
        }
        entries.reset()
        for a in rows.values where a.lagging {
            tail.accounts[a.id] = a
            tail.accountIdByUser[IdentityKey(a.userId)] = a.id
        }
        tail.dataVersion = try dataVersion(db)
        return tail
    }

    static func dataVersion(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "PRAGMA data_version") ?? 0
    }

    /// The lagging account of `userId`: the record itself, which a transaction changes in place.
    func account(userId: String) -> AccountRecord? {
        accountIdByUser[IdentityKey(userId)].flatMap { accounts[$0] }
    }

    func account(id: Int64) -> AccountRecord? {
        accounts[id]
    }

    /// Keeps an account a transaction changed: lagging, it is the tail's; written whole, it is not.
    func track(_ a: AccountRecord) {
        if a.lagging {
            if accounts.updateValue(a, forKey: a.id) == nil { accountIdByUser[IdentityKey(a.userId)] = a.id }
        } else if accounts.removeValue(forKey: a.id) != nil {
            accountIdByUser.removeValue(forKey: IdentityKey(a.userId))
        }
    }

    /// Marks the tail as not matching the file (a transaction that changed it did not commit):
    /// the next transaction or read reloads it first.
    func invalidate() {
        dataVersion = -1
    }

    /// Drops what a finished merge moved into the indexes; call once its watermarks committed.
    func finishMerge(_ plan: MergePlan) {
        mergedJobSeq = plan.jobSeq
        mergedEntryId = plan.entryId
        // Keeping the few jobs stored since the plan costs less than removing the many it covered.
        jobs = jobs.filter { $0.value.seq > plan.jobSeq }
        for accountId in plan.accountIds {
            guard var list = entries[accountId] else { continue }
            let kept = list.firstIndex { $0.id > plan.entryId } ?? list.count
            entryCount -= kept
            list.removeFirst(kept)
            entries[accountId] = list.isEmpty ? nil : list
        }
        merge = nil
    }

}
