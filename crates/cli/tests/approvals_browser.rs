//! The approvals web page (`portcullis run --admin ADDR`, `GET /approvals`) in a real headless
//! Chromium: Debian's `/usr/bin/chromium` driven by playwright-core through
//! `peers/browser/approvals_page.mjs`. Both are installed by `scripts/install-browser` (which
//! `scripts/test` runs); when either is missing this test fails, it never skips.
//!
//! Set `PORTCULLIS_SCREENSHOTS=DIR` to keep the page's screenshots (`approvals-page.png` with a
//! pending call, `approvals-page-resolved.png` after the click); otherwise they go to the test's
//! temp dir. `docs/images/` holds the ones `docs/approvals.md` shows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Setup, denial, echo_server};

/// Longest wait for one step of the browser (start, a card appearing, a click resolving); far
/// above what it takes (about a second) so a loaded machine does not fail the test.
const BROWSER_STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// What would run as HTML if the page ever rendered arguments as markup.
const INJECTION: &str = "<img src=x onerror=alert(1)>";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The driver script, after checking that Chromium and playwright-core are installed.
fn browser_driver() -> PathBuf {
    let chromium = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let peers = std::env::var_os("PORTCULLIS_PEERS_DIR")
        .map_or_else(|| repo().join(".peers"), PathBuf::from);
    let playwright = peers.join("browser/node_modules/playwright-core/package.json");
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!("Chromium at {}", chromium.display()));
    }
    if !playwright.is_file() {
        missing.push(format!("playwright-core at {}", playwright.display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("`node` on PATH".to_owned());
    }
    assert!(
        missing.is_empty(),
        "the approvals page test needs a headless browser; missing: {}.\nRun scripts/install-browser (scripts/test does) to install Debian's chromium and the pinned playwright-core.",
        missing.join(", ")
    );
    repo().join("peers/browser/approvals_page.mjs")
}

fn policy(setup: &Setup) -> String {
    format!(
        r#"version: 1
servers:
  echo:
    command: [{bin}]
    cwd: {ws}
    env: {{ PORTCULLIS_ECHO_RECORD: {record} }}
tools:
  echo.write_file: {{ effect: write, args: {{ path: path }} }}
rules:
  - id: browser-writes
    when: {{ server: echo, tool: write_file, args: {{ path: {{ under: {ws} }} }} }}
    decision: require_approval
    approval: {{ mode: hold, timeout: 3m }}
"#,
        bin = echo_server().display(),
        ws = setup.ws.display(),
        record = setup.record.display(),
    )
}

/// `portcullis ARGS... --state-dir STATE`; returns (exit code, stdout, stderr).
fn cli(setup: &Setup, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .arg("--state-dir")
        .arg(setup.state_dir())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn approvals(setup: &Setup) -> Vec<Value> {
    let (code, out, err) = cli(setup, &["approvals", "list", "--all", "--json"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_pending(setup: &Setup, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pending = approvals(setup)
            .iter()
            .filter(|a| a["state"] == json!("pending"))
            .count();
        if pending >= count {
            return;
        }
        assert!(Instant::now() < deadline, "no pending approval appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn admin_address(setup: &Setup) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = setup.log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("approvals admin API on http://"))
        {
            let rest = line.split("http://").nth(1).unwrap();
            return rest.split_whitespace().next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no admin address in {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The driver process and the JSON lines it prints.
struct Driver {
    child: Child,
    lines: Receiver<String>,
    stderr: PathBuf,
}

impl Driver {
    fn start(script: &Path, url: &str, token_file: &Path, steps: &Path, stderr: PathBuf) -> Self {
        let mut child = Command::new("node")
            .arg(script)
            .args(["--url", url, "--timeout-ms", "60000"])
            .arg("--token-file")
            .arg(token_file)
            .arg("--steps")
            .arg(steps)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start node (the browser driver)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Driver {
            child,
            lines: rx,
            stderr,
        }
    }

    /// The driver's next line; fails with what it printed if it ends or says it failed.
    fn next(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(BROWSER_STEP_TIMEOUT)
            .unwrap_or_else(|_| {
                panic!(
                    "the browser driver printed nothing more; its stderr:\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                )
            });
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the driver printed non-JSON {line:?}: {e}"));
        assert_ne!(
            value["ok"],
            json!(false),
            "the browser driver failed: {value}\nits stderr:\n{}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
        value
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_approvals_page_in_headless_chromium_resolves_held_calls_and_updates_live() {
    let driver = browser_driver();
    let started = Instant::now();
    let setup = Setup::new();
    std::fs::write(&setup.policy, policy(&setup)).unwrap();
    let shots = std::env::var_os("PORTCULLIS_SCREENSHOTS")
        .map_or_else(|| setup.root.clone(), PathBuf::from);
    std::fs::create_dir_all(&shots).unwrap();

    let mut gw = setup.start_with(&["--admin", "127.0.0.1:0"]);
    gw.init();
    let addr = admin_address(&setup);

    // 1. A held write, pending before the page opens: shown exactly, approved with a click.
    let approved = setup.ws.join("report.txt");
    let first = json!({"path": approved, "content": "quarterly numbers\nline 2"});
    gw.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "write_file", "arguments": first}}));
    wait_pending(&setup, 1);

    // 2. A write whose arguments are markup, created only after the page has shown the first one
    //    resolved: it must appear without a reload, as text; it is denied with a click.
    let injected = setup.ws.join(format!("{INJECTION}.txt"));
    let second = json!({"path": injected,
        "content": format!("{INJECTION}</pre><script>alert(2)</script>")});

    let expect = |arguments: &Value| {
        json!({"server": "echo", "tool": "write_file", "arguments": arguments,
            "effect": "write", "rule": "browser-writes"})
    };
    let steps = json!([
        {"expect": expect(&first), "action": "approve",
         "screenshot": shots.join("approvals-page.png"),
         "screenshot_after": shots.join("approvals-page-resolved.png")},
        {"expect": expect(&second), "action": "deny",
         "screenshot": shots.join("approvals-page-markup.png")},
    ]);
    let steps_file = setup.root.join("steps.json");
    std::fs::write(&steps_file, steps.to_string()).unwrap();
    let mut browser = Driver::start(
        &driver,
        &format!("http://{addr}"),
        &setup.state_dir().join("admin.token"),
        &steps_file,
        setup.root.join("driver.stderr"),
    );

    let event = browser.next();
    assert_eq!(event["event"], json!("resolved"), "{event}");
    assert_eq!(event["action"], json!("approve"));
    let answer = gw.recv();
    assert_eq!(answer["id"], json!(1));
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    assert_eq!(
        std::fs::read_to_string(&approved).unwrap(),
        "quarterly numbers\nline 2"
    );
    assert!(setup.recording().contains("report.txt"));

    gw.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "write_file", "arguments": second}}));
    let event = browser.next();
    assert_eq!(event["event"], json!("resolved"), "{event}");
    assert_eq!(event["action"], json!("deny"));
    let answer = gw.recv();
    assert_eq!(answer["id"], json!(2));
    assert_eq!(
        denial(&answer)["code"],
        json!("approval_denied"),
        "{answer}"
    );
    assert!(!injected.exists());
    assert!(!setup.recording().contains("onerror"));

    let summary = browser.next();
    assert_eq!(summary["ok"], json!(true), "{summary}");
    assert_eq!(summary["loads"], json!(1), "{summary}");
    let status = browser.child.wait().unwrap();
    assert!(status.success(), "the driver exited with {status}");
    for shot in ["approvals-page.png", "approvals-page-resolved.png"] {
        let png = std::fs::read(shots.join(shot)).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{shot} is not a PNG");
    }

    // Both resolutions went through the admin channel as the page's default approver.
    let all = approvals(&setup);
    for (id, state) in [
        (&event["id"], "denied"),
        (&summary["steps"][0]["id"], "used"),
    ] {
        let a = all.iter().find(|a| &a["id"] == id).unwrap();
        assert_eq!(a["state"], json!(state), "{a}");
        assert_eq!(a["channel"], json!("admin"), "{a}");
        assert_eq!(a["approver"], json!("web"), "{a}");
    }
    eprintln!(
        "browser test: {:.1}s in all; driver {summary}",
        started.elapsed().as_secs_f64()
    );
}
