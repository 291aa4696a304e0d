//! One server behind one HTTP client session: the unchanged stdio [`Session`] pipeline (framing,
//! evaluation, durable audit, forwarding) with its client side on in-process line channels.
//!
//! The HTTP front passes each client message as one line into the session's input channel and
//! waits for the line that answers its id. Nothing reaches the server except through the
//! session, so a call from HTTP is framed, evaluated and audited exactly as one from stdio.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_mcp::{
    INTERNAL_ERROR, INVALID_REQUEST, Id, Limits, METHOD_NOT_FOUND, Message, error_response,
    parse_message,
};
use portcullis_policy::CompiledPolicy;
use portcullis_store::Store;
use portcullis_transport::stdio::{ShutdownGrace, StdinWriter, StdioChild};
use portcullis_transport::{
    DEFAULT_MAX_LINE_BYTES, Line, LineReceiver, LineSender, LineSource, line_channel,
};
use serde_json::Value;
use tokio::sync::oneshot;

use super::outbox::Outbox;
use super::shared::SharedServer;
use crate::auth::Identity;
use crate::config::child_spec;
use crate::error::GatewayError;
use crate::metrics::SharedMetrics;
use crate::session::{Session, SessionEnd, SessionParts};

/// Capacity of each in-process line channel, in bytes; a full channel applies back-pressure, it
/// never grows (a larger message waits for it to be empty and passes alone).
pub(super) const PIPE_BYTES: usize = 64 * 1024;

/// The longest a client request waits for its answer. Long-running tools exist; a request that
/// outlives this gets an internal error and its late answer is dropped.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// How often a closing session is checked for having ended.
const CLOSE_POLL: Duration = Duration::from_millis(20);

/// Calls awaiting their answer, by JSON-RPC id.
type Waiters = Arc<Mutex<HashMap<Id, oneshot::Sender<Value>>>>;

/// What starts an upstream: the policy and where it came from, and the shared audit store.
#[derive(Clone)]
pub(crate) struct UpstreamContext {
    pub(crate) policy: Arc<CompiledPolicy>,
    pub(crate) policy_path: std::path::PathBuf,
    pub(crate) policy_text: String,
    pub(crate) store: Arc<Store>,
    /// Approvals and leases, shared by every session.
    pub(crate) approvals: Arc<portcullis_store::Store>,
    /// The counters behind `/metrics`.
    pub(crate) metrics: SharedMetrics,
    /// OpenTelemetry traces, when the environment asks for them.
    pub(crate) telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    /// The processes of `shared: true` servers, by server name.
    pub(crate) shared: Arc<HashMap<String, Arc<SharedServer>>>,
}

/// The client side of one server's session.
pub(crate) struct Upstream {
    server: String,
    input: StdinWriter,
    waiters: Waiters,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Starts `server` for `principal`: a stdio process from the policy's command, or a
    /// connection to the policy's URL — never anything a client sent — and its session.
    pub(crate) fn start(
        ctx: &UpstreamContext,
        server: &str,
        identity: &Identity,
        outbox: Arc<Outbox>,
    ) -> Result<Self, GatewayError> {
        let started = Self::spawn(ctx, server, identity, outbox);
        // A shared server's process is counted by its supervisor, not per session.
        if !ctx.shared.contains_key(server) {
            ctx.metrics.upstream_started(server, started.is_ok());
        }
        started
    }

    fn spawn(
        ctx: &UpstreamContext,
        server: &str,
        identity: &Identity,
        outbox: Arc<Outbox>,
    ) -> Result<Self, GatewayError> {
        let principal = identity.principal.as_str();
        let info = ctx.policy.servers().get(server).ok_or_else(|| {
            GatewayError::ServerSelection(format!("the policy configures no server `{server}`"))
        })?;
        let (ours_in, client_in) = line_channel(PIPE_BYTES, DEFAULT_MAX_LINE_BYTES);
        let (theirs_out, ours_out) = line_channel(PIPE_BYTES, DEFAULT_MAX_LINE_BYTES);
        let input = StdinWriter::from_sender(ours_in);
        let waiters: Waiters = Arc::default();
        let parts = |upstream: StdinWriter| SessionParts {
            server: server.to_owned(),
            policy: CompiledPolicy::clone(&ctx.policy),
            policy_path: ctx.policy_path.clone(),
            policy_text: ctx.policy_text.clone(),
            store: Arc::clone(&ctx.store),
            principal: Some(principal.to_owned()),
            agent: identity.agent.clone(),
            upstream,
            client: theirs_out.clone(),
            approvals: Arc::clone(&ctx.approvals),
            metrics: Arc::clone(&ctx.metrics),
        };
        let name = (server.to_owned(), Arc::clone(&ctx.metrics));
        let task = if info.spec.url.is_some() && info.spec.command.is_none() {
            let http = super::http_upstream::connect(info)?;
            let session = Session::new(parts(http.upstream));
            tokio::spawn(run_session(
                session,
                client_in,
                http.server_out,
                ServerHandle::Http(http.bridge),
                name,
            ))
        } else if let Some(shared) = ctx.shared.get(server) {
            let attached = shared.attach();
            tracing::info!(
                server,
                principal,
                "attached an HTTP session to a shared server"
            );
            let session = Session::new(parts(attached.upstream));
            tokio::spawn(run_session(
                session,
                client_in,
                attached.server_out,
                ServerHandle::Shared,
                name,
            ))
        } else {
            let spec = child_spec(info, None)?;
            let mut child = StdioChild::spawn(spec, DEFAULT_MAX_LINE_BYTES)?;
            let server_out = child.take_stdout().ok_or_else(|| GatewayError::Io {
                what: "the server's output is missing; this is a bug, please report",
                source: std::io::Error::other("stdout already taken"),
            })?;
            tracing::info!(
                server,
                principal,
                pid = child.pid(),
                "started a server for an HTTP session"
            );
            let session = Session::new(parts(child.stdin()));
            tokio::spawn(run_session(
                session,
                client_in,
                server_out,
                ServerHandle::Stdio(Box::new(child)),
                name,
            ))
        };
        drop(theirs_out);
        tokio::spawn(route_answers(
            ours_out,
            Arc::clone(&waiters),
            input.clone(),
            (server.to_owned(), outbox),
        ));
        Ok(Self {
            server: server.to_owned(),
            input,
            waiters,
            task,
        })
    }

    /// Sends request `id` (already strictly parsed; `bytes` is its re-serialization) and waits
    /// for the session's answer: the server's response, a denial, or an error.
    pub(crate) async fn request(&self, id: &Id, bytes: &[u8]) -> Value {
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            if waiters.contains_key(id) {
                let message = format!("a request with id {id} is already in flight; use a new id");
                return error_response(Some(id), INVALID_REQUEST, &message, None);
            }
            waiters.insert(id.clone(), tx);
        }
        // If this call is dropped (the HTTP client went away) before the request is queued, the
        // id must not stay registered: a retry under the same id would be refused for ever.
        let mut unsent = Unsent {
            upstream: self,
            id,
            armed: true,
        };
        let written = self.input.write_line(bytes).await;
        unsent.armed = false;
        if let Err(error) = written {
            tracing::warn!(%error, server = %self.server, "the server's session is not accepting input");
            self.forget(id);
            return error_response(
                Some(id),
                INTERNAL_ERROR,
                "the server's session has ended",
                None,
            );
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => error_response(
                Some(id),
                INTERNAL_ERROR,
                "the server's session has ended",
                None,
            ),
            Err(_) => {
                self.forget(id);
                error_response(
                    Some(id),
                    INTERNAL_ERROR,
                    "the server did not answer in time",
                    None,
                )
            }
        }
    }

    /// Sends a notification or a response; nothing comes back.
    pub(crate) async fn send(&self, bytes: &[u8]) -> bool {
        match self.input.write_line(bytes).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, server = %self.server, "cannot pass a message to the server's session");
                false
            }
        }
    }

    /// Whether the session (and so the server) is still running.
    pub(crate) fn is_alive(&self) -> bool {
        !self.task.is_finished()
    }

    /// Ends the session: its input closes, it drains what is in flight, and the server is shut
    /// down. Waits at most `grace`.
    pub(crate) async fn close(&self, grace: Duration) {
        self.input.close().await;
        let deadline = tokio::time::Instant::now() + grace;
        while !self.task.is_finished() {
            if tokio::time::Instant::now() >= deadline {
                // Aborting drops the child handle, which kills the server (`kill_on_drop`).
                tracing::warn!(server = %self.server, "a server session did not end in time; stopping it");
                self.task.abort();
                return;
            }
            tokio::time::sleep(CLOSE_POLL).await;
        }
    }

    fn forget(&self, id: &Id) {
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// Forgets a request's waiter when the request is dropped before it was queued.
struct Unsent<'a> {
    upstream: &'a Upstream,
    id: &'a Id,
    armed: bool,
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.upstream.forget(self.id);
        }
    }
}

/// What a session's server is: a child process, the bridge to an HTTP server, or a shared
/// process (which outlives the session).
enum ServerHandle {
    Stdio(Box<StdioChild>),
    Http(super::http_upstream::Bridge),
    Shared,
}

/// Runs one server session to its end, then stops its server.
async fn run_session<S: LineSource>(
    mut session: Session<LineSender>,
    mut client_in: LineReceiver,
    mut server_out: S,
    server: ServerHandle,
    (name, metrics): (String, SharedMetrics),
) {
    let end = session.run(&mut client_in, &mut server_out, None).await;
    drop(session);
    tracing::info!(server = %name, ?end, "an HTTP session's server session ended");
    if matches!(server, ServerHandle::Shared) {
        return;
    }
    metrics.upstream_ended(
        &name,
        match end {
            SessionEnd::ClientGone => "client_gone",
            SessionEnd::ServerGone => "server_gone",
            SessionEnd::Killed => "killed",
        },
    );
    match server {
        ServerHandle::Stdio(child) => {
            if let Err(error) = child.shutdown(ShutdownGrace::default()).await {
                tracing::warn!(%error, server = %name, "the server did not stop cleanly");
            }
        }
        ServerHandle::Http(bridge) => bridge.stop().await,
        ServerHandle::Shared => {}
    }
}

/// Reads what the session sends to the client: answers go to their waiting request; the
/// server's own requests and notifications go to the client's streams through the [`Outbox`]. A
/// request no stream can take is answered "method not found" at once rather than left hanging.
async fn route_answers(
    mut lines: LineReceiver,
    waiters: Waiters,
    input: StdinWriter,
    (server, outbox): (String, Arc<Outbox>),
) {
    let limits = Limits::default();
    loop {
        let bytes = match lines.recv_line().await {
            Some(Line::Complete(bytes)) => bytes,
            Some(Line::TooLong { bytes_discarded }) => {
                tracing::warn!(
                    bytes_discarded,
                    "dropped an over-long message for the HTTP client"
                );
                continue;
            }
            None => break,
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(parsed) = parse_message(&bytes, &limits) else {
            tracing::error!("the session wrote a malformed message; this is a bug, please report");
            continue;
        };
        let (message, value) = parsed.into_parts();
        match message {
            Message::Response { id, .. } | Message::ErrorResponse { id: Some(id), .. } => {
                let waiter = waiters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(value);
                    }
                    None => tracing::debug!(%id, "dropped an answer nobody waits for"),
                }
            }
            Message::ErrorResponse { id: None, .. } => {
                tracing::warn!("dropped an error with a null id for the HTTP client");
            }
            Message::Request { id, method, .. } => {
                if outbox.request(&server, &id, &value) {
                    continue;
                }
                tracing::info!(%id, method = %crate::session::shorten(&method), "refused a server request: the client has no open stream to receive it");
                let answer = error_response(
                    Some(&id),
                    METHOD_NOT_FOUND,
                    "the client is connected over HTTP without an open stream for server requests",
                    None,
                );
                if let Ok(bytes) = serde_json::to_vec(&answer)
                    && input.write_line(&bytes).await.is_err()
                {
                    break;
                }
            }
            Message::Notification { method, .. } => {
                if !outbox.notify(&value) {
                    tracing::debug!(method = %crate::session::shorten(&method), "dropped a server notification (no open stream)");
                }
            }
        }
    }
    outbox.forget_server(&server);
    // The session ended: nobody will answer the calls still waiting.
    let pending: Vec<_> = waiters
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain()
        .collect();
    for (id, waiter) in pending {
        let _ = waiter.send(error_response(
            Some(&id),
            INTERNAL_ERROR,
            "the server's session has ended",
            None,
        ));
    }
}
