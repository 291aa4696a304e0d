//! `portcullis serve`: the Streamable HTTP front (MCP 2025-11-25, also 2025-06-18 and 2025-03-26
//! clients) for every server in the policy.
//!
//! - `POST /mcp/NAME` reaches server NAME with its own tool names; `POST /mcp` reaches all of
//!   them with tools and prompts namespaced `NAME__name`.
//! - `initialize` without `Mcp-Session-Id` starts a client session (one server process per
//!   server reached); its id is 32 random bytes, bound to the principal and the endpoint. A
//!   session id used by another principal or on another endpoint is answered `404`, exactly as
//!   an unknown id, so it tells a guesser nothing. `DELETE` ends a session.
//! - `GET` on an MCP endpoint is the session's SSE stream of server-initiated messages
//!   (resumable with `Last-Event-ID`); a POST's answer becomes SSE when progress or a server
//!   request for it comes first (see `outbox`). A server request no stream can take is answered
//!   "method not found" rather than left waiting.
//! - Servers with a `url:` are reached over Streamable HTTP (`http_upstream`) behind the same
//!   session pipeline as stdio servers.
//! - Every request passes the Host/Origin guard (DNS rebinding; loopback only unless configured)
//!   and authentication (`auth.api_keys`, `auth.jwt`; without `auth` only a loopback listener is allowed,
//!   principal `anonymous`). No credential: `401` with `WWW-Authenticate` pointing at the
//!   protected-resource metadata (RFC 9728) the MCP authorization spec asks for.
//! - Each client message is strictly framed here and again by the server's session, which
//!   evaluates it and makes the decision durable before anything is forwarded.

mod http;
mod http_upstream;
mod outbox;
mod route;
mod shared;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_transport::HostGuard;

pub use route::NAMESPACE_SEPARATOR;

use crate::auth::Authenticator;
use crate::config::{load_policy, open_store};
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::selftest::self_test;
use crate::telemetry::Telemetry;
use route::ClientSession;
use upstream::UpstreamContext;

/// Where `serve` listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8750";

/// Most client sessions at once by default ([`ServeOptions::max_sessions`]); each holds server
/// processes (one per stdio server it reaches, unless the server is `shared`), so the bound is a
/// resource limit. Past it a new session is answered `503`.
pub const MAX_SESSIONS: usize = 256;

/// A session unused this long is closed (its servers stopped).
pub const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long in-flight requests may take to finish after a stop signal.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(30);

/// The bearer token of `GET /metrics`, in the state directory (created 0600 at the first start).
/// It is its own token, not the admin token: a scraper's credential must not approve calls.
pub const METRICS_TOKEN_FILE: &str = "metrics.token";

/// How long each server session may take to drain when its client session ends.
const SESSION_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Options of `portcullis serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// The policy file.
    pub policy: PathBuf,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// Overrides the policy's `state_dir`.
    pub state_dir: Option<PathBuf>,
    /// Overrides the policy's `store` (a `postgres://` URL for shared state).
    pub store: Option<String>,
    /// Hosts and origins accepted beyond loopback.
    pub guard: HostGuard,
    /// The externally visible base URL (`https://mcp.example.com`) when behind a proxy; used in
    /// the protected-resource metadata. Default: `http://` and the request's `Host`.
    pub public_url: Option<String>,
    /// Serve the approvals admin API and page on this loopback address or unix socket, as
    /// `run --admin` does. A separate listener: the MCP front may face the network, the admin
    /// API never does.
    pub admin: Option<String>,
    /// Most client sessions at once (default [`MAX_SESSIONS`]).
    pub max_sessions: usize,
}

/// Shared state of the HTTP front.
pub(crate) struct App {
    pub(crate) ctx: UpstreamContext,
    pub(crate) auth: Authenticator,
    pub(crate) guard: HostGuard,
    pub(crate) public_url: Option<String>,
    pub(crate) sessions: Mutex<HashMap<String, Arc<ClientSession>>>,
    /// The bearer token `GET /metrics` requires.
    pub(crate) metrics_token: String,
    /// Most client sessions at once.
    pub(crate) max_sessions: usize,
    /// Set when a stop signal came: no new GET stream is opened.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
}

impl App {
    pub(crate) fn sessions(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ClientSession>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs the HTTP front until SIGINT or SIGTERM, then drains in-flight requests (at most
/// [`SHUTDOWN_DRAIN`]) and stops every server.
///
/// # Errors
///
/// A [`GatewayError`] saying why the gateway did not start: the policy does not load, the
/// self-test fails, `auth` is missing on a non-loopback address, the state directory or the
/// address cannot be opened.
pub async fn serve(options: ServeOptions) -> Result<(), GatewayError> {
    let (policy, policy_text) = load_policy(&options.policy)?;
    self_test(&policy).map_err(GatewayError::SelfTest)?;
    let policy_dir = options
        .policy
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let auth = Authenticator::from_policy(policy.raw().auth.as_ref(), &policy_dir).await?;
    if let Some(jwt) = auth.jwt() {
        tokio::spawn(jwt.clone().refresh_forever(policy_dir.clone()));
    }
    if auth.is_anonymous() && !options.listen.ip().is_loopback() {
        return Err(GatewayError::Insecure(format!(
            "the policy has no `auth` section, so `serve` accepts requests without credentials and listens only on a loopback address, not `{}`\nhelp: add `auth: {{ api_keys: [...] }}` to the policy, or listen on 127.0.0.1",
            options.listen
        )));
    }
    // Held calls of HTTP sessions are resolved like stdio ones: `portcullis approvals` on this
    // state, the admin API and page (`admin`), or a lease; with a shared store, through any
    // instance.
    let (store, state) = open_store(
        &options.policy,
        &policy,
        options.state_dir.as_deref(),
        options.store.as_deref(),
    )?;
    let store = Arc::new(store);
    let approvals = Arc::clone(&store);
    let _admin = match &options.admin {
        Some(listen) => Some(crate::admin::serve(listen, &state, Arc::clone(&approvals)).await?),
        None => None,
    };
    let metrics_token =
        crate::admin::load_or_create_token_file(&state.join(METRICS_TOKEN_FILE), "metrics")
            .map_err(|source| GatewayError::Io {
                what: "cannot prepare the metrics token",
                source,
            })?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| GatewayError::Io {
            what: "cannot listen on the address",
            source,
        })?;
    let local = listener.local_addr().map_err(|source| GatewayError::Io {
        what: "cannot read the listening address",
        source,
    })?;
    let sha = policy
        .sha256()
        .get(..12)
        .unwrap_or(policy.sha256())
        .to_owned();
    let servers: Vec<String> = policy.servers().keys().cloned().collect();
    let telemetry = Telemetry::from_env(tokio::runtime::Handle::current()).map(Arc::new);
    let metrics = Arc::new(Metrics::new());
    for server in &servers {
        metrics.declare_server(server);
    }
    // `shared: true` stdio servers run one process for every session, started now.
    let shared: HashMap<String, Arc<shared::SharedServer>> = policy
        .servers()
        .values()
        .filter(|info| info.spec.shared == Some(true) && info.spec.command.is_some())
        .map(|info| {
            tracing::info!(server = %info.name, "this server is shared: one process serves every session");
            (
                info.name.clone(),
                shared::SharedServer::start(info, Arc::clone(&metrics)),
            )
        })
        .collect();
    let app = Arc::new(App {
        ctx: UpstreamContext {
            policy: Arc::new(policy),
            policy_path: options.policy.clone(),
            policy_text,
            store: Arc::clone(&store),
            approvals,
            metrics,
            telemetry: telemetry.clone(),
            shared: Arc::new(shared),
        },
        auth,
        guard: options.guard.clone(),
        public_url: options.public_url.clone(),
        sessions: Mutex::new(HashMap::new()),
        metrics_token,
        max_sessions: options.max_sessions,
        stopping: std::sync::atomic::AtomicBool::new(false),
    });
    // A log event rather than a bare line on stderr, so that `--log-format json` output stays
    // one JSON object per line from the first line on.
    let auth_mode = if app.auth.is_anonymous() {
        "no auth (loopback only)"
    } else if app.auth.has_jwt() {
        "API keys or JWTs required"
    } else {
        "API keys required"
    };
    tracing::info!(
        servers = %servers.join(", "),
        address = %format!("http://{local}/mcp"),
        policy = %options.policy.display(),
        sha256 = %sha,
        auth = auth_mode,
        state_dir = %state.display(),
        store = %app.ctx.store.location(),
        "portcullis: serving {} at http://{local}/mcp under policy {} (sha256 {sha}), {auth_mode}, audit in {}",
        servers.join(", "),
        options.policy.display(),
        app.ctx.store.location()
    );
    let reaper = tokio::spawn(reap_idle(Arc::clone(&app)));
    let router = http::router(Arc::clone(&app));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // No Nagle delay: a streamed answer is several small writes (its events, then the response),
    // and a later one must not wait for the client to acknowledge the first.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a client connection");
        }
    });
    let mut server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    tokio::select! {
        () = stop_signal() => {
            tracing::info!("stopping: draining in-flight requests");
            let _ = stop_tx.send(());
            // GET streams never end by themselves; requests in flight are drained.
            app.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
            for session in app.sessions().values() {
                session.outbox.close_get();
            }
            if tokio::time::timeout(SHUTDOWN_DRAIN, &mut server).await.is_err() {
                tracing::warn!("in-flight requests did not finish in time; stopping anyway");
                server.abort();
            }
        }
        result = &mut server => match result {
            Ok(Ok(())) => {}
            Ok(Err(source)) => return Err(GatewayError::Io { what: "the HTTP server failed", source }),
            Err(error) => tracing::error!(%error, "the HTTP server task failed; this is a bug, please report"),
        },
    }
    reaper.abort();
    let sessions: Vec<Arc<ClientSession>> = app.sessions().drain().map(|(_, s)| s).collect();
    let mut closing = tokio::task::JoinSet::new();
    for session in sessions {
        closing.spawn(async move { session.close(SESSION_CLOSE_GRACE).await });
    }
    while closing.join_next().await.is_some() {}
    for shared in app.ctx.shared.values() {
        shared.stop().await;
    }
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    Ok(())
}

/// SIGINT or SIGTERM. If the handlers cannot be installed the gateway still serves; it then
/// stops only when killed.
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot install a SIGTERM handler");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        result = tokio::signal::ctrl_c() => {
            if let Err(error) = result {
                tracing::warn!(%error, "cannot install a SIGINT handler");
                std::future::pending::<()>().await;
            }
        }
        () = terminate => {}
    }
}

/// Closes sessions idle longer than [`SESSION_IDLE_TIMEOUT`] or whose servers ended.
async fn reap_idle(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        let stale: Vec<Arc<ClientSession>> = {
            let mut sessions = app.sessions();
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, s)| s.idle_for() > SESSION_IDLE_TIMEOUT || !s.is_alive())
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| sessions.remove(id)).collect()
        };
        for session in stale {
            tracing::info!(principal = %session.principal, "closing an idle or ended session");
            tokio::spawn(async move { session.close(SESSION_CLOSE_GRACE).await });
        }
    }
}
