//! `portcullis store copy`: moves the embedded SQLite state of one gateway into an empty
//! PostgreSQL store, for a team growing from one machine to several instances.
//!
//! Everything is copied as stored — the audit records byte for byte (so every hash still
//! holds), the signed head with its signature, approvals, receipts, leases, sessions, counters
//! and pins — in one PostgreSQL transaction. The source's signing key is registered as a signer,
//! so the copied head verifies. The source is read and verified in one snapshot (a gateway may
//! still be writing it), and the copy is verified inside its transaction before it commits; a
//! broken source or copy, or a destination that already holds state, is refused and leaves the
//! destination as it was.

use std::path::Path;

use postgres::types::ToSql;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;
use crate::pg::schema;
use crate::sqlite::{DB_FILE, SqliteStore};

/// What was copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Audit records.
    pub audit: u64,
    /// Approvals.
    pub approvals: u64,
    /// Approval receipts.
    pub receipts: u64,
    /// Leases.
    pub leases: u64,
    /// Gateway sessions.
    pub sessions: u64,
    /// Rate-limit counter windows.
    pub counters: u64,
    /// Tool pins.
    pub pins: u64,
    /// Where the copy went (never the password).
    pub target: String,
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Bool,
}

/// One table: its name in SQLite, its name in PostgreSQL, and `(sqlite column, pg column, kind)`.
struct Table {
    sqlite: &'static str,
    pg: &'static str,
    columns: &'static [(&'static str, &'static str, Kind)],
}

use Kind::{Bool, Int, Text};

const TABLES: &[Table] = &[
    Table {
        sqlite: "audit",
        pg: "audit",
        columns: &[
            ("seq", "seq", Int),
            ("prev_hash", "prev_hash", Text),
            ("hash", "hash", Text),
            ("body", "body", Text),
        ],
    },
    Table {
        sqlite: "approvals",
        pg: "approvals",
        columns: &[
            ("id", "id", Text),
            ("state", "state", Text),
            ("digest", "digest", Text),
            ("session", "session", Text),
            ("principal", "principal", Text),
            ("server", "server", Text),
            ("tool", "tool", Text),
            ("method", "method", Text),
            ("arguments", "arguments", Text),
            ("effect", "effect", Text),
            ("rule", "rule", Text),
            ("reason", "reason", Text),
            ("mode", "mode", Text),
            ("separate_approver", "separate_approver", Bool),
            ("decision_id", "decision_id", Text),
            ("created_at", "created_at", Int),
            ("expires_at", "expires_at", Int),
            ("resolved_at", "resolved_at", Int),
            ("used_at", "used_at", Int),
            ("approver", "approver", Text),
            ("channel", "channel", Text),
            ("note", "note", Text),
            ("receipt_id", "receipt_id", Text),
        ],
    },
    Table {
        sqlite: "approval_receipts",
        pg: "approval_receipts",
        columns: &[
            ("id", "id", Text),
            ("approval_id", "approval_id", Text),
            ("receipt", "receipt", Text),
        ],
    },
    Table {
        sqlite: "leases",
        pg: "leases",
        columns: &[
            ("id", "id", Text),
            ("session", "session", Text),
            ("principal", "principal", Text),
            ("server", "server", Text),
            ("tool", "tool", Text),
            ("args_under", "args_under", Text),
            ("created_at", "created_at", Int),
            ("expires_at", "expires_at", Int),
            ("max_calls", "max_calls", Int),
            ("used_calls", "used_calls", Int),
            ("revoked_at", "revoked_at", Int),
            ("granted_by", "granted_by", Text),
            ("note", "note", Text),
        ],
    },
    Table {
        sqlite: "gateway_sessions",
        pg: "gateway_sessions",
        columns: &[
            ("id", "id", Text),
            ("pid", "pid", Int),
            ("started_at", "started_at", Int),
            ("heartbeat_at", "heartbeat_at", Int),
            ("ended_at", "ended_at", Int),
        ],
    },
    Table {
        sqlite: "counters",
        pg: "counters",
        columns: &[
            ("key", "key", Text),
            ("window", "win", Int),
            ("used", "used", Int),
        ],
    },
    Table {
        sqlite: "pins",
        pg: "pins",
        columns: &[
            ("server", "server", Text),
            ("tool", "tool", Text),
            ("approved_sha", "approved_sha", Text),
            ("seen_sha", "seen_sha", Text),
            ("seen_def", "seen_def", Text),
            ("status", "status", Text),
            ("finding", "finding", Text),
            ("updated", "updated", Text),
        ],
    },
];

/// One value, typed for its PostgreSQL column.
enum Param {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
}

impl Param {
    fn new(kind: Kind, value: SqlValue) -> Result<Param, String> {
        Ok(match (kind, value) {
            (Kind::Text, SqlValue::Null) => Param::Text(None),
            (Kind::Text, SqlValue::Text(t)) => Param::Text(Some(t)),
            (Kind::Int, SqlValue::Null) => Param::Int(None),
            (Kind::Int, SqlValue::Integer(i)) => Param::Int(Some(i)),
            (Kind::Bool, SqlValue::Null) => Param::Bool(None),
            (Kind::Bool, SqlValue::Integer(i)) => Param::Bool(Some(i != 0)),
            (_, other) => return Err(format!("unexpected value {other:?}")),
        })
    }

    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(v) => v,
            Param::Int(v) => v,
            Param::Bool(v) => v,
        }
    }
}

fn read_table(
    conn: &Connection,
    path: &Path,
    table: &Table,
) -> Result<Vec<Vec<Param>>, StoreError> {
    let err = |e| StoreError::sqlite(path, "reading the state to copy", e);
    let names: Vec<&str> = table.columns.iter().map(|(s, _, _)| *s).collect();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {} FROM {} ORDER BY rowid",
            names.join(", "),
            table.sqlite
        ))
        .map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(err)? {
        let mut params = Vec::with_capacity(table.columns.len());
        for (i, (name, _, kind)) in table.columns.iter().enumerate() {
            let value: SqlValue = row.get(i).map_err(err)?;
            params.push(
                Param::new(*kind, value).map_err(|what| StoreError::CorruptRecord {
                    seq: 0,
                    what: format!("{}.{name}: {what}", table.sqlite),
                })?,
            );
        }
        out.push(params);
    }
    Ok(out)
}

/// Copies the SQLite state in `state_dir` into the empty PostgreSQL store at `url`.
pub fn copy_sqlite_to_postgres(state_dir: &Path, url: &str) -> Result<CopyReport, StoreError> {
    let db = state_dir.join(DB_FILE);
    if !db.is_file() {
        return Err(StoreError::CopyRefused {
            what: format!("there is no `{DB_FILE}` in `{}`", state_dir.display()),
        });
    }
    // The source's key signed its head; it is registered as a signer of the copy.
    let source = SqliteStore::open(state_dir)?;
    let signer = source.public_key_hex();
    let key = source.verifying_key();
    drop(source);
    // The source must verify: a copy must not launder a tampered chain into a fresh database.
    // Everything copied is read in one snapshot, verified in that same snapshot: a gateway
    // still appending cannot make the copied head point past the copied records.
    let mut conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::sqlite(&db, "opening the state to copy", e))?;
    let snapshot = conn
        .transaction()
        .map_err(|e| StoreError::sqlite(&db, "starting a read transaction", e))?;
    let read = crate::sqlite::verify_in(&snapshot, &db, &key)?;
    if !read.ok {
        return Err(StoreError::ChainTampered {
            path: db.clone(),
            what: read.problem.map_or_else(
                || "verification failed".to_owned(),
                |p| format!("record {}: {}", p.seq, p.what),
            ),
        });
    }
    let mut tables = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        tables.push(read_table(&snapshot, &db, table)?);
    }
    let head: Option<(i64, String, String)> = snapshot
        .query_row(
            "SELECT seq, hash, signature FROM chain_head WHERE id = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(StoreError::sqlite(&db, "reading the chain head", e)),
        })?;
    snapshot
        .finish()
        .map_err(|e| StoreError::sqlite(&db, "ending the read transaction", e))?;
    drop(conn);

    let endpoint = crate::pg::parse_url(url)?;
    let mut client = endpoint.connect()?;
    let target = endpoint.target;
    schema::migrate(&mut client, &target)?;
    let err = |during| {
        let target = target.clone();
        move |e| StoreError::postgres(&target, during, e)
    };
    let mut tx = client.transaction().map_err(err("starting the copy"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::AUDIT_LOCK])
        .map_err(err("waiting for the audit chain"))?;
    let occupied: i64 = tx
        .query_one(
            "SELECT (SELECT count(*) FROM audit) + (SELECT count(*) FROM approvals)
                  + (SELECT count(*) FROM leases) + (SELECT count(*) FROM pins)
                  + (SELECT count(*) FROM chain_head)",
            &[],
        )
        .and_then(|row| row.try_get(0))
        .map_err(err("checking the destination is empty"))?;
    if occupied > 0 {
        return Err(StoreError::CopyRefused {
            what: format!(
                "`{target}` already holds gateway state (audit records, approvals, leases or pins)"
            ),
        });
    }
    let mut counts = [0_u64; 7];
    for ((table, rows), count) in TABLES.iter().zip(&tables).zip(counts.iter_mut()) {
        let names: Vec<&str> = table.columns.iter().map(|(_, p, _)| *p).collect();
        let places: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {} ({}) VALUES ({})",
                table.pg,
                names.join(", "),
                places.join(", ")
            ))
            .map_err(err("preparing the copy"))?;
        for row in rows {
            let params: Vec<&(dyn ToSql + Sync)> = row.iter().map(Param::as_sql).collect();
            tx.execute(&insert, &params).map_err(err("copying a row"))?;
            *count = count.saturating_add(1);
        }
    }
    crate::pg::register_signer(
        &mut tx,
        &target,
        &signer,
        "copied from a SQLite state directory",
    )?;
    if let Some((seq, hash, signature)) = head {
        tx.execute(
            "INSERT INTO chain_head (id, seq, hash, signature, signer) VALUES (1, $1, $2, $3, $4)",
            &[&seq, &hash, &signature, &signer],
        )
        .map_err(err("copying the signed head"))?;
    }
    // The copy must verify where it landed, before it is committed: a copy that does not is
    // rolled back and leaves the destination empty.
    let verified = crate::pg::verify_in_transaction(&mut tx, &target, key, None)?;
    if !verified.ok || verified.records != counts[0] {
        return Err(StoreError::ChainTampered {
            path: target.clone().into(),
            what: format!(
                "the copied chain does not verify ({} records): {}",
                verified.records,
                verified
                    .problem
                    .map_or_else(String::new, |p| format!("record {}: {}", p.seq, p.what))
            ),
        });
    }
    tx.commit().map_err(err("committing the copy"))?;
    let [audit, approvals, receipts, leases, sessions, counters, pins] = counts;
    Ok(CopyReport {
        audit,
        approvals,
        receipts,
        leases,
        sessions,
        counters,
        pins,
        target,
    })
}
