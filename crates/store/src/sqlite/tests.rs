//! Tests against real SQLite files in temporary directories. Tampering is done the way an attacker
//! with file access would: raw SQL on `state.db` through a second connection.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::json;
use tempfile::TempDir;

use super::{DB_FILE, SqliteStore};
use crate::chain::{GENESIS_HASH, VerifyProblem, VerifyProblemKind, record_hash};
use crate::error::StoreError;
use crate::event::{AuditEvent, AuditKind};

fn event(i: usize) -> AuditEvent {
    AuditEvent {
        kind: if i.is_multiple_of(2) {
            AuditKind::Decision
        } else {
            AuditKind::Outcome
        },
        time: "caller's time is replaced".to_owned(),
        decision_id: format!("d-{}", i / 2),
        session: "s-1".to_owned(),
        principal: Some("alice".to_owned()),
        agent: None,
        run: None,
        server: "fs".to_owned(),
        tool: Some("write_file".to_owned()),
        method: "tools/call".to_owned(),
        effect: Some("write".to_owned()),
        args_digest: Some("ab".repeat(32)),
        // Key order and a number beyond u64 must survive the round trip through the body.
        args_redacted: Some(
            json!({"z": 1, "a": "[redacted]", "n": 123456789012345678901234567890_u128}),
        ),
        decision: Some("allow".to_owned()),
        enforced: true,
        rules: vec!["write-src".to_owned()],
        reason: Some("matched write-src".to_owned()),
        reason_class: None,
        policy_sha256: Some("cd".repeat(32)),
        approval_id: None,
        lease_id: None,
        outcome: (!i.is_multiple_of(2)).then(|| "ok".to_owned()),
        duration_us: (!i.is_multiple_of(2)).then_some(1234),
    }
}

fn store_with(n: usize) -> (TempDir, SqliteStore) {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(&dir.path().join("state")).unwrap();
    for i in 0..n {
        store.append_blocking(event(i)).unwrap();
    }
    (dir, store)
}

fn raw(store: &SqliteStore) -> Connection {
    Connection::open(store.db_path()).unwrap()
}

fn problem(store: &SqliteStore) -> VerifyProblem {
    let report = store.verify().unwrap();
    assert!(!report.ok, "verify passed a tampered chain: {report:?}");
    report.problem.unwrap()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Whether file permissions stop this process from writing (they do not for root).
fn permissions_bind(dir: &Path) -> bool {
    let probe = dir.join("probe");
    std::fs::write(&probe, "x").unwrap();
    chmod(&probe, 0o444);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&probe)
        .is_err()
}

#[test]
fn appended_records_form_a_verifying_chain() {
    let (_dir, store) = store_with(5);
    let all = store.entries_after(0, 100).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(all[0].prev_hash, GENESIS_HASH);
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for entry in &all {
        assert_eq!(
            entry.hash,
            record_hash(entry.seq, &entry.prev_hash, &entry.event).unwrap()
        );
        assert!(entry.event.time.ends_with('Z'), "{}", entry.event.time);
        entry.event.time.parse::<jiff::Timestamp>().unwrap();
    }
    let mut expected = event(4);
    expected.time.clone_from(&all[4].event.time);
    assert_eq!(all[4].event, expected);

    let report = store.verify().unwrap();
    assert!(report.ok);
    assert_eq!(
        (report.records, report.head_seq, report.problem),
        (5, Some(5), None)
    );
}

#[test]
fn tail_and_entries_after_page_in_order() {
    let (_dir, store) = store_with(5);
    let seqs = |v: Vec<crate::AuditEntry>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.tail(2).unwrap()), [4, 5]);
    assert_eq!(seqs(store.tail(99).unwrap()), [1, 2, 3, 4, 5]);
    assert_eq!(seqs(store.entries_after(2, 2).unwrap()), [3, 4]);
    assert_eq!(seqs(store.entries_after(5, 10).unwrap()), Vec::<u64>::new());
}

#[test]
fn an_empty_store_verifies() {
    let (_dir, store) = store_with(0);
    let report = store.verify().unwrap();
    assert_eq!(
        (report.ok, report.records, report.head_seq),
        (true, 0, None)
    );
}

#[test]
fn an_edited_body_is_named_by_seq() {
    let (_dir, store) = store_with(5);
    let changed = raw(&store)
        .execute(
            "UPDATE audit SET body = replace(body, '\"allow\"', '\"deny\"') WHERE seq = 3",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let p = problem(&store);
    assert_eq!((p.seq, p.kind), (3, VerifyProblemKind::HashMismatch));
    assert_eq!(store.verify().unwrap().records, 5);
}

#[test]
fn a_body_not_in_the_written_form_is_named() {
    let (_dir, store) = store_with(3);
    raw(&store)
        .execute("UPDATE audit SET body = body || ' ' WHERE seq = 2", [])
        .unwrap();
    let p = problem(&store);
    assert_eq!((p.seq, p.kind), (2, VerifyProblemKind::BadBody));
    assert!(matches!(
        store.tail(1),
        Ok(v) if v.len() == 1
    ));
    assert!(matches!(
        store.entries_after(1, 1),
        Err(StoreError::CorruptRecord { seq: 2, .. })
    ));
}

#[test]
fn a_deleted_middle_record_is_a_seq_gap() {
    let (_dir, store) = store_with(5);
    raw(&store)
        .execute("DELETE FROM audit WHERE seq = 3", [])
        .unwrap();
    let p = problem(&store);
    assert_eq!((p.seq, p.kind), (4, VerifyProblemKind::SeqGap));
    assert!(p.what.contains("record 3 is missing"), "{}", p.what);
}

#[test]
fn a_deleted_last_record_does_not_match_the_signed_head() {
    let (_dir, store) = store_with(5);
    raw(&store)
        .execute("DELETE FROM audit WHERE seq = 5", [])
        .unwrap();
    let p = problem(&store);
    assert_eq!((p.seq, p.kind), (5, VerifyProblemKind::HeadMismatch));
    // The writer refuses to chain onto a truncated tail, which would re-sign and hide it.
    assert!(matches!(
        store.append_blocking(event(9)),
        Err(StoreError::ChainTampered { .. })
    ));
}

#[test]
fn swapped_bodies_are_named_at_the_first_of_them() {
    let (_dir, store) = store_with(5);
    let conn = raw(&store);
    let body = |seq: i64| -> String {
        conn.query_row("SELECT body FROM audit WHERE seq = ?1", [seq], |r| r.get(0))
            .unwrap()
    };
    let (second, fourth) = (body(2), body(4));
    conn.execute("UPDATE audit SET body = ?1 WHERE seq = 2", [&fourth])
        .unwrap();
    conn.execute("UPDATE audit SET body = ?1 WHERE seq = 4", [&second])
        .unwrap();
    let p = problem(&store);
    assert_eq!((p.seq, p.kind), (2, VerifyProblemKind::HashMismatch));
}

#[test]
fn reordered_records_break_the_prev_hash_link() {
    let (_dir, store) = store_with(5);
    let conn = raw(&store);
    conn.execute_batch(
        "UPDATE audit SET seq = 100 WHERE seq = 2;
         UPDATE audit SET seq = 2 WHERE seq = 4;
         UPDATE audit SET seq = 4 WHERE seq = 100;",
    )
    .unwrap();
    let p = problem(&store);
    assert_eq!((p.seq, p.kind), (2, VerifyProblemKind::PrevHashMismatch));
}

#[test]
fn a_forged_record_with_a_valid_hash_is_caught_by_the_head() {
    let (_dir, store) = store_with(5);
    // The attacker can compute hashes; only the signing key is out of reach.
    let last = store.tail(1).unwrap().remove(0);
    let forged = event(6);
    let hash = record_hash(6, &last.hash, &forged).unwrap();
    raw(&store)
        .execute(
            "INSERT INTO audit (seq, prev_hash, hash, body) VALUES (6, ?1, ?2, ?3)",
            (&last.hash, &hash, serde_json::to_string(&forged).unwrap()),
        )
        .unwrap();
    let p = problem(&store);
    assert_eq!((p.seq, p.kind), (6, VerifyProblemKind::HeadMismatch));
}

#[test]
fn a_tampered_head_signature_fails_and_stops_appends_until_restored() {
    let (_dir, store) = store_with(3);
    let conn = raw(&store);
    let signature: String = conn
        .query_row("SELECT signature FROM chain_head", [], |r| r.get(0))
        .unwrap();
    let forged = format!(
        "{}{}",
        if signature.starts_with('0') { "1" } else { "0" },
        &signature[1..]
    );
    conn.execute("UPDATE chain_head SET signature = ?1", [&forged])
        .unwrap();
    let p = problem(&store);
    assert_eq!(
        (p.seq, p.kind),
        (3, VerifyProblemKind::HeadSignatureInvalid)
    );
    let err = store.append_blocking(event(3)).unwrap_err();
    assert!(err.to_string().contains("signature is not valid"), "{err}");

    conn.execute("UPDATE chain_head SET signature = ?1", [&signature])
        .unwrap();
    assert_eq!(store.append_blocking(event(3)).unwrap().seq, 4);
    assert!(store.verify().unwrap().ok);
}

#[test]
fn a_deleted_head_is_reported() {
    let (_dir, store) = store_with(2);
    raw(&store).execute("DELETE FROM chain_head", []).unwrap();
    let p = problem(&store);
    assert_eq!((p.seq, p.kind), (2, VerifyProblemKind::HeadMissing));
}

#[test]
fn state_dir_and_key_are_private() {
    let (dir, store) = store_with(0);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("state")), 0o700);
    assert_eq!(mode(&dir.path().join("state/signing.key")), 0o600);
    assert_eq!(mode(store.db_path()), 0o600);
    store.append_blocking(event(0)).unwrap();
    assert_eq!(mode(&dir.path().join("state/state.db-wal")), 0o600);
    assert_eq!(store.public_key_hex().len(), 64);
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let (dir, store) = store_with(1);
    drop(store);
    let key = dir.path().join("state/signing.key");
    chmod(&key, 0o644);
    let err = SqliteStore::open(&dir.path().join("state")).unwrap_err();
    assert!(
        matches!(err, StoreError::KeyPermissions { mode: 0o644, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );
}

#[test]
fn a_damaged_key_file_is_refused() {
    let (dir, store) = store_with(0);
    drop(store);
    std::fs::write(dir.path().join("state/signing.key"), "not hex\n").unwrap();
    let err = SqliteStore::open(&dir.path().join("state")).unwrap_err();
    assert!(matches!(err, StoreError::KeyInvalid { .. }), "{err:?}");
}

#[test]
fn the_key_persists_and_the_chain_continues_after_reopen() {
    let (dir, store) = store_with(3);
    let key = store.public_key_hex();
    let last = store.tail(1).unwrap().remove(0);
    drop(store);

    let store = SqliteStore::open(&dir.path().join("state")).unwrap();
    assert_eq!(store.public_key_hex(), key);
    let next = store.append_blocking(event(3)).unwrap();
    assert_eq!((next.seq, next.prev_hash), (4, last.hash));
    let report = store.verify().unwrap();
    assert_eq!((report.ok, report.records), (true, 4));
}

#[test]
fn a_newer_schema_is_refused() {
    let (dir, store) = store_with(1);
    raw(&store)
        .execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    drop(store);
    let err = SqliteStore::open(&dir.path().join("state")).unwrap_err();
    let latest = super::schema::latest_version();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported,
                ..
            } if supported == latest
        ),
        "{err:?}"
    );
}

#[test]
fn a_state_dir_that_cannot_be_written_stops_the_open() {
    let dir = TempDir::new().unwrap();
    if permissions_bind(dir.path()) {
        let state = dir.path().join("state");
        drop(SqliteStore::open(&state).unwrap());
        chmod(&state.join(DB_FILE), 0o444);
        chmod(&state, 0o555);
        let err = SqliteStore::open(&state).unwrap_err();
        chmod(&state, 0o700);
        assert!(
            matches!(err, StoreError::ReadOnly { .. } | StoreError::Sqlite { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&state.display().to_string()),
            "{err}"
        );
    }
    // As root permissions do not bind; a state dir whose path is taken by a file fails for anyone.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "x").unwrap();
    let err = SqliteStore::open(&blocked.join("state")).unwrap_err();
    assert!(matches!(err, StoreError::CreateStateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("--state-dir"), "{err}");
    // And a database path taken by a directory.
    let state = dir.path().join("dbdir");
    std::fs::create_dir_all(state.join(DB_FILE)).unwrap();
    let err = SqliteStore::open(&state).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Sqlite {
                during: "opening the database",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_failed_write_is_an_error_and_the_writer_recovers() {
    // A real failure that works as root too: another connection holds the write lock, so the
    // writer's transaction times out with SQLITE_BUSY (as with a second gateway stuck mid-write).
    let (_dir, store) = store_with(2);
    let blocker = raw(&store);
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store.append_blocking(event(2)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Sqlite {
                during: "starting an audit transaction",
                ..
            }
        ),
        "{err:?}"
    );
    blocker.execute_batch("ROLLBACK").unwrap();

    let entry = store.append_blocking(event(3)).unwrap();
    assert_eq!(entry.seq, 3, "the failed record must not have taken a seq");
    assert!(store.verify().unwrap().ok);
}

#[test]
fn dropping_the_store_writes_what_is_queued() {
    let (dir, store) = store_with(0);
    let pending: Vec<_> = (0..20).map(|i| store.append(event(i))).collect();
    drop(store);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (i, fut) in pending.into_iter().enumerate() {
        assert_eq!(runtime.block_on(fut).unwrap().seq, i as u64 + 1);
    }
    let store = SqliteStore::open(&dir.path().join("state")).unwrap();
    assert_eq!(store.verify().unwrap().records, 20);
}

#[test]
fn concurrent_appends_share_commits_and_form_one_chain() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 50;
    let (_dir, store) = store_with(0);
    let mut seqs: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = &store;
                scope.spawn(move || {
                    let pending: Vec<_> = (0..PER_THREAD)
                        .map(|i| store.append(event(t * PER_THREAD + i)))
                        .collect();
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        let mut seqs = Vec::new();
                        for fut in pending {
                            seqs.push(fut.await.unwrap().seq);
                        }
                        seqs
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    seqs.sort_unstable();
    let total = (THREADS * PER_THREAD) as u64;
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    let report = store.verify().unwrap();
    assert_eq!(
        (report.ok, report.records, report.head_seq),
        (true, total, Some(total))
    );
    let commits = store.batches_committed();
    eprintln!("{total} appends in {commits} commits");
    assert!(
        commits >= 1 && commits < total,
        "{commits} commits for {total} appends"
    );
}

#[test]
fn a_deferred_record_is_committed_alone_when_nothing_follows() {
    let (_dir, store) = store_with(0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let entry = runtime.block_on(store.append_deferred(event(1))).unwrap();
    assert_eq!(entry.seq, 1);
    assert_eq!(store.batches_committed(), 1);
    assert_eq!(store.verify().unwrap().records, 1);
}

#[test]
fn deferred_and_urgent_records_keep_queue_order_and_share_a_commit() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // The outcome must wait (DEFER_MAX, 5 ms) for the decision and share its commit. Each
    // attempt checks that nothing was committed 1 ms after the outcome was queued; a thread
    // descheduled for longer than the deferral can miss that, so one attempt in five must see
    // it. Without the deferral the writer commits the outcome at once, in every attempt.
    let mut shared = 0;
    for _ in 0..5 {
        let (_dir, store) = store_with(0);
        let outcome = store.append_deferred(event(1));
        std::thread::sleep(Duration::from_millis(1));
        let waited = store.batches_committed() == 0;
        let decision = store.append(event(2));
        let (outcome, decision) = runtime.block_on(async { (outcome.await, decision.await) });
        assert_eq!((outcome.unwrap().seq, decision.unwrap().seq), (1, 2));
        assert!(store.verify().unwrap().ok);
        if waited && store.batches_committed() == 1 {
            shared += 1;
        }
    }
    assert!(shared >= 1, "the deferred record never waited for company");
}

#[test]
fn dropping_the_store_writes_deferred_records_at_once() {
    let (dir, store) = store_with(0);
    let pending: Vec<_> = (0..5).map(|i| store.append_deferred(event(i))).collect();
    drop(store);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (i, fut) in pending.into_iter().enumerate() {
        assert_eq!(runtime.block_on(fut).unwrap().seq, i as u64 + 1);
    }
    let store = SqliteStore::open(&dir.path().join("state")).unwrap();
    assert_eq!(store.verify().unwrap().records, 5);
}
