//! The one writer thread and its group commit.
//!
//! Appends are queued; the writer takes everything waiting (up to [`MAX_BATCH`]), writes it in one
//! `BEGIN IMMEDIATE` transaction with the chain computed in queue order, updates the signed head in
//! the same transaction, commits (one fsync for the whole batch, `synchronous=FULL`) and only then
//! answers every waiter. If anything fails the transaction rolls back and every waiter of the batch
//! gets the error, so no caller is told a record is durable when it is not; the thread then goes on
//! with the next batch.
//!
//! A *deferred* job (an outcome record: nothing waits on it before forwarding) does not start a
//! commit of its own while the writer is idle: it waits up to [`DEFER_MAX`] for an urgent job (a
//! decision, which gates a call) to share its transaction. One call then costs one commit and one
//! fsync instead of two, and the next call's decision no longer queues behind the previous call's
//! outcome. Deferred records are still committed in queue order, within `DEFER_MAX`, and at once
//! when the store closes.
//!
//! Before appending, the writer checks in the same transaction that the last stored record is the
//! one the signed head names and that the head's signature is valid. Otherwise a deleted tail would
//! be silently re-signed by the next append and `verify` could no longer see it; refusing to write
//! keeps the evidence (and, fail-closed, makes the gateway deny calls until someone looks). Doing it
//! inside the transaction also makes several gateway processes sharing one state directory safe.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::chain::{GENESIS_HASH, head_signature_ok, record_hash, sign_head};
use crate::error::StoreError;
use crate::event::{AuditEntry, AuditEvent};

/// The most records one transaction takes; bounds the time one commit holds the write lock.
pub(crate) const MAX_BATCH: usize = 1024;

/// The longest a deferred record waits for an urgent one to share its commit.
pub(crate) const DEFER_MAX: Duration = Duration::from_millis(5);

/// The result an appender waits for.
pub(crate) type AppendResult = Result<AuditEntry, StoreError>;

/// Where to send the answer to one append.
pub(crate) enum Reply {
    /// An async caller awaiting a oneshot.
    Async(tokio::sync::oneshot::Sender<AppendResult>),
    /// A blocking caller waiting on a std channel (usable outside any async runtime).
    Blocking(Sender<AppendResult>),
}

impl Reply {
    fn send(self, result: AppendResult) {
        // A caller that gave up waiting is not an error of the store; its record is still written.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(result);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// One queued append.
pub(crate) struct Job {
    pub(crate) event: AuditEvent,
    pub(crate) reply: Reply,
    /// Nothing waits on this record before acting; it may wait for company (see the module).
    pub(crate) deferred: bool,
}

/// The state owned by the writer thread.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    pub(crate) key: SigningKey,
    pub(crate) commits: Arc<AtomicU64>,
    /// The head this writer last committed (seq, hash, signature). When the stored head is still
    /// exactly that, its signature is ours and need not be verified again (an Ed25519 verify per
    /// batch was the largest CPU cost of a decision); any other head is verified in full.
    pub(crate) last_head: Option<(u64, String, String)>,
}

impl Writer {
    /// Serves batches until every sender is gone.
    pub(crate) fn run(mut self, jobs: Receiver<Job>) {
        let mut events = Vec::new();
        let mut replies = Vec::new();
        // When the oldest waiting deferred job was queued.
        let mut deferred_since: Option<Instant> = None;
        let mut open = true;
        while open || !events.is_empty() {
            let next = match deferred_since {
                None => jobs.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(since) => {
                    jobs.recv_timeout((since + DEFER_MAX).saturating_duration_since(Instant::now()))
                }
            };
            let mut urgent = false;
            match next {
                Ok(job) => {
                    urgent |= !job.deferred;
                    events.push(job.event);
                    replies.push(job.reply);
                }
                Err(RecvTimeoutError::Timeout) => urgent = true,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    urgent = true;
                }
            }
            while events.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => {
                        urgent |= !job.deferred;
                        events.push(job.event);
                        replies.push(job.reply);
                    }
                    Err(_) => break,
                }
            }
            if !urgent && events.len() < MAX_BATCH {
                deferred_since.get_or_insert_with(Instant::now);
                continue;
            }
            deferred_since = None;
            if events.is_empty() {
                continue;
            }
            let batch = std::mem::take(&mut events);
            match self.write_batch(batch) {
                Ok(entries) => {
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    // Equal lengths by construction; a reply left over would be dropped, and its
                    // caller would see an error, never a false success.
                    for (reply, entry) in replies.drain(..).zip(entries) {
                        reply.send(Ok(entry));
                    }
                }
                Err(e) => {
                    for reply in replies.drain(..) {
                        reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

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

/// The current time, RFC 3339 in UTC with microseconds (`2026-01-02T03:04:05.678901Z`).
fn now_rfc3339() -> String {
    format!("{:.6}", jiff::Timestamp::now())
}
