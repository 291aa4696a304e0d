//! Real PostgreSQL servers for tests: the store suite and the multi-instance end-to-end tests.
//!
//! `scripts/test` starts one throw-away cluster (`scripts/pg-cluster`) and exports its URL as
//! [`ENV`]; every test then takes a fresh database on it ([`fresh_database`]), so tests run in
//! parallel without seeing each other's state. Without the variable (a developer running
//! `cargo test` alone) the first test starts a cluster for this test process with the same
//! script; it stops when the process exits. Tests that stop the server on purpose start a
//! [`Cluster`] of their own. Nothing here skips: without PostgreSQL binaries the tests fail and
//! say to run `scripts/install-postgres`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The variable naming a running server for tests (`postgres://...`, any database on it).
pub const ENV: &str = "PORTCULLIS_TEST_POSTGRES";

/// Why a test could not get a server.
#[derive(Debug, thiserror::Error)]
pub enum PgTestError {
    /// `scripts/pg-cluster` failed (no binaries, initdb or start failed).
    #[error(
        "cannot start a PostgreSQL cluster for the tests: {0}\n\
         help: run `scripts/install-postgres` (Debian's postgresql package), or set \
         {ENV}=postgres://... to a server the tests may create databases on"
    )]
    Cluster(String),
    /// Creating a database failed.
    #[error("cannot create a test database on `{url}`: {why}")]
    Database {
        /// The server.
        url: String,
        /// What PostgreSQL said.
        why: String,
    },
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-cluster")
}

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A cluster started by this process with `scripts/pg-cluster`; it is stopped (and its
/// directory removed) when dropped, and at the latest when this process exits.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    url: String,
}

impl Cluster {
    /// Creates and starts a cluster in a new directory under the system temp directory.
    pub fn start() -> Result<Cluster, PgTestError> {
        Self::start_in(unique("portcullis-pg-"), &[])
    }

    /// Like [`start`](Self::start), and also listening on `127.0.0.1:port` over TLS only, with
    /// the PEM certificate chain `cert` and key `key`.
    pub fn start_with_tls(cert: &Path, key: &Path, port: u16) -> Result<Cluster, PgTestError> {
        let tls = ["--tls", &path_str(cert), &path_str(key), &port.to_string()].map(String::from);
        Self::start_in(unique("portcullis-pg-tls-"), &tls)
    }

    /// Starts a cluster in `name` under the system temp directory, watched by this process.
    fn start_in(name: String, options: &[String]) -> Result<Cluster, PgTestError> {
        let dir = std::env::temp_dir().join(name);
        let mut args = vec![
            "start".to_owned(),
            path_str(&dir),
            "--watch".to_owned(),
            std::process::id().to_string(),
        ];
        args.extend_from_slice(options);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let url = run_script(&args)?;
        Ok(Cluster { dir, url })
    }

    /// The URL of its `postgres` database.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server like a crash (`pg_ctl stop -m immediate`: no checkpoint, connections cut).
    pub fn stop_immediate(&self) -> Result<(), PgTestError> {
        run_script(&["stop", &path_str(&self.dir), "--immediate"]).map(|_| ())
    }

    /// Starts the stopped server again, on the same socket and data.
    pub fn restart(&self) -> Result<(), PgTestError> {
        run_script(&["start", &path_str(&self.dir)]).map(|_| ())
    }

    /// A new, empty database on this cluster; its URL.
    pub fn fresh_database(&self) -> Result<String, PgTestError> {
        create_database(&self.url)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = run_script(&["stop", &path_str(&self.dir), "--immediate"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_str(path: &Path) -> String {
    path.display().to_string()
}

fn run_script(args: &[&str]) -> Result<String, PgTestError> {
    let out = Command::new(script())
        .args(args)
        .output()
        .map_err(|e| PgTestError::Cluster(format!("cannot run scripts/pg-cluster: {e}")))?;
    if !out.status.success() {
        return Err(PgTestError::Cluster(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The server for this test process: [`ENV`] when set, else a [`Cluster`] started once.
pub fn server() -> Result<String, PgTestError> {
    if let Ok(url) = std::env::var(ENV)
        && !url.is_empty()
    {
        return Ok(url);
    }
    static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match SHARED.get_or_init(|| Cluster::start().map_err(|e| e.to_string())) {
        Ok(cluster) => Ok(cluster.url.clone()),
        Err(why) => Err(PgTestError::Cluster(why.clone())),
    }
}

/// A new, empty database on the test server; its URL.
pub fn fresh_database() -> Result<String, PgTestError> {
    create_database(&server()?)
}

/// `url` with its database replaced by `db`.
#[must_use]
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let base = format!("{scheme}://{authority}");
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

fn create_database(url: &str) -> Result<String, PgTestError> {
    // One CREATE DATABASE at a time from this process: they all copy template1.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let fail = |why: String| PgTestError::Database {
        url: url.to_owned(),
        why,
    };
    let name = unique("t_");
    let mut client =
        ::postgres::Client::connect(url, ::postgres::NoTls).map_err(|e| fail(e.to_string()))?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .map_err(|e| fail(e.to_string()))?;
    Ok(with_database(url, &name))
}
