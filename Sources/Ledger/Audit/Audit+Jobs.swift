import GRDB

/// `verify` for idempotency: each job id takes effect at most once, and the two stores of job
/// results (`job_log`, the unmerged tail on disk; `jobs`, the merged index) agree.
///
/// Why: a double application (a replay that the stored result failed to stop) leaves every
/// balance equal to the sum of its entries, so the balance checks cannot see it; only the job ids
/// can. Job ids compare as SQLite's BINARY collation does, byte by byte (see `IdentityKey`).
extension Auditor {
    mutating func checkJobs(v2: Bool) throws {
        // An entry-producing effect is an entry carrying the job id; a job writes at most one.
        for r in try Row.fetchAll(db, sql: """
            SELECT job_id, count(*), min(id), group_concat(id, ', ') FROM entries
            WHERE job_id IS NOT NULL GROUP BY job_id HAVING count(*) > 1 ORDER BY min(id)
            """) {
            let jobId: String = r[0], count: Int64 = r[1], first: Int64 = r[2], ids: String = r[3]
            add(Code.jobAppliedTwice, entry: first, "The job \(jobId) has \(count) entries (\(ids)): a job id takes effect once.")
        }
        // The stored result names the job's own entry: an entry of another job (or none) means
        // the job's effect and its stored result disagree.
        let stores = v2 ? ["jobs", "job_log"] : ["jobs"]
        for table in stores {
            for r in try Row.fetchAll(db, sql: """
                SELECT s.job_id, s.entry_id, e.job_id FROM \(table) s LEFT JOIN entries e ON e.id = s.entry_id
                WHERE s.entry_id IS NOT NULL AND (e.id IS NULL OR e.job_id IS NOT s.job_id)
                """) {
                let jobId: String = r[0], entryId: Int64 = r[1], owner: String? = r[2]
                add(Code.jobEntryMismatch, entry: entryId, "The stored result of job \(jobId) (\(table)) names entry \(entryId), which belongs to \(owner.map { "job \($0)" } ?? "no job").")
            }
        }
        try checkEffectsHaveResults(v2: v2)
        guard v2 else { return }
        for r in try Row.fetchAll(db, sql: """
            SELECT job_id, count(*), min(seq) FROM job_log GROUP BY job_id HAVING count(*) > 1 ORDER BY min(seq)
            """) {
            let jobId: String = r[0], count: Int64 = r[1]
            add(Code.jobAppliedTwice, "The job \(jobId) was stored \(count) times in job_log: a job id takes effect once.")
        }
        // Every job_log row that also has a merged row must equal it (a merge copies rows as they
        // are); at or below the merge watermark every row must have one.
        let mergedJobSeq = try Int64.fetchOne(db, sql: "SELECT value FROM storage_state WHERE name = 'merged_job_seq'") ?? 0
        for r in try Row.fetchAll(db, sql: """
            SELECT l.seq, l.job_id, j.job_id IS NOT NULL FROM job_log l LEFT JOIN jobs j ON j.job_id = l.job_id
            WHERE (j.job_id IS NULL AND l.seq <= ?)
                OR (j.job_id IS NOT NULL AND (j.entry_id IS NOT l.entry_id OR j.account_id IS NOT l.account_id OR j.result IS NOT l.result))
            ORDER BY l.seq
            """, arguments: [mergedJobSeq]) {
            let seq: Int64 = r[0], jobId: String = r[1], merged: Bool = r[2]
            add(Code.jobStoreMismatch, merged
                ? "The merged result of job \(jobId) differs from its job_log row \(seq): the job has two results."
                : "The job_log row \(seq) of job \(jobId) is merged (watermark \(mergedJobSeq)) but jobs has no row for it.")
        }
    }

    /// Every entry that carries a job id has that job's result stored (in `jobs`, or in `job_log`
    /// until the merge): the other half of a job id's one effect, since the stored result is
    /// what stops a replay. `job_log` is the tail, small; `jobs` is probed by its key.
    mutating func checkEffectsHaveResults(v2: Bool) throws {
        var logged = Set<IdentityKey>()
        if v2 { for id in try String.fetchAll(db, sql: "SELECT job_id FROM job_log") { logged.insert(IdentityKey(id)) } }
        let rows = try Row.fetchCursor(db, sql: """
            SELECT e.id, e.job_id FROM entries e LEFT JOIN jobs j ON j.job_id = e.job_id
            WHERE e.job_id IS NOT NULL AND j.job_id IS NULL ORDER BY e.id
            """)
        while let r = try rows.next() {
            let entryId: Int64 = r[0], jobId: String = r[1]
            if logged.contains(IdentityKey(jobId)) { continue }
            add(Code.jobResultMissing, entry: entryId, "Entry \(entryId) is the effect of job \(jobId), but no result is stored under that job id: a replay would apply it again.")
        }
    }
}
