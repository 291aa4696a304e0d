//! Shared stdio servers (`shared: true`): one process for every client session of a server.
//!
//! Each client session keeps its own [`Session`](crate::session::Session) pipeline (policy,
//! audit, approvals, limits, taint are per session, exactly as with a private process); only
//! what comes out of those pipelines is multiplexed onto the one process:
//!
//! - **Ids.** Every request is sent under a gateway-owned id (a number the gateway counts up) and
//!   its answer is given back under the session's own id, to that session only. Progress tokens
//!   in `_meta.progressToken` are replaced the same way, so progress reaches the session whose
//!   request it is. `notifications/cancelled` is rewritten to the gateway id.
//! - **Lifecycle.** The first session's `initialize` is forwarded; its result is kept and every
//!   later session's `initialize` is answered from it. The gateway sends
//!   `notifications/initialized` once per process; the sessions' own are not passed on.
//! - **What cannot be attributed is refused or dropped.** A server request (sampling,
//!   elicitation, roots) could belong to any session, so it is answered with a JSON-RPC error
//!   (`ping` is answered). Log messages and resource updates could carry one session's data to
//!   another, so they are dropped; list-changed notifications go to every session.
//! - **Crashes.** When the process exits, every call in flight gets an error, and the process is
//!   started again (with back-off) and re-initialized with the kept `initialize` parameters
//!   before anything else is sent to it. Client sessions go on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_mcp::{
    INTERNAL_ERROR, Id, Limits, METHOD_NOT_FOUND, Message, error_response, parse_message, response,
};
use portcullis_policy::ServerInfo;
use portcullis_transport::stdio::{ShutdownGrace, StdinWriter, StdioChild};
use portcullis_transport::{DEFAULT_MAX_LINE_BYTES, Line, LineReceiver, LineSender, line_channel};
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::upstream::PIPE_BYTES;
use crate::config::child_spec;
use crate::metrics::SharedMetrics;

/// Bytes of messages queued for one session. A session that stops reading loses what does not
/// fit (logged) rather than stalling every other session of the server.
const SESSION_QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// How long a request waits for a (re)starting server before it is refused.
const READY_WAIT: Duration = Duration::from_secs(30);

/// How long the re-initialization of a restarted server may take.
const REINIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the first `initialize` may take; past it the session that sent it and every session
/// waiting for it get an error, and the next session's `initialize` is tried afresh.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Back-off between restarts: doubling from the first to the last, reset after a process ran
/// for [`STABLE_RUN`].
const RESTART_BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(30));
const STABLE_RUN: Duration = Duration::from_secs(60);

/// How long a stopping server may take to exit once its input is closed (then it is killed).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What a gateway id stands for.
#[derive(Debug)]
enum Pending {
    /// A session's request: its id, and the progress token it was given back under.
    Call {
        conn: u64,
        id: Id,
        token: Option<(String, Value)>,
    },
    /// The first `initialize`, whose result every session gets.
    Initialize { conn: u64, id: Id, params: Value },
    /// The gateway's own `initialize` of a restarted process.
    Reinitialize(tokio::sync::oneshot::Sender<bool>),
}

#[derive(Default)]
struct State {
    pending: HashMap<u64, Pending>,
    /// Gateway progress token → (session, the session's own token).
    tokens: HashMap<String, (u64, Value)>,
    conns: HashMap<u64, LineSender>,
    /// The running process's stdin.
    stdin: Option<StdinWriter>,
    /// The process behind `stdin` was (re-)initialized and takes the sessions' messages. Set
    /// and cleared with `stdin`, under this lock, so that a session's message can never reach
    /// a restarted process before the gateway's own `initialize` of it.
    accepting: bool,
    /// The kept `initialize`: its parameters and the server's result.
    init: Option<(Value, Value)>,
    /// Sessions waiting for the first `initialize` to be answered.
    init_waiters: Vec<(u64, Id)>,
    init_in_flight: bool,
}

/// One shared server process and the sessions attached to it.
pub(crate) struct SharedServer {
    name: String,
    state: Mutex<State>,
    next: AtomicU64,
    ready: watch::Sender<bool>,
    metrics: SharedMetrics,
    /// Set by [`SharedServer::stop`]: the supervisor restarts nothing any more.
    stopping: AtomicBool,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The two ends a session's pipeline uses in place of a process's stdin and stdout.
pub(crate) struct Attached {
    pub(crate) upstream: StdinWriter,
    pub(crate) server_out: LineReceiver,
}

impl SharedServer {
    /// Starts the supervisor of `info`'s process; it runs until the runtime stops.
    pub(crate) fn start(info: &ServerInfo, metrics: SharedMetrics) -> Arc<Self> {
        let (ready, _) = watch::channel(false);
        let server = Arc::new(Self {
            name: info.name.clone(),
            state: Mutex::new(State::default()),
            next: AtomicU64::new(1),
            ready,
            metrics,
            stopping: AtomicBool::new(false),
            supervisor: Mutex::new(None),
        });
        let task = tokio::spawn(supervise(Arc::clone(&server), info.clone()));
        *server
            .supervisor
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
        server
    }

    /// Stops the process for good: its input is closed so it can finish and exit, and it is
    /// killed if it has not within [`STOP_GRACE`]. Called when `serve` shuts down, after the
    /// client sessions drained.
    pub(crate) async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let stdin = self.state().stdin.clone();
        if let Some(stdin) = stdin {
            stdin.close().await;
        }
        let task = self
            .supervisor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut task) = task
            && tokio::time::timeout(STOP_GRACE, &mut task).await.is_err()
        {
            tracing::warn!(server = %self.name, "a shared server did not stop in time; killing it");
            // Dropping the child handle kills the process (`kill_on_drop`).
            task.abort();
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Attaches one session: what it writes is multiplexed onto the process, and what the
    /// process answers it comes back on `server_out`.
    pub(crate) fn attach(self: &Arc<Self>) -> Attached {
        let conn = self.next_id();
        let (session_in, mut ours_in) = line_channel(PIPE_BYTES, DEFAULT_MAX_LINE_BYTES);
        let (ours_out, session_out) = line_channel(SESSION_QUEUE_BYTES, DEFAULT_MAX_LINE_BYTES);
        self.state().conns.insert(conn, ours_out);
        let server = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(line) = ours_in.recv_line().await {
                if let Line::Complete(bytes) = line {
                    server.on_session_line(conn, &bytes).await;
                }
            }
            server.detach(conn);
        });
        Attached {
            upstream: StdinWriter::from_sender(session_in),
            server_out: session_out,
        }
    }

    /// The session ended: its answers still on their way are dropped.
    fn detach(&self, conn: u64) {
        let mut state = self.state();
        state.conns.remove(&conn);
        // An `initialize` under way is kept even when its session is gone: its answer is what
        // releases the other sessions waiting for it (`to_session` skips a detached session).
        state.pending.retain(|_, p| match p {
            Pending::Call { conn: c, .. } => *c != conn,
            Pending::Initialize { .. } | Pending::Reinitialize(_) => true,
        });
        state.tokens.retain(|_, (c, _)| *c != conn);
        state.init_waiters.retain(|(c, _)| *c != conn);
    }

    /// Sends `value` to session `conn`, if it is still attached and keeping up.
    fn to_session(&self, conn: u64, value: &Value) {
        let Some(tx) = self.state().conns.get(&conn).cloned() else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec(value) else {
            return;
        };
        if tx.try_send_line(bytes).is_err() {
            tracing::warn!(server = %self.name, "dropped a message for a session of a shared server that is not reading");
        }
    }

    /// Sends a session's message to the process, if it takes them (see [`State::accepting`]).
    async fn to_server(&self, value: &Value) -> bool {
        let stdin = {
            let state = self.state();
            state.stdin.clone().filter(|_| state.accepting)
        };
        Self::write(stdin, value).await
    }

    /// Sends the gateway's own message to the running process, initialized or not.
    async fn to_process(&self, value: &Value) -> bool {
        let stdin = self.state().stdin.clone();
        Self::write(stdin, value).await
    }

    async fn write(stdin: Option<StdinWriter>, value: &Value) -> bool {
        match (stdin, serde_json::to_vec(value)) {
            (Some(stdin), Ok(bytes)) => stdin.write_line(&bytes).await.is_ok(),
            _ => false,
        }
    }

    /// One message from session `conn` (already framed and evaluated by its pipeline).
    async fn on_session_line(self: &Arc<Self>, conn: u64, bytes: &[u8]) {
        let Ok(parsed) = parse_message(bytes, &Limits::default()) else {
            tracing::error!(server = %self.name, "a session wrote a malformed message; this is a bug, please report");
            return;
        };
        let (message, mut value) = parsed.into_parts();
        match message {
            Message::Request { id, method, params } if method == "initialize" => {
                self.initialize(conn, id, params, value).await;
            }
            Message::Request { id, .. } => {
                if !self.wait_ready().await {
                    let error = error_response(
                        Some(&id),
                        INTERNAL_ERROR,
                        "the shared server is restarting; try again",
                        None,
                    );
                    self.to_session(conn, &error);
                    return;
                }
                let gid = self.next_id();
                let token = rewrite_progress_token(&mut value, gid);
                set_id(&mut value, gid);
                {
                    let mut state = self.state();
                    if let Some((ours, theirs)) = &token {
                        state.tokens.insert(ours.clone(), (conn, theirs.clone()));
                    }
                    state.pending.insert(
                        gid,
                        Pending::Call {
                            conn,
                            id: id.clone(),
                            token,
                        },
                    );
                }
                if !self.to_server(&value).await {
                    self.fail(gid, "the shared server is not running");
                }
            }
            Message::Notification { method, .. } if method == "notifications/cancelled" => {
                let theirs = value.pointer("/params/requestId").cloned();
                let gid = theirs.and_then(|theirs| {
                    self.state().pending.iter().find_map(|(gid, p)| match p {
                        Pending::Call { conn: c, id, .. }
                            if *c == conn && id.to_value() == theirs =>
                        {
                            Some(*gid)
                        }
                        _ => None,
                    })
                });
                if let (Some(gid), Some(params)) =
                    (gid, value.get_mut("params").and_then(Value::as_object_mut))
                {
                    params.insert("requestId".into(), Value::from(gid));
                    self.to_server(&value).await;
                }
            }
            // The gateway sends `notifications/initialized` once per process; other client
            // notifications (roots changed, ...) concern one session and are not passed on.
            Message::Notification { .. } => {}
            // Answers to server requests: none are passed to sessions, so none are expected.
            Message::Response { .. } | Message::ErrorResponse { .. } => {}
        }
    }

    /// A session's `initialize`: answered from the kept result, or forwarded if it is the
    /// first (later ones wait for its answer).
    async fn initialize(
        self: &Arc<Self>,
        conn: u64,
        id: Id,
        params: Option<Map<String, Value>>,
        mut value: Value,
    ) {
        let gid = {
            let mut state = self.state();
            if let Some((_, result)) = &state.init {
                let answer = response(&id, result.clone());
                drop(state);
                self.to_session(conn, &answer);
                return;
            }
            if state.init_in_flight {
                state.init_waiters.push((conn, id));
                return;
            }
            state.init_in_flight = true;
            let gid = self.next_id();
            let params = params.map_or(Value::Null, Value::Object);
            state.pending.insert(
                gid,
                Pending::Initialize {
                    conn,
                    id: id.clone(),
                    params,
                },
            );
            gid
        };
        let _ = self.wait_ready().await;
        set_id(&mut value, gid);
        if !self.to_server(&value).await {
            self.fail(gid, "the shared server is not running");
            return;
        }
        // A server that never answers must not hold every later session's `initialize` forever.
        let server = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(INIT_TIMEOUT).await;
            let late = {
                let mut state = server.state();
                match state.pending.remove(&gid) {
                    Some(entry @ Pending::Initialize { .. }) => Some(entry),
                    Some(other) => {
                        state.pending.insert(gid, other);
                        None
                    }
                    None => None,
                }
            };
            if late.is_some() {
                tracing::warn!(server = %server.name, "the shared server did not answer `initialize` in time");
                server.fail_entry(
                    late,
                    "the shared server did not answer `initialize` in time",
                );
            }
        });
    }

    /// Waits until the process runs (and, after a restart, is initialized again).
    async fn wait_ready(&self) -> bool {
        let mut ready = self.ready.subscribe();
        tokio::time::timeout(READY_WAIT, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Answers the request behind `gid` with an internal error.
    fn fail(&self, gid: u64, message: &str) {
        let entry = self.state().pending.remove(&gid);
        self.fail_entry(entry, message);
    }

    fn fail_entry(&self, entry: Option<Pending>, message: &str) {
        match entry {
            Some(Pending::Call { conn, id, token }) => {
                if let Some((ours, _)) = token {
                    self.state().tokens.remove(&ours);
                }
                self.to_session(
                    conn,
                    &error_response(Some(&id), INTERNAL_ERROR, message, None),
                );
            }
            Some(Pending::Initialize { conn, id, .. }) => {
                let waiters = {
                    let mut state = self.state();
                    state.init_in_flight = false;
                    std::mem::take(&mut state.init_waiters)
                };
                for (conn, id) in std::iter::once((conn, id)).chain(waiters) {
                    self.to_session(
                        conn,
                        &error_response(Some(&id), INTERNAL_ERROR, message, None),
                    );
                }
            }
            Some(Pending::Reinitialize(done)) => {
                let _ = done.send(false);
            }
            None => {}
        }
    }

    /// One line from the process.
    async fn on_server_line(&self, bytes: &[u8]) {
        let Ok(parsed) = parse_message(bytes, &Limits::default()) else {
            tracing::warn!(server = %self.name, "dropped a malformed message from a shared server");
            return;
        };
        let (message, mut value) = parsed.into_parts();
        match message {
            Message::Response { id, .. } | Message::ErrorResponse { id: Some(id), .. } => {
                let entry = match id {
                    Id::Number(n) => u64::try_from(n)
                        .ok()
                        .and_then(|gid| self.state().pending.remove(&gid)),
                    Id::String(_) => None,
                };
                self.answered(entry, value).await;
            }
            Message::ErrorResponse { id: None, .. } => {
                tracing::warn!(server = %self.name, "dropped an error without an id from a shared server");
            }
            Message::Request { id, method, .. } => {
                let answer = if method == "ping" {
                    response(&id, Value::Object(Map::new()))
                } else {
                    tracing::info!(server = %self.name, method = %crate::session::shorten(&method), "refused a request from a shared server: it cannot be attributed to one client session");
                    error_response(
                        Some(&id),
                        METHOD_NOT_FOUND,
                        "this server is shared by several client sessions, so the gateway cannot pass its requests (sampling, elicitation, roots) to one of them",
                        None,
                    )
                };
                self.to_process(&answer).await;
            }
            Message::Notification { method, .. } => match method.as_str() {
                "notifications/progress" => {
                    let ours = value
                        .pointer("/params/progressToken")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    let target = ours.and_then(|t| self.state().tokens.get(&t).cloned());
                    if let Some((conn, theirs)) = target
                        && let Some(params) = value.get_mut("params").and_then(Value::as_object_mut)
                    {
                        params.insert("progressToken".into(), theirs);
                        self.to_session(conn, &value);
                    }
                }
                "notifications/tools/list_changed"
                | "notifications/prompts/list_changed"
                | "notifications/resources/list_changed" => {
                    let conns: Vec<u64> = self.state().conns.keys().copied().collect();
                    for conn in conns {
                        self.to_session(conn, &value);
                    }
                }
                _ => {
                    tracing::debug!(server = %self.name, method = %crate::session::shorten(&method), "dropped a notification of a shared server");
                }
            },
        }
    }

    /// The process answered gateway id `entry`.
    async fn answered(&self, entry: Option<Pending>, mut value: Value) {
        match entry {
            Some(Pending::Call { conn, id, token }) => {
                if let Some((ours, _)) = token {
                    self.state().tokens.remove(&ours);
                }
                set_id_to(&mut value, &id);
                self.to_session(conn, &value);
            }
            Some(Pending::Initialize { conn, id, params }) => {
                let result = value.get("result").cloned();
                let waiters = {
                    let mut state = self.state();
                    state.init_in_flight = false;
                    if let Some(result) = &result {
                        state.init = Some((params, result.clone()));
                    }
                    std::mem::take(&mut state.init_waiters)
                };
                if result.is_some() {
                    let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
                    self.to_process(&note).await;
                }
                for (conn, id) in std::iter::once((conn, id)).chain(waiters) {
                    set_id_to(&mut value, &id);
                    self.to_session(conn, &value);
                }
            }
            Some(Pending::Reinitialize(done)) => {
                let _ = done.send(value.get("result").is_some());
            }
            None => tracing::debug!(server = %self.name, "dropped an answer nobody waits for"),
        }
    }

    /// The process is gone: every call in flight gets an error.
    fn process_gone(&self) {
        self.ready.send_replace(false);
        let entries: Vec<Pending> = {
            let mut state = self.state();
            state.stdin = None;
            state.accepting = false;
            state.pending.drain().map(|(_, p)| p).collect()
        };
        for entry in entries {
            self.fail_entry(
                Some(entry),
                "the shared server exited; it is being restarted",
            );
        }
    }

    /// Initializes a restarted process with the kept parameters, if a session initialized the
    /// one before.
    async fn reinitialize(&self) -> bool {
        let Some(params) = self.state().init.as_ref().map(|(p, _)| p.clone()) else {
            return true;
        };
        let gid = self.next_id();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.state().pending.insert(gid, Pending::Reinitialize(tx));
        let mut request = serde_json::json!({"jsonrpc": "2.0", "id": gid, "method": "initialize"});
        if let (Some(object), false) = (request.as_object_mut(), params.is_null()) {
            object.insert("params".into(), params);
        }
        if !self.to_process(&request).await {
            return false;
        }
        if !matches!(tokio::time::timeout(REINIT_TIMEOUT, rx).await, Ok(Ok(true))) {
            return false;
        }
        let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.to_process(&note).await
    }
}

/// Runs the process, restarting it when it exits.
async fn supervise(server: Arc<SharedServer>, info: ServerInfo) {
    let mut backoff = RESTART_BACKOFF.0;
    while !server.stopping.load(Ordering::SeqCst) {
        let started = tokio::time::Instant::now();
        let spawned = child_spec(&info, None)
            .map_err(|e| e.to_string())
            .and_then(|spec| {
                StdioChild::spawn(spec, DEFAULT_MAX_LINE_BYTES).map_err(|e| e.to_string())
            });
        match spawned {
            Err(error) => {
                tracing::error!(server = %server.name, %error, "cannot start a shared server");
                server.metrics.upstream_started(&server.name, false);
            }
            Ok(mut child) => {
                server.metrics.upstream_started(&server.name, true);
                tracing::info!(server = %server.name, pid = child.pid(), "started a shared server");
                let stdout = child.take_stdout();
                server.state().stdin = Some(child.stdin());
                if let Some(mut stdout) = stdout {
                    let reader = {
                        let server = Arc::clone(&server);
                        tokio::spawn(async move {
                            while let Ok(Some(line)) = stdout.next_line().await {
                                match line {
                                    Line::Complete(bytes) => server.on_server_line(&bytes).await,
                                    Line::TooLong { bytes_discarded } => {
                                        tracing::warn!(server = %server.name, bytes_discarded, "dropped an over-long message from a shared server")
                                    }
                                }
                            }
                        })
                    };
                    if server.reinitialize().await {
                        server.state().accepting = true;
                        server.ready.send_replace(true);
                    } else {
                        tracing::error!(server = %server.name, "a restarted shared server did not initialize; stopping it");
                        reader.abort();
                    }
                    let _ = reader.await;
                }
                server.process_gone();
                if let Err(error) = child.shutdown(ShutdownGrace::default()).await {
                    tracing::warn!(server = %server.name, %error, "the shared server did not stop cleanly");
                }
                if server.stopping.load(Ordering::SeqCst) {
                    tracing::info!(server = %server.name, "stopped a shared server");
                    break;
                }
                server.metrics.upstream_ended(&server.name, "server_gone");
                tracing::warn!(server = %server.name, "the shared server exited; restarting it");
            }
        }
        if started.elapsed() >= STABLE_RUN {
            backoff = RESTART_BACKOFF.0;
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(RESTART_BACKOFF.1);
    }
}

fn set_id(value: &mut Value, gid: u64) {
    if let Some(object) = value.as_object_mut() {
        object.insert("id".into(), Value::from(gid));
    }
}

fn set_id_to(value: &mut Value, id: &Id) {
    if let Some(object) = value.as_object_mut() {
        object.insert("id".into(), id.to_value());
    }
}

/// Replaces `params._meta.progressToken` with a gateway-owned token; returns (ours, theirs).
fn rewrite_progress_token(value: &mut Value, gid: u64) -> Option<(String, Value)> {
    let meta = value.get_mut("params")?.get_mut("_meta")?.as_object_mut()?;
    let theirs = meta.get("progressToken")?.clone();
    let ours = format!("portcullis-{gid}");
    meta.insert("progressToken".into(), Value::from(ours.clone()));
    Some((ours, theirs))
}

#[cfg(test)]
mod tests;
