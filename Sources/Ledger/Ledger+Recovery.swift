import GRDB

/// What `tokenledger restore` asks of a restored ledger before it applies the recovery stream:
/// whether a job took effect, and how far the ledger reaches, to tell a replica that is merely
/// behind the stream from one the stream no longer reaches back to.
extension Ledger {
    /// Whether a result is stored under `jobId` (merged or still in the log): the job took
    /// effect here. Compared as bytes, as SQLite compares TEXT.
    public func hasStoredResult(jobId: String) throws -> Bool {
        try writer.read { db in
            try Bool.fetchOne(db, sql: """
                SELECT EXISTS (SELECT 1 FROM jobs WHERE job_id = ?1) OR EXISTS (SELECT 1 FROM job_log WHERE job_id = ?1)
                """, arguments: [jobId]) ?? false
        }
    }

    /// The time of the newest entry (milliseconds since 1970), nil for a ledger without entries:
    /// where a restored replica stops.
    public func lastEntryMilliseconds() throws -> Int64? {
        try writer.read { db in
            try Int64.fetchOne(db, sql: "SELECT created_ms FROM entries ORDER BY id DESC LIMIT 1")
        }
    }
}
