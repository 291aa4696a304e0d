//! State for Portcullis: the tamper-evident audit chain, approvals and their signed receipts,
//! scope leases, rate-limit counters, tool pins and session liveness, behind one type, [`Store`]:
//! the embedded SQLite store in the state directory (the default), or a PostgreSQL database
//! shared by several gateway instances ([`PgStore`], `store: postgres://...`).
//!
//! Every decision the gateway makes is appended as an [`AuditEvent`] before the call is forwarded,
//! and every forwarded call gets an outcome record after it. Records are hash-chained and the
//! chain head is signed with the gateway's Ed25519 key, so [`Store::verify`] finds any edit,
//! deletion, insertion, reordering or truncation. An append is acknowledged only after the
//! transaction holding it has committed to disk; any failure is an `Err`, on which the gateway
//! denies the call.
//!
//! ```no_run
//! use portcullis_store::{AuditEvent, AuditKind, Store};
//!
//! # fn main() -> Result<(), portcullis_store::StoreError> {
//! // `Some("postgres://...")` instead of `None` for the shared store.
//! let store = Store::open(std::path::Path::new(".portcullis"), None)?;
//! let entry = store.append_blocking(AuditEvent {
//!     kind: AuditKind::Decision,
//!     time: String::new(), // set by the store
//!     decision_id: "d-1".into(),
//!     session: "s-1".into(),
//!     principal: None,
//!     agent: None,
//!     run: None,
//!     server: "fs".into(),
//!     tool: Some("read_file".into()),
//!     method: "tools/call".into(),
//!     effect: Some("read".into()),
//!     args_digest: None,
//!     args_redacted: None,
//!     decision: Some("allow".into()),
//!     enforced: true,
//!     rules: vec!["read-workspace".into()],
//!     reason: None,
//!     reason_class: None,
//!     policy_sha256: None,
//!     approval_id: None,
//!     lease_id: None,
//!     outcome: None,
//!     duration_us: None,
//! })?;
//! assert_eq!(entry.seq, 1);
//! assert!(store.verify()?.ok);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

// approvals: begin
mod approval;
mod jcs;
pub use approval::{
    Approval, ApprovalState, Channel, LIST_LIMIT, Lease, NewApproval, NewLease, Receipt,
    ReceiptBody, Resolution, ResolveError,
};
pub use jcs::{JcsError, canonical_json};
pub use sqlite::approvals::{ApprovalStore, Created, SESSION_STALE_MS, Taken};
// approvals: end
mod chain;
mod clock;
mod copy;
mod error;
mod event;
mod key;
mod pg;
mod queue;
mod sqlite;
mod store;

pub use chain::{
    GENESIS_HASH, VerifyProblem, VerifyProblemKind, VerifyReport, head_message, record_hash,
};
pub use copy::{CopyReport, copy_sqlite_to_postgres};
pub use error::StoreError;
pub use event::{AuditEntry, AuditEvent, AuditKind};
pub use pg::{
    OP_WAIT, POOL_SIZE, PgStore, SchemaStatus, check_schema, is_postgres_url, migrate_schema,
    redact_url,
};
pub use queue::QUEUE_CAPACITY;
pub use sqlite::{DB_FILE, Grant, PinRecord, PinStatus, Reservation, Reserved, SqliteStore};
pub use store::Store;
