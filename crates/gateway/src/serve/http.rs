//! The HTTP surface: routes, the Host/Origin guard, authentication, and the Streamable HTTP
//! rules for POST, GET and DELETE.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use portcullis_mcp::{
    DEFAULT_MAX_MESSAGE_BYTES, INVALID_REQUEST, Limits, Message, Parsed, error_response,
    parse_message,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::App;
use super::outbox::{self, FrameStream, STREAM_QUEUE};
use super::route::{ClientSession, Reply, Route};
use crate::auth::{AuthFailure, Identity};

/// The session header (case-insensitive on the wire).
const SESSION_HEADER: &str = "mcp-session-id";
/// The SSE resumption header.
const LAST_EVENT_ID_HEADER: &str = "last-event-id";
/// How often an idle GET stream gets a comment, so proxies keep it open.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(25);
/// The protocol version header.
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Protocol versions this front speaks. A request without the header is read as 2025-03-26, as
/// the spec says; one naming any other version is refused with 400.
const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// The longest session id accepted in a header (ours are 64 hex digits).
const MAX_SESSION_ID_BYTES: usize = 128;
/// The JSON-RPC code in HTTP error bodies that have no request id to answer (as the SDKs use).
const TRANSPORT_ERROR: i64 = -32000;

pub(super) fn router(app: Arc<App>) -> Router {
    let mcp = Router::new()
        .route("/mcp", any(mcp_endpoint))
        .route("/mcp/{server}", any(mcp_server_endpoint))
        .route("/metrics", get(metrics))
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*rest}",
            get(resource_metadata),
        )
        .layer(middleware::from_fn_with_state(Arc::clone(&app), guard))
        .layer(DefaultBodyLimit::max(
            Limits::default()
                .max_message_bytes
                .max(DEFAULT_MAX_MESSAGE_BYTES),
        ));
    // Health probes come from load balancers with arbitrary Host headers and reveal nothing.
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(mcp)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), count))
        .with_state(app)
}

/// How long `/readyz` waits for the store before calling the instance unready.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// `200 ready` while the store answers; `503` while it does not (a shared PostgreSQL store that
/// is down or too slow), so a load balancer sends calls to instances that can decide them. It
/// recovers by itself: every probe asks the store again.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let store = Arc::clone(&app.ctx.store);
    let ping = tokio::task::spawn_blocking(move || store.ping());
    match tokio::time::timeout(READY_TIMEOUT, ping).await {
        Ok(Ok(Ok(()))) => "ready\n".into_response(),
        Ok(Ok(Err(error))) => {
            tracing::warn!(%error, "not ready: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "unready: the store does not answer\n",
            )
                .into_response()
        }
        Ok(Err(_)) | Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unready: the store did not answer in time\n",
        )
            .into_response(),
    }
}

/// Counts every answered request by route, method and status. Labels are fixed names, never
/// the path a client sent.
async fn count(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let route = if path == "/mcp" || path.starts_with("/mcp/") {
        "mcp"
    } else if path == "/metrics" {
        "metrics"
    } else if path == "/healthz" || path == "/readyz" {
        "health"
    } else if path.starts_with("/.well-known/") {
        "metadata"
    } else {
        "other"
    };
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "other",
    };
    let response = next.run(request).await;
    app.ctx
        .metrics
        .http_request(route, method, response.status().as_u16());
    response
}

/// `GET /metrics`: the Prometheus (OpenMetrics text) exposition, behind the Host/Origin guard
/// and the bearer token in `STATE_DIR/metrics.token`. Rule ids and server names say how the
/// policy is built and used, which is not for anyone who can reach the port.
async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !crate::admin::bearer_is(&headers, &app.metrics_token) {
        let mut response = transport_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: /metrics needs `Authorization: Bearer TOKEN` with the token from metrics.token in the state directory",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let approvals = Arc::clone(&app.ctx.approvals);
    match tokio::task::spawn_blocking(move || approvals.count(false)).await {
        Ok(Ok(pending)) => app
            .ctx
            .metrics
            .set_pending_approvals(usize::try_from(pending).unwrap_or(usize::MAX)),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot count pending approvals for /metrics");
        }
        Err(error) => tracing::warn!(%error, "cannot count pending approvals for /metrics"),
    }
    let mut response = Response::new(Body::from(app.ctx.metrics.encode()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

/// DNS-rebinding protection: a foreign `Host` or `Origin` is refused before anything else.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(refusal) = foreign(&app, request.headers()) {
        return refusal;
    }
    next.run(request).await
}

/// The refusal for a request whose `Host` or `Origin` is not allowed, if it is one.
fn foreign(app: &App, headers: &HeaderMap) -> Option<Response> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !app.guard.host_ok(host) {
        tracing::warn!(host = ?host.map(crate::session::shorten), "refused a request for a foreign Host (DNS rebinding protection)");
        return Some(transport_error(
            StatusCode::FORBIDDEN,
            "Forbidden: Host not allowed",
        ));
    }
    let origin_ok = match headers.get(header::ORIGIN) {
        None => true,
        Some(value) => value.to_str().is_ok_and(|o| app.guard.origin_ok(Some(o))),
    };
    if !origin_ok {
        tracing::warn!("refused a request from a foreign Origin (DNS rebinding protection)");
        return Some(transport_error(
            StatusCode::FORBIDDEN,
            "Forbidden: Origin not allowed",
        ));
    }
    None
}

async fn mcp_endpoint(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&app, Route::All, &method, &headers, &body).await
}

async fn mcp_server_endpoint(
    State(app): State<Arc<App>>,
    Path(server): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !app.ctx.policy.servers().contains_key(&server) {
        return transport_error(StatusCode::NOT_FOUND, "Not Found: no such server");
    }
    handle(&app, Route::One(server), &method, &headers, &body).await
}

async fn handle(
    app: &App,
    route: Route,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let identity = match app.auth.authenticate(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    ) {
        Ok(identity) => identity,
        Err(failure) => return unauthorized(app, headers, &route, failure),
    };
    if let Some(version) = headers.get(VERSION_HEADER) {
        let known = version
            .to_str()
            .is_ok_and(|v| SUPPORTED_VERSIONS.contains(&v));
        if !known {
            return transport_error(
                StatusCode::BAD_REQUEST,
                "Bad Request: unsupported MCP-Protocol-Version",
            );
        }
    }
    let session_id = match headers.get(SESSION_HEADER) {
        None => None,
        Some(value) => match value.to_str() {
            Ok(id) if !id.is_empty() && id.len() <= MAX_SESSION_ID_BYTES => Some(id.to_owned()),
            _ => {
                return transport_error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: malformed Mcp-Session-Id",
                );
            }
        },
    };
    match *method {
        Method::POST => post(app, route, &identity, session_id, headers, body).await,
        Method::DELETE => delete(app, &route, &identity.principal, session_id),
        Method::GET => get_stream(app, &route, &identity.principal, session_id, headers),
        _ => {
            let mut response =
                transport_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            response
        }
    }
}

/// Whether the `Accept` header names `media` (or is absent for JSON, as clients often omit it).
fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let item = item.split(';').next().unwrap_or_default().trim();
            item.eq_ignore_ascii_case(media) || item == "*/*"
        })
}

/// `GET`: the stream of server-initiated messages of a session (SSE), resumed after
/// `Last-Event-ID` when given.
fn get_stream(
    app: &App,
    route: &Route,
    principal: &str,
    session_id: Option<String>,
    headers: &HeaderMap,
) -> Response {
    if !accepts(headers, "text/event-stream") {
        return transport_error(
            StatusCode::NOT_ACCEPTABLE,
            "Not Acceptable: the GET stream is text/event-stream",
        );
    }
    let Some(id) = session_id else {
        return transport_error(
            StatusCode::BAD_REQUEST,
            "Bad Request: Mcp-Session-Id header is required",
        );
    };
    if app.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        return transport_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable: the gateway is stopping",
        );
    }
    let Some(session) = find_session(app, &id, route, principal) else {
        return session_not_found();
    };
    let last_event_id = headers
        .get(LAST_EVENT_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    session.outbox.open_get(tx.clone(), last_event_id);
    // A stop that came between the check above and here found no stream to end.
    if app.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        session.outbox.close_get();
    }
    // Comments keep proxies from timing the stream out. The stream ends when the outbox lets
    // go of its sender (the session ended, a newer GET stream replaced this one, or the gateway
    // is stopping), so the keep-alive holds only a weak one.
    let keepalive = tx.downgrade();
    drop((tx, session));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(KEEPALIVE).await;
            let Some(tx) = keepalive.upgrade() else {
                break;
            };
            if tx
                .send(Bytes::from_static(b": keepalive\n\n"))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    tracing::info!(principal, resume = ?last_event_id, "opened a GET stream");
    sse_response(rx)
}

fn sse_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let mut response = Response::new(Body::from_stream(FrameStream { rx }));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A request whose client accepts SSE: answered as JSON unless a server-initiated message for
/// it (progress, an elicitation, a server request while no GET stream is open) comes first;
/// then as an SSE stream of those messages and, last, the response.
async fn streamed(
    session: Arc<ClientSession>,
    parsed: Parsed,
    progress: Option<Value>,
) -> Response {
    let (tx, mut rx) = mpsc::channel(STREAM_QUEUE);
    let guard = session.outbox.open_post(progress, tx);
    let (answer_tx, mut answer_rx) = oneshot::channel();
    tokio::spawn(async move {
        let reply = session.handle(&parsed).await;
        let _ = answer_tx.send(reply);
    });
    let first = tokio::select! {
        Some(frame) = rx.recv() => frame,
        reply = &mut answer_rx => {
            let Ok(Reply::Json(value)) = reply else {
                return StatusCode::ACCEPTED.into_response();
            };
            let Ok(frame) = rx.try_recv() else {
                return json_response(StatusCode::OK, &value, None);
            };
            drop(guard);
            let (out_tx, out_rx) = mpsc::channel(STREAM_QUEUE.saturating_add(2));
            let _ = out_tx.try_send(frame);
            while let Ok(frame) = rx.try_recv() {
                let _ = out_tx.try_send(frame);
            }
            let _ = out_tx.try_send(outbox::frame(None, &value));
            return sse_response(out_rx);
        }
    };
    let (out_tx, out_rx) = mpsc::channel(STREAM_QUEUE);
    tokio::spawn(async move {
        let _guard = guard;
        let _ = out_tx.send(first).await;
        loop {
            tokio::select! {
                Some(frame) = rx.recv() => {
                    if out_tx.send(frame).await.is_err() {
                        // The client went away; the call still completes, its answer unseen.
                        break;
                    }
                }
                reply = &mut answer_rx => {
                    while let Ok(frame) = rx.try_recv() {
                        let _ = out_tx.send(frame).await;
                    }
                    if let Ok(Reply::Json(value)) = reply {
                        let _ = out_tx.send(outbox::frame(None, &value)).await;
                    }
                    break;
                }
            }
        }
    });
    sse_response(out_rx)
}

async fn post(
    app: &App,
    route: Route,
    identity: &Identity,
    session_id: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let principal = identity.principal.as_str();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return transport_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type: send application/json",
        );
    }
    let parsed = match parse_message(body, &Limits::default()) {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::warn!(code = error.code(), %error, "refused a malformed message from an HTTP client");
            return json_response(StatusCode::BAD_REQUEST, &error.to_response(), None);
        }
    };
    let is_initialize =
        matches!(parsed.message(), Message::Request { method, .. } if method == "initialize");
    let (session, new_id) = match session_id {
        Some(id) => match find_session(app, &id, &route, principal) {
            Some(session) => (session, None),
            None => return session_not_found(),
        },
        None if is_initialize => match start_session(app, route, identity) {
            Ok((id, session)) => (session, Some(id)),
            Err(response) => return *response,
        },
        None => {
            let id = parsed.message().id();
            let body = error_response(
                id,
                INVALID_REQUEST,
                "Bad Request: Mcp-Session-Id header is required",
                None,
            );
            return json_response(StatusCode::BAD_REQUEST, &body, None);
        }
    };
    if new_id.is_none()
        && accepts(headers, "text/event-stream")
        && let Message::Request { params, .. } = parsed.message()
    {
        let progress = params
            .as_ref()
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get("progressToken"))
            .cloned();
        return streamed(session, parsed, progress).await;
    }
    match session.handle(&parsed).await {
        Reply::Json(value) => json_response(StatusCode::OK, &value, new_id.as_deref()),
        Reply::Accepted => StatusCode::ACCEPTED.into_response(),
    }
}

fn delete(app: &App, route: &Route, principal: &str, session_id: Option<String>) -> Response {
    let Some(id) = session_id else {
        return transport_error(
            StatusCode::BAD_REQUEST,
            "Bad Request: Mcp-Session-Id header is required",
        );
    };
    let removed = {
        let mut sessions = app.sessions();
        let owned = sessions
            .get(&id)
            .is_some_and(|s| s.principal == principal && s.route == *route);
        if owned { sessions.remove(&id) } else { None }
    };
    match removed {
        Some(session) => {
            tracing::info!(principal, "the client ended its session");
            tokio::spawn(async move { session.close(super::SESSION_CLOSE_GRACE).await });
            StatusCode::OK.into_response()
        }
        None => session_not_found(),
    }
}

/// The session `id` if it exists, belongs to `principal` and was opened on `route`. A session
/// whose servers ended (for example by `kill_session`) is removed and not found.
fn find_session(app: &App, id: &str, route: &Route, principal: &str) -> Option<Arc<ClientSession>> {
    let mut sessions = app.sessions();
    let session = sessions.get(id)?;
    if session.principal != principal || session.route != *route {
        tracing::warn!(
            principal,
            "refused a session id that belongs to another principal or endpoint"
        );
        return None;
    }
    if !session.is_alive() {
        let session = sessions.remove(id)?;
        tokio::spawn(async move { session.close(super::SESSION_CLOSE_GRACE).await });
        return None;
    }
    session.touch();
    Some(Arc::clone(session))
}

fn start_session(
    app: &App,
    route: Route,
    identity: &Identity,
) -> Result<(String, Arc<ClientSession>), Box<Response>> {
    if app.sessions().len() >= app.max_sessions {
        return Err(Box::new(transport_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable: too many sessions",
        )));
    }
    let id = new_session_id().ok_or_else(|| {
        Box::new(transport_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error: no random source",
        ))
    })?;
    let principal = identity.principal.as_str();
    let session = ClientSession::start(&app.ctx, identity, route).map_err(|error| {
        tracing::error!(%error, "cannot start the servers of a new session");
        Box::new(transport_error(
            StatusCode::BAD_GATEWAY,
            "Bad Gateway: a server could not be started",
        ))
    })?;
    let session = Arc::new(session);
    app.sessions().insert(id.clone(), Arc::clone(&session));
    tracing::info!(principal, "started a session");
    Ok((id, session))
}

/// 32 bytes from the operating system's random source, hex. A session id is a bearer secret
/// within a principal, so unlike log ids there is no fallback: no randomness, no session.
fn new_session_id() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

/// The externally visible base URL.
fn base_url(app: &App, headers: &HeaderMap) -> String {
    if let Some(url) = &app.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn route_path(route: &Route) -> String {
    match route {
        Route::All => "/mcp".to_owned(),
        Route::One(name) => format!("/mcp/{name}"),
    }
}

fn unauthorized(app: &App, headers: &HeaderMap, route: &Route, failure: AuthFailure) -> Response {
    let metadata = format!(
        "{}/.well-known/oauth-protected-resource{}",
        base_url(app, headers),
        route_path(route)
    );
    let challenge = match failure {
        AuthFailure::Missing => format!("Bearer resource_metadata=\"{metadata}\""),
        AuthFailure::Invalid => {
            format!("Bearer error=\"invalid_token\", resource_metadata=\"{metadata}\"")
        }
    };
    tracing::info!(?failure, "refused a request without a valid credential");
    let mut response = transport_error(
        StatusCode::UNAUTHORIZED,
        "Unauthorized: a valid bearer token is required",
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// RFC 9728 protected-resource metadata, as the MCP authorization spec asks a resource server to
/// publish. API keys are issued by the operator; with `auth.jwt` the issuer is named as the
/// authorization server.
async fn resource_metadata(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    rest: Option<Path<String>>,
) -> Response {
    let path = rest.map_or_else(|| "/mcp".to_owned(), |Path(rest)| format!("/{rest}"));
    let mut body = json!({
        "resource": format!("{}{path}", base_url(&app, &headers)),
        "bearer_methods_supported": ["header"],
        "resource_name": "Portcullis MCP gateway",
    });
    // With JWTs, the token issuer is the authorization server clients are sent to.
    if let (Some(issuer), Some(object)) = (app.auth.issuer(), body.as_object_mut()) {
        object.insert("authorization_servers".into(), json!([issuer]));
    }
    json_response(StatusCode::OK, &body, None)
}

fn session_not_found() -> Response {
    transport_error(StatusCode::NOT_FOUND, "Not Found: unknown session")
}

fn transport_error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &error_response(None, TRANSPORT_ERROR, message, None),
        None,
    )
}

fn json_response(status: StatusCode, value: &Value, session_id: Option<&str>) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(id) = session_id
        && let Ok(value) = HeaderValue::from_str(id)
    {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}
