//! PostgreSQL-only behaviour against a real server: URLs, schema versions, an unreachable
//! server, and tampering done the way someone with database access would (raw SQL).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use tempfile::TempDir;

use super::*;
use crate::chain::VerifyProblemKind;
use crate::event::{AuditEvent, AuditKind};
use crate::sqlite::Reservation;
use pool::Settings;

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

// ---- work after a timeout ----

/// A store whose callers wait at most one second.
fn open_impatient() -> (TempDir, String, PgStore) {
    let dir = TempDir::new().unwrap();
    let url = portcullis_testkit::postgres::fresh_database().unwrap();
    let store =
        PgStore::open_with_wait(&url, &dir.path().join("state"), Duration::from_secs(1)).unwrap();
    (dir, url, store)
}

/// Waits until no connection of a store is running a statement (the task that outlived its
/// caller has finished, one way or the other).
fn wait_until_idle(url: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    for _ in 0..100 {
        let busy: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = 'portcullis' AND state <> 'idle'",
                &[],
            )
            .unwrap()
            .get(0);
        if busy == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the store's connections stayed busy");
}

fn is_timeout(error: &StoreError) -> bool {
    matches!(error, StoreError::PostgresTimeout { .. })
}

#[test]
fn a_reservation_whose_caller_timed_out_is_never_charged() {
    let (_dir, url, store) = open_impatient();
    let mut locker = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut lock = locker.transaction().unwrap();
    lock.batch_execute("LOCK TABLE counters IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let reservation = Reservation {
        key: "k".to_owned(),
        per_seconds: 3600,
        amount: 1,
        max: 5,
    };
    let error = store.reserve(&[reservation]).unwrap_err();
    assert!(is_timeout(&error), "{error}");
    // The caller was told it failed (the gateway denies the call); the task still waits for
    // the lock. Let it through: it must roll back rather than charge the counter.
    lock.commit().unwrap();
    wait_until_idle(&url);
    let rows: i64 = locker
        .query_one("SELECT count(*) FROM counters WHERE used > 0", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "a call that was denied was charged to its limit");
}

#[test]
fn an_audit_batch_whose_waiters_timed_out_is_never_committed() {
    let (_dir, url, store) = open_impatient();
    store.queue().append_blocking(event(0)).unwrap();
    let mut locker = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    locker
        .execute("SELECT pg_advisory_lock($1)", &[&schema::AUDIT_LOCK])
        .unwrap();
    let error = store.queue().append_blocking(event(1)).unwrap_err();
    assert!(is_timeout(&error), "{error}");
    locker
        .execute("SELECT pg_advisory_unlock($1)", &[&schema::AUDIT_LOCK])
        .unwrap();
    wait_until_idle(&url);
    // The record of a call the gateway denied (its `allow` could not be written in time) is
    // not in the log.
    let ids: Vec<String> = locker
        .query(
            "SELECT body::json->>'decision_id' FROM audit ORDER BY seq",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(ids, ["d-0"]);
    let next = store.queue().append_blocking(event(2)).unwrap();
    assert_eq!(next.seq, 2);
    assert!(store.verify().unwrap().ok);
}

fn small_pool(url: &str, wait: Duration) -> pool::Pool {
    let endpoint = parse_url(url).unwrap();
    let settings = Settings {
        size: 1,
        statement_timeout: STATEMENT_TIMEOUT,
        wait,
    };
    pool::Pool::start(&endpoint, &settings).unwrap()
}

#[test]
fn a_task_picked_up_after_its_deadline_does_not_run() {
    let url = portcullis_testkit::postgres::fresh_database().unwrap();
    let pool = small_pool(&url, Duration::from_millis(300));
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|scope| {
        // The only worker is busy past both callers' deadlines.
        let busy = scope.spawn(|| {
            pool.run("a slow task", |_, _| {
                std::thread::sleep(Duration::from_millis(900));
                Ok(())
            })
        });
        std::thread::sleep(Duration::from_millis(50));
        let flag = std::sync::Arc::clone(&ran);
        let late = pool.run("a queued task", move |_, _| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        assert!(is_timeout(&late.unwrap_err()));
        assert!(is_timeout(&busy.join().unwrap().unwrap_err()));
    });
    // Dropping the pool lets the worker finish what is queued, then joins it.
    drop(pool);
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn a_task_past_its_fence_is_waited_for_and_its_result_told() {
    let url = portcullis_testkit::postgres::fresh_database().unwrap();
    let pool = small_pool(&url, Duration::from_millis(300));
    // Passed the fence in time, then slow to commit: the caller must hear that it committed,
    // not a timeout, since the work did take effect.
    let answer = pool.run("a slow commit", |_, fence| {
        fence.pass()?;
        std::thread::sleep(Duration::from_millis(700));
        Ok(42)
    });
    assert_eq!(answer.unwrap(), 42);
    // Reaching the fence after the deadline: refused, and the caller hears a timeout.
    let refused = pool.run("a late commit", |_, fence| {
        std::thread::sleep(Duration::from_millis(400));
        fence.pass().map(|()| 7)
    });
    assert!(is_timeout(&refused.unwrap_err()));
}

// ---- the database's clock ----

#[test]
fn counter_windows_and_expiries_are_on_the_database_clock() {
    let (_dir, url, store) = open(0);
    let reservation = Reservation {
        key: "k".to_owned(),
        per_seconds: 60,
        amount: 1,
        max: 5,
    };
    assert!(matches!(
        store.reserve(&[reservation]).unwrap(),
        crate::sqlite::Reserved::Granted(_)
    ));
    store.heartbeat("s-1").unwrap();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT win FROM counters WHERE key = 'k'),
                        (SELECT heartbeat_at FROM gateway_sessions WHERE id = 's-1'),
                        {}",
                clock::NOW_MS_SQL
            ),
            &[],
        )
        .unwrap();
    let (win, heartbeat, now): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    // Read a moment later than the store's own reading: the same minute, or the one after.
    assert!(
        [now / 60_000, now / 60_000 - 1].contains(&win),
        "{win} {now}"
    );
    assert!(
        (0..60_000).contains(&(now - heartbeat)),
        "{heartbeat} {now}"
    );
}

fn is_tls(url: &str) -> bool {
    matches!(parse_url(url).unwrap().transport, tls::Transport::Tls(_))
}

#[test]
fn a_remote_host_is_reached_over_tls_unless_the_url_says_disable() {
    for url in [
        "postgres://u@db.internal/p",
        "postgres://u@db.internal/p?sslmode=require",
        "postgres://u@db.internal/p?sslmode=verify-full",
        "postgres://u@db.internal/p?sslmode=VERIFY-CA",
        "postgres://u@localhost,db.internal/p",
        "postgres://u@localhost/p?hostaddr=10.0.0.5",
        // Loopback too, when the URL asks for it.
        "postgres://u@localhost/p?sslmode=require",
    ] {
        assert!(is_tls(url), "{url}");
        let endpoint = parse_url(url).unwrap();
        assert_eq!(
            endpoint.config.get_ssl_mode(),
            postgres::config::SslMode::Require,
            "{url}"
        );
        assert!(endpoint.target.ends_with(" (TLS)"), "{}", endpoint.target);
    }
    for url in [
        "postgres://u@db.internal/p?sslmode=disable",
        "postgres://u@localhost/p",
        "postgres://u@localhost/p?sslmode=prefer",
        "postgres://u@LOCALHOST:5433/p",
        "postgres://u@127.0.0.1/p",
        "postgres://u@[::1]:5432/p",
        "postgres://u@%2Fvar%2Frun%2Fpostgresql/p",
        "postgres://u@localhost/p?hostaddr=127.0.0.1",
    ] {
        assert!(!is_tls(url), "{url}");
        let endpoint = parse_url(url).unwrap();
        assert_eq!(
            endpoint.config.get_ssl_mode(),
            postgres::config::SslMode::Disable,
            "{url}: plain means no TLS attempt at all"
        );
    }
}

#[test]
fn tls_settings_that_cannot_be_honoured_are_refused_with_a_way_out() {
    let cases = [
        // `prefer` would fall back to clear text without a word.
        (
            "postgres://u@10.0.0.5:5432/p?sslmode=prefer",
            "sslmode=require",
        ),
        ("postgres://u@db/p?sslmode=allow", "not supported"),
        ("postgres://u@db/p?sslmode=require&sslmode=disable", "twice"),
        (
            "postgres://u@db/p?sslrootcert=a.pem&sslrootcert=b.pem",
            "twice",
        ),
        ("postgres://u@db/p?sslrootcert=", "empty"),
        (
            "postgres://u@localhost/p?sslrootcert=%2Ftmp%2Fca.pem",
            "sslmode=require",
        ),
        (
            "postgres://u@db/p?sslmode=disable&sslrootcert=%2Ftmp%2Fca.pem",
            "does not use TLS",
        ),
        (
            "postgres://u@db/p?sslrootcert=%2Fno%2Fsuch%2Fca.pem",
            "cannot read sslrootcert",
        ),
        ("postgres://u@db/p?sslrootcert=%FF", "not UTF-8"),
    ];
    for (url, expected) in cases {
        let text = parse_url(url).unwrap_err().to_string();
        assert!(text.contains(expected), "{url}: {text}");
    }
}

#[test]
fn sslrootcert_must_hold_certificates() {
    let dir = TempDir::new().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let garbled = dir.path().join("garbled.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (file, expected) in [
        (&empty, "holds no certificate"),
        (&garbled, "not a valid PEM"),
    ] {
        let url = format!(
            "postgres://u@db/p?sslrootcert={}",
            file.display().to_string().replace('/', "%2F")
        );
        let text = parse_url(&url).unwrap_err().to_string();
        assert!(text.contains(expected), "{url}: {text}");
    }
}

#[test]
fn split_url_passes_everything_else_through() {
    let (url, params) =
        tls::split_url("postgres://u:p%40ss@db/p?connect_timeout=5&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x")
            .unwrap();
    assert_eq!(
        url,
        "postgres://u:p%40ss@db/p?connect_timeout=5&sslmode=require&application_name=x"
    );
    assert_eq!(params.sslmode.as_deref(), Some("verify-full"));
    assert_eq!(
        params.rootcert.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    let (url, params) = tls::split_url("postgres://u@db/p").unwrap();
    assert_eq!(url, "postgres://u@db/p");
    assert_eq!(params, tls::TlsParams::default());
}

/// A server that takes TCP connections only over TLS, with its own certificate: the store
/// reaches it when the URL trusts that certificate, and is refused when it trusts another.
#[test]
fn a_tls_only_server_is_reached_over_verified_tls() {
    let dir = TempDir::new().unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let server = rcgen::generate_simple_self_signed(names.clone()).unwrap();
    let cert = write("server.crt", server.cert.pem());
    let key = write("server.key", server.signing_key.serialize_pem());
    let other = rcgen::generate_simple_self_signed(names).unwrap();
    let other_root = write("other.pem", other.cert.pem());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _cluster =
        portcullis_testkit::postgres::Cluster::start_with_tls(&cert, &key, port).unwrap();
    let url = |query: &str| format!("postgres://postgres@localhost:{port}/postgres?{query}");
    let root = |path: &std::path::Path| path.display().to_string().replace('/', "%2F");

    let good = url(&format!("sslmode=verify-full&sslrootcert={}", root(&cert)));
    let endpoint = parse_url(&good).unwrap();
    assert!(endpoint.target.ends_with(" (TLS)"), "{}", endpoint.target);
    let mut client = endpoint.connect().unwrap();
    let encrypted: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(encrypted);
    // The whole store works over it.
    let state = TempDir::new().unwrap();
    let store = PgStore::open(&good, state.path()).unwrap();
    for i in 0..3 {
        store.queue().append_blocking(event(i)).unwrap();
    }
    assert!(store.verify().unwrap().ok);
    drop(store);

    // A certificate the URL does not trust is refused, and so are the public roots for it.
    for query in [
        format!("sslmode=require&sslrootcert={}", root(&other_root)),
        "sslmode=require".to_owned(),
    ] {
        let Err(error) = parse_url(&url(&query)).unwrap().connect() else {
            panic!("{query}: connected with an untrusted certificate");
        };
        let text = error.to_string();
        assert!(
            text.contains("TLS") && text.contains("connecting"),
            "{query}: {text}"
        );
    }
    // In clear the server refuses (hostssl only), so the encryption above was not optional.
    assert!(
        parse_url(&url("sslmode=disable"))
            .unwrap()
            .connect()
            .is_err()
    );
}
