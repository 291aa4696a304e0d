//! The echo server over Streamable HTTP: the same answers as [`crate::echo`], one JSON body per
//! request, for measuring the HTTP gateway against a direct HTTP path.
//!
//! Minimal on purpose, like the stdio echo server: `POST /mcp` with one JSON-RPC message; a
//! request is answered `200` with an `application/json` body (never SSE), a notification or a
//! response `202`; `initialize` gets an `Mcp-Session-Id` header (a counter: this server is for
//! loopback benches, the id is a label, not a secret) and later requests are not checked against
//! it. `GET` is `405` (no server-initiated stream, which the spec allows), `DELETE` is `200`.
//!
//! It runs on the same HTTP stack as `portcullis serve` (axum on hyper, HTTP/1.1, tokio with two
//! worker threads), so that a bench comparing "client → echo" with "client → gateway → echo"
//! measures the gateway, not a difference between HTTP servers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

use crate::echo::{Reply, respond};

/// The session header.
const SESSION_HEADER: &str = "mcp-session-id";

/// The largest request body accepted.
const MAX_BODY_BYTES: usize = 4 << 20;

/// Serves on `addr` until the process ends; prints `listening on http://ADDR/mcp` on standard
/// output once bound (port 0 picks a free port), so a script can read where to connect.
///
/// # Errors
///
/// When the runtime cannot start or the address cannot be bound.
pub fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(addr)?;
    println!("listening on http://{}/mcp", listener.local_addr()?);
    serve_listener(listener)
}

/// Serves on an already bound listener until the process ends.
///
/// # Errors
///
/// When the runtime cannot start or the listener cannot be used.
pub fn serve_listener(listener: std::net::TcpListener) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = Router::new()
            .route("/mcp", post(on_post).get(on_get).delete(on_delete))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
        axum::serve(listener, app).await
    })
}

static SESSIONS: AtomicU64 = AtomicU64::new(0);

async fn on_post(body: Bytes) -> Response {
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let is_request = message.get("id").is_some() && message.get("method").is_some();
    if !is_request {
        return StatusCode::ACCEPTED.into_response();
    }
    let lines = match respond(&message) {
        Reply::Lines(lines) => lines,
        // A tool that would crash the stdio server fails this request instead.
        Reply::Exit(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    // The answer to this request is the last line (fault tools put noise first; over HTTP the
    // noise has no stream to go to and is dropped).
    let Some(answer) = lines.into_iter().next_back() else {
        return StatusCode::ACCEPTED.into_response();
    };
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        answer,
    )
        .into_response();
    if message.get("method").and_then(Value::as_str) == Some("initialize") {
        let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
        if let Ok(value) = HeaderValue::from_str(&format!("echo-{n}")) {
            response.headers_mut().insert(SESSION_HEADER, value);
        }
    }
    response
}

async fn on_get() -> StatusCode {
    StatusCode::METHOD_NOT_ALLOWED
}

async fn on_delete() -> StatusCode {
    StatusCode::OK
}
