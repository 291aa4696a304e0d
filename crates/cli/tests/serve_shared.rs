//! End-to-end: `shared: true` stdio servers behind the real `portcullis serve`. Two concurrent
//! client sessions reach one process (the real `@modelcontextprotocol/server-everything`, and
//! the recording testkit echo server), each gets its own answers under its own ids, the server
//! is initialized once, its requests are refused, and a crash is survived by a restart; a
//! restarted process gets no session call before the gateway re-initialized it.
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
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use http::{PolicyDir, Serve, session_headers};
use serde_json::{Value, json};
use support::Peers;

/// A policy allowing the tools these tests call, with `server` (a YAML line under `servers:`,
/// where `@RECORDING@` becomes the recording file and `@ROOT@` the policy directory).
fn world(server: &str) -> PolicyDir {
    PolicyDir::new(|root| {
        format!(
            r#"version: 1
servers:
{server}
rules:
  - id: allowed
    when: {{ tool: [echo, crash, sample, trigger-long-running-operation] }}
    decision: allow
"#,
            server = server
                .replace(
                    "@RECORDING@",
                    &root.join("recording.jsonl").display().to_string()
                )
                .replace("@ROOT@", &root.display().to_string())
        )
    })
}

fn recorded(world: &PolicyDir) -> Vec<Value> {
    recorded_in(&world.root.join("recording.jsonl"))
}

/// What echo process `pid` received, in the order it received it, when it records to
/// `@ROOT@/recording-{pid}.jsonl`.
fn recorded_by(world: &PolicyDir, pid: u32) -> Vec<Value> {
    recorded_in(&world.root.join(format!("recording-{pid}.jsonl")))
}

fn recorded_in(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The methods of recorded messages, in order (`-` for an answer).
fn methods(recording: &[Value]) -> Vec<String> {
    recording
        .iter()
        .map(|l| l["method"].as_str().unwrap_or("-").to_owned())
        .collect()
}

/// The child processes of `pid` (from /proc), with their command lines.
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may contain spaces, so read after the last `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push((child, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    found
}

fn call(id: i64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}})
}

/// POSTs `body` to a session, accepting only JSON (so server notifications such as
/// list-changed, which a shared server sends to every session, do not turn the answer into SSE).
fn post(serve: &Serve, path: &str, session: &str, body: &Value) -> Value {
    let mut headers = session_headers(session);
    headers.push(("Content-Type", "application/json"));
    headers.push(("Accept", "application/json"));
    http::request(
        serve.port,
        "POST",
        path,
        &headers,
        body.to_string().as_bytes(),
    )
    .json()
}

/// Two sessions call `tool` concurrently, each `rounds` times under the same ids; every
/// answer must carry the caller's own text.
fn concurrent_calls(
    serve: &Serve,
    path: &str,
    sessions: [&str; 2],
    tool: &str,
    key: &str,
    rounds: i64,
) {
    std::thread::scope(|scope| {
        for (who, session) in ["alpha", "beta"].into_iter().zip(sessions) {
            scope.spawn(move || {
                for id in 1..=rounds {
                    let text = format!("{who}-{id}");
                    let reply = post(serve, path, session, &call(id, tool, json!({key: text})));
                    assert_eq!(reply["id"], json!(id), "{reply:#}");
                    let got = reply["result"]["content"][0]["text"]
                        .as_str()
                        .unwrap_or_default();
                    assert!(
                        got == text || got == format!("Echo: {text}"),
                        "session {who} got someone else's answer: {reply:#}"
                    );
                }
            });
        }
    });
}

#[test]
fn two_sessions_share_one_real_server_everything() {
    let peers = Peers::require();
    let everything = peers.filesystem.with_file_name("mcp-server-everything");
    assert!(
        everything.exists(),
        "run scripts/install-peers: {}",
        everything.display()
    );
    let world = world(&format!(
        "  everything: {{ command: [{}], shared: true }}",
        everything.display()
    ));
    let serve = world.serve(&[], &[]);
    let a = serve.initialize("/mcp/everything", &[]);
    let b = serve.initialize("/mcp/everything", &[]);
    assert_ne!(a, b);
    concurrent_calls(&serve, "/mcp/everything", [&a, &b], "echo", "message", 5);
    let kids = children(serve.child.id());
    assert_eq!(kids.len(), 1, "one process serves both sessions: {kids:?}");
    // Listing works for both, from the one process.
    for session in [&a, &b] {
        let reply = post(
            &serve,
            "/mcp/everything",
            session,
            &json!({"jsonrpc": "2.0", "id": 99, "method": "tools/list"}),
        );
        assert!(
            reply["result"]["tools"]
                .as_array()
                .is_some_and(|t| !t.is_empty()),
            "{reply:#}"
        );
    }
    assert_eq!(children(serve.child.id()).len(), 1);

    // Progress goes by token to the session whose request it is, even when both sessions use
    // the same token and the same id at once.
    std::thread::scope(|scope| {
        for session in [&a, &b] {
            let serve = &serve;
            scope.spawn(move || {
                let mut headers = session_headers(session);
                headers.push(("Content-Type", "application/json"));
                headers.push(("Accept", "application/json, text/event-stream"));
                let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
                    "name": "trigger-long-running-operation",
                    "arguments": {"duration": 0.4, "steps": 2},
                    "_meta": {"progressToken": "tok"}}});
                let reply = http::request(
                    serve.port,
                    "POST",
                    "/mcp/everything",
                    &headers,
                    body.to_string().as_bytes(),
                );
                assert_eq!(reply.status, 200, "{reply:?}");
                let progress: Vec<Value> = reply
                    .body
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                    .filter(|m| m["method"] == json!("notifications/progress"))
                    .collect();
                assert_eq!(
                    progress.len(),
                    2,
                    "exactly this session's progress: {}",
                    reply.body
                );
                assert!(
                    progress
                        .iter()
                        .all(|p| p["params"]["progressToken"] == json!("tok")),
                    "the session's own token: {progress:?}"
                );
                assert!(
                    reply.body.contains("Long running operation completed"),
                    "{}",
                    reply.body
                );
            });
        }
    });
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn echo_pids(serve: &Serve, bin: &Path) -> Vec<u32> {
    let bin = bin.display().to_string();
    children(serve.child.id())
        .into_iter()
        .filter(|(_, cmd)| cmd.contains(&bin))
        .map(|(pid, _)| pid)
        .collect()
}

#[test]
fn a_shared_server_is_initialized_once_refuses_its_requests_and_survives_a_crash() {
    let bin = gateway::echo_server();
    let world = world(&format!(
        "  echo: {{ command: [{}], shared: true, env: {{ PORTCULLIS_ECHO_RECORD: '@RECORDING@' }} }}",
        bin.display()
    ));
    let serve = world.serve(&[], &[]);
    let a = serve.initialize("/mcp/echo", &[]);
    let b = serve.initialize("/mcp/echo", &[]);
    concurrent_calls(&serve, "/mcp/echo", [&a, &b], "echo", "text", 10);
    let first = echo_pids(&serve, bin);
    assert_eq!(first.len(), 1, "{:?}", children(serve.child.id()));

    let recording = recorded(&world);
    let methods = |m: &str| recording.iter().filter(|l| l["method"] == json!(m)).count();
    assert_eq!(
        methods("initialize"),
        1,
        "initialized once for both sessions"
    );
    assert_eq!(methods("notifications/initialized"), 1);
    // The server saw gateway-owned ids: 20 calls, 20 distinct ids, although both sessions
    // used ids 1..=10.
    let mut ids: Vec<String> = recording
        .iter()
        .filter(|l| l["method"] == json!("tools/call"))
        .map(|l| l["id"].to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "{ids:?}");

    // A server request cannot be attributed to one session: refused, and the server told so.
    let reply = post(&serve, "/mcp/echo", &a, &call(50, "sample", json!({})));
    assert_eq!(
        reply["result"]["content"][0]["text"],
        json!("sampling requested"),
        "{reply:#}"
    );
    wait_until("the refusal of the server request", || {
        recorded(&world)
            .iter()
            .any(|l| l["id"] == json!("srv-1") && l["error"]["code"] == json!(-32601))
    });

    // The process crashes: the call in flight gets an error, the sessions go on, and the
    // next call reaches a restarted, re-initialized process.
    let reply = post(&serve, "/mcp/echo", &a, &call(60, "crash", json!({})));
    assert!(reply["error"].is_object(), "{reply:#}");
    let reply = post(
        &serve,
        "/mcp/echo",
        &b,
        &call(61, "echo", json!({"text": "after"})),
    );
    assert_eq!(
        reply["result"]["content"][0]["text"],
        json!("after"),
        "{reply:#}"
    );
    let reply = post(
        &serve,
        "/mcp/echo",
        &a,
        &call(62, "echo", json!({"text": "a too"})),
    );
    assert_eq!(
        reply["result"]["content"][0]["text"],
        json!("a too"),
        "{reply:#}"
    );
    let second = echo_pids(&serve, bin);
    assert_eq!(second.len(), 1);
    assert_ne!(first, second, "a new process");
    let recording = recorded(&world);
    let inits: Vec<&Value> = recording
        .iter()
        .filter(|l| l["method"] == json!("initialize"))
        .collect();
    assert_eq!(inits.len(), 2, "re-initialized once after the restart");
    assert_eq!(
        inits[0]["params"], inits[1]["params"],
        "with the kept parameters"
    );

    // The metrics count the process, not the sessions: two starts, one crash, one running.
    let token = std::fs::read_to_string(world.root.join(".portcullis/metrics.token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let metrics = http::request(
        serve.port,
        "GET",
        "/metrics",
        &[("Authorization", &auth)],
        b"",
    );
    for line in [
        "portcullis_upstream_starts_total{server=\"echo\"} 2\n",
        "portcullis_upstream_sessions{server=\"echo\"} 1\n",
        "portcullis_upstream_up{server=\"echo\"} 1\n",
        "portcullis_upstream_exits_total{server=\"echo\",outcome=\"server_gone\"} 1\n",
    ] {
        assert!(metrics.body.contains(line), "{line}{}", metrics.body);
    }
}

/// The gateway's count of calls to server `echo` allowed by rule `allowed`. A call is counted
/// when it is decided; it goes on to the shared server once its decision record is durable.
fn allowed_calls(serve: &Serve, world: &PolicyDir) -> u64 {
    let token = std::fs::read_to_string(world.root.join(".portcullis/metrics.token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let metrics = http::request(
        serve.port,
        "GET",
        "/metrics",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(metrics.status, 200, "{metrics:?}");
    metrics
        .body
        .lines()
        .filter(|l| {
            l.starts_with(
                "portcullis_decisions_total{decision=\"allow\",rule=\"allowed\",server=\"echo\",",
            )
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum()
}

#[test]
fn a_restarted_shared_server_gets_no_session_call_before_its_reinitialization() {
    // Each echo process records what it receives in its own file; while `hold` exists, a
    // process holds back its answer to `initialize`.
    let bin = gateway::echo_server();
    let world = world(&format!(
        "  echo: {{ command: [{}], shared: true, env: {{ PORTCULLIS_ECHO_RECORD: '@ROOT@/recording-{{pid}}.jsonl', PORTCULLIS_ECHO_HOLD_INITIALIZE: '@ROOT@/hold' }} }}",
        bin.display()
    ));
    let hold = world.root.join("hold");
    let serve = world.serve(&[], &[]);
    let session = serve.initialize("/mcp/echo", &[]);
    let reply = post(
        &serve,
        "/mcp/echo",
        &session,
        &call(1, "echo", json!({"text": "before"})),
    );
    assert_eq!(
        reply["result"]["content"][0]["text"],
        json!("before"),
        "{reply:#}"
    );
    let first = echo_pids(&serve, bin);
    assert_eq!(first.len(), 1, "{:?}", children(serve.child.id()));
    let before = recorded_by(&world, first[0]);
    assert_eq!(
        methods(&before),
        ["initialize", "notifications/initialized", "tools/call"],
        "{before:#?}"
    );

    // The process is killed; the gateway starts another and sends it its own `initialize`,
    // whose answer the new process holds back.
    std::fs::write(&hold, b"").unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut second = None;
    wait_until("the restarted process's first message", || {
        second = match echo_pids(&serve, bin).as_slice() {
            [pid] if *pid != first[0] => Some(*pid),
            _ => None,
        };
        second.is_some_and(|pid| !recorded_by(&world, pid).is_empty())
    });
    let second = second.unwrap();

    // A session's call in that window. The gateway has decided it before the hold is
    // released; the pause after the decision covers the few milliseconds until the call is
    // handed on (its decision record made durable), so that a gateway without the guard would
    // have written it to the process by then. (Too short a pause could only let a broken guard
    // pass unnoticed, never fail a sound one: the answer to `initialize` waits for the hold.)
    // Two guards keep the call out: the ready signal holds it until the re-initialization is
    // done, and `accepting` refuses it should it get past. `accepting` alone matters only in a
    // window the binary cannot be made to open; the gateway's unit test covers it.
    let decided = allowed_calls(&serve, &world);
    assert_eq!(decided, 1, "the first call");
    let (answered_early, reply) = std::thread::scope(|scope| {
        let held = scope.spawn(|| {
            post(
                &serve,
                "/mcp/echo",
                &session,
                &call(2, "echo", json!({"text": "held"})),
            )
        });
        wait_until("the gateway's decision on the call", || {
            allowed_calls(&serve, &world) > decided
        });
        std::thread::sleep(Duration::from_millis(500));
        let answered_early = held.is_finished();
        std::fs::remove_file(&hold).unwrap();
        (answered_early, held.join().unwrap())
    });

    // The call waited for the re-initialization and was then answered by the new process.
    assert!(
        !answered_early,
        "answered before the restarted process was initialized: {reply:#}"
    );
    assert_eq!(reply["id"], json!(2), "{reply:#}");
    assert_eq!(
        reply["result"]["content"][0]["text"],
        json!("held"),
        "{reply:#}"
    );
    // The new process got the gateway's `initialize` (with the kept parameters) first, the
    // gateway's `notifications/initialized` after the answer, and only then the call.
    let after = recorded_by(&world, second);
    assert_eq!(
        methods(&after),
        ["initialize", "notifications/initialized", "tools/call"],
        "{after:#?}"
    );
    assert_eq!(
        after[0]["params"], before[0]["params"],
        "re-initialized with the kept parameters"
    );
    assert_eq!(after[2]["params"]["arguments"]["text"], json!("held"));
}

/// Sends SIGTERM to `serve` and waits for it to exit, at most `limit`.
fn terminate(serve: &mut Serve, limit: Duration) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    loop {
        if let Some(exit) = serve.child.try_wait().unwrap() {
            return exit;
        }
        assert!(
            start.elapsed() < limit,
            "serve did not stop within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_shared_server_is_stopped_gracefully_with_serve() {
    let bin = gateway::echo_server();
    let world = world(&format!(
        "  echo: {{ command: [{}], shared: true }}",
        bin.display()
    ));
    let mut serve = world.serve(&[], &[]);
    let session = serve.initialize("/mcp/echo", &[]);
    let reply = post(
        &serve,
        "/mcp/echo",
        &session,
        &call(1, "echo", json!({"text": "x"})),
    );
    assert_eq!(
        reply["result"]["content"][0]["text"],
        json!("x"),
        "{reply:#}"
    );
    let pids = echo_pids(&serve, bin);
    assert_eq!(pids.len(), 1);
    let exit = terminate(&mut serve, Duration::from_secs(30));
    let log = std::fs::read_to_string(world.log()).unwrap();
    assert_eq!(exit.code(), Some(0), "{log}");
    assert!(log.contains("stopped a shared server"), "{log}");
    assert!(
        !Path::new(&format!("/proc/{}", pids[0])).exists(),
        "the shared server outlived serve"
    );
}

#[test]
fn a_shared_server_that_never_answers_initialize_fails_its_sessions_in_time() {
    // The process answers nothing (and never exits by itself).
    let world = world("  mute: { command: [/bin/sleep, '3600'], shared: true }");
    let serve = world.serve(&[], &[]);
    let started = Instant::now();
    // The first session's `initialize` goes to the process; the second waits for its answer.
    let replies: Vec<http::Reply> = std::thread::scope(|scope| {
        let first = scope.spawn(|| serve.post("/mcp/mute", &[], &http::initialize_request()));
        std::thread::sleep(Duration::from_millis(300));
        let second = scope.spawn(|| serve.post("/mcp/mute", &[], &http::initialize_request()));
        vec![first.join().unwrap(), second.join().unwrap()]
    });
    for reply in &replies {
        let body = reply.json();
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("did not answer `initialize` in time")),
            "{reply:?}"
        );
    }
    // Both answered by the gateway's 30 s limit, not the client's 60 s read timeout.
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn serve_stops_promptly_while_a_get_stream_is_open() {
    use std::io::{BufRead, BufReader, Write};
    let bin = gateway::echo_server();
    let world = world(&format!("  echo: {{ command: [{}] }}", bin.display()));
    let mut serve = world.serve(&[], &[]);
    let session = serve.initialize("/mcp/echo", &[]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
    write!(
        stream,
        "GET /mcp/echo HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {session}\r\n\r\n",
        serve.port
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // The drain limit is 30 s; an open GET stream used to hold the shutdown all of it.
    let exit = terminate(&mut serve, Duration::from_secs(10));
    let log = std::fs::read_to_string(world.log()).unwrap();
    assert_eq!(exit.code(), Some(0), "{log}");
    assert!(!log.contains("did not finish in time"), "{log}");
    // The stream itself was ended, not cut: the rest of the response reads to its end.
    let mut rest = String::new();
    while reader.read_line(&mut rest).unwrap_or(0) > 0 {}
}
