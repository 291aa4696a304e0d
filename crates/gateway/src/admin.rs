//! The approvals admin API and web page (`portcullis run --admin ADDR`).
//!
//! JSON endpoints, each needing `Authorization: Bearer TOKEN` with the token from
//! `STATE_DIR/admin.token` (created 0600 on first use):
//!
//! - `GET /api/approvals` (`?all=1` for resolved ones too), `GET /api/approvals/{id}`
//! - `POST /api/approvals/{id}/approve`, `POST /api/approvals/{id}/deny`, body
//!   `{"note": "...", "as": "NAME"}` (both optional; the approver defaults to `admin`)
//!
//! `GET /approvals` is the web page: static HTML and script with no data in them; the script reads
//! the token from the URL fragment (`/approvals#token=...`, never sent to the server), keeps it in
//! the tab's session storage, and calls the JSON API. No cookies, so no cross-site request can act
//! with the token; every value is inserted as text, never as HTML.
//!
//! Only loopback addresses and unix sockets are served: the token is the only thing standing
//! between a network and the approve button.

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portcullis_store::{Channel, Resolution, ResolveError, Store};
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::error::GatewayError;

/// The admin token's file name in the state directory.
pub const TOKEN_FILE: &str = "admin.token";

/// The longest body a resolution request may have.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The longest note or approver name kept.
const MAX_TEXT_CHARS: usize = 500;

const PAGE_HTML: &str = include_str!("admin/page.html");
const PAGE_JS: &str = include_str!("admin/page.js");

/// The running admin server; dropping it stops the server.
#[derive(Debug)]
pub struct AdminHandle {
    task: JoinHandle<()>,
    /// Where it listens, as printed at start (`http://127.0.0.1:PORT` or `unix:PATH`).
    pub address: String,
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct AppState {
    store: Arc<Store>,
    token: Arc<String>,
}

/// Loads `STATE_DIR/admin.token`, creating it (0600, 32 random bytes as hex) if missing.
///
/// # Errors
///
/// An I/O error reading or creating the file, or a token file others can read.
pub fn load_or_create_token(state_dir: &Path) -> std::io::Result<String> {
    load_or_create_token_file(&state_dir.join(TOKEN_FILE), "admin")
}

/// Loads the bearer token in `path`, creating it (0600, 32 random bytes as hex) if missing;
/// `what` names it in errors (`admin`, `metrics`).
pub(crate) fn load_or_create_token_file(path: &Path, what: &str) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let path = path.to_path_buf();
    match std::fs::symlink_metadata(&path) {
        Ok(meta) => {
            if !meta.file_type().is_file() || meta.permissions().mode() & 0o077 != 0 {
                return Err(std::io::Error::other(format!(
                    "the {what} token `{}` must be a regular file readable only by its owner (chmod 600)",
                    path.display()
                )));
            }
            let text = std::fs::read_to_string(&path)?;
            let token = text.trim().to_owned();
            if token.len() < 32 {
                return Err(std::io::Error::other(format!(
                    "the {what} token `{}` is too short",
                    path.display()
                )));
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
            let token = hex::encode(bytes);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            file.write_all(format!("{token}\n").as_bytes())?;
            file.sync_all()?;
            Ok(token)
        }
        Err(e) => Err(e),
    }
}

/// Starts the admin server on `listen` (`HOST:PORT` with a loopback host, or a unix socket path).
///
/// # Errors
///
/// [`GatewayError::Admin`] when the address is not local, cannot be bound, or the token cannot be
/// read or created.
pub async fn serve(
    listen: &str,
    state_dir: &Path,
    store: Arc<Store>,
) -> Result<AdminHandle, GatewayError> {
    let admin_err = |what: String| GatewayError::Admin(what);
    let token = load_or_create_token(state_dir)
        .map_err(|e| admin_err(format!("cannot prepare the admin token: {e}")))?;
    let app = router(AppState {
        store,
        token: Arc::new(token),
    });
    let token_path = state_dir.join(TOKEN_FILE);
    if listen.contains('/') {
        let path = Path::new(listen);
        if path.exists() {
            std::fs::remove_file(path)
                .map_err(|e| admin_err(format!("cannot replace the socket `{listen}`: {e}")))?;
        }
        let listener = tokio::net::UnixListener::bind(path)
            .map_err(|e| admin_err(format!("cannot listen on `{listen}`: {e}")))?;
        let address = format!("unix:{listen}");
        eprintln!(
            "portcullis: approvals admin API on {address} (token in {})",
            token_path.display()
        );
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the admin server stopped");
            }
        });
        return Ok(AdminHandle { task, address });
    }
    let addr: SocketAddr = listen.parse().map_err(|_| {
        admin_err(format!(
            "`{listen}` is not an address like 127.0.0.1:8751 or a socket path"
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(admin_err(format!(
            "the admin API only listens on loopback addresses, not `{listen}`\nhelp: use 127.0.0.1:PORT or a unix socket path"
        )));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| admin_err(format!("cannot listen on `{listen}`: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| admin_err(format!("cannot read the admin address: {e}")))?;
    let address = format!("http://{local}");
    eprintln!(
        "portcullis: approvals admin API on {address} (page {address}/approvals, token in {})",
        token_path.display()
    );
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the admin server stopped");
        }
    });
    Ok(AdminHandle { task, address })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/approvals", get(page))
        .route("/approvals.js", get(script))
        .route("/api/approvals", get(list))
        .route("/api/approvals/{id}", get(show))
        .route("/api/approvals/{id}/approve", post(approve))
        .route("/api/approvals/{id}/deny", post(deny))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn page() -> Response {
    let mut response = PAGE_HTML.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn script() -> Response {
    let mut response = PAGE_JS.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    response
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    bearer_is(headers, &state.token)
}

/// Whether the request's `Authorization: Bearer` token is `token` (compared in constant time).
pub(crate) fn bearer_is(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|given| same(given.trim().as_bytes(), token.as_bytes()))
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong admin token (Authorization: Bearer TOKEN, from admin.token in the state directory)",
    )
}

fn internal() -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn on_store<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Store) -> T + Send + 'static,
) -> Option<T> {
    let store = Arc::clone(&state.store);
    tokio::task::spawn_blocking(move || f(&store)).await.ok()
}

#[derive(Deserialize)]
struct ListQuery {
    all: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Query<ListQuery>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let all = query
        .all
        .as_deref()
        .is_some_and(|v| v == "1" || v == "true");
    // `total` counts them all: `approvals` holds at most the newest `LIST_LIMIT`.
    let listed = on_store(&state, move |s| {
        Ok::<_, portcullis_store::StoreError>((s.list(all)?, s.count(all)?))
    })
    .await;
    match listed {
        Some(Ok((list, total))) => {
            let truncated = u64::try_from(list.len()).is_ok_and(|shown| total > shown);
            Json(json!({"approvals": list, "total": total, "truncated": truncated})).into_response()
        }
        Some(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        None => internal(),
    }
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let lookup = id.clone();
    match on_store(&state, move |s| s.show(&lookup)).await {
        Some(Ok(Some(approval))) => Json(approval).into_response(),
        Some(Ok(None)) => error(StatusCode::NOT_FOUND, &format!("no approval `{id}`")),
        Some(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        None => internal(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    note: Option<String>,
    #[serde(rename = "as")]
    approver: Option<String>,
}

async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    resolve(state, headers, id, body, true).await
}

async fn deny(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    resolve(state, headers, id, body, false).await
}

fn clip(text: String) -> String {
    text.chars().take(MAX_TEXT_CHARS).collect()
}

async fn resolve(
    state: AppState,
    headers: HeaderMap,
    id: String,
    body: axum::body::Bytes,
    approve: bool,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let body: ResolveBody = if body.iter().all(u8::is_ascii_whitespace) {
        ResolveBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("the body must be {{\"note\": TEXT, \"as\": NAME}}: {e}"),
                );
            }
        }
    };
    let resolution = Resolution {
        approve,
        approver: clip(body.approver.unwrap_or_else(|| "admin".to_owned())),
        channel: Channel::Admin,
        note: body.note.map(clip),
    };
    match on_store(&state, move |s| s.resolve(&id, &resolution)).await {
        Some(Ok(receipt)) => Json(json!({"receipt": receipt})).into_response(),
        Some(Err(e)) => {
            let status = match &e {
                ResolveError::NotFound(_) => StatusCode::NOT_FOUND,
                ResolveError::NotPending { .. } | ResolveError::Expired { .. } => {
                    StatusCode::CONFLICT
                }
                ResolveError::SameApprover { .. } => StatusCode::FORBIDDEN,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, &e.to_string())
        }
        None => internal(),
    }
}
