//! Clock jumps under a running `portcullis run`, with libfaketime (`faketime` package, installed by
//! `scripts/install-system-deps`): the gateway runs with `LD_PRELOAD=libfaketime` and an offset
//! read from a file the test rewrites mid-run (`FAKETIME_TIMESTAMP_FILE`, no cache; the monotonic
//! clock is left alone so the runtime's timers keep working). The server is started by the
//! gateway with a cleared environment and keeps the real clock.
//!
//! Time may decide an `hours` window, an approval's or a lease's expiry and a rate-limit window;
//! a jump must never widen any of them: an approval or lease the gateway saw expire stays expired
//! when the clock goes back, a limit used up stays used up, an `hours` allow is only granted inside
//! its window. The audit chain records time but is ordered by sequence, so it verifies across the
//! jumps.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

#[path = "support/faults.rs"]
mod faults;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use faults::{
    Proc, assert_every_forwarded_call_was_recorded, assert_verifies, audit_records, passed,
};
use serde_json::{Value, json};
use support::{Setup, echo_server, libfaketime};

/// A gateway under a clock whose offset from the real one the test sets.
struct Clocked {
    setup: Setup,
    offset_file: PathBuf,
    gw: Proc,
}

impl Clocked {
    fn start(policy: impl Fn(&Setup) -> String) -> Clocked {
        let setup = Setup::new();
        for dir in ["hours", "appr", "leased", "limited"] {
            std::fs::create_dir(setup.ws.join(dir)).unwrap();
            std::fs::write(setup.ws.join(dir).join("f"), dir).unwrap();
        }
        std::fs::write(&setup.policy, policy(&setup)).unwrap();
        let offset_file = setup.root.join("faketime");
        std::fs::write(&offset_file, "+0\n").unwrap();
        let offset = offset_file.display().to_string();
        let mut gw = Proc::start(
            &setup.policy,
            &[],
            &[
                ("LD_PRELOAD", libfaketime()),
                ("FAKETIME_TIMESTAMP_FILE", &offset),
                ("FAKETIME_NO_CACHE", "1"),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ],
            &setup.stderr,
        );
        gw.init();
        Clocked {
            setup,
            offset_file,
            gw,
        }
    }

    /// Sets the gateway's clock to the real time plus `seconds`.
    fn jump(&self, seconds: i64) {
        std::fs::write(&self.offset_file, format!("{seconds:+}\n")).unwrap();
    }

    fn read(&mut self, id: i64, dir: &str) -> Value {
        let path = self.setup.ws.join(dir).join("f");
        self.gw.call(id, "read_file", json!({"path": path}))
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .arg("--state-dir")
            .arg(self.setup.state_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The chain verifies and every forwarded call has its allow record.
    fn finish(self) -> Vec<Value> {
        assert_eq!(self.gw.finish(), 0, "{}", self.setup.log());
        let state = self.setup.state_dir();
        assert_verifies(&state);
        let records = audit_records(&state);
        assert_every_forwarded_call_was_recorded(&self.setup.recording(), &records);
        records
    }
}

fn decision(answer: &Value) -> &Value {
    &answer["result"]["_meta"]["io.portcullis/decision"]
}

fn policy(setup: &Setup, hours: &str) -> String {
    let ws = setup.ws.display();
    format!(
        r#"version: 1
servers:
  echo:
    command: [{bin}]
    cwd: {ws}
    env: {{ PORTCULLIS_ECHO_RECORD: {record} }}
tools:
  echo.echo: {{ effect: read }}
  echo.read_file: {{ effect: read, args: {{ path: path }} }}
rules:
  - id: echo-ok
    when: {{ server: echo, tool: echo }}
    decision: allow
  - id: office-hours
    when: {{ server: echo, tool: read_file, args: {{ path: {{ under: {ws}/hours }} }} }}
    hours: {hours}
    decision: allow
  - id: retry-reads
    when: {{ server: echo, tool: read_file, args: {{ path: {{ under: {ws}/appr }} }} }}
    decision: require_approval
    approval: {{ mode: retry, ttl: 10m }}
  - id: leased-reads
    when: {{ server: echo, tool: read_file, args: {{ path: {{ under: {ws}/leased }} }} }}
    decision: require_approval
    approval: {{ mode: retry, ttl: 10m }}
  - id: limited-reads
    when: {{ server: echo, tool: read_file, args: {{ path: {{ under: {ws}/limited }} }} }}
    decision: allow
    limit: {{ calls: 3, per: 1h, by: session }}
"#,
        bin = echo_server().display(),
        record = setup.record.display(),
    )
}

/// `HH:MM` in UTC, `seconds` from now.
fn utc_hhmm(seconds: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = (i64::try_from(now).unwrap() + seconds).rem_euclid(86_400);
    format!("{:02}:{:02}", t / 3600, (t % 3600) / 60)
}

/// Six hours from now, for forty minutes (starting twenty minutes before): not now.
const WINDOW_AT: i64 = 6 * 3600;

fn hours_policy(setup: &Setup) -> String {
    let hours = format!(
        r#"{{ from: "{}", to: "{}", tz: UTC }}"#,
        utc_hhmm(WINDOW_AT - 20 * 60),
        utc_hhmm(WINDOW_AT + 20 * 60)
    );
    policy(setup, &hours)
}

#[test]
fn an_hours_allow_follows_the_gateways_clock_and_is_never_granted_outside_its_window() {
    let mut c = Clocked::start(hours_policy);
    let d = decision(&c.read(1, "hours")).clone();
    assert_eq!(d["rule"], json!("default-deny"), "outside the window: {d}");
    // Into the window: the control that shows the gateway really runs on the jumped clock.
    c.jump(WINDOW_AT);
    let answer = c.read(2, "hours");
    assert!(passed(&answer), "inside the window: {answer}");
    // Back out of it.
    c.jump(0);
    let d = decision(&c.read(3, "hours")).clone();
    assert_eq!(
        d["rule"],
        json!("default-deny"),
        "back outside the window: {d}"
    );
    // Far forward past it.
    c.jump(WINDOW_AT + 3 * 3600);
    let d = decision(&c.read(4, "hours")).clone();
    assert_eq!(d["rule"], json!("default-deny"), "past the window: {d}");
    let records = c.finish();
    // Time is recorded as the gateway saw it (so it goes back and forth) while seq orders the chain.
    let times: Vec<&str> = records
        .iter()
        .filter_map(|r| r["event"]["time"].as_str())
        .collect();
    assert!(
        times.windows(2).any(|w| w[0] > w[1]),
        "the records should show the backwards jump: {times:?}"
    );
}

#[test]
fn an_approval_or_lease_seen_expired_is_not_revived_by_a_backwards_jump() {
    let mut c = Clocked::start(hours_policy);
    // An approval, given by a human.
    let d = decision(&c.read(1, "appr")).clone();
    assert_eq!(d["code"], json!("approval_pending"), "{d}");
    let approval = d["approval_id"].as_str().unwrap().to_owned();
    c.cli(&["approvals", "approve", &approval, "--as", "alice"]);
    let listed = c.cli(&["approvals", "list", "--all", "--json"]);
    let session = serde_json::from_str::<Value>(listed.lines().next().unwrap()).unwrap()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    // A lease for 30 minutes, used once.
    let under = format!("path={}", c.setup.ws.join("leased").display());
    c.cli(&[
        "lease",
        "grant",
        "--as",
        "alice",
        "--session",
        &session,
        "--tool",
        "read_file",
        "--args-under",
        &under,
        "--ttl",
        "30m",
        "--max-calls",
        "10",
    ]);
    assert!(passed(&c.read(2, "leased")), "the lease covers the call");

    // An hour later both have run out.
    c.jump(3600);
    let d = decision(&c.read(3, "appr")).clone();
    assert_ne!(d, Value::Null, "an expired approval let the call through");
    let d = decision(&c.read(4, "leased")).clone();
    assert_ne!(d, Value::Null, "an expired lease let the call through");

    // The clock goes back: neither comes back to life.
    c.jump(0);
    std::thread::sleep(Duration::from_millis(100));
    let answer = c.read(5, "appr");
    assert!(
        !passed(&answer),
        "an approval seen expired was revived by a backwards clock jump: {answer}"
    );
    let answer = c.read(6, "leased");
    assert!(
        !passed(&answer),
        "a lease seen expired was revived by a backwards clock jump: {answer}"
    );
    c.finish();
}

#[test]
fn a_backwards_jump_does_not_reset_a_used_up_rate_limit() {
    let mut c = Clocked::start(hours_policy);
    for id in 1..=3 {
        let answer = c.read(id, "limited");
        assert!(passed(&answer), "call {id} is within the limit: {answer}");
    }
    let d = decision(&c.read(4, "limited")).clone();
    assert_eq!(d["rule"], json!("limited-reads"), "{d}");
    // Two hours back: another window, never used. The limit must still hold.
    c.jump(-2 * 3600);
    let answer = c.read(5, "limited");
    assert!(
        !passed(&answer),
        "a backwards clock jump reset a used-up rate limit: {answer}"
    );
    c.finish();
}
