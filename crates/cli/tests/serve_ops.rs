//! End-to-end: the operations surface of the real `portcullis serve` — the Prometheus
//! `/metrics` exposition scraped after real calls through a testkit echo server, and JSON logs.
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

use std::collections::BTreeMap;

use http::{PolicyDir, Serve, request, session_headers};
use serde_json::{Value, json};

/// A secret-looking argument value: it must never show up in the metrics.
const SECRET_VALUE: &str = "never-a-label-7f3a9c";

/// The policy: `echo` with rules of every decision, and `idle`, which nobody uses.
fn world() -> PolicyDir {
    PolicyDir::new(|root| {
        format!(
            r#"version: 1
servers:
  echo: {{ command: [{bin}], cwd: {ws} }}
  idle: {{ command: [{bin}], cwd: {ws} }}
tools:
  echo.read_file: {{ effect: read, args: {{ path: path }} }}
rules:
  - id: echo-ok
    when: {{ server: echo, tool: [echo, crash] }}
    decision: allow
  - id: deny-secrets
    when: {{ server: echo, args: {{ path: {{ glob: ["**/.env"] }} }} }}
    decision: deny
  - id: needs-approval
    when: {{ server: echo, tool: approve_me }}
    decision: require_approval
    approval: {{ mode: retry }}
"#,
            bin = gateway::echo_server().display(),
            ws = root.join("ws").display()
        )
    })
}

fn metrics_token(world: &PolicyDir) -> String {
    std::fs::read_to_string(world.root.join(".portcullis/metrics.token"))
        .unwrap()
        .trim()
        .to_owned()
}

fn call(id: i64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}})
}

/// One sample of the text exposition: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the Prometheus / OpenMetrics text format (what a scraper reads): `# ` lines are
/// metadata, every other line is `name{label="value",...} number`.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                let mut labels = BTreeMap::new();
                // Our label values never contain `,` or escaped quotes.
                for pair in body.split(',').filter(|p| !p.is_empty()) {
                    let (key, quoted) = pair.split_once('=').unwrap();
                    let value = quoted.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
                    labels.insert(key.to_owned(), value.to_owned());
                }
                (name.to_owned(), labels)
            }
        };
        samples.push((name, labels, value));
    }
    samples
}

/// The value of the series `name` whose labels include `labels`, summed over the rest (0 if
/// there is none, as Prometheus would read an absent counter).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).is_some_and(|have| have == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

fn scrape(serve: &Serve, token: &str) -> (String, Vec<Sample>) {
    let auth = format!("Bearer {token}");
    let reply = request(
        serve.port,
        "GET",
        "/metrics",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{reply:?}"
    );
    assert!(reply.body.ends_with("# EOF\n"), "{}", reply.body);
    let samples = parse_exposition(&reply.body);
    (reply.body, samples)
}

#[test]
fn metrics_need_their_token_and_the_host_guard() {
    let world = world();
    let serve = world.serve(&[], &[]);
    let reply = request(serve.port, "GET", "/metrics", &[], b"");
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    let reply = request(
        serve.port,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer not-the-token")],
        b"",
    );
    assert_eq!(reply.status, 401, "{reply:?}");
    let token = metrics_token(&world);
    assert_eq!(token.len(), 64, "32 random bytes, hex");
    let auth = format!("Bearer {token}");
    // DNS rebinding protection applies to /metrics as to /mcp.
    let reply = request(
        serve.port,
        "GET",
        "/metrics",
        &[("Authorization", &auth), ("Host", "evil.example")],
        b"",
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    // Not the admin token either: a scraper's credential is its own.
    let mode = std::fs::metadata(world.root.join(".portcullis/metrics.token"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let (_, samples) = scrape(&serve, &token);
    // Every configured server has its series from the start, at zero.
    for server in ["echo", "idle"] {
        assert_eq!(
            value(
                &samples,
                "portcullis_upstream_sessions",
                &[("server", server)]
            ),
            0.0
        );
    }
    // The refused scrapes were counted, by status.
    assert_eq!(
        value(
            &samples,
            "portcullis_http_requests_total",
            &[("route", "metrics"), ("method", "GET"), ("status", "401")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "portcullis_http_requests_total",
            &[("route", "metrics"), ("status", "403")]
        ),
        1.0
    );
}

#[test]
fn metrics_count_decisions_upstreams_and_requests_after_real_calls() {
    let world = world();
    let serve = world.serve(&[], &[]);
    let token = metrics_token(&world);
    let session = serve.initialize("/mcp/echo", &[]);
    let headers = session_headers(&session);
    let env = world.root.join("ws/.env").display().to_string();

    for (id, text) in [(1, "one"), (2, SECRET_VALUE)] {
        let reply = serve
            .post(
                "/mcp/echo",
                &headers,
                &call(id, "echo", json!({"text": text})),
            )
            .json();
        assert_eq!(
            reply["result"]["content"][0]["text"],
            json!(text),
            "{reply:#}"
        );
    }
    let reply = serve
        .post(
            "/mcp/echo",
            &headers,
            &call(3, "read_file", json!({"path": env})),
        )
        .json();
    assert_eq!(reply["result"]["isError"], json!(true), "{reply:#}");
    let reply = serve
        .post(
            "/mcp/echo",
            &headers,
            &call(4, "approve_me", json!({"note": SECRET_VALUE})),
        )
        .json();
    assert_eq!(reply["result"]["isError"], json!(true), "{reply:#}");
    let reply = serve
        .post("/mcp/echo", &headers, &call(5, "not_allowed", json!({})))
        .json();
    assert_eq!(reply["result"]["isError"], json!(true), "{reply:#}");

    let (text, samples) = scrape(&serve, &token);
    assert!(!text.contains(SECRET_VALUE), "an argument leaked:\n{text}");
    assert!(!text.contains(&session), "a session id leaked:\n{text}");
    let decisions = |decision, rule| {
        value(
            &samples,
            "portcullis_decisions_total",
            &[("decision", decision), ("rule", rule), ("server", "echo")],
        )
    };
    assert_eq!(decisions("allow", "echo-ok"), 2.0, "{text}");
    assert_eq!(decisions("deny", "deny-secrets"), 1.0, "{text}");
    assert_eq!(
        decisions("require_approval", "needs-approval"),
        1.0,
        "{text}"
    );
    assert_eq!(decisions("deny", "default-deny"), 1.0, "{text}");
    // Only tools with their own `tools:` entry are labels; any other name (a client could make
    // up any number of them) is `other`.
    assert!(!text.contains("not_allowed"), "{text}");
    assert_eq!(
        value(
            &samples,
            "portcullis_decisions_total",
            &[("rule", "deny-secrets"), ("tool", "read_file")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "portcullis_decisions_total",
            &[("rule", "echo-ok"), ("tool", "other")]
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "portcullis_decisions_total",
            &[("rule", "default-deny"), ("tool", "other")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "portcullis_decision_duration_seconds_count",
            &[("server", "echo")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &samples,
            "portcullis_upstream_call_duration_seconds_count",
            &[("server", "echo"), ("outcome", "ok")]
        ),
        2.0
    );
    assert_eq!(value(&samples, "portcullis_pending_approvals", &[]), 1.0);
    assert_eq!(
        value(
            &samples,
            "portcullis_upstream_sessions",
            &[("server", "echo")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "portcullis_upstream_sessions",
            &[("server", "idle")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &samples,
            "portcullis_upstream_starts_total",
            &[("server", "echo")]
        ),
        1.0
    );
    assert_eq!(
        value(&samples, "portcullis_upstream_up", &[("server", "echo")]),
        1.0
    );
    // initialize, the initialized notification (202) and five calls, all POSTs to /mcp.
    assert_eq!(
        value(
            &samples,
            "portcullis_http_requests_total",
            &[("route", "mcp"), ("method", "POST"), ("status", "200")]
        ),
        6.0,
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "portcullis_http_requests_total",
            &[("route", "mcp"), ("method", "POST"), ("status", "202")]
        ),
        1.0,
        "{text}"
    );

    // The server crashes: it is down, and its session's end is counted as the server's doing.
    let reply = serve
        .post("/mcp/echo", &headers, &call(6, "crash", json!({})))
        .json();
    assert!(reply["error"].is_object(), "{reply:#}");
    let mut samples = Vec::new();
    for _ in 0..200 {
        (_, samples) = scrape(&serve, &token);
        if value(
            &samples,
            "portcullis_upstream_sessions",
            &[("server", "echo")],
        ) == 0.0
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        value(
            &samples,
            "portcullis_upstream_sessions",
            &[("server", "echo")]
        ),
        0.0
    );
    assert_eq!(
        value(&samples, "portcullis_upstream_up", &[("server", "echo")]),
        0.0
    );
    assert_eq!(
        value(
            &samples,
            "portcullis_upstream_exits_total",
            &[("server", "echo"), ("outcome", "server_gone")]
        ),
        1.0
    );
    // A new session starts the server again: up, and a second start.
    serve.initialize("/mcp/echo", &[]);
    let (_, samples) = scrape(&serve, &token);
    assert_eq!(
        value(&samples, "portcullis_upstream_up", &[("server", "echo")]),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "portcullis_upstream_starts_total",
            &[("server", "echo")]
        ),
        2.0
    );
}

/// Every line of a log file as JSON; panics on a line that is not a JSON object.
fn json_lines(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let value: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(value.is_object(), "{l}");
            value
        })
        .collect()
}

#[test]
fn logs_can_be_json_lines() {
    let world = world();
    let log = world.log();
    let serve = world.serve(&["--log-format", "json"], &[]);
    let session = serve.initialize("/mcp/echo", &[]);
    let headers = session_headers(&session);
    let env = world.root.join("ws/.env").display().to_string();
    let reply = serve
        .post(
            "/mcp/echo",
            &headers,
            &call(1, "read_file", json!({"path": env})),
        )
        .json();
    let decision_id = reply["result"]["structuredContent"]["decision_id"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(serve);
    let lines = json_lines(&log);
    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["message"].is_string(), "{line}");
    }
    let banner = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .unwrap()
                .starts_with("portcullis: serving")
        })
        .unwrap_or_else(|| panic!("no start line: {lines:?}"));
    assert_eq!(banner["level"], json!("INFO"));
    assert_eq!(banner["servers"], json!("echo, idle"));
    // The denial is one event with its fields as JSON fields, not only in the message.
    let denial = lines
        .iter()
        .find(|l| l["decision_id"] == json!(decision_id))
        .unwrap_or_else(|| panic!("no denial event: {lines:?}"));
    assert_eq!(denial["rule"], json!("deny-secrets"), "{denial}");
}

#[test]
fn the_log_format_comes_from_the_environment_too_and_is_checked() {
    let world = world();
    let log = world.log();
    let serve = world.serve(&[], &[("PORTCULLIS_LOG_FORMAT", "json")]);
    drop(serve);
    assert!(!json_lines(&log).is_empty());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--log-format", "xml", "--policy"])
        .arg(world.policy())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'xml' for '--log-format <FORMAT>'")
            && stderr.contains("[possible values: text, json]"),
        "{stderr}"
    );
}
