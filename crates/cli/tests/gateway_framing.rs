//! Every malformed client message of issue 3 point 1 gets the matching JSON-RPC error and never
//! reaches the server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

use serde_json::{Value, json};
use support::Setup;

/// (what, bytes, expected code, expected id)
fn cases() -> Vec<(&'static str, Vec<u8>, i64, Value)> {
    let call = |rest: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{rest}}}"#).into_bytes()
    };
    let mut deep = String::new();
    for _ in 0..70 {
        deep.push_str(r#"{"a":"#);
    }
    deep.push_str("\"MARKER-depth\"");
    for _ in 0..70 {
        deep.push('}');
    }
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(call(r#"{"name":"echo","arguments":{"text":"MARKER-bom"}}"#));
    let mut utf8 = call(r#"{"name":"echo","arguments":{"text":"MARKER-utf8 "#);
    utf8.extend(b"\xff\xfe\"}}}");
    let huge = call(&format!(
        r#"{{"name":"echo","arguments":{{"text":"MARKER-size {}"}}}}"#,
        "x".repeat(4 * 1024 * 1024)
    ));
    vec![
        ("invalid json", b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",MARKER-json".to_vec(), -32700, Value::Null),
        ("byte-order mark", bom, -32700, Value::Null),
        ("invalid utf-8", utf8, -32700, Value::Null),
        ("duplicate keys", call(r#"{"name":"echo","name":"write_file","arguments":{"text":"MARKER-dup"}}"#), -32700, Value::Null),
        ("duplicate nested keys", call(r#"{"name":"echo","arguments":{"path":"/a","path":"MARKER-dup2"}}"#), -32700, Value::Null),
        ("depth", call(&format!(r#"{{"name":"echo","arguments":{deep}}}"#)), -32700, Value::Null),
        ("size", huge, -32700, Value::Null),
        ("batch", format!("[{}]", String::from_utf8(call(r#"{"name":"echo","arguments":{"text":"MARKER-batch"}}"#)).unwrap()).into_bytes(), -32600, Value::Null),
        ("wrong jsonrpc", br#"{"jsonrpc":"1.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"MARKER-version"}}}"#.to_vec(), -32600, json!(7)),
        ("missing jsonrpc", br#"{"id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"MARKER-nover"}}}"#.to_vec(), -32600, json!(7)),
        ("null id", br#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"echo","arguments":{"text":"MARKER-null"}}}"#.to_vec(), -32600, Value::Null),
        ("params of the wrong type", br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":["echo","MARKER-params"]}"#.to_vec(), -32602, json!(7)),
        ("arguments of the wrong type", call(r#"{"name":"echo","arguments":"MARKER-args"}"#), -32602, json!(7)),
        ("name of the wrong type", call(r#"{"name":["MARKER-name"],"arguments":{}}"#), -32602, json!(7)),
        ("fractional id", br#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"echo","arguments":{"text":"MARKER-id"}}}"#.to_vec(), -32600, Value::Null),
        ("id beyond 2^53", br#"{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/call","params":{"name":"echo","arguments":{"text":"MARKER-big"}}}"#.to_vec(), -32600, Value::Null),
    ]
}

#[test]
fn malformed_client_messages_are_answered_and_never_forwarded() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    for (what, bytes, code, id) in cases() {
        gw.send_raw(&bytes);
        let answer = gw.recv();
        assert_eq!(answer["error"]["code"], json!(code), "{what}: {answer}");
        assert_eq!(answer["id"], id, "{what}: {answer}");
    }
    // The session survives all of it.
    let answer = gw.call(99, "echo", json!({"text": "fine"}));
    assert_eq!(answer["result"]["content"][0]["text"], json!("fine"));
    assert_eq!(gw.finish(), 0);
    let rec = setup.recording();
    assert!(
        !rec.contains("MARKER"),
        "a malformed message reached the server: {rec}"
    );
}

#[test]
fn forwarded_bytes_are_the_reserialization_of_what_was_evaluated() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    // Key order and number text are kept; insignificant whitespace is not.
    gw.send_raw(br#"{ "jsonrpc":"2.0", "id":5, "method":"tools/call", "params":{"name":"echo","arguments":{"text":"n","z":1.50,"a":100000000000000000000000}} }"#);
    gw.recv();
    let rec = setup.recording();
    assert!(
        rec.contains(r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"text":"n","z":1.50,"a":100000000000000000000000}}}"#),
        "{rec}"
    );
}

#[test]
fn a_second_request_with_an_id_in_flight_is_refused() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    // Both lines in one write: the second arrives while the first is still pending.
    let line = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"first"}}}"#;
    gw.send_raw(format!("{line}\n{}", line.replace("first", "second")).as_bytes());
    let a = gw.recv();
    let b = gw.recv();
    let (refused, answered) = if a.get("error").is_some() {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(refused["error"]["code"], json!(-32600), "{refused}");
    assert_eq!(answered["result"]["content"][0]["text"], json!("first"));
    assert!(!setup.recording().contains("second"));
}
