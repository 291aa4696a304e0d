//! The types of approvals, receipts and leases, independent of the database.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::jcs::canonical_json;

mod rows;

pub(crate) use rows::{APPROVAL_COLUMNS, LEASE_COLUMNS, approval_from_row, lease_from_row};

/// The most approvals one `list` returns (newest first); [`count`](crate::Store::count) says how
/// many there are in all, so a listing can say what it left out.
pub const LIST_LIMIT: usize = 1000;

/// Where an approval stands. Only `pending` can be resolved; only `approved` can be used, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for a human.
    Pending,
    /// A human approved it; the call may go through once.
    Approved,
    /// A human denied it.
    Denied,
    /// Its time ran out, its hold timed out, or its gateway session ended.
    Expired,
    /// It was approved and the call went through; it cannot be used again.
    Used,
}

impl ApprovalState {
    /// The stable name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Used => "used",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            "used" => Self::Used,
            _ => return None,
        })
    }
}

/// How a human resolved an approval. Closed set; the receipt records it with its assurance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// `portcullis approvals approve|deny` on the gateway's machine.
    Cli,
    /// The HTTP admin API (or the web page, which uses it) with the admin token.
    Admin,
    /// MCP elicitation: the human answered inside the client that made the call. Lower assurance:
    /// the client is the agent's own host, so the gateway cannot tell a human's click from the
    /// client answering by itself.
    Elicitation,
}

impl Channel {
    /// The stable name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Admin => "admin",
            Self::Elicitation => "elicitation",
        }
    }

    /// `standard`, or `lower` for elicitation.
    #[must_use]
    pub fn assurance(self) -> &'static str {
        match self {
            Self::Cli | Self::Admin => "standard",
            Self::Elicitation => "lower",
        }
    }
}

/// A new pending approval, as the gateway creates it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApproval {
    /// The approval id (`a-` and 32 hex digits).
    pub id: String,
    /// sha256 hex of the canonical call (see the gateway's `call_digest`).
    pub digest: String,
    /// The gateway session the call belongs to.
    pub session: String,
    /// The call's principal, if any.
    pub principal: Option<String>,
    /// The configured server.
    pub server: String,
    /// The tool (prompt name, resource URI).
    pub tool: String,
    /// The MCP method.
    pub method: String,
    /// The exact arguments, for the human to read.
    pub arguments: Value,
    /// The effect class.
    pub effect: String,
    /// The rules that asked for the approval, comma-separated.
    pub rule: String,
    /// The engine's reason.
    pub reason: String,
    /// `hold` or `retry`.
    pub mode: String,
    /// The approver must differ from the principal.
    pub separate_approver: bool,
    /// How long the approval is valid from now, in milliseconds.
    pub ttl_ms: u64,
    /// The decision id of the call that created it.
    pub decision_id: String,
}

/// One approval as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// The approval id.
    pub id: String,
    /// Where it stands.
    pub state: ApprovalState,
    /// sha256 hex of the canonical call.
    pub digest: String,
    /// The gateway session.
    pub session: String,
    /// The call's principal.
    pub principal: Option<String>,
    /// The server.
    pub server: String,
    /// The tool.
    pub tool: String,
    /// The method.
    pub method: String,
    /// The exact arguments.
    pub arguments: Value,
    /// The effect class.
    pub effect: String,
    /// The rules that asked.
    pub rule: String,
    /// The engine's reason.
    pub reason: String,
    /// `hold` or `retry`.
    pub mode: String,
    /// Whether the approver must differ from the principal.
    pub separate_approver: bool,
    /// The decision id of the call that created it.
    pub decision_id: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it stops being valid (RFC 3339).
    pub expires_at: String,
    /// When it was resolved, expired or used.
    pub resolved_at: Option<String>,
    /// Who resolved it.
    pub approver: Option<String>,
    /// Through which channel.
    pub channel: Option<String>,
    /// The approver's note, or why it expired.
    pub note: Option<String>,
    /// The receipt of its resolution.
    pub receipt_id: Option<String>,
}

/// What a human decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Approve (`true`) or deny.
    pub approve: bool,
    /// Who decides (claimed by the CLI user, the token holder, or the client for elicitation).
    pub approver: String,
    /// Through which channel.
    pub channel: Channel,
    /// A note for the record.
    pub note: Option<String>,
}

/// Why a resolution was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// No approval has this id.
    #[error("no approval `{0}`")]
    NotFound(String),
    /// It is not pending any more.
    #[error("approval `{id}` is {state}, not pending; it cannot be resolved again")]
    NotPending {
        /// The approval id.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// Its ttl ran out or its gateway session ended.
    #[error("approval `{id}` has expired: {why}")]
    Expired {
        /// The approval id.
        id: String,
        /// Why.
        why: String,
    },
    /// The rule asks for a separate approver and this one is the call's principal (or the call
    /// has no principal to compare with).
    #[error("approval `{id}` needs a separate approver: {why}")]
    SameApprover {
        /// The approval id.
        id: String,
        /// Why.
        why: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The signed fields of an approval receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    /// Format marker, `portcullis-approval-receipt-v1`.
    pub v: String,
    /// The receipt id (`r-` and 32 hex digits).
    pub id: String,
    /// The approval it resolves.
    pub approval_id: String,
    /// The call digest the approval is bound to.
    pub digest: String,
    /// `approved` or `denied`.
    pub decision: String,
    /// Who decided.
    pub approver: String,
    /// The channel (`cli`, `admin`, `elicitation`).
    pub channel: String,
    /// `standard`, or `lower` for elicitation.
    pub assurance: String,
    /// When (RFC 3339).
    pub time: String,
    /// Until when the approval could be used (RFC 3339).
    pub expires_at: String,
    /// The call's server, tool, session and principal, for people reading the receipt.
    pub server: String,
    /// The tool.
    pub tool: String,
    /// The session.
    pub session: String,
    /// The principal.
    pub principal: Option<String>,
    /// The approver's note.
    pub note: Option<String>,
}

/// Domain separation of receipt signatures.
const RECEIPT_DOMAIN: &str = "portcullis-approval-receipt-v1\n";

/// A receipt with its Ed25519 signature over `portcullis-approval-receipt-v1\n` followed by the
/// RFC 8785 canonical JSON of the body, and the public key that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The signed fields.
    pub body: ReceiptBody,
    /// The signature, hex.
    pub signature: String,
    /// The gateway's public key, hex (informational: verify against the key you trust).
    pub public_key: String,
}

fn receipt_message(body: &ReceiptBody) -> Result<String, StoreError> {
    let value = serde_json::to_value(body).map_err(|_| StoreError::Bug {
        what: "a receipt could not be serialized",
    })?;
    let canonical = canonical_json(&value).map_err(|_| StoreError::Bug {
        what: "a receipt has no canonical form",
    })?;
    Ok(format!("{RECEIPT_DOMAIN}{canonical}"))
}

impl Receipt {
    /// Signs `body` with `key`.
    pub(crate) fn sign(body: ReceiptBody, key: &SigningKey) -> Result<Self, StoreError> {
        let message = receipt_message(&body)?;
        Ok(Receipt {
            signature: hex::encode(key.sign(message.as_bytes()).to_bytes()),
            public_key: hex::encode(key.verifying_key().to_bytes()),
            body,
        })
    }

    /// Whether the signature is valid for `key` (strict Ed25519 verification).
    #[must_use]
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let Ok(message) = receipt_message(&self.body) else {
            return false;
        };
        let Ok(bytes) = hex::decode(&self.signature) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        key.verify_strict(message.as_bytes(), &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

/// A new scope lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLease {
    /// The lease id (`l-` and 32 hex digits).
    pub id: String,
    /// Only calls of this session (one of `session` and `principal` is set).
    pub session: Option<String>,
    /// Only calls of this principal.
    pub principal: Option<String>,
    /// Only calls to this server (all servers when absent).
    pub server: Option<String>,
    /// The tool glob.
    pub tool: String,
    /// `(argument name, directory)`: the argument must be a path under the directory.
    pub args_under: Vec<(String, String)>,
    /// How long from now, in milliseconds.
    pub ttl_ms: u64,
    /// How many calls it covers.
    pub max_calls: u64,
    /// Who granted it.
    pub granted_by: String,
    /// A note for the record.
    pub note: Option<String>,
}

/// A scope lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The lease id.
    pub id: String,
    /// The session it is for.
    pub session: Option<String>,
    /// The principal it is for.
    pub principal: Option<String>,
    /// The server it is for.
    pub server: Option<String>,
    /// The tool glob.
    pub tool: String,
    /// `(argument, directory)` pairs.
    pub args_under: Vec<(String, String)>,
    /// When granted.
    pub created_at: String,
    /// When it ends.
    pub expires_at: String,
    /// How many calls it covers.
    pub max_calls: u64,
    /// How many it has covered.
    pub used_calls: u64,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// Who granted it.
    pub granted_by: String,
    /// The note.
    pub note: Option<String>,
    /// Whether it can still cover a call now.
    pub active: bool,
}

/// Unix milliseconds as RFC 3339 with milliseconds, as approvals and leases show times.
pub(crate) fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_else(|_| ms.to_string())
}

/// A count or duration for a database integer column (saturating; such values are never near it).
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Refuses an approval by the wrong party when the rule asks for a separate approver.
pub(crate) fn check_separation(
    approval: &Approval,
    resolution: &Resolution,
) -> Result<(), ResolveError> {
    if !resolution.approve || !approval.separate_approver {
        return Ok(());
    }
    let id = approval.id.clone();
    match &approval.principal {
        None => {
            return Err(ResolveError::SameApprover {
                id,
                why: "the call has no principal to compare the approver with, so separation cannot be shown (run the gateway with --principal)".to_owned(),
            });
        }
        Some(principal) if principal == &resolution.approver => {
            return Err(ResolveError::SameApprover {
                id,
                why: format!("`{principal}` made the call and cannot approve it"),
            });
        }
        Some(_) => {}
    }
    if resolution.channel == Channel::Elicitation {
        return Err(ResolveError::SameApprover {
            id,
            why: "the client that made the call cannot approve it".to_owned(),
        });
    }
    Ok(())
}

/// The signed receipt of resolving pending `approval` with `resolution` at `now_ms`.
pub(crate) fn signed_receipt(
    approval: &Approval,
    resolution: &Resolution,
    now_ms: i64,
    key: &SigningKey,
) -> Result<Receipt, StoreError> {
    let decision = if resolution.approve {
        "approved"
    } else {
        "denied"
    };
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|source| StoreError::Random { source })?;
    let body = ReceiptBody {
        v: "portcullis-approval-receipt-v1".to_owned(),
        id: format!("r-{}", hex::encode(random)),
        approval_id: approval.id.clone(),
        digest: approval.digest.clone(),
        decision: decision.to_owned(),
        approver: resolution.approver.clone(),
        channel: resolution.channel.as_str().to_owned(),
        assurance: resolution.channel.assurance().to_owned(),
        time: rfc3339(now_ms),
        expires_at: approval.expires_at.clone(),
        server: approval.server.clone(),
        tool: approval.tool.clone(),
        session: approval.session.clone(),
        principal: approval.principal.clone(),
        note: resolution.note.clone(),
    };
    Receipt::sign(body, key)
}
