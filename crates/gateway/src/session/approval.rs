//! `require_approval` in the session: leases, retry, hold, progress and elicitation.
//!
//! Every path here ends in exactly one of: the call is forwarded after an `allow` record naming
//! the approval or lease is durable; or it is refused after its record is durable. A store error,
//! a digest that cannot be computed, or anything unexpected refuses the call.

use std::collections::HashMap;
use std::sync::Arc;

use portcullis_mcp::{Id, Parsed};
use portcullis_policy::model::ApprovalMode;
use portcullis_policy::{Call, Decision, Evaluation, ReasonClass};
use portcullis_store::{
    Approval, AuditEvent, Channel, Created, NewApproval, Resolution, Store, StoreError, Taken,
};
use portcullis_transport::LineSink;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{Action, CallInfo, Pending, Session, Stage, random_id};
use crate::approvals::{
    DEFAULT_APPROVAL_TTL, DEFAULT_HOLD_TIMEOUT, HEARTBEAT_INTERVAL, MAX_PENDING_PER_SESSION,
    PROGRESS_INTERVAL, call_digest, lease_covers,
};
use crate::denial::{Denial, DenialCode};

/// A call waiting for a human.
#[derive(Debug)]
struct Held {
    approval_id: String,
    deadline: Instant,
    progress_token: Option<Value>,
    progress: u64,
    next_progress: Instant,
    bytes: Vec<u8>,
    event: AuditEvent,
    info: CallInfo,
    method: String,
    rule: String,
}

/// The approval state of one session.
pub(crate) struct Approvals {
    store: Arc<Store>,
    /// The client declared the `elicitation` capability, and its name.
    elicitation: Option<String>,
    held: HashMap<Id, Held>,
    /// Our `elicitation/create` request ids → the held call they ask about.
    elicits: HashMap<Id, Id>,
    last_heartbeat: Option<Instant>,
    /// The heartbeat write in flight, if any. It runs in the background: a store that waits on a
    /// lock (up to its busy timeout) must not stall the session, which has to keep answering.
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Approvals {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            elicitation: None,
            held: HashMap::new(),
            elicits: HashMap::new(),
            last_heartbeat: None,
            heartbeat: None,
        }
    }
}

/// Runs `f` on the store off the async threads.
async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Bug {
            what: "an approvals task failed",
        }),
    }
}

/// Public reasons (the agent reads them).
fn pending_reason(id: &str) -> String {
    format!(
        "this call needs a human's approval; approval {id} is pending. Ask a human to approve it (`portcullis approvals approve {id}`), then retry the identical call: only the identical call, once, is covered"
    )
}

impl<W: LineSink> Session<W> {
    /// Records whether the client can be asked through elicitation.
    pub(super) fn note_client_capabilities(
        &mut self,
        capabilities: &Map<String, Value>,
        name: &str,
    ) {
        if capabilities.contains_key("elicitation") {
            self.approvals.elicitation = Some(name.to_owned());
        }
    }

    /// Handles an enforced `require_approval`: a lease, an approval already given, or a new
    /// pending approval (retry: denied now; hold: the call waits).
    #[expect(
        clippy::too_many_arguments,
        reason = "the pieces of one evaluated call"
    )]
    pub(super) async fn on_require_approval(
        &mut self,
        id: Id,
        method: &str,
        params: Option<&Map<String, Value>>,
        call: &Call,
        eval: &Evaluation,
        parsed: &Parsed,
        info: CallInfo,
        mut event: AuditEvent,
    ) {
        let rule = eval
            .rules
            .first()
            .cloned()
            .unwrap_or_else(|| "default-deny".to_owned());
        let bytes = match parsed.to_bytes() {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "cannot serialize a parsed message; this is a bug, please report");
                return self.refuse_internal(id, method, info, event).await;
            }
        };
        let store = Arc::clone(&self.approvals.store);

        // 1. A lease of this session or principal that covers the call.
        let (session, principal, server) = (
            self.session_id.clone(),
            call.principal.clone(),
            call.server.clone(),
        );
        let leases = blocking(&store, move |s| {
            s.candidate_leases(&session, principal.as_deref(), &server)
        })
        .await;
        let leases = match leases {
            Ok(leases) => leases,
            Err(error) => {
                tracing::error!(%error, "cannot read leases; the call is denied");
                return self.refuse_internal(id, method, info, event).await;
            }
        };
        for lease in leases {
            if !lease_covers(&self.policy, &lease, call) {
                continue;
            }
            let lease_id = lease.id.clone();
            match blocking(&store, move |s| s.use_lease(&lease_id)).await {
                Ok(true) => {
                    tracing::info!(decision_id = %info.decision_id, lease = %lease.id, "allowed by a scope lease");
                    event.decision = Some(Decision::Allow.as_str().to_owned());
                    event.lease_id = Some(lease.id.clone());
                    event.reason_class = None;
                    event.reason = Some(format!(
                        "{}; allowed by lease {} (granted by {})",
                        eval.reason, lease.id, lease.granted_by
                    ));
                    return self.commit(id, method, info, event, Action::Forward(bytes));
                }
                Ok(false) => continue,
                Err(error) => {
                    tracing::error!(%error, "cannot use a lease; the call is denied");
                    return self.refuse_internal(id, method, info, event).await;
                }
            }
        }

        // 2. The digest that binds an approval to exactly this call.
        let digest = match call_digest(call) {
            Ok(digest) => digest,
            Err(error) => {
                let denial = Denial {
                    code: DenialCode::ApprovalUnavailable,
                    reason_class: ReasonClass::Approval,
                    rule,
                    decision_id: info.decision_id.clone(),
                    reason: format!(
                        "this call needs a human's approval, but it cannot be bound to an approval: {error}"
                    ),
                    approval_id: None,
                };
                event.decision = Some(Decision::Deny.as_str().to_owned());
                event.reason = Some(format!("{}; {error}: denied", eval.reason));
                return self.commit(
                    id,
                    method,
                    info,
                    event,
                    Action::Refuse {
                        denial,
                        kill: false,
                    },
                );
            }
        };

        // 3. An approval already given for this call (the retry).
        let (d, s) = (digest.clone(), self.session_id.clone());
        match blocking(&store, move |st| st.consume(&d, &s)).await {
            Ok(Some(approval)) => {
                return self.allow_approved(
                    id,
                    method,
                    info,
                    event,
                    &eval.reason,
                    &approval,
                    bytes,
                );
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%error, "cannot read approvals; the call is denied");
                return self.refuse_internal(id, method, info, event).await;
            }
        }

        // 4. A pending approval.
        let spec = eval.approval.clone();
        let mode = spec
            .as_ref()
            .and_then(|s| s.mode)
            .unwrap_or(ApprovalMode::Hold);
        let ttl = spec
            .as_ref()
            .and_then(|s| s.ttl)
            .map_or(DEFAULT_APPROVAL_TTL, |d| d.as_duration());
        let timeout = spec
            .as_ref()
            .and_then(|s| s.timeout)
            .map_or(DEFAULT_HOLD_TIMEOUT, |d| d.as_duration());
        let separate = spec
            .as_ref()
            .and_then(|s| s.separate_approver)
            .unwrap_or(false);
        let new = NewApproval {
            id: random_id("a-"),
            digest,
            session: self.session_id.clone(),
            principal: call.principal.clone(),
            server: call.server.clone(),
            tool: call.tool.clone(),
            method: method.to_owned(),
            arguments: Value::Object(call.arguments.clone()),
            effect: eval.effect.as_str().to_owned(),
            rule: eval.rules.join(","),
            reason: eval.reason.clone(),
            mode: match mode {
                ApprovalMode::Hold => "hold",
                ApprovalMode::Retry => "retry",
            }
            .to_owned(),
            separate_approver: separate,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            decision_id: info.decision_id.clone(),
        };
        let session = self.session_id.clone();
        let created = blocking(&store, move |s| {
            s.heartbeat(&session)?;
            s.create_pending(&new, MAX_PENDING_PER_SESSION)
        })
        .await;
        self.approvals.last_heartbeat = Some(Instant::now());
        let approval = match created {
            Ok(Created::New(approval) | Created::Existing(approval)) => approval,
            Ok(Created::CapReached { cap }) => {
                let denial = Denial {
                    code: DenialCode::ApprovalUnavailable,
                    reason_class: ReasonClass::Approval,
                    rule,
                    decision_id: info.decision_id.clone(),
                    reason: format!(
                        "this call needs a human's approval, and this session already has {cap} approvals waiting; wait for them to be resolved"
                    ),
                    approval_id: None,
                };
                event.decision = Some(Decision::Deny.as_str().to_owned());
                event.reason = Some(format!(
                    "{}; pending approval cap of {cap} reached: denied",
                    eval.reason
                ));
                return self.commit(
                    id,
                    method,
                    info,
                    event,
                    Action::Refuse {
                        denial,
                        kill: false,
                    },
                );
            }
            Err(error) => {
                tracing::error!(%error, "cannot record a pending approval; the call is denied");
                return self.refuse_internal(id, method, info, event).await;
            }
        };
        event.approval_id = Some(approval.id.clone());
        tracing::info!(
            decision_id = %info.decision_id, approval = %approval.id, mode = %approval.mode,
            "the call needs a human's approval: portcullis approvals approve {}", approval.id
        );

        if mode == ApprovalMode::Retry {
            let denial = Denial {
                code: DenialCode::ApprovalPending,
                reason_class: ReasonClass::Approval,
                rule,
                decision_id: info.decision_id.clone(),
                reason: pending_reason(&approval.id),
                approval_id: Some(approval.id.clone()),
            };
            event.decision = Some(Decision::RequireApproval.as_str().to_owned());
            event.reason = Some(format!(
                "{}; approval {} pending (retry)",
                eval.reason, approval.id
            ));
            return self.commit(
                id,
                method,
                info,
                event,
                Action::Refuse {
                    denial,
                    kill: false,
                },
            );
        }

        // Hold: the call waits in `pending`; the tick polls the store.
        let progress_token = params
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get("progressToken"))
            .filter(|t| t.is_string() || t.is_number())
            .cloned();
        let now = Instant::now();
        self.pending.insert(
            id.clone(),
            Pending {
                method: method.to_owned(),
                stage: Stage::Held,
                call: Some(info.clone()),
            },
        );
        let elicit = self.approvals.elicitation.is_some() && !separate;
        self.approvals.held.insert(
            id.clone(),
            Held {
                approval_id: approval.id.clone(),
                deadline: now + timeout,
                progress_token,
                progress: 0,
                next_progress: now,
                bytes,
                event,
                info,
                method: method.to_owned(),
                rule,
            },
        );
        if elicit {
            self.elicit(&id, &approval).await;
        }
    }

    /// Asks the human in the client (MCP elicitation) about held call `held_id`.
    async fn elicit(&mut self, held_id: &Id, approval: &Approval) {
        let request_id = Id::String(random_id("portcullis-elicit-"));
        let arguments =
            serde_json::to_string_pretty(&approval.arguments).unwrap_or_else(|_| "?".to_owned());
        let message = format!(
            "Portcullis: the agent wants to call `{}` on server `{}` (effect: {}).\nRule: {}\nExact arguments:\n{}\n\nApprove this one call?",
            approval.tool, approval.server, approval.effect, approval.rule, arguments
        );
        let request = json!({
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "elicitation/create",
            "params": {
                "message": message,
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "approve": {
                            "type": "boolean",
                            "title": "Approve this call",
                            "description": format!("approve approval {} (this exact call, once)", approval.id),
                            "default": false
                        }
                    },
                    "required": ["approve"]
                }
            }
        });
        self.approvals.elicits.insert(request_id, held_id.clone());
        self.send_client(&request).await;
    }

    /// The client's answer to one of our elicitation requests; `false` if `id` is not ours.
    pub(super) async fn on_elicitation_response(&mut self, id: Option<&Id>, value: &Value) -> bool {
        let Some(held_id) = id.and_then(|id| self.approvals.elicits.remove(id)) else {
            return false;
        };
        let Some(held) = self.approvals.held.get(&held_id) else {
            return true;
        };
        let result = value.get("result");
        let action = result.and_then(|r| r.get("action")).and_then(Value::as_str);
        let approved = result
            .and_then(|r| r.get("content"))
            .and_then(|c| c.get("approve"))
            .and_then(Value::as_bool);
        let approve = match (action, approved) {
            (Some("accept"), Some(true)) => true,
            (Some("accept" | "decline" | "cancel"), _) => false,
            // An error or an odd answer resolves nothing: other channels can still decide.
            _ => {
                tracing::warn!(approval = %held.approval_id, "the client's elicitation answer was not an answer; the call keeps waiting");
                return true;
            }
        };
        let resolution = Resolution {
            approve,
            approver: format!(
                "elicitation:{}",
                self.approvals.elicitation.clone().unwrap_or_default()
            ),
            channel: Channel::Elicitation,
            note: Some(format!(
                "answered in the client ({})",
                action.unwrap_or("?")
            )),
        };
        let approval_id = held.approval_id.clone();
        let store = Arc::clone(&self.approvals.store);
        let aid = approval_id.clone();
        match tokio::task::spawn_blocking(move || store.resolve(&aid, &resolution)).await {
            Ok(Ok(receipt)) => {
                tracing::info!(approval = %approval_id, receipt = %receipt.body.id, decision = %receipt.body.decision, "resolved through elicitation");
            }
            Ok(Err(error)) => {
                tracing::warn!(approval = %approval_id, %error, "the elicitation answer was not accepted");
            }
            Err(_) => tracing::error!("an approvals task failed; this is a bug, please report"),
        }
        self.poll_held().await;
        true
    }

    /// The periodic approvals work: heartbeat, held calls, progress.
    pub(super) async fn approvals_tick(&mut self) {
        let now = Instant::now();
        let due = self
            .approvals
            .last_heartbeat
            .is_none_or(|at| now.duration_since(at) >= HEARTBEAT_INTERVAL);
        let idle = self
            .approvals
            .heartbeat
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished);
        if due && idle {
            self.approvals.last_heartbeat = Some(now);
            let session = self.session_id.clone();
            let store = Arc::clone(&self.approvals.store);
            self.approvals.heartbeat = Some(tokio::spawn(async move {
                if let Err(error) = blocking(&store, move |s| s.heartbeat(&session)).await {
                    tracing::warn!(%error, "cannot record the session heartbeat; pending approvals may expire");
                }
            }));
        }
        if !self.approvals.held.is_empty() {
            self.poll_held().await;
        }
    }

    /// Looks up every held call's approval and acts on the resolved or timed-out ones.
    async fn poll_held(&mut self) {
        let now = Instant::now();
        let ids: Vec<(Id, String, bool)> = self
            .approvals
            .held
            .iter()
            .map(|(id, h)| (id.clone(), h.approval_id.clone(), now >= h.deadline))
            .collect();
        if ids.is_empty() {
            return;
        }
        let results = blocking(&self.approvals.store, move |s| {
            let mut out = Vec::new();
            for (id, approval_id, timed_out) in ids {
                let taken = s.take(&approval_id);
                if timed_out && matches!(taken, Ok(Taken::Pending)) {
                    s.expire(&approval_id, "the held call timed out")?;
                }
                out.push((id, taken, timed_out));
            }
            Ok(out)
        })
        .await;
        let results = match results {
            Ok(results) => results,
            Err(error) => {
                tracing::error!(%error, "cannot read approvals; every held call is denied");
                let ids: Vec<Id> = self.approvals.held.keys().cloned().collect();
                for id in ids {
                    self.release(
                        &id,
                        Err("the gateway could not read its approvals".to_owned()),
                    )
                    .await;
                }
                return;
            }
        };
        for (id, taken, timed_out) in results {
            match taken {
                Ok(Taken::Approved(approval)) => self.release(&id, Ok(approval)).await,
                Ok(Taken::Refused(approval)) => {
                    let why = match approval.state.as_str() {
                        "denied" => format!(
                            "a human denied it{}",
                            approval
                                .note
                                .as_deref()
                                .map(|n| format!(" ({n})"))
                                .unwrap_or_default()
                        ),
                        state => format!("approval {} is {state}", approval.id),
                    };
                    self.release(&id, Err(why)).await;
                }
                Ok(Taken::Pending) if timed_out => {
                    self.release(&id, Err("no human approved it in time".to_owned()))
                        .await;
                }
                Ok(Taken::Pending) => self.progress(&id).await,
                Err(error) => {
                    tracing::error!(%error, "cannot read an approval; the held call is denied");
                    self.release(
                        &id,
                        Err("the gateway could not read its approval".to_owned()),
                    )
                    .await;
                }
            }
        }
    }

    async fn progress(&mut self, id: &Id) {
        let now = Instant::now();
        let Some(held) = self.approvals.held.get_mut(id) else {
            return;
        };
        let Some(token) = held.progress_token.clone() else {
            return;
        };
        if now < held.next_progress {
            return;
        }
        held.next_progress = now + PROGRESS_INTERVAL;
        held.progress += 1;
        let notification = json!({
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {
                "progressToken": token,
                "progress": held.progress,
                "message": format!("waiting for a human to approve (approval {})", held.approval_id),
            }
        });
        self.send_client(&notification).await;
    }

    /// Ends the wait of held call `id`: forwarded after an `allow` record, or refused.
    async fn release(&mut self, id: &Id, outcome: Result<Approval, String>) {
        let Some(held) = self.approvals.held.remove(id) else {
            return;
        };
        self.approvals.elicits.retain(|_, held_id| held_id != id);
        // The call moves from `Held` back to the audit stage.
        self.pending.remove(id);
        let Held {
            approval_id,
            bytes,
            mut event,
            info,
            method,
            rule,
            ..
        } = held;
        match outcome {
            Ok(approval) => {
                let reason = event.reason.clone().unwrap_or_default();
                self.allow_approved(id.clone(), &method, info, event, &reason, &approval, bytes);
            }
            Err(why) => {
                tracing::info!(decision_id = %info.decision_id, approval = %approval_id, "held call denied: {why}");
                let denial = Denial {
                    code: DenialCode::ApprovalDenied,
                    reason_class: ReasonClass::Approval,
                    rule,
                    decision_id: info.decision_id.clone(),
                    reason: format!(
                        "this call needed a human's approval and was not approved: {why}"
                    ),
                    approval_id: Some(approval_id.clone()),
                };
                event.decision = Some(Decision::Deny.as_str().to_owned());
                event.reason = Some(format!(
                    "{}; approval {approval_id}: {why}: denied",
                    event.reason.clone().unwrap_or_default()
                ));
                self.commit(
                    id.clone(),
                    &method,
                    info,
                    event,
                    Action::Refuse {
                        denial,
                        kill: false,
                    },
                );
            }
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the pieces of one evaluated call"
    )]
    fn allow_approved(
        &mut self,
        id: Id,
        method: &str,
        info: CallInfo,
        mut event: AuditEvent,
        base_reason: &str,
        approval: &Approval,
        bytes: Vec<u8>,
    ) {
        tracing::info!(decision_id = %info.decision_id, approval = %approval.id, "allowed by a human's approval");
        event.decision = Some(Decision::Allow.as_str().to_owned());
        event.approval_id = Some(approval.id.clone());
        event.reason_class = None;
        event.reason = Some(format!(
            "{}; approved by {} through {} (approval {}, receipt {})",
            base_reason,
            approval.approver.as_deref().unwrap_or("?"),
            approval.channel.as_deref().unwrap_or("?"),
            approval.id,
            approval.receipt_id.as_deref().unwrap_or("?"),
        ));
        self.commit(id, method, info, event, Action::Forward(bytes));
    }

    /// Queues the decision record; the action runs when it is durable.
    fn commit(&mut self, id: Id, method: &str, info: CallInfo, event: AuditEvent, action: Action) {
        self.pending.insert(
            id.clone(),
            Pending {
                method: method.to_owned(),
                stage: Stage::AwaitingAudit(action),
                call: Some(info),
            },
        );
        self.audit(id, event);
    }

    async fn refuse_internal(
        &mut self,
        id: Id,
        method: &str,
        info: CallInfo,
        mut event: AuditEvent,
    ) {
        let denial = self.internal_denial(&info.decision_id);
        event.decision = Some(Decision::Deny.as_str().to_owned());
        event.reason_class = Some(ReasonClass::Internal.as_str().to_owned());
        self.commit(
            id,
            method,
            info,
            event,
            Action::Refuse {
                denial,
                kill: false,
            },
        );
    }

    /// Marks this session ended in the store: its open approvals expire.
    pub(super) async fn end_approvals(&mut self) {
        let session = self.session_id.clone();
        if let Err(error) = blocking(&self.approvals.store, move |s| s.end_session(&session)).await
        {
            tracing::warn!(%error, "cannot record the end of the session; its approvals expire when its heartbeat goes stale");
        }
    }
}
