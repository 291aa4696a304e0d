//! How a refused call reaches the client.
//!
//! A refused `tools/call` is a *result* with `isError: true`, because the MCP spec wants tool
//! failures where the model can read them and adapt; `resources/read` and `prompts/get` have no
//! such result shape, so they get a JSON-RPC error in the application range. Both carry the same
//! structured fields. Only the contributing rule's id and its public reason are shown, never the
//! conditions, regexes or other rules of the policy.

use portcullis_mcp::{Id, error_response, response, tool_error_result};
use portcullis_policy::ReasonClass;
use serde_json::{Map, Value};

/// The JSON-RPC error code of a refused `resources/read` or `prompts/get`: outside the range
/// −32768..−32000 that JSON-RPC reserves, as the MCP spec asks of application errors.
pub const DENIED_ERROR_CODE: i64 = -31001;

/// The `_meta` key carrying the structured denial (reverse-DNS prefix; `io.modelcontextprotocol/`
/// is reserved by the spec).
pub const META_KEY: &str = "io.portcullis/decision";

/// The stable machine code of a refusal, for clients that act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialCode {
    /// The policy denied the call.
    PolicyDenied,
    /// The policy ended the session with this call.
    SessionKilled,
    /// The policy asks for an approval that cannot be obtained for this call (it cannot be bound
    /// to an approval, or the session has too many pending).
    ApprovalUnavailable,
    /// An approval is pending: retry the identical call once a human approved it (approvals).
    ApprovalPending,
    /// A held call was denied by a human, timed out, or its approval could not be read (approvals).
    ApprovalDenied,
    /// A rate limit or budget is exhausted.
    LimitExceeded,
    /// The gateway failed (for example the audit record could not be written).
    Internal,
}

impl DenialCode {
    /// The stable snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PolicyDenied => "policy_denied",
            Self::SessionKilled => "session_killed",
            Self::ApprovalUnavailable => "approval_unavailable",
            Self::ApprovalPending => "approval_pending",
            Self::ApprovalDenied => "approval_denied",
            Self::LimitExceeded => "limit_exceeded",
            Self::Internal => "internal_error",
        }
    }
}

/// Everything the client is told about one refused call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The machine code.
    pub code: DenialCode,
    /// The closed reason class.
    pub reason_class: ReasonClass,
    /// The id of the rule that decided (an engine id such as `default-deny` when no rule did).
    pub rule: String,
    /// The decision id, which finds the audit record.
    pub decision_id: String,
    /// The public reason: words for the model, no policy internals.
    pub reason: String,
    /// The approval this refusal is about, if any (approvals).
    pub approval_id: Option<String>,
}

impl Denial {
    /// The structured form, as `structuredContent`, under `_meta` and in error `data`.
    #[must_use]
    pub fn structured(&self) -> Value {
        let mut fields = Map::new();
        fields.insert("code".into(), Value::from(self.code.as_str()));
        fields.insert(
            "reason_class".into(),
            Value::from(self.reason_class.as_str()),
        );
        fields.insert("rule".into(), Value::from(self.rule.as_str()));
        fields.insert("decision_id".into(), Value::from(self.decision_id.as_str()));
        fields.insert("reason".into(), Value::from(self.reason.as_str()));
        if let Some(approval_id) = &self.approval_id {
            fields.insert("approval_id".into(), Value::from(approval_id.as_str()));
        }
        Value::Object(fields)
    }

    /// The text the model reads.
    #[must_use]
    pub fn text(&self) -> String {
        format!(
            "portcullis refused this call (rule `{}`): {}. decision id {}",
            self.rule, self.reason, self.decision_id
        )
    }

    /// The response to a `tools/call` with id `id`: a result with `isError: true`.
    #[must_use]
    pub fn tool_result(&self, id: &Id) -> Value {
        let mut meta = Map::new();
        meta.insert(META_KEY.into(), self.structured());
        response(
            id,
            tool_error_result(&self.text(), self.structured(), Some(meta)),
        )
    }

    /// The response to any other evaluated request: a JSON-RPC error [`DENIED_ERROR_CODE`].
    #[must_use]
    pub fn rpc_error(&self, id: &Id) -> Value {
        error_response(
            Some(id),
            DENIED_ERROR_CODE,
            &self.text(),
            Some(self.structured()),
        )
    }

    /// The response for a request of `method`.
    #[must_use]
    pub fn respond(&self, id: &Id, method: &str) -> Value {
        if method == "tools/call" {
            self.tool_result(id)
        } else {
            self.rpc_error(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn denial() -> Denial {
        Denial {
            code: DenialCode::PolicyDenied,
            reason_class: ReasonClass::Argument,
            rule: "deny-secrets".into(),
            decision_id: "d-1".into(),
            reason: "secrets are off limits".into(),
            approval_id: None,
        }
    }

    #[test]
    fn tool_result_carries_structured_content_and_meta() {
        let value = denial().tool_result(&Id::Number(4));
        let result = &value["result"];
        assert_eq!(result["isError"], json!(true));
        let expected = json!({"code": "policy_denied", "reason_class": "argument",
            "rule": "deny-secrets", "decision_id": "d-1", "reason": "secrets are off limits"});
        assert_eq!(result["structuredContent"], expected);
        assert_eq!(result["_meta"]["io.portcullis/decision"], expected);
        assert_eq!(
            result["content"][0]["text"],
            json!(
                "portcullis refused this call (rule `deny-secrets`): secrets are off limits. decision id d-1"
            )
        );
    }

    #[test]
    fn other_methods_get_an_application_error() {
        let value = denial().respond(&Id::String("r".into()), "resources/read");
        assert_eq!(value["error"]["code"], json!(-31001));
        assert_eq!(value["error"]["data"]["rule"], json!("deny-secrets"));
    }
}
