import GRDB

/// The merge: moves the unmerged tail into the indexes, in key order, one short slice at a time.
///
/// Why slices: a whole merge of tens of thousands of rows writes thousands of index pages; done at once it
/// would hold up the batch behind it for a long time. A slice writes at most `budget` rows (one
/// key range of `jobs`, or a run of accounts) in one transaction of a few milliseconds, and the
/// worker runs one between batches, while the Redis thread sends the previous outbox.
/// See `MergePlan` for the phases and why a crash at any instruction is harmless.
extension Ledger {
    /// Does one slice of index maintenance if any is due, and returns whether more is due.
    ///
    /// Call it between batches (the worker calls it after each `apply`); it returns at once when
    /// the tail is below `mergeThresholdRows`. `budget` is the most rows the slice writes
    /// (default `mergeSliceRows`). With `epoch`, a newer epoch fences it like `apply`. Should
    /// nobody call it, `apply` merges by itself whenever the tail reaches twice the threshold
    /// (in proportion to each write; see `boundTail`), so memory stays bounded either way.
    /// The worker calls `maintainAfterBatch`, which runs as many slices as keep the merge ahead.
    @discardableResult
    public func maintain(budget: Int? = nil, epoch: Int64? = nil) throws -> Bool {
        let rows = max(1, budget ?? config.mergeSliceRows)
        return try writer.writeWithoutTransaction { db in
            guard maintenanceDue else { return false }
            var afterCommit: () -> Void = {}
            let stopwatch = WriteStopwatch(checkpointer: checkpointer)
            try db.inTransaction(.immediate) {
                if let epoch { try Self.checkEpoch(db, epoch) }
                try tail.refreshIfChanged(db)
                afterCommit = try maintenanceSlice(db, rows: rows)
                return .commit
            }
            timings.withLock { stopwatch.mergeCommitted(&$0, checkpointer: checkpointer) }
            afterCommit()
            return maintenanceDue
        }
    }

    /// The merge between two batches: slices until the merge has done twice the rows appended
    /// since the previous call, or until the next slice would take the pause past
    /// `mergePauseMilliseconds`; returns whether more is due.
    ///
    /// Why twice: a merge covers the tail as it was when it started (at `mergeThresholdRows`),
    /// and the tail keeps growing meanwhile; merging two rows for each row appended finishes
    /// the merge before the tail has grown by half again, at any batch size. Why a time cap:
    /// the pause is latency for every job behind it. Slices are sized to the time left from
    /// what a merged row has cost so far (a slice is one transaction, one fsync, so fewer and
    /// larger slices cost less): the first at least 1 row, the others at least 64, none above
    /// four times `mergeSliceRows`.
    /// Should the cap leave the merge behind, `apply` merges in proportion to each write past
    /// twice the threshold (see `boundTail`), so memory stays bounded either way.
    @discardableResult
    public func maintainAfterBatch(epoch: Int64? = nil) throws -> Bool {
        let start = ContinuousClock.now
        let pauseNs = Double(config.mergePauseMilliseconds) * 1e6
        var owed = writer.writeWithoutTransaction { _ -> Int in
            let appended = tail.appendedRows - tail.pacedThrough
            tail.pacedThrough = tail.appendedRows
            return maintenanceDue ? 2 * Int(clamping: max(0, appended)) : -1
        }
        if owed < 0 { return false }
        var more = true
        var first = true
        let slice = max(1, config.mergeSliceRows)
        repeat {
            let leftNs = pauseNs - Double((ContinuousClock.now - start) / .nanoseconds(1))
            let perRow = writer.writeWithoutTransaction { _ in tail.mergeNanosecondsPerRow }
            // What fits in the pause left, once a slice has been timed; untimed, one default slice.
            let fits = perRow > 0 ? Int(min(1e9, max(0, leftNs) / perRow)) : (first ? slice : 0)
            if !first && fits < 64 { break }
            let rows = max(1, min(fits, 4 * slice, max(owed, slice)))
            first = false
            let t0 = ContinuousClock.now
            more = try maintain(budget: rows, epoch: epoch)
            let ns = Double((ContinuousClock.now - t0) / .nanoseconds(1))
            writer.writeWithoutTransaction { _ in
                let sample = ns / Double(rows)
                let old = tail.mergeNanosecondsPerRow
                tail.mergeNanosecondsPerRow = old == 0 ? sample : 0.75 * old + 0.25 * sample
            }
            owed -= rows
        } while more && owed > 0
        return more
    }

    /// Merges the whole tail now, in large slices (tests, tools, a bulk load): nothing waits.
    public func mergeAll(epoch: Int64? = nil) throws {
        try writer.writeWithoutTransaction { _ in
            if tail.merge == nil && tail.rowCount > 0 { tail.merge = MergePlan(tail: tail) }
        }
        while try maintain(budget: max(config.mergeSliceRows, 65_536), epoch: epoch) {}
    }

    /// Rows in the unmerged tail (job results plus entries), for metrics and tests.
    public func unmergedRows() throws -> Int {
        try writer.read { _ in tail.rowCount }
    }

    /// Whether a merge is under way, is due, or merged `job_log` rows wait to be deleted.
    private var maintenanceDue: Bool {
        tail.merge != nil || tail.rowCount >= config.mergeThresholdRows || tail.prunedJobSeq < tail.mergedJobSeq
    }

    /// Writes one slice inside the caller's transaction and returns what to do to the tail
    /// once it has committed (nothing of the tail changes before).
    private func maintenanceSlice(_ db: Database, rows: Int) throws -> () -> Void {
        let tail = self.tail
        if tail.merge == nil && tail.prunedJobSeq < tail.mergedJobSeq {
            // Deleting from the front of `job_log` frees whole pages in order: cheaper per row.
            let through = min(tail.mergedJobSeq, tail.prunedJobSeq + 8 * Int64(rows))
            try db.execute(sql: "DELETE FROM job_log WHERE seq > ? AND seq <= ?", arguments: [tail.prunedJobSeq, through])
            return { tail.prunedJobSeq = through }
        }
        if tail.merge == nil {
            if tail.rowCount == 0 { return {} }
            tail.merge = MergePlan(tail: tail)
        }
        guard let plan = tail.merge else { return {} }
        switch plan.phase {
        case .jobs:
            let end = min(plan.jobIds.count, plan.jobCursor + rows)
            let q = try RawStatement(db, LedgerTransaction.SQL.mergeJob)
            for id in plan.jobIds[plan.jobCursor..<end] {
                guard let job = tail.jobs[IdentityKey(id)] else { continue }
                q.reset()
                try q.bind(1, id); try q.bind(2, job.entryId); try q.bind(3, job.accountId); try q.bind(4, job.result)
                try q.run()
            }
            return { tail.merge?.jobCursor = end }
        case .accounts:
            let index = try RawStatement(db, LedgerTransaction.SQL.mergeEntry)
            let row = try RawStatement(db, LedgerTransaction.SQL.updateAccountBalance)
            var written = 0
            var cursor = plan.accountCursor
            var rowsWritten: [Int64] = []
            while cursor < plan.accountIds.count && written < rows {
                let accountId = plan.accountIds[cursor]
                for e in tail.entries[accountId] ?? [] where e.id <= plan.entryId {
                    index.reset()
                    try index.bind(1, accountId); try index.bind(2, e.createdMs); try index.bind(3, e.id)
                    try index.run()
                    written += 1
                }
                if let a = tail.accounts[accountId] {
                    row.reset()
                    try row.bind(1, a.balance); try row.bind(2, a.spent); try row.bind(3, a.entryCount); try row.bind(4, a.lastEntryId); try row.bind(5, a.id)
                    try row.run()
                    rowsWritten.append(accountId)
                    written += 1
                }
                cursor += 1
            }
            return {
                tail.merge?.accountCursor = cursor
                for id in rowsWritten {
                    if let a = tail.accounts.removeValue(forKey: id) { tail.accountIdByUser.removeValue(forKey: IdentityKey(a.userId)) }
                }
            }
        case .finish:
            try db.execute(sql: "UPDATE storage_state SET value = ? WHERE name = 'merged_job_seq'", arguments: [plan.jobSeq])
            try db.execute(sql: "UPDATE storage_state SET value = ? WHERE name = 'merged_entry_id'", arguments: [plan.entryId])
            return {
                tail.finishMerge(plan)
            }
        }
    }
}

extension LedgerTransaction.SQL {
    static let mergeEntry = "INSERT OR IGNORE INTO entry_index (account_id, created_ms, entry_id) VALUES (?, ?, ?)"
}
