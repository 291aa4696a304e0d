//! The start-up self-test: the engine must deny calls it can never allow before anything is served.
//!
//! A build whose evaluator allows everything (a bad merge, a feature flag, a miscompiled matcher)
//! would otherwise serve happily and fail open. Two calls are tried: one to a server the loaded
//! policy cannot configure (server names with `__` are invalid), and a path traversal against a
//! small built-in policy that allows reads under `/workspace` only.

use portcullis_policy::{Call, CompiledPolicy, Decision, EvalContext, evaluate};
use serde_json::{Map, Value};

/// A server name no policy can configure (`__` is reserved for namespacing).
const UNCONFIGURED_SERVER: &str = "portcullis__self_test";

/// The built-in policy of the traversal check.
const BUILTIN_POLICY: &str = r"
version: 1
servers:
  fs: { command: [portcullis-self-test], cwd: /workspace }
tools:
  fs.read_text_file: { effect: read, args: { path: path } }
rules:
  - id: read-workspace
    when: { server: fs, effect: read, args: { path: { under: /workspace } } }
    decision: allow
";

/// Runs both checks against `policy` (and the built-in policy).
///
/// # Errors
///
/// A description of the check that did not deny.
pub fn self_test(policy: &CompiledPolicy) -> Result<(), String> {
    let ctx = EvalContext::default();
    let unconfigured = Call::tool_call(UNCONFIGURED_SERVER, "read_text_file", Map::new());
    let verdict = evaluate(policy, &unconfigured, &ctx);
    if verdict.decision < Decision::Deny {
        return Err(format!(
            "a call to the unconfigured server `{UNCONFIGURED_SERVER}` was answered `{}`",
            verdict.decision
        ));
    }

    let builtin =
        CompiledPolicy::from_yaml(BUILTIN_POLICY, "<built-in self-test policy>", &|_| None)
            .map_err(|errors| {
                format!("the built-in self-test policy does not compile: {errors}")
            })?;
    let mut arguments = Map::new();
    arguments.insert("path".to_owned(), Value::from("/workspace/../etc/passwd"));
    let traversal = Call::tool_call("fs", "read_text_file", arguments);
    let verdict = evaluate(&builtin, &traversal, &ctx);
    if verdict.decision < Decision::Deny {
        return Err(format!(
            "reading `/workspace/../etc/passwd` under a policy that allows only `/workspace` was answered `{}`",
            verdict.decision
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_on_an_ordinary_policy() {
        let policy = CompiledPolicy::from_yaml(
            "version: 1\nservers:\n  fs: { command: [x] }\nrules:\n  - id: all\n    when: { server: fs }\n    decision: allow\n",
            "p.yaml",
            &|_| None,
        )
        .unwrap();
        assert_eq!(self_test(&policy), Ok(()));
    }
}
