//! The restart guard of shared servers: a session's message never reaches a restarted process
//! before the gateway's own `initialize` of it, whatever the ready signal still says.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use serde_json::json;

use super::*;

/// A shared server with no supervisor: the test plays the process's part through `stdin`.
fn detached() -> Arc<SharedServer> {
    let (ready, _) = watch::channel(false);
    Arc::new(SharedServer {
        name: "shared".to_owned(),
        state: Mutex::new(State::default()),
        next: AtomicU64::new(1),
        ready,
        metrics: Arc::new(crate::metrics::Metrics::new()),
        stopping: AtomicBool::new(false),
        supervisor: Mutex::new(None),
    })
}

/// Gives the server a "process" whose stdin is a line channel the test reads.
fn new_process(server: &SharedServer, accepting: bool) -> LineReceiver {
    let (stdin, process) = line_channel(PIPE_BYTES, DEFAULT_MAX_LINE_BYTES);
    let mut state = server.state();
    state.stdin = Some(StdinWriter::from_sender(stdin));
    state.accepting = accepting;
    process
}

/// Attaches session `conn`; returns what the session would read.
fn session(server: &SharedServer, conn: u64) -> LineReceiver {
    let (tx, rx) = line_channel(PIPE_BYTES, DEFAULT_MAX_LINE_BYTES);
    server.state().conns.insert(conn, tx);
    rx
}

fn json_of(line: Option<Line>) -> Value {
    match line {
        Some(Line::Complete(bytes)) => serde_json::from_slice(&bytes).unwrap(),
        other => panic!("expected a line, got {other:?}"),
    }
}

/// Whether nothing was queued. The code under test has run to completion before the test looks,
/// so a line it sent would be there at once; the wait only bounds the look.
async fn nothing_queued(rx: &mut LineReceiver) -> bool {
    tokio::time::timeout(Duration::from_millis(50), rx.recv_line())
        .await
        .is_err()
}

#[tokio::test]
async fn a_call_never_reaches_a_restarted_process_before_its_reinitialization() {
    let server = detached();
    let mut client = session(&server, 7);
    // The race: the ready signal is still on from the process before, and the restarted
    // process's stdin is already in place, but the gateway has not re-initialized it yet.
    server.ready.send_replace(true);
    let mut process = new_process(&server, false);
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi"}}});
    server.on_session_line(7, call.to_string().as_bytes()).await;
    assert!(
        nothing_queued(&mut process).await,
        "the call reached a process that was not initialized"
    );
    let answer = json_of(client.recv_line().await);
    assert_eq!(answer["id"], json!(1), "{answer}");
    assert_eq!(answer["error"]["code"], json!(INTERNAL_ERROR), "{answer}");

    // The gateway's own messages do go through: that is how it re-initializes the process.
    let init = json!({"jsonrpc": "2.0", "id": 99, "method": "initialize", "params": {}});
    assert!(server.to_process(&init).await);
    assert_eq!(
        json_of(process.recv_line().await)["method"],
        json!("initialize")
    );

    // Once re-initialized, the process takes the sessions' calls again, under gateway ids.
    server.state().accepting = true;
    server.on_session_line(7, call.to_string().as_bytes()).await;
    let forwarded = json_of(process.recv_line().await);
    assert_eq!(forwarded["method"], json!("tools/call"), "{forwarded}");
    assert_ne!(forwarded["id"], json!(1), "sent under the gateway's own id");
}

#[tokio::test]
async fn a_gone_process_takes_nothing_and_fails_what_was_in_flight() {
    let server = detached();
    let mut client = session(&server, 3);
    server.ready.send_replace(true);
    let mut process = new_process(&server, true);
    let call = json!({"jsonrpc": "2.0", "id": "a", "method": "tools/call",
        "params": {"name": "echo", "arguments": {}}});
    server.on_session_line(3, call.to_string().as_bytes()).await;
    assert_eq!(
        json_of(process.recv_line().await)["method"],
        json!("tools/call")
    );
    server.process_gone();
    let answer = json_of(client.recv_line().await);
    assert_eq!(answer["id"], json!("a"), "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("restarted"),
        "{answer}"
    );
    assert!(!server.to_server(&call).await, "no process to send to");
    assert!(
        !*server.ready.borrow(),
        "not ready while the process is gone"
    );
}
