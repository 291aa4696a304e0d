//! The input to evaluation: one MCP request reduced to what rules can match on.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The MCP method of a tool call.
pub const METHOD_TOOLS_CALL: &str = "tools/call";
/// The MCP method of a resource read (the call's `tool` is the resource URI).
pub const METHOD_RESOURCES_READ: &str = "resources/read";
/// The MCP method of a prompt fetch (the call's `tool` is the prompt name).
pub const METHOD_PROMPTS_GET: &str = "prompts/get";

/// One request to evaluate. Time is an input, never read from a clock here.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Call {
    /// The configured server the request goes to.
    pub server: String,
    /// The tool name (prompt name for `prompts/get`, resource URI for `resources/read`).
    pub tool: String,
    /// The MCP method.
    pub method: String,
    /// The arguments object.
    pub arguments: Map<String, Value>,
    /// The authenticated principal, if any.
    pub principal: Option<String>,
    /// The agent, if known.
    pub agent: Option<String>,
    /// The session id, if any.
    pub session: Option<String>,
    /// Labels the session holds (taint).
    pub labels: BTreeSet<String>,
    /// When the call happens.
    pub time: Option<jiff::Timestamp>,
}

impl Call {
    /// A `tools/call` with the given arguments.
    pub fn tool_call(server: &str, tool: &str, arguments: Map<String, Value>) -> Self {
        Call {
            server: server.to_owned(),
            tool: tool.to_owned(),
            method: METHOD_TOOLS_CALL.to_owned(),
            arguments,
            ..Call::default()
        }
    }

    /// Read a call from the JSON form used by `portcullis explain --call` and test case files:
    /// `{"server", "tool", "arguments", "method", "principal", "agent", "session", "labels",
    /// "time"}`. Unknown fields and wrong types are errors.
    pub fn from_json(value: &Value) -> Result<Call, String> {
        let obj = value
            .as_object()
            .ok_or("a call must be a JSON object with at least `server` and `tool`")?;
        let mut call = Call {
            method: METHOD_TOOLS_CALL.to_owned(),
            ..Call::default()
        };
        let mut saw_server = false;
        let mut saw_tool = false;
        for (key, v) in obj {
            match key.as_str() {
                "server" => {
                    call.server = string_field(key, v)?;
                    saw_server = true;
                }
                "tool" => {
                    call.tool = string_field(key, v)?;
                    saw_tool = true;
                }
                "method" => call.method = string_field(key, v)?,
                "principal" => call.principal = Some(string_field(key, v)?),
                "agent" => call.agent = Some(string_field(key, v)?),
                "session" => call.session = Some(string_field(key, v)?),
                "arguments" => {
                    call.arguments = v
                        .as_object()
                        .cloned()
                        .ok_or("`arguments` must be a JSON object")?;
                }
                "labels" => {
                    let items = v.as_array().ok_or("`labels` must be a list of strings")?;
                    for item in items {
                        let label = item.as_str().ok_or("`labels` must be a list of strings")?;
                        call.labels.insert(label.to_owned());
                    }
                }
                "time" => {
                    let text = string_field(key, v)?;
                    call.time = Some(text.parse().map_err(|e| {
                        format!("`time` must be an RFC 3339 timestamp such as `2026-01-05T09:30:00Z`: {e}")
                    })?);
                }
                other => {
                    return Err(format!(
                        "unknown call field `{other}`; expected server, tool, arguments, method, principal, agent, session, labels or time"
                    ));
                }
            }
        }
        if !saw_server {
            return Err("the call has no `server`".to_owned());
        }
        if !saw_tool {
            return Err("the call has no `tool`".to_owned());
        }
        Ok(call)
    }
}

fn string_field(key: &str, v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("`{key}` must be a string"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_a_full_call() {
        let call = Call::from_json(&json!({
            "server": "fs", "tool": "read_text_file", "arguments": {"path": "/a"},
            "principal": "alice", "labels": ["secret"], "time": "2026-01-05T09:30:00Z"
        }))
        .unwrap();
        assert_eq!(call.server, "fs");
        assert_eq!(call.method, "tools/call");
        assert!(call.labels.contains("secret"));
        assert!(call.time.is_some());
    }

    #[test]
    fn rejects_unknown_fields_and_wrong_types() {
        let e =
            Call::from_json(&json!({"server": "fs", "tool": "t", "argumnets": {}})).unwrap_err();
        assert!(e.contains("unknown call field `argumnets`"), "{e}");
        let e = Call::from_json(&json!({"server": "fs", "tool": 3})).unwrap_err();
        assert_eq!(e, "`tool` must be a string");
        let e =
            Call::from_json(&json!({"server": "fs", "tool": "t", "arguments": []})).unwrap_err();
        assert_eq!(e, "`arguments` must be a JSON object");
        let e = Call::from_json(&json!({"tool": "t"})).unwrap_err();
        assert_eq!(e, "the call has no `server`");
        let e =
            Call::from_json(&json!({"server": "s", "tool": "t", "time": "yesterday"})).unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
