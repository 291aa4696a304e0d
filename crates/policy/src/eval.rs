//! Evaluation: `(compiled policy, call, time) → decision + trace`, pure and fail-closed.

mod args;
mod cond;
mod readings;

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde_json::Value;

pub(crate) use self::args::fold_key;
use self::args::{ArgLookup, declared_type_problem};
use self::readings::Readings;
use crate::call::{Call, METHOD_RESOURCES_READ, METHOD_TOOLS_CALL};
use crate::compile::matcher::Matcher;
use crate::compile::tools::{CallEffect, ToolFacts};
use crate::compile::{CompiledPolicy, Rule};
use crate::decision::{Decision, Effect, Mode, ReasonClass};
use crate::model::{ApprovalSpec, LimitSpec};
use crate::normalize::path::PathResolver;
use crate::tri::Tri;

/// What evaluation may consult besides the policy and the call. The engine does no I/O itself.
#[derive(Clone, Copy, Default)]
pub struct EvalContext<'a> {
    /// Reads symlinks for servers that share the gateway's filesystem.
    pub resolver: Option<&'a dyn PathResolver>,
}

/// How one rule fared, for `explain`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleTrace {
    /// The rule id.
    pub rule: String,
    /// What the rule would contribute.
    pub decision: Decision,
    /// The result of `when` (including `hours`).
    pub when: Tri,
    /// The result of `unless`, if the rule has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unless: Option<Tri>,
    /// Whether the rule contributed to the decision.
    pub contributed: bool,
    /// Why conditions came out as they did, especially unknown ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The verdict on one call.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// The decision.
    pub decision: Decision,
    /// The rules that produced it (the contributions at the winning strictness).
    pub rules: Vec<String>,
    /// Why, for humans reading the audit log or `explain` (may name policy details).
    pub reason: String,
    /// Why, for the agent (never names regexes or other rules).
    pub public_reason: String,
    /// The closed reason class.
    pub reason_class: ReasonClass,
    /// The call's effect class.
    pub effect: Effect,
    /// Whether the decision is enforced or only observed.
    pub mode: Mode,
    /// Approval settings, for `require_approval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
    /// Limits to reserve before forwarding, by rule.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<(String, LimitSpec)>,
    /// Labels to add to the session if the call goes through.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub taint: Vec<String>,
    /// Per-rule trace (only filled by [`explain`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<RuleTrace>,
}

/// Public reason when no rule allowed the call.
pub const DEFAULT_DENY_REASON: &str = "no policy rule allows this call";
/// Public reason for a deny rule without `on_deny`.
pub const GENERIC_DENY_REASON: &str = "this call is not allowed by policy";
/// Public reason for an approval request.
pub const APPROVAL_REASON: &str = "this call needs a human's approval";

impl Evaluation {
    fn engine(
        decision: Decision,
        rule: &str,
        reason: String,
        public: &str,
        class: ReasonClass,
        effect: Effect,
        mode: Mode,
    ) -> Self {
        Evaluation {
            decision,
            rules: vec![rule.to_owned()],
            reason,
            public_reason: public.to_owned(),
            reason_class: class,
            effect,
            mode,
            approval: None,
            limits: Vec::new(),
            taint: Vec::new(),
            trace: Vec::new(),
        }
    }
}

/// Evaluate a call. Never panics: an internal failure is a `deny` with class `internal`.
#[must_use]
pub fn evaluate(policy: &CompiledPolicy, call: &Call, ctx: &EvalContext<'_>) -> Evaluation {
    guarded(policy, call, ctx, false)
}

/// Evaluate a call and record a trace of every candidate rule.
#[must_use]
pub fn explain(policy: &CompiledPolicy, call: &Call, ctx: &EvalContext<'_>) -> Evaluation {
    guarded(policy, call, ctx, true)
}

fn guarded(policy: &CompiledPolicy, call: &Call, ctx: &EvalContext<'_>, trace: bool) -> Evaluation {
    match catch_unwind(AssertUnwindSafe(|| {
        evaluate_inner(policy, call, ctx, trace)
    })) {
        Ok(e) => e,
        Err(_) => Evaluation::engine(
            Decision::Deny,
            "internal-error",
            "the evaluator failed; this is a bug, please report it. Failing closed".to_owned(),
            "the gateway could not evaluate this call",
            ReasonClass::Internal,
            Effect::Unknown,
            Mode::Enforce,
        ),
    }
}

/// Everything a matcher may look at during one evaluation. The facts and the readings cache
/// are borrowed, so a scope per rule costs nothing to make.
pub(crate) struct Scope<'a> {
    pub(crate) call: &'a Call,
    pub(crate) facts: &'a ToolFacts<'a>,
    /// The call's effect: the facts' classification adjusted by the tool's annotations.
    pub(crate) effect: CallEffect,
    pub(crate) readings: &'a Readings<'a>,
    pub(crate) notes: Option<std::cell::RefCell<Vec<String>>>,
}

impl Scope<'_> {
    pub(crate) fn note(&self, f: impl FnOnce() -> String) {
        if let Some(n) = &self.notes {
            n.borrow_mut().push(f());
        }
    }
}

fn evaluate_inner(
    policy: &CompiledPolicy,
    call: &Call,
    ctx: &EvalContext<'_>,
    trace: bool,
) -> Evaluation {
    // Lets the unit tests prove that a panic inside evaluation becomes a deny.
    #[cfg(test)]
    if call.tool == tests::PANIC_TOOL {
        panic!("injected evaluator fault");
    }
    let Some(server) = policy.servers.get(&call.server) else {
        return Evaluation::engine(
            Decision::Deny,
            "unconfigured-server",
            format!("server `{}` is not configured in the policy", call.server),
            "this server is not available through the gateway",
            ReasonClass::ToolIdentity,
            Effect::Unknown,
            policy.mode,
        );
    };
    let mode = server.mode;
    let facts = policy.tools.lookup(&call.server, &call.tool);
    let call_effect = facts.effect_with(call.hints.as_ref(), server.trust_annotations);
    let effect = call_effect.reported();
    if call.method == METHOD_TOOLS_CALL && policy.is_hidden(&call.server, &call.tool) {
        return Evaluation::engine(
            Decision::Deny,
            "hidden-tool",
            format!(
                "tool `{}.{}` is hidden by the policy",
                call.server, call.tool
            ),
            "this tool is not available",
            ReasonClass::ToolIdentity,
            effect,
            mode,
        );
    }
    let type_problem = declared_type_problem(&facts, &call.arguments);
    let readings = Readings::new(
        server,
        if server.resolve_symlinks {
            ctx.resolver
        } else {
            None
        },
    );
    // An ambiguous resource URI may name another resource than its spelling (`file:///ok/../x`):
    // every `tool` glob on it is unknown, so every rule is a candidate, not only those the index
    // finds for the spelling.
    let every_rule: Vec<usize>;
    let candidates = if is_ambiguous_resource(call) {
        every_rule = (0..policy.rules.len()).collect();
        every_rule.as_slice()
    } else {
        policy
            .index
            .get(&call.server)
            .map(|si| si.candidates(&call.tool))
            .unwrap_or_default()
    };

    let mut best: Option<Decision> = None;
    let mut contributors: Vec<Contribution<'_>> = Vec::new();
    let mut traces = Vec::new();
    for &i in candidates {
        let Some(rule) = policy.rules.get(i) else {
            continue;
        };
        let scope = Scope {
            call,
            facts: &facts,
            effect: call_effect,
            readings: &readings,
            notes: trace.then(|| std::cell::RefCell::new(Vec::new())),
        };
        let mut when = eval_matcher(&rule.when, &scope, true);
        if let Some(h) = &rule.hours {
            let inside = h.holds(call.time);
            if inside != Tri::True {
                scope.note(|| match inside {
                    Tri::Unknown => "hours: the call carries no time".to_owned(),
                    _ => "hours: outside the rule's time window".to_owned(),
                });
            }
            when = when.and(inside);
        }
        let unless = match (&rule.unless, when) {
            (Some(u), Tri::True | Tri::Unknown) => Some(eval_matcher(u, &scope, false)),
            _ => None,
        };
        let contributes = if rule.decision == Decision::Allow {
            when == Tri::True && unless.is_none_or(|u| u == Tri::False)
        } else {
            when != Tri::False && unless.is_none_or(|u| u != Tri::True)
        };
        // A human may only be asked about a call the gateway understands: an approval rule that
        // holds only *possibly* denies instead (otherwise uncertainty could turn a default deny
        // into a request for approval, a looser verdict than certainty would have got).
        let uncertain = when == Tri::Unknown || unless == Some(Tri::Unknown);
        let decision = if rule.decision == Decision::RequireApproval && uncertain {
            scope.note(|| "uncertain, so this approval rule denies instead of asking".to_owned());
            Decision::Deny
        } else {
            rule.decision
        };
        if contributes {
            let c = Contribution { rule, decision };
            match best {
                Some(b) if b > decision => {}
                Some(b) if b == decision => contributors.push(c),
                _ => {
                    best = Some(decision);
                    contributors.clear();
                    contributors.push(c);
                }
            }
        }
        if trace && (when != Tri::False || rule.unless.is_some()) {
            let notes = scope.notes.map(|n| n.into_inner()).unwrap_or_default();
            traces.push(RuleTrace {
                rule: rule.id.clone(),
                decision,
                when,
                unless: if rule.unless.is_some() { unless } else { None },
                contributed: contributes,
                notes,
            });
        }
    }

    let mut result = combine(best, &contributors, call, effect, mode);
    if let Some(problem) = type_problem
        && result.decision <= Decision::Deny
    {
        result = Evaluation::engine(
            Decision::Deny,
            "argument-type",
            problem,
            "an argument has the wrong type",
            ReasonClass::Schema,
            effect,
            mode,
        );
    }
    result.trace = traces;
    result
}

/// Added to the reason of an approval rule that only possibly holds, and so denies.
const UNCERTAIN_APPROVAL_NOTE: &str =
    "; a condition is uncertain, so denied rather than asking a human";

/// A rule's contribution: its own decision, or `deny` for an approval rule that only possibly
/// holds.
#[derive(Clone, Copy)]
struct Contribution<'a> {
    rule: &'a Rule,
    decision: Decision,
}

fn combine(
    best: Option<Decision>,
    contributions: &[Contribution<'_>],
    call: &Call,
    effect: Effect,
    mode: Mode,
) -> Evaluation {
    let Some(decision) = best else {
        return Evaluation::engine(
            Decision::Deny,
            "default-deny",
            format!("no rule allows `{}` on server `{}`", call.tool, call.server),
            DEFAULT_DENY_REASON,
            ReasonClass::Default,
            effect,
            mode,
        );
    };
    let contributors = || contributions.iter().map(|c| c.rule);
    let rules: Vec<String> = contributors().map(|r| r.id.clone()).collect();
    // Built in one string: `id: reason` or `id (decision)` per contributor, `; ` between,
    // allocated once at its final length rather than grown push by push.
    let reason_len = contributions.iter().fold(0usize, |len, c| {
        let r = c.rule;
        let said = match &r.reason {
            Some(why) => why.len().saturating_add(2),
            None => r.decision.as_str().len().saturating_add(3),
        };
        let uncertain = if c.decision == r.decision {
            0
        } else {
            UNCERTAIN_APPROVAL_NOTE.len()
        };
        len.saturating_add(2)
            .saturating_add(r.id.len())
            .saturating_add(said)
            .saturating_add(uncertain)
    });
    let mut reason = String::with_capacity(reason_len);
    for (i, c) in contributions.iter().enumerate() {
        let r = c.rule;
        if i > 0 {
            reason.push_str("; ");
        }
        reason.push_str(&r.id);
        match &r.reason {
            Some(why) => {
                reason.push_str(": ");
                reason.push_str(why);
            }
            None => {
                reason.push_str(" (");
                reason.push_str(r.decision.as_str());
                reason.push(')');
            }
        }
        if c.decision != r.decision {
            reason.push_str(UNCERTAIN_APPROVAL_NOTE);
        }
    }
    let public_reason = contributors()
        .find_map(|r| r.on_deny.clone())
        .unwrap_or_else(|| match decision {
            Decision::Allow => String::new(),
            Decision::RequireApproval => APPROVAL_REASON.to_owned(),
            Decision::Deny | Decision::KillSession => GENERIC_DENY_REASON.to_owned(),
        });
    let reason_class = match decision {
        Decision::Allow => ReasonClass::Default,
        Decision::RequireApproval => ReasonClass::Approval,
        Decision::Deny | Decision::KillSession => {
            if contributors().any(|r| r.when.uses_labels()) {
                ReasonClass::TaintedSession
            } else if contributors().any(|r| r.when.uses_args()) {
                ReasonClass::Argument
            } else {
                ReasonClass::ToolIdentity
            }
        }
    };
    let approval = if decision == Decision::RequireApproval {
        merge_approvals(contributors())
    } else {
        None
    };
    let lets_through = matches!(decision, Decision::Allow | Decision::RequireApproval);
    let limits = if lets_through {
        contributors()
            .filter_map(|r| r.limit.clone().map(|l| (r.id.clone(), l)))
            .collect()
    } else {
        Vec::new()
    };
    let mut taint: Vec<String> = if lets_through {
        contributors()
            .flat_map(|r| r.taint.iter().cloned())
            .collect()
    } else {
        Vec::new()
    };
    taint.sort();
    taint.dedup();
    Evaluation {
        decision,
        rules,
        reason,
        public_reason,
        reason_class,
        effect,
        mode,
        approval,
        limits,
        taint,
        trace: Vec::new(),
    }
}

/// Several approval rules: the strictest settings of each (shortest ttl and timeout, `hold`
/// over `retry` is not stricter, so `retry` — which never keeps a call open — wins only if all
/// agree; a separate approver if any asks for one).
fn merge_approvals<'r>(rules: impl Iterator<Item = &'r Rule>) -> Option<ApprovalSpec> {
    let mut specs = rules.filter_map(|r| r.approval.as_ref());
    let mut merged = specs.next()?.clone();
    for s in specs {
        merged.ttl = min_opt(merged.ttl, s.ttl);
        merged.timeout = min_opt(merged.timeout, s.timeout);
        merged.separate_approver = match (merged.separate_approver, s.separate_approver) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (a, b) => a.or(b),
        };
        if merged.mode != s.mode {
            merged.mode = None;
        }
    }
    Some(merged)
}

fn min_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether the call is a `resources/read` whose URI a server may resolve to another resource than
/// the one spelled: a `.` or `..` segment (also percent-encoded, up to three rounds, with `\` as a
/// separator, or in a Unicode compatibility form such as `．．`), an encoded separator, or a
/// control character. Its `tool` globs are then unknown: an allow on `file:///ok/**` does not hold
/// for `file:///ok/../etc/passwd`, and a deny on `file:///etc/**` fires for it.
pub(crate) fn is_ambiguous_resource(call: &Call) -> bool {
    use unicode_normalization::UnicodeNormalization;
    if call.method != METHOD_RESOURCES_READ {
        return false;
    }
    let mut text = call.tool.clone();
    for _ in 0..4 {
        if text.chars().any(char::is_control) {
            return true;
        }
        let folded: String = text.replace('\\', "/").nfkc().collect();
        let has_dot_segment = folded
            .split(['/', '?', '#'])
            .any(|segment| segment == "." || segment == "..");
        if has_dot_segment {
            return true;
        }
        let lower = folded.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") {
            return true;
        }
        match percent_decode(&text) {
            Some(decoded) if decoded != text => text = decoded,
            Some(_) => return false,
            // Encoding that decodes to invalid UTF-8 hides what the server reads.
            None => return true,
        }
    }
    // Still encoded after three rounds: too deep to read with certainty.
    true
}

/// One round of percent-decoding; `None` when the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|h| char::from(*h).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Evaluate a matcher (Kleene AND of its fields, cheapest first, stopping at `False`).
/// `top` is true for a rule's own `when`, where `method` defaults to `tools/call`; an `unless`
/// (like `any`/`not`) has no method default, so it never fails to hold merely because the call
/// is a `resources/read` or `prompts/get`.
pub(crate) fn eval_matcher(m: &Matcher, scope: &Scope<'_>, top: bool) -> Tri {
    let call = scope.call;
    let mut acc = Tri::True;
    macro_rules! and {
        ($label:expr, $e:expr) => {{
            let r: Tri = $e;
            if r != Tri::True {
                scope.note(|| format!("{}: {}", $label, tri_word(r)));
            }
            acc = acc.and(r);
            if acc == Tri::False {
                return Tri::False;
            }
        }};
    }
    match &m.method {
        Some(methods) => and!("method", Tri::from_bool(methods.contains(&call.method))),
        None if top => and!("method", Tri::from_bool(call.method == METHOD_TOOLS_CALL)),
        None => {}
    }
    if let Some(s) = &m.server {
        and!("server", Tri::from_bool(s.matches(&call.server)));
    }
    if let Some(t) = &m.tool {
        if is_ambiguous_resource(call) {
            and!("tool (an ambiguous resource URI)", Tri::Unknown);
        } else {
            and!("tool", Tri::from_bool(t.matches(&call.tool)));
        }
    }
    if let Some(effects) = &m.effect {
        if let CallEffect::Contested(declared) = scope.effect {
            scope.note(|| {
                format!(
                    "the policy declares the tool `{}` but the server's annotations say it changes something, so its effect is `{}` or `unknown`; declare its real effect in `tools`",
                    declared.as_str(),
                    declared.as_str()
                )
            });
        }
        and!("effect", scope.effect.within(effects));
    }
    if let Some(p) = &m.principal {
        and!(
            "principal",
            Tri::from_bool(call.principal.as_deref().is_some_and(|x| p.matches(x)))
        );
    }
    if let Some(a) = &m.agent {
        and!(
            "agent",
            Tri::from_bool(call.agent.as_deref().is_some_and(|x| a.matches(x)))
        );
    }
    if let Some(labels) = &m.labels {
        and!(
            "labels",
            Tri::from_bool(labels.iter().all(|l| call.labels.contains(l)))
        );
    }
    for a in &m.args {
        let lookup = ArgLookup::find(&a.arg, &call.arguments, scope.facts);
        and!(
            a.label.as_str(),
            cond::eval_arg(&a.cond, &lookup, scope, &a.label)
        );
    }
    if let Some(c) = &m.paths {
        and!(
            "paths",
            cond::eval_declared(c, scope, args::DeclaredGroup::Paths)
        );
    }
    if let Some(c) = &m.urls {
        and!(
            "urls",
            cond::eval_declared(c, scope, args::DeclaredGroup::Urls)
        );
    }
    if let Some(c) = &m.values {
        and!("values", cond::eval_values(c, scope));
    }
    if let Some(list) = &m.any {
        let mut any = Tri::False;
        for sub in list {
            any = any.or(eval_matcher(sub, scope, false));
            if any == Tri::True {
                break;
            }
        }
        and!("any", any);
    }
    if let Some(n) = &m.not {
        and!("not", eval_matcher(n, scope, false).not());
    }
    acc
}

pub(crate) fn tri_word(t: Tri) -> &'static str {
    match t {
        Tri::True => "true",
        Tri::False => "false",
        Tri::Unknown => "unknown",
    }
}

/// The JSON type name of a value, for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests;
