//! The shared store on PostgreSQL (`store: postgres://...`), for several gateway instances behind
//! a load balancer: one audit chain, and approvals, leases, counters, pins and sessions that every
//! instance sees at once.
//!
//! Same contract as the SQLite store, kept across processes and machines by the database:
//! - audit appends are serialized by a transaction-scoped advisory lock, so the hash chain stays
//!   linear whichever instance appends; an append is acknowledged after its transaction committed
//!   (group commit as on SQLite, see `queue.rs`);
//! - the chain head is signed by the instance that appended last, and carries that instance's
//!   public key; the keys that may sign are registered in `audit_signers` when they first sign
//!   (decision 0008);
//! - counters, approvals and leases change under row locks or with single conditional updates;
//! - their windows and expiries are decided on the database's clock, which all instances share,
//!   never on an instance's own (`pg/clock.rs`).
//!
//! Every operation runs on a pool thread with a statement timeout, and a caller waits at most
//! [`OP_WAIT`]; an unreachable or slow database is an error, which the gateway turns into a deny.
//! An operation whose caller stopped waiting never commits afterwards (`pool.rs`): what the
//! gateway was told failed did not happen.

mod approvals;
mod audit;
mod clock;
mod counters;
mod pins;
pub(crate) mod pool;
pub(crate) mod schema;
mod tls;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use postgres::Config;

use crate::error::StoreError;
use crate::key;
use crate::queue::AppendQueue;
use clock::DbClock;
use pool::{Pool, Settings};

/// Connections of one instance's pool (the audit writer has one more of its own). Every call
/// that needs state takes a connection for a few milliseconds; see docs/deployment.md for sizing.
pub const POOL_SIZE: usize = 8;

/// `statement_timeout` (and `lock_timeout`) on every connection.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long opening a connection may take, unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a caller waits for one operation, queueing and (re)connecting included.
pub const OP_WAIT: Duration = Duration::from_secs(10);

/// The store on PostgreSQL. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct PgStore {
    pool: Pool,
    key: SigningKey,
    queue: AppendQueue,
    /// The clock every expiry and window is decided on: the database's (`clock.rs`).
    clock: Arc<DbClock>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.pool.target())
            .finish_non_exhaustive()
    }
}

/// Whether `text` names a PostgreSQL store (`postgres://` or `postgresql://`).
#[must_use]
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// `url` with any password replaced by `***`, for messages and logs: the one in the userinfo
/// (found at the last `@` before any `?`, so a password holding an unencoded `/` is masked too)
/// and any `password=` query parameter. Text that is not a URL is never echoed: it may be a
/// `key=value` connection string with a password in it.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL, not shown)".to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest, None),
    };
    let head = match before_query.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => before_query.to_owned(),
        },
        None => before_query.to_owned(),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(q) => format!("{scheme}://{head}?{q}"),
        None => format!("{scheme}://{head}"),
    }
}

/// Where the database is and how to reach it: the client configuration parsed from the URL,
/// in clear or over verified TLS (see [`tls`]), and a printable target without the password.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) config: Config,
    pub(crate) transport: tls::Transport,
    pub(crate) target: String,
}

impl Endpoint {
    /// Opens one connection.
    pub(crate) fn connect(&self) -> Result<postgres::Client, StoreError> {
        let connected = match &self.transport {
            tls::Transport::Plain => self.config.connect(postgres::NoTls),
            tls::Transport::Tls(tls) => self.config.connect(tls.clone()),
        };
        connected.map_err(|e| StoreError::postgres(&self.target, "connecting", e))
    }
}

/// Parses a `postgres://` URL into an [`Endpoint`].
pub(crate) fn parse_url(url: &str) -> Result<Endpoint, StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        url: redact_url(url),
        reason,
    };
    if !is_postgres_url(url) {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        return Err(bad(if scheme.is_empty() {
            "it is not a URL (expected `postgres://...`)".to_owned()
        } else {
            format!("the scheme `{scheme}` is not supported; only `postgres://` is")
        }));
    }
    let (client_url, tls_params) = tls::split_url(url).map_err(bad)?;
    let mut config = Config::from_str(&client_url).map_err(|e| bad(e.to_string()))?;
    if config.get_hosts().is_empty() {
        return Err(bad("it names no host".to_owned()));
    }
    if config.get_user().is_none() {
        return Err(bad("it names no user".to_owned()));
    }
    let transport = tls::choose(&mut config, &tls_params).map_err(bad)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // A dead peer (a database host that vanished without closing the connection) is noticed
    // within seconds rather than after the kernel's default of hours.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .tcp_user_timeout(STATEMENT_TIMEOUT)
        .application_name("portcullis");
    let mut target = target_of(&config);
    if matches!(transport, tls::Transport::Tls(_)) {
        target.push_str(" (TLS)");
    }
    Ok(Endpoint {
        config,
        transport,
        target,
    })
}

fn target_of(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}

impl PgStore {
    /// Connects to the database at `url` and brings its schema up to date. This instance's
    /// signing key (`state_dir/signing.key`, created if missing) is registered as a signer when
    /// it first signs a chain head or a receipt, so commands that only read register nothing.
    pub fn open(url: &str, state_dir: &Path) -> Result<PgStore, StoreError> {
        crate::sqlite::create_state_dir(state_dir)?;
        let key = key::load_or_create(state_dir)?;
        Self::open_with_key(url, key, OP_WAIT)
    }

    /// [`open`](Self::open) with callers waiting at most `wait` instead of [`OP_WAIT`], so tests
    /// can make an operation time out without waiting ten seconds.
    #[cfg(test)]
    pub(crate) fn open_with_wait(
        url: &str,
        state_dir: &Path,
        wait: Duration,
    ) -> Result<PgStore, StoreError> {
        crate::sqlite::create_state_dir(state_dir)?;
        let key = key::load_or_create(state_dir)?;
        Self::open_with_key(url, key, wait)
    }

    fn open_with_key(url: &str, key: SigningKey, wait: Duration) -> Result<PgStore, StoreError> {
        let endpoint = parse_url(url)?;
        let settings = Settings {
            size: POOL_SIZE,
            statement_timeout: STATEMENT_TIMEOUT,
            wait,
        };
        let pool = Pool::start(&endpoint, &settings)?;
        let target = endpoint.target.clone();
        // Not fenced: a migration that commits after its caller gave up is harmless (the next
        // open finds the schema up to date).
        pool.run("migrating the schema", move |client, _| {
            schema::migrate(client, &target).map(|_| ())
        })?;
        let writer_pool = Pool::start(
            &endpoint,
            &Settings {
                size: 1,
                ..settings
            },
        )?;
        let queue = AppendQueue::start(audit::PgWriter {
            pool: writer_pool,
            key: key.clone(),
            last_head: None,
        })?;
        Ok(PgStore {
            pool,
            key,
            queue,
            clock: Arc::new(DbClock::new()),
        })
    }

    pub(crate) fn queue(&self) -> &AppendQueue {
        &self.queue
    }

    /// Where the database is, for messages (never the password).
    pub fn target(&self) -> &str {
        self.pool.target()
    }

    /// This instance's public key (64 hex digits).
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// This instance's public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// How many audit batches this instance's writer has committed.
    pub fn batches_committed(&self) -> u64 {
        self.queue.batches_committed()
    }

    /// A round trip to the database: `Ok` when it answers.
    pub fn ping(&self) -> Result<(), StoreError> {
        let target = self.target().to_owned();
        self.pool.run("checking the database", move |c, _| {
            c.simple_query("SELECT 1")
                .map(|_| ())
                .map_err(|e| StoreError::postgres(&target, "checking the database", e))
        })
    }
}

pub(crate) use audit::register as register_signer;
pub(crate) use audit::verify_in as verify_in_transaction;

/// A registered signer's key from its hex form (`None` when it is not a valid key).
pub(crate) fn audit_key(hex_key: &str) -> Option<VerifyingKey> {
    audit::parse_key(hex_key)
}

/// What `portcullis store migrate` and `check` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Where the database is (never the password).
    pub target: String,
    /// The version the database was at.
    pub found: i64,
    /// The version it is at now (after `migrate`; equal to `found` for `check`).
    pub now: i64,
    /// The newest version this build knows.
    pub supported: i64,
}

/// Connects once (no pool) with the timeouts of the store.
fn connect_once(url: &str) -> Result<(postgres::Client, String), StoreError> {
    let endpoint = parse_url(url)?;
    let client = endpoint.connect()?;
    Ok((client, endpoint.target))
}

/// Reads the schema version of the database at `url` without changing anything.
pub fn check_schema(url: &str) -> Result<SchemaStatus, StoreError> {
    let (mut client, target) = connect_once(url)?;
    let found = schema::current_version(&mut client, &target)?;
    Ok(SchemaStatus {
        target,
        found,
        now: found,
        supported: schema::latest_version(),
    })
}

/// Brings the schema of the database at `url` up to date.
pub fn migrate_schema(url: &str) -> Result<SchemaStatus, StoreError> {
    let (mut client, target) = connect_once(url)?;
    let (found, now) = schema::migrate(&mut client, &target)?;
    Ok(SchemaStatus {
        target,
        found,
        now,
        supported: schema::latest_version(),
    })
}

/// An integer for a BIGINT column.
fn to_sql(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Bug {
        what: "a number does not fit PostgreSQL's bigint",
    })
}

#[cfg(test)]
mod tests;
