//! The evaluated methods: build the call, decide, record durably, then forward or refuse.

use portcullis_mcp::{
    ClientMethod, Id, Parsed, PromptGetParams, ResourceReadParams, ToolCallParams,
};
use portcullis_policy::{Call, Decision, EvalContext, Evaluation, Mode, ReasonClass, evaluate};
use portcullis_store::AuditKind;
use serde_json::{Map, Value};
use tokio::io::AsyncWrite;

use super::{Action, Audited, CallInfo, Pending, Session, SessionEnd, Stage, random_id};
use crate::denial::{Denial, DenialCode};
use crate::record;
use crate::resolver::FsResolver;

/// Public reason when a rule asks for an approval, which this build cannot obtain.
const APPROVAL_UNAVAILABLE: &str = "this call needs a human's approval, and approvals are not available in this build of portcullis";
/// Public reason when a rule puts a limit on the call, which this build cannot enforce.
const LIMIT_UNAVAILABLE: &str =
    "this call is subject to a rate limit or budget, and limits are not enforced by this build yet";
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
    /// Turns `require_approval` and limited allows into denials: approvals and limits arrive in a
    /// later build, and until then the only fail-closed reading of them is "no".
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
            Decision::Allow => match eval.limits.first() {
                Some((rule, _)) => verdict(
                    Decision::Deny,
                    DenialCode::LimitUnavailable,
                    ReasonClass::RateLimit,
                    rule.clone(),
                    LIMIT_UNAVAILABLE,
                    format!(
                        "{}; rule `{rule}` sets a limit, and limits are not enforced by this build yet: denied",
                        eval.reason
                    ),
                ),
                None => verdict(
                    Decision::Allow,
                    DenialCode::PolicyDenied,
                    eval.reason_class,
                    first,
                    &eval.public_reason,
                    eval.reason.clone(),
                ),
            },
            Decision::RequireApproval => verdict(
                Decision::Deny,
                DenialCode::ApprovalUnavailable,
                ReasonClass::Approval,
                first,
                APPROVAL_UNAVAILABLE,
                format!(
                    "{}; approvals are not available in this build: denied",
                    eval.reason
                ),
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

impl<W: AsyncWrite + Unpin> Session<W> {
    pub(super) async fn on_evaluated(
        &mut self,
        id: Id,
        class: ClientMethod,
        method: &str,
        params: Option<&Map<String, Value>>,
        parsed: &Parsed,
    ) {
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

        let call = Call {
            server: self.server.clone(),
            tool: tool.clone(),
            method: method.to_owned(),
            arguments,
            principal: self.principal.clone(),
            agent: None,
            session: Some(self.session_id.clone()),
            labels: self.labels.clone(),
            time: Some(jiff::Timestamp::now()),
        };
        let resolver = FsResolver::new();
        let eval = evaluate(
            &self.policy,
            &call,
            &EvalContext {
                resolver: Some(&resolver),
            },
        );
        let verdict = Verdict::of(&eval);
        let enforced = eval.mode == Mode::Enforce;
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
                }),
            },
        );
        self.audit(id, event);
    }

    fn internal_denial(&self, decision_id: &str) -> Denial {
        Denial {
            code: DenialCode::Internal,
            reason_class: ReasonClass::Internal,
            rule: "internal-error".to_owned(),
            decision_id: decision_id.to_owned(),
            reason: AUDIT_FAILED.to_owned(),
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
                self.pending.remove(&id);
                let denial = self.internal_denial(&decision_id);
                self.send_client(&denial.respond(&id, &method)).await;
                if let Action::Refuse { kill: true, .. } = action {
                    self.kill().await;
                }
            }
            (Ok(()), Action::Forward(bytes)) => self.send_upstream(&id, &bytes).await,
            (Ok(()), Action::Refuse { denial, kill }) => {
                self.pending.remove(&id);
                self.send_client(&denial.respond(&id, &method)).await;
                if kill {
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
