//! The audit chain on PostgreSQL: the batch writer, reads and verification.
//!
//! An append batch takes `pg_advisory_xact_lock(AUDIT_LOCK)` first, so batches of all instances
//! are written one after another and each one continues the chain where the previous one (of
//! whichever instance) ended. Before writing, the writer checks that the last record is the one
//! the signed head names and that the head's signature verifies with the head's signer key, which
//! must be a registered signer — the same refusal to re-sign a tampered tail as on SQLite. An
//! instance registers its key with the first head it signs.

use std::collections::BTreeSet;

use ed25519_dalek::{SigningKey, VerifyingKey};
use postgres::{Client, Transaction};

use super::clock::NOW_MS_SQL;
use super::pool::{Fence, Pool};
use super::schema::AUDIT_LOCK;
use super::to_sql;
use crate::chain::{
    ChainWalker, GENESIS_HASH, RawHead, RawRecord, VerifyReport, decode_body, head_signature_ok,
    record_hash, sign_head,
};
use crate::error::StoreError;
use crate::event::{AuditEntry, AuditEvent};
use crate::queue::{BatchWriter, now_rfc3339};

/// A head as stored: seq, hash, signature, signer.
type Head = (u64, String, String, String);

/// The batch writer of one instance.
pub(crate) struct PgWriter {
    pub(crate) pool: Pool,
    pub(crate) key: SigningKey,
    /// The head this writer committed last; when the stored head is still that, its signature
    /// need not be verified again.
    pub(crate) last_head: Option<Head>,
}

impl BatchWriter for PgWriter {
    fn write_batch(&mut self, events: Vec<AuditEvent>) -> Result<Vec<AuditEntry>, StoreError> {
        let key = self.key.clone();
        let ours = self.last_head.clone();
        let target = self.pool.target().to_owned();
        let (entries, head) = self
            .pool
            .run("appending audit records", move |client, fence| {
                write(client, fence, &target, &key, ours.as_ref(), events)
            })?;
        self.last_head = Some(head);
        Ok(entries)
    }
}

fn write(
    client: &mut Client,
    fence: &Fence,
    target: &str,
    key: &SigningKey,
    ours: Option<&Head>,
    events: Vec<AuditEvent>,
) -> Result<(Vec<AuditEntry>, Head), StoreError> {
    let err = |during| move |e| StoreError::postgres(target, during, e);
    let mut tx = client
        .transaction()
        .map_err(err("starting an audit transaction"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
        .map_err(err("waiting for the audit chain"))?;
    let (mut seq, mut prev) = position(&mut tx, target, ours)?;
    let insert = tx
        .prepare("INSERT INTO audit (seq, prev_hash, hash, body) VALUES ($1, $2, $3, $4)")
        .map_err(err("preparing the audit insert"))?;
    let mut entries = Vec::with_capacity(events.len());
    for mut event in events {
        event.time = now_rfc3339();
        seq = seq.checked_add(1).ok_or(StoreError::Bug {
            what: "the audit sequence number overflowed",
        })?;
        let hash = record_hash(seq, &prev, &event)?;
        let body = serde_json::to_string(&event).map_err(|_| StoreError::Bug {
            what: "an audit event could not be serialized",
        })?;
        tx.execute(&insert, &[&to_sql(seq)?, &prev, &hash, &body])
            .map_err(err("writing an audit record"))?;
        entries.push(AuditEntry {
            seq,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
            event,
        });
    }
    let signature = sign_head(key, seq, &prev);
    let signer = hex::encode(key.verifying_key().to_bytes());
    if ours.is_none() {
        // The first head this instance signs: its key becomes a registered signer, in the
        // same transaction (readers such as `portcullis audit verify` never register one).
        register(&mut tx, target, &signer, "a gateway instance's key")?;
    }
    put_head(&mut tx, target, seq, &prev, &signature, &signer)?;
    // Past its deadline the batch is rolled back: its waiters were told it failed, and the
    // gateway denied their calls, so a record saying `allow` must not appear later.
    fence.pass()?;
    tx.commit().map_err(err("committing audit records"))?;
    Ok((entries, (seq, prev, signature, signer)))
}

/// Writes the signed head (insert or replace).
pub(crate) fn put_head(
    tx: &mut Transaction<'_>,
    target: &str,
    seq: u64,
    hash: &str,
    signature: &str,
    signer: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO chain_head (id, seq, hash, signature, signer) VALUES (1, $1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
             signature = excluded.signature, signer = excluded.signer",
        &[&to_sql(seq)?, &hash, &signature, &signer],
    )
    .map(|_| ())
    .map_err(|e| StoreError::postgres(target, "updating the signed chain head", e))
}

fn read_head(tx: &mut Transaction<'_>, target: &str) -> Result<Option<Head>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT seq, hash, signature, signer FROM chain_head WHERE id = 1",
            &[],
        )
        .map_err(|e| StoreError::postgres(target, "reading the chain head", e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let get = |e| StoreError::postgres(target, "reading the chain head", e);
    let seq: i64 = row.try_get(0).map_err(get)?;
    Ok(Some((
        u64::try_from(seq).unwrap_or(u64::MAX),
        row.try_get(1).map_err(get)?,
        row.try_get(2).map_err(get)?,
        row.try_get(3).map_err(get)?,
    )))
}

/// The registered key `hex`, if it is registered and a valid key.
fn registered_key(
    tx: &mut Transaction<'_>,
    target: &str,
    hex_key: &str,
) -> Result<Option<VerifyingKey>, StoreError> {
    let found = tx
        .query_opt(
            "SELECT 1 FROM audit_signers WHERE public_key = $1",
            &[&hex_key],
        )
        .map_err(|e| StoreError::postgres(target, "reading the audit signers", e))?;
    Ok(found.and_then(|_| parse_key(hex_key)))
}

pub(crate) fn parse_key(hex_key: &str) -> Option<VerifyingKey> {
    let bytes = hex::decode(hex_key).ok()?;
    let bytes = <[u8; 32]>::try_from(bytes.as_slice()).ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// The seq and hash the next record follows, after checking the tail against the signed head.
fn position(
    tx: &mut Transaction<'_>,
    target: &str,
    ours: Option<&Head>,
) -> Result<(u64, String), StoreError> {
    let tampered = |what: String| StoreError::ChainTampered {
        path: target.into(),
        what,
    };
    let head = read_head(tx, target)?;
    let last = tx
        .query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])
        .map_err(|e| StoreError::postgres(target, "reading the last audit record", e))?
        .map(|row| Ok::<_, postgres::Error>((row.try_get::<_, i64>(0)?, row.try_get(1)?)))
        .transpose()
        .map_err(|e| StoreError::postgres(target, "reading the last audit record", e))?;
    match (head, last) {
        (None, None) => Ok((0, GENESIS_HASH.to_owned())),
        (None, Some(_)) => Err(tampered(
            "there are records but no signed chain head".to_owned(),
        )),
        (Some(head), last) => {
            if ours != Some(&head) {
                let (seq, hash, signature, signer) = &head;
                let valid = registered_key(tx, target, signer)?
                    .is_some_and(|key| head_signature_ok(&key, *seq, hash, signature));
                if !valid {
                    return Err(tampered(
                        "the chain head's signature is not valid for a registered signer"
                            .to_owned(),
                    ));
                }
            }
            let (seq, hash, _, _) = head;
            let (last_seq, last_hash) = last.unwrap_or((0, GENESIS_HASH.to_owned()));
            if u64::try_from(last_seq).ok() != Some(seq) || last_hash != hash {
                return Err(tampered(format!(
                    "the signed head names record {seq}, but the last stored record is {last_seq}"
                )));
            }
            Ok((seq, hash))
        }
    }
}

/// Registers `public_key` as a key that may sign chain heads and receipts (idempotent).
pub(crate) fn register(
    tx: &mut Transaction<'_>,
    target: &str,
    public_key: &str,
    note: &str,
) -> Result<(), StoreError> {
    tx.execute(
        &format!(
            "INSERT INTO audit_signers (public_key, added_at, note) VALUES ($1, {NOW_MS_SQL}, $2)
             ON CONFLICT (public_key) DO NOTHING"
        ),
        &[&public_key, &note],
    )
    .map(|_| ())
    .map_err(|e| StoreError::postgres(target, "registering the signing key", e))
}

const PAGE: i64 = 10_000;

fn raw_rows(rows: Vec<postgres::Row>) -> Result<Vec<RawRecord>, postgres::Error> {
    rows.into_iter()
        .map(|row| {
            Ok(RawRecord {
                seq: row.try_get(0)?,
                prev_hash: row.try_get(1)?,
                hash: row.try_get(2)?,
                body: row.try_get(3)?,
            })
        })
        .collect()
}

fn entry(raw: RawRecord) -> Result<AuditEntry, StoreError> {
    let seq = u64::try_from(raw.seq).unwrap_or(0);
    let corrupt = |what: String| StoreError::CorruptRecord { seq, what };
    let body = raw
        .body
        .ok_or_else(|| corrupt("the body is missing".to_owned()))?;
    let event = decode_body(&body).map_err(corrupt)?;
    Ok(AuditEntry {
        seq,
        prev_hash: raw.prev_hash.unwrap_or_default(),
        hash: raw.hash.unwrap_or_default(),
        event,
    })
}

impl super::PgStore {
    fn query_entries(
        &self,
        sql: &'static str,
        a: i64,
        b: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let target = self.target().to_owned();
        let raws = self.pool.run("reading audit records", move |c, _| {
            c.query(sql, &[&a, &b])
                .and_then(raw_rows)
                .map_err(|e| StoreError::postgres(&target, "reading audit records", e))
        })?;
        raws.into_iter().map(entry).collect()
    }

    /// The last `n` records, oldest first.
    pub fn tail(&self, n: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.query_entries(
            "SELECT seq, prev_hash, hash, body FROM
               (SELECT seq, prev_hash, hash, body FROM audit WHERE seq > $2
                ORDER BY seq DESC LIMIT $1) AS last
             ORDER BY seq",
            n,
            0,
        )
    }

    /// Up to `limit` records with a seq greater than `seq`, oldest first.
    pub fn entries_after(&self, seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.query_entries(
            "SELECT seq, prev_hash, hash, body FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
            i64::try_from(seq).unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX),
        )
    }

    /// The public keys (hex) registered to sign the chain head, oldest first.
    pub fn signers(&self) -> Result<Vec<String>, StoreError> {
        let target = self.target().to_owned();
        self.pool.run("reading the audit signers", move |c, _| {
            c.query(
                "SELECT public_key FROM audit_signers ORDER BY added_at, public_key",
                &[],
            )
            .and_then(|rows| rows.iter().map(|r| r.try_get(0)).collect())
            .map_err(|e| StoreError::postgres(&target, "reading the audit signers", e))
        })
    }

    /// Walks the whole chain in one snapshot and checks the head, whose signature must verify
    /// with its signer's key, a registered signer.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.verify_trusting(None)
    }

    /// [`verify`](Self::verify), and with `trusted` (public keys, hex) also checks that the
    /// head's signer and every registered signer are among them. The signers are read in the
    /// same snapshot as the chain: read afterwards, a key registered, used to sign and deleted
    /// in between would go unseen.
    pub fn verify_trusting(
        &self,
        trusted: Option<&BTreeSet<String>>,
    ) -> Result<VerifyReport, StoreError> {
        let trusted = trusted.cloned();
        let target = self.target().to_owned();
        let fallback = self.verifying_key();
        self.pool.run("verifying the audit chain", move |c, _| {
            let err = |e| StoreError::postgres(&target, "verifying the audit chain", e);
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(err)?;
            let report = verify_in(&mut tx, &target, fallback, trusted.as_ref())?;
            tx.commit().map_err(err)?;
            Ok(report)
        })
    }
}

/// [`PgStore::verify_trusting`] inside the caller's transaction `tx`, whose snapshot it reads
/// (`store copy` verifies what it wrote before it commits). `fallback` is the key an
/// unregistered head signer is checked against.
pub(crate) fn verify_in(
    tx: &mut Transaction<'_>,
    target: &str,
    fallback: VerifyingKey,
    trusted: Option<&BTreeSet<String>>,
) -> Result<VerifyReport, StoreError> {
    let err = |e| StoreError::postgres(target, "verifying the audit chain", e);
    let head = read_head(tx, target)?;
    // An unregistered signer verifies against this instance's key, which fails unless the head
    // is in fact ours: the report then names a bad head signature.
    let key = match &head {
        Some((_, _, _, signer)) => registered_key(tx, target, signer)?,
        None => None,
    }
    .unwrap_or(fallback);
    let mut accepted: Vec<String> = match trusted {
        Some(_) => tx
            .query("SELECT public_key FROM audit_signers", &[])
            .and_then(|rows| rows.iter().map(|r| r.try_get(0)).collect())
            .map_err(err)?,
        None => Vec::new(),
    };
    if let Some((_, _, _, signer)) = &head {
        accepted.push(signer.clone());
    }
    let mut walker = ChainWalker::new();
    let mut after = 0_i64;
    loop {
        let rows = tx
            .query(
                "SELECT seq, prev_hash, hash, body FROM audit WHERE seq > $1
                 ORDER BY seq LIMIT $2",
                &[&after, &PAGE],
            )
            .and_then(raw_rows)
            .map_err(err)?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for raw in rows {
            walker.push(raw);
        }
    }
    let head = head.map(|(seq, hash, signature, _)| RawHead {
        seq: i64::try_from(seq).unwrap_or(i64::MAX),
        hash,
        signature,
    });
    Ok(walker.finish(head, &key).check_signers(accepted, trusted))
}
