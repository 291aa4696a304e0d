//! The audit record: what the gateway writes for every decision and every outcome.

use serde::{Deserialize, Serialize};

/// Which of the two records of a call this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// Written when a call was decided, before it is forwarded.
    Decision,
    /// Written after a forwarded call came back (or failed).
    Outcome,
}

/// The body of one audit record. The caller fills every field except `time`, which the store sets
/// when it appends the record.
///
/// Every field is always serialized (absent values as `null`) and unknown fields are refused when a
/// record is read back, so a stored body has exactly one form and any edit to it is visible to
/// [`verify`](crate::SqliteStore::verify).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Decision or outcome.
    pub kind: AuditKind,
    /// RFC 3339 time in UTC, with microseconds. Set by the store; a value given by the caller is
    /// replaced.
    pub time: String,
    /// The id of the decision; an outcome record carries the id of its decision.
    pub decision_id: String,
    /// The session the call belongs to.
    pub session: String,
    /// The authenticated principal, when there is one.
    pub principal: Option<String>,
    /// The agent the client named, when it named one.
    pub agent: Option<String>,
    /// The run the client named, when it named one.
    pub run: Option<String>,
    /// The configured server the call is for.
    pub server: String,
    /// The tool called (for `tools/call`).
    pub tool: Option<String>,
    /// The JSON-RPC method.
    pub method: String,
    /// The effect class of the call.
    pub effect: Option<String>,
    /// sha256 hex of the exact arguments, computed by the caller: it binds the call even where the
    /// stored arguments are redacted.
    pub args_digest: Option<String>,
    /// The arguments with secrets redacted.
    pub args_redacted: Option<serde_json::Value>,
    /// `allow`, `deny`, `require_approval` or `kill_session`.
    pub decision: Option<String>,
    /// `false` when the gateway only observed (observe mode) and did not enforce the decision.
    pub enforced: bool,
    /// The ids of the rules that produced the decision.
    pub rules: Vec<String>,
    /// The reason for the decision, in words.
    pub reason: Option<String>,
    /// The closed reason class of a denial (tool-identity, argument, ...).
    pub reason_class: Option<String>,
    /// sha256 hex of the policy in force.
    pub policy_sha256: Option<String>,
    /// The approval that let the call through, if any.
    pub approval_id: Option<String>,
    /// The lease that let the call through, if any.
    pub lease_id: Option<String>,
    /// For outcome records: `ok`, `tool_error`, `rpc_error`, `upstream_closed`, ...
    pub outcome: Option<String>,
    /// For outcome records: how long the call took upstream, in microseconds.
    pub duration_us: Option<u64>,
}

/// One record of the audit chain as stored: the event with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1 with no gaps.
    pub seq: u64,
    /// The `hash` of the record before this one; 64 zeros for the first record.
    pub prev_hash: String,
    /// sha256 hex of this record (see [`record_hash`](crate::record_hash)).
    pub hash: String,
    /// The record's body.
    pub event: AuditEvent,
}
