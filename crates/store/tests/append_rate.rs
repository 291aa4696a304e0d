//! A measurement, not a test (ignored by default; nothing here asserts time): audit appends and
//! counter reservations per second on each engine, with one and two store instances, for the
//! sizing figures in docs/deployment.md. Run it against a durable cluster:
//!
//! ```sh
//! dir=$(mktemp -d); PG_CLUSTER_FSYNC=on scripts/pg-cluster start "$dir" --watch $$
//! PORTCULLIS_TEST_POSTGRES=$(scripts/pg-cluster url "$dir") \
//!     cargo test --release -p portcullis-store --test append_rate -- --ignored --nocapture
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout,
    reason = "test code"
)]

use std::sync::Arc;
use std::time::Instant;

use portcullis_store::{AuditEvent, AuditKind, Reservation, Store};

const APPENDS: usize = 20_000;
const IN_FLIGHT: usize = 256;
const RESERVATIONS: usize = 4_000;
const SEQUENTIAL: usize = 300;
const THREADS: usize = 16;

fn event(i: usize) -> AuditEvent {
    AuditEvent {
        kind: AuditKind::Decision,
        time: String::new(),
        decision_id: format!("d-{i}"),
        session: "s-1".to_owned(),
        principal: Some("alice".to_owned()),
        agent: None,
        run: None,
        server: "fs".to_owned(),
        tool: Some("read_text_file".to_owned()),
        method: "tools/call".to_owned(),
        effect: Some("read".to_owned()),
        args_digest: Some("ab".repeat(32)),
        args_redacted: Some(serde_json::json!({"path": format!("/ws/file-{i}.txt")})),
        decision: Some("allow".to_owned()),
        enforced: true,
        rules: vec!["read-workspace".to_owned()],
        reason: None,
        reason_class: None,
        policy_sha256: Some("cd".repeat(32)),
        approval_id: None,
        lease_id: None,
        outcome: None,
        duration_us: None,
    }
}

fn measure(name: &str, stores: &[Arc<Store>]) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    rt.block_on(async {
        let mut pending = std::collections::VecDeque::new();
        for i in 0..APPENDS {
            pending.push_back(stores[i % stores.len()].append(event(i)));
            if pending.len() >= IN_FLIGHT {
                pending.pop_front().unwrap().await.unwrap();
            }
        }
        for p in pending {
            p.await.unwrap();
        }
    });
    let appends = APPENDS as f64 / start.elapsed().as_secs_f64();
    // One at a time: the commit latency a lone call pays.
    let start = Instant::now();
    for i in 0..SEQUENTIAL {
        stores[i % stores.len()].append_blocking(event(i)).unwrap();
    }
    let lone_ms = start.elapsed().as_secs_f64() * 1000.0 / SEQUENTIAL as f64;
    let batches: u64 = stores.iter().map(|s| s.batches_committed()).sum();
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&stores[t % stores.len()]);
            std::thread::spawn(move || {
                for _ in 0..RESERVATIONS / THREADS {
                    store
                        .reserve(&[Reservation {
                            key: format!("rule|global|{}", t % 4),
                            per_seconds: 3600,
                            amount: 1,
                            max: u64::MAX / 2,
                        }])
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let reserves = RESERVATIONS as f64 / start.elapsed().as_secs_f64();
    println!(
        "{name}: {appends:.0} audit appends/s ({APPENDS} appends in {batches} batches, {IN_FLIGHT} in flight); {lone_ms:.2} ms per append one at a time; {reserves:.0} counter reservations/s ({THREADS} threads, 4 hot counters)"
    );
    assert!(stores[0].verify().unwrap().ok);
}

#[test]
#[ignore = "a measurement; run by hand (see the file's docs)"]
fn append_and_reserve_rates() {
    let dir = tempfile::TempDir::new().unwrap();
    let sqlite = Arc::new(Store::open(&dir.path().join("sqlite"), None).unwrap());
    measure("sqlite, 1 store", &[sqlite]);
    let url = portcullis_testkit::postgres::fresh_database().unwrap();
    let one = Arc::new(Store::open(&dir.path().join("a"), Some(&url)).unwrap());
    measure("postgres, 1 instance", &[Arc::clone(&one)]);
    let url = portcullis_testkit::postgres::fresh_database().unwrap();
    let a = Arc::new(Store::open(&dir.path().join("a"), Some(&url)).unwrap());
    let b = Arc::new(Store::open(&dir.path().join("b"), Some(&url)).unwrap());
    measure("postgres, 2 instances", &[a, b]);
}
