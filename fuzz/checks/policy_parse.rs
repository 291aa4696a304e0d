//! Property of `policy_parse`: `CompiledPolicy::from_yaml` never panics on any text, and a policy
//! that compiles can be evaluated (a fixed call) without the evaluator failing internally, and
//! denies a call to a server it does not configure.

use portcullis_policy::{Call, CompiledPolicy, Decision, EvalContext, evaluate};

/// Panics when the property fails for `data`.
pub(crate) fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = CompiledPolicy::from_yaml(text, "fuzz.yaml", &|_| Some("x".to_owned())) else {
        return;
    };
    let args = serde_json::json!({"path": "/ws/a", "url": "http://127.0.0.1/", "command": "ls"});
    let args = args.as_object().cloned().unwrap_or_default();
    for server in ["fs", "echo", "a"] {
        let call = Call::tool_call(server, "read_file", args.clone());
        let verdict = evaluate(&policy, &call, &EvalContext::default());
        assert!(
            !verdict.rules.iter().any(|r| r == "internal-error"),
            "the evaluator failed: {}",
            verdict.reason
        );
    }
    let stranger = Call::tool_call("no-such-server-configured", "x", args);
    assert_ne!(
        evaluate(&policy, &stranger, &EvalContext::default()).decision,
        Decision::Allow,
        "an unconfigured server was allowed"
    );
}
