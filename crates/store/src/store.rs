//! [`Store`]: the one type the gateway and the command line use for state, whichever engine
//! keeps it — the embedded SQLite database in the state directory (the default), or a shared
//! PostgreSQL database (`store: postgres://...` in the policy, or `--store`).
//!
//! A small enum rather than a trait object: there are exactly two engines, every method is
//! forwarded to the one in use, and the compiler checks that both offer each operation.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;

use ed25519_dalek::VerifyingKey;

use crate::approval::{Approval, Lease, NewApproval, NewLease, Receipt, Resolution, ResolveError};
use crate::chain::VerifyReport;
use crate::error::StoreError;
use crate::event::{AuditEntry, AuditEvent};
use crate::pg::PgStore;
use crate::sqlite::approvals::{ApprovalStore, Created, Taken};
use crate::sqlite::{Grant, PinRecord, Reservation, Reserved, SqliteStore};

/// The state of a gateway: audit chain, approvals and receipts, leases, counters, pins, sessions.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one store per process, shared behind an Arc; never moved in a hot path"
)]
pub enum Store {
    /// The embedded store: `state.db` in the state directory (two handles on one file).
    Sqlite {
        /// The audit chain, counters and pins.
        audit: SqliteStore,
        /// Approvals, receipts, leases and sessions.
        approvals: ApprovalStore,
    },
    /// The shared store on PostgreSQL.
    Postgres(PgStore),
}

/// Forwards a method to the engine in use; `$part` names the SQLite handle that has it.
macro_rules! forward {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty, $part:ident) => {
        $(#[$doc])*
        pub fn $name(&self $(, $arg: $ty)*) -> $ret {
            match self {
                Store::Sqlite { $part, .. } => $part.$name($($arg),*),
                Store::Postgres(pg) => pg.$name($($arg),*),
            }
        }
    };
}

impl Store {
    /// Opens the store: PostgreSQL at `url` when one is given (the instance's signing key still
    /// lives in `state_dir`), else SQLite in `state_dir`. Either way the schema is brought up to
    /// date, and a database with a newer schema than this build knows is refused.
    pub fn open(state_dir: &Path, url: Option<&str>) -> Result<Store, StoreError> {
        match url {
            Some(url) => Ok(Store::Postgres(PgStore::open(url, state_dir)?)),
            None => Ok(Store::Sqlite {
                audit: SqliteStore::open(state_dir)?,
                approvals: ApprovalStore::open(state_dir)?,
            }),
        }
    }

    /// Where the state is, for messages: the database file, or the PostgreSQL target (never a
    /// password).
    pub fn location(&self) -> String {
        match self {
            Store::Sqlite { audit, .. } => audit.db_path().display().to_string(),
            Store::Postgres(pg) => pg.target().to_owned(),
        }
    }

    /// Whether the state is shared through PostgreSQL.
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// A cheap check that the store can be used now (for `/readyz`). SQLite is a local file
    /// and always answers; PostgreSQL gets a round trip.
    pub fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite { .. } => Ok(()),
            Store::Postgres(pg) => pg.ping(),
        }
    }

    /// Appends `event` to the chain; resolves when the transaction holding it has committed
    /// (`Ok`) or failed (`Err`, and the record is not in the log).
    pub fn append(
        &self,
        event: AuditEvent,
    ) -> impl Future<Output = Result<AuditEntry, StoreError>> + Send + 'static {
        let queue = match self {
            Store::Sqlite { audit, .. } => audit.queue(),
            Store::Postgres(pg) => pg.queue(),
        };
        queue.append(event)
    }

    /// Like [`append`](Self::append), for a record nothing waits on before acting (the outcome
    /// of a call already forwarded): it may wait up to 5 ms
    /// for the next urgent record so both share one commit. Still durable when it resolves.
    pub fn append_deferred(
        &self,
        event: AuditEvent,
    ) -> impl Future<Output = Result<AuditEntry, StoreError>> + Send + 'static {
        let queue = match self {
            Store::Sqlite { audit, .. } => audit.queue(),
            Store::Postgres(pg) => pg.queue(),
        };
        queue.append_deferred(event)
    }

    /// Appends `event` and blocks until it is committed or failed (outside async code).
    pub fn append_blocking(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        match self {
            Store::Sqlite { audit, .. } => audit.queue().append_blocking(event),
            Store::Postgres(pg) => pg.queue().append_blocking(event),
        }
    }

    /// This instance's public key, hex: it signs the chain head and approval receipts.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.verifying_key().to_bytes())
    }

    /// The keys whose signatures on the chain head and on receipts this store accepts: this
    /// instance's key on SQLite; every registered instance key on PostgreSQL (decision 0008).
    pub fn signer_keys(&self) -> Result<Vec<VerifyingKey>, StoreError> {
        match self {
            Store::Sqlite { approvals, .. } => Ok(vec![approvals.verifying_key()]),
            Store::Postgres(pg) => Ok(pg
                .signers()?
                .iter()
                .filter_map(|k| crate::pg::audit_key(k))
                .collect()),
        }
    }

    /// Approves the definition last seen of `server.tool`. `None` when the tool was never seen.
    pub fn approve_pin(&self, server: &str, tool: &str) -> Result<Option<PinRecord>, StoreError> {
        let Some(pin) = self.pin(server, tool)? else {
            return Ok(None);
        };
        // Approved only if the definition is still the one just read: another session or
        // instance may record a new one in between, and that one nobody has looked at.
        if !self.approve_seen(server, tool, &pin.seen_sha)? {
            return Err(StoreError::PinChanged {
                tool: format!("{server}.{tool}"),
            });
        }
        self.pin(server, tool)
    }

    forward!(
        /// This instance's public key.
        verifying_key() -> VerifyingKey, approvals
    );
    forward!(
        /// How many audit batches this instance has committed.
        batches_committed() -> u64, audit
    );
    forward!(
        /// The last `n` audit records, oldest first.
        tail(n: usize) -> Result<Vec<AuditEntry>, StoreError>, audit
    );
    forward!(
        /// Up to `limit` audit records after `seq`, oldest first.
        entries_after(seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>, audit
    );
    forward!(
        /// Walks the whole chain and its signed head; reports the first bad record.
        verify() -> Result<VerifyReport, StoreError>, audit
    );
    forward!(
        /// [`verify`](Self::verify), and with `trusted` (public keys, hex) also fails when the
        /// store accepts a key not among them (`untrusted_signers`), read in the same snapshot.
        verify_trusting(trusted: Option<&BTreeSet<String>>) -> Result<VerifyReport, StoreError>, audit
    );
    forward!(
        /// Charges every reservation in one transaction, or none.
        reserve(reservations: &[Reservation]) -> Result<Reserved, StoreError>, audit
    );
    forward!(
        /// [`reserve`](Self::reserve) at a given time (Unix seconds), for tests.
        reserve_at(reservations: &[Reservation], now: u64) -> Result<Reserved, StoreError>, audit
    );
    forward!(
        /// Gives charges back; counters never go below zero.
        release(grants: &[Grant]) -> Result<(), StoreError>, audit
    );
    forward!(
        /// What the current window of `key` holds.
        counter(key: &str, per_seconds: u64) -> Result<u64, StoreError>, audit
    );
    forward!(
        /// The pins of `server` (all when `None`).
        pins(server: Option<&str>) -> Result<Vec<PinRecord>, StoreError>, audit
    );
    forward!(
        /// One pin.
        pin(server: &str, tool: &str) -> Result<Option<PinRecord>, StoreError>, audit
    );
    forward!(
        /// Writes (inserts or replaces) a pin.
        put_pin(pin: &PinRecord) -> Result<(), StoreError>, audit
    );
    forward!(
        /// Approves the definition last seen of a tool if its fingerprint is still `seen_sha`.
        approve_seen(server: &str, tool: &str, seen_sha: &str) -> Result<bool, StoreError>, audit
    );
    forward!(
        /// Records a pin only if the tool has none; returns the pin that is stored.
        first_pin(pin: &PinRecord) -> Result<PinRecord, StoreError>, audit
    );
    forward!(
        /// Records that a gateway session is alive.
        heartbeat(session: &str) -> Result<(), StoreError>, approvals
    );
    forward!(
        /// Records that a gateway session ended; its open approvals expire.
        end_session(session: &str) -> Result<(), StoreError>, approvals
    );
    forward!(
        /// Creates a pending approval (or finds the live one of the same call).
        create_pending(new: &NewApproval, cap: usize) -> Result<Created, StoreError>, approvals
    );
    forward!(
        /// Uses the approved approval of this exact call, once.
        consume(digest: &str, session: &str) -> Result<Option<Approval>, StoreError>, approvals
    );
    forward!(
        /// For a held call: takes its approval if approved.
        take(id: &str) -> Result<Taken, StoreError>, approvals
    );
    forward!(
        /// Expires an approval that is still pending or approved.
        expire(id: &str, why: &str) -> Result<(), StoreError>, approvals
    );
    forward!(
        /// Resolves a pending approval and writes its signed receipt.
        resolve(id: &str, resolution: &Resolution) -> Result<Receipt, ResolveError>, approvals
    );
    forward!(
        /// Approvals, newest first; only pending ones unless `all`.
        list(all: bool) -> Result<Vec<Approval>, StoreError>, approvals
    );
    forward!(
        /// How many approvals there are (only pending ones unless `all`); `list` shows at most
        /// [`LIST_LIMIT`](crate::LIST_LIMIT) of them.
        count(all: bool) -> Result<u64, StoreError>, approvals
    );
    forward!(
        /// One approval.
        show(id: &str) -> Result<Option<Approval>, StoreError>, approvals
    );
    forward!(
        /// One receipt, by its id or its approval's id.
        receipt(id: &str) -> Result<Option<Receipt>, StoreError>, approvals
    );
    forward!(
        /// Grants a lease.
        grant_lease(new: &NewLease) -> Result<Lease, StoreError>, approvals
    );
    forward!(
        /// Leases, newest first; only active ones unless `all`.
        leases(all: bool) -> Result<Vec<Lease>, StoreError>, approvals
    );
    forward!(
        /// Active leases that could cover a call.
        candidate_leases(session: &str, principal: Option<&str>, server: &str) -> Result<Vec<Lease>, StoreError>, approvals
    );
    forward!(
        /// Counts one use of a lease, atomically.
        use_lease(id: &str) -> Result<bool, StoreError>, approvals
    );
    forward!(
        /// Revokes a lease.
        revoke_lease(id: &str) -> Result<bool, StoreError>, approvals
    );
}
