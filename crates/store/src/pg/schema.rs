//! The PostgreSQL schema and its migrations.
//!
//! Like the SQLite schema (`sqlite/schema.rs`): `portcullis_schema` holds the version the database
//! is at, `MIGRATIONS[i]` takes it from version `i` to `i + 1`, a new table is a new entry at the
//! end, and a database at a newer version than this build knows is refused. Several instances
//! starting at once migrate one after the other: the migration runs under a transaction-scoped
//! advisory lock.

use postgres::Client;

use crate::error::StoreError;

/// Advisory lock keys (arbitrary, fixed): one for migrations, one that serializes audit appends.
pub(crate) const MIGRATION_LOCK: i64 = 0x706f_7274_0001;
/// See [`MIGRATION_LOCK`].
pub(crate) const AUDIT_LOCK: i64 = 0x706f_7274_0002;

/// Version 1: everything the SQLite store has at its version 3, in one step. Times are Unix
/// milliseconds. `counters.win` is SQLite's `window` (a reserved word here).
const V1: &str = "
CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    body      TEXT NOT NULL -- the event JSON, exactly as hashed
);
CREATE TABLE chain_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL,
    signature TEXT NOT NULL, -- Ed25519 over \"portcullis-audit-head\\n{seq}\\n{hash}\", hex
    signer    TEXT NOT NULL  -- the public key (hex) that made the signature
);
-- Every gateway key that has signed (or may sign) the head; see docs/decisions/0008.
CREATE TABLE audit_signers (
    public_key TEXT PRIMARY KEY,
    added_at   BIGINT NOT NULL,
    note       TEXT NOT NULL
);
CREATE TABLE approvals (
    id                TEXT PRIMARY KEY,
    state             TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'used')),
    digest            TEXT NOT NULL,
    session           TEXT NOT NULL,
    principal         TEXT,
    server            TEXT NOT NULL,
    tool              TEXT NOT NULL,
    method            TEXT NOT NULL,
    arguments         TEXT NOT NULL,
    effect            TEXT NOT NULL,
    rule              TEXT NOT NULL,
    reason            TEXT NOT NULL,
    mode              TEXT NOT NULL,
    separate_approver BOOLEAN NOT NULL,
    decision_id       TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    resolved_at       BIGINT,
    used_at           BIGINT,
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
    receipt     TEXT NOT NULL
);
CREATE FUNCTION portcullis_immutable() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'approval receipts are immutable'; END $$;
CREATE TRIGGER approval_receipts_immutable BEFORE UPDATE OR DELETE ON approval_receipts
FOR EACH ROW EXECUTE FUNCTION portcullis_immutable();
CREATE TABLE leases (
    id          TEXT PRIMARY KEY,
    session     TEXT,
    principal   TEXT,
    server      TEXT,
    tool        TEXT NOT NULL,
    args_under  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    max_calls   BIGINT NOT NULL,
    used_calls  BIGINT NOT NULL DEFAULT 0,
    revoked_at  BIGINT,
    granted_by  TEXT NOT NULL,
    note        TEXT,
    CHECK (session IS NOT NULL OR principal IS NOT NULL)
);
CREATE TABLE gateway_sessions (
    id           TEXT PRIMARY KEY,
    pid          BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    ended_at     BIGINT
);
CREATE TABLE counters (
    key  TEXT NOT NULL,
    win  BIGINT NOT NULL,
    used BIGINT NOT NULL CHECK (used >= 0),
    PRIMARY KEY (key, win)
);
CREATE TABLE pins (
    server       TEXT NOT NULL,
    tool         TEXT NOT NULL,
    approved_sha TEXT,
    seen_sha     TEXT NOT NULL,
    seen_def     TEXT NOT NULL,
    status       TEXT NOT NULL,
    finding      TEXT,
    updated      TEXT NOT NULL,
    PRIMARY KEY (server, tool)
);
";

/// Every migration in order; the schema version of this build is their count.
const MIGRATIONS: &[&str] = &[V1];

/// The newest schema version this build knows.
pub(crate) fn latest_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// The version the database is at (0 when it has never been migrated).
pub(crate) fn current_version(client: &mut Client, target: &str) -> Result<i64, StoreError> {
    let err = |during| move |e| StoreError::postgres(target, during, e);
    let exists: bool = client
        .query_one("SELECT to_regclass('portcullis_schema') IS NOT NULL", &[])
        .map_err(err("looking for the schema version"))?
        .try_get(0)
        .map_err(err("looking for the schema version"))?;
    if !exists {
        return Ok(0);
    }
    let version: Option<i64> = client
        .query_one("SELECT max(version) FROM portcullis_schema", &[])
        .map_err(err("reading the schema version"))?
        .try_get(0)
        .map_err(err("reading the schema version"))?;
    Ok(version.unwrap_or(0))
}

/// Brings the database up to [`latest_version`] in one transaction; returns the versions before
/// and after.
pub(crate) fn migrate(client: &mut Client, target: &str) -> Result<(i64, i64), StoreError> {
    let err = |during| move |e| StoreError::postgres(target, during, e);
    let mut tx = client
        .transaction()
        .map_err(err("starting the schema migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(err("waiting for another instance's migration"))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS portcullis_schema (version BIGINT NOT NULL)")
        .map_err(err("creating the schema version table"))?;
    let found: Option<i64> = tx
        .query_one("SELECT max(version) FROM portcullis_schema", &[])
        .map_err(err("reading the schema version"))?
        .try_get(0)
        .map_err(err("reading the schema version"))?;
    let found = found.unwrap_or(0);
    let supported = latest_version();
    if found > supported {
        return Err(StoreError::DatabaseSchemaTooNew {
            target: target.to_owned(),
            found,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let to = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
        if to > found {
            tx.batch_execute(sql).map_err(err("migrating the schema"))?;
        }
    }
    if found < supported {
        tx.execute("DELETE FROM portcullis_schema", &[])
            .and_then(|_| {
                tx.execute(
                    "INSERT INTO portcullis_schema (version) VALUES ($1)",
                    &[&supported],
                )
            })
            .map_err(err("recording the schema version"))?;
    }
    tx.commit()
        .map_err(err("committing the schema migration"))?;
    Ok((found, supported))
}
