//! Value conditions of DESIGN §3.3 through the public API: `host`, `private_address`, `scheme`
//! and `port` on hostile URLs, `command` on obfuscated shell, `secret`, `contains`,
//! `max_length`, `regex`, `type`, `one_of`, exact decimal `min`/`max` and `equals` across JSON
//! types. Each test asserts the exact decision and the exact contributing rule ids.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly on a broken fixture"
)]

use portcullis_policy::{Call, CompiledPolicy, Decision, EvalContext, evaluate};
use serde_json::{Value, json};

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

use Decision::{Allow, Deny, KillSession, RequireApproval};

#[test]
fn min_and_max_compare_decimals_exactly() {
    let p = policy(
        "  - { id: cap, when: { server: billing, tool: charge, args: { amount: { min: 1, max: 50000 } } }, decision: allow }\n",
    );
    let charge = |amount: &str| {
        let args: Value = serde_json::from_str(&format!("{{\"amount\": {amount}}}")).unwrap();
        json!({"server": "billing", "tool": "charge", "arguments": args})
    };
    for ok in [
        "50000",
        "50000.0",
        "5e4",
        "1",
        "0.1e1",
        "49999.999999999999999999",
    ] {
        assert_eq!(decide(&p, charge(ok)), d(Allow, &["cap"]), "{ok}");
    }
    for over in [
        "50000.0000000000001",
        "50001",
        "5.0000000000000001e4",
        "1e400",
        "0.9999999999999999999",
        "-5",
    ] {
        assert_eq!(
            decide(&p, charge(over)),
            d(Deny, &["default-deny"]),
            "{over}"
        );
    }
}

#[test]
fn equals_across_json_types_is_unknown() {
    let rules = r#"
  - { id: allow-1000, when: { server: sh, args: { n: { equals: 1000 } } }, decision: allow }
  - { id: deny-1000, when: { server: sh, args: { m: { one_of: [1000, 2000] } } }, decision: deny }
"#;
    let p = policy(rules);
    let c = |args: Value| json!({"server": "sh", "tool": "t", "arguments": args});
    assert_eq!(decide(&p, c(json!({"n": 1000}))), d(Allow, &["allow-1000"]));
    assert_eq!(
        decide(&p, c(json!({"n": 1000.0}))),
        d(Allow, &["allow-1000"])
    );
    // A server may coerce `"1000"` to `1000`: not certainly unequal, so unknown.
    assert_eq!(
        decide(&p, c(json!({"n": "1000"}))),
        d(Deny, &["default-deny"])
    );
    assert_eq!(
        decide(&p, c(json!({"n": 1000, "m": "1000"}))),
        d(Deny, &["deny-1000"])
    );
    assert_eq!(
        decide(&p, c(json!({"n": 1000, "m": 999}))),
        d(Allow, &["allow-1000"])
    );
    assert_eq!(
        decide(&p, c(json!({"n": 1000, "m": true}))),
        d(Deny, &["deny-1000"])
    );
}

#[test]
fn host_private_address_scheme_and_port_see_through_hostile_urls() {
    let rules = r#"
  - { id: allow-public, when: { server: web, urls: { scheme: https, port: 443, private_address: false, host: "*.example.com" } }, decision: allow }
  - { id: deny-private, when: { urls: { private_address: true } }, decision: deny }
  - { id: kill-metadata, when: { args: { url: { host: ["169.254.169.254", "metadata.google.internal"] } } }, decision: kill_session }
"#;
    let p = policy(rules);
    let fetch = |url: &str| json!({"server": "web", "tool": "fetch", "arguments": {"url": url}});
    assert_eq!(
        decide(&p, fetch("https://api.example.com/v1")),
        d(Allow, &["allow-public"])
    );
    assert_eq!(
        decide(&p, fetch("HTTPS://API.EXAMPLE.COM:443/")),
        d(Allow, &["allow-public"])
    );
    for private in [
        "http://127.1/",
        "http://0x7f.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost./",
        "https://intranet/",
        "http://0/",
        "http://１２７.０.０.１/",
    ] {
        assert_eq!(
            decide(&p, fetch(private)),
            d(Deny, &["deny-private"]),
            "{private}"
        );
    }
    assert_eq!(
        decide(&p, fetch("http://169.254.169.254/latest/")),
        d(KillSession, &["kill-metadata"])
    );
    assert_eq!(
        decide(&p, fetch("http://metadata.google.internal./")),
        d(KillSession, &["kill-metadata"])
    );
    // Parsers disagree on the host: WHATWG reads `a.example.com`, RFC 3986 reads `127.0.0.1`.
    assert_eq!(
        decide(&p, fetch("https://a.example.com\\@127.0.0.1/")),
        d(Deny, &["deny-private"])
    );
    // Whitespace makes the URL unknown: every stricter rule on it fires, the strictest wins.
    assert_eq!(
        decide(&p, fetch("https://a.example.com /x")),
        d(KillSession, &["kill-metadata"])
    );
    assert_eq!(
        decide(&p, fetch("https://a.example.com:8443/")),
        d(Deny, &["default-deny"])
    );
    assert_eq!(
        decide(&p, fetch("http://a.example.com/")),
        d(Deny, &["default-deny"])
    );
}

#[test]
fn command_patterns_match_only_one_plain_simple_command() {
    let rules = r#"
  - { id: safe, when: { server: sh, args: { command: { command: ["git status", "ls *"] } } }, decision: allow }
  - { id: no-rm, when: { server: sh, args: { command: { command: "rm *" } } }, decision: deny }
"#;
    let p = policy(rules);
    let run = |cmd: &str| json!({"server": "sh", "tool": "run", "arguments": {"command": cmd}});
    for ok in [
        "git status",
        "g\"i\"t 'status'",
        "  git   status ",
        "ls -la /ws",
        "ls",
    ] {
        assert_eq!(decide(&p, run(ok)), d(Allow, &["safe"]), "{ok}");
    }
    for obfuscated in [
        "git status; rm -rf /",
        "git status && id",
        "git status | sh",
        "ls $(rm -rf /)",
        "ls `id`",
        "ls > /etc/x",
        "FOO=1 git status",
        "git status\nrm -rf /",
        "ls *",
        "ls ${HOME}",
        "eval git status",
        "git\u{200b} status",
    ] {
        assert_eq!(
            decide(&p, run(obfuscated)),
            d(Deny, &["no-rm"]),
            "{obfuscated}"
        );
    }
    assert_eq!(decide(&p, run("r\\m -rf /")), d(Deny, &["no-rm"]));
    assert_eq!(decide(&p, run("git push")), d(Deny, &["default-deny"]));
}

#[test]
fn secret_contains_max_length_and_regex() {
    let rules = r#"
  - { id: ok, when: { server: sh }, decision: allow }
  - { id: no-secret, when: { server: sh, args: { body: { secret: true } } }, decision: deny }
  - { id: no-password, when: { server: sh, args: { body: { contains: password } } }, decision: deny }
  - { id: too-long, when: { server: sh, args: { body: { not: { max_length: 10 } } } }, decision: require_approval }
  - { id: drop-table, when: { server: sh, args: { sql: { regex: "drop\\s+table" } } }, decision: kill_session }
"#;
    let p = policy(rules);
    let c = |args: Value| json!({"server": "sh", "tool": "t", "arguments": args});
    assert_eq!(decide(&p, c(json!({"body": "hello"}))), d(Allow, &["ok"]));
    assert_eq!(
        decide(&p, c(json!({"body": "hello wonderful world"}))),
        d(RequireApproval, &["too-long"])
    );
    assert_eq!(
        decide(
            &p,
            c(json!({"body": "ghp_0123456789abcdefghijABCDEFGHIJ012345"}))
        ),
        d(Deny, &["no-secret"])
    );
    assert_eq!(
        decide(
            &p,
            c(
                json!({"body": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----"})
            )
        ),
        d(Deny, &["no-secret"])
    );
    // `contains` and `regex` compare exactly and case-folded; a case variant is unknown.
    assert_eq!(
        decide(&p, c(json!({"body": "password"}))),
        d(Deny, &["no-password"])
    );
    assert_eq!(
        decide(&p, c(json!({"body": "PassWord"}))),
        d(Deny, &["no-password"])
    );
    assert_eq!(
        decide(&p, c(json!({"sql": "select 1; DROP  TABLE x"}))),
        d(KillSession, &["drop-table"])
    );
    assert_eq!(decide(&p, c(json!({"sql": "select 1"}))), d(Allow, &["ok"]));
    // `max_length` counts characters, not bytes.
    assert_eq!(
        decide(&p, c(json!({"body": "ééééééééé"}))),
        d(Allow, &["ok"])
    );
    // A number is mistyped for `contains` and `max_length`: both unknown, so the deny fires and
    // the approval rule, holding only possibly, denies too.
    assert_eq!(
        decide(&p, c(json!({"body": 12}))),
        d(Deny, &["no-password", "too-long"])
    );
    let p = policy(
        "  - { id: too-long, when: { server: sh, args: { body: { not: { max_length: 10 } } } }, decision: require_approval }\n",
    );
    // Unknown on an approval rule denies rather than asks.
    assert_eq!(decide(&p, c(json!({"body": 12}))), d(Deny, &["too-long"]));
    assert_eq!(
        decide(&p, c(json!({"body": "much longer than ten"}))),
        d(RequireApproval, &["too-long"])
    );
}

#[test]
fn type_and_one_of() {
    let rules = r#"
  - { id: ok, when: { server: sh, args: { mode: { one_of: [fast, slow] }, n: { type: integer } } }, decision: allow }
"#;
    let p = policy(rules);
    let c = |args: Value| json!({"server": "sh", "tool": "t", "arguments": args});
    assert_eq!(
        decide(&p, c(json!({"mode": "slow", "n": 3}))),
        d(Allow, &["ok"])
    );
    assert_eq!(
        decide(&p, c(json!({"mode": "slow", "n": 3.5}))),
        d(Deny, &["default-deny"])
    );
    assert_eq!(
        decide(&p, c(json!({"mode": "Slow", "n": 3}))),
        d(Deny, &["default-deny"])
    );
}
