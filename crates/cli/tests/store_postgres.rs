//! End-to-end: several `portcullis serve` instances on one real PostgreSQL store (issue #7).
//! Two instances share approvals, a global rate limit and one audit chain; and a store that dies
//! mid-load (`pg_ctl stop -m immediate` on the test's own cluster) lets no call through without
//! its audit record, makes every call fail closed and `/readyz` unready, and service resumes by
//! itself when the server is back. The recording echo upstream (`PORTCULLIS_ECHO_RECORD`) shows
//! what was really forwarded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod gateway;
#[path = "support/http.rs"]
mod http;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Serve, get};
use portcullis_testkit::postgres::{Cluster, fresh_database};
use serde_json::{Value, json};

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    url: String,
}

impl World {
    fn new(url: String) -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let policy = format!(
            r#"version: 1
store: "${{PORTCULLIS_TEST_STORE}}"
servers:
  echo:
    command: [{bin}]
    env: {{ PORTCULLIS_ECHO_RECORD: {record} }}
tools:
  echo.echo: {{ effect: read }}
  echo.limited: {{ effect: read }}
  echo.approve_me: {{ effect: write }}
rules:
  - id: echo-ok
    when: {{ server: echo, tool: echo }}
    decision: allow
  - id: ten-calls
    when: {{ server: echo, tool: limited }}
    decision: allow
    limit: {{ calls: 10, per: 366d, by: global }}
  - id: hold-writes
    when: {{ server: echo, tool: approve_me }}
    decision: require_approval
    approval: {{ mode: hold, timeout: 60s }}
"#,
            bin = gateway::echo_server().display(),
            record = root.join("record.jsonl").display(),
        );
        std::fs::write(root.join("portcullis.yaml"), policy).unwrap();
        World {
            _dir: dir,
            root,
            url,
        }
    }

    /// An instance with its own state directory (its own signing key).
    fn serve(&self, name: &str) -> Serve {
        self.serve_with_env(name, &[])
    }

    /// [`serve`](Self::serve) with more environment (a faked clock).
    fn serve_with_env(&self, name: &str, env: &[(&str, &str)]) -> Serve {
        let policy = self.root.join("portcullis.yaml");
        let state = self.root.join(format!("state-{name}"));
        // The URL comes through the environment (`store: "${...}"`), as a password would.
        let log = self.root.join(format!("serve-{name}.log"));
        let mut all = vec![("PORTCULLIS_TEST_STORE", self.url.as_str())];
        all.extend_from_slice(env);
        Serve::start_with_env(
            &policy,
            &log,
            &["--state-dir", state.to_str().unwrap()],
            &all,
        )
    }

    fn cli(&self, name: &str, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .arg("--state-dir")
            .arg(self.root.join(format!("state-{name}")))
            .arg("--store")
            .arg(&self.url)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn recording(&self) -> String {
        std::fs::read_to_string(self.root.join("record.jsonl")).unwrap_or_default()
    }

    /// The `text` arguments of the `echo` calls that reached the upstream.
    fn forwarded_texts(&self, tool: &str) -> Vec<String> {
        self.recording()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["method"] == json!("tools/call") && v["params"]["name"] == json!(tool))
            .filter_map(|v| v["params"]["arguments"]["text"].as_str().map(str::to_owned))
            .collect()
    }

    fn audit(&self, name: &str) -> Vec<Value> {
        let (code, out, err) = self.cli(name, &["audit", "tail", "-n", "100000", "--json"]);
        assert_eq!(code, 0, "{err}");
        out.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
            .collect()
    }
}

/// A counter window no test run crosses (fixed windows start at multiples of their length since
/// the epoch; the next century boundary is in 2069), so a count never resets mid-test.
const NO_BOUNDARY: u64 = 100 * 365 * 86_400;

fn call(serve: &Serve, session: &str, id: u64, tool: &str, text: &str) -> Value {
    let reply = serve.post(
        "/mcp/echo",
        &[("Mcp-Session-Id", session)],
        &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": {"text": text}}}),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()
}

/// A denial by the gateway (the echo server answers unknown tools with a plain `isError`).
fn is_denied(answer: &Value) -> bool {
    answer["result"]["isError"] == json!(true) && answer["result"]["structuredContent"].is_object()
}

fn reason_class(answer: &Value) -> Value {
    gateway::denial(answer)["reason_class"].clone()
}

#[test]
fn two_instances_share_approvals_limits_and_one_audit_chain() {
    let world = World::new(fresh_database().unwrap());
    let a = Arc::new(world.serve("a"));
    let b = Arc::new(world.serve("b"));
    let session_a = a.initialize("/mcp/echo", &[]);
    let session_b = b.initialize("/mcp/echo", &[]);

    // A call held by instance A is released by an approval made through instance B's state.
    let held = {
        let (a, session) = (Arc::clone(&a), session_a.clone());
        std::thread::spawn(move || call(&a, &session, 1, "approve_me", "held"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let pending = loop {
        let (code, out, err) = world.cli("b", &["approvals", "list", "--json"]);
        assert_eq!(code, 0, "{err}");
        if let Some(line) = out.lines().next() {
            break serde_json::from_str::<Value>(line).unwrap();
        }
        assert!(Instant::now() < deadline, "no pending approval appeared");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(pending["tool"], json!("approve_me"));
    let id = pending["id"].as_str().unwrap();
    assert!(world.forwarded_texts("approve_me").is_empty());
    let (code, out, err) = world.cli("b", &["approvals", "approve", id, "--as", "alice"]);
    assert_eq!(code, 0, "{out}{err}");
    let answer = held.join().unwrap();
    assert!(!is_denied(&answer), "{answer}");
    // It reached the echo server, which does not know the tool.
    assert_eq!(
        answer["result"]["content"][0]["text"],
        json!("unknown tool approve_me")
    );
    assert_eq!(world.forwarded_texts("approve_me"), ["held"]);
    // The receipt, signed with B's key, verifies from A's side too.
    let (code, out, _) = world.cli("a", &["approvals", "verify", id]);
    assert_eq!(code, 0, "{out}");

    // `calls: 10` by global across 200 concurrent calls split over both instances.
    let threads: Vec<_> = (0..200)
        .map(|n| {
            let (serve, session) = if n % 2 == 0 {
                (Arc::clone(&a), session_a.clone())
            } else {
                (Arc::clone(&b), session_b.clone())
            };
            std::thread::spawn(move || {
                call(
                    &serve,
                    &session,
                    100 + n,
                    "limited",
                    &format!("limited {n}"),
                )
            })
        })
        .collect();
    let answers: Vec<Value> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let allowed = answers.iter().filter(|a| !is_denied(a)).count();
    assert_eq!(allowed, 10);
    for denied in answers.iter().filter(|a| is_denied(a)) {
        assert_eq!(reason_class(denied), json!("rate-limit"), "{denied}");
    }
    assert_eq!(world.forwarded_texts("limited").len(), 10);

    // One chain, written by both instances, verifies from either.
    let mut keys = Vec::new();
    for name in ["a", "b"] {
        let (code, out, err) = world.cli(name, &["audit", "verify"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.starts_with("audit chain ok: "), "{out}");
        keys.push(out.trim().rsplit(' ').next().unwrap().to_owned());
    }
    // Pinning the signers: both instances' keys pass; one alone does not, since the other's is
    // registered too (a key someone slipped into the database would be caught the same way).
    let (code, out, err) = world.cli(
        "a",
        &[
            "audit",
            "verify",
            "--trusted-signer",
            &keys[0],
            "--trusted-signer",
            &keys[1],
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = world.cli("a", &["audit", "verify", "--trusted-signer", &keys[0]]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("NOT TRUSTED") && out.contains(&keys[1]),
        "{out}"
    );
    let records = world.audit("a");
    let decisions: Vec<&Value> = records
        .iter()
        .filter(|e| e["kind"] == json!("decision") && e["tool"] == json!("limited"))
        .collect();
    assert_eq!(decisions.len(), 200);
    assert_eq!(
        decisions
            .iter()
            .filter(|e| e["decision"] == json!("allow"))
            .count(),
        10
    );
}

/// Waits (at most 30 s) for the first pending approval, as instance `name`'s command line sees it.
fn first_pending(world: &World, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, err) = world.cli(name, &["approvals", "list", "--json"]);
        assert_eq!(code, 0, "{err}");
        if let Some(line) = out.lines().next() {
            return serde_json::from_str::<Value>(line).unwrap();
        }
        assert!(Instant::now() < deadline, "no pending approval appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Instance A on the real clock and instance B with its clock 400 days behind (libfaketime;
/// timers keep the real monotonic clock). By its own clock B is in another window of the
/// 366-day limit than A, and an approval B makes would have expired 400 days ago for the others.
fn skewed_world() -> (World, Arc<Serve>, Arc<Serve>) {
    let world = World::new(fresh_database().unwrap());
    let a = Arc::new(world.serve("a"));
    let b = Arc::new(world.serve_with_env(
        "b",
        &[
            ("LD_PRELOAD", gateway::libfaketime()),
            ("FAKETIME", "-400d"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    ));
    (world, a, b)
}

#[test]
fn an_approval_made_by_an_instance_whose_clock_is_behind_lives_its_ttl() {
    let (world, _a, b) = skewed_world();
    let session_b = b.initialize("/mcp/echo", &[]);
    // A call held by B stays pending for the command line (on the real clock) until approved.
    let held = {
        let (b, session) = (Arc::clone(&b), session_b.clone());
        std::thread::spawn(move || call(&b, &session, 1, "approve_me", "held"))
    };
    let pending = first_pending(&world, "a");
    assert_eq!(pending["tool"], json!("approve_me"));
    let id = pending["id"].as_str().unwrap();
    let (code, out, err) = world.cli("a", &["approvals", "approve", id, "--as", "alice"]);
    assert_eq!(code, 0, "{out}{err}");
    let answer = held.join().unwrap();
    assert!(!is_denied(&answer), "{answer}");
    assert_eq!(world.forwarded_texts("approve_me"), ["held"]);
}

#[test]
fn instances_with_skewed_clocks_share_one_limit_window() {
    let (world, a, b) = skewed_world();
    let session_a = a.initialize("/mcp/echo", &[]);
    let session_b = b.initialize("/mcp/echo", &[]);
    // `calls: 10` by global, taken turn about by both instances: one window, ten calls.
    let answers: Vec<Value> = (0..24_u64)
        .map(|n| {
            let (serve, session) = if n % 2 == 0 {
                (&a, &session_a)
            } else {
                (&b, &session_b)
            };
            call(serve, session, 100 + n, "limited", &format!("limited {n}"))
        })
        .collect();
    assert_eq!(answers.iter().filter(|a| !is_denied(a)).count(), 10);
    assert_eq!(world.forwarded_texts("limited").len(), 10);
}

/// Waits (at most 10 s) until a statement matching `like` waits for a lock.
fn wait_for_lock_wait(watcher: &mut postgres::Client, like: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND query LIKE $1",
                &[&like],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing waited for a lock: {like}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_signer_registered_used_and_deleted_during_verify_is_still_not_trusted() {
    let world = World::new(fresh_database().unwrap());
    let open = |name: &str| {
        portcullis_store::Store::open(&world.root.join(format!("state-{name}")), Some(&world.url))
            .unwrap()
    };
    // The instance we trust writes the chain; a stranger's key registers itself by signing the
    // head after it.
    let trusted = {
        let store = open("a");
        store.append_blocking(sample_event(1)).unwrap();
        store.public_key_hex()
    };
    let stranger = {
        let store = open("x");
        store.append_blocking(sample_event(2)).unwrap();
        store.public_key_hex()
    };
    let connect = || postgres::Client::connect(&world.url, postgres::NoTls).unwrap();
    let (mut holder, mut watcher) = (connect(), connect());
    std::thread::scope(|scope| {
        // `verify` stops mid-walk on `audit`, after it read the head and the signers...
        let mut hold = holder.transaction().unwrap();
        hold.batch_execute("LOCK TABLE audit IN ACCESS EXCLUSIVE MODE")
            .unwrap();
        let verify = scope.spawn(|| {
            world.cli(
                "a",
                &["audit", "verify", "--trusted-signer", trusted.as_str()],
            )
        });
        wait_for_lock_wait(&mut watcher, "%FROM audit %");
        // ...and the stranger's key is deleted the moment verify's transaction ends: a check
        // that read the signers again afterwards would find only trusted keys.
        let deleter = scope.spawn(|| {
            connect()
                .batch_execute(&format!(
                    "BEGIN; LOCK TABLE audit_signers IN ACCESS EXCLUSIVE MODE;
                     DELETE FROM audit_signers WHERE public_key = '{stranger}'; COMMIT"
                ))
                .unwrap();
        });
        wait_for_lock_wait(&mut watcher, "%LOCK TABLE audit_signers%");
        hold.commit().unwrap();
        deleter.join().unwrap();
        let (code, out, err) = verify.join().unwrap();
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            out.contains("NOT TRUSTED") && out.contains(&stranger),
            "{out}"
        );
    });
}

#[test]
fn a_store_outage_denies_everything_and_service_resumes_with_nothing_lost() {
    let cluster = Cluster::start().unwrap();
    let world = World::new(cluster.fresh_database().unwrap());
    let serve = Arc::new(world.serve("a"));
    let session = serve.initialize("/mcp/echo", &[]);
    assert_eq!(get(serve.port, "/readyz").status, 200);

    // Load from four threads until told to stop; every answer is kept with its text.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4_u64)
        .map(|t| {
            let (serve, session, stop) = (Arc::clone(&serve), session.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                let mut n = 0_u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let text = format!("load {t}-{n}");
                    answers.push((
                        text.clone(),
                        call(&serve, &session, t * 1_000_000 + n, "echo", &text),
                    ));
                    n += 1;
                }
                answers
            })
        })
        .collect();
    // Let some calls through, then kill the database under load.
    let deadline = Instant::now() + Duration::from_secs(60);
    while world.forwarded_texts("echo").len() < 20 {
        assert!(Instant::now() < deadline, "no load got through");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.stop_immediate().unwrap();

    // While it is down: every call is denied as internal, and the instance is unready.
    for n in 0..5 {
        let answer = call(&serve, &session, 900 + n, "echo", &format!("down {n}"));
        assert_eq!(reason_class(&answer), json!("internal"), "{answer}");
    }
    assert_eq!(get(serve.port, "/readyz").status, 503);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered: Vec<(String, Value)> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(
        answered.iter().any(|(_, a)| is_denied(a)),
        "the outage denied nothing"
    );
    for (_, answer) in answered.iter().filter(|(_, a)| is_denied(a)) {
        assert_eq!(reason_class(answer), json!("internal"), "{answer}");
    }
    let forwarded_while_down = world.forwarded_texts("echo");
    assert!(!forwarded_while_down.iter().any(|t| t.starts_with("down ")));

    // Back: ready again without a restart of the gateway, and calls go through.
    cluster.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(serve.port, "/readyz").status != 200 {
        assert!(
            Instant::now() < deadline,
            "the gateway did not become ready again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A connection broken by the outage may fail one more call before the pool reconnects.
    let mut ok_in_a_row = 0;
    for n in 0..40 {
        let answer = call(&serve, &session, 2_000 + n, "echo", &format!("after {n}"));
        if is_denied(&answer) {
            assert_eq!(reason_class(&answer), json!("internal"), "{answer}");
            ok_in_a_row = 0;
        } else {
            ok_in_a_row += 1;
            if ok_in_a_row == 5 {
                break;
            }
        }
    }
    assert_eq!(ok_in_a_row, 5, "service did not resume");

    // Nothing lost: every forwarded call, and every call answered with success, has its durable
    // allow record in the chain, which verifies.
    let records = world.audit("a");
    let allowed: HashSet<String> = records
        .iter()
        .filter(|e| e["kind"] == json!("decision") && e["decision"] == json!("allow"))
        .filter_map(|e| e["args_redacted"]["text"].as_str().map(str::to_owned))
        .collect();
    let forwarded = world.forwarded_texts("echo");
    assert!(forwarded.len() >= 25, "{}", forwarded.len());
    for text in &forwarded {
        assert!(
            allowed.contains(text),
            "`{text}` was forwarded without its audit record"
        );
    }
    for (text, _) in answered.iter().filter(|(_, a)| !is_denied(a)) {
        assert!(
            allowed.contains(text),
            "`{text}` succeeded without its audit record"
        );
    }
    let (code, out, err) = world.cli("a", &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
}

fn portcullis(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env_remove("PORTCULLIS_STORE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn store_check_and_migrate_report_versions_and_refuse_bad_input() {
    let url = fresh_database().unwrap();
    let (code, out, _) = portcullis(&["store", "check", "--store", &url]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("schema version 0, this build uses 1"), "{out}");
    assert!(
        out.contains("help: run `portcullis store migrate`"),
        "{out}"
    );
    let (code, out, err) = portcullis(&["store", "migrate", "--store", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("migrated the schema from version 0 to 1"),
        "{out}"
    );
    let (code, out, _) = portcullis(&["store", "migrate", "--store", &url]);
    assert_eq!(code, 0);
    assert!(out.contains("schema version 1 is up to date"), "{out}");
    let (code, out, _) = portcullis(&["store", "check", "--store", &url]);
    assert_eq!(code, 0, "{out}");

    // Malformed, wrong scheme, unreachable: a clear error, exit 2, and never the password.
    let (code, _, err) = portcullis(&["store", "check", "--store", "mysql://u:pw@db/p"]);
    assert_eq!(code, 2);
    assert!(err.contains("the scheme `mysql` is not supported"), "{err}");
    assert!(err.contains("mysql://u:***@db/p"), "{err}");
    let (code, _, err) = portcullis(&["store", "check", "--store", "postgres://u@h:port/db"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not usable"), "{err}");
    let nowhere = tempfile::tempdir().unwrap();
    let dead = format!(
        "postgres://u:pw@{}/db",
        nowhere.path().display().to_string().replace('/', "%2F")
    );
    let (code, _, err) = portcullis(&["store", "check", "--store", &dead]);
    assert_eq!(code, 2);
    assert!(err.contains("connecting failed"), "{err}");
    assert!(err.contains("check that the server is running"), "{err}");
    assert!(!err.contains(":pw@"), "{err}");
    // `serve` does not start on a store it cannot reach.
    let world = World::new(dead.clone());
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--policy"])
        .arg(world.root.join("portcullis.yaml"))
        .args(["--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_TEST_STORE", &dead)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot open the store `postgres://u:***@"),
        "{err}"
    );
    assert!(err.contains("connecting failed"), "{err}");

    // A schema from a newer portcullis: check says so, migrate and serve refuse.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute("UPDATE portcullis_schema SET version = 7")
        .unwrap();
    let (code, out, _) = portcullis(&["store", "check", "--store", &url]);
    assert_eq!(code, 1);
    assert!(
        out.contains("schema version 7 is newer than this build knows (1)"),
        "{out}"
    );
    let (code, _, err) = portcullis(&["store", "migrate", "--store", &url]);
    assert_eq!(code, 2);
    assert!(err.contains("has schema version 7"), "{err}");
    let world = World::new(url.clone());
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--policy"])
        .arg(world.root.join("portcullis.yaml"))
        .args(["--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_TEST_STORE", &url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("has schema version 7"), "{err}");
    assert!(err.contains("help: upgrade portcullis"), "{err}");
}

fn sample_event(n: u64) -> portcullis_store::AuditEvent {
    portcullis_store::AuditEvent {
        kind: portcullis_store::AuditKind::Decision,
        time: String::new(),
        decision_id: format!("d-{n}"),
        session: "s-1".to_owned(),
        principal: None,
        agent: None,
        run: None,
        server: "echo".to_owned(),
        tool: Some("echo".to_owned()),
        method: "tools/call".to_owned(),
        effect: Some("read".to_owned()),
        args_digest: None,
        args_redacted: Some(json!({"text": format!("t{n}")})),
        decision: Some("allow".to_owned()),
        enforced: true,
        rules: vec!["echo-ok".to_owned()],
        reason: None,
        reason_class: None,
        policy_sha256: None,
        approval_id: None,
        lease_id: None,
        outcome: None,
        duration_us: None,
    }
}

#[test]
fn store_copy_moves_a_sqlite_state_into_postgres_and_verifies_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    {
        let store = portcullis_store::Store::open(&state, None).unwrap();
        for n in 0..25 {
            store.append_blocking(sample_event(n)).unwrap();
        }
        store
            .reserve(&[portcullis_store::Reservation {
                key: "ten-calls|global".to_owned(),
                per_seconds: NO_BOUNDARY,
                amount: 3,
                max: 10,
            }])
            .unwrap();
        store
            .grant_lease(&portcullis_store::NewLease {
                id: "l-1".to_owned(),
                session: None,
                principal: Some("alice".to_owned()),
                server: None,
                tool: "write_*".to_owned(),
                args_under: vec![],
                ttl_ms: 3_600_000,
                max_calls: 4,
                granted_by: "bob".to_owned(),
                note: None,
            })
            .unwrap();
    }
    let url = fresh_database().unwrap();
    let from = state.to_str().unwrap();
    let (code, out, err) = portcullis(&["store", "copy", "--from", from, "--to", &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("25 audit records (chain verified)"), "{out}");
    assert!(out.contains("1 leases"), "{out}");
    assert!(out.contains("1 counters"), "{out}");
    let (code, out, err) = portcullis(&["audit", "verify", "--state-dir", from, "--store", &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("audit chain ok: 25 records"), "{out}");
    let (code, out, _) = portcullis(&["lease", "list", "--state-dir", from, "--store", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("l-1"), "{out}");
    // The copied counter keeps counting in PostgreSQL.
    let pg = portcullis_store::Store::open(&dir.path().join("other"), Some(&url)).unwrap();
    assert_eq!(pg.counter("ten-calls|global", NO_BOUNDARY).unwrap(), 3);
    // Never into a database that already holds state; never from a directory without one.
    // The destination may come from --store (or $PORTCULLIS_STORE) instead of --to.
    let (code, _, err) = portcullis(&["store", "copy", "--from", from, "--store", &url]);
    assert_eq!(code, 2);
    assert!(err.contains("already holds gateway state"), "{err}");
    let (code, _, err) = portcullis(&["store", "copy", "--from", from]);
    assert_eq!(code, 2);
    assert!(err.contains("no destination"), "{err}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, err) = portcullis(&[
        "store",
        "copy",
        "--from",
        empty.to_str().unwrap(),
        "--to",
        &url,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("there is no `state.db`"), "{err}");
}

#[test]
fn store_copy_refuses_a_tampered_source_and_leaves_the_destination_empty() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    {
        let store = portcullis_store::Store::open(&state, None).unwrap();
        for n in 0..5 {
            store.append_blocking(sample_event(n)).unwrap();
        }
    }
    let db = rusqlite::Connection::open(state.join("state.db")).unwrap();
    let body: String = db
        .query_row("SELECT body FROM audit WHERE seq = 3", [], |r| r.get(0))
        .unwrap();
    db.execute(
        "UPDATE audit SET body = ?1 WHERE seq = 3",
        [body.replace("\"allow\"", "\"deny\"")],
    )
    .unwrap();
    drop(db);
    let url = fresh_database().unwrap();
    let from = state.to_str().unwrap();
    let (code, out, err) = portcullis(&["store", "copy", "--from", from, "--to", &url]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("record 3"), "{err}");
    // Nothing was written: the destination still takes a copy of an intact state.
    let intact = dir.path().join("intact");
    {
        let store = portcullis_store::Store::open(&intact, None).unwrap();
        store.append_blocking(sample_event(1)).unwrap();
    }
    let (code, out, err) = portcullis(&[
        "store",
        "copy",
        "--from",
        intact.to_str().unwrap(),
        "--to",
        &url,
    ]);
    assert_eq!(code, 0, "{out}{err}");
}
