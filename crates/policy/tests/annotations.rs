//! Tool annotations (`readOnlyHint`, `destructiveHint`) in classification (DESIGN §3.5): they come
//! from the server being guarded, so they may make a call's effect stricter, and loosen it only
//! for an undeclared tool of a server with `trust_annotations: true`, from a vetted definition.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use portcullis_policy::{Call, CompiledPolicy, Decision, EvalContext, ToolHints, evaluate};
use serde_json::{Map, json};

fn policy(trust: bool) -> CompiledPolicy {
    let text = format!(
        r#"
version: 1
servers:
  fs: {{ command: [srv], pin: tofu, trust_annotations: {trust} }}
tools:
  fs.read_text_file: {{ effect: read, args: {{ path: path }} }}
  fs.write_file:     {{ effect: write, args: {{ path: path }} }}
  fs.mixed_*:        {{ effect: read }}
  fs.mixed_a*:       {{ effect: write }}
rules:
  - id: reads
    when: {{ server: fs, effect: read }}
    decision: allow
  - id: unknown-needs-a-human
    when: {{ server: fs, effect: unknown }}
    decision: require_approval
"#
    );
    CompiledPolicy::from_yaml(&text, "p.yaml", &|_| None).unwrap()
}

fn hints(read_only: Option<bool>, destructive: Option<bool>, vetted: bool) -> ToolHints {
    ToolHints {
        read_only,
        destructive,
        vetted,
    }
}

fn decide(p: &CompiledPolicy, tool: &str, hints: Option<ToolHints>) -> (Decision, &'static str) {
    let mut call = Call::tool_call("fs", tool, Map::new());
    call.hints = hints;
    let e = evaluate(p, &call, &EvalContext::default());
    (e.decision, e.effect.as_str())
}

const READ_ONLY: Option<bool> = Some(true);

#[test]
fn an_undeclared_tool_stays_unknown_without_trust() {
    let p = policy(false);
    let vetted_read_only = Some(hints(READ_ONLY, None, true));
    assert_eq!(
        decide(&p, "search", vetted_read_only),
        (Decision::RequireApproval, "unknown")
    );
    assert!(p.can_ever_allow("fs", "search", vetted_read_only.as_ref()));
}

#[test]
fn a_trusted_vetted_read_only_tool_is_read() {
    let p = policy(true);
    assert_eq!(
        decide(&p, "search", Some(hints(READ_ONLY, None, true))),
        (Decision::Allow, "read")
    );
    assert_eq!(
        decide(&p, "search", Some(hints(READ_ONLY, Some(false), true))),
        (Decision::Allow, "read")
    );
}

#[test]
fn trust_needs_a_vetted_definition_that_says_read_only() {
    let p = policy(true);
    for (h, why) in [
        (hints(READ_ONLY, None, false), "not vetted"),
        (hints(READ_ONLY, Some(true), true), "also destructive"),
        (hints(None, Some(false), true), "readOnlyHint absent"),
        (hints(Some(false), None, true), "says it writes"),
    ] {
        assert_eq!(
            decide(&p, "search", Some(h)),
            (Decision::RequireApproval, "unknown"),
            "{why}"
        );
    }
    assert_eq!(
        decide(&p, "search", None),
        (Decision::RequireApproval, "unknown")
    );
}

/// The policy says `read`, the server says it writes: the effect is contested, so `effect: read`
/// and `effect: unknown` are both *unknown* conditions. The allow cannot hold, and the approval
/// rule only possibly holds, which contributes deny (decision 0006): the operator must settle
/// the disagreement in `tools`.
#[test]
fn a_declared_read_that_the_server_says_writes_is_contested() {
    for trust in [false, true] {
        let p = policy(trust);
        for h in [
            hints(Some(false), None, false),
            hints(None, Some(true), false),
            hints(Some(false), Some(true), true),
        ] {
            assert_eq!(
                decide(&p, "read_text_file", Some(h)),
                (Decision::Deny, "unknown"),
                "{h:?}"
            );
        }
        // Saying read-only, or nothing, changes nothing.
        assert_eq!(
            decide(
                &p,
                "read_text_file",
                Some(hints(READ_ONLY, Some(false), true))
            ),
            (Decision::Allow, "read")
        );
        assert_eq!(
            decide(&p, "read_text_file", None),
            (Decision::Allow, "read")
        );
    }
}

#[test]
fn a_contested_effect_still_meets_rules_that_list_both() {
    let p = CompiledPolicy::from_yaml(
        r#"
version: 1
servers:
  fs: { command: [srv] }
tools:
  fs.read_text_file: { effect: read }
rules:
  - id: reads-or-unknown-need-a-human
    when: { server: fs, effect: [read, unknown] }
    decision: require_approval
  - id: no-reads-at-night
    when: { server: fs, effect: read, principal: night }
    decision: deny
"#,
        "p.yaml",
        &|_| None,
    )
    .unwrap();
    let says_writes = Some(hints(Some(false), None, false));
    assert_eq!(
        decide(&p, "read_text_file", says_writes),
        (Decision::RequireApproval, "unknown")
    );
    // A deny written for reads still fires on a contested read.
    let mut call = Call::tool_call("fs", "read_text_file", Map::new());
    call.hints = says_writes;
    call.principal = Some("night".to_owned());
    let e = evaluate(&p, &call, &EvalContext::default());
    assert_eq!(e.decision, Decision::Deny);
    assert_eq!(e.rules, ["no-reads-at-night"]);
}

#[test]
fn a_declaration_is_never_loosened() {
    let p = policy(true);
    let says_read = Some(hints(READ_ONLY, Some(false), true));
    assert_eq!(
        decide(&p, "write_file", says_read),
        (Decision::Deny, "write")
    );
    assert!(!p.can_ever_allow("fs", "write_file", says_read.as_ref()));
    // `mixed_all` matches two entries that disagree: ambiguous, so unknown, whatever it says.
    assert_eq!(
        decide(&p, "mixed_all", says_read),
        (Decision::RequireApproval, "unknown")
    );
}

#[test]
fn listing_agrees_with_calls() {
    let p = CompiledPolicy::from_yaml(
        "version: 1\nservers:\n  fs: { command: [srv], pin: tofu, trust_annotations: true }\nrules:\n  - id: reads\n    when: { server: fs, effect: read }\n    decision: allow\n",
        "p.yaml",
        &|_| None,
    )
    .unwrap();
    let vetted = hints(READ_ONLY, None, true);
    assert!(p.can_ever_allow("fs", "search", Some(&vetted)));
    assert!(!p.can_ever_allow("fs", "search", None));
    assert!(!p.can_ever_allow("fs", "search", Some(&hints(READ_ONLY, None, false))));
}

#[test]
fn annotations_in_a_test_case_file_call() {
    let call = Call::from_json(&json!({
        "server": "fs", "tool": "search",
        "annotations": {"readOnlyHint": true, "vetted": true}
    }))
    .unwrap();
    let e = evaluate(&policy(true), &call, &EvalContext::default());
    assert_eq!(e.decision, Decision::Allow);
}

#[test]
fn a_contested_tool_is_not_listed_when_only_reads_are_allowed() {
    let p = policy(false);
    let says_writes = hints(Some(false), Some(true), false);
    assert!(p.can_ever_allow("fs", "read_text_file", None));
    // `effect: read` and `effect: unknown` are both unknown for it: neither the allow nor the
    // approval rule can ever hold outright.
    assert!(!p.can_ever_allow("fs", "read_text_file", Some(&says_writes)));
}

#[test]
fn trust_without_pin_loosens_nothing() {
    // Only pinned definitions are vetted; hints claimed vetted (by hand, or left over from a
    // policy that had `pin:`) must not loosen a server without it.
    let p = CompiledPolicy::from_yaml(
        "version: 1\nservers:\n  fs: { command: [srv], trust_annotations: true }\nrules:\n  - id: reads\n    when: { server: fs, effect: read }\n    decision: allow\n",
        "p.yaml",
        &|_| None,
    )
    .unwrap();
    let vetted = Some(hints(READ_ONLY, None, true));
    assert_eq!(decide(&p, "search", vetted), (Decision::Deny, "unknown"));
    assert!(!p.can_ever_allow("fs", "search", vetted.as_ref()));
}

#[test]
fn check_warns_when_trust_cannot_take_effect() {
    let codes = |yaml: &str| -> Vec<&'static str> {
        let p = CompiledPolicy::from_yaml(yaml, "p.yaml", &|_| None).unwrap();
        portcullis_policy::check::lint(&p)
            .into_iter()
            .map(|l| l.code)
            .collect()
    };
    let unpinned =
        codes("version: 1\nservers:\n  fs: { command: [srv], trust_annotations: true }\n");
    assert!(
        unpinned.contains(&"trust-annotations-unpinned"),
        "{unpinned:?}"
    );
    let pinned = codes(
        "version: 1\nservers:\n  fs: { command: [srv], trust_annotations: true, pin: tofu }\n",
    );
    assert!(
        !pinned.contains(&"trust-annotations-unpinned"),
        "{pinned:?}"
    );
}
