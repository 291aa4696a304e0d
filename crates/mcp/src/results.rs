//! Builders for the results the gateway sends itself.

use serde_json::{Map, Value};

use crate::jsonrpc::Id;

/// A `tools/call` result reporting a failure the model can read:
/// `{"content":[{"type":"text","text":…}],"isError":true,"structuredContent":…}`, plus `_meta`
/// when given (its keys should carry a reverse-DNS prefix).
#[must_use]
pub fn tool_error_result(text: &str, structured: Value, meta: Option<Map<String, Value>>) -> Value {
    let mut content = Map::new();
    content.insert("type".into(), Value::from("text"));
    content.insert("text".into(), Value::from(text));
    let mut result = Map::new();
    result.insert("content".into(), Value::Array(vec![Value::Object(content)]));
    result.insert("isError".into(), Value::Bool(true));
    result.insert("structuredContent".into(), structured);
    if let Some(meta) = meta {
        result.insert("_meta".into(), Value::Object(meta));
    }
    Value::Object(result)
}

/// A JSON-RPC success response: `{"jsonrpc":"2.0","id":…,"result":…}`.
#[must_use]
pub fn response(id: &Id, result: Value) -> Value {
    let mut response = Map::new();
    response.insert("jsonrpc".into(), Value::from("2.0"));
    response.insert("id".into(), id.to_value());
    response.insert("result".into(), result);
    Value::Object(response)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn builds_tool_error_result_in_spec_order() {
        let mut meta = Map::new();
        meta.insert("dev.portcullis/decision".into(), json!("d-1"));
        let result = tool_error_result("denied", json!({"code": "deny"}), Some(meta));
        assert_eq!(
            serde_json::to_string(&result).unwrap(),
            r#"{"content":[{"type":"text","text":"denied"}],"isError":true,"structuredContent":{"code":"deny"},"_meta":{"dev.portcullis/decision":"d-1"}}"#
        );
        let bare = tool_error_result("x", json!({}), None);
        assert!(bare.get("_meta").is_none());
    }

    #[test]
    fn builds_response() {
        let result = response(&Id::String("a".into()), json!({"ok": true}));
        assert_eq!(
            serde_json::to_string(&result).unwrap(),
            r#"{"jsonrpc":"2.0","id":"a","result":{"ok":true}}"#
        );
    }
}
