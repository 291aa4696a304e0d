#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::json;

use super::*;
use crate::approval::Channel;

fn store() -> (tempfile::TempDir, ApprovalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ApprovalStore::open(&dir.path().join("state")).unwrap();
    (dir, store)
}

fn new(id: &str, digest: &str, session: &str) -> NewApproval {
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
        mode: "retry".to_owned(),
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

#[test]
fn approved_call_is_consumed_exactly_once() {
    let (_dir, store) = store();
    store.heartbeat("s-1").unwrap();
    assert!(matches!(
        store.create_pending(&new("a-1", "dg", "s-1"), 20).unwrap(),
        Created::New(_)
    ));
    // The same call again finds the same approval instead of a new one.
    match store.create_pending(&new("a-2", "dg", "s-1"), 20).unwrap() {
        Created::Existing(a) => assert_eq!(a.id, "a-1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.consume("dg", "s-1").unwrap(),
        None,
        "not approved yet"
    );
    let receipt = store.resolve("a-1", &approve("alice")).unwrap();
    assert!(receipt.verify(&store.verifying_key()));
    assert_eq!(receipt.body.decision, "approved");
    assert_eq!(store.consume("dg", "s-2").unwrap(), None, "another session");
    assert_eq!(store.consume("other", "s-1").unwrap(), None, "another call");
    let used = store.consume("dg", "s-1").unwrap().unwrap();
    assert_eq!(used.id, "a-1");
    assert_eq!(store.consume("dg", "s-1").unwrap(), None, "single use");
    assert!(matches!(
        store.resolve("a-1", &approve("alice")),
        Err(ResolveError::NotPending { state: "used", .. })
    ));
}

#[test]
fn pending_cap_per_session() {
    let (_dir, store) = store();
    store.heartbeat("s-1").unwrap();
    for i in 0..3 {
        let created = store
            .create_pending(&new(&format!("a-{i}"), &format!("d{i}"), "s-1"), 3)
            .unwrap();
        assert!(matches!(created, Created::New(_)));
    }
    assert_eq!(
        store.create_pending(&new("a-9", "d9", "s-1"), 3).unwrap(),
        Created::CapReached { cap: 3 }
    );
}

#[test]
fn tampered_receipt_fails_and_receipts_are_immutable() {
    let (_dir, store) = store();
    store.heartbeat("s-1").unwrap();
    store.create_pending(&new("a-1", "dg", "s-1"), 20).unwrap();
    let receipt = store.resolve("a-1", &approve("alice")).unwrap();
    let stored = store.receipt("a-1").unwrap().unwrap();
    assert_eq!(stored, receipt);
    let mut forged = receipt.clone();
    forged.body.approver = "mallory".to_owned();
    assert!(!forged.verify(&store.verifying_key()));
    let error = store
        .lock()
        .execute("UPDATE approval_receipts SET receipt = 'x'", [])
        .unwrap_err();
    assert!(error.to_string().contains("immutable"), "{error}");
    assert!(
        store
            .lock()
            .execute("DELETE FROM approval_receipts", [])
            .is_err()
    );
}

#[test]
fn separate_approver_refuses_the_principal_and_elicitation() {
    let (_dir, store) = store();
    store.heartbeat("s-1").unwrap();
    let mut spec = new("a-1", "dg", "s-1");
    spec.separate_approver = true;
    store.create_pending(&spec, 20).unwrap();
    assert!(matches!(
        store.resolve("a-1", &approve("agent-user")),
        Err(ResolveError::SameApprover { .. })
    ));
    let mut elicited = approve("client");
    elicited.channel = Channel::Elicitation;
    assert!(matches!(
        store.resolve("a-1", &elicited),
        Err(ResolveError::SameApprover { .. })
    ));
    store.resolve("a-1", &approve("bob")).unwrap();
}

#[test]
fn approvals_of_ended_or_silent_sessions_expire() {
    let (_dir, store) = store();
    store
        .create_pending(&new("a-1", "dg", "s-dead"), 20)
        .unwrap();
    // No heartbeat ever: the session is not alive, so the approval cannot be resolved.
    assert!(matches!(
        store.resolve("a-1", &approve("alice")),
        Err(ResolveError::Expired { .. })
    ));
    store.heartbeat("s-2").unwrap();
    store.create_pending(&new("a-2", "dg2", "s-2"), 20).unwrap();
    store.end_session("s-2").unwrap();
    assert_eq!(
        store.show("a-2").unwrap().unwrap().state,
        ApprovalState::Expired
    );
}

#[test]
fn ttl_expiry() {
    let (_dir, store) = store();
    store.heartbeat("s-1").unwrap();
    let mut spec = new("a-1", "dg", "s-1");
    spec.ttl_ms = 1;
    store.create_pending(&spec, 20).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert!(matches!(
        store.resolve("a-1", &approve("alice")),
        Err(ResolveError::Expired { .. })
    ));
}

#[test]
fn lease_counts_atomically_and_revokes() {
    let (_dir, store) = store();
    let lease = store
        .grant_lease(&NewLease {
            id: "l-1".to_owned(),
            session: Some("s-1".to_owned()),
            principal: None,
            server: None,
            tool: "write_*".to_owned(),
            args_under: vec![("path".to_owned(), "/ws".to_owned())],
            ttl_ms: 60_000,
            max_calls: 2,
            granted_by: "alice".to_owned(),
            note: None,
        })
        .unwrap();
    assert!(lease.active);
    assert_eq!(store.candidate_leases("s-1", None, "fs").unwrap().len(), 1);
    assert_eq!(store.candidate_leases("s-2", None, "fs").unwrap().len(), 0);
    assert!(store.use_lease("l-1").unwrap());
    assert!(store.use_lease("l-1").unwrap());
    assert!(!store.use_lease("l-1").unwrap(), "count exhausted");
    assert!(
        store
            .candidate_leases("s-1", None, "fs")
            .unwrap()
            .is_empty()
    );
    assert!(store.revoke_lease("l-1").unwrap());
    assert!(!store.revoke_lease("l-1").unwrap());
    assert_eq!(store.leases(true).unwrap()[0].used_calls, 2);
}
