import GRDB

/// The ledger's tables, created by GRDB's `DatabaseMigrator` (one migration per schema change;
/// never edit a shipped migration).
///
/// Layout is chosen for the group commit: each commit writes every page it dirtied, so the
/// number of distinct pages a batch touches is the cost.
/// - `entries` is keyed by a dense INTEGER PRIMARY KEY assigned by the writer: appends fill the
///   last page only. It refers to its account by rowid, so its one secondary index
///   (`account_id, created_ms`) has small keys and, per account, grows at its right end.
/// - `jobs` is the one random-key index: the job id, the idempotency key. A plain successful
///   charge/debit/credit/refund stores only the entry id there, and its result is rebuilt from
///   the entry (it is derived from it), keeping the rows small; other results are stored as text.
/// - `accounts` carries the running balance, so no query sums entries; the hot UPDATE touches
///   only unindexed columns, so the renewal index (`next_renewal_ms`) is not rewritten by charges.
///
/// Later rooms (not built): reservations (hold/capture/release with a timeout) would be a
/// `holds` table keyed by job id with an `available = balance - held` rule and a capture that
/// writes the entry; expiring credit grants would be `grants(account_id, remaining, expires_ms)`
/// consumed oldest-expiry first, with an `expiry` entry written when one lapses.
enum Schema {
    /// Entry kinds: what an entry did, independent of its free-form `operation_type`.
    enum Kind: Int64 {
        case charge = 1, debit = 2, credit = 3, refund = 4, renewal = 5, purchase = 6
        /// A lapse: what was left of an expiring grant, written off (negative, not spending).
        case expiry = 7

        var isSpending: Bool { self == .charge || self == .debit }

        /// tokensSpent after an entry: charges and debits (negative amounts) add to it, refunds
        /// take back from it but never below 0; nothing else moves it (a lapse is not spending).
        static func spentAfter(kind: Int64, amount: Int64, spentBefore: Int64) -> Int64 {
            switch kind {
            case charge.rawValue, debit.rawValue: return spentBefore &- amount
            case refund.rawValue: return max(0, spentBefore - amount)
            default: return spentBefore
            }
        }
    }

    static let spentAfterMigration = "entries-spent-after"
    static let rolloverMigration = "grants-rollover"

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE accounts (
                    id INTEGER PRIMARY KEY,
                    user_id TEXT NOT NULL UNIQUE,
                    tier TEXT NOT NULL,
                    balance INTEGER NOT NULL CHECK (balance >= 0),
                    spent INTEGER NOT NULL,
                    anchor_ms INTEGER NOT NULL,
                    periods INTEGER NOT NULL,
                    last_renewal_ms INTEGER NOT NULL,
                    next_renewal_ms INTEGER NOT NULL,
                    expires_ms INTEGER,
                    created_ms INTEGER NOT NULL,
                    entry_count INTEGER NOT NULL,
                    last_entry_id INTEGER
                ) STRICT;
                CREATE INDEX accounts_due ON accounts(next_renewal_ms);

                CREATE TABLE entries (
                    id INTEGER PRIMARY KEY,
                    account_id INTEGER NOT NULL,
                    created_ms INTEGER NOT NULL,
                    kind INTEGER NOT NULL,
                    operation_type TEXT NOT NULL,
                    amount INTEGER NOT NULL,
                    balance_before INTEGER NOT NULL,
                    balance_after INTEGER NOT NULL,
                    job_id TEXT,
                    refund_of INTEGER,
                    metadata TEXT,
                    hash BLOB NOT NULL,
                    CHECK (balance_after >= 0 AND balance_after = balance_before + amount)
                ) STRICT;
                CREATE INDEX entries_by_account ON entries(account_id, created_ms);
                CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
                BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
                CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
                BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;

                CREATE TABLE jobs (
                    job_id TEXT PRIMARY KEY,
                    entry_id INTEGER,
                    account_id INTEGER,
                    result TEXT
                ) WITHOUT ROWID, STRICT;
                CREATE TRIGGER jobs_no_update BEFORE UPDATE ON jobs
                BEGIN SELECT RAISE(ABORT, 'stored job results are immutable'); END;

                CREATE TABLE payments (
                    payment_id TEXT PRIMARY KEY,
                    job_id TEXT NOT NULL,
                    account_id INTEGER NOT NULL,
                    tier TEXT NOT NULL
                ) WITHOUT ROWID, STRICT;

                CREATE TABLE refunded (
                    entry_id INTEGER PRIMARY KEY,
                    amount INTEGER NOT NULL CHECK (amount >= 0)
                ) STRICT;

                CREATE TABLE epochs (
                    epoch INTEGER PRIMARY KEY,
                    owner TEXT NOT NULL,
                    acquired_ms INTEGER NOT NULL
                ) STRICT;

                CREATE TABLE scheduler_runs (
                    name TEXT PRIMARY KEY,
                    slot_ms INTEGER NOT NULL,
                    completed_ms INTEGER NOT NULL
                ) WITHOUT ROWID, STRICT;
                """)
        }
        m.registerMigration("partitions") { db in
            // One row: how many partitions the ledger's users are split into, and which one this
            // file holds. Written once, by the first worker that opens the file.
            try db.execute(sql: """
                CREATE TABLE partition_layout (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    partition_count INTEGER NOT NULL CHECK (partition_count >= 1),
                    partition INTEGER NOT NULL CHECK (partition >= 0 AND partition < partition_count)
                ) STRICT;
                """)
        }
        m.registerMigration("v2-append-only-hot-path") { db in
            try migrateToAppendOnlyHotPath(db)
        }
        registerExtras(&m)
        registerPendingSendsSequence(&m)
        m.registerMigration(spentAfterMigration) { db in
            // balanceAt reads the spent total at an entry in one seek. Older entries keep NULL
            // (the append-only triggers forbid rewriting them) and are folded when asked.
            try db.execute(sql: "ALTER TABLE entries ADD COLUMN spent_after INTEGER")
        }
        m.registerMigration(rolloverMigration) { db in
            // Under `rollover`, a period grant records what it carried, and a carried grant names
            // the grant it came from, so `verify` can match each carry to its source.
            try db.execute(sql: """
                ALTER TABLE grants ADD COLUMN carried INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE grants ADD COLUMN source TEXT;
                """)
        }
        return m
    }

    /// v2: every per-job write becomes an append (see `LedgerTail` and `Ledger+Merge`).
    ///
    /// - `job_log` is the append-only log of stored results not yet merged into `jobs`, which
    ///   keeps its meaning (the merged job-id index) and its rows.
    /// - `entry_index (account_id, created_ms, entry_id)` replaces the index `entries_by_account`,
    ///   which SQLite maintained on every insert, at a random account's leaf. The merge fills it
    ///   in key order, up to `storage_state.merged_entry_id`; the entries after that are found
    ///   through the in-memory tail.
    /// - An `accounts` row may lag behind its entries by the unmerged tail: it is exact as of its
    ///   `last_entry_id`, and the entries after that are folded into it at open.
    /// Existing entries are indexed here once, read through `entries_by_account` in its own order.
    static func migrateToAppendOnlyHotPath(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE job_log (
                seq INTEGER PRIMARY KEY,
                job_id TEXT NOT NULL,
                entry_id INTEGER,
                account_id INTEGER,
                result TEXT
            ) STRICT;

            CREATE TABLE entry_index (
                account_id INTEGER NOT NULL,
                created_ms INTEGER NOT NULL,
                entry_id INTEGER NOT NULL,
                PRIMARY KEY (account_id, created_ms, entry_id)
            ) WITHOUT ROWID, STRICT;
            INSERT INTO entry_index (account_id, created_ms, entry_id)
                SELECT account_id, created_ms, id FROM entries INDEXED BY entries_by_account
                ORDER BY account_id, created_ms, id;
            DROP INDEX entries_by_account;

            CREATE TABLE storage_state (
                name TEXT PRIMARY KEY,
                value INTEGER NOT NULL
            ) WITHOUT ROWID, STRICT;
            INSERT INTO storage_state (name, value) VALUES
                ('merged_entry_id', (SELECT coalesce(max(id), 0) FROM entries)),
                ('merged_job_seq', 0);
            """)
    }
}
