//! Seeds a state directory with many pending approvals, for the scale bench
//! (`scripts/bench-scale approvals`), and keeps their sessions alive until killed.
//!
//! Usage: `seed_pending STATE_DIR COUNT SESSIONS`
//!
//! Creates COUNT pending approvals spread over SESSIONS gateway sessions (each a live session
//! row, as a running gateway would keep), with distinct arguments and a one-hour time to live,
//! through the same `ApprovalStore::create_pending` the gateway uses. Prints `seeded COUNT in
//! MS ms` once done, then heartbeats every session every 3 s (pending approvals of a session
//! whose heartbeat goes stale expire, exactly as when a gateway stops) until it is killed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    reason = "a bench helper that stops loudly on bad input"
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use portcullis_store::{ApprovalStore, Created, NewApproval};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, count, sessions] = args.as_slice() else {
        eprintln!("usage: seed_pending STATE_DIR COUNT SESSIONS");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("COUNT is a number");
    let sessions: usize = sessions.parse().expect("SESSIONS is a number");
    let store = ApprovalStore::open(&PathBuf::from(dir)).expect("the state directory opens");
    let session = |s: usize| format!("s-seed-{s:06}");
    let start = Instant::now();
    let heartbeat_all = || {
        for s in 0..sessions {
            store.heartbeat(&session(s)).expect("heartbeat");
        }
        Instant::now()
    };
    // Seeding takes longer than SESSION_STALE_MS: keep every session fresh meanwhile, or the
    // first sessions' approvals would expire before the last are created.
    let mut last_heartbeat = heartbeat_all();
    for i in 0..count {
        if last_heartbeat.elapsed() > Duration::from_secs(2) {
            last_heartbeat = heartbeat_all();
        }
        let new = NewApproval {
            id: format!("a-{i:032x}"),
            digest: format!("{i:064x}"),
            session: session(i % sessions),
            principal: None,
            server: "echo".to_owned(),
            tool: "echo".to_owned(),
            method: "tools/call".to_owned(),
            arguments: json!({"text": format!("approve-me-{i}")}),
            effect: "read".to_owned(),
            rule: "seeded".to_owned(),
            reason: "seeded by the scale bench".to_owned(),
            mode: "retry".to_owned(),
            separate_approver: false,
            ttl_ms: 3_600_000,
            decision_id: format!("d-seed-{i}"),
        };
        match store
            .create_pending(&new, usize::MAX)
            .expect("create_pending")
        {
            Created::New(_) => {}
            other => panic!("approval {i} was not created: {other:?}"),
        }
    }
    println!("seeded {count} in {} ms", start.elapsed().as_millis());
    loop {
        std::thread::sleep(Duration::from_secs(3));
        heartbeat_all();
    }
}
