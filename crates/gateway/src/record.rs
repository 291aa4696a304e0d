//! Building audit records: the argument digest, redaction, and the decision and outcome events.

use portcullis_policy::normalize::secret::redact_secrets;
use portcullis_store::{AuditEvent, AuditKind};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// sha256 (hex) of the canonical JSON of `arguments`: object keys sorted at every level, no
/// whitespace, numbers as received. It binds the exact call even though the stored copy is
/// redacted, and does not depend on the key order a client happened to send.
#[must_use]
pub fn args_digest(arguments: &Map<String, Value>) -> String {
    let canonical = canonical(&Value::Object(arguments.clone()));
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut sorted = Map::new();
            for key in keys {
                if let Some(inner) = map.get(key) {
                    sorted.insert(key.clone(), canonical(inner));
                }
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// `arguments` with every string value passed through the credential redactor. Keys are kept:
/// they are names the server defines, not user data.
#[must_use]
pub fn redact_args(arguments: &Map<String, Value>) -> Value {
    redact(&Value::Object(arguments.clone()))
}

fn redact(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(redact_secrets(text).unwrap_or_else(|| text.clone())),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, inner)| (key.clone(), redact(inner)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An empty event of `kind` for one call; the caller fills in the decision or outcome.
pub(crate) fn event(
    kind: AuditKind,
    decision_id: &str,
    session: &str,
    server: &str,
    method: &str,
    tool: Option<&str>,
) -> AuditEvent {
    AuditEvent {
        kind,
        time: String::new(),
        decision_id: decision_id.to_owned(),
        session: session.to_owned(),
        principal: None,
        agent: None,
        run: None,
        server: server.to_owned(),
        tool: tool.map(str::to_owned),
        method: method.to_owned(),
        effect: None,
        args_digest: None,
        args_redacted: None,
        decision: None,
        enforced: true,
        rules: Vec::new(),
        reason: None,
        reason_class: None,
        policy_sha256: None,
        approval_id: None,
        lease_id: None,
        outcome: None,
        duration_us: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn digest_ignores_key_order_but_not_values() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": "s"}});
        let b = json!({"a": {"x": "s", "y": [1, 2]}, "b": 1});
        let c = json!({"a": {"x": "s", "y": [2, 1]}, "b": 1});
        let digest = |v: &Value| args_digest(v.as_object().unwrap());
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&c));
        assert_eq!(digest(&a).len(), 64);
    }

    #[test]
    fn redacts_nested_strings() {
        let key = "AKIAIOSFODNN7EXAMPLE";
        let args = json!({"env": [{"value": format!("aws {key}")}], "n": 3});
        let redacted = redact_args(args.as_object().unwrap());
        let text = redacted.to_string();
        assert!(!text.contains(key), "{text}");
        assert_eq!(redacted["n"], json!(3));
    }
}
