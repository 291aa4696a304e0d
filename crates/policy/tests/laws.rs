//! Property tests for the laws of the engine (DESIGN §3.2, §3.4), over generated policies and
//! calls:
//!
//! - replacing any condition's result with unknown never makes a decision looser;
//! - rule order in the file never changes the decision or the contributing rules;
//! - a policy without an allow rule never allows;
//! - a small reference evaluator (no index, no caching, written from DESIGN §3) agrees with the
//!   compiled engine (differential testing, as cedar does against its model).
//!
//! Policies are small rule sets over a fixed vocabulary of servers, tools and arguments, with
//! random decisions, nested `any`/`not`, `unless` and value conditions. Calls carry hostile path
//! spellings (traversal, percent-encoding, backslashes, fullwidth dots, case variants, NUL, `~`),
//! mistyped values, empty lists and case-variant argument keys. Policies are rendered as JSON,
//! which is YAML, and loaded through the same parser as a policy file.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail loudly on a broken fixture"
)]

use portcullis_policy::normalize::path::{PathContext, path_readings};
use portcullis_policy::{Call, CompiledPolicy, Decision, EvalContext, ToolHints, Tri, evaluate};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------------
// The fixed vocabulary.

/// Servers, tools and argument kinds every generated policy shares.
fn fixture() -> Value {
    json!({
        "version": 1,
        "servers": {
            "fs": { "command": ["fs-server"], "cwd": "/ws" },
            "web": { "url": "http://127.0.0.1:9000/mcp" },
            "sh": { "command": ["sh-server"] }
        },
        "tools": {
            "fs.read": { "effect": "read", "args": { "path": "path" } },
            "fs.read_many": { "effect": "read", "args": { "paths": "path[]" } },
            "fs.write": { "effect": "write", "args": { "path": "path", "content": "string" } },
            "web.fetch": { "effect": "network", "args": { "url": "url" } },
            "sh.run": { "effect": "exec", "args": { "command": "shell" } }
        }
    })
}

fn cwd_of(server: &str) -> Option<&'static str> {
    (server == "fs").then_some("/ws")
}

/// The declared kind of an argument (`None` when the tool does not declare it).
fn declared_kind(server: &str, tool: &str, arg: &str) -> Option<&'static str> {
    match (server, tool, arg) {
        ("fs", "read" | "write", "path") => Some("path"),
        ("fs", "read_many", "paths") => Some("path[]"),
        ("fs", "write", "content") => Some("string"),
        ("web", "fetch", "url") => Some("url"),
        ("sh", "run", "command") => Some("shell"),
        _ => None,
    }
}

fn effect_of(server: &str, tool: &str) -> &'static str {
    match (server, tool) {
        ("fs", "read" | "read_many") => "read",
        ("fs", "write") => "write",
        ("web", "fetch") => "network",
        ("sh", "run") => "exec",
        _ => "unknown",
    }
}

const SERVER_PATTERNS: &[&str] = &["fs", "web", "sh", "*", "f?", "ghost"];
const TOOL_PATTERNS: &[&str] = &[
    "read",
    "read_many",
    "write",
    "move",
    "fetch",
    "run",
    "re*",
    "*",
];
const EFFECTS: &[&str] = &["read", "write", "network", "exec", "unknown", "delete"];
const ARG_NAMES: &[&str] = &["path", "paths", "content", "mode", "n"];
const UNDER_BASES: &[&str] = &["/ws", "/ws/sub", "/etc", "/tmp"];
const GLOBS: &[&str] = &["**/.env", "/ws/*", "**/*.txt"];
const PATHS: &[&str] = &[
    "/ws/a",
    "/ws/.env",
    "/ws/sub/x.txt",
    "/etc/passwd",
    "/ws/../etc/passwd",
    "/ws-evil/x",
    "/WS/a",
    "/ws/.ENV",
    "/ws/%2e%2e/etc",
    "/ws\\..\\etc",
    "/ws/．．/etc",
    "~/x",
    "/ws/a\u{0}b",
    "sub/x.txt",
    "/tmp/x",
    "/ws/.env.",
];
const STRINGS: &[&str] = &["x", "safe", "unsafe", "Safe", "/ws/.env"];

/// The argument every generated call carries, on which `min: 0` is always unknown (a string is
/// mistyped for `min`): the black-box way to make one condition's result unknown.
const UNKNOWABLE_ARG: &str = "zz_unknowable";

// ---------------------------------------------------------------------------------------------
// Policies as data.

/// A value condition.
#[derive(Clone, Debug)]
enum Cond {
    Equals(Value),
    Under(&'static str),
    Glob(&'static str),
    Present(bool),
    Not(Box<Cond>),
    Any(Vec<Cond>),
    // Beyond the reference evaluator's subset:
    Min(i64),
    Max(i64),
    Contains(&'static str),
    /// A condition that is unknown on a string value (`min` on a string).
    UnknownOnString,
    /// A condition that is unknown on a number (`contains` on a number).
    UnknownOnNumber,
}

/// A `when`/`unless`.
#[derive(Clone, Debug, Default)]
struct Matcher {
    server: Option<Vec<&'static str>>,
    tool: Option<Vec<&'static str>>,
    effect: Option<Vec<&'static str>>,
    args: Vec<(String, Cond)>,
    paths: Option<Cond>,
    values: Option<Cond>,
    any: Option<Vec<Matcher>>,
    not: Option<Box<Matcher>>,
}

#[derive(Clone, Debug)]
struct Rule {
    id: String,
    decision: Decision,
    when: Matcher,
    unless: Option<Matcher>,
}

impl Cond {
    fn render(&self) -> Value {
        match self {
            Cond::Equals(v) => json!({ "equals": v }),
            Cond::Under(b) => json!({ "under": b }),
            Cond::Glob(g) => json!({ "glob": g }),
            Cond::Present(p) => json!({ "present": p }),
            Cond::Not(c) => json!({ "not": c.render() }),
            Cond::Any(cs) => json!({ "any": cs.iter().map(Cond::render).collect::<Vec<_>>() }),
            Cond::Min(n) => json!({ "min": n }),
            Cond::Max(n) => json!({ "max": n }),
            Cond::Contains(s) => json!({ "contains": s }),
            Cond::UnknownOnString => json!({ "min": 0 }),
            Cond::UnknownOnNumber => json!({ "contains": "q" }),
        }
    }

    fn in_subset(&self) -> bool {
        match self {
            Cond::Equals(_) | Cond::Under(_) | Cond::Glob(_) | Cond::Present(_) => true,
            Cond::Not(c) => c.in_subset(),
            Cond::Any(cs) => cs.iter().all(Cond::in_subset),
            _ => false,
        }
    }
}

impl Matcher {
    fn render(&self) -> Value {
        let mut m = Map::new();
        let list = |v: &Vec<&str>| json!(v);
        if let Some(s) = &self.server {
            m.insert("server".into(), list(s));
        }
        if let Some(t) = &self.tool {
            m.insert("tool".into(), list(t));
        }
        if let Some(e) = &self.effect {
            m.insert("effect".into(), list(e));
        }
        if !self.args.is_empty() {
            let args: Map<String, Value> = self
                .args
                .iter()
                .map(|(k, c)| (k.clone(), c.render()))
                .collect();
            m.insert("args".into(), Value::Object(args));
        }
        if let Some(c) = &self.paths {
            m.insert("paths".into(), c.render());
        }
        if let Some(c) = &self.values {
            m.insert("values".into(), c.render());
        }
        if let Some(a) = &self.any {
            m.insert("any".into(), a.iter().map(Matcher::render).collect());
        }
        if let Some(n) = &self.not {
            m.insert("not".into(), n.render());
        }
        Value::Object(m)
    }

    fn in_subset(&self) -> bool {
        self.paths.is_none()
            && self.values.is_none()
            && self.args.iter().all(|(_, c)| c.in_subset())
            && self.any.iter().flatten().all(Matcher::in_subset)
            && self.not.as_ref().is_none_or(|n| n.in_subset())
    }

    /// What compile rejects for an allow rule: nothing but `not`.
    fn is_bare(&self) -> bool {
        self.server.is_none()
            && self.tool.is_none()
            && self.effect.is_none()
            && self.args.is_empty()
            && self.paths.is_none()
            && self.values.is_none()
            && self.any.is_none()
    }
}

fn compile(rules: &[Rule]) -> CompiledPolicy {
    compile_with(rules, false)
}

/// `trust`: every server has `trust_annotations: true`.
fn compile_with(rules: &[Rule], trust: bool) -> CompiledPolicy {
    let mut policy = fixture();
    if trust && let Some(servers) = policy["servers"].as_object_mut() {
        for server in servers.values_mut() {
            server["trust_annotations"] = json!(true);
            server["pin"] = json!("tofu");
        }
    }
    let rendered: Vec<Value> = rules
        .iter()
        .map(|r| {
            let mut v =
                json!({ "id": r.id, "decision": r.decision.as_str(), "when": r.when.render() });
            if let Some(u) = &r.unless {
                v["unless"] = u.render();
            }
            v
        })
        .collect();
    policy["rules"] = Value::Array(rendered);
    let text = serde_json::to_string(&policy).unwrap();
    CompiledPolicy::from_yaml(&text, "generated.yaml", &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

// ---------------------------------------------------------------------------------------------
// Generators.

fn cond_strategy(full: bool) -> impl Strategy<Value = Cond> {
    let mut leaves: Vec<BoxedStrategy<Cond>> = vec![
        prop::sample::select(UNDER_BASES)
            .prop_map(Cond::Under)
            .boxed(),
        prop::sample::select(GLOBS).prop_map(Cond::Glob).boxed(),
        any::<bool>().prop_map(Cond::Present).boxed(),
        prop_oneof![
            prop::sample::select(STRINGS).prop_map(|s| json!(s)),
            Just(json!("/etc/passwd")),
            (0i64..3).prop_map(|n| json!(n * 500)),
        ]
        .prop_map(Cond::Equals)
        .boxed(),
    ];
    if full {
        leaves.push((0i64..3).prop_map(|n| Cond::Min(n * 500)).boxed());
        leaves.push((0i64..3).prop_map(|n| Cond::Max(n * 500)).boxed());
        leaves.push(
            prop::sample::select(&["env", "x", "SAFE"][..])
                .prop_map(Cond::Contains)
                .boxed(),
        );
    }
    let leaf = prop::strategy::Union::new(leaves);
    leaf.prop_recursive(2, 6, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| Cond::Not(Box::new(c))),
            prop::collection::vec(inner, 1..3).prop_map(Cond::Any),
        ]
    })
}

/// `paths` and `values` only in full policies (they are outside the reference subset).
fn optional_cond(full: bool, probability: f64) -> BoxedStrategy<Option<Cond>> {
    if full {
        prop::option::weighted(probability, cond_strategy(full)).boxed()
    } else {
        Just(None).boxed()
    }
}

fn names(pool: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<&'static str>>> {
    prop::option::weighted(0.5, prop::collection::vec(prop::sample::select(pool), 1..3))
}

fn matcher_strategy(full: bool) -> impl Strategy<Value = Matcher> {
    let arg = (prop::sample::select(ARG_NAMES), cond_strategy(full));
    let base = (
        names(SERVER_PATTERNS),
        names(TOOL_PATTERNS),
        names(EFFECTS),
        prop::collection::vec(arg, 0..3),
        optional_cond(full, 0.2),
        optional_cond(full, 0.15),
    )
        .prop_map(|(server, tool, effect, args, paths, values)| {
            let mut seen = Vec::new();
            let args = args
                .into_iter()
                .filter(|(name, _)| {
                    let fresh = !seen.contains(name);
                    seen.push(*name);
                    fresh
                })
                .map(|(n, c)| (n.to_owned(), c))
                .collect();
            Matcher {
                server,
                tool,
                effect,
                args,
                paths,
                values,
                any: None,
                not: None,
            }
        });
    base.prop_recursive(2, 8, 2, |inner| {
        (
            inner.clone(),
            prop::option::weighted(0.4, prop::collection::vec(inner.clone(), 1..3)),
            prop::option::weighted(0.3, inner),
        )
            .prop_map(|(mut m, any, not)| {
                m.any = any;
                m.not = not.map(Box::new);
                m
            })
    })
}

fn decision_strategy() -> impl Strategy<Value = Decision> {
    prop_oneof![
        4 => Just(Decision::Allow),
        2 => Just(Decision::RequireApproval),
        3 => Just(Decision::Deny),
        1 => Just(Decision::KillSession),
    ]
}

fn rules_strategy(full: bool) -> impl Strategy<Value = Vec<Rule>> {
    let rule = (
        decision_strategy(),
        matcher_strategy(full),
        prop::option::weighted(0.3, matcher_strategy(full)),
    );
    prop::collection::vec(rule, 1..7).prop_map(|rules| {
        rules
            .into_iter()
            .enumerate()
            .map(|(i, (decision, mut when, unless))| {
                if decision == Decision::Allow && when.is_bare() {
                    when.server = Some(vec!["fs"]);
                }
                Rule {
                    id: format!("r{i}"),
                    decision,
                    when,
                    unless,
                }
            })
            .collect()
    })
}

fn path_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => prop::sample::select(PATHS).prop_map(|p| json!(p)),
        1 => Just(json!(5)),
    ]
}

fn call_strategy() -> impl Strategy<Value = Call> {
    let target = prop_oneof![
        6 => Just(("fs", "read")),
        3 => Just(("fs", "read_many")),
        3 => Just(("fs", "write")),
        1 => Just(("fs", "move")),
        2 => Just(("web", "fetch")),
        2 => Just(("sh", "run")),
        1 => Just(("ghost", "read")),
    ];
    let string_or_number = prop_oneof![
        prop::sample::select(STRINGS).prop_map(|s| json!(s)),
        (0i64..3).prop_map(|n| json!(n * 500)),
    ];
    (
        target,
        prop::option::weighted(0.85, path_value()),
        prop::option::weighted(0.5, prop::collection::vec(path_value(), 0..3)),
        prop::option::weighted(0.4, string_or_number.clone()),
        prop::option::weighted(0.4, string_or_number.clone()),
        prop::option::weighted(0.3, string_or_number),
        prop::option::weighted(0.1, path_value()),
    )
        .prop_map(
            |((server, tool), path, paths, content, mode, n, case_variant)| {
                let mut args = Map::new();
                args.insert(UNKNOWABLE_ARG.into(), json!("z"));
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        args.insert(k.to_owned(), v);
                    }
                };
                put("path", path);
                put("paths", paths.map(Value::Array));
                put("content", content);
                put("mode", mode);
                put("n", n);
                put("Path", case_variant);
                Call::tool_call(server, tool, args)
            },
        )
}

fn decide(policy: &CompiledPolicy, call: &Call) -> (Decision, Vec<String>) {
    let e = evaluate(policy, call, &EvalContext::default());
    let mut rules = e.rules;
    rules.sort();
    (e.decision, rules)
}

// ---------------------------------------------------------------------------------------------
// Unknown never loosens: replace one condition (chosen by index) with one that is unknown on
// the call, and check the decision is at least as strict.

/// How the call's value for an argument lets us make a value condition unknown, if it does.
fn unknowable_for(value: Option<&Value>) -> Option<Cond> {
    match value? {
        Value::String(_) => Some(Cond::UnknownOnString),
        Value::Number(_) => Some(Cond::UnknownOnNumber),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => {
            Some(Cond::UnknownOnString)
        }
        _ => None,
    }
}

/// Replace the `*k`-th node of a condition tree; `None` while not reached.
fn replace_in_cond(c: &mut Cond, k: &mut usize, replacement: &Cond) -> bool {
    if *k == 0 {
        *c = replacement.clone();
        return true;
    }
    *k -= 1;
    match c {
        Cond::Not(inner) => replace_in_cond(inner, k, replacement),
        Cond::Any(list) => list
            .iter_mut()
            .any(|inner| replace_in_cond(inner, k, replacement)),
        _ => false,
    }
}

/// The matcher with one field (or one condition node inside a field) replaced by something
/// unknown on `call`. Field replacements drop the field and add `min: 0` on the always-present
/// string argument [`UNKNOWABLE_ARG`]: within the implicit AND that is the same as the field
/// evaluating to unknown. Condition nodes are replaced only where the call's value lets a
/// condition be unknown (a present string, number or non-empty list of strings).
fn replace_in_matcher(m: &mut Matcher, k: &mut usize, call: &Call) -> bool {
    let unknown_field = (UNKNOWABLE_ARG.to_owned(), Cond::UnknownOnString);
    macro_rules! field {
        ($f:ident) => {
            if m.$f.is_some() {
                if *k == 0 {
                    m.$f = None;
                    m.args.push(unknown_field);
                    return true;
                }
                *k -= 1;
            }
        };
    }
    field!(server);
    field!(tool);
    field!(effect);
    field!(paths);
    field!(values);
    field!(any);
    field!(not);
    for i in 0..m.args.len() {
        if *k == 0 {
            m.args.remove(i);
            m.args.push(unknown_field);
            return true;
        }
        *k -= 1;
        let (name, cond) = &mut m.args[i];
        if let Some(r) = unknowable_for(call.arguments.get(name.as_str()))
            && replace_in_cond(cond, k, &r)
        {
            return true;
        }
    }
    // `values` always sees the string in UNKNOWABLE_ARG; `paths` sees strings (or nothing, in
    // which case it is false whatever the condition, and so is the replacement).
    for c in [&mut m.paths, &mut m.values].into_iter().flatten() {
        if replace_in_cond(c, k, &Cond::UnknownOnString) {
            return true;
        }
    }
    for sub in m.any.iter_mut().flatten() {
        if *k == 0 {
            *sub = Matcher {
                args: vec![unknown_field],
                ..Matcher::default()
            };
            return true;
        }
        *k -= 1;
        if replace_in_matcher(sub, k, call) {
            return true;
        }
    }
    if let Some(n) = &mut m.not {
        return replace_in_matcher(n, k, call);
    }
    false
}

/// How many places `with_unknown` can replace in one rule for this call.
fn slot_count(rules: &[Rule], rule: usize, call: &Call) -> usize {
    const FAR: usize = usize::MAX / 2;
    let mut r = rules[rule].clone();
    let mut k = FAR;
    replace_in_matcher(&mut r.when, &mut k, call);
    if let Some(u) = &mut r.unless {
        replace_in_matcher(u, &mut k, call);
    }
    FAR - k
}

fn with_unknown(rules: &[Rule], rule: usize, slot: usize, call: &Call) -> Option<Vec<Rule>> {
    let mut out = rules.to_vec();
    let r = &mut out[rule];
    let mut k = slot;
    if replace_in_matcher(&mut r.when, &mut k, call) {
        return Some(out);
    }
    if let Some(u) = &mut r.unless
        && replace_in_matcher(u, &mut k, call)
    {
        return Some(out);
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn unknown_never_loosens_a_decision(
        rules in rules_strategy(true),
        call in call_strategy(),
        rule in any::<Index>(),
        slot in any::<Index>(),
    ) {
        let rule = rule.index(rules.len());
        let slots = slot_count(&rules, rule, &call);
        prop_assume!(slots > 0);
        let variant = with_unknown(&rules, rule, slot.index(slots), &call).unwrap();
        let before = decide(&compile(&rules), &call);
        let after = decide(&compile(&variant), &call);
        // An approval rule that holds only possibly contributes `deny` (see
        // `uncertainty_never_buys_an_approval_request`), so the law holds without exception.
        prop_assert!(
            after.0 >= before.0,
            "unknown loosened {:?} to {:?}\nrule {rule} was {:?}\nnow {:?}",
            before, after, rules[rule], variant[rule]
        );
    }

    #[test]
    fn rule_order_never_changes_a_decision(
        (rules, shuffled) in rules_strategy(true).prop_flat_map(|r| (Just(r.clone()), Just(r).prop_shuffle())),
        calls in prop::collection::vec(call_strategy(), 1..6),
    ) {
        let a = compile(&rules);
        let b = compile(&shuffled);
        for call in &calls {
            prop_assert_eq!(decide(&a, call), decide(&b, call));
        }
    }

    #[test]
    fn a_policy_without_allow_never_allows(
        rules in rules_strategy(true),
        calls in prop::collection::vec(call_strategy(), 1..6),
    ) {
        let rules: Vec<Rule> = rules
            .into_iter()
            .map(|mut r| {
                if r.decision == Decision::Allow {
                    r.decision = Decision::RequireApproval;
                }
                r
            })
            .collect();
        let p = compile(&rules);
        for call in &calls {
            prop_assert_ne!(decide(&p, call).0, Decision::Allow);
        }
    }

    /// A server's tool annotations never loosen a decision, except the one loosening the
    /// operator opts into: `trust_annotations: true`, a vetted definition saying read-only, for
    /// a tool the policy does not declare.
    #[test]
    fn annotations_loosen_only_where_trusted(
        rules in rules_strategy(true),
        call in call_strategy(),
        trust in any::<bool>(),
        read_only in prop::option::of(any::<bool>()),
        destructive in prop::option::of(any::<bool>()),
        vetted in any::<bool>(),
    ) {
        let p = compile_with(&rules, trust);
        let hints = ToolHints { read_only, destructive, vetted };
        let mut hinted = call.clone();
        hinted.hints = Some(hints);
        let before = decide(&p, &call);
        let after = decide(&p, &hinted);
        let opted_in = trust
            && vetted
            && hints.says_read_only()
            && effect_of(&call.server, &call.tool) == "unknown";
        if !opted_in {
            prop_assert!(
                after.0 >= before.0,
                "annotations {hints:?} loosened {before:?} to {after:?} (trust {trust})"
            );
        }
    }

    #[test]
    fn the_reference_evaluator_agrees_with_the_engine(
        rules in rules_strategy(false),
        calls in prop::collection::vec(call_strategy(), 1..6),
    ) {
        prop_assume!(rules.iter().all(|r| r.when.in_subset() && r.unless.as_ref().is_none_or(Matcher::in_subset)));
        let p = compile(&rules);
        for call in &calls {
            let engine = decide(&p, call);
            let model = reference::evaluate(&rules, call);
            if model.1 == ["argument-type"] || engine.1 == ["argument-type"] {
                // A declared-type mismatch denies; which rule id the deny carries when a rule
                // already denied is not a law (the engine keeps the rule's own deny).
                prop_assert!(engine.0 >= Decision::Deny && model.0 >= Decision::Deny, "{engine:?} vs {model:?}");
                prop_assert_eq!(engine.0, model.0);
            } else {
                prop_assert_eq!(&engine, &model, "call {:?}", call);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The reference evaluator: DESIGN §3 read literally, for the subset server/tool/effect/args
// (equals, under, glob, present, not, any), matcher-level any/not, decisions and unless. No
// index, no caching, nothing shared with the engine but the path normalizer (tested on its own).

mod reference {
    use super::*;

    fn and(a: Tri, b: Tri) -> Tri {
        match (a, b) {
            (Tri::False, _) | (_, Tri::False) => Tri::False,
            (Tri::True, Tri::True) => Tri::True,
            _ => Tri::Unknown,
        }
    }

    fn or(a: Tri, b: Tri) -> Tri {
        match (a, b) {
            (Tri::True, _) | (_, Tri::True) => Tri::True,
            (Tri::False, Tri::False) => Tri::False,
            _ => Tri::Unknown,
        }
    }

    fn not(a: Tri) -> Tri {
        match a {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }

    fn tri(b: bool) -> Tri {
        if b { Tri::True } else { Tri::False }
    }

    /// True when every result is true, false when every one is false, unknown otherwise.
    fn all_or_none(results: &[Tri]) -> Tri {
        if !results.is_empty() && results.iter().all(|r| *r == Tri::True) {
            Tri::True
        } else if !results.is_empty() && results.iter().all(|r| *r == Tri::False) {
            Tri::False
        } else {
            Tri::Unknown
        }
    }

    /// A value that differs only by case is another reading: exact and folded must agree.
    fn dual(exact: bool, folded: bool) -> Tri {
        all_or_none(&[tri(exact), tri(folded)])
    }

    /// `*` any run, `?` one character: name globs.
    fn wildcard(pattern: &str, name: &str) -> bool {
        fn go(p: &[char], n: &[char]) -> bool {
            match p.split_first() {
                None => n.is_empty(),
                Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
                Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
                Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
            }
        }
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        go(&p, &n)
    }

    /// The vocabulary's globs, by hand: on a normalized path `*` stays in one component; on
    /// plain text it crosses `/`.
    fn glob(pattern: &str, s: &str, path: bool) -> bool {
        let last = s.rsplit('/').next().unwrap_or(s);
        match pattern {
            "**/.env" => s == ".env" || s.ends_with("/.env"),
            "/ws/*" if path => s
                .strip_prefix("/ws/")
                .is_some_and(|rest| !rest.contains('/')),
            "/ws/*" => s.starts_with("/ws/"),
            "**/*.txt" if path => last.ends_with(".txt"),
            "**/*.txt" => s.ends_with(".txt"),
            other => panic!("glob `{other}` is not in the vocabulary"),
        }
    }

    fn is_under(path: &str, base: &str) -> bool {
        path == base || path.starts_with(&format!("{base}/"))
    }

    /// A test over every reading of a path: unknown when it cannot be read with certainty.
    fn over_readings(s: &str, server: &str, f: impl Fn(&str) -> Tri) -> Tri {
        let ctx = PathContext {
            cwd: cwd_of(server),
            ..PathContext::default()
        };
        match path_readings(s, &ctx) {
            Err(_) => Tri::Unknown,
            Ok(readings) => all_or_none(&readings.iter().map(|r| f(&r.path)).collect::<Vec<_>>()),
        }
    }

    /// An undeclared string spelled as an absolute path is read as a path too.
    fn as_path(kind: Option<&str>, s: &str) -> bool {
        kind == Some("path")
            || (kind.is_none() && (s.starts_with('/') || s.starts_with('~') || s.starts_with('\\')))
    }

    fn on_element(c: &Cond, v: &Value, kind: Option<&str>, server: &str) -> Tri {
        match c {
            Cond::Present(p) => tri(*p),
            Cond::Not(inner) => not(on_element(inner, v, kind, server)),
            Cond::Any(list) => list
                .iter()
                .fold(Tri::False, |acc, i| or(acc, on_element(i, v, kind, server))),
            Cond::Equals(expected) => match (v, expected) {
                (Value::String(s), Value::String(e)) if as_path(kind, s) && e.starts_with('/') => {
                    over_readings(s, server, |p| {
                        dual(p == e, p.to_lowercase() == e.to_lowercase())
                    })
                }
                (Value::String(s), Value::String(e)) => tri(s == e),
                (Value::Number(a), Value::Number(b)) => tri(a.as_i64() == b.as_i64()),
                _ => Tri::Unknown,
            },
            Cond::Under(base) => match v {
                Value::String(s) => over_readings(s, server, |p| {
                    dual(is_under(p, base), is_under(&p.to_lowercase(), base))
                }),
                _ => Tri::Unknown,
            },
            Cond::Glob(pattern) => match v {
                Value::String(s) if as_path(kind, s) => over_readings(s, server, |p| {
                    dual(
                        glob(pattern, p, true),
                        glob(pattern, &p.to_lowercase(), true),
                    )
                }),
                Value::String(s) => dual(
                    glob(pattern, s, false),
                    glob(pattern, &s.to_lowercase(), false),
                ),
                _ => Tri::Unknown,
            },
            other => panic!("{other:?} is outside the reference subset"),
        }
    }

    fn tests_elements(c: &Cond) -> bool {
        match c {
            Cond::Present(_) => false,
            Cond::Not(inner) => tests_elements(inner),
            Cond::Any(list) => list.iter().any(tests_elements),
            _ => true,
        }
    }

    /// DESIGN §3.3: a condition on an absent argument is false; `present: false` is true.
    fn on_absent(c: &Cond) -> Tri {
        match c {
            Cond::Present(p) => tri(!p),
            Cond::Any(list) => list.iter().fold(Tri::False, |acc, i| or(acc, on_absent(i))),
            _ => Tri::False,
        }
    }

    fn on_arg(name: &str, c: &Cond, call: &Call) -> Tri {
        // Another key that a lenient server may bind to this name: unknown.
        if call
            .arguments
            .keys()
            .any(|k| k != name && k.to_lowercase() == name.to_lowercase())
        {
            return Tri::Unknown;
        }
        let kind = declared_kind(&call.server, &call.tool, name);
        match call.arguments.get(name) {
            None => on_absent(c),
            Some(Value::Array(items)) if tests_elements(c) => {
                if !matches!(kind, None | Some("path[]")) {
                    Tri::Unknown
                } else if items.is_empty() {
                    Tri::False
                } else {
                    let element_kind = if kind == Some("path[]") {
                        Some("path")
                    } else {
                        None
                    };
                    all_or_none(
                        &items
                            .iter()
                            .map(|e| on_element(c, e, element_kind, &call.server))
                            .collect::<Vec<_>>(),
                    )
                }
            }
            Some(v) => on_element(c, v, kind, &call.server),
        }
    }

    fn matches(m: &Matcher, call: &Call) -> Tri {
        let names = |list: &Option<Vec<&str>>, value: &str| {
            list.as_ref()
                .map(|l| tri(l.iter().any(|p| wildcard(p, value))))
        };
        let mut parts: Vec<Tri> = Vec::new();
        parts.extend(names(&m.server, &call.server));
        parts.extend(names(&m.tool, &call.tool));
        if let Some(effects) = &m.effect {
            parts.push(tri(effects.contains(&effect_of(&call.server, &call.tool))));
        }
        parts.extend(m.args.iter().map(|(name, c)| on_arg(name, c, call)));
        if let Some(list) = &m.any {
            parts.push(
                list.iter()
                    .fold(Tri::False, |acc, sub| or(acc, matches(sub, call))),
            );
        }
        if let Some(n) = &m.not {
            parts.push(not(matches(n, call)));
        }
        parts.into_iter().fold(Tri::True, and)
    }

    fn type_problem(call: &Call) -> bool {
        // A case variant of a declared argument name is refused like a mistyped value.
        let variant = call.arguments.keys().any(|k| {
            declared_kind(&call.server, &call.tool, k).is_none()
                && declared_kind(&call.server, &call.tool, &k.to_lowercase()).is_some()
        });
        variant
            || call.arguments.iter().any(|(name, v)| {
                match declared_kind(&call.server, &call.tool, name) {
                    Some("path" | "string" | "url" | "shell") => !v.is_string(),
                    Some("path[]") => !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
                    _ => false,
                }
            })
    }

    pub(super) fn evaluate(rules: &[Rule], call: &Call) -> (Decision, Vec<String>) {
        if !["fs", "web", "sh"].contains(&call.server.as_str()) {
            return (Decision::Deny, vec!["unconfigured-server".to_owned()]);
        }
        let mut contributions: Vec<(Decision, String)> = Vec::new();
        for rule in rules {
            let when = matches(&rule.when, call);
            let unless = rule
                .unless
                .as_ref()
                .map_or(Tri::False, |u| matches(u, call));
            let contributes = if rule.decision == Decision::Allow {
                when == Tri::True && unless == Tri::False
            } else {
                when != Tri::False && unless != Tri::True
            };
            let uncertain =
                when == Tri::Unknown || (rule.unless.is_some() && unless == Tri::Unknown);
            let decision = if rule.decision == Decision::RequireApproval && uncertain {
                Decision::Deny
            } else {
                rule.decision
            };
            if contributes {
                contributions.push((decision, rule.id.clone()));
            }
        }
        let best = contributions.iter().map(|(d, _)| *d).max();
        let mut result = match best {
            None => (Decision::Deny, vec!["default-deny".to_owned()]),
            Some(best) => {
                let mut ids: Vec<String> = contributions
                    .into_iter()
                    .filter(|(d, _)| *d == best)
                    .map(|(_, id)| id)
                    .collect();
                ids.sort();
                (best, ids)
            }
        };
        if type_problem(call) && result.0 <= Decision::Deny {
            result = (Decision::Deny, vec!["argument-type".to_owned()]);
        }
        result
    }
}

#[test]
fn the_reference_evaluator_reads_the_design_example() {
    // A sanity anchor for the model itself, so a disagreement is not blamed on the wrong side.
    let rules = vec![
        Rule {
            id: "read-ws".into(),
            decision: Decision::Allow,
            when: Matcher {
                server: Some(vec!["fs"]),
                effect: Some(vec!["read"]),
                args: vec![("path".into(), Cond::Under("/ws"))],
                ..Matcher::default()
            },
            unless: None,
        },
        Rule {
            id: "deny-env".into(),
            decision: Decision::Deny,
            when: Matcher {
                args: vec![("path".into(), Cond::Glob("**/.env"))],
                ..Matcher::default()
            },
            unless: None,
        },
    ];
    let p = compile(&rules);
    for (path, expected) in [
        ("/ws/a", (Decision::Allow, vec!["read-ws".to_owned()])),
        (
            "/ws/../etc/passwd",
            (Decision::Deny, vec!["default-deny".to_owned()]),
        ),
        (
            "/ws-evil/x",
            (Decision::Deny, vec!["default-deny".to_owned()]),
        ),
        ("/ws/.env/", (Decision::Deny, vec!["deny-env".to_owned()])),
    ] {
        let mut args = Map::new();
        args.insert("path".into(), json!(path));
        let call = Call::tool_call("fs", "read", args);
        assert_eq!(reference::evaluate(&rules, &call), expected, "{path}");
        assert_eq!(decide(&p, &call), expected, "{path}");
    }
}

/// The counterexample to the law as DESIGN §3.4 states it literally: one require_approval rule
/// that does not match gives `default-deny`; if an unknown condition let it fire as an approval
/// request, uncertainty would have loosened the verdict. So an approval rule that holds only
/// possibly contributes `deny` (docs/decisions/0006).
#[test]
fn uncertainty_never_buys_an_approval_request() {
    let rule = |cond: Cond| Rule {
        id: "approve-shared".into(),
        decision: Decision::RequireApproval,
        when: Matcher {
            server: Some(vec!["fs"]),
            args: vec![("path".into(), cond)],
            ..Matcher::default()
        },
        unless: None,
    };
    let mut args = Map::new();
    args.insert("path".into(), json!("~/x"));
    let unknown_path = Call::tool_call("fs", "write", args);
    let mut args = Map::new();
    args.insert("path".into(), json!("/etc/x"));
    let outside = Call::tool_call("fs", "write", args);
    let p = compile(&[rule(Cond::Under("/ws/shared"))]);
    assert_eq!(
        decide(&p, &outside),
        (Decision::Deny, vec!["default-deny".to_owned()])
    );
    assert_eq!(
        decide(&p, &unknown_path),
        (Decision::Deny, vec!["approve-shared".to_owned()])
    );
}
