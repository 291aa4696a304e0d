//! Human approvals and scope leases: what binds an approval to a call, the defaults, and whether a
//! lease covers a call. The session side (holding, retrying, elicitation) is in
//! `session/approval.rs`; the HTTP admin API and web page are in [`admin`](crate::admin).

use std::time::Duration;

use portcullis_policy::{Call, CompiledPolicy, Decision, EvalContext, evaluate};
use portcullis_store::{JcsError, Lease, canonical_json};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::resolver::FsResolver;

/// How long an approval stays valid when the rule names no `approval.ttl`.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(10 * 60);

/// How long a held call waits when the rule names no `approval.timeout`. Two minutes: long enough
/// for a human who is watching, short enough that a client with its own request timeout (often one
/// to five minutes) still gets the gateway's denial rather than a timeout of its own.
pub const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(120);

/// The most pending approvals one session may have open. Past it, calls that need an approval are
/// denied at once: an agent looping over calls cannot flood the humans' queue.
pub const MAX_PENDING_PER_SESSION: usize = 20;

/// How often a session looks in the store for resolutions of its held calls (made by another
/// process: the CLI, the admin API).
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How often a session records that it is alive; see `portcullis_store::SESSION_STALE_MS`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

/// How often a held call sends `notifications/progress` when the client gave a progress token.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// A new random id with `prefix` (`a-` approvals, `l-` leases): 16 bytes from the OS, hex.
#[must_use]
pub fn new_id(prefix: &str) -> String {
    crate::session::random_id(prefix)
}

/// The call fields an approval is bound to, as canonical JSON (RFC 8785).
///
/// `{"arguments", "method", "principal", "server", "session", "tool"}`: the method is included so
/// that an approval of a `prompts/get` can never be used by a `tools/call` of the same name.
///
/// # Errors
///
/// [`JcsError`] when an argument holds a number that has no exact canonical form; the caller
/// denies, since the approval could not be bound to exactly this call.
pub fn call_digest(call: &Call) -> Result<String, JcsError> {
    let mut fields = Map::new();
    fields.insert("server".into(), Value::from(call.server.as_str()));
    fields.insert("tool".into(), Value::from(call.tool.as_str()));
    fields.insert("method".into(), Value::from(call.method.as_str()));
    fields.insert("arguments".into(), Value::Object(call.arguments.clone()));
    fields.insert(
        "session".into(),
        call.session.clone().map_or(Value::Null, Value::from),
    );
    fields.insert(
        "principal".into(),
        call.principal.clone().map_or(Value::Null, Value::from),
    );
    let canonical = canonical_json(&Value::Object(fields))?;
    Ok(hex::encode(Sha256::digest(canonical.as_bytes())))
}

/// Whether `lease` covers `call` under `policy`: the lease's scope is compiled as one `allow` rule
/// into a copy of the policy (same servers, tool facts and hidden tools), so its tool glob and
/// `args-under` paths are matched with the same normalization, readings and symlink resolution as
/// every rule. Only a certain `allow` covers; anything else (including a scope that does not
/// compile) does not.
#[must_use]
pub fn lease_covers(policy: &CompiledPolicy, lease: &Lease, call: &Call) -> bool {
    if call.method != portcullis_policy::call::METHOD_TOOLS_CALL {
        return false;
    }
    if lease.server.as_deref().is_some_and(|s| s != call.server) {
        return false;
    }
    let Ok(mut raw) = serde_json::to_value(policy.raw()) else {
        return false;
    };
    let mut args = Map::new();
    for (name, dir) in &lease.args_under {
        args.insert(name.clone(), json!({"under": dir}));
    }
    let mut when = Map::new();
    when.insert("server".into(), Value::from(call.server.as_str()));
    when.insert("tool".into(), Value::from(lease.tool.as_str()));
    if !args.is_empty() {
        when.insert("args".into(), Value::Object(args));
    }
    let rule = json!({"id": "lease", "when": when, "decision": "allow"});
    let Some(object) = raw.as_object_mut() else {
        return false;
    };
    object.insert("rules".into(), Value::Array(vec![rule]));
    // Enforce mode, so that the decision is read the same way whatever the policy's mode.
    object.insert("mode".into(), Value::from("enforce"));
    let Ok(text) = serde_json::to_string(&raw) else {
        return false;
    };
    let Ok(scope) = CompiledPolicy::from_yaml(&text, "lease", &|name| std::env::var(name).ok())
    else {
        tracing::warn!(lease = %lease.id, "a lease's scope does not compile; it covers nothing");
        return false;
    };
    let resolver = FsResolver::new();
    let eval = evaluate(
        &scope,
        call,
        &EvalContext {
            resolver: Some(&resolver),
        },
    );
    eval.decision == Decision::Allow
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(args: Value) -> Call {
        let mut call = Call::tool_call(
            "fs",
            "write_file",
            args.as_object().cloned().unwrap_or_default(),
        );
        call.session = Some("s-1".into());
        call
    }

    #[test]
    fn digest_binds_every_field_but_not_key_order() {
        let a = call(json!({"path": "/ws/a", "n": 1}));
        let b = call(json!({"n": 1.0, "path": "/ws/a"}));
        assert_eq!(call_digest(&a), call_digest(&b));
        let mut other_session = a.clone();
        other_session.session = Some("s-2".into());
        let mut other_principal = a.clone();
        other_principal.principal = Some("p".into());
        let mut other_method = a.clone();
        other_method.method = "prompts/get".into();
        for changed in [
            call(json!({"path": "/ws/b", "n": 1})),
            other_session,
            other_principal,
            other_method,
        ] {
            assert_ne!(call_digest(&a), call_digest(&changed));
        }
    }

    #[test]
    fn inexact_numbers_cannot_be_bound() {
        let text = r#"{"amount": 12345678901234567891}"#;
        let args: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        assert!(call_digest(&call(args)).is_err());
    }
}
