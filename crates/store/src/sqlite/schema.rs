//! The SQLite schema and its migrations.
//!
//! `schema_version` holds one row with the version the database is at. `MIGRATIONS[i]` takes a
//! database from version `i` to `i + 1`; a new table (approvals, leases, counters, pins) is a new
//! entry at the end, never an edit of an old one. A database at a version newer than this build
//! knows is refused: this build cannot know what the newer tables mean or which invariants they keep.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::StoreError;

/// Version 1: the audit chain and its signed head.
const V1_AUDIT: &str = "
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    body      TEXT NOT NULL -- the event JSON, exactly as hashed
);
CREATE TABLE chain_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       INTEGER NOT NULL,
    hash      TEXT NOT NULL,
    signature TEXT NOT NULL -- Ed25519 over \"portcullis-audit-head\\n{seq}\\n{hash}\", hex
);
";

/// Version 2 (approvals): pending approvals bound to a call digest, their signed receipts (which
/// triggers make immutable), scope leases, and gateway session liveness.
const V2_APPROVALS: &str = "
CREATE TABLE approvals (
    id                TEXT PRIMARY KEY,
    state             TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'used')),
    digest            TEXT NOT NULL,
    session           TEXT NOT NULL,
    principal         TEXT,
    server            TEXT NOT NULL,
    tool              TEXT NOT NULL,
    method            TEXT NOT NULL,
    arguments         TEXT NOT NULL, -- the exact arguments, for the human (not redacted)
    effect            TEXT NOT NULL,
    rule              TEXT NOT NULL,
    reason            TEXT NOT NULL,
    mode              TEXT NOT NULL,
    separate_approver INTEGER NOT NULL,
    decision_id       TEXT NOT NULL,
    created_at        INTEGER NOT NULL, -- Unix milliseconds, like every time below
    expires_at        INTEGER NOT NULL,
    resolved_at       INTEGER,
    used_at           INTEGER,
    approver          TEXT,
    channel           TEXT,
    note              TEXT,
    receipt_id        TEXT
);
CREATE INDEX approvals_by_call ON approvals (digest, session, state);
CREATE INDEX approvals_by_state ON approvals (state, session);
CREATE TABLE approval_receipts (
    id          TEXT PRIMARY KEY,
    approval_id TEXT NOT NULL UNIQUE,
    receipt     TEXT NOT NULL -- the signed receipt JSON
);
CREATE TRIGGER approval_receipts_no_update BEFORE UPDATE ON approval_receipts
BEGIN SELECT RAISE(ABORT, 'approval receipts are immutable'); END;
CREATE TRIGGER approval_receipts_no_delete BEFORE DELETE ON approval_receipts
BEGIN SELECT RAISE(ABORT, 'approval receipts are immutable'); END;
CREATE TABLE leases (
    id          TEXT PRIMARY KEY,
    session     TEXT,
    principal   TEXT,
    server      TEXT,
    tool        TEXT NOT NULL,
    args_under  TEXT NOT NULL, -- JSON [[name, directory], ...]
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    max_calls   INTEGER NOT NULL,
    used_calls  INTEGER NOT NULL DEFAULT 0,
    revoked_at  INTEGER,
    granted_by  TEXT NOT NULL,
    note        TEXT,
    CHECK (session IS NOT NULL OR principal IS NOT NULL)
);
CREATE TABLE gateway_sessions (
    id           TEXT PRIMARY KEY,
    pid          INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    ended_at     INTEGER
);
";

/// Version 3 (vetting and flow control): rate-limit counters (fixed windows, see `counters.rs`) and tool pins
/// (see `pins.rs`).
const V3_VETTING: &str = "
CREATE TABLE counters (
    key    TEXT NOT NULL,
    window INTEGER NOT NULL, -- floor(unix seconds / per)
    used   INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (key, window)
);
CREATE TABLE pins (
    server       TEXT NOT NULL,
    tool         TEXT NOT NULL,
    approved_sha TEXT,          -- the fingerprint a human (or first sight under tofu) approved
    seen_sha     TEXT NOT NULL, -- the fingerprint last listed by the server
    seen_def     TEXT NOT NULL, -- that definition, canonical JSON, for review
    status       TEXT NOT NULL, -- approved | pending | quarantined
    finding      TEXT,          -- why a tool is pending or quarantined
    updated      TEXT NOT NULL,
    PRIMARY KEY (server, tool)
);
";

/// Every migration in order; the schema version of this build is their count.
const MIGRATIONS: &[&str] = &[V1_AUDIT, V2_APPROVALS, V3_VETTING];

/// The newest schema version this build knows.
pub(crate) fn latest_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Brings the database up to [`latest_version`], in one transaction.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = |during| move |e| StoreError::sqlite(path, during, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err("starting the schema migration"))?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")
        .map_err(err("creating the schema_version table"))?;
    let found: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_version", [], |row| {
            row.get(0)
        })
        .optional()
        .map_err(err("reading the schema version"))?
        .flatten();
    let found = found.unwrap_or(0);
    let supported = latest_version();
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let to = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
        if to <= found {
            continue;
        }
        tx.execute_batch(sql).map_err(err("migrating the schema"))?;
    }
    if found < supported {
        tx.execute("DELETE FROM schema_version", [])
            .and_then(|_| {
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [supported],
                )
            })
            .map_err(err("recording the schema version"))?;
    }
    tx.commit().map_err(err("committing the schema migration"))
}
