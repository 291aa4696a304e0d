//! The store suite, run against both engines with the same tests: the embedded SQLite store and
//! a real PostgreSQL server (`portcullis_testkit::postgres`: `PORTCULLIS_TEST_POSTGRES`, else a
//! throw-away cluster started for this process). Every PostgreSQL test gets a fresh database, so
//! the tests run in parallel.
//!
//! "Two instances" are two stores with different state directories (different signing keys) on
//! the same state: the same SQLite directory for SQLite, the same database for PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use std::collections::BTreeSet;
use std::sync::Arc;

use portcullis_store::{
    ApprovalState, AuditEvent, AuditKind, Channel, Created, NewApproval, NewLease, PinRecord,
    PinStatus, Reservation, Reserved, Resolution, ResolveError, Store, Taken,
};
use serde_json::json;
use tempfile::TempDir;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// One store, and what is needed to open a second instance on the same state.
struct Fixture {
    dir: TempDir,
    url: Option<String>,
    store: Store,
}

impl Fixture {
    fn new(backend: Backend) -> Fixture {
        let dir = TempDir::new().unwrap();
        let url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(portcullis_testkit::postgres::fresh_database().unwrap()),
        };
        let store = Store::open(&dir.path().join("a"), url.as_deref()).unwrap();
        Fixture { dir, url, store }
    }

    /// Another instance: its own key, the same state.
    fn other(&self) -> Store {
        match &self.url {
            None => Store::open(&self.dir.path().join("a"), None).unwrap(),
            Some(url) => Store::open(&self.dir.path().join("b"), Some(url)).unwrap(),
        }
    }
}

/// A counter window no test run crosses (fixed windows start at multiples of their length since
/// the epoch; the next century boundary is in 2069), so a count never resets mid-test.
const NO_BOUNDARY: u64 = 100 * 365 * 86_400;

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
        tool: Some("write_file".to_owned()),
        method: "tools/call".to_owned(),
        effect: Some("write".to_owned()),
        args_digest: Some("ab".repeat(32)),
        args_redacted: Some(json!({"z": 1, "n": 123456789012345678901234567890_u128})),
        decision: Some("allow".to_owned()),
        enforced: true,
        rules: vec!["write-src".to_owned()],
        reason: None,
        reason_class: None,
        policy_sha256: None,
        approval_id: None,
        lease_id: None,
        outcome: None,
        duration_us: None,
    }
}

fn calls(key: &str, max: u64) -> Reservation {
    Reservation {
        key: key.to_owned(),
        per_seconds: NO_BOUNDARY,
        amount: 1,
        max,
    }
}

fn new_approval(id: &str, digest: &str, session: &str) -> NewApproval {
    NewApproval {
        id: id.to_owned(),
        digest: digest.to_owned(),
        session: session.to_owned(),
        principal: Some("agent-user".to_owned()),
        server: "fs".to_owned(),
        tool: "write_file".to_owned(),
        method: "tools/call".to_owned(),
        arguments: json!({"path": "/ws/a", "content": "x"}),
        effect: "write".to_owned(),
        rule: "approve-writes".to_owned(),
        reason: "needs approval".to_owned(),
        mode: "hold".to_owned(),
        separate_approver: false,
        ttl_ms: 60_000,
        decision_id: "d-1".to_owned(),
    }
}

fn approve(by: &str) -> Resolution {
    Resolution {
        approve: true,
        approver: by.to_owned(),
        channel: Channel::Cli,
        note: Some("ok".to_owned()),
    }
}

fn lease(id: &str, max_calls: u64) -> NewLease {
    NewLease {
        id: id.to_owned(),
        session: Some("s-1".to_owned()),
        principal: None,
        server: None,
        tool: "write_*".to_owned(),
        args_under: vec![("path".to_owned(), "/ws".to_owned())],
        ttl_ms: 60_000,
        max_calls,
        granted_by: "alice".to_owned(),
        note: None,
    }
}

fn pin(sha: &str) -> PinRecord {
    PinRecord {
        server: "fs".into(),
        tool: "read".into(),
        approved_sha: Some(sha.into()),
        seen_sha: sha.into(),
        seen_def: "{}".into(),
        status: PinStatus::Approved,
        finding: None,
        updated: String::new(),
    }
}

// ---- audit chain ----

fn appends_chain_and_verify(b: Backend) {
    let f = Fixture::new(b);
    for i in 0..5 {
        let entry = f.store.append_blocking(event(i)).unwrap();
        assert_eq!(entry.seq, u64::try_from(i).unwrap() + 1);
    }
    let report = f.store.verify().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.records, report.head_seq), (5, Some(5)));
    let tail = f.store.tail(2).unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(tail[1].prev_hash, tail[0].hash);
    // Key order and a number beyond u64 survive the round trip.
    assert_eq!(
        serde_json::to_string(tail[0].event.args_redacted.as_ref().unwrap()).unwrap(),
        r#"{"z":1,"n":123456789012345678901234567890}"#
    );
    let after = f.store.entries_after(3, 10).unwrap();
    assert_eq!(after.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
}

fn async_appends_are_durable_and_linear(b: Backend) {
    let f = Fixture::new(b);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(f.store);
    let seqs = rt.block_on(async {
        let tasks: Vec<_> = (0..200).map(|i| store.append(event(i))).collect();
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap().seq);
        }
        seqs
    });
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=200).collect::<Vec<u64>>());
    // All 200 are queued before the first commit ends, so they cannot take 200 commits.
    let commits = store.batches_committed();
    assert!(
        (1..200).contains(&commits),
        "{commits} commits for 200 appends"
    );
    assert!(store.verify().unwrap().ok);
}

fn two_instances_share_one_chain(b: Backend) {
    let f = Fixture::new(b);
    let other = Arc::new(f.other());
    let store = Arc::new(f.store);
    let threads: Vec<_> = [Arc::clone(&store), Arc::clone(&other)]
        .into_iter()
        .map(|s| {
            std::thread::spawn(move || {
                for i in 0..40 {
                    s.append_blocking(event(i)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for s in [&store, &other] {
        let report = s.verify().unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.records, 80);
    }
}

// ---- counters ----

fn counters_grant_up_to_max_per_window(b: Backend) {
    let f = Fixture::new(b);
    // Explicit times here, so an hour window is safe: 7200 and 10,800 are two windows.
    let hourly = |key: &str, max| Reservation {
        per_seconds: 3600,
        ..calls(key, max)
    };
    for _ in 0..3 {
        assert!(matches!(
            f.store.reserve_at(&[hourly("k", 3)], 7200).unwrap(),
            Reserved::Granted(_)
        ));
    }
    assert_eq!(
        f.store.reserve_at(&[hourly("k", 3)], 7200).unwrap(),
        Reserved::Exceeded { index: 0, used: 3 }
    );
    assert!(matches!(
        f.store.reserve_at(&[hourly("k", 3)], 10_800).unwrap(),
        Reserved::Granted(_)
    ));
}

fn counters_are_all_or_nothing_and_release(b: Backend) {
    let f = Fixture::new(b);
    f.store.reserve_at(&[calls("b", 1)], 10).unwrap();
    assert_eq!(
        f.store
            .reserve_at(&[calls("a", 5), calls("b", 1)], 10)
            .unwrap(),
        Reserved::Exceeded { index: 1, used: 1 }
    );
    let five = Reservation {
        amount: 5,
        ..calls("a", 5)
    };
    let Reserved::Granted(grants) = f.store.reserve_at(std::slice::from_ref(&five), 10).unwrap()
    else {
        panic!("`a` was charged by a refused reservation");
    };
    f.store.release(&grants).unwrap();
    f.store.release(&grants).unwrap();
    assert!(matches!(
        f.store.reserve_at(&[five], 10).unwrap(),
        Reserved::Granted(_)
    ));
}

fn concurrent_instances_never_overspend(b: Backend) {
    let f = Fixture::new(b);
    let stores = [Arc::new(f.other()), Arc::new(f.store)];
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let store = Arc::clone(&stores[n % 2]);
            std::thread::spawn(move || {
                // Every answer must be a grant or a refusal: an error would be a denial too, but
                // one that proves nothing about the counting.
                (0..10)
                    .map(|_| {
                        match store
                            .reserve(&[calls("shared", 25), calls("other", 1000)])
                            .unwrap()
                        {
                            Reserved::Granted(_) => 1,
                            Reserved::Exceeded { .. } => 0,
                        }
                    })
                    .sum::<usize>()
            })
        })
        .collect();
    let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(granted, 25);
    assert_eq!(stores[0].counter("shared", NO_BOUNDARY).unwrap(), 25);
    assert_eq!(stores[1].counter("other", NO_BOUNDARY).unwrap(), 25);
}

// ---- pins ----

fn pins_round_trip_approve_and_agree(b: Backend) {
    let f = Fixture::new(b);
    let other = f.other();
    assert_eq!(f.store.pin("fs", "read").unwrap(), None);
    // First sight in two instances: the first record wins in both.
    assert_eq!(f.store.first_pin(&pin("aa")).unwrap().seen_sha, "aa");
    assert_eq!(other.first_pin(&pin("bb")).unwrap().seen_sha, "aa");
    let mut changed = pin("aa");
    changed.seen_sha = "cc".into();
    changed.status = PinStatus::Pending;
    changed.finding = Some("changed since approval".into());
    other.put_pin(&changed).unwrap();
    let read = f.store.pin("fs", "read").unwrap().unwrap();
    assert_eq!(read.status, PinStatus::Pending);
    assert_eq!(read.finding.as_deref(), Some("changed since approval"));
    // An approval of the definition someone looked at ("aa") does not approve the one another
    // instance recorded since ("cc"): nothing changes.
    assert!(!f.store.approve_seen("fs", "read", "aa").unwrap());
    assert_eq!(f.store.pin("fs", "read").unwrap().unwrap(), read);
    let approved = f.store.approve_pin("fs", "read").unwrap().unwrap();
    assert_eq!(approved.approved_sha.as_deref(), Some("cc"));
    assert_eq!(approved.status, PinStatus::Approved);
    assert_eq!(f.store.pins(Some("fs")).unwrap().len(), 1);
    assert_eq!(f.store.pins(None).unwrap().len(), 1);
    assert_eq!(f.store.pins(Some("other")).unwrap().len(), 0);
    assert_eq!(f.store.approve_pin("fs", "nope").unwrap(), None);
}

// ---- approvals, receipts, sessions ----

fn approval_made_in_one_instance_releases_a_call_of_the_other(b: Backend) {
    let f = Fixture::new(b);
    let other = f.other();
    f.store.heartbeat("s-1").unwrap();
    assert!(matches!(
        f.store
            .create_pending(&new_approval("a-1", "dg", "s-1"), 20)
            .unwrap(),
        Created::New(_)
    ));
    match f
        .store
        .create_pending(&new_approval("a-2", "dg", "s-1"), 20)
        .unwrap()
    {
        Created::Existing(a) => assert_eq!(a.id, "a-1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.store.take("a-1").unwrap(), Taken::Pending);
    assert_eq!(other.list(false).unwrap().len(), 1);
    let receipt = other.resolve("a-1", &approve("alice")).unwrap();
    assert_eq!(receipt.body.decision, "approved");
    let keys = f.store.signer_keys().unwrap();
    assert!(keys.iter().any(|k| receipt.verify(k)), "no signer verifies");
    assert_eq!(f.store.receipt("a-1").unwrap().unwrap(), receipt);
    let Taken::Approved(used) = f.store.take("a-1").unwrap() else {
        panic!("approval not taken");
    };
    assert_eq!(used.state, ApprovalState::Used);
    assert!(matches!(f.store.take("a-1").unwrap(), Taken::Refused(_)));
    assert!(matches!(
        other.resolve("a-1", &approve("alice")),
        Err(ResolveError::NotPending { state: "used", .. })
    ));
}

fn an_approval_is_consumed_exactly_once_across_instances(b: Backend) {
    let f = Fixture::new(b);
    let other = Arc::new(f.other());
    let store = Arc::new(f.store);
    store.heartbeat("s-1").unwrap();
    store
        .create_pending(&new_approval("a-1", "dg", "s-1"), 20)
        .unwrap();
    assert_eq!(
        store.consume("dg", "s-1").unwrap(),
        None,
        "not approved yet"
    );
    store.resolve("a-1", &approve("alice")).unwrap();
    assert_eq!(store.consume("dg", "s-2").unwrap(), None, "another session");
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let s = Arc::clone(if n % 2 == 0 { &store } else { &other });
            std::thread::spawn(move || s.consume("dg", "s-1").unwrap().is_some())
        })
        .collect();
    let used = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|u| *u)
        .count();
    assert_eq!(used, 1);
}

fn pending_cap_separation_and_expiry(b: Backend) {
    let f = Fixture::new(b);
    let s = &f.store;
    s.heartbeat("s-1").unwrap();
    for i in 0..2 {
        let created = s
            .create_pending(&new_approval(&format!("a-{i}"), &format!("d{i}"), "s-1"), 2)
            .unwrap();
        assert!(matches!(created, Created::New(_)));
    }
    assert_eq!(
        s.create_pending(&new_approval("a-9", "d9", "s-1"), 2)
            .unwrap(),
        Created::CapReached { cap: 2 }
    );
    let mut spec = new_approval("a-sep", "dsep", "s-2");
    spec.separate_approver = true;
    s.heartbeat("s-2").unwrap();
    s.create_pending(&spec, 20).unwrap();
    assert!(matches!(
        s.resolve("a-sep", &approve("agent-user")),
        Err(ResolveError::SameApprover { .. })
    ));
    s.resolve("a-sep", &approve("bob")).unwrap();
    assert!(matches!(
        s.resolve("nope", &approve("bob")),
        Err(ResolveError::NotFound(_))
    ));
    // A silent session's approvals expire; so do an ended session's.
    s.create_pending(&new_approval("a-dead", "dd", "s-dead"), 20)
        .unwrap();
    assert!(matches!(
        s.resolve("a-dead", &approve("alice")),
        Err(ResolveError::Expired { .. })
    ));
    s.end_session("s-1").unwrap();
    assert_eq!(
        s.show("a-0").unwrap().unwrap().state,
        ApprovalState::Expired
    );
    s.heartbeat("s-3").unwrap();
    s.create_pending(&new_approval("a-x", "dx", "s-3"), 20)
        .unwrap();
    s.expire("a-x", "the held call timed out").unwrap();
    assert_eq!(
        s.show("a-x").unwrap().unwrap().state,
        ApprovalState::Expired
    );
}

fn leases_count_exactly_across_instances(b: Backend) {
    let f = Fixture::new(b);
    let other = Arc::new(f.other());
    let store = Arc::new(f.store);
    assert!(store.grant_lease(&lease("l-1", 5)).unwrap().active);
    assert_eq!(other.candidate_leases("s-1", None, "fs").unwrap().len(), 1);
    assert_eq!(other.candidate_leases("s-2", None, "fs").unwrap().len(), 0);
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let s = Arc::clone(if n % 2 == 0 { &store } else { &other });
            std::thread::spawn(move || (0..3).filter(|_| s.use_lease("l-1").unwrap()).count())
        })
        .collect();
    let used: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(used, 5);
    assert!(
        store
            .candidate_leases("s-1", None, "fs")
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.leases(true).unwrap()[0].used_calls, 5);
    assert!(other.revoke_lease("l-1").unwrap());
    assert!(!store.revoke_lease("l-1").unwrap());
    assert!(store.leases(false).unwrap().is_empty());
}

fn listing_is_bounded_and_counts_what_it_leaves_out(b: Backend) {
    let f = Fixture::new(b);
    let n = portcullis_store::LIST_LIMIT + 3;
    f.store.heartbeat("s-1").unwrap();
    for i in 0..n {
        let created = f
            .store
            .create_pending(&new_approval(&format!("a-{i}"), &format!("d{i}"), "s-1"), n)
            .unwrap();
        assert!(matches!(created, Created::New(_)));
    }
    assert_eq!(
        f.store.list(false).unwrap().len(),
        portcullis_store::LIST_LIMIT
    );
    assert_eq!(f.store.count(false).unwrap(), n as u64);
    assert_eq!(f.store.count(true).unwrap(), n as u64);
    f.store.expire("a-0", "test").unwrap();
    assert_eq!(f.store.count(false).unwrap(), n as u64 - 1);
    assert_eq!(f.store.count(true).unwrap(), n as u64);
}

fn verify_trusting_names_every_accepted_key_not_trusted(b: Backend) {
    let f = Fixture::new(b);
    f.store.append_blocking(event(0)).unwrap();
    let other = f.other();
    other.append_blocking(event(1)).unwrap();
    let (ours, theirs) = (f.store.public_key_hex(), other.public_key_hex());
    let trust =
        |keys: &[&str]| -> BTreeSet<String> { keys.iter().map(|k| k.to_uppercase()).collect() };
    let all = f
        .store
        .verify_trusting(Some(&trust(&[&ours, &theirs])))
        .unwrap();
    assert!(all.ok && all.untrusted_signers.is_empty(), "{all:?}");
    assert_eq!(
        f.store.verify_trusting(None).unwrap(),
        f.store.verify().unwrap()
    );
    let report = f.store.verify_trusting(Some(&trust(&[&ours]))).unwrap();
    match b {
        // One key, this gateway's: the other "instance" shares the state directory and its key.
        Backend::Sqlite => assert!(
            report.ok && report.untrusted_signers.is_empty(),
            "{report:?}"
        ),
        // The other instance signed the head last and registered its key.
        Backend::Postgres => {
            assert!(!report.ok, "{report:?}");
            assert_eq!(report.problem, None);
            assert_eq!(report.untrusted_signers, std::slice::from_ref(&theirs));
        }
    }
    let stranger = "ab".repeat(32);
    let report = f.store.verify_trusting(Some(&trust(&[&stranger]))).unwrap();
    assert!(!report.ok);
    let mut expected = match b {
        Backend::Sqlite => vec![ours],
        Backend::Postgres => vec![ours, theirs],
    };
    expected.sort();
    assert_eq!(report.untrusted_signers, expected);
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(super::Backend::Postgres) } )*
        }
    };
}

both!(
    appends_chain_and_verify,
    async_appends_are_durable_and_linear,
    two_instances_share_one_chain,
    counters_grant_up_to_max_per_window,
    counters_are_all_or_nothing_and_release,
    concurrent_instances_never_overspend,
    pins_round_trip_approve_and_agree,
    approval_made_in_one_instance_releases_a_call_of_the_other,
    an_approval_is_consumed_exactly_once_across_instances,
    pending_cap_separation_and_expiry,
    leases_count_exactly_across_instances,
    listing_is_bounded_and_counts_what_it_leaves_out,
    verify_trusting_names_every_accepted_key_not_trusted,
);
