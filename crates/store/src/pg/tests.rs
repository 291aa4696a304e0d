//! PostgreSQL-only behaviour against a real server: URLs, schema versions, an unreachable
//! server, and tampering done the way someone with database access would (raw SQL).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use tempfile::TempDir;

use super::*;
use crate::chain::VerifyProblemKind;
use crate::event::{AuditEvent, AuditKind};

fn event(i: usize) -> AuditEvent {
    AuditEvent {
        kind: AuditKind::Decision,
        time: String::new(),
        decision_id: format!("d-{i}"),
        session: "s-1".to_owned(),
        principal: None,
        agent: None,
        run: None,
        server: "fs".to_owned(),
        tool: Some("read".to_owned()),
        method: "tools/call".to_owned(),
        effect: Some("read".to_owned()),
        args_digest: None,
        args_redacted: None,
        decision: Some("allow".to_owned()),
        enforced: true,
        rules: vec!["r".to_owned()],
        reason: None,
        reason_class: None,
        policy_sha256: None,
        approval_id: None,
        lease_id: None,
        outcome: None,
        duration_us: None,
    }
}

fn open(n: usize) -> (TempDir, String, PgStore) {
    let dir = TempDir::new().unwrap();
    let url = portcullis_testkit::postgres::fresh_database().unwrap();
    let store = PgStore::open(&url, &dir.path().join("state")).unwrap();
    for i in 0..n {
        store.queue().append_blocking(event(i)).unwrap();
    }
    (dir, url, store)
}

fn raw(url: &str, sql: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client.batch_execute(sql).unwrap();
}

#[test]
fn bad_urls_are_refused_with_the_reason() {
    let dir = TempDir::new().unwrap();
    let cases = [
        ("mysql://u@h/db", "the scheme `mysql` is not supported"),
        ("db.internal:5432", "it is not a URL"),
        ("postgres://u@h:notaport/db", "invalid"),
        ("postgres:///db", "it names no host"),
        ("postgres://h:5432/db", "it names no user"),
    ];
    for (url, reason) in cases {
        let error = PgStore::open(url, dir.path()).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, StoreError::BadUrl { .. }), "{url}: {text}");
        assert!(text.contains(reason), "{url}: {text}");
        assert!(text.contains("help: write it as `postgres://"), "{text}");
    }
}

#[test]
fn passwords_never_reach_messages() {
    assert_eq!(
        redact_url("postgres://app:s3cret@db:5432/p?sslmode=disable"),
        "postgres://app:***@db:5432/p?sslmode=disable"
    );
    assert_eq!(redact_url("postgres://app@db/p"), "postgres://app@db/p");
    let error = PgStore::open("ftp://app:s3cret@db/p", Path::new("/nonexistent")).unwrap_err();
    assert!(!error.to_string().contains("s3cret"), "{error}");
    // A password with an unencoded `/`, one in the query, and a key=value string (not a URL).
    assert_eq!(
        redact_url("postgres://app:s3/cret@db/p"),
        "postgres://app:***@db/p"
    );
    assert_eq!(
        redact_url("postgres://db/p?user=app&PASSWORD=s3cret&sslmode=disable"),
        "postgres://db/p?user=app&PASSWORD=***&sslmode=disable"
    );
    for text in ["host=db password=s3cret", "postgres://db/p?password=s3cret"] {
        let error = PgStore::open(text, Path::new("/nonexistent")).unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    // A socket directory with no server in it: refused at once.
    let dir = TempDir::new().unwrap();
    let url = format!(
        "postgres://portcullis:pw@{}/p",
        dir.path().display().to_string().replace('/', "%2F")
    );
    let error = check_schema(&url).unwrap_err();
    let text = error.to_string();
    assert!(error.is_unavailable(), "{text}");
    assert!(text.contains("connecting failed"), "{text}");
    assert!(text.contains("check that the server is running"), "{text}");
    assert!(!text.contains(":pw@"), "{text}");
}

#[test]
fn migrations_are_versioned_and_a_newer_schema_is_refused() {
    let url = portcullis_testkit::postgres::fresh_database().unwrap();
    let before = check_schema(&url).unwrap();
    assert_eq!((before.found, before.now), (0, 0));
    let done = migrate_schema(&url).unwrap();
    assert_eq!((done.found, done.now), (0, schema::latest_version()));
    let again = migrate_schema(&url).unwrap();
    assert_eq!(again.found, schema::latest_version());
    raw(&url, "UPDATE portcullis_schema SET version = 99");
    let error = migrate_schema(&url).unwrap_err();
    assert!(
        matches!(error, StoreError::DatabaseSchemaTooNew { found: 99, .. }),
        "{error}"
    );
    let dir = TempDir::new().unwrap();
    let text = PgStore::open(&url, dir.path()).unwrap_err().to_string();
    assert!(text.contains("has schema version 99"), "{text}");
    assert!(text.contains("help: upgrade portcullis"), "{text}");
    assert_eq!(check_schema(&url).unwrap().found, 99);
}

#[test]
fn a_deleted_tail_is_found_and_not_resigned() {
    let (_dir, url, store) = open(4);
    raw(&url, "DELETE FROM audit WHERE seq = 4");
    let report = store.verify().unwrap();
    assert!(!report.ok);
    assert_eq!(
        report.problem.unwrap().kind,
        VerifyProblemKind::HeadMismatch
    );
    let error = store.queue().append_blocking(event(9)).unwrap_err();
    assert!(matches!(error, StoreError::ChainTampered { .. }), "{error}");
}

#[test]
fn an_edited_record_is_found() {
    let (_dir, url, store) = open(3);
    raw(
        &url,
        "UPDATE audit SET body = replace(body, '\"allow\"', '\"deny\"') WHERE seq = 2",
    );
    let report = store.verify().unwrap();
    assert_eq!(report.problem.unwrap().seq, 2);
}

#[test]
fn a_head_signed_by_an_unregistered_key_is_refused() {
    let (_dir, url, store) = open(2);
    // Re-sign the head with a key that is not registered as a signer.
    let forger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let row = client
        .query_one("SELECT seq, hash FROM chain_head", &[])
        .unwrap();
    let (seq, hash): (i64, String) = (row.get(0), row.get(1));
    let signature = crate::chain::sign_head(&forger, u64::try_from(seq).unwrap(), &hash);
    let signer = hex::encode(forger.verifying_key().to_bytes());
    client
        .execute(
            "UPDATE chain_head SET signature = $1, signer = $2",
            &[&signature, &signer],
        )
        .unwrap();
    let report = store.verify().unwrap();
    assert_eq!(
        report.problem.unwrap().kind,
        VerifyProblemKind::HeadSignatureInvalid
    );
    let error = store.queue().append_blocking(event(3)).unwrap_err();
    assert!(matches!(error, StoreError::ChainTampered { .. }), "{error}");
}

#[test]
fn receipts_are_immutable() {
    let (_dir, url, _store) = open(0);
    raw(
        &url,
        "INSERT INTO approval_receipts (id, approval_id, receipt) VALUES ('r', 'a', '{}')",
    );
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let error = client
        .batch_execute("UPDATE approval_receipts SET receipt = 'x'")
        .unwrap_err();
    assert!(format!("{error:?}").contains("immutable"), "{error:?}");
    assert!(
        client
            .batch_execute("DELETE FROM approval_receipts")
            .is_err()
    );
}

#[test]
fn a_key_is_registered_when_it_first_signs_never_by_readers() {
    let (_dir, _url, store) = open(0);
    assert!(store.verify().unwrap().ok);
    assert_eq!(store.signers().unwrap(), Vec::<String>::new());
    store.queue().append_blocking(event(0)).unwrap();
    assert_eq!(store.signers().unwrap(), [store.public_key_hex()]);
}
