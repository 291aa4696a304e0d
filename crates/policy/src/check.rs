//! Lints for `portcullis check`: problems that load fine but are probably not what the author
//! meant (unreachable or shadowed rules, allow rules broader than the deny beside them, costly
//! regexes, tools without a declared effect, observe mode).

use std::fmt;

use crate::compile::cond::{Cond, Test, WARN_REGEX_PROGRAM};
use crate::compile::matcher::Matcher;
use crate::compile::{CompiledPolicy, Rule};
use crate::decision::{Decision, Effect, Mode};
use crate::error::SourcePos;

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lint {
    /// A stable code, e.g. `unreachable-rule`.
    pub code: &'static str,
    /// The rule concerned, if any.
    pub rule: Option<String>,
    /// Where the rule is.
    pub pos: Option<SourcePos>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "warning[{}]", self.code)?;
        if let Some(pos) = self.pos {
            write!(f, " at {}:{}", pos.line, pos.column)?;
        }
        write!(f, ": {}\n  help: {}", self.message, self.help)
    }
}

/// Run every lint.
#[must_use]
pub fn lint(policy: &CompiledPolicy) -> Vec<Lint> {
    let mut out = Vec::new();
    if policy.mode == Mode::Observe {
        out.push(Lint {
            code: "observe-mode",
            rule: None,
            pos: None,
            message: "the policy is in `mode: observe`: every call is forwarded and decisions are only recorded".into(),
            help: "use `mode: enforce` (the default) once the policy is tuned".into(),
        });
    }
    for s in policy.servers.values() {
        if s.mode == Mode::Observe && policy.mode != Mode::Observe {
            out.push(Lint {
                code: "observe-mode",
                rule: None,
                pos: None,
                message: format!("server `{}` is in `mode: observe`: its calls are forwarded whatever the policy says", s.name),
                help: "remove `mode: observe` from the server once its rules are tuned".into(),
            });
        }
    }
    for s in policy.servers.values() {
        if s.spec.trust_annotations == Some(true) && s.spec.pin.is_none() {
            out.push(Lint {
                code: "trust-annotations-unpinned",
                rule: None,
                pos: None,
                message: format!(
                    "server `{}` has `trust_annotations: true` but no `pin:`: annotations are trusted only from pinned, approved tool definitions, so they will never make a tool a read",
                    s.name
                ),
                help: "add `pin: tofu` (or `pin: lock`) to the server, or remove `trust_annotations`".into(),
            });
        }
    }
    for rule in &policy.rules {
        unreachable(policy, rule, &mut out);
        costly_regexes(rule, &mut out);
        undeclared_tools(policy, rule, &mut out);
        if rule.decision == Decision::Allow
            && rule
                .when
                .effect
                .as_ref()
                .is_some_and(|e| e.contains(&Effect::Unknown))
        {
            out.push(lint_for(
                rule,
                "allow-unknown-effect",
                format!(
                    "rule `{}` allows calls whose effect is unknown, i.e. tools nobody classified",
                    rule.id
                ),
                "declare the tools in `tools` with their effect and allow those effects instead",
            ));
        }
    }
    for allow in policy
        .rules
        .iter()
        .filter(|r| r.decision == Decision::Allow)
    {
        for strict in policy.rules.iter().filter(|r| r.decision >= Decision::Deny) {
            if covers(&strict.when, &allow.when)
                && strict.unless.is_none()
                && strict.hours.is_none()
                && !strict.when.uses_args()
                && !strict.when.uses_labels()
                && strict.when.principal.is_none()
                && strict.when.agent.is_none()
            {
                out.push(lint_for(allow, "shadowed-rule",
                    format!("allow `{}` is shadowed: every call it matches is also matched by `{}` ({})", allow.id, strict.id, strict.decision),
                    "remove the allow rule or narrow the deny rule"));
            } else if same_scope(&strict.when, &allow.when)
                && strict.when.uses_args()
                && !allow.when.uses_args()
            {
                out.push(lint_for(allow, "allow-broader-than-deny",
                    format!("allow `{}` has no argument conditions while `{}` beside it does: every argument `{}` does not catch is allowed", allow.id, strict.id, strict.id),
                    "add a positive condition to the allow (e.g. `under`, `host`, `command`) so it does not depend on the deny listing every bad value"));
            }
        }
    }
    out
}

fn lint_for(rule: &Rule, code: &'static str, message: String, help: &str) -> Lint {
    Lint {
        code,
        rule: Some(rule.id.clone()),
        pos: rule.pos,
        message,
        help: help.to_owned(),
    }
}

fn unreachable(policy: &CompiledPolicy, rule: &Rule, out: &mut Vec<Lint>) {
    if let Some(s) = &rule.when.server
        && !policy.servers.keys().any(|name| s.matches(name))
    {
        out.push(lint_for(
            rule,
            "unreachable-rule",
            format!(
                "rule `{}` can never match: no configured server matches `server: {}`",
                rule.id,
                s.patterns.join(", ")
            ),
            "correct the server name or configure the server under `servers`",
        ));
    }
}

fn costly_regexes(rule: &Rule, out: &mut Vec<Lint>) {
    let mut sources = Vec::new();
    visit_conds(&rule.when, &mut |c| collect_regexes(c, &mut sources));
    if let Some(u) = &rule.unless {
        visit_conds(u, &mut |c| collect_regexes(c, &mut sources));
    }
    for src in sources {
        let small = regex::RegexBuilder::new(&src)
            .size_limit(WARN_REGEX_PROGRAM)
            .build();
        if matches!(small, Err(regex::Error::CompiledTooBig(_))) {
            out.push(lint_for(rule, "costly-regex",
                format!("regex `{src}` in rule `{}` compiles to a large automaton (over {WARN_REGEX_PROGRAM} bytes)", rule.id),
                "simplify it (bounded repetitions like `{1000}` and large Unicode classes are costly), or use `glob`"));
        }
    }
}

fn collect_regexes(c: &Cond, out: &mut Vec<String>) {
    for t in &c.tests {
        if let Test::Regex(r) = t {
            out.push(r.source.clone());
        }
    }
    if let Some(n) = &c.not {
        collect_regexes(n, out);
    }
    for sub in c.any.iter().flatten() {
        collect_regexes(sub, out);
    }
}

fn visit_conds(m: &Matcher, f: &mut dyn FnMut(&Cond)) {
    for a in &m.args {
        f(&a.cond);
    }
    for c in [&m.paths, &m.urls, &m.values].into_iter().flatten() {
        f(c);
    }
    for sub in m.any.iter().flatten() {
        visit_conds(sub, f);
    }
    if let Some(n) = &m.not {
        visit_conds(n, f);
    }
}

fn undeclared_tools(policy: &CompiledPolicy, rule: &Rule, out: &mut Vec<Lint>) {
    let (Some(servers), Some(tools)) = (&rule.when.server, &rule.when.tool) else {
        return;
    };
    if !servers.all_literal || !tools.all_literal {
        return;
    }
    for s in &servers.patterns {
        for t in &tools.patterns {
            if policy.servers.contains_key(s) && !policy.tools.covers(s, t) {
                out.push(lint_for(rule, "undeclared-tool",
                    format!("tool `{s}.{t}` has no `tools` entry: its effect is unknown (treated as a mutation) and its arguments are read as plain strings"),
                    &format!("declare it, e.g. `tools: {{ {s}.{t}: {{ effect: read, args: {{ path: path }} }} }}`")));
            }
        }
    }
}

/// Whether every call matched by `inner` on server/tool/method/effect is matched by `outer`'s
/// same fields (conservative: only literal name lists are compared).
fn covers(outer: &Matcher, inner: &Matcher) -> bool {
    if outer.any.is_some() || outer.not.is_some() || outer.labels.is_some() {
        return false;
    }
    names_cover(outer.server.as_ref(), inner.server.as_ref())
        && names_cover(outer.tool.as_ref(), inner.tool.as_ref())
        && methods(inner).iter().all(|m| methods(outer).contains(m))
        && match (&outer.effect, &inner.effect) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(o), Some(i)) => i.iter().all(|e| o.contains(e)),
        }
}

fn methods(m: &Matcher) -> Vec<String> {
    m.method
        .clone()
        .unwrap_or_else(|| vec![crate::call::METHOD_TOOLS_CALL.to_owned()])
}

fn names_cover(
    outer: Option<&crate::compile::names::NameSet>,
    inner: Option<&crate::compile::names::NameSet>,
) -> bool {
    match (outer, inner) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => i.all_literal && i.patterns.iter().all(|p| o.matches(p)),
    }
}

/// Whether two matchers target the same server and tool set (literally).
fn same_scope(a: &Matcher, b: &Matcher) -> bool {
    let same = |x: Option<&crate::compile::names::NameSet>,
                y: Option<&crate::compile::names::NameSet>| match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            let mut px = x.patterns.clone();
            let mut py = y.patterns.clone();
            px.sort();
            py.sort();
            px == py
        }
        _ => false,
    };
    same(a.server.as_ref(), b.server.as_ref())
        && same(a.tool.as_ref(), b.tool.as_ref())
        && methods(a) == methods(b)
}
