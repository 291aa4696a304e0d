//! Reads: the tail of the log, records after a seq, and the full verification walk.

use std::path::Path;

use ed25519_dalek::VerifyingKey;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Params, Row, params};

use crate::chain::{ChainWalker, RawHead, RawRecord, VerifyReport, decode_body};
use crate::error::StoreError;
use crate::event::AuditEntry;

/// A text column, or `None` when it holds anything else (it may have been tampered with).
fn text(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<String>> {
    Ok(match row.get_ref(index)? {
        ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec()).ok(),
        _ => None,
    })
}

fn raw_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        seq: row.get(0)?,
        prev_hash: text(row, 1)?,
        hash: text(row, 2)?,
        body: text(row, 3)?,
    })
}

/// Turns a stored row into an entry, without checking the chain (that is `verify`'s job).
fn entry(raw: RawRecord) -> Result<AuditEntry, StoreError> {
    let seq = u64::try_from(raw.seq).unwrap_or(0);
    let corrupt = |what: String| StoreError::CorruptRecord { seq, what };
    let body = raw
        .body
        .ok_or_else(|| corrupt("the body is not text".to_owned()))?;
    let event = decode_body(&body).map_err(corrupt)?;
    Ok(AuditEntry {
        seq,
        prev_hash: raw.prev_hash.unwrap_or_default(),
        hash: raw.hash.unwrap_or_default(),
        event,
    })
}

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn query_entries(
    conn: &Connection,
    path: &Path,
    sql: &str,
    args: impl Params,
) -> Result<Vec<AuditEntry>, StoreError> {
    let err = |e| StoreError::sqlite(path, "reading audit records", e);
    let mut stmt = conn.prepare_cached(sql).map_err(err)?;
    let raws = stmt
        .query_map(args, raw_record)
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    raws.into_iter().map(entry).collect()
}

/// The last `n` records, oldest first.
pub(crate) fn tail(
    conn: &Connection,
    path: &Path,
    n: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let n = to_sql(u64::try_from(n).unwrap_or(u64::MAX));
    query_entries(
        conn,
        path,
        "SELECT seq, prev_hash, hash, body FROM
           (SELECT seq, prev_hash, hash, body FROM audit ORDER BY seq DESC LIMIT ?1)
         ORDER BY seq",
        params![n],
    )
}

/// Up to `limit` records after `seq`, oldest first.
pub(crate) fn entries_after(
    conn: &Connection,
    path: &Path,
    seq: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let limit = to_sql(u64::try_from(limit).unwrap_or(u64::MAX));
    query_entries(
        conn,
        path,
        "SELECT seq, prev_hash, hash, body FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        params![to_sql(seq), limit],
    )
}

/// Walks every record in one read transaction and checks the head against the last one.
pub(crate) fn verify(
    conn: &mut Connection,
    path: &Path,
    key: &VerifyingKey,
) -> Result<VerifyReport, StoreError> {
    let err = |during| move |e| StoreError::sqlite(path, during, e);
    // One snapshot for the head and the records, so a concurrent append cannot look like tampering.
    let tx = conn
        .transaction()
        .map_err(err("starting a read transaction"))?;
    let report = verify_in(&tx, path, key)?;
    tx.finish().map_err(err("ending the read transaction"))?;
    Ok(report)
}

/// [`verify`] inside the caller's read transaction `tx` (`store copy` reads what it copies in
/// the same snapshot).
pub(crate) fn verify_in(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    key: &VerifyingKey,
) -> Result<VerifyReport, StoreError> {
    let err = |during| move |e| StoreError::sqlite(path, during, e);
    let head = tx
        .query_row(
            "SELECT seq, hash, signature FROM chain_head WHERE id = 1",
            [],
            |row| {
                Ok(RawHead {
                    seq: row.get(0)?,
                    hash: text(row, 1)?.unwrap_or_default(),
                    signature: text(row, 2)?.unwrap_or_default(),
                })
            },
        )
        .optional()
        .map_err(err("reading the chain head"))?;
    let mut walker = ChainWalker::new();
    {
        let mut stmt = tx
            .prepare("SELECT seq, prev_hash, hash, body FROM audit ORDER BY seq")
            .map_err(err("reading audit records"))?;
        let mut rows = stmt.query([]).map_err(err("reading audit records"))?;
        while let Some(row) = rows.next().map_err(err("reading audit records"))? {
            // Past the first problem the walker only counts.
            walker.push(raw_record(row).map_err(err("reading audit records"))?);
        }
    }
    Ok(walker.finish(head, key))
}
