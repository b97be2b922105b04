import GRDB

/// The tables of reservations, expiring grants and monitors (issue 13), in a migration of their
/// own registered after `v1`, which is never edited.
///
/// - `accounts` gains four columns, all with defaults, so an account that never used these
///   features keeps its row as it was and pays no extra statement: `held` (the sum of its open
///   holds), `granted` (the free tokens of its live grants: neither spent, nor held, nor lapsed),
///   `next_due_ms` (the soonest expiry among its open holds and live grants, NULL when none) and
///   `monitors` (how many monitors it has). A partial index on `next_due_ms` lets the sweep find
///   due accounts without an index entry for every other account.
/// - `holds` is keyed by the hold's job id; `hold_grants` records which grant each held token
///   came from, so a hold keeps tokens whose grant lapses meanwhile and gives them back (or
///   lapses them) when it closes.
/// - `grants` is keyed by the grant's id (a job id, or `renewal:<userId>:<period start>`);
///   `lapsed_ms` is set once, when its lapse is written.
/// - `monitors` is keyed by account and monitor id.
/// - `pending_sends` keeps what the ledger did on its own (lapses, hold expiries, alerts,
///   scheduled renewals) to announce, written in the transaction that did it and deleted once the
///   worker has sent it: a crash between the commit and the send resends it (at least once), as
///   a replayed batch resends its jobs' messages.
extension Schema {
    /// "v2-credit" is a historical name (the extras were first called credit): existing ledgers
    /// record it in `grdb_migrations`, so it never changes.
    static let extrasMigration = "v2-credit"

    /// Hold states as stored.
    enum HoldState: Int64 {
        case open = 0, captured = 1, released = 2, expired = 3

        var name: String {
            switch self {
            case .open: return "open"
            case .captured: return "captured"
            case .released: return "released"
            case .expired: return "expired"
            }
        }
    }

    static func registerExtras(_ m: inout DatabaseMigrator) {
        m.registerMigration(extrasMigration) { db in
            try db.execute(sql: """
                ALTER TABLE accounts ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE accounts ADD COLUMN granted INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE accounts ADD COLUMN next_due_ms INTEGER;
                ALTER TABLE accounts ADD COLUMN monitors INTEGER NOT NULL DEFAULT 0;
                CREATE INDEX accounts_next_due ON accounts(next_due_ms) WHERE next_due_ms IS NOT NULL;

                CREATE TABLE holds (
                    hold_id TEXT PRIMARY KEY,
                    account_id INTEGER NOT NULL,
                    amount INTEGER NOT NULL CHECK (amount >= 1),
                    operation_type TEXT,
                    metadata TEXT,
                    created_ms INTEGER NOT NULL,
                    expires_ms INTEGER NOT NULL,
                    state INTEGER NOT NULL,
                    closed_ms INTEGER,
                    captured INTEGER,
                    entry_id INTEGER
                ) WITHOUT ROWID, STRICT;
                CREATE INDEX holds_open ON holds(account_id, expires_ms) WHERE state = 0;

                CREATE TABLE hold_grants (
                    hold_id TEXT NOT NULL,
                    grant_id TEXT NOT NULL,
                    amount INTEGER NOT NULL CHECK (amount >= 1),
                    PRIMARY KEY (hold_id, grant_id)
                ) WITHOUT ROWID, STRICT;

                CREATE TABLE grants (
                    grant_id TEXT PRIMARY KEY,
                    account_id INTEGER NOT NULL,
                    amount INTEGER NOT NULL,
                    remaining INTEGER NOT NULL CHECK (remaining >= 0),
                    expires_ms INTEGER NOT NULL,
                    created_ms INTEGER NOT NULL,
                    lapsed_ms INTEGER,
                    lapsed INTEGER NOT NULL DEFAULT 0
                ) WITHOUT ROWID, STRICT;
                CREATE INDEX grants_live ON grants(account_id, expires_ms) WHERE lapsed_ms IS NULL;

                CREATE TABLE pending_sends (
                    seq INTEGER PRIMARY KEY,
                    kind INTEGER NOT NULL,
                    payload TEXT NOT NULL
                ) STRICT;

                CREATE TABLE monitors (
                    account_id INTEGER NOT NULL,
                    monitor_id TEXT NOT NULL,
                    threshold INTEGER NOT NULL CHECK (threshold >= 0),
                    PRIMARY KEY (account_id, monitor_id)
                ) WITHOUT ROWID, STRICT;
                """)
        }
    }
}

extension Schema {
    static let pendingSendsSequenceMigration = "v3-pending-sends-autoincrement"

    /// `pending_sends.seq` becomes AUTOINCREMENT: a plain INTEGER PRIMARY KEY reuses ids once the
    /// table empties, so a worker that remembers "sent through seq N" would skip (or forget
    /// unsent) rows numbered anew below N. With AUTOINCREMENT a seq is never given twice.
    static func registerPendingSendsSequence(_ m: inout DatabaseMigrator) {
        m.registerMigration(pendingSendsSequenceMigration) { db in
            try db.execute(sql: """
                CREATE TABLE pending_sends_v3 (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind INTEGER NOT NULL,
                    payload TEXT NOT NULL
                ) STRICT;
                INSERT INTO pending_sends_v3 (seq, kind, payload) SELECT seq, kind, payload FROM pending_sends ORDER BY seq;
                DROP TABLE pending_sends;
                ALTER TABLE pending_sends_v3 RENAME TO pending_sends;
                """)
        }
    }
}
