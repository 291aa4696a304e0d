//! The hash chain: how a record's hash is computed, what the signed head says, and the walk that
//! verifies a chain. Backend-independent, so every store verifies the same way.
//!
//! A record's hash is the sha256 (lower-case hex) of the JSON serialization of
//! `{"v":"portcullis-audit-v1","seq":SEQ,"prev_hash":"PREV","event":EVENT}`: a struct serialized by
//! `serde_json` in declaration order, no whitespace, every event field present in declaration
//! order, the redacted arguments with their key order and number text kept (`preserve_order`,
//! `arbitrary_precision`). The same event therefore always hashes the same. The seq inside the hash
//! stops a record from being moved; the prev_hash stops deletion, insertion and reordering; the
//! signed head stops truncation of the tail.

use std::collections::BTreeSet;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::event::AuditEvent;

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation for record hashes; change it only with a new chain format.
const RECORD_DOMAIN: &str = "portcullis-audit-v1";

/// The fields a record's hash covers, in their fixed order.
#[derive(Serialize)]
struct HashedRecord<'a> {
    v: &'static str,
    seq: u64,
    prev_hash: &'a str,
    event: &'a AuditEvent,
}

/// sha256 hex over the deterministic serialization of `(seq, prev_hash, event)` described in the
/// module documentation.
pub fn record_hash(seq: u64, prev_hash: &str, event: &AuditEvent) -> Result<String, StoreError> {
    let bytes = serde_json::to_vec(&HashedRecord {
        v: RECORD_DOMAIN,
        seq,
        prev_hash,
        event,
    })
    .map_err(|_| StoreError::Bug {
        what: "an audit event could not be serialized",
    })?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// The exact bytes the chain head signature covers: `portcullis-audit-head\n{seq}\n{hash}`.
pub fn head_message(seq: u64, hash: &str) -> String {
    format!("portcullis-audit-head\n{seq}\n{hash}")
}

/// Signs a chain head; returns the signature in hex.
pub(crate) fn sign_head(key: &SigningKey, seq: u64, hash: &str) -> String {
    hex::encode(key.sign(head_message(seq, hash).as_bytes()).to_bytes())
}

/// Whether `signature_hex` is a valid signature by `key` over the head `(seq, hash)`.
pub(crate) fn head_signature_ok(
    key: &VerifyingKey,
    seq: u64,
    hash: &str,
    signature_hex: &str,
) -> bool {
    let Ok(bytes) = hex::decode(signature_hex) else {
        return false;
    };
    let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
        return false;
    };
    let signature = Signature::from_bytes(&bytes);
    key.verify_strict(head_message(seq, hash).as_bytes(), &signature)
        .is_ok()
}

/// The result of walking a whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many records the chain holds.
    pub records: u64,
    /// The seq of the signed head, if there is one.
    pub head_seq: Option<u64>,
    /// `true` when every record and the head check out.
    pub ok: bool,
    /// The first problem found, when `ok` is `false`.
    pub problem: Option<VerifyProblem>,
    /// When verified against a trusted set of signers: the keys (hex) the store would accept
    /// that are not in it — the head's signer and every registered key, read in the snapshot the
    /// chain was checked in. `ok` is `false` when there is any.
    pub untrusted_signers: Vec<String>,
}

/// The first bad place in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyProblem {
    /// The seq of the record (or of the head) where the problem was found.
    pub seq: u64,
    /// Which kind of tampering this looks like.
    pub kind: VerifyProblemKind,
    /// What is wrong, in words.
    pub what: String,
}

/// The kinds of problem [`VerifyProblem`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyProblemKind {
    /// The body is not a valid audit event, or not in the exact form the gateway writes.
    BadBody,
    /// The stored hash does not match the record: the record was edited.
    HashMismatch,
    /// The record does not point at the one before it: a record was inserted or reordered.
    PrevHashMismatch,
    /// A sequence number is missing: a record was deleted.
    SeqGap,
    /// There are records but no signed head.
    HeadMissing,
    /// The head's signature is not valid for this gateway's key.
    HeadSignatureInvalid,
    /// The signed head does not name the last record: the tail was truncated or extended.
    HeadMismatch,
}

/// One stored row, as read back for verification; every column may have been tampered with.
#[derive(Debug, Clone)]
pub(crate) struct RawRecord {
    pub(crate) seq: i64,
    pub(crate) prev_hash: Option<String>,
    pub(crate) hash: Option<String>,
    pub(crate) body: Option<String>,
}

/// The signed head, as stored.
#[derive(Debug, Clone)]
pub(crate) struct RawHead {
    pub(crate) seq: i64,
    pub(crate) hash: String,
    pub(crate) signature: String,
}

/// Decodes a stored body and checks it is in the exact form the gateway writes, so that no edit
/// (an added field, a changed key order, different whitespace) goes unnoticed.
pub(crate) fn decode_body(body: &str) -> Result<AuditEvent, String> {
    let event: AuditEvent = serde_json::from_str(body)
        .map_err(|e| format!("the body is not a valid audit event ({e})"))?;
    let again = serde_json::to_string(&event)
        .map_err(|e| format!("the body cannot be serialized again ({e})"))?;
    if again != body {
        return Err("the body is not in the form the gateway writes: it was edited".to_owned());
    }
    Ok(event)
}

/// Walks records in seq order and stops at the first problem.
pub(crate) struct ChainWalker {
    records: u64,
    last_seq: u64,
    last_hash: String,
    problem: Option<VerifyProblem>,
}

impl VerifyReport {
    /// Checks the keys the store accepts as signers (`accepted`, hex, read in the snapshot the
    /// chain was verified in) against `trusted` (hex); nothing to check without a trusted set.
    pub(crate) fn check_signers(
        mut self,
        accepted: impl IntoIterator<Item = String>,
        trusted: Option<&BTreeSet<String>>,
    ) -> VerifyReport {
        let Some(trusted) = trusted else {
            return self;
        };
        let trusted: BTreeSet<String> = trusted.iter().map(|k| k.to_ascii_lowercase()).collect();
        let accepted: BTreeSet<String> = accepted
            .into_iter()
            .map(|k| k.to_ascii_lowercase())
            .collect();
        self.untrusted_signers = accepted.difference(&trusted).cloned().collect();
        self.ok &= self.untrusted_signers.is_empty();
        self
    }
}

impl ChainWalker {
    /// A walker at the genesis of a chain.
    pub(crate) fn new() -> Self {
        ChainWalker {
            records: 0,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_owned(),
            problem: None,
        }
    }

    /// Whether a problem was found; later records are only counted.
    pub(crate) fn failed(&self) -> bool {
        self.problem.is_some()
    }

    fn fail(&mut self, seq: u64, kind: VerifyProblemKind, what: String) {
        if self.problem.is_none() {
            self.problem = Some(VerifyProblem { seq, kind, what });
        }
    }

    /// Checks the next record.
    pub(crate) fn push(&mut self, row: RawRecord) {
        self.records = self.records.saturating_add(1);
        if self.failed() {
            return;
        }
        let expected = self.last_seq.saturating_add(1);
        let seq = u64::try_from(row.seq).unwrap_or(0);
        if seq != expected {
            let what = if seq > expected {
                format!(
                    "record {expected} is missing (record {seq} follows record {}): records were deleted",
                    self.last_seq
                )
            } else {
                format!(
                    "record {} has an impossible sequence number: a record was inserted",
                    row.seq
                )
            };
            self.fail(seq, VerifyProblemKind::SeqGap, what);
            return;
        }
        let Some(body) = row.body else {
            self.fail(
                seq,
                VerifyProblemKind::BadBody,
                "the body is empty".to_owned(),
            );
            return;
        };
        let event = match decode_body(&body) {
            Ok(event) => event,
            Err(what) => {
                self.fail(seq, VerifyProblemKind::BadBody, what);
                return;
            }
        };
        let prev_hash = row.prev_hash.unwrap_or_default();
        if prev_hash != self.last_hash {
            self.fail(
                seq,
                VerifyProblemKind::PrevHashMismatch,
                format!(
                    "the record does not follow record {}: records were inserted, deleted or reordered",
                    self.last_seq
                ),
            );
            return;
        }
        let stored = row.hash.unwrap_or_default();
        match record_hash(seq, &prev_hash, &event) {
            Ok(computed) if computed == stored => {}
            Ok(_) => {
                self.fail(
                    seq,
                    VerifyProblemKind::HashMismatch,
                    "the stored hash does not match the record: the record was edited".to_owned(),
                );
                return;
            }
            Err(e) => {
                self.fail(seq, VerifyProblemKind::BadBody, e.to_string());
                return;
            }
        }
        self.last_seq = seq;
        self.last_hash = stored;
    }

    /// Checks the signed head against the last record and finishes the report.
    pub(crate) fn finish(mut self, head: Option<RawHead>, key: &VerifyingKey) -> VerifyReport {
        let head_seq = head.as_ref().and_then(|h| u64::try_from(h.seq).ok());
        if !self.failed() {
            self.check_head(head, key);
        }
        VerifyReport {
            records: self.records,
            head_seq,
            ok: self.problem.is_none(),
            problem: self.problem,
            untrusted_signers: Vec::new(),
        }
    }

    fn check_head(&mut self, head: Option<RawHead>, key: &VerifyingKey) {
        let Some(head) = head else {
            if self.records > 0 {
                self.fail(
                    self.last_seq,
                    VerifyProblemKind::HeadMissing,
                    "there are records but no signed chain head: the head was deleted".to_owned(),
                );
            }
            return;
        };
        let Ok(head_seq) = u64::try_from(head.seq) else {
            self.fail(
                0,
                VerifyProblemKind::HeadMismatch,
                format!(
                    "the chain head has an impossible sequence number {}",
                    head.seq
                ),
            );
            return;
        };
        if !head_signature_ok(key, head_seq, &head.hash, &head.signature) {
            self.fail(
                head_seq,
                VerifyProblemKind::HeadSignatureInvalid,
                "the chain head's signature is not valid for this gateway's key: the head was forged \
                 or the signing key was replaced"
                    .to_owned(),
            );
            return;
        }
        if head_seq != self.last_seq || head.hash != self.last_hash {
            // Name the first record that is missing or should not be there.
            let (seq, what) = if head_seq > self.last_seq {
                (
                    self.last_seq.saturating_add(1),
                    format!(
                        "the signed head names record {head_seq}, but the last record is {}: records at \
                         the end were deleted",
                        self.last_seq
                    ),
                )
            } else if head_seq < self.last_seq {
                (
                    head_seq.saturating_add(1),
                    format!(
                        "records after the signed head (record {head_seq}) were added without the \
                         gateway's key"
                    ),
                )
            } else {
                (
                    head_seq,
                    "the signed head's hash does not match the last record: the tail was replaced"
                        .to_owned(),
                )
            };
            self.fail(seq, VerifyProblemKind::HeadMismatch, what);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{GENESIS_HASH, head_message, record_hash};
    use crate::event::{AuditEvent, AuditKind};

    fn fixed_event() -> AuditEvent {
        AuditEvent {
            kind: AuditKind::Decision,
            time: "2026-01-02T03:04:05.678901Z".to_owned(),
            decision_id: "d-1".to_owned(),
            session: "s-1".to_owned(),
            principal: None,
            agent: None,
            run: None,
            server: "fs".to_owned(),
            tool: Some("read_file".to_owned()),
            method: "tools/call".to_owned(),
            effect: Some("read".to_owned()),
            args_digest: None,
            args_redacted: Some(json!({"path": "/ws/a", "n": 1.50})),
            decision: Some("deny".to_owned()),
            enforced: true,
            rules: vec!["r1".to_owned()],
            reason: None,
            reason_class: Some("default".to_owned()),
            policy_sha256: None,
            approval_id: None,
            lease_id: None,
            outcome: None,
            duration_us: None,
        }
    }

    /// Pins the hashed form: a change here breaks every existing chain and needs a new
    /// `RECORD_DOMAIN`, not a new expected value.
    #[test]
    fn record_hash_format_is_pinned() {
        let hash = record_hash(1, GENESIS_HASH, &fixed_event()).unwrap();
        assert_eq!(hash, PINNED_HASH);
    }

    // Computed independently: sha256 of the compact JSON in the module docs (Python `json.dumps`
    // with `separators=(",", ":")` gives the same bytes).
    const PINNED_HASH: &str = "b76729051c16b1672b5fdf18aa2fe2dbd4fa140e2a45123f2d32a32de0eb9b72";

    #[test]
    fn the_hash_covers_seq_and_prev_hash() {
        let event = fixed_event();
        let base = record_hash(1, GENESIS_HASH, &event).unwrap();
        assert_ne!(record_hash(2, GENESIS_HASH, &event).unwrap(), base);
        assert_ne!(record_hash(1, &"1".repeat(64), &event).unwrap(), base);
    }

    #[test]
    fn the_head_message_is_exact() {
        assert_eq!(head_message(7, "ab"), "portcullis-audit-head\n7\nab");
    }
}
