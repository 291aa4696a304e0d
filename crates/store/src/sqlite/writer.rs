//! The SQLite batch writer behind the append queue (`queue.rs`) and its group commit.
//!
//! The writer thread takes everything waiting (up to `MAX_BATCH`), writes it in one
//! `BEGIN IMMEDIATE` transaction with the chain computed in queue order, updates the signed head in
//! the same transaction, commits (one fsync for the whole batch, `synchronous=FULL`) and only then
//! answers every waiter. If anything fails the transaction rolls back and every waiter of the batch
//! gets the error, so no caller is told a record is durable when it is not; the thread then goes on
//! with the next batch.
//!
//! Before appending, the writer checks in the same transaction that the last stored record is the
//! one the signed head names and that the head's signature is valid. Otherwise a deleted tail would
//! be silently re-signed by the next append and `verify` could no longer see it; refusing to write
//! keeps the evidence (and, fail-closed, makes the gateway deny calls until someone looks). Doing it
//! inside the transaction also makes several gateway processes sharing one state directory safe.

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::chain::{GENESIS_HASH, head_signature_ok, record_hash, sign_head};
use crate::error::StoreError;
use crate::event::{AuditEntry, AuditEvent};
use crate::queue::{BatchWriter, now_rfc3339};

/// The state owned by the writer thread.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    pub(crate) key: SigningKey,
    /// The head this writer last committed (seq, hash, signature). When the stored head is still
    /// exactly that, its signature is ours and need not be verified again (an Ed25519 verify per
    /// batch was the largest CPU cost of a decision); any other head is verified in full.
    pub(crate) last_head: Option<(u64, String, String)>,
}

impl BatchWriter for Writer {
    fn write_batch(&mut self, events: Vec<AuditEvent>) -> Result<Vec<AuditEntry>, StoreError> {
        let path = self.path.as_path();
        let err = |during| move |e| StoreError::sqlite(path, during, e);
        if !self.conn.is_autocommit() {
            // A rollback that failed earlier left a transaction open; end it before starting anew.
            self.conn
                .execute_batch("ROLLBACK")
                .map_err(err("rolling back a failed audit batch"))?;
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("starting an audit transaction"))?;
        let (mut seq, mut prev) = position(&tx, path, &self.key, self.last_head.as_ref())?;
        let mut entries = Vec::with_capacity(events.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO audit (seq, prev_hash, hash, body) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err("preparing the audit insert"))?;
            for mut event in events {
                event.time = now_rfc3339();
                seq = seq.checked_add(1).ok_or(StoreError::Bug {
                    what: "the audit sequence number overflowed",
                })?;
                let hash = record_hash(seq, &prev, &event)?;
                let body = serde_json::to_string(&event).map_err(|_| StoreError::Bug {
                    what: "an audit event could not be serialized",
                })?;
                insert
                    .execute(params![to_sql_seq(seq)?, prev, hash, body])
                    .map_err(err("writing an audit record"))?;
                entries.push(AuditEntry {
                    seq,
                    prev_hash: std::mem::replace(&mut prev, hash.clone()),
                    hash,
                    event,
                });
            }
        }
        let signature = sign_head(&self.key, seq, &prev);
        // Cached statements (here and in `position`): parsing the SQL text again for every batch
        // showed up in profiles of the writer thread.
        let head_seq = to_sql_seq(seq)?;
        tx.prepare_cached(
            "INSERT INTO chain_head (id, seq, hash, signature) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE
             SET seq = excluded.seq, hash = excluded.hash, signature = excluded.signature",
        )
        .and_then(|mut statement| statement.execute(params![head_seq, prev, signature]))
        .map_err(err("updating the signed chain head"))?;
        tx.commit().map_err(err("committing audit records"))?;
        self.last_head = Some((seq, prev, signature));
        Ok(entries)
    }
}

/// The seq and hash the next record follows, after checking the tail against the signed head.
fn position(
    tx: &Transaction<'_>,
    path: &std::path::Path,
    key: &SigningKey,
    ours: Option<&(u64, String, String)>,
) -> Result<(u64, String), StoreError> {
    let err = |during| move |e| StoreError::sqlite(path, during, e);
    let tampered = |what: String| StoreError::ChainTampered {
        path: path.to_path_buf(),
        what,
    };
    let head: Option<(i64, String, String)> = tx
        .prepare_cached("SELECT seq, hash, signature FROM chain_head WHERE id = 1")
        .and_then(|mut statement| {
            statement
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()
        })
        .map_err(err("reading the chain head"))?;
    let last: Option<(i64, String)> = tx
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .and_then(|mut statement| {
            statement
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(err("reading the last audit record"))?;
    match (head, last) {
        (None, None) => Ok((0, GENESIS_HASH.to_owned())),
        (None, Some(_)) => Err(tampered(
            "there are records but no signed chain head".to_owned(),
        )),
        (Some((seq, hash, signature)), last) => {
            let seq = u64::try_from(seq)
                .map_err(|_| tampered(format!("the chain head has an impossible seq {seq}")))?;
            let written_by_us =
                ours.is_some_and(|(s, h, sig)| *s == seq && *h == hash && *sig == signature);
            if !written_by_us && !head_signature_ok(&key.verifying_key(), seq, &hash, &signature) {
                return Err(tampered(
                    "the chain head's signature is not valid".to_owned(),
                ));
            }
            let (last_seq, last_hash) = last.unwrap_or((0, GENESIS_HASH.to_owned()));
            if u64::try_from(last_seq).ok() != Some(seq) || last_hash != hash {
                return Err(tampered(format!(
                    "the signed head names record {seq}, but the last stored record is {last_seq}"
                )));
            }
            Ok((seq, hash))
        }
    }
}

fn to_sql_seq(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Bug {
        what: "the audit sequence number does not fit SQLite's integer",
    })
}
