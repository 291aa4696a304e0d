//! Vetting of what servers say: tool pinning ([`pins`]), input schemas ([`schema`]), the
//! poisoning scan ([`poison`]), and the response scan that labels a session `secret`.

pub(crate) mod pins;
pub(crate) mod poison;
pub(crate) mod schema;

use portcullis_policy::normalize::secret::find_secret;
use serde_json::Value;

/// The label a response carrying a credential adds to the session.
pub(crate) const SECRET_LABEL: &str = "secret";

/// How deep the response scan walks; anything deeper counts as carrying a secret (fail closed:
/// the label can only make later decisions stricter in a policy that uses it to deny).
const MAX_SCAN_DEPTH: usize = 64;

/// Whether the `result` of a response carries a credential in any string (text content,
/// structured content, embedded resources), keys included. `_meta` is scanned too: it reaches
/// the client like everything else.
pub(crate) fn response_carries_secret(result: &Value) -> bool {
    fn walk(value: &Value, depth: usize) -> bool {
        if depth > MAX_SCAN_DEPTH {
            return true;
        }
        match value {
            Value::String(s) => find_secret(s).is_some(),
            Value::Array(items) => items.iter().any(|v| walk(v, depth + 1)),
            Value::Object(map) => map
                .iter()
                .any(|(k, v)| find_secret(k).is_some() || walk(v, depth + 1)),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
    walk(result, 0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_a_credential_in_text_content() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----";
        let result = json!({"content": [{"type": "text", "text": key}], "isError": false});
        assert!(response_carries_secret(&result));
        let aws = json!({"structuredContent": {"env": "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE"}});
        assert!(response_carries_secret(&aws));
    }

    #[test]
    fn plain_text_is_not_a_secret() {
        let result =
            json!({"content": [{"type": "text", "text": "hello world"}], "isError": false});
        assert!(!response_carries_secret(&result));
    }
}
