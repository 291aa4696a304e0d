//! The evaluated methods: build the call, decide, record durably, then forward or refuse.

use portcullis_mcp::{
    ClientMethod, Id, Parsed, PromptGetParams, ResourceReadParams, ToolCallParams,
};
use portcullis_policy::{Call, Decision, EvalContext, Evaluation, Mode, ReasonClass, evaluate};
use portcullis_store::{AuditKind, Grant};
use portcullis_transport::LineSink;
use serde_json::{Map, Value};

use super::{Action, Audited, CallInfo, Pending, Session, SessionEnd, Stage, random_id};
use crate::denial::{Denial, DenialCode};
use crate::limits::{self, LimitOutcome};
use crate::record;
use crate::resolver::FsResolver;

/// Public reason when a rule asks for an approval, which this build cannot obtain.
/// Public reason for a `require_approval` that is not being asked (observe mode, where nothing is
/// held, or a call refused before a human could be asked).
const APPROVAL_UNAVAILABLE: &str = "this call needs a human's approval";
/// Public reason when a rate limit or budget is exhausted.
const LIMIT_EXCEEDED: &str = "this call is over a rate limit or budget; try again later";
/// Public reason when a limit's amount argument cannot be read.
const LIMIT_BAD_AMOUNT: &str = "this call's budget argument is missing or not a whole number";
/// Public reason when a counter could not be read or written.
const LIMIT_FAILED: &str =
    "the gateway could not check a rate limit for this call, so it was not forwarded";
/// Public reason when the decision record could not be written.
const AUDIT_FAILED: &str =
    "the gateway could not record this call in its audit log, so it was not forwarded";

/// What the gateway does with one evaluation, after the features this build lacks are applied.
struct Verdict {
    decision: Decision,
    code: DenialCode,
    class: ReasonClass,
    rule: String,
    public: String,
    reason: String,
}

impl Verdict {
    /// Turns `require_approval` into a denial: approvals arrive in a later build, and until then
    /// the only fail-closed reading of them is "no". Limits are applied afterwards, by
    /// [`Verdict::limited`].
    fn of(eval: &Evaluation) -> Self {
        let first = eval
            .rules
            .first()
            .cloned()
            .unwrap_or_else(|| "default-deny".to_owned());
        let verdict = |decision, code, class, rule: String, public: &str, reason: String| Verdict {
            decision,
            code,
            class,
            rule,
            public: public.to_owned(),
            reason,
        };
        match eval.decision {
            // Limits are reserved after evaluation, in `apply_limits`.
            Decision::Allow => verdict(
                Decision::Allow,
                DenialCode::PolicyDenied,
                eval.reason_class,
                first,
                &eval.public_reason,
                eval.reason.clone(),
            ),
            Decision::RequireApproval => verdict(
                Decision::Deny,
                DenialCode::ApprovalUnavailable,
                ReasonClass::Approval,
                first,
                APPROVAL_UNAVAILABLE,
                format!("{}; needs a human's approval", eval.reason),
            ),
            Decision::Deny => verdict(
                Decision::Deny,
                DenialCode::PolicyDenied,
                eval.reason_class,
                first,
                &eval.public_reason,
                eval.reason.clone(),
            ),
            Decision::KillSession => verdict(
                Decision::KillSession,
                DenialCode::SessionKilled,
                eval.reason_class,
                first,
                &eval.public_reason,
                eval.reason.clone(),
            ),
        }
    }
}

impl Verdict {
    /// Applies the outcome of the limit reservation to an allow.
    fn limited(self, outcome: LimitOutcome) -> (Self, Vec<Grant>) {
        let deny = |code, class, rule: String, public: &str, reason: String| Verdict {
            decision: Decision::Deny,
            code,
            class,
            rule,
            public: public.to_owned(),
            reason,
        };
        match outcome {
            LimitOutcome::Granted(grants) => (self, grants),
            LimitOutcome::Exceeded { rule, detail } => (
                deny(
                    DenialCode::LimitExceeded,
                    ReasonClass::RateLimit,
                    rule,
                    LIMIT_EXCEEDED,
                    format!("{}; {detail}: denied", self.reason),
                ),
                Vec::new(),
            ),
            LimitOutcome::BadAmount { rule, detail } => (
                deny(
                    DenialCode::PolicyDenied,
                    ReasonClass::Argument,
                    rule,
                    LIMIT_BAD_AMOUNT,
                    format!("{}; {detail}: denied", self.reason),
                ),
                Vec::new(),
            ),
            LimitOutcome::Failed(error) => {
                tracing::error!(%error, "a rate-limit counter could not be read or written; the call is denied");
                (
                    deny(
                        DenialCode::Internal,
                        ReasonClass::Internal,
                        "internal-error".to_owned(),
                        LIMIT_FAILED,
                        format!(
                            "{}; the limit counter failed ({error}): denied",
                            self.reason
                        ),
                    ),
                    Vec::new(),
                )
            }
        }
    }
}

impl<W: LineSink> Session<W> {
    pub(super) async fn on_evaluated(
        &mut self,
        id: Id,
        class: ClientMethod,
        method: &str,
        params: Option<&Map<String, Value>>,
        parsed: &Parsed,
    ) {
        let started = std::time::Instant::now();
        let read = match class {
            ClientMethod::ResourcesRead => {
                ResourceReadParams::parse(&id, params).map(|p| (p.uri, Map::new()))
            }
            ClientMethod::PromptsGet => PromptGetParams::parse(&id, params)
                .map(|p| (p.name, p.arguments.unwrap_or_default())),
            _ => ToolCallParams::parse(&id, params)
                .map(|p| (p.name, p.arguments.unwrap_or_default())),
        };
        let (tool, arguments) = match read {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(%id, %error, "refused a request with malformed params");
                self.send_client(&error.to_response()).await;
                return;
            }
        };

        if class == ClientMethod::ToolsCall
            && let Ok(bytes) = parsed.to_bytes()
            && self.park_if_listing(&tool, &bytes)
        {
            return;
        }
        let vet_denial = if class == ClientMethod::ToolsCall {
            self.vet_call(&tool, &arguments)
        } else {
            None
        };

        let call = Call {
            server: self.server.clone(),
            tool: tool.clone(),
            method: method.to_owned(),
            arguments,
            // The HTTP front's authenticated principal, or `run --principal`.
            principal: self.principal.clone(),
            agent: self.agent.clone(),
            session: Some(self.session_id.clone()),
            labels: self.labels.clone(),
            time: Some(jiff::Timestamp::now()),
            hints: if class == ClientMethod::ToolsCall {
                self.vet.hints.get(&tool).copied()
            } else {
                None
            },
        };
        let resolver = FsResolver::new();
        let eval = evaluate(
            &self.policy,
            &call,
            &EvalContext {
                resolver: Some(&resolver),
            },
        );
        let mut verdict = Verdict::of(&eval);
        // A tool that failed vetting (changed, poisoned, schema) is denied even when a rule would
        // have asked a human: nobody should be asked to approve a call to a tool we distrust.
        let vetted_out = vet_denial.is_some() && verdict.decision <= Decision::RequireApproval;
        if let Some(vet) = vet_denial
            && verdict.decision <= Decision::RequireApproval
        {
            verdict = Verdict {
                decision: Decision::Deny,
                code: DenialCode::PolicyDenied,
                class: vet.class,
                rule: vet.rule.to_owned(),
                public: vet.public.to_owned(),
                reason: vet.reason,
            };
        }
        let enforced = eval.mode == Mode::Enforce;
        let approval_path = eval.decision == Decision::RequireApproval && enforced && !vetted_out;
        let mut grants = Vec::new();
        let mut limit_refused = false;
        if (verdict.decision == Decision::Allow || approval_path) && !eval.limits.is_empty() {
            // Limits on an approval rule are reserved before the human is asked: a budget that is
            // already spent is refused at once, and the reservation is given back if the call is
            // then refused.
            let outcome = limits::reserve(&self.store, &eval.limits, &call).await;
            limit_refused = !matches!(outcome, LimitOutcome::Granted(_));
            (verdict, grants) = verdict.limited(outcome);
        }
        let decision_id = random_id("d-");

        let mut event = record::event(
            AuditKind::Decision,
            &decision_id,
            &self.session_id,
            &self.server,
            method,
            Some(&tool),
        );
        event.principal.clone_from(&self.principal);
        event.effect = Some(eval.effect.as_str().to_owned());
        event.args_digest = Some(record::args_digest(&call.arguments));
        event.args_redacted = Some(record::redact_args(&call.arguments));
        event.decision = Some(verdict.decision.as_str().to_owned());
        event.enforced = enforced;
        event.rules = eval.rules.clone();
        event.reason = Some(verdict.reason.clone());
        event.reason_class =
            (verdict.decision != Decision::Allow).then(|| verdict.class.as_str().to_owned());
        event.policy_sha256 = Some(self.policy.sha256().to_owned());
        event.principal = call.principal.clone();

        let counted = if approval_path && !limit_refused {
            Decision::RequireApproval
        } else {
            verdict.decision
        };
        self.metrics.decision(
            (
                &self.server,
                crate::metrics::tool_label(&self.policy, &self.server, &tool),
            ),
            counted.as_str(),
            &verdict.rule,
            Some(started.elapsed()),
        );

        // approvals: begin
        if approval_path && !limit_refused {
            let info = CallInfo {
                decision_id,
                tool,
                taint: eval.taint.clone(),
                grants,
            };
            self.on_require_approval(id, method, params, &call, &eval, parsed, info, event)
                .await;
            return;
        }
        // approvals: end

        let action = if verdict.decision == Decision::Allow || !enforced {
            if verdict.decision != Decision::Allow {
                tracing::warn!(
                    decision_id, tool = %super::client::shorten(&tool), rule = %verdict.rule,
                    "WOULD DENY ({}, {}): {} (observe mode: forwarded anyway)",
                    verdict.decision, verdict.class, verdict.reason
                );
            }
            match parsed.to_bytes() {
                Ok(bytes) => Action::Forward(bytes),
                Err(error) => {
                    tracing::error!(%error, "cannot serialize a parsed message; this is a bug, please report");
                    Action::Refuse {
                        denial: self.internal_denial(&decision_id),
                        kill: false,
                    }
                }
            }
        } else {
            tracing::info!(
                decision_id, tool = %super::client::shorten(&tool), rule = %verdict.rule,
                "{} ({}): {}", verdict.decision, verdict.class, verdict.reason
            );
            Action::Refuse {
                denial: Denial {
                    code: verdict.code,
                    reason_class: verdict.class,
                    rule: verdict.rule.clone(),
                    decision_id: decision_id.clone(),
                    reason: verdict.public.clone(),
                    approval_id: None,
                },
                kill: verdict.decision == Decision::KillSession,
            }
        };
        self.pending.insert(
            id.clone(),
            Pending {
                method: method.to_owned(),
                stage: Stage::AwaitingAudit(action),
                call: Some(CallInfo {
                    decision_id,
                    tool,
                    taint: eval.taint.clone(),
                    grants,
                }),
            },
        );
        self.audit(id, event);
    }

    pub(super) fn internal_denial(&self, decision_id: &str) -> Denial {
        Denial {
            code: DenialCode::Internal,
            reason_class: ReasonClass::Internal,
            rule: "internal-error".to_owned(),
            decision_id: decision_id.to_owned(),
            reason: AUDIT_FAILED.to_owned(),
            approval_id: None,
        }
    }

    /// The decision record of `audited.id` is durable (or failed): act on the decision.
    pub(super) async fn on_audited(&mut self, audited: Audited) {
        let Audited { id, result } = audited;
        let Some(entry) = self.pending.get_mut(&id) else {
            return;
        };
        let Stage::AwaitingAudit(action) = std::mem::replace(
            &mut entry.stage,
            Stage::Forwarded(tokio::time::Instant::now()),
        ) else {
            return;
        };
        let method = entry.method.clone();
        let decision_id = entry
            .call
            .as_ref()
            .map(|c| c.decision_id.clone())
            .unwrap_or_default();
        match (result, action) {
            (Err(error), action) => {
                tracing::error!(%error, decision_id, "AUDIT FAILURE: the decision record could not be written; the call is denied");
                if let Some(entry) = self.pending.remove(&id)
                    && let Some(call) = entry.call
                {
                    limits::release(&self.store, call.grants);
                }
                let denial = self.internal_denial(&decision_id);
                self.send_client(&denial.respond(&id, &method)).await;
                if let Action::Refuse { kill: true, .. } = action {
                    self.kill().await;
                }
            }
            (Ok(()), Action::Forward(bytes)) => self.send_upstream(&id, &bytes).await,
            (Ok(()), Action::Refuse { denial, kill }) => {
                // A refused call gives back what was reserved for it (approval-path refusals).
                if let Some(entry) = self.pending.remove(&id)
                    && let Some(call) = entry.call
                {
                    limits::release(&self.store, call.grants);
                }
                self.send_client(&denial.respond(&id, &method)).await;
                if kill {
                    self.kill().await;
                } else if denial.reason_class != ReasonClass::Internal
                    && self.trips.denied(
                        self.policy.kill_after(&self.server),
                        std::time::Instant::now(),
                    )
                {
                    tracing::warn!("kill_after: too many denials in this session; ending it");
                    self.kill().await;
                }
            }
        }
    }

    /// Ends the session on a `kill_session` decision: every other pending call is refused.
    async fn kill(&mut self) {
        tracing::warn!("the policy ended this session (kill_session); closing the server");
        self.fail_pending("the session was ended by policy", "session_killed")
            .await;
        self.end = Some(SessionEnd::Killed);
    }
}
