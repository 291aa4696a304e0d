//! DESIGN §3.1's example policy gives the verdicts issue 2's acceptance lists.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use portcullis_policy::normalize::path::MapResolver;
use portcullis_policy::{
    Call, CompiledPolicy, Decision, EvalContext, ReasonClass, evaluate, explain,
};
use serde_json::{Value, json};

fn policy() -> CompiledPolicy {
    let text = include_str!("../../../examples/design.yaml");
    CompiledPolicy::from_yaml(text, "examples/design.yaml", &|v| {
        (v == "SEARCH_TOKEN").then(|| "t".to_owned())
    })
    .expect("the design example loads")
}

fn call(server: &str, tool: &str, args: Value) -> Call {
    Call::tool_call(server, tool, args.as_object().cloned().unwrap_or_default())
}

fn decide(c: &Call) -> (Decision, Vec<String>) {
    let e = evaluate(&policy(), c, &EvalContext::default());
    (e.decision, e.rules)
}

#[test]
fn read_under_workspace_is_allowed() {
    let (d, rules) = decide(&call(
        "fs",
        "read_text_file",
        json!({"path": "/workspace/src/main.rs"}),
    ));
    assert_eq!(d, Decision::Allow);
    assert_eq!(rules, vec!["read-workspace"]);
}

#[test]
fn traversal_out_of_workspace_is_denied() {
    let (d, rules) = decide(&call(
        "fs",
        "read_text_file",
        json!({"path": "/workspace/../etc/passwd"}),
    ));
    assert_eq!(d, Decision::Deny);
    assert_eq!(rules, vec!["default-deny"]);
}

#[test]
fn sibling_prefix_is_not_under() {
    let (d, _) = decide(&call(
        "fs",
        "read_text_file",
        json!({"path": "/workspace-evil/x"}),
    ));
    assert_eq!(d, Decision::Deny);
}

#[test]
fn env_file_with_trailing_slash_is_denied_by_the_secret_rule() {
    let (d, rules) = decide(&call(
        "fs",
        "read_text_file",
        json!({"path": "/workspace/.env/"}),
    ));
    assert_eq!(d, Decision::Deny);
    assert_eq!(rules, vec!["deny-secrets"]);
}

#[test]
fn write_requires_approval() {
    let e = evaluate(
        &policy(),
        &call(
            "fs",
            "write_file",
            json!({"path": "/workspace/a.txt", "content": "x"}),
        ),
        &EvalContext::default(),
    );
    assert_eq!(e.decision, Decision::RequireApproval);
    assert_eq!(e.rules, vec!["approve-writes"]);
    assert_eq!(e.reason_class, ReasonClass::Approval);
    assert_eq!(
        e.approval.and_then(|a| a.ttl).map(|t| t.seconds()),
        Some(600)
    );
}

#[test]
fn undeclared_tool_counts_as_a_mutation() {
    let e = evaluate(
        &policy(),
        &call("fs", "edit_file", json!({"path": "/workspace/a.txt"})),
        &EvalContext::default(),
    );
    assert_eq!(e.decision, Decision::RequireApproval);
    assert_eq!(e.effect.as_str(), "unknown");
}

#[test]
fn unconfigured_server_is_denied() {
    let (d, rules) = decide(&call("billing", "create_charge", json!({"amount": 10})));
    assert_eq!(d, Decision::Deny);
    assert_eq!(rules, vec!["unconfigured-server"]);
}

#[test]
fn hidden_tool_is_denied() {
    let (d, rules) = decide(&call(
        "fs",
        "move_file",
        json!({"source": "/workspace/a", "destination": "/workspace/b"}),
    ));
    assert_eq!(d, Decision::Deny);
    assert_eq!(rules, vec!["hidden-tool"]);
}

#[test]
fn encoded_and_case_variants_of_secrets_are_denied() {
    for path in [
        "/workspace/.ENV",
        "/workspace/%2eenv",
        "/workspace/.env.",
        "/workspace/.env ",
        "/workspace/sub/..\\.env",
        "/workspace/.ssh/id_rsa",
        "/workspace/\u{FF0E}env",
    ] {
        let (d, _) = decide(&call("fs", "read_text_file", json!({"path": path})));
        assert_eq!(d, Decision::Deny, "{path}");
    }
}

#[test]
fn symlink_out_of_the_workspace_is_denied() {
    let mut fs = MapResolver::new();
    fs.add_symlink("/workspace/link", "/etc");
    let p = policy();
    let c = call(
        "fs",
        "read_text_file",
        json!({"path": "/workspace/link/passwd"}),
    );
    let e = evaluate(
        &p,
        &c,
        &EvalContext {
            resolver: Some(&fs),
        },
    );
    assert_eq!(e.decision, Decision::Deny);
    let e = explain(
        &p,
        &c,
        &EvalContext {
            resolver: Some(&fs),
        },
    );
    let notes: Vec<&String> = e.trace.iter().flat_map(|t| &t.notes).collect();
    assert!(notes.iter().any(|n| n.contains("/etc/passwd")), "{notes:?}");
}

#[test]
fn mistyped_declared_argument_is_denied_as_schema() {
    let e = evaluate(
        &policy(),
        &call("fs", "read_text_file", json!({"path": 42})),
        &EvalContext::default(),
    );
    assert_eq!(e.decision, Decision::Deny);
    assert_eq!(e.reason_class, ReasonClass::Schema);
}

#[test]
fn spend_cap_is_unreachable_without_a_billing_server() {
    let lints = portcullis_policy::check::lint(&policy());
    assert!(
        lints
            .iter()
            .any(|l| l.code == "unreachable-rule" && l.rule.as_deref() == Some("spend-cap")),
        "{lints:?}"
    );
}
