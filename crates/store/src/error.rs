//! The store's error type.
//!
//! Every message says what failed, where (the path), and how to fix it. The type is `Clone` because
//! one failed group commit answers every waiter of the batch with the same error; wrapped library
//! errors are shared through `Arc` for that reason.

use std::path::PathBuf;
use std::sync::Arc;

/// Anything that can go wrong opening, writing or reading the store.
///
/// The gateway treats every one of these as a reason to deny: an audit record that was not written
/// must never let a call through.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The state directory (or the database file in it) could not be created.
    #[error(
        "cannot create `{path}` in the state directory: {source}\n\
         help: create it yourself (mode 0700) or point `--state-dir` at a writable directory"
    )]
    CreateStateDir {
        /// The directory or file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// The database opened, but only for reading.
    #[error(
        "the state database `{path}` can only be opened read-only, so no audit record could be written\n\
         help: make the state directory and the files in it writable by this user \
         (`chmod 700` on the directory, `chmod 600` on the files) or use another `--state-dir`"
    )]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },

    /// SQLite failed. `during` names the operation.
    #[error(
        "state database `{path}`: {during} failed: {source}\n\
         help: check that the disk is not full, that the file and its directory are writable, \
         and that no other program holds a lock on it"
    )]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What the store was doing, in words.
        during: &'static str,
        /// What SQLite said.
        #[source]
        source: Arc<rusqlite::Error>,
    },

    /// SQLite would not switch the database to write-ahead logging.
    #[error(
        "state database `{path}` cannot use write-ahead logging (journal mode stayed `{mode}`)\n\
         help: put the state directory on a local file system; network file systems do not support it"
    )]
    WalUnavailable {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported.
        mode: String,
    },

    /// The database was written by a newer Portcullis.
    #[error(
        "state database `{path}` has schema version {found}, but this build of portcullis only knows \
         versions up to {supported}\n\
         help: upgrade portcullis, or point `--state-dir` at another directory"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version recorded in the database.
        found: i64,
        /// The newest version this build can use.
        supported: i64,
    },

    /// The signing key file may be read by other users.
    #[error(
        "the signing key `{path}` can be accessed by group or others (mode {mode:03o}), so it is not secret\n\
         help: run `chmod 600 {path}` (and consider the key compromised if others could read it)"
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The signing key file could not be read or written.
    #[error(
        "cannot {during} the signing key `{path}`: {source}\n\
         help: make the state directory writable by this user, or remove a stale `{path}.tmp*` file"
    )]
    KeyIo {
        /// The key file.
        path: PathBuf,
        /// `read` or `create`.
        during: &'static str,
        /// What the operating system said.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// The signing key file is not a 64-digit hex Ed25519 secret key.
    #[error(
        "the signing key `{path}` is not valid: {reason}\n\
         help: restore the file from a backup; if it is lost, move it aside and a new key is made, \
         but audit heads signed with the old key then no longer verify"
    )]
    KeyInvalid {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The operating system could not provide randomness for a new key.
    #[error("cannot generate a signing key: the system random source failed: {source}")]
    Random {
        /// What the random source said.
        #[source]
        source: getrandom::Error,
    },

    /// The audit log no longer matches its signed head, so appending would hide tampering.
    #[error(
        "the audit log in `{path}` has been tampered with: {what}; no audit record can be written until \
         it is repaired\n\
         help: run `portcullis audit verify` to find the first bad record"
    )]
    ChainTampered {
        /// The database file.
        path: PathBuf,
        /// What does not match.
        what: String,
    },

    /// A stored audit record could not be decoded.
    #[error(
        "audit record {seq} in the state database is damaged: {what}\n\
         help: run `portcullis audit verify` to check the whole chain"
    )]
    CorruptRecord {
        /// The record's sequence number.
        seq: u64,
        /// What is wrong with it.
        what: String,
    },

    /// Too many audit records are waiting to be written.
    #[error(
        "the audit writer is {limit} records behind, so this record was refused\n\
         help: the disk is too slow for the call rate; the call is denied rather than left unaudited"
    )]
    QueueFull {
        /// The queue's capacity.
        limit: usize,
    },

    /// The writer thread is gone (the store was dropped or the thread failed to start).
    #[error(
        "the audit writer has stopped, so no audit record can be written; this is a bug, please report"
    )]
    WriterStopped,

    /// The `store:` URL (or `--store`) cannot be used.
    #[error(
        "the store `{url}` is not usable: {reason}\n\
         help: write it as `postgres://USER@HOST:PORT/DATABASE` (the password from an environment \
         variable: `postgres://portcullis:${{PG_PASSWORD}}@localhost:5432/portcullis`), or leave \
         `store` out for the embedded SQLite store"
    )]
    BadUrl {
        /// The URL as given, with any password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// PostgreSQL failed (refused the connection, dropped it, or refused a statement).
    #[error(
        "PostgreSQL store `{target}`: {during} failed: {}\n\
         help: check that the server is running and reachable, that the user may use the \
         database, and over TLS that the server's certificate names the host and chains to \
         `sslrootcert` (or a public CA); calls that need the store are denied until it is back",
        with_causes(.source.as_ref())
    )]
    Postgres {
        /// Where the database is (user, host, port, database; never the password).
        target: String,
        /// What the store was doing, in words.
        during: &'static str,
        /// What PostgreSQL (or the client) said.
        #[source]
        source: Arc<postgres::Error>,
    },

    /// PostgreSQL did not answer in time.
    #[error(
        "PostgreSQL store `{target}`: {during} did not finish within {seconds} s\n\
         help: the database is overloaded or unreachable; calls that need the store are denied \
         until it answers again"
    )]
    PostgresTimeout {
        /// Where the database is (never the password).
        target: String,
        /// What the store was doing, in words.
        during: &'static str,
        /// The limit that ran out.
        seconds: u64,
    },

    /// The PostgreSQL database was migrated by a newer Portcullis.
    #[error(
        "PostgreSQL store `{target}` has schema version {found}, but this build of portcullis only \
         knows versions up to {supported}\n\
         help: upgrade portcullis on this machine (every instance sharing the database must run a \
         build that knows its schema)"
    )]
    DatabaseSchemaTooNew {
        /// Where the database is (never the password).
        target: String,
        /// The version recorded in the database.
        found: i64,
        /// The newest version this build can use.
        supported: i64,
    },

    /// A tool's definition changed while it was being approved; the new one was not approved.
    #[error(
        "the definition of `{tool}` changed while it was being approved, so nothing was approved\n\
         help: look at the new definition (`portcullis pin list`) and approve it if it is right"
    )]
    PinChanged {
        /// `server.tool`.
        tool: String,
    },

    /// `portcullis store copy` refused to start.
    #[error(
        "cannot copy the state: {what}\n\
         help: copy a gateway's state directory (with `state.db`) into a new, empty database"
    )]
    CopyRefused {
        /// Why.
        what: String,
    },

    /// An invariant of the store was violated.
    #[error("internal error in the audit store: {what}; this is a bug, please report")]
    Bug {
        /// What went wrong.
        what: &'static str,
    },
}

impl StoreError {
    /// Wraps a PostgreSQL error with the database and the operation.
    pub(crate) fn postgres(target: &str, during: &'static str, source: postgres::Error) -> Self {
        StoreError::Postgres {
            target: target.to_owned(),
            during,
            source: Arc::new(source),
        }
    }

    /// `true` when the error says the store could not be reached or did not answer (as opposed
    /// to refusing something), so readiness checks can report it.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Postgres { .. } | StoreError::PostgresTimeout { .. }
        )
    }

    /// Wraps a SQLite error with the database path and the operation.
    pub(crate) fn sqlite(
        path: &std::path::Path,
        during: &'static str,
        source: rusqlite::Error,
    ) -> Self {
        StoreError::Sqlite {
            path: path.to_path_buf(),
            during,
            source: Arc::new(source),
        }
    }
}

/// An error and what caused it, `outer: inner: innermost`: the PostgreSQL client's own message
/// for a failed TLS handshake says only that it failed, the cause says why (an unknown issuer,
/// a name mismatch).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = inner.source();
    }
    text
}
