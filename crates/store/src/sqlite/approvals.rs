//! Approvals, receipts, scope leases and gateway session liveness on SQLite.
//!
//! These live in the same `state.db` as the audit chain but go through their own connection, so
//! the CLI (`portcullis approvals`, `portcullis lease`), the admin API and the gateway can all
//! resolve and consume them; every change is one `BEGIN IMMEDIATE` transaction, so "approve" and
//! "use once" are atomic across processes. Times are Unix milliseconds in the database.
//!
//! Liveness: a gateway session writes a heartbeat every few seconds. An approval whose session
//! ended, or whose heartbeat is older than [`SESSION_STALE_MS`] (the gateway crashed or was
//! killed), is expired: a held call dies with its gateway and a new gateway has a new session id,
//! so nothing approved later can ever let that call through.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::approval::{
    APPROVAL_COLUMNS, Approval, ApprovalState, LEASE_COLUMNS, Lease, NewApproval, NewLease,
    Receipt, Resolution, ResolveError, approval_from_row, lease_from_row, to_i64,
};
use crate::error::StoreError;
use crate::key;

/// A session whose heartbeat is older than this is treated as gone.
pub const SESSION_STALE_MS: i64 = 15_000;

/// What [`ApprovalStore::create_pending`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new pending approval.
    New(Approval),
    /// The same call in the same session already has a live approval (pending or approved and
    /// unused); no new one was made.
    Existing(Approval),
    /// The session already has `cap` pending approvals.
    CapReached {
        /// The cap.
        cap: usize,
    },
}

/// What a held call finds when it looks at its approval.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken {
    /// Still pending.
    Pending,
    /// Approved, and now marked used: the call may go through this once.
    Approved(Approval),
    /// Denied, expired or already used.
    Refused(Approval),
}

/// Approvals, receipts and leases on the state directory's SQLite database.
pub struct ApprovalStore {
    path: PathBuf,
    key: SigningKey,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for ApprovalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    crate::clock::now_ms()
}

impl ApprovalStore {
    /// Opens the approvals of the store in `state_dir`, creating the directory, key and database
    /// as [`SqliteStore::open`](crate::SqliteStore::open) does, and migrating the schema.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        super::create_state_dir(state_dir)?;
        let key = key::load_or_create(state_dir)?;
        let path = state_dir.join(super::DB_FILE);
        super::create_private_db_file(&path)?;
        let mut conn = super::open_writer(&path)?;
        super::schema::migrate(&mut conn, &path)?;
        Ok(ApprovalStore {
            path,
            key,
            conn: Mutex::new(conn),
        })
    }

    /// The public key that verifies receipts.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn err(&self, during: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| StoreError::sqlite(&self.path, during, e)
    }

    /// Marks sessions ended whose gateway process is gone from this machine (`/proc` on Linux),
    /// so a held call of a killed gateway expires at once rather than when its heartbeat is
    /// stale. A reused pid only delays this until the heartbeat goes stale.
    fn reap_dead_sessions(&self, conn: &Connection, now: i64) -> Result<(), StoreError> {
        if !Path::new("/proc/self").exists() {
            return Ok(());
        }
        let mut stmt = conn
            .prepare("SELECT id, pid FROM gateway_sessions WHERE ended_at IS NULL")
            .map_err(self.err("reading gateway sessions"))?;
        let sessions = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(self.err("reading gateway sessions"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err("reading gateway sessions"))?;
        for (id, pid) in sessions {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                conn.execute(
                    "UPDATE gateway_sessions SET ended_at = ?2 WHERE id = ?1",
                    params![id, now],
                )
                .map_err(self.err("ending a gone session"))?;
            }
        }
        Ok(())
    }

    /// Marks pending approvals expired whose ttl ran out or whose session is gone.
    fn expire_stale(&self, conn: &Connection, now: i64) -> Result<(), StoreError> {
        conn.execute(
            "UPDATE approvals SET state = 'expired', resolved_at = ?1, note = 'its time to live ran out'
             WHERE state IN ('pending', 'approved') AND expires_at <= ?1",
            params![now],
        )
        .map_err(self.err("expiring approvals"))?;
        self.reap_dead_sessions(conn, now)?;
        conn.execute(
            "UPDATE approvals SET state = 'expired', resolved_at = ?1,
                 note = 'its gateway session ended (the gateway stopped or restarted)'
             WHERE state IN ('pending', 'approved') AND session NOT IN (
                 SELECT id FROM gateway_sessions WHERE ended_at IS NULL AND heartbeat_at > ?2)",
            params![now, now.saturating_sub(SESSION_STALE_MS)],
        )
        .map_err(self.err("expiring approvals of ended sessions"))?;
        Ok(())
    }

    /// Records that gateway session `session` is alive (call every few seconds).
    pub fn heartbeat(&self, session: &str) -> Result<(), StoreError> {
        let now = now_ms();
        self.lock()
            .execute(
                "INSERT INTO gateway_sessions (id, pid, started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                params![session, std::process::id(), now],
            )
            .map_err(self.err("recording the session heartbeat"))?;
        Ok(())
    }

    /// Records that `session` ended; its open approvals expire.
    pub fn end_session(&self, session: &str) -> Result<(), StoreError> {
        let now = now_ms();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("starting a transaction"))?;
        tx.execute(
            "UPDATE gateway_sessions SET ended_at = ?2 WHERE id = ?1",
            params![session, now],
        )
        .map_err(self.err("ending the session"))?;
        self.expire_stale(&tx, now)?;
        tx.commit().map_err(self.err("committing"))
    }

    /// Creates a pending approval for `new`, unless the same call of the same session already has
    /// a live one, or the session has `cap` pending approvals.
    pub fn create_pending(&self, new: &NewApproval, cap: usize) -> Result<Created, StoreError> {
        let now = now_ms();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("starting a transaction"))?;
        self.expire_stale(&tx, now)?;
        let existing = tx
            .query_row(
                &format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE digest = ?1 AND session = ?2
                     AND state IN ('pending', 'approved') ORDER BY created_at DESC LIMIT 1"
                ),
                params![new.digest, new.session],
                |row| approval_from_row(row),
            )
            .optional()
            .map_err(self.err("looking for an approval of the same call"))?;
        if let Some(existing) = existing {
            return Ok(Created::Existing(existing));
        }
        let pending: i64 = tx
            .query_row(
                "SELECT count(*) FROM approvals WHERE session = ?1 AND state = 'pending'",
                params![new.session],
                |row| row.get(0),
            )
            .map_err(self.err("counting pending approvals"))?;
        if usize::try_from(pending).unwrap_or(usize::MAX) >= cap {
            return Ok(Created::CapReached { cap });
        }
        let arguments = serde_json::to_string(&new.arguments).map_err(|_| StoreError::Bug {
            what: "arguments could not be serialized",
        })?;
        let expires = now.saturating_add(to_i64(new.ttl_ms));
        tx.execute(
            "INSERT INTO approvals (id, state, digest, session, principal, server, tool, method,
                 arguments, effect, rule, reason, mode, separate_approver, decision_id, created_at,
                 expires_at)
             VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                new.id,
                new.digest,
                new.session,
                new.principal,
                new.server,
                new.tool,
                new.method,
                arguments,
                new.effect,
                new.rule,
                new.reason,
                new.mode,
                new.separate_approver,
                new.decision_id,
                now,
                expires
            ],
        )
        .map_err(self.err("creating an approval"))?;
        let created = tx
            .query_row(
                &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"),
                params![new.id],
                |row| approval_from_row(row),
            )
            .map_err(self.err("reading the new approval"))?;
        tx.commit().map_err(self.err("committing a new approval"))?;
        Ok(Created::New(created))
    }

    /// Uses the approved, unexpired, unused approval of this exact call, if there is one: it is
    /// marked `used` in the same transaction, so it lets exactly one call through.
    pub fn consume(&self, digest: &str, session: &str) -> Result<Option<Approval>, StoreError> {
        let now = now_ms();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("starting a transaction"))?;
        self.expire_stale(&tx, now)?;
        let found = tx
            .query_row(
                &format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE digest = ?1 AND session = ?2
                     AND state = 'approved' AND expires_at > ?3 LIMIT 1"
                ),
                params![digest, session, now],
                |row| approval_from_row(row),
            )
            .optional()
            .map_err(self.err("looking for an approval"))?;
        let Some(mut approval) = found else {
            return Ok(None);
        };
        let changed = tx
            .execute(
                "UPDATE approvals SET state = 'used', used_at = ?2 WHERE id = ?1 AND state = 'approved'",
                params![approval.id, now],
            )
            .map_err(self.err("using an approval"))?;
        if changed != 1 {
            return Ok(None);
        }
        tx.commit()
            .map_err(self.err("committing the use of an approval"))?;
        approval.state = ApprovalState::Used;
        Ok(Some(approval))
    }

    /// For a held call: takes approval `id` if it was approved (marking it used), reports a final
    /// refusal, or says it is still pending.
    pub fn take(&self, id: &str) -> Result<Taken, StoreError> {
        let now = now_ms();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("starting a transaction"))?;
        self.expire_stale(&tx, now)?;
        let found = tx
            .query_row(
                &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"),
                params![id],
                |row| approval_from_row(row),
            )
            .optional()
            .map_err(self.err("reading an approval"))?;
        let Some(mut approval) = found else {
            return Err(StoreError::Bug {
                what: "a held call's approval is missing from the store",
            });
        };
        let taken = match approval.state {
            ApprovalState::Pending => Taken::Pending,
            ApprovalState::Approved => {
                tx.execute(
                    "UPDATE approvals SET state = 'used', used_at = ?2 WHERE id = ?1 AND state = 'approved'",
                    params![id, now],
                )
                .map_err(self.err("using an approval"))?;
                approval.state = ApprovalState::Used;
                Taken::Approved(approval)
            }
            _ => Taken::Refused(approval),
        };
        tx.commit().map_err(self.err("committing"))?;
        Ok(taken)
    }

    /// Expires approval `id` if it is still pending or approved and unused (a held call timed out:
    /// an approval that comes later must not turn into a retry-style pass for the same call).
    pub fn expire(&self, id: &str, why: &str) -> Result<(), StoreError> {
        let now = now_ms();
        self.lock()
            .execute(
                "UPDATE approvals SET state = 'expired', resolved_at = ?2, note = ?3
                 WHERE id = ?1 AND state IN ('pending', 'approved')",
                params![id, now, why],
            )
            .map_err(self.err("expiring an approval"))?;
        Ok(())
    }

    /// Resolves pending approval `id` and writes its signed receipt, in one transaction.
    pub fn resolve(&self, id: &str, resolution: &Resolution) -> Result<Receipt, ResolveError> {
        let now = now_ms();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("starting a transaction"))?;
        self.expire_stale(&tx, now)?;
        let approval = tx
            .query_row(
                &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"),
                params![id],
                |row| approval_from_row(row),
            )
            .optional()
            .map_err(self.err("reading an approval"))?
            .ok_or_else(|| ResolveError::NotFound(id.to_owned()))?;
        match approval.state {
            ApprovalState::Pending => {}
            ApprovalState::Expired => {
                // Commit the expiry found just now, then refuse.
                tx.commit().map_err(self.err("committing"))?;
                return Err(ResolveError::Expired {
                    id: id.to_owned(),
                    why: approval.note.unwrap_or_else(|| "it expired".to_owned()),
                });
            }
            state => {
                return Err(ResolveError::NotPending {
                    id: id.to_owned(),
                    state: state.as_str(),
                });
            }
        }
        crate::approval::check_separation(&approval, resolution)?;
        let receipt = crate::approval::signed_receipt(&approval, resolution, now, &self.key)?;
        let decision = receipt.body.decision.clone();
        let json = serde_json::to_string(&receipt).map_err(|_| StoreError::Bug {
            what: "a receipt could not be serialized",
        })?;
        tx.execute(
            "INSERT INTO approval_receipts (id, approval_id, receipt) VALUES (?1, ?2, ?3)",
            params![receipt.body.id, approval.id, json],
        )
        .map_err(self.err("writing a receipt"))?;
        let changed = tx
            .execute(
                "UPDATE approvals SET state = ?2, resolved_at = ?3, approver = ?4, channel = ?5,
                     note = ?6, receipt_id = ?7
                 WHERE id = ?1 AND state = 'pending'",
                params![
                    id,
                    decision,
                    now,
                    resolution.approver,
                    resolution.channel.as_str(),
                    resolution.note,
                    receipt.body.id
                ],
            )
            .map_err(self.err("resolving an approval"))?;
        if changed != 1 {
            return Err(ResolveError::Store(StoreError::Bug {
                what: "a pending approval changed inside its own transaction",
            }));
        }
        tx.commit().map_err(self.err("committing a resolution"))?;
        Ok(receipt)
    }

    /// Approvals, newest first; only pending ones unless `all`.
    pub fn list(&self, all: bool) -> Result<Vec<Approval>, StoreError> {
        let now = now_ms();
        let conn = self.lock();
        self.expire_stale(&conn, now)?;
        let filter = if all { "" } else { "WHERE state = 'pending'" };
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals {filter} ORDER BY created_at DESC, id LIMIT {}",
                crate::LIST_LIMIT
            ))
            .map_err(self.err("listing approvals"))?;
        let rows = stmt
            .query_map([], |row| approval_from_row(row))
            .map_err(self.err("listing approvals"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("listing approvals"))
    }

    /// How many approvals there are (only pending ones unless `all`); `list` shows at most
    /// [`LIST_LIMIT`](crate::LIST_LIMIT) of them.
    pub fn count(&self, all: bool) -> Result<u64, StoreError> {
        let now = now_ms();
        let conn = self.lock();
        self.expire_stale(&conn, now)?;
        let filter = if all { "" } else { "WHERE state = 'pending'" };
        let n: i64 = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM approvals {filter}"),
                [],
                |row| row.get(0),
            )
            .map_err(self.err("counting approvals"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One approval.
    pub fn show(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let now = now_ms();
        let conn = self.lock();
        self.expire_stale(&conn, now)?;
        conn.query_row(
            &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"),
            params![id],
            |row| approval_from_row(row),
        )
        .optional()
        .map_err(self.err("reading an approval"))
    }

    /// One receipt, by its id or its approval's id.
    pub fn receipt(&self, id: &str) -> Result<Option<Receipt>, StoreError> {
        let text: Option<String> = self
            .lock()
            .query_row(
                "SELECT receipt FROM approval_receipts WHERE id = ?1 OR approval_id = ?1 LIMIT 1",
                params![id],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.err("reading a receipt"))?;
        match text {
            None => Ok(None),
            Some(text) => {
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| StoreError::CorruptRecord {
                        seq: 0,
                        what: format!("receipt `{id}` does not parse: {e}"),
                    })
            }
        }
    }

    /// Grants a lease.
    pub fn grant_lease(&self, new: &NewLease) -> Result<Lease, StoreError> {
        let now = now_ms();
        let args = serde_json::to_string(&new.args_under).map_err(|_| StoreError::Bug {
            what: "a lease scope could not be serialized",
        })?;
        let conn = self.lock();
        conn.execute(
            "INSERT INTO leases (id, session, principal, server, tool, args_under, created_at,
                 expires_at, max_calls, used_calls, granted_by, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11)",
            params![
                new.id,
                new.session,
                new.principal,
                new.server,
                new.tool,
                args,
                now,
                now.saturating_add(to_i64(new.ttl_ms)),
                to_i64(new.max_calls),
                new.granted_by,
                new.note
            ],
        )
        .map_err(self.err("granting a lease"))?;
        conn.query_row(
            &format!("SELECT {LEASE_COLUMNS} FROM leases WHERE id = ?1"),
            params![new.id],
            |row| lease_from_row(row, now),
        )
        .map_err(self.err("reading the new lease"))
    }

    /// Leases, newest first; only active ones unless `all`.
    pub fn leases(&self, all: bool) -> Result<Vec<Lease>, StoreError> {
        let now = now_ms();
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {LEASE_COLUMNS} FROM leases ORDER BY created_at DESC, id LIMIT 1000"
            ))
            .map_err(self.err("listing leases"))?;
        let rows = stmt
            .query_map([], |row| lease_from_row(row, now))
            .map_err(self.err("listing leases"))?;
        let leases = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err("listing leases"))?;
        Ok(leases.into_iter().filter(|l| all || l.active).collect())
    }

    /// Active leases that could cover a call of `session` / `principal` to `server`.
    pub fn candidate_leases(
        &self,
        session: &str,
        principal: Option<&str>,
        server: &str,
    ) -> Result<Vec<Lease>, StoreError> {
        let now = now_ms();
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {LEASE_COLUMNS} FROM leases
                 WHERE revoked_at IS NULL AND expires_at > ?1 AND used_calls < max_calls
                   AND (session = ?2 OR (principal IS NOT NULL AND principal = ?3))
                   AND (server IS NULL OR server = ?4)
                 ORDER BY created_at, id"
            ))
            .map_err(self.err("finding leases"))?;
        let rows = stmt
            .query_map(params![now, session, principal, server], |row| {
                lease_from_row(row, now)
            })
            .map_err(self.err("finding leases"))?;
        let leases = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err("finding leases"))?;
        Ok(leases.into_iter().filter(|l| l.active).collect())
    }

    /// Counts one use of lease `id`, atomically: `true` only if it was still active and under its
    /// count, in which case the call it covers may go through.
    pub fn use_lease(&self, id: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let changed = self
            .lock()
            .execute(
                "UPDATE leases SET used_calls = used_calls + 1
                 WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2 AND used_calls < max_calls",
                params![id, now],
            )
            .map_err(self.err("using a lease"))?;
        Ok(changed == 1)
    }

    /// Revokes lease `id`; `false` if there is no such active lease.
    pub fn revoke_lease(&self, id: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let changed = self
            .lock()
            .execute(
                "UPDATE leases SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )
            .map_err(self.err("revoking a lease"))?;
        Ok(changed == 1)
    }
}

#[cfg(test)]
mod tests;
