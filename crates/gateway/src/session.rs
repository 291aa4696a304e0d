//! One stdio session: the client on our stdin/stdout, the server as a child process.
//!
//! A single task owns all session state (pending calls, taint labels, the policy) and reacts to
//! one event at a time: a client line, a server line, a finished audit write, a signal, or the
//! reload tick. Audit writes run concurrently (so the store can group-commit them) and report
//! back here; a call is forwarded only when its decision record is durable.

// approvals: begin
mod approval;
// approvals: end
mod client;
mod evaluate;
mod server;
mod vet;

pub(crate) use client::shorten;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use portcullis_mcp::{INTERNAL_ERROR, Id, Limits, error_response};
use portcullis_policy::CompiledPolicy;
use portcullis_store::{AuditEvent, AuditKind, Store, StoreError};
use portcullis_transport::stdio::StdinWriter;
use portcullis_transport::{Line, LineSink, LineSource};
use serde_json::Value;
use tokio::time::Instant;

use crate::denial::Denial;
use crate::metrics::SharedMetrics;
use crate::record;
use crate::reload::Reloader;

/// How long the session keeps going after the client went away (or a stop signal came), so that
/// answers already on their way still reach the client and get outcome records.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How often the policy file is checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client closed its input (or stopped reading), or a stop signal arrived.
    ClientGone,
    /// The server closed its output: it exited or is about to.
    ServerGone,
    /// A `kill_session` decision ended the session.
    Killed,
}

/// What to do with an evaluated call once its decision record is durable.
#[derive(Debug)]
enum Action {
    /// Send these bytes to the server.
    Forward(Vec<u8>),
    /// Answer the client with this denial; `kill` ends the session afterwards.
    Refuse { denial: Denial, kill: bool },
}

/// Where a client request stands.
#[derive(Debug)]
enum Stage {
    /// Its decision record is being written.
    AwaitingAudit(Action),
    /// It was sent to the server at this instant.
    Forwarded(Instant),
    /// It waits for a human's approval (approvals: hold mode).
    Held,
}

/// Facts about an evaluated call, for its outcome record and taint.
#[derive(Debug, Clone)]
struct CallInfo {
    decision_id: String,
    tool: String,
    taint: Vec<String>,
    /// Rate-limit charges, given back if the upstream answers with a JSON-RPC error.
    grants: Vec<portcullis_store::Grant>,
}

/// A client request the gateway has accepted and not answered yet.
#[derive(Debug)]
struct Pending {
    method: String,
    stage: Stage,
    call: Option<CallInfo>,
}

/// The report of one audit write.
#[derive(Debug)]
struct Audited {
    id: Id,
    result: Result<(), StoreError>,
}

/// One audit write the session waits for: `Some` for a decision record (the call waits on it),
/// `None` for an outcome record (only its failure is logged).
type AuditWait = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Audited>> + Send>>;

/// The session state and its two channels.
pub(crate) struct Session<W> {
    server: String,
    policy: Arc<CompiledPolicy>,
    reloader: Reloader,
    store: Arc<Store>,
    session_id: String,
    principal: Option<String>,
    agent: Option<String>,
    labels: BTreeSet<String>,
    pending: HashMap<Id, Pending>,
    server_requests: HashSet<Id>,
    initialized: bool,
    initializing: bool,
    upstream: StdinWriter,
    client: W,
    client_ok: bool,
    /// Audit writes in flight, awaited by the session itself (no task per write): a decision's
    /// answer is an [`Audited`] to act on, an outcome's is `None`.
    audits: FuturesUnordered<AuditWait>,
    limits: Limits,
    trips: crate::limits::TripWire,
    vet: vet::VetState,
    lock_path: PathBuf,
    end: Option<SessionEnd>,
    approvals: approval::Approvals,
    metrics: SharedMetrics,
}

/// Everything a session needs to start.
pub(crate) struct SessionParts<W> {
    pub(crate) server: String,
    pub(crate) policy: CompiledPolicy,
    pub(crate) policy_path: PathBuf,
    pub(crate) policy_text: String,
    pub(crate) store: Arc<Store>,
    /// The authenticated principal (HTTP front), for rules and the audit record.
    pub(crate) principal: Option<String>,
    /// The agent named by the client's credential (a JWT's agent claim), for rules.
    pub(crate) agent: Option<String>,
    pub(crate) upstream: StdinWriter,
    pub(crate) client: W,
    /// Approvals and leases (approvals).
    pub(crate) approvals: Arc<portcullis_store::Store>,
    /// Where decisions and outcomes are counted (`serve`'s `/metrics`).
    pub(crate) metrics: SharedMetrics,
}

impl<W: LineSink> Session<W> {
    pub(crate) fn new(parts: SessionParts<W>) -> Self {
        Self {
            server: parts.server,
            policy: Arc::new(parts.policy),
            reloader: Reloader::new(parts.policy_path.clone(), parts.policy_text),
            store: parts.store,
            session_id: random_id("s-"),
            principal: parts.principal,
            agent: parts.agent,
            labels: BTreeSet::new(),
            pending: HashMap::new(),
            server_requests: HashSet::new(),
            initialized: false,
            initializing: false,
            upstream: parts.upstream,
            client: parts.client,
            client_ok: true,
            audits: FuturesUnordered::new(),
            limits: Limits::default(),
            trips: crate::limits::TripWire::new(),
            vet: vet::VetState::default(),
            lock_path: crate::vetting::pins::LockFile::path_for(&parts.policy_path),
            end: None,
            approvals: approval::Approvals::new(parts.approvals),
            metrics: parts.metrics,
        }
    }

    /// Runs until the client or the server goes away or the policy ends the session.
    pub(crate) async fn run<C, S>(
        &mut self,
        client_in: &mut C,
        server_out: &mut S,
        signals: Option<(
            &mut portcullis_transport::SignalForwarder,
            &portcullis_transport::stdio::StdioChild,
        )>,
    ) -> SessionEnd
    where
        C: LineSource,
        S: LineSource,
    {
        let end = self.run_loop(client_in, server_out, signals).await;
        self.end_approvals().await;
        end
    }

    async fn run_loop<C, S>(
        &mut self,
        client_in: &mut C,
        server_out: &mut S,
        mut signals: Option<(
            &mut portcullis_transport::SignalForwarder,
            &portcullis_transport::stdio::StdioChild,
        )>,
    ) -> SessionEnd
    where
        C: LineSource,
        S: LineSource,
    {
        let mut tick = tokio::time::interval(RELOAD_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining: Option<Instant> = None;
        let mut approvals_tick = tokio::time::interval(crate::approvals::POLL_INTERVAL);
        approvals_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Some(end) = self.end {
                return end;
            }
            if !self.client_ok && draining.is_none() {
                self.start_drain(&mut draining);
            }
            if let Some(deadline) = draining
                && (self.is_idle() || Instant::now() >= deadline)
            {
                return SessionEnd::ClientGone;
            }
            let deadline = draining.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                line = client_in.next_line(), if draining.is_none() => match line {
                    Ok(Some(line)) => self.on_client_line(line).await,
                    Ok(None) => {
                        tracing::info!("the client closed its input; ending the session");
                        self.start_drain(&mut draining);
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot read from the client; ending the session");
                        self.start_drain(&mut draining);
                    }
                },
                line = server_out.next_line() => match line {
                    Ok(Some(line)) => self.on_server_line(line, server_out.discarded_head()).await,
                    Ok(None) => self.server_gone("the server exited").await,
                    Err(error) => {
                        tracing::error!(%error, "cannot read from the server");
                        self.server_gone("the server exited").await;
                    }
                },
                Some(done) = self.audits.next() => if let Some(audited) = done {
                    self.on_audited(audited).await;
                },
                Some((signal, child)) = next_signal(&mut signals) => {
                    match child.signal(signal) {
                        Ok(()) => tracing::info!("passed {signal} to the server"),
                        Err(error) => tracing::warn!(%error, "cannot pass {signal} to the server"),
                    }
                    if signal != portcullis_transport::Signal::Hangup {
                        self.start_drain(&mut draining);
                    }
                }
                _ = tick.tick() => self.reload(),
                _ = approvals_tick.tick() => self.approvals_tick().await,
                () = tokio::time::sleep_until(deadline), if draining.is_some() => {}
            }
        }
    }

    /// Stops reading the client; answers still arriving are passed on until nothing is pending or
    /// [`DRAIN_GRACE`] has passed. The caller then shuts the server down.
    fn start_drain(&mut self, draining: &mut Option<Instant>) {
        if draining.is_none() {
            *draining = Some(Instant::now() + DRAIN_GRACE);
        }
    }

    /// Nothing in flight: no pending call and no audit write outstanding.
    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.audits.is_empty()
    }

    fn reload(&mut self) {
        if let Some(policy) = self.reloader.poll() {
            self.policy = Arc::new(policy);
        }
    }

    /// Writes one message to the client. A failure means the client is gone.
    async fn send_client(&mut self, value: &Value) {
        if !self.client_ok {
            return;
        }
        let bytes = match serde_json::to_vec(value) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "cannot serialize a message for the client; this is a bug, please report");
                return;
            }
        };
        if let Err(error) = self.client.write_line(&bytes).await {
            tracing::warn!(%error, "cannot write to the client; ending the session");
            self.client_ok = false;
        }
    }

    /// Answers every pending call with an internal error and records the outcome.
    async fn fail_pending(&mut self, message: &str, outcome: &str) {
        let mut pending: Vec<(Id, Pending)> = self.pending.drain().collect();
        pending.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, entry) in pending {
            let response = error_response(Some(&id), INTERNAL_ERROR, message, None);
            self.send_client(&response).await;
            if let (Some(call), Stage::Forwarded(start)) = (&entry.call, &entry.stage) {
                self.record_outcome(call, &entry.method, outcome, *start);
            }
        }
    }

    async fn server_gone(&mut self, message: &str) {
        tracing::warn!(
            "the server closed its output; failing {} pending call(s)",
            self.pending.len()
        );
        self.fail_pending(message, "upstream_closed").await;
        self.end = Some(SessionEnd::ServerGone);
    }

    /// Appends the outcome record of a forwarded call. It cannot hold anything back any more, so
    /// a failure is logged loudly rather than acted on.
    fn record_outcome(&mut self, call: &CallInfo, method: &str, outcome: &str, start: Instant) {
        let mut event = record::event(
            AuditKind::Outcome,
            &call.decision_id,
            &self.session_id,
            &self.server,
            method,
            Some(&call.tool),
        );
        event.principal.clone_from(&self.principal);
        event.outcome = Some(outcome.to_owned());
        let took = start.elapsed();
        self.metrics.upstream_call(&self.server, outcome, took);
        event.duration_us = Some(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        event.policy_sha256 = Some(self.policy.sha256().to_owned());
        // Deferred: it shares the next decision's commit (one fsync per call instead of two).
        let append = self.store.append_deferred(event);
        let decision_id = call.decision_id.clone();
        self.audits.push(Box::pin(async move {
            if let Err(error) = append.await {
                tracing::error!(%error, decision_id, "AUDIT FAILURE: the outcome record of a forwarded call could not be written");
            }
            None
        }));
    }

    /// Queues a decision record; [`Session::on_audited`] continues when it is durable.
    fn audit(&mut self, id: Id, event: AuditEvent) {
        let append = self.store.append(event);
        self.audits.push(Box::pin(async move {
            Some(Audited {
                id,
                result: append.await.map(|_| ()),
            })
        }));
    }
}

/// The next signal for the server, with the server's process; never resolves without a forwarder
/// (an HTTP front has no process-wide signals to pass on per session).
async fn next_signal<'c>(
    signals: &mut Option<(
        &mut portcullis_transport::SignalForwarder,
        &'c portcullis_transport::stdio::StdioChild,
    )>,
) -> Option<(
    portcullis_transport::Signal,
    &'c portcullis_transport::stdio::StdioChild,
)> {
    match signals {
        Some((forwarder, child)) => forwarder.recv().await.map(|signal| (signal, *child)),
        None => std::future::pending().await,
    }
}

/// A random id with `prefix`: 16 bytes from the operating system, hex. Falls back to the clock
/// and process id only if the random source fails, which is logged; ids are labels, not secrets.
pub(crate) fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    if let Err(error) = getrandom::fill(&mut bytes) {
        tracing::warn!(%error, "the system random source failed; using a clock-based id");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mixed = nanos ^ (u128::from(std::process::id()) << 64);
        bytes = mixed.to_le_bytes();
    }
    format!("{prefix}{}", hex::encode(bytes))
}

/// Lines from a peer that are empty or only whitespace carry nothing; they are skipped.
fn is_blank(line: &Line) -> bool {
    matches!(line, Line::Complete(bytes) if bytes.iter().all(u8::is_ascii_whitespace))
}
