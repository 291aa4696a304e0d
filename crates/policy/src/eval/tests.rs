//! Unit tests of evaluation: every match field and condition of DESIGN §3.3 and every semantic
//! rule of §3.4, each asserting the exact decision and the exact contributing rule ids.

use serde_json::{Value, json};

use super::*;
use crate::normalize::path::MapResolver;

/// Servers and tools shared by every test; each test adds its own rules.
const BASE: &str = r#"
version: 1
servers:
  fs: { command: [fs-server], cwd: /ws }
  nocwd: { command: [fs-server] }
  web: { url: "http://127.0.0.1:9000/mcp" }
  sh: { command: [sh-server] }
  billing: { command: [billing-server] }
tools:
  fs.read: { effect: read, args: { path: path } }
  fs.read_many: { effect: read, args: { paths: "path[]" } }
  fs.write: { effect: write, args: { path: path, content: string } }
  fs.stat: { effect: read }
  nocwd.read: { effect: read, args: { path: path } }
  web.fetch: { effect: network, args: { url: url } }
  web.fetch_many: { effect: network, args: { urls: "url[]" } }
  sh.run: { effect: exec, args: { command: shell } }
  billing.charge: { effect: payment, args: { amount: number } }
  billing.tag: { effect: write, args: { tags: "string[]" } }
  billing.x*: { effect: read }
  billing.xy*: { effect: write }
hide: [fs.secret_tool]
"#;

fn policy(rules: &str) -> CompiledPolicy {
    let text = format!("{BASE}rules:\n{rules}");
    CompiledPolicy::from_yaml(&text, "test.yaml", &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

fn call(v: Value) -> Call {
    Call::from_json(&v).unwrap()
}

/// `(decision, contributing rule ids)` of one call.
fn decide_with(p: &CompiledPolicy, c: Value, ctx: &EvalContext<'_>) -> (Decision, Vec<String>) {
    let e = evaluate(p, &call(c), ctx);
    (e.decision, e.rules)
}

fn decide(p: &CompiledPolicy, c: Value) -> (Decision, Vec<String>) {
    decide_with(p, c, &EvalContext::default())
}

fn d(decision: Decision, rules: &[&str]) -> (Decision, Vec<String>) {
    (decision, rules.iter().map(|r| (*r).to_owned()).collect())
}

fn read(path: Value) -> Value {
    json!({"server": "fs", "tool": "read", "arguments": {"path": path}})
}

use Decision::{Allow, Deny, KillSession, RequireApproval};

/// An allow on paths under /ws beside a deny on `.env` files: the pair most tests lean on.
const ALLOW_WS_DENY_ENV: &str = r#"
  - id: allow-ws
    when: { server: fs, args: { path: { under: /ws } } }
    decision: allow
  - id: deny-env
    when: { server: fs, args: { path: { glob: "**/.env" } } }
    decision: deny
"#;

#[test]
fn denies_with_default_deny_when_no_rule_matches() {
    let p = policy("  - { id: r, when: { server: fs, tool: read }, decision: allow }\n");
    let e = evaluate(
        &p,
        &call(json!({"server": "fs", "tool": "write"})),
        &EvalContext::default(),
    );
    assert_eq!((e.decision, e.rules.clone()), d(Deny, &["default-deny"]));
    assert_eq!(e.reason_class, ReasonClass::Default);
    assert_eq!(e.public_reason, DEFAULT_DENY_REASON);
    assert_eq!(e.effect, Effect::Write);
}

#[test]
fn denies_a_server_the_policy_does_not_configure() {
    let p = policy("  - { id: r, when: { tool: read }, decision: allow }\n");
    let c = json!({"server": "elsewhere", "tool": "read"});
    assert_eq!(decide(&p, c), d(Deny, &["unconfigured-server"]));
}

#[test]
fn denies_a_hidden_tool_whatever_the_rules_say() {
    let p = policy("  - { id: r, when: { server: fs }, decision: allow }\n");
    let c = json!({"server": "fs", "tool": "secret_tool"});
    assert_eq!(decide(&p, c), d(Deny, &["hidden-tool"]));
}

#[test]
fn strictest_contribution_wins_and_names_every_rule_at_that_level() {
    let rules = r#"
  - { id: a1, when: { server: fs, tool: read }, decision: allow }
  - { id: a2, when: { tool: read }, decision: allow }
  - { id: ra, when: { effect: read }, decision: require_approval }
  - { id: off, enabled: false, when: { server: fs }, decision: kill_session }
"#;
    let p = policy(rules);
    assert_eq!(
        decide(&p, read(json!("/ws/a"))),
        d(RequireApproval, &["ra"])
    );
    let p = policy(&format!(
        "{rules}  - {{ id: dn, when: {{ server: fs }}, decision: deny }}\n"
    ));
    assert_eq!(decide(&p, read(json!("/ws/a"))), d(Deny, &["dn"]));
    let p = policy(&format!(
        "{rules}  - {{ id: k, when: {{ tool: read }}, decision: kill_session }}\n"
    ));
    assert_eq!(decide(&p, read(json!("/ws/a"))), d(KillSession, &["k"]));
    let p = policy(
        "  - { id: a1, when: { server: fs, tool: read }, decision: allow }\n  - { id: a2, when: { tool: read }, decision: allow }\n",
    );
    assert_eq!(decide(&p, read(json!("/ws/a"))), d(Allow, &["a1", "a2"]));
}

#[test]
fn server_and_tool_take_globs_and_lists() {
    let p = policy(
        "  - { id: r, when: { server: \"f*\", tool: [stat, \"re?d\"] }, decision: allow }\n",
    );
    assert_eq!(decide(&p, read(json!("/x"))), d(Allow, &["r"]));
    assert_eq!(
        decide(&p, json!({"server": "fs", "tool": "stat"})),
        d(Allow, &["r"])
    );
    assert_eq!(
        decide(&p, json!({"server": "fs", "tool": "reads"})),
        d(Deny, &["default-deny"])
    );
    assert_eq!(
        decide(&p, json!({"server": "sh", "tool": "read"})),
        d(Deny, &["default-deny"])
    );
}

#[test]
fn method_defaults_to_tools_call() {
    let rules = r#"
  - { id: tools, when: { server: fs }, decision: allow }
  - { id: res, when: { server: fs, method: resources/read, tool: "file:///ws/*" }, decision: require_approval }
"#;
    let p = policy(rules);
    let res = json!({"server": "fs", "tool": "file:///ws/a", "method": "resources/read"});
    assert_eq!(decide(&p, res), d(RequireApproval, &["res"]));
    let prompt = json!({"server": "fs", "tool": "p", "method": "prompts/get"});
    assert_eq!(decide(&p, prompt), d(Deny, &["default-deny"]));
    assert_eq!(decide(&p, read(json!("/a"))), d(Allow, &["tools"]));
}

#[test]
fn ambiguous_resource_uris_never_match_a_glob_with_certainty() {
    // Found by the adversarial suite: `file:///ok/**` allowed `file:///ok/../etc/passwd`.
    let rules = r#"
  - { id: ok, when: { server: fs, method: resources/read, tool: "file:///ok/**" }, decision: allow }
  - { id: etc, when: { server: fs, method: resources/read, tool: "file:///etc/passwd" }, decision: deny }
"#;
    let p = policy(rules);
    let res = |uri: &str| json!({"server": "fs", "tool": uri, "method": "resources/read"});
    assert_eq!(decide(&p, res("file:///ok/a")), d(Allow, &["ok"]));
    assert_eq!(decide(&p, res("file:///ok/a..b/c.")), d(Allow, &["ok"]));
    for uri in [
        "file:///ok/../etc/passwd",
        "file:///ok/./../etc/passwd",
        "file:///ok/%2e%2e/etc/passwd",
        "file:///ok/%252E%252E/etc/passwd",
        "file:///ok/..%2fetc/passwd",
        "file:///ok\\..\\etc/passwd",
        "file:///ok/\u{ff0e}\u{ff0e}/etc/passwd",
        "file:///ok/a\u{0}",
        "file:///ok/%c0%ae%c0%ae/etc/passwd",
    ] {
        // The exact-name deny is found even though the index knows it only by its spelling.
        assert_eq!(decide(&p, res(uri)), d(Deny, &["etc"]), "{uri}");
    }
    // Tool calls are names, not URIs: untouched.
    assert!(!is_ambiguous_resource(&Call::tool_call(
        "fs",
        "..",
        serde_json::Map::new()
    )));
}

#[test]
fn effect_comes_from_the_tools_table_and_undeclared_is_unknown() {
    let rules = r#"
  - { id: reads, when: { effect: read }, decision: allow }
  - { id: unknowns, when: { effect: [unknown, write] }, decision: require_approval }
"#;
    let p = policy(rules);
    assert_eq!(decide(&p, read(json!("/a"))), d(Allow, &["reads"]));
    assert_eq!(
        decide(&p, json!({"server": "fs", "tool": "move"})),
        d(RequireApproval, &["unknowns"])
    );
    // `billing.x*` (read) and `billing.xy*` (write) disagree on `xyz`: never the looser one.
    assert_eq!(
        decide(&p, json!({"server": "billing", "tool": "xa"})),
        d(Allow, &["reads"])
    );
    let e = evaluate(
        &p,
        &call(json!({"server": "billing", "tool": "xyz"})),
        &EvalContext::default(),
    );
    assert_eq!((e.decision, e.effect), (RequireApproval, Effect::Unknown));
}

#[test]
fn principal_and_agent_absent_are_false_on_both_sides() {
    let rules = r#"
  - { id: alice, when: { server: fs, principal: "alice*", agent: claude }, decision: allow }
  - { id: no-mallory, when: { principal: mallory }, decision: deny }
  - { id: no-bot, when: { agent: "bot-*" }, decision: deny }
"#;
    let p = policy(rules);
    assert_eq!(decide(&p, read(json!("/a"))), d(Deny, &["default-deny"]));
    let c = json!({"server": "fs", "tool": "read", "principal": "alice@x", "agent": "claude"});
    assert_eq!(decide(&p, c), d(Allow, &["alice"]));
    let c = json!({"server": "fs", "tool": "read", "principal": "alice", "agent": "bot-7"});
    assert_eq!(decide(&p, c), d(Deny, &["no-bot"]));
    let c = json!({"server": "fs", "tool": "read", "principal": "mallory", "agent": "claude"});
    assert_eq!(decide(&p, c), d(Deny, &["no-mallory"]));
}

#[test]
fn labels_need_every_listed_label() {
    let rules = r#"
  - { id: net, when: { server: web }, decision: allow }
  - { id: tainted, when: { labels: [secret, pii], effect: network }, decision: deny }
"#;
    let p = policy(rules);
    let fetch = |labels: Value| json!({"server": "web", "tool": "fetch", "labels": labels, "arguments": {"url": "https://a.example/"}});
    assert_eq!(decide(&p, fetch(json!(["secret"]))), d(Allow, &["net"]));
    assert_eq!(
        decide(&p, fetch(json!(["pii", "secret", "x"]))),
        d(Deny, &["tainted"])
    );
    let e = evaluate(
        &p,
        &call(fetch(json!(["pii", "secret"]))),
        &EvalContext::default(),
    );
    assert_eq!(e.reason_class, ReasonClass::TaintedSession);
}

#[test]
fn a_condition_on_an_absent_argument_is_false_and_present_false_is_true() {
    let rules = r#"
  - { id: allow-ws, when: { server: fs, args: { path: { under: /ws } } }, decision: allow }
  - { id: deny-mode, when: { server: fs, args: { mode: { equals: unsafe } } }, decision: deny }
  - { id: deny-not, when: { server: fs, args: { mode: { not: { equals: safe } } } }, decision: deny }
  - { id: stat-bare, when: { server: fs, tool: stat, args: { path: { present: false } } }, decision: allow }
  - { id: stat-path, when: { server: fs, tool: stat, args: { path: { present: true } } }, decision: require_approval }
"#;
    let p = policy(rules);
    // An allow that names an argument never allows a call without it; a deny on an optional
    // argument does not fire when it is absent, even under `not`.
    assert_eq!(
        decide(&p, json!({"server": "fs", "tool": "read"})),
        d(Deny, &["default-deny"])
    );
    assert_eq!(decide(&p, read(json!("/ws/a"))), d(Allow, &["allow-ws"]));
    assert_eq!(
        decide(&p, json!({"server": "fs", "tool": "stat"})),
        d(Allow, &["stat-bare"])
    );
    let c = json!({"server": "fs", "tool": "stat", "arguments": {"path": "/ws"}});
    assert_eq!(decide(&p, c), d(RequireApproval, &["stat-path"]));
    let c = json!({"server": "fs", "tool": "read", "arguments": {"path": "/ws", "mode": "unsafe"}});
    assert_eq!(decide(&p, c), d(Deny, &["deny-mode", "deny-not"]));
}

#[test]
fn arrays_hold_for_all_fail_for_none_and_are_unknown_otherwise() {
    let rules = r#"
  - { id: allow-ws, when: { server: fs, args: { paths: { under: /ws } } }, decision: allow }
  - { id: deny-env, when: { server: fs, args: { paths: { glob: "**/.env" } } }, decision: deny }
"#;
    let p = policy(rules);
    let many =
        |paths: Value| json!({"server": "fs", "tool": "read_many", "arguments": {"paths": paths}});
    assert_eq!(
        decide(&p, many(json!(["/ws/a", "b"]))),
        d(Allow, &["allow-ws"])
    );
    // One element outside: `under` is unknown, so the allow does not contribute.
    assert_eq!(
        decide(&p, many(json!(["/ws/a", "/etc/passwd"]))),
        d(Deny, &["default-deny"])
    );
    // One element might be a secret: the deny fires although the other is harmless.
    assert_eq!(
        decide(&p, many(json!(["/ws/a", "/ws/.env"]))),
        d(Deny, &["deny-env"])
    );
    // An empty list is false for both.
    assert_eq!(decide(&p, many(json!([]))), d(Deny, &["default-deny"]));
    let p = policy(
        "  - { id: deny-empty, when: { server: fs, args: { paths: { not: { under: /ws } } } }, decision: deny }\n",
    );
    assert_eq!(decide(&p, many(json!([]))), d(Deny, &["default-deny"]));
}

#[test]
fn a_list_where_one_value_is_declared_is_unknown() {
    let p = policy("  - { id: allow-fs, when: { server: fs }, decision: allow }\n");
    assert_eq!(
        decide(&p, read(json!(["/ws/a"]))),
        d(Deny, &["argument-type"])
    );
    // Undeclared argument kinds accept lists element by element.
    let p = policy(
        "  - { id: deny-x, when: { server: fs, args: { extra: { equals: x } } }, decision: deny }\n  - { id: ok, when: { server: fs }, decision: allow }\n",
    );
    let c =
        json!({"server": "fs", "tool": "read", "arguments": {"path": "/ws", "extra": ["y", "x"]}});
    assert_eq!(decide(&p, c), d(Deny, &["deny-x"]));
    let c =
        json!({"server": "fs", "tool": "read", "arguments": {"path": "/ws", "extra": ["y", "z"]}});
    assert_eq!(decide(&p, c), d(Allow, &["ok"]));
}

#[test]
fn a_mistyped_value_is_unknown_and_a_declared_type_mismatch_denies() {
    let rules = r#"
  - { id: small, when: { server: fs, args: { size: { max: 10 } } }, decision: allow }
  - { id: big, when: { server: fs, args: { size: { min: 100 } } }, decision: deny }
"#;
    let p = policy(rules);
    let c = |size: Value| json!({"server": "fs", "tool": "read", "arguments": {"size": size}});
    assert_eq!(decide(&p, c(json!(5))), d(Allow, &["small"]));
    assert_eq!(decide(&p, c(json!(500))), d(Deny, &["big"]));
    // `"5"` is not a number: unknown, so the allow does not contribute and the deny fires.
    assert_eq!(decide(&p, c(json!("5"))), d(Deny, &["big"]));
    // A declared `number` given as a string is never coerced.
    let p = policy("  - { id: pay, when: { server: billing }, decision: allow }\n");
    let e = evaluate(
        &p,
        &call(json!({"server": "billing", "tool": "charge", "arguments": {"amount": "10"}})),
        &EvalContext::default(),
    );
    assert_eq!(
        (e.decision, e.rules.clone(), e.reason_class),
        (Deny, vec!["argument-type".to_owned()], ReasonClass::Schema)
    );
}

#[test]
fn allow_needs_true_and_a_stricter_rule_fires_on_unknown() {
    let p = policy(ALLOW_WS_DENY_ENV);
    // `~` without a known home: every condition on the path is unknown.
    assert_eq!(decide(&p, read(json!("~/x"))), d(Deny, &["deny-env"]));
    let p = policy(
        "  - { id: allow-ws, when: { server: fs, args: { path: { under: /ws } } }, decision: allow }\n  - { id: ask, when: { server: fs, args: { path: { glob: \"**/.git/**\" } } }, decision: require_approval }\n",
    );
    // An approval rule that only possibly holds denies: a human is never asked about a call
    // the gateway cannot read.
    assert_eq!(decide(&p, read(json!("/ws/a\u{0}b"))), d(Deny, &["ask"]));
    assert_eq!(
        decide(&p, read(json!("/ws/.git/config"))),
        d(RequireApproval, &["ask"])
    );
    assert_eq!(decide(&p, read(json!("/ws/a"))), d(Allow, &["allow-ws"]));
}

#[test]
fn unless_blocks_an_allow_unless_certainly_false_and_a_deny_only_when_true() {
    let rules = r#"
  - id: allow-ws
    when: { server: fs, args: { path: { under: /ws } } }
    unless: { args: { path: { glob: "**/tmp/**" } } }
    decision: allow
  - id: deny-outside
    when: { server: fs }
    unless: { args: { path: { under: /ws } } }
    decision: deny
"#;
    let p = policy(rules);
    assert_eq!(decide(&p, read(json!("/ws/a"))), d(Allow, &["allow-ws"]));
    assert_eq!(
        decide(&p, read(json!("/ws/tmp/a"))),
        d(Deny, &["default-deny"])
    );
    assert_eq!(
        decide(&p, read(json!("/etc/passwd"))),
        d(Deny, &["deny-outside"])
    );
    // `/WS/a` is under `/ws` only on a case-insensitive filesystem: `under` is unknown, so the
    // allow does not contribute and the deny's `unless` does not save the call.
    assert_eq!(decide(&p, read(json!("/WS/a"))), d(Deny, &["deny-outside"]));
    // Unknown `unless` on the allow side (NUL in the path).
    let p = policy(
        "  - { id: a, when: { server: fs }, unless: { args: { path: { glob: \"**/.env\" } } }, decision: allow }\n",
    );
    assert_eq!(
        decide(&p, read(json!("/ws/\u{1}"))),
        d(Deny, &["default-deny"])
    );
    assert_eq!(decide(&p, read(json!("/ws/x"))), d(Allow, &["a"]));
}

#[test]
fn hours_hold_inside_the_window_and_are_unknown_without_a_time() {
    let rules = r#"
  - id: office
    when: { server: fs }
    decision: allow
    hours: { days: [mon, tue, wed, thu, fri], from: "08:00", to: "18:00", tz: Europe/Berlin }
  - id: night-freeze
    when: { server: fs, tool: write }
    decision: deny
    hours: { from: "22:00", to: "06:00" }
"#;
    let p = policy(rules);
    let at = |tool: &str, time: Option<&str>| {
        let mut c = json!({"server": "fs", "tool": tool, "arguments": {"path": "/ws/a"}});
        if let Some(t) = time {
            c["time"] = json!(t);
        }
        c
    };
    // Monday 09:30 in Berlin.
    assert_eq!(
        decide(&p, at("read", Some("2026-01-05T08:30:00Z"))),
        d(Allow, &["office"])
    );
    // Saturday.
    assert_eq!(
        decide(&p, at("read", Some("2026-01-10T10:00:00Z"))),
        d(Deny, &["default-deny"])
    );
    // Monday 18:00 Berlin: `to` is exclusive.
    assert_eq!(
        decide(&p, at("read", Some("2026-01-05T17:00:00Z"))),
        d(Deny, &["default-deny"])
    );
    // No time: the allow does not contribute, the deny does.
    assert_eq!(decide(&p, at("read", None)), d(Deny, &["default-deny"]));
    assert_eq!(decide(&p, at("write", None)), d(Deny, &["night-freeze"]));
    assert_eq!(
        decide(&p, at("write", Some("2026-01-05T08:30:00Z"))),
        d(Allow, &["office"])
    );
    assert_eq!(
        decide(&p, at("write", Some("2026-01-05T23:30:00Z"))),
        d(Deny, &["night-freeze"])
    );
}

#[test]
fn paths_and_urls_cover_declared_arguments_and_are_false_without_any() {
    let rules = r#"
  - { id: allow-ws, when: { server: fs, paths: { under: /ws } }, decision: allow }
  - { id: deny-env, when: { paths: { glob: "**/.env" } }, decision: deny }
  - { id: allow-https, when: { urls: { scheme: https } }, decision: allow }
"#;
    let p = policy(rules);
    let c = json!({"server": "fs", "tool": "write", "arguments": {"path": "/ws/a", "content": "/ws/.env"}});
    assert_eq!(decide(&p, c), d(Allow, &["allow-ws"]));
    let c = json!({"server": "fs", "tool": "read_many", "arguments": {"paths": ["/ws/a", "/ws/b/.env"]}});
    assert_eq!(decide(&p, c), d(Deny, &["deny-env"]));
    // `stat` declares no arguments and `move` is undeclared: `paths` is false.
    let c = json!({"server": "fs", "tool": "stat", "arguments": {"path": "/ws/a"}});
    assert_eq!(decide(&p, c), d(Deny, &["default-deny"]));
    let c = json!({"server": "fs", "tool": "move", "arguments": {"path": "/ws/a"}});
    assert_eq!(decide(&p, c), d(Deny, &["default-deny"]));
    // Declared but not carried: false.
    assert_eq!(
        decide(&p, json!({"server": "fs", "tool": "read"})),
        d(Deny, &["default-deny"])
    );
    let fetch =
        |urls: Value| json!({"server": "web", "tool": "fetch_many", "arguments": {"urls": urls}});
    assert_eq!(
        decide(
            &p,
            fetch(json!(["https://a.example/", "https://b.example/"]))
        ),
        d(Allow, &["allow-https"])
    );
    assert_eq!(
        decide(
            &p,
            fetch(json!(["https://a.example/", "http://b.example/"]))
        ),
        d(Deny, &["default-deny"])
    );
    assert_eq!(
        decide(
            &p,
            json!({"server": "web", "tool": "other", "arguments": {"url": "https://a/"}})
        ),
        d(Deny, &["default-deny"])
    );
}

#[test]
fn values_look_at_every_string_anywhere_and_are_false_without_any() {
    let rules = r#"
  - { id: ok, when: { server: sh }, decision: allow }
  - { id: no-keys, when: { values: { secret: true } }, decision: deny }
  - { id: short, when: { server: sh, tool: t, values: { max_length: 3 } }, decision: require_approval }
"#;
    let p = policy(rules);
    let c = |args: Value| json!({"server": "sh", "tool": "t", "arguments": args});
    let key = "AKIAIOSFODNN7EXAMPLE";
    assert_eq!(
        decide(&p, c(json!({"a": {"b": [1, {"c": key}]}}))),
        d(Deny, &["no-keys"])
    );
    assert_eq!(
        decide(&p, c(json!({"a": "abc", "b": ["de"]}))),
        d(RequireApproval, &["short"])
    );
    // No strings at all: `values` is false, so only the server-wide allow contributes.
    assert_eq!(
        decide(&p, c(json!({"a": 1, "b": [true, null]}))),
        d(Allow, &["ok"])
    );
    assert_eq!(decide(&p, c(json!({"a": "abcd"}))), d(Allow, &["ok"]));
}

#[test]
fn any_and_not_follow_kleene_logic() {
    let rules = r#"
  - id: allow-any
    when: { server: fs, any: [ { args: { path: { under: /ws } } }, { tool: stat } ] }
    decision: allow
  - id: deny-not
    when: { server: fs, tool: read, not: { args: { path: { under: /ws } } } }
    decision: deny
"#;
    let p = policy(rules);
    // any(unknown, true) = true.
    let c = json!({"server": "fs", "tool": "stat", "arguments": {"path": "~/x"}});
    assert_eq!(decide(&p, c), d(Allow, &["allow-any"]));
    // any(unknown, false) = unknown: no allow; not(unknown) = unknown: the deny fires.
    assert_eq!(decide(&p, read(json!("~/x"))), d(Deny, &["deny-not"]));
    assert_eq!(decide(&p, read(json!("/ws/x"))), d(Allow, &["allow-any"]));
    assert_eq!(decide(&p, read(json!("/etc"))), d(Deny, &["deny-not"]));
    // Value-level `any` and `not`.
    let p = policy(
        "  - { id: a, when: { server: fs, args: { path: { any: [ { under: /ws }, { under: /tmp } ], not: { glob: \"**/.git/**\" } } } }, decision: allow }\n",
    );
    assert_eq!(decide(&p, read(json!("/tmp/x"))), d(Allow, &["a"]));
    assert_eq!(
        decide(&p, read(json!("/tmp/.git/x"))),
        d(Deny, &["default-deny"])
    );
    assert_eq!(
        decide(&p, read(json!("/TMP/x"))),
        d(Deny, &["default-deny"])
    );
}

#[test]
fn json_pointer_arguments_reach_into_objects_and_arrays() {
    let rules = r#"
  - { id: allow-opt, when: { server: sh, args: { /options/dir: { under: /ws } } }, decision: allow }
  - { id: deny-first, when: { server: sh, args: { /items/0/name: { equals: root }, "/a~1b": { present: true } } }, decision: deny }
"#;
    let p = policy(rules);
    let c = |args: Value| json!({"server": "sh", "tool": "t", "arguments": args});
    assert_eq!(
        decide(&p, c(json!({"options": {"dir": "/ws/x"}}))),
        d(Allow, &["allow-opt"])
    );
    assert_eq!(
        decide(&p, c(json!({"options": {}}))),
        d(Deny, &["default-deny"])
    );
    // Through a scalar: the shape is not what the rule expects, so unknown.
    assert_eq!(
        decide(&p, c(json!({"options": "/ws"}))),
        d(Deny, &["default-deny"])
    );
    let c2 = c(json!({"options": {"dir": "/ws"}, "items": [{"name": "root"}], "a/b": 1}));
    assert_eq!(decide(&p, c2), d(Deny, &["deny-first"]));
    let c3 =
        c(json!({"options": {"dir": "/ws"}, "items": [{"name": "x"}, {"name": "root"}], "a/b": 1}));
    assert_eq!(decide(&p, c3), d(Allow, &["allow-opt"]));
    let c4 = c(json!({"options": {"dir": "/ws"}, "items": "root", "a/b": 1}));
    assert_eq!(decide(&p, c4), d(Deny, &["deny-first"]));
}

#[test]
fn a_case_variant_of_a_declared_argument_key_is_a_schema_denial() {
    let p = policy(ALLOW_WS_DENY_ENV);
    let c =
        json!({"server": "fs", "tool": "read", "arguments": {"path": "/ws/a", "PATH": "/ws/.env"}});
    assert_eq!(decide(&p, c), d(Deny, &["argument-type"]));
    let c = json!({"server": "fs", "tool": "read", "arguments": {"Path": "/ws/a"}});
    assert_eq!(decide(&p, c), d(Deny, &["argument-type"]));
    // Fullwidth key, folded by NFKC.
    let c =
        json!({"server": "fs", "tool": "read", "arguments": {"path": "/ws/a", "ｐａｔｈ": "/etc"}});
    assert_eq!(decide(&p, c), d(Deny, &["argument-type"]));
}

#[test]
fn equals_on_a_path_compares_normalized_readings() {
    let p = policy(
        "  - { id: deny-passwd, when: { server: fs, args: { path: { equals: /etc/passwd } } }, decision: deny }\n  - { id: ok, when: { server: fs }, decision: allow }\n",
    );
    for spelling in [
        "/etc/passwd",
        "/etc//passwd/",
        "/ws/../etc/passwd",
        "../etc/passwd",
        "/etc/./PASSWD",
        "/ws/%2e%2e/etc/passwd",
    ] {
        assert_eq!(
            decide(&p, read(json!(spelling))),
            d(Deny, &["deny-passwd"]),
            "{spelling}"
        );
    }
    assert_eq!(decide(&p, read(json!("/etc/passwd2"))), d(Allow, &["ok"]));
}

#[test]
fn under_holds_only_when_every_reading_stays_inside() {
    let p = policy(ALLOW_WS_DENY_ENV);
    for inside in ["/ws", "/ws/a/b", "a/b", "./a", "/ws/a/../b", "//ws//a/"] {
        assert_eq!(
            decide(&p, read(json!(inside))),
            d(Allow, &["allow-ws"]),
            "{inside}"
        );
    }
    for outside in ["/ws/../etc/passwd", "/ws-evil/x", "/", "../x", "/etc/ws"] {
        assert_eq!(
            decide(&p, read(json!(outside))),
            d(Deny, &["default-deny"]),
            "{outside}"
        );
    }
    // Readings that disagree: `under` is unknown, never allowed; the `.env` deny is false.
    for hostile in [
        "/ws/%2e%2e/etc",
        "/ws/..%2fetc",
        "/ws/%252e%252e/etc",
        "/ws\\..\\etc",
        "/ws/．．/etc",
        "/WS/a",
        "/ws/.. /etc",
    ] {
        assert_eq!(
            decide(&p, read(json!(hostile))),
            d(Deny, &["default-deny"]),
            "{hostile}"
        );
    }
    // Spellings no reading makes certain: every condition on them is unknown, so the deny fires.
    for uncertain in [
        "/ws/a\u{0}",
        "/ws/\u{202e}x",
        "/ws/a\u{200b}",
        "C:/ws/a",
        "/ws/con",
        "/ws/NUL.txt",
        "~/a",
        "/ws/a:stream",
        "/ws/%00",
        "/ws/%c0%ae%c0%ae/etc",
    ] {
        assert_eq!(
            decide(&p, read(json!(uncertain))),
            d(Deny, &["deny-env"]),
            "{uncertain}"
        );
    }
    let long = format!("/ws/{}", "a/".repeat(2100));
    assert_eq!(decide(&p, read(json!(long))), d(Deny, &["deny-env"]));
    // Relative paths need the server's working directory.
    let c = json!({"server": "nocwd", "tool": "read", "arguments": {"path": "a"}});
    let p = policy(
        "  - { id: allow-ws, when: { server: nocwd, args: { path: { under: /ws } } }, decision: allow }\n",
    );
    assert_eq!(decide(&p, c), d(Deny, &["default-deny"]));
}

#[test]
fn deny_globs_match_every_reading_case_insensitively() {
    let p = policy(ALLOW_WS_DENY_ENV);
    assert_eq!(decide(&p, read(json!("/ws/.env"))), d(Deny, &["deny-env"]));
    for variant in [
        "/ws/.ENV",
        "/ws/%2eenv",
        "/ws/.env.",
        "/ws/.env ",
        "/ws/sub\\.env",
        "/ws/.env/",
        "/ws/ｘ/../.env",
    ] {
        assert_eq!(
            decide(&p, read(json!(variant))),
            d(Deny, &["deny-env"]),
            "{variant}"
        );
    }
    assert_eq!(
        decide(&p, read(json!("/ws/.envrc"))),
        d(Allow, &["allow-ws"])
    );
}

#[test]
fn symlinks_are_readings_for_servers_sharing_the_filesystem() {
    let p = policy(ALLOW_WS_DENY_ENV);
    let mut fs = MapResolver::new();
    fs.add_symlink("/ws/link", "/etc")
        .add_symlink("/ws/secrets", "/ws/cfg/.env");
    let ctx = EvalContext {
        resolver: Some(&fs),
    };
    assert_eq!(
        decide_with(&p, read(json!("/ws/link/passwd")), &ctx),
        d(Deny, &["default-deny"])
    );
    assert_eq!(
        decide_with(&p, read(json!("/ws/secrets")), &ctx),
        d(Deny, &["deny-env"])
    );
    assert_eq!(
        decide_with(&p, read(json!("/ws/other")), &ctx),
        d(Allow, &["allow-ws"])
    );
    // A URL server never shares the filesystem: its paths are read lexically only.
    let p = policy(
        "  - { id: allow-ws, when: { server: web, args: { path: { under: /ws } } }, decision: allow }\n",
    );
    let c = json!({"server": "web", "tool": "get", "arguments": {"path": "/ws/link/passwd"}});
    assert_eq!(decide_with(&p, c, &ctx), d(Allow, &["allow-ws"]));
}

#[test]
fn the_index_never_drops_a_rule_that_could_match() {
    let rules = r#"
  - { id: literal, when: { server: fs, tool: read }, decision: allow }
  - { id: glob-tool, when: { server: fs, tool: "wr*" }, decision: require_approval }
  - { id: in-any, when: { server: fs, any: [ { tool: stat }, { tool: move } ] }, decision: deny }
  - { id: server-glob, when: { server: "*s", tool: [read, other] }, decision: require_approval }
  - { id: no-server, when: { tool: "st?t" }, decision: kill_session }
  - { id: in-not, when: { server: sh, not: { tool: run } }, decision: deny }
"#;
    let p = policy(rules);
    assert_eq!(
        decide(&p, read(json!("/a"))),
        d(RequireApproval, &["server-glob"])
    );
    assert_eq!(
        decide(&p, json!({"server": "fs", "tool": "write"})),
        d(RequireApproval, &["glob-tool"])
    );
    assert_eq!(
        decide(&p, json!({"server": "fs", "tool": "move"})),
        d(Deny, &["in-any"])
    );
    assert_eq!(
        decide(&p, json!({"server": "fs", "tool": "stat"})),
        d(KillSession, &["no-server"])
    );
    assert_eq!(
        decide(&p, json!({"server": "sh", "tool": "other"})),
        d(Deny, &["in-not"])
    );
    assert_eq!(
        decide(&p, json!({"server": "sh", "tool": "run"})),
        d(Deny, &["default-deny"])
    );
}

#[test]
fn explain_names_the_unknown_condition_and_why() {
    let p = policy(ALLOW_WS_DENY_ENV);
    let e = explain(&p, &call(read(json!("~/x"))), &EvalContext::default());
    assert_eq!(e.decision, Deny);
    let allow = e.trace.iter().find(|t| t.rule == "allow-ws").unwrap();
    assert_eq!((allow.when, allow.contributed), (Tri::Unknown, false));
    assert!(
        allow
            .notes
            .iter()
            .any(|n| n.contains("args.path") && n.contains("`~`")),
        "{:?}",
        allow.notes
    );
}

/// The tool name that makes the evaluator panic (test builds only).
pub(super) const PANIC_TOOL: &str = "__portcullis_test_panic__";

#[test]
fn a_panic_inside_evaluation_is_a_deny() {
    let p = policy("  - { id: everything, when: { server: fs }, decision: allow }\n");
    let e = evaluate(
        &p,
        &call(json!({"server": "fs", "tool": PANIC_TOOL, "arguments": {}})),
        &EvalContext::default(),
    );
    assert_eq!(e.decision, Deny);
    assert_eq!(e.rules, ["internal-error"]);
    assert_eq!(e.reason_class, ReasonClass::Internal);
}

/// The reason names each contributor at the winning strictness, in rule order: `id: reason` or
/// `id (decision)`, `; ` between, and says when an approval rule denied because it was uncertain.
#[test]
fn reason_names_every_contributor_in_order() {
    let p = policy(
        r#"
  - { id: ask-a, when: { server: fs, tool: write }, decision: require_approval, reason: writes are reviewed }
  - { id: ask-b, when: { server: fs, effect: write }, decision: require_approval }
"#,
    );
    let e = evaluate(
        &p,
        &call(
            json!({"server": "fs", "tool": "write", "arguments": {"path": "/ws/a", "content": "x"}}),
        ),
        &EvalContext::default(),
    );
    assert_eq!(e.decision, RequireApproval);
    assert_eq!(
        e.reason,
        "ask-a: writes are reviewed; ask-b (require_approval)"
    );
}

#[test]
fn reason_says_an_uncertain_approval_rule_denied() {
    let p = policy(
        r#"
  - { id: ask-ws, when: { server: fs, args: { path: { under: /ws } } }, decision: require_approval }
  - { id: deny-env, when: { server: fs, args: { path: { glob: "**/.env" } } }, decision: deny, reason: secrets }
"#,
    );
    // A NUL in the path: every path condition is unknown.
    let e = evaluate(
        &p,
        &call(read(json!("/ws/a\u{0}b"))),
        &EvalContext::default(),
    );
    assert_eq!(e.decision, Deny);
    assert_eq!(
        e.reason,
        "ask-ws (require_approval); a condition is uncertain, so denied rather than asking a human; deny-env: secrets"
    );
}
