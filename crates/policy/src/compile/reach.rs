//! Which tools a policy can ever allow: the gateway leaves the others out of `tools/list`, so
//! what a client is shown and what it may call agree (a hidden tool is still denied on call by
//! evaluation itself).

use super::CompiledPolicy;
use super::matcher::Matcher;
use crate::call::{METHOD_TOOLS_CALL, ToolHints};
use crate::compile::tools::CallEffect;
use crate::decision::Decision;
use crate::tri::Tri;

/// Whether `m` may hold for a `tools/call` of `server.tool` with `effect`, looking only at the
/// fields fixed by the tool; every other field is taken as possibly holding. An `effect`
/// condition must hold outright: one that is unknown for this tool (a contested effect) stays
/// unknown for every call, and an allow or approval rule that only possibly holds never allows.
fn may_match(m: &Matcher, server: &str, tool: &str, effect: CallEffect) -> bool {
    fixed_fields_match(m, server, tool)
        && m.effect
            .as_ref()
            .is_none_or(|e| effect.within(e) == Tri::True)
}

fn fixed_fields_match(m: &Matcher, server: &str, tool: &str) -> bool {
    let method_ok = m
        .method
        .as_ref()
        .is_none_or(|methods| methods.iter().any(|x| x == METHOD_TOOLS_CALL));
    method_ok
        && m.server.as_ref().is_none_or(|s| s.matches(server))
        && m.tool.as_ref().is_none_or(|t| t.matches(tool))
}

/// Whether `m` holds, at least possibly, for every `tools/call` of `server.tool`: its fixed
/// fields match, its `effect` condition is not false (a deny fires on a possibly-holding
/// condition), and it names nothing that depends on the call.
fn always_matches(m: &Matcher, server: &str, tool: &str, effect: CallEffect) -> bool {
    fixed_fields_match(m, server, tool)
        && m.effect
            .as_ref()
            .is_none_or(|e| effect.within(e) != Tri::False)
        && m.principal.is_none()
        && m.agent.is_none()
        && m.labels.is_none()
        && m.args.is_empty()
        && m.paths.is_none()
        && m.urls.is_none()
        && m.values.is_none()
        && m.any.is_none()
        && m.not.is_none()
}

impl CompiledPolicy {
    /// Whether some `tools/call` of `server.tool` could be allowed (possibly after an approval).
    /// False for an unconfigured server, a hidden tool, a tool no allow or approval rule can
    /// match, and a tool an unconditional deny rule always refuses. Conservative towards
    /// listing: when in doubt the tool is listed, and evaluation still decides every call.
    /// `hints` are the tool's annotations as listed, which adjust its effect exactly as they
    /// do in evaluation, so what is listed and what may be called agree.
    #[must_use]
    pub fn can_ever_allow(&self, server: &str, tool: &str, hints: Option<&ToolHints>) -> bool {
        let Some(info) = self.servers.get(server) else {
            return false;
        };
        if self.is_hidden(server, tool) {
            return false;
        }
        let effect = self
            .tools
            .lookup(server, tool)
            .effect_with(hints, info.trust_annotations);
        let mut allowed = false;
        for rule in &self.rules {
            match rule.decision {
                Decision::Allow | Decision::RequireApproval => {
                    allowed |= may_match(&rule.when, server, tool, effect);
                }
                Decision::Deny | Decision::KillSession => {
                    if rule.unless.is_none()
                        && rule.hours.is_none()
                        && always_matches(&rule.when, server, tool, effect)
                    {
                        return false;
                    }
                }
            }
        }
        allowed
    }
}
