//! One HTTP client session and where its messages go: one server (`/mcp/NAME`), or all of them
//! (`/mcp`) with tools and prompts namespaced `NAME__name`.
//!
//! Every message reaches a server only through that server's [`Upstream`] session, which frames,
//! evaluates and audits it exactly as `portcullis run` does. The aggregate only rewrites the
//! namespaced name back to the server's own before that session sees (and evaluates) it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_mcp::{
    INVALID_PARAMS, Id, METHOD_NOT_FOUND, Message, Parsed, error_response, response,
};
use portcullis_policy::ReasonClass;
use portcullis_store::{AuditKind, Store};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::outbox::Outbox;
use super::upstream::{Upstream, UpstreamContext};
use crate::auth::Identity;
use crate::denial::{Denial, DenialCode};
use crate::error::GatewayError;
use crate::metrics::SharedMetrics;
use crate::record;
use crate::session::{random_id, shorten};
use crate::telemetry::Telemetry;

/// The separator of namespaced names on the aggregate endpoint. Server names cannot contain it
/// (the policy compiler refuses them), so the server part of `a__b` is always `a`.
pub const NAMESPACE_SEPARATOR: &str = "__";

/// The rule id of a refused call whose namespaced name names no server or is ambiguous.
const UNROUTABLE_RULE: &str = "unroutable-tool";

/// Which servers a client session reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/mcp/NAME`: one server, its own names.
    One(String),
    /// `/mcp`: every configured server, names namespaced.
    All,
}

/// What the HTTP front sends back for one client message.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A JSON-RPC response, sent as `application/json`.
    Json(Value),
    /// A notification or response was accepted: `202 Accepted`, no body.
    Accepted,
}

/// One client session: its principal, its route, and one server session per server reached.
pub(crate) struct ClientSession {
    pub(crate) principal: String,
    pub(crate) route: Route,
    upstreams: BTreeMap<String, Upstream>,
    /// Server-initiated messages on their way to the client's streams.
    pub(crate) outbox: Arc<Outbox>,
    store: Arc<Store>,
    audit_session: String,
    last_used: Mutex<Instant>,
    metrics: SharedMetrics,
    telemetry: Option<Arc<Telemetry>>,
    /// The protocol version `initialize` negotiated, for spans.
    protocol: Mutex<Option<String>>,
}

impl ClientSession {
    /// Starts the servers of `route` for `principal`.
    pub(crate) fn start(
        ctx: &UpstreamContext,
        identity: &Identity,
        route: Route,
    ) -> Result<Self, GatewayError> {
        let principal = identity.principal.as_str();
        let names: Vec<String> = match &route {
            Route::One(name) => vec![name.clone()],
            Route::All => ctx.policy.servers().keys().cloned().collect(),
        };
        let outbox = Arc::new(Outbox::default());
        let mut upstreams = BTreeMap::new();
        for name in names {
            let upstream = Upstream::start(ctx, &name, identity, Arc::clone(&outbox))?;
            upstreams.insert(name, upstream);
        }
        Ok(Self {
            principal: principal.to_owned(),
            route,
            upstreams,
            outbox,
            store: Arc::clone(&ctx.store),
            audit_session: random_id("h-"),
            last_used: Mutex::new(Instant::now()),
            metrics: Arc::clone(&ctx.metrics),
            telemetry: ctx.telemetry.clone(),
            protocol: Mutex::new(None),
        })
    }

    /// Marks the session as used now.
    pub(crate) fn touch(&self) {
        *self
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// How long since the last request.
    pub(crate) fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    /// Whether every server session is still running (a `kill_session` or a crashed server ends
    /// the client session too).
    pub(crate) fn is_alive(&self) -> bool {
        self.upstreams.values().all(Upstream::is_alive)
    }

    /// Ends every server session, each bounded by `grace`.
    pub(crate) async fn close(&self, grace: Duration) {
        for upstream in self.upstreams.values() {
            upstream.close(grace).await;
        }
    }

    /// Handles one strictly parsed client message, in a trace span when tracing is on (the
    /// forwarded request then carries the span's `traceparent` in `params._meta`).
    pub(crate) async fn handle(&self, parsed: &Parsed) -> Reply {
        let is_initialize =
            matches!(parsed.message(), Message::Request { method, .. } if method == "initialize");
        let reply = match &self.telemetry {
            Some(telemetry) if matches!(parsed.message(), Message::Request { .. }) => {
                let protocol = self
                    .protocol
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let span = telemetry.start(parsed, &self.audit_session, protocol.as_deref());
                let injected = span.inject(parsed);
                let reply = self.dispatch(injected.as_ref().unwrap_or(parsed)).await;
                span.finish(match &reply {
                    Reply::Json(value) => Some(value),
                    Reply::Accepted => None,
                });
                reply
            }
            _ => self.dispatch(parsed).await,
        };
        if is_initialize
            && let Reply::Json(value) = &reply
            && let Some(version) = value
                .get("result")
                .and_then(|r| r.get("protocolVersion"))
                .and_then(Value::as_str)
        {
            *self.protocol.lock().unwrap_or_else(PoisonError::into_inner) = Some(shorten(version));
        }
        reply
    }

    async fn dispatch(&self, parsed: &Parsed) -> Reply {
        let bytes = match parsed.to_bytes() {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "cannot serialize a parsed message; this is a bug, please report");
                let id = parsed.message().id().cloned();
                return Reply::Json(error_response(
                    id.as_ref(),
                    portcullis_mcp::INTERNAL_ERROR,
                    "internal error",
                    None,
                ));
            }
        };
        match (&self.route, parsed.message()) {
            (Route::One(_), Message::Request { id, .. }) => {
                let Some(upstream) = self.upstreams.values().next() else {
                    return Reply::Json(gone(id));
                };
                Reply::Json(upstream.request(id, &bytes).await)
            }
            (Route::All, Message::Request { id, method, params }) => Reply::Json(
                self.aggregate(id, method, params.as_ref(), parsed, &bytes)
                    .await,
            ),
            (_, Message::Response { id, .. } | Message::ErrorResponse { id: Some(id), .. }) => {
                // The answer to a server request the gateway passed on under its own id: back
                // to the server that asked, with that server's id. Anything else is dropped,
                // never guessed at.
                let Some((server, theirs)) = self.outbox.answered(id) else {
                    tracing::info!(%id, "dropped a client response to no request of ours");
                    return Reply::Accepted;
                };
                let mut value = parsed.value().clone();
                if let Some(object) = value.as_object_mut() {
                    object.insert("id".into(), theirs.to_value());
                }
                match (self.upstreams.get(&server), serde_json::to_vec(&value)) {
                    (Some(upstream), Ok(bytes)) => {
                        upstream.send(&bytes).await;
                    }
                    _ => {
                        tracing::warn!(server = %server, "dropped a client response for a server that is gone")
                    }
                }
                Reply::Accepted
            }
            (_, Message::ErrorResponse { id: None, .. }) => {
                tracing::info!("dropped a client error response without an id");
                Reply::Accepted
            }
            (_, _) => {
                for upstream in self.upstreams.values() {
                    upstream.send(&bytes).await;
                }
                Reply::Accepted
            }
        }
    }

    async fn aggregate(
        &self,
        id: &Id,
        method: &str,
        params: Option<&Map<String, Value>>,
        parsed: &Parsed,
        bytes: &[u8],
    ) -> Value {
        match method {
            "initialize" => self.initialize(id, bytes).await,
            "ping" => response(id, Value::Object(Map::new())),
            "tools/list" => self.list(id, params, bytes, "tools").await,
            "prompts/list" => self.list(id, params, bytes, "prompts").await,
            "tools/call" | "prompts/get" => self.call(id, method, params, parsed).await,
            "logging/setLevel" => {
                let answers = self.fan_out(id, bytes).await;
                match answers.iter().find(|(_, a)| a.get("error").is_some()) {
                    Some((_, error)) => error.clone(),
                    None => response(id, Value::Object(Map::new())),
                }
            }
            _ => {
                let message = format!(
                    "method `{}` is not available on the aggregate endpoint /mcp; use /mcp/NAME",
                    shorten(method)
                );
                error_response(Some(id), METHOD_NOT_FOUND, &message, None)
            }
        }
    }

    /// Sends one request to every server, in name order, and collects the answers.
    async fn fan_out(&self, id: &Id, bytes: &[u8]) -> Vec<(String, Value)> {
        let mut answers = Vec::with_capacity(self.upstreams.len());
        for (name, upstream) in &self.upstreams {
            answers.push((name.clone(), upstream.request(id, bytes).await));
        }
        answers
    }

    /// Initializes every server; the client sees one server, `portcullis`, whose capabilities
    /// are the tools, prompts and logging any of them offers.
    async fn initialize(&self, id: &Id, bytes: &[u8]) -> Value {
        let answers = self.fan_out(id, bytes).await;
        if let Some((name, error)) = answers.iter().find(|(_, a)| a.get("error").is_some()) {
            tracing::warn!(server = %name, "a server refused initialize on the aggregate endpoint");
            return error.clone();
        }
        let results: Vec<&Value> = answers
            .iter()
            .filter_map(|(_, a)| a.get("result"))
            .collect();
        let versions: Vec<&str> = results
            .iter()
            .filter_map(|r| r.get("protocolVersion").and_then(Value::as_str))
            .collect();
        // The client gets the oldest version any server negotiated, so it uses nothing that
        // one of them does not speak.
        let Some(version) = versions.iter().min().copied() else {
            return error_response(
                Some(id),
                portcullis_mcp::INTERNAL_ERROR,
                "no server answered initialize",
                None,
            );
        };
        if versions.len() != results.len() {
            return error_response(
                Some(id),
                portcullis_mcp::INTERNAL_ERROR,
                "a server answered initialize without a protocol version",
                None,
            );
        }
        let mut capabilities = Map::new();
        for key in ["tools", "prompts", "logging"] {
            let offered = results
                .iter()
                .any(|r| r.get("capabilities").and_then(|c| c.get(key)).is_some());
            if offered {
                capabilities.insert(key.to_owned(), Value::Object(Map::new()));
            }
        }
        let mut info = Map::new();
        info.insert("name".into(), Value::from("portcullis"));
        info.insert("version".into(), Value::from(env!("CARGO_PKG_VERSION")));
        let mut result = Map::new();
        result.insert("protocolVersion".into(), Value::from(version));
        result.insert("capabilities".into(), Value::Object(capabilities));
        result.insert("serverInfo".into(), Value::Object(info));
        response(id, Value::Object(result))
    }

    /// Lists `key` (`tools` or `prompts`) of every server, names namespaced. Entries whose own
    /// name contains the separator are left out: their namespaced name would be ambiguous.
    async fn list(
        &self,
        id: &Id,
        params: Option<&Map<String, Value>>,
        bytes: &[u8],
        key: &str,
    ) -> Value {
        if params.is_some_and(|p| p.contains_key("cursor")) {
            return error_response(
                Some(id),
                INVALID_PARAMS,
                "the aggregate endpoint lists everything in one page; it takes no cursor",
                None,
            );
        }
        let answers = self.fan_out(id, bytes).await;
        let mut merged = Vec::new();
        let mut first_error = None;
        let mut listed_any = false;
        for (server, answer) in answers {
            let Some(items) = answer
                .get("result")
                .and_then(|r| r.get(key))
                .and_then(Value::as_array)
            else {
                tracing::warn!(server = %server, "a server did not list its {key} on the aggregate endpoint");
                first_error.get_or_insert(answer);
                continue;
            };
            listed_any = true;
            if answer
                .get("result")
                .and_then(|r| r.get("nextCursor"))
                .is_some()
            {
                tracing::warn!(server = %server, "only the first page of {key} is listed on the aggregate endpoint");
            }
            for item in items {
                let Some(name) = item.get("name").and_then(Value::as_str) else {
                    continue;
                };
                if name.contains(NAMESPACE_SEPARATOR) {
                    tracing::info!(server = %server, name = %shorten(name), "left out an entry whose name is ambiguous once namespaced");
                    continue;
                }
                let mut item = item.clone();
                if let Some(object) = item.as_object_mut() {
                    object.insert(
                        "name".into(),
                        Value::from(format!("{server}{NAMESPACE_SEPARATOR}{name}")),
                    );
                }
                merged.push(item);
            }
        }
        if !listed_any && let Some(error) = first_error {
            return error;
        }
        let mut result = Map::new();
        result.insert(key.to_owned(), Value::Array(merged));
        response(id, Value::Object(result))
    }

    /// Routes a namespaced `tools/call` or `prompts/get` to its server with the server's own
    /// name; that server's session evaluates it. A name that routes nowhere is refused here,
    /// with a decision record, as a call to an unconfigured server would be.
    async fn call(
        &self,
        id: &Id,
        method: &str,
        params: Option<&Map<String, Value>>,
        parsed: &Parsed,
    ) -> Value {
        let Some(name) = params.and_then(|p| p.get("name")).and_then(Value::as_str) else {
            return error_response(
                Some(id),
                INVALID_PARAMS,
                "`params.name` must be a string",
                None,
            );
        };
        let target = name
            .split_once(NAMESPACE_SEPARATOR)
            .filter(|(_, tool)| !tool.is_empty() && !tool.contains(NAMESPACE_SEPARATOR))
            .and_then(|(server, tool)| self.upstreams.get(server).map(|u| (u, tool)));
        let Some((upstream, tool)) = target else {
            return self.refuse_unroutable(id, method, name).await;
        };
        let mut value = parsed.value().clone();
        if let Some(params) = value.get_mut("params").and_then(Value::as_object_mut) {
            params.insert("name".into(), Value::from(tool));
        }
        match serde_json::to_vec(&value) {
            Ok(bytes) => upstream.request(id, &bytes).await,
            Err(error) => {
                tracing::error!(%error, "cannot serialize a routed call; this is a bug, please report");
                error_response(
                    Some(id),
                    portcullis_mcp::INTERNAL_ERROR,
                    "internal error",
                    None,
                )
            }
        }
    }

    async fn refuse_unroutable(&self, id: &Id, method: &str, name: &str) -> Value {
        let decision_id = random_id("d-");
        let reason = format!(
            "`{}` names no configured server's tool: use `SERVER{NAMESPACE_SEPARATOR}NAME` as tools/list shows",
            shorten(name)
        );
        let server = name.split_once(NAMESPACE_SEPARATOR).map_or("", |(s, _)| s);
        let mut event = record::event(
            AuditKind::Decision,
            &decision_id,
            &self.audit_session,
            &shorten(server),
            method,
            Some(&shorten(name)),
        );
        event.principal = Some(self.principal.clone());
        event.decision = Some("deny".to_owned());
        event.rules = vec![UNROUTABLE_RULE.to_owned()];
        event.reason = Some(reason.clone());
        event.reason_class = Some(ReasonClass::ToolIdentity.as_str().to_owned());
        if let Err(error) = self.store.append(event).await {
            tracing::error!(%error, decision_id, "AUDIT FAILURE: the record of a refused call could not be written");
        }
        tracing::info!(decision_id, name = %shorten(name), "deny: unroutable name on the aggregate endpoint");
        // The name routes to no configured server, so the server label is a fixed `-`: what the
        // client sent is never a label.
        self.metrics.decision(
            ("-", crate::metrics::OTHER_TOOL),
            "deny",
            UNROUTABLE_RULE,
            None,
        );
        Denial {
            code: DenialCode::PolicyDenied,
            reason_class: ReasonClass::ToolIdentity,
            rule: UNROUTABLE_RULE.to_owned(),
            decision_id,
            reason,
            approval_id: None,
        }
        .respond(id, method)
    }
}

fn gone(id: &Id) -> Value {
    error_response(
        Some(id),
        portcullis_mcp::INTERNAL_ERROR,
        "the server's session has ended",
        None,
    )
}
