//! End-to-end: OpenTelemetry traces of the real `portcullis serve`, exported over OTLP
//! http/protobuf to a small receiver in this test. A client's `traceparent` in `params._meta`
//! parents the gateway's span, the recording echo server receives the gateway span's own
//! `traceparent`, a malformed one is ignored, the approval binding does not depend on it, and an
//! exporter that is down costs nothing.
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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{PolicyDir, Serve, session_headers};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Value, json};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_SPAN: &str = "b7ad6b7169203331";
/// The longest wait for spans to arrive; the batch delay is set to 50 ms.
const SPAN_TIMEOUT: Duration = Duration::from_secs(30);

/// A minimal OTLP/HTTP receiver: accepts `POST /v1/traces` (protobuf) and keeps the spans.
struct Receiver {
    port: u16,
    spans: Arc<Mutex<Vec<Span>>>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (spans_in, paths_in) = (Arc::clone(&spans), Arc::clone(&paths));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                paths_in
                    .lock()
                    .unwrap()
                    .push(request_line.trim().to_owned());
                let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        spans_in.lock().unwrap().extend(scope.spans);
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Receiver { port, spans, paths }
    }

    /// Waits for the first span named `name`.
    fn span(&self, name: &str) -> Span {
        let start = Instant::now();
        loop {
            if let Some(span) = self.spans.lock().unwrap().iter().find(|s| s.name == name) {
                return span.clone();
            }
            assert!(
                start.elapsed() < SPAN_TIMEOUT,
                "no span `{name}`; got {:?}",
                self.spans
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|s| s.name.clone())
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(text)) => Some(text.clone()),
            Some(any_value::Value::IntValue(n)) => Some(n.to_string()),
            _ => None,
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn world() -> PolicyDir {
    PolicyDir::new(|root| {
        format!(
            r#"version: 1
servers:
  echo:
    command: [{bin}]
    cwd: {ws}
    env: {{ PORTCULLIS_ECHO_RECORD: {record} }}
tools:
  echo.read_file: {{ effect: read, args: {{ path: path }} }}
rules:
  - id: echo-ok
    when: {{ server: echo, tool: echo }}
    decision: allow
  - id: deny-secrets
    when: {{ server: echo, args: {{ path: {{ glob: ["**/.env"] }} }} }}
    decision: deny
  - id: needs-approval
    when: {{ server: echo, tool: approve_me }}
    decision: require_approval
    approval: {{ mode: retry, ttl: 10m }}
"#,
            bin = gateway::echo_server().display(),
            ws = root.join("ws").display(),
            record = root.join("recording.jsonl").display(),
        )
    })
}

/// `serve` exporting traces to `endpoint`, with one session on `/mcp/echo`.
fn start(world: &PolicyDir, endpoint: &str) -> (Serve, String) {
    let serve = world.serve(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_SERVICE_NAME", "gateway-under-test"),
        ],
    );
    let session = serve.initialize("/mcp/echo", &[]);
    (serve, session)
}

/// The `tools/call` with JSON-RPC id `id` the echo server received.
fn received(world: &PolicyDir, id: i64) -> Value {
    let text = std::fs::read_to_string(world.root.join("recording.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["id"] == json!(id) && m["method"] == json!("tools/call"))
        .unwrap_or_else(|| panic!("the server did not receive call {id}:\n{text}"))
}

fn call(id: i64, name: &str, arguments: Value, meta: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": meta}})
}

#[test]
fn spans_follow_the_mcp_conventions_and_traceparent_crosses_the_gateway() {
    let receiver = Receiver::start();
    let world = world();
    let (serve, session) = start(&world, &format!("http://127.0.0.1:{}", receiver.port));
    let headers = session_headers(&session);
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let reply = serve
        .post(
            "/mcp/echo",
            &headers,
            &call(
                7,
                "echo",
                json!({"text": "traced"}),
                json!({"traceparent": traceparent, "tracestate": "vendor=x", "progressToken": "p1"}),
            ),
        )
        .json();
    assert_eq!(
        reply["result"]["content"][0]["text"],
        json!("traced"),
        "{reply:#}"
    );

    let span = receiver.span("tools/call echo");
    assert_eq!(
        hex(&span.trace_id),
        TRACE_ID,
        "the client's trace continues"
    );
    assert_eq!(
        hex(&span.parent_span_id),
        PARENT_SPAN,
        "the client's span is the parent"
    );
    assert_eq!(span.kind, 2, "SPAN_KIND_SERVER");
    for (key, expected) in [
        ("mcp.method.name", "tools/call"),
        ("gen_ai.tool.name", "echo"),
        ("gen_ai.operation.name", "execute_tool"),
        ("jsonrpc.request.id", "7"),
        ("mcp.protocol.version", "2025-06-18"),
        ("network.transport", "tcp"),
    ] {
        assert_eq!(
            attribute(&span, key).as_deref(),
            Some(expected),
            "{key}: {span:?}"
        );
    }
    let session_attr = attribute(&span, "mcp.session.id").unwrap();
    assert!(
        session_attr.starts_with("h-"),
        "the audit session id: {session_attr}"
    );
    assert_ne!(
        session_attr, session,
        "the Mcp-Session-Id is a secret, never exported"
    );
    assert_eq!(attribute(&span, "error.type"), None);
    assert!(
        receiver.paths.lock().unwrap()[0].starts_with("POST /v1/traces "),
        "{:?}",
        receiver.paths.lock().unwrap()
    );

    // The server received the gateway span's traceparent (same trace, the gateway span as
    // parent), the client's tracestate, and every other `_meta` key and argument unchanged.
    let forwarded = received(&world, 7);
    let meta = &forwarded["params"]["_meta"];
    assert_eq!(
        meta["traceparent"],
        json!(format!("00-{TRACE_ID}-{}-01", hex(&span.span_id))),
        "{forwarded}"
    );
    assert_eq!(meta["tracestate"], json!("vendor=x"), "{forwarded}");
    assert_eq!(meta["progressToken"], json!("p1"), "{forwarded}");
    assert_eq!(forwarded["params"]["arguments"], json!({"text": "traced"}));

    // A malformed traceparent is ignored: a new trace, and the server gets a valid one.
    let reply = serve
        .post(
            "/mcp/echo",
            &headers,
            &call(
                8,
                "echo",
                json!({"text": "again"}),
                json!({"traceparent": "00-garbage"}),
            ),
        )
        .json();
    assert_eq!(
        reply["result"]["content"][0]["text"],
        json!("again"),
        "{reply:#}"
    );
    let forwarded = received(&world, 8);
    let sent = forwarded["params"]["_meta"]["traceparent"]
        .as_str()
        .unwrap();
    assert!(sent.starts_with("00-") && sent.len() == 55, "{sent}");
    assert!(!sent.contains(TRACE_ID), "{sent}");
    let span = loop {
        let found = receiver
            .spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| attribute(s, "jsonrpc.request.id").as_deref() == Some("8"))
            .cloned();
        if let Some(span) = found {
            break span;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(span.parent_span_id.is_empty(), "a root span: {span:?}");
    assert_eq!(
        sent,
        format!("00-{}-{}-01", hex(&span.trace_id), hex(&span.span_id))
    );

    // A denial is an error span naming the rule; the denied call never reached the server.
    let env = world.root.join("ws/.env").display().to_string();
    let reply = serve
        .post(
            "/mcp/echo",
            &headers,
            &call(
                9,
                "read_file",
                json!({"path": env}),
                json!({"traceparent": traceparent}),
            ),
        )
        .json();
    assert_eq!(reply["result"]["isError"], json!(true), "{reply:#}");
    let span = receiver.span("tools/call read_file");
    assert_eq!(
        attribute(&span, "error.type").as_deref(),
        Some("tool_error")
    );
    assert_eq!(
        attribute(&span, "portcullis.rule").as_deref(),
        Some("deny-secrets")
    );
    assert!(
        attribute(&span, "portcullis.decision_id")
            .unwrap()
            .starts_with("d-")
    );
    // Arguments are never span attributes.
    assert!(
        span.attributes
            .iter()
            .all(|kv| !format!("{kv:?}").contains(".env")),
        "{span:?}"
    );
}

#[test]
fn an_approval_binds_the_call_not_its_traceparent() {
    let receiver = Receiver::start();
    let world = world();
    let (serve, session) = start(&world, &format!("http://127.0.0.1:{}", receiver.port));
    let headers = session_headers(&session);
    let first = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let reply = serve
        .post(
            "/mcp/echo",
            &headers,
            &call(
                1,
                "approve_me",
                json!({"n": 1}),
                json!({"traceparent": first}),
            ),
        )
        .json();
    let approval = reply["result"]["structuredContent"]["approval_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no approval id: {reply:#}"))
        .to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "approvals",
            "approve",
            &approval,
            "--as",
            "alice",
            "--state-dir",
        ])
        .arg(world.root.join(".portcullis"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The identical call from another trace (another traceparent, another tracestate) is the
    // call that was approved.
    let second = "00-11111111111111111111111111111111-2222222222222222-00";
    let reply = serve
        .post(
            "/mcp/echo",
            &headers,
            &call(
                2,
                "approve_me",
                json!({"n": 1}),
                json!({"traceparent": second, "tracestate": "other=y"}),
            ),
        )
        .json();
    assert!(
        reply["result"]["_meta"]["io.portcullis/decision"].is_null(),
        "the approved retry was refused: {reply:#}"
    );
    let forwarded = received(&world, 2);
    assert_eq!(forwarded["params"]["arguments"], json!({"n": 1}));
    assert!(
        forwarded["params"]["_meta"]["traceparent"]
            .as_str()
            .unwrap()
            .starts_with("00-11111111111111111111111111111111-"),
        "{forwarded}"
    );
}

#[test]
fn an_exporter_that_is_down_costs_nothing() {
    // Nothing listens on this port: every export fails.
    let port = http::free_port();
    let world = world();
    let (serve, session) = start(&world, &format!("http://127.0.0.1:{port}"));
    let headers = session_headers(&session);
    for id in 1..=3 {
        let reply = serve
            .post(
                "/mcp/echo",
                &headers,
                &call(id, "echo", json!({"text": "still here"}), json!({})),
            )
            .json();
        assert_eq!(
            reply["result"]["content"][0]["text"],
            json!("still here"),
            "{reply:#}"
        );
    }
}

#[test]
fn a_malformed_endpoint_leaves_tracing_off_and_says_so() {
    let world = world();
    let (serve, session) = start(&world, "not a url");
    let reply = serve
        .post(
            "/mcp/echo",
            &session_headers(&session),
            &call(1, "echo", json!({"text": "served"}), json!({})),
        )
        .json();
    assert_eq!(
        reply["result"]["content"][0]["text"],
        json!("served"),
        "{reply:#}"
    );
    let log = std::fs::read_to_string(world.log()).unwrap();
    assert!(
        log.contains(
            "cannot configure the OTLP exporter from OTEL_EXPORTER_OTLP_*; tracing is off"
        ),
        "{log}"
    );
    // Nothing is injected when tracing is off: the server gets the request as the client sent it.
    assert_eq!(received(&world, 1)["params"]["_meta"], json!({}));
}
