//! Approvals, receipts, scope leases and gateway session liveness on PostgreSQL (see
//! `sqlite/approvals.rs` for the rules; the behaviour is the same).
//!
//! Across instances: resolving locks the approval row (`FOR UPDATE`); using an approval or a
//! lease is one conditional `UPDATE ... WHERE state = 'approved'` / `used_calls < max_calls`, so
//! an approval lets exactly one call through and a lease covers at most its count, whichever
//! instances race for it. Session liveness is by heartbeat only: a session of an instance that
//! died expires when its heartbeat is older than `SESSION_STALE_MS` (the SQLite store also checks
//! the process id, which means nothing on another machine).
//!
//! Every time here (creation, expiry, heartbeats, lease use) is the database's, never the
//! instance's (`clock.rs`): read in the transaction that reads and changes the rows, or, for a
//! single statement that commits by itself, on the same connection just before it.

use std::sync::Arc;

use postgres::GenericClient;

use super::PgStore;
use super::pool::Fence;
use crate::approval::{
    APPROVAL_COLUMNS, Approval, ApprovalState, LEASE_COLUMNS, Lease, NewApproval, NewLease,
    Receipt, Resolution, ResolveError, approval_from_row, check_separation, lease_from_row,
    signed_receipt, to_i64,
};
use crate::error::StoreError;
use crate::sqlite::approvals::{Created, SESSION_STALE_MS, Taken};

/// Marks pending and approved approvals expired whose ttl ran out or whose session is gone.
fn expire_stale(c: &mut impl GenericClient, now: i64) -> Result<(), postgres::Error> {
    c.execute(
        "UPDATE approvals SET state = 'expired', resolved_at = $1, note = 'its time to live ran out'
         WHERE state IN ('pending', 'approved') AND expires_at <= $1",
        &[&now],
    )?;
    c.execute(
        "UPDATE approvals SET state = 'expired', resolved_at = $1,
             note = 'its gateway session ended (the gateway stopped or restarted)'
         WHERE state IN ('pending', 'approved') AND session NOT IN (
             SELECT id FROM gateway_sessions WHERE ended_at IS NULL AND heartbeat_at > $2)",
        &[&now, &now.saturating_sub(SESSION_STALE_MS)],
    )?;
    Ok(())
}

/// What can go wrong inside [`PgStore::with`]: the database, or the store itself (a task past its
/// deadline that must not commit).
enum OpError {
    Postgres(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for OpError {
    fn from(e: postgres::Error) -> Self {
        OpError::Postgres(e)
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Store(e)
    }
}

fn find_approval(
    c: &mut impl GenericClient,
    id: &str,
    lock: bool,
) -> Result<Option<Approval>, postgres::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    c.query_opt(
        &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1{lock}"),
        &[&id],
    )?
    .as_ref()
    .map(approval_from_row)
    .transpose()
}

impl PgStore {
    /// Runs `f` on a pooled connection; a database error becomes a [`StoreError`] naming `during`.
    /// `f` passes its [`Fence`] before anything it does commits (see `pool.rs`).
    fn with<T: Send + 'static>(
        &self,
        during: &'static str,
        f: impl FnOnce(&mut postgres::Client, &Fence) -> Result<T, OpError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let target = self.target().to_owned();
        self.pool.run(during, move |c, fence| {
            f(c, fence).map_err(|e| match e {
                OpError::Postgres(e) => StoreError::postgres(&target, during, e),
                OpError::Store(e) => e,
            })
        })
    }

    /// Records that gateway session `session` is alive (call every few seconds).
    pub fn heartbeat(&self, session: &str) -> Result<(), StoreError> {
        let session = session.to_owned();
        let clock = Arc::clone(&self.clock);
        let pid = i64::from(std::process::id());
        self.with("recording the session heartbeat", move |c, fence| {
            let now = clock.now_ms(c)?;
            fence.pass()?;
            c.execute(
                "INSERT INTO gateway_sessions (id, pid, started_at, heartbeat_at) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                &[&session, &pid, &now],
            )
            .map(|_| ())
            .map_err(OpError::from)
        })
    }

    /// Records that `session` ended; its open approvals expire.
    pub fn end_session(&self, session: &str) -> Result<(), StoreError> {
        let session = session.to_owned();
        let clock = Arc::clone(&self.clock);
        self.with("ending the session", move |c, fence| {
            let mut tx = c.transaction()?;
            let now = clock.now_ms(&mut tx)?;
            tx.execute(
                "UPDATE gateway_sessions SET ended_at = $2 WHERE id = $1",
                &[&session, &now],
            )?;
            expire_stale(&mut tx, now)?;
            fence.pass()?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Creates a pending approval, unless the same call of the same session already has a live
    /// one, or the session has `cap` pending approvals.
    pub fn create_pending(&self, new: &NewApproval, cap: usize) -> Result<Created, StoreError> {
        let new = new.clone();
        let arguments = serde_json::to_string(&new.arguments).map_err(|_| StoreError::Bug {
            what: "arguments could not be serialized",
        })?;
        let clock = Arc::clone(&self.clock);
        self.with("creating an approval", move |c, fence| {
            let mut tx = c.transaction()?;
            let now = clock.now_ms(&mut tx)?;
            expire_stale(&mut tx, now)?;
            let existing = tx
                .query_opt(
                    &format!(
                        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE digest = $1 AND session = $2
                         AND state IN ('pending', 'approved') ORDER BY created_at DESC LIMIT 1"
                    ),
                    &[&new.digest, &new.session],
                )?
                .as_ref()
                .map(approval_from_row)
                .transpose()?;
            if let Some(existing) = existing {
                fence.pass()?;
                tx.commit()?;
                return Ok(Created::Existing(existing));
            }
            let pending: i64 = tx
                .query_one(
                    "SELECT count(*) FROM approvals WHERE session = $1 AND state = 'pending'",
                    &[&new.session],
                )?
                .try_get(0)?;
            if usize::try_from(pending).unwrap_or(usize::MAX) >= cap {
                fence.pass()?;
                tx.commit()?;
                return Ok(Created::CapReached { cap });
            }
            let expires = now.saturating_add(to_i64(new.ttl_ms));
            let row = tx.query_one(
                &format!(
                    "INSERT INTO approvals (id, state, digest, session, principal, server, tool,
                         method, arguments, effect, rule, reason, mode, separate_approver,
                         decision_id, created_at, expires_at)
                     VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                         $14, $15, $16)
                     RETURNING {APPROVAL_COLUMNS}"
                ),
                &[
                    &new.id,
                    &new.digest,
                    &new.session,
                    &new.principal,
                    &new.server,
                    &new.tool,
                    &new.method,
                    &arguments,
                    &new.effect,
                    &new.rule,
                    &new.reason,
                    &new.mode,
                    &new.separate_approver,
                    &new.decision_id,
                    &now,
                    &expires,
                ],
            )?;
            let created = approval_from_row(&row)?;
            fence.pass()?;
            tx.commit()?;
            Ok(Created::New(created))
        })
    }

    /// Uses the approved, unexpired, unused approval of this exact call, if there is one; one
    /// conditional update, so it lets exactly one call through.
    pub fn consume(&self, digest: &str, session: &str) -> Result<Option<Approval>, StoreError> {
        let (digest, session) = (digest.to_owned(), session.to_owned());
        let clock = Arc::clone(&self.clock);
        self.with("using an approval", move |c, fence| {
            let mut tx = c.transaction()?;
            let now = clock.now_ms(&mut tx)?;
            expire_stale(&mut tx, now)?;
            let row = tx.query_opt(
                &format!(
                    "UPDATE approvals SET state = 'used', used_at = $3
                     WHERE id = (SELECT id FROM approvals WHERE digest = $1 AND session = $2
                                 AND state = 'approved' AND expires_at > $3 LIMIT 1)
                       AND state = 'approved'
                     RETURNING {APPROVAL_COLUMNS}"
                ),
                &[&digest, &session, &now],
            )?;
            let used = row.as_ref().map(approval_from_row).transpose()?;
            fence.pass()?;
            tx.commit()?;
            Ok(used)
        })
    }

    /// For a held call: takes approval `id` if it was approved (marking it used), reports a final
    /// refusal, or says it is still pending.
    pub fn take(&self, id: &str) -> Result<Taken, StoreError> {
        let id = id.to_owned();
        let clock = Arc::clone(&self.clock);
        let taken = self.with("taking an approval", move |c, fence| {
            let mut tx = c.transaction()?;
            let now = clock.now_ms(&mut tx)?;
            expire_stale(&mut tx, now)?;
            let used = tx
                .query_opt(
                    &format!(
                        "UPDATE approvals SET state = 'used', used_at = $2
                         WHERE id = $1 AND state = 'approved' RETURNING {APPROVAL_COLUMNS}"
                    ),
                    &[&id, &now],
                )?
                .as_ref()
                .map(approval_from_row)
                .transpose()?;
            let taken = match used {
                Some(approval) => Some(Taken::Approved(approval)),
                None => find_approval(&mut tx, &id, false)?.map(|a| match a.state {
                    ApprovalState::Pending => Taken::Pending,
                    _ => Taken::Refused(a),
                }),
            };
            fence.pass()?;
            tx.commit()?;
            Ok(taken)
        })?;
        taken.ok_or(StoreError::Bug {
            what: "a held call's approval is missing from the store",
        })
    }

    /// Expires approval `id` if it is still pending or approved and unused.
    pub fn expire(&self, id: &str, why: &str) -> Result<(), StoreError> {
        let (id, why) = (id.to_owned(), why.to_owned());
        let clock = Arc::clone(&self.clock);
        self.with("expiring an approval", move |c, fence| {
            let now = clock.now_ms(c)?;
            fence.pass()?;
            c.execute(
                "UPDATE approvals SET state = 'expired', resolved_at = $2, note = $3
                 WHERE id = $1 AND state IN ('pending', 'approved')",
                &[&id, &now, &why],
            )
            .map(|_| ())
            .map_err(OpError::from)
        })
    }

    /// Resolves pending approval `id` and writes its signed receipt, in one transaction that
    /// holds the approval's row lock.
    pub fn resolve(&self, id: &str, resolution: &Resolution) -> Result<Receipt, ResolveError> {
        let id = id.to_owned();
        let resolution = resolution.clone();
        let key = self.key.clone();
        let target = self.target().to_owned();
        let clock = Arc::clone(&self.clock);
        let result = self.pool.run("resolving an approval", move |c, fence| {
            let err = |e| StoreError::postgres(&target, "resolving an approval", e);
            let mut tx = c.transaction().map_err(err)?;
            let now = clock.now_ms(&mut tx).map_err(err)?;
            expire_stale(&mut tx, now).map_err(err)?;
            let Some(approval) = find_approval(&mut tx, &id, true).map_err(err)? else {
                return Ok(Err(ResolveError::NotFound(id)));
            };
            match approval.state {
                ApprovalState::Pending => {}
                ApprovalState::Expired => {
                    fence.pass()?;
                    tx.commit().map_err(err)?;
                    return Ok(Err(ResolveError::Expired {
                        id,
                        why: approval.note.unwrap_or_else(|| "it expired".to_owned()),
                    }));
                }
                state => {
                    return Ok(Err(ResolveError::NotPending {
                        id,
                        state: state.as_str(),
                    }));
                }
            }
            if let Err(refused) = check_separation(&approval, &resolution) {
                return Ok(Err(refused));
            }
            let receipt = signed_receipt(&approval, &resolution, now, &key)?;
            super::audit::register(
                &mut tx,
                &target,
                &receipt.public_key,
                "a gateway instance's key",
            )?;
            let json = serde_json::to_string(&receipt).map_err(|_| StoreError::Bug {
                what: "a receipt could not be serialized",
            })?;
            tx.execute(
                "INSERT INTO approval_receipts (id, approval_id, receipt) VALUES ($1, $2, $3)",
                &[&receipt.body.id, &approval.id, &json],
            )
            .map_err(err)?;
            tx.execute(
                "UPDATE approvals SET state = $2, resolved_at = $3, approver = $4, channel = $5,
                     note = $6, receipt_id = $7
                 WHERE id = $1 AND state = 'pending'",
                &[
                    &id,
                    &receipt.body.decision,
                    &now,
                    &resolution.approver,
                    &resolution.channel.as_str(),
                    &resolution.note,
                    &receipt.body.id,
                ],
            )
            .map_err(err)?;
            fence.pass()?;
            tx.commit().map_err(err)?;
            Ok(Ok(receipt))
        });
        result?
    }

    /// Approvals, newest first; only pending ones unless `all`.
    pub fn list(&self, all: bool) -> Result<Vec<Approval>, StoreError> {
        let clock = Arc::clone(&self.clock);
        let filter = if all { "" } else { "WHERE state = 'pending'" };
        self.with("listing approvals", move |c, fence| {
            let mut tx = c.transaction()?;
            let now = clock.now_ms(&mut tx)?;
            expire_stale(&mut tx, now)?;
            let rows = tx.query(
                &format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals {filter}
                     ORDER BY created_at DESC, id LIMIT {}",
                    crate::LIST_LIMIT
                ),
                &[],
            )?;
            let list = rows
                .iter()
                .map(approval_from_row)
                .collect::<Result<_, _>>()?;
            fence.pass()?;
            tx.commit()?;
            Ok(list)
        })
    }

    /// How many approvals there are (only pending ones unless `all`); `list` shows at most
    /// [`LIST_LIMIT`](crate::LIST_LIMIT) of them.
    pub fn count(&self, all: bool) -> Result<u64, StoreError> {
        let clock = Arc::clone(&self.clock);
        let filter = if all { "" } else { "WHERE state = 'pending'" };
        self.with("counting approvals", move |c, fence| {
            let mut tx = c.transaction()?;
            let now = clock.now_ms(&mut tx)?;
            expire_stale(&mut tx, now)?;
            let n: i64 = tx
                .query_one(&format!("SELECT COUNT(*) FROM approvals {filter}"), &[])?
                .get(0);
            fence.pass()?;
            tx.commit()?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    /// One approval.
    pub fn show(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let id = id.to_owned();
        let clock = Arc::clone(&self.clock);
        self.with("reading an approval", move |c, fence| {
            let mut tx = c.transaction()?;
            let now = clock.now_ms(&mut tx)?;
            expire_stale(&mut tx, now)?;
            let found = find_approval(&mut tx, &id, false)?;
            fence.pass()?;
            tx.commit()?;
            Ok(found)
        })
    }

    /// One receipt, by its id or its approval's id.
    pub fn receipt(&self, id: &str) -> Result<Option<Receipt>, StoreError> {
        let key = id.to_owned();
        let text: Option<String> = self.with("reading a receipt", move |c, _| {
            c.query_opt(
                "SELECT receipt FROM approval_receipts WHERE id = $1 OR approval_id = $1 LIMIT 1",
                &[&key],
            )?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(OpError::from)
        })?;
        text.map(|text| {
            serde_json::from_str(&text).map_err(|e| StoreError::CorruptRecord {
                seq: 0,
                what: format!("receipt `{id}` does not parse: {e}"),
            })
        })
        .transpose()
    }

    /// Grants a lease.
    pub fn grant_lease(&self, new: &NewLease) -> Result<Lease, StoreError> {
        let new = new.clone();
        let args = serde_json::to_string(&new.args_under).map_err(|_| StoreError::Bug {
            what: "a lease scope could not be serialized",
        })?;
        let clock = Arc::clone(&self.clock);
        self.with("granting a lease", move |c, fence| {
            let now = clock.now_ms(c)?;
            fence.pass()?;
            let row = c.query_one(
                &format!(
                    "INSERT INTO leases (id, session, principal, server, tool, args_under,
                         created_at, expires_at, max_calls, used_calls, granted_by, note)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11)
                     RETURNING {LEASE_COLUMNS}"
                ),
                &[
                    &new.id,
                    &new.session,
                    &new.principal,
                    &new.server,
                    &new.tool,
                    &args,
                    &now,
                    &now.saturating_add(to_i64(new.ttl_ms)),
                    &to_i64(new.max_calls),
                    &new.granted_by,
                    &new.note,
                ],
            )?;
            Ok(lease_from_row(&row, now)?)
        })
    }

    /// Leases, newest first; only active ones unless `all`.
    pub fn leases(&self, all: bool) -> Result<Vec<Lease>, StoreError> {
        let clock = Arc::clone(&self.clock);
        let leases: Vec<Lease> = self.with("listing leases", move |c, _| {
            let now = clock.now_ms(c)?;
            c.query(
                &format!(
                    "SELECT {LEASE_COLUMNS} FROM leases ORDER BY created_at DESC, id LIMIT 1000"
                ),
                &[],
            )?
            .iter()
            .map(|row| lease_from_row(row, now))
            .collect::<Result<_, _>>()
            .map_err(OpError::from)
        })?;
        Ok(leases.into_iter().filter(|l| all || l.active).collect())
    }

    /// Active leases that could cover a call of `session` / `principal` to `server`.
    pub fn candidate_leases(
        &self,
        session: &str,
        principal: Option<&str>,
        server: &str,
    ) -> Result<Vec<Lease>, StoreError> {
        let (session, server) = (session.to_owned(), server.to_owned());
        let principal = principal.map(str::to_owned);
        let clock = Arc::clone(&self.clock);
        let leases: Vec<Lease> = self.with("finding leases", move |c, _| {
            let now = clock.now_ms(c)?;
            c.query(
                &format!(
                    "SELECT {LEASE_COLUMNS} FROM leases
                     WHERE revoked_at IS NULL AND expires_at > $1 AND used_calls < max_calls
                       AND (session = $2 OR (principal IS NOT NULL AND principal = $3))
                       AND (server IS NULL OR server = $4)
                     ORDER BY created_at, id"
                ),
                &[&now, &session, &principal, &server],
            )?
            .iter()
            .map(|row| lease_from_row(row, now))
            .collect::<Result<_, _>>()
            .map_err(OpError::from)
        })?;
        Ok(leases.into_iter().filter(|l| l.active).collect())
    }

    /// Counts one use of lease `id`, atomically: `true` only if it was still active and under
    /// its count.
    pub fn use_lease(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let clock = Arc::clone(&self.clock);
        self.with("using a lease", move |c, fence| {
            let now = clock.now_ms(c)?;
            fence.pass()?;
            c.execute(
                "UPDATE leases SET used_calls = used_calls + 1
                 WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 AND used_calls < max_calls",
                &[&id, &now],
            )
            .map(|n| n == 1)
            .map_err(OpError::from)
        })
    }

    /// Revokes lease `id`; `false` if there is no such active lease.
    pub fn revoke_lease(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let clock = Arc::clone(&self.clock);
        self.with("revoking a lease", move |c, fence| {
            let now = clock.now_ms(c)?;
            fence.pass()?;
            c.execute(
                "UPDATE leases SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &now],
            )
            .map(|n| n == 1)
            .map_err(OpError::from)
        })
    }
}
