//! The embedded SQLite store: one file, `state.db`, in the state directory.
//!
//! One connection belongs to the writer thread (see [`writer`]); reads go through a second,
//! read-only connection. The database runs in WAL mode with `synchronous=FULL`, so a committed
//! transaction has been fsynced and readers never block the writer.

pub(crate) mod approvals;
mod counters;
mod pins;
mod read;
mod schema;
mod writer;

use std::collections::BTreeSet;
use std::future::Future;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, MAIN_DB, OpenFlags};

use crate::chain::VerifyReport;
use crate::error::StoreError;
use crate::event::{AuditEntry, AuditEvent};
use crate::key;
use crate::queue::AppendQueue;
use writer::Writer;

pub use counters::{Grant, Reservation, Reserved};
pub use pins::{PinRecord, PinStatus};
pub(crate) use read::verify_in;

/// The database file's name inside the state directory.
pub const DB_FILE: &str = "state.db";

/// How long a statement waits for a lock held by another connection (another gateway process on
/// the same state directory, or `portcullis audit` reading) before failing.
#[cfg(not(test))]
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Short in tests, which hold a lock on purpose to make appends fail.
#[cfg(test)]
const BUSY_TIMEOUT: Duration = Duration::from_millis(200);

/// The audit store on SQLite. Cheap to share behind an `Arc`; every method takes `&self`.
///
/// Dropping it stops the writer thread after the queued appends are written.
pub struct SqliteStore {
    db_path: PathBuf,
    verifying_key: VerifyingKey,
    queue: AppendQueue,
    reader: Mutex<Connection>,
    /// A read-write connection for counters and pins, whose short transactions must not wait
    /// behind audit batches in the writer's queue.
    state: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("db_path", &self.db_path)
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `state_dir`.
    ///
    /// Creates the directory with mode 0700 if it is missing, opens `state_dir/state.db`, brings
    /// its schema up to date, and loads or creates the signing key `state_dir/signing.key`.
    /// Fails if the directory or database cannot be written, if the database was written by a newer
    /// Portcullis, or if the key file is readable by others.
    pub fn open(state_dir: &Path) -> Result<SqliteStore, StoreError> {
        create_state_dir(state_dir)?;
        let signing_key = key::load_or_create(state_dir)?;
        let db_path = state_dir.join(DB_FILE);
        create_private_db_file(&db_path)?;
        let mut conn = open_writer(&db_path)?;
        schema::migrate(&mut conn, &db_path)?;
        let reader = open_reader(&db_path)?;
        let state = open_writer(&db_path)?;

        let verifying_key = signing_key.verifying_key();
        let queue = AppendQueue::start(Writer {
            conn,
            path: db_path.clone(),
            key: signing_key,
            last_head: None,
        })?;
        Ok(SqliteStore {
            db_path,
            verifying_key,
            queue,
            reader: Mutex::new(reader),
            state: Mutex::new(state),
        })
    }

    /// The path of the database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// The gateway's Ed25519 public key (64 hex digits), which verifies chain heads.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.verifying_key.to_bytes())
    }

    /// How many batches the writer has committed since this store was opened. With group commit
    /// this is at most, and under load far below, the number of appended records.
    pub fn batches_committed(&self) -> u64 {
        self.queue.batches_committed()
    }

    /// Appends `event` to the chain. The record is queued at once; the future resolves when the
    /// transaction holding it has committed (`Ok`) or failed (`Err`, and the record is not in the
    /// log). `event.time` is replaced by the store's clock.
    pub fn append(
        &self,
        event: AuditEvent,
    ) -> impl Future<Output = Result<AuditEntry, StoreError>> + Send + 'static {
        self.queue.append(event)
    }

    /// Like [`append`](Self::append), for a record nothing waits on before acting (the outcome
    /// of a call already forwarded): it may wait up to 5 ms
    /// for the next urgent record so the two share one commit and one fsync. Still durable when
    /// the future resolves.
    pub fn append_deferred(
        &self,
        event: AuditEvent,
    ) -> impl Future<Output = Result<AuditEntry, StoreError>> + Send + 'static {
        self.queue.append_deferred(event)
    }

    /// Appends `event` and blocks the thread until it is committed or failed; for callers outside
    /// an async runtime (the CLI, tests). Inside one, use [`append`](Self::append).
    pub fn append_blocking(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        self.queue.append_blocking(event)
    }

    pub(crate) fn queue(&self) -> &AppendQueue {
        &self.queue
    }

    /// This store's public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.verifying_key
    }

    /// The last `n` records, oldest first.
    pub fn tail(&self, n: usize) -> Result<Vec<AuditEntry>, StoreError> {
        read::tail(&self.lock_reader(), &self.db_path, n)
    }

    /// Up to `limit` records with a seq greater than `seq`, oldest first (for following the log
    /// and for export: pass the last seq seen).
    pub fn entries_after(&self, seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        read::entries_after(&self.lock_reader(), &self.db_path, seq, limit)
    }

    /// Walks the whole chain and its signed head and reports the first bad record, if any.
    /// Reads one consistent snapshot, so appends running meanwhile cannot cause a false alarm.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.verify_trusting(None)
    }

    /// [`verify`](Self::verify), and with `trusted` (public keys, hex) also checks that this
    /// gateway's key, the only one the SQLite store accepts, is among them.
    pub fn verify_trusting(
        &self,
        trusted: Option<&BTreeSet<String>>,
    ) -> Result<VerifyReport, StoreError> {
        let report = read::verify(&mut self.lock_reader(), &self.db_path, &self.verifying_key)?;
        let ours = hex::encode(self.verifying_key.to_bytes());
        Ok(report.check_signers([ours], trusted))
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, Connection> {
        // Every state transaction commits or rolls back before the guard is dropped.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while reading cannot leave the read-only connection in a state that matters.
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) fn create_state_dir(state_dir: &Path) -> Result<(), StoreError> {
    let fail = |source| StoreError::CreateStateDir {
        path: state_dir.to_path_buf(),
        source: Arc::new(source),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(fail)?;
    let meta = std::fs::metadata(state_dir).map_err(fail)?;
    if !meta.is_dir() {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "it exists and is not a directory",
        )));
    }
    Ok(())
}

/// Creates an empty database file with mode 0600 if there is none. SQLite would create it with
/// the umask's mode (often 0644); its `-wal` and `-shm` files copy the database file's mode, so
/// this keeps all three private even in a state directory that others can enter.
fn create_private_db_file(path: &Path) -> Result<(), StoreError> {
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::CreateStateDir {
            path: path.to_path_buf(),
            source: Arc::new(e),
        }),
    }
}

fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let err = |during| move |e| StoreError::sqlite(path, during, e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err("opening the database"))?;
    // SQLite silently falls back to read-only when the file is write-protected; a store that
    // cannot write audit records must not start.
    if conn
        .is_readonly(MAIN_DB)
        .map_err(err("checking the database is writable"))?
    {
        return Err(StoreError::ReadOnly {
            path: path.to_path_buf(),
        });
    }
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(err("setting the busy timeout"))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(err("switching to WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::WalUnavailable {
            path: path.to_path_buf(),
            mode,
        });
    }
    // FULL: a commit is on disk when it returns, so an acknowledged audit record survives a crash.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err("setting synchronous=FULL"))?;
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let err = |during| move |e| StoreError::sqlite(path, during, e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err("opening the database for reading"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(err("setting the busy timeout"))?;
    Ok(conn)
}

#[cfg(test)]
mod tests;
