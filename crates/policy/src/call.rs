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
    /// What the server's own `tools/list` says about the tool, if the gateway has seen it.
    pub hints: Option<ToolHints>,
}

/// The behaviour hints of an MCP tool definition (`annotations.readOnlyHint` and
/// `annotations.destructiveHint`). They come from the party being guarded, so the engine lets
/// them make a call's effect stricter, and loosen it only where the operator said
/// `trust_annotations: true` for the server *and* the definition was vetted (approved under
/// `pin:`), so a server cannot loosen its own tools by changing their annotations mid-session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ToolHints {
    /// `annotations.readOnlyHint`, when the server gives it as a boolean.
    pub read_only: Option<bool>,
    /// `annotations.destructiveHint`, when the server gives it as a boolean.
    pub destructive: Option<bool>,
    /// Whether the definition these hints come from was approved by tool pinning.
    pub vetted: bool,
}

impl ToolHints {
    /// The hints of one tool definition from a `tools/list` result, or `None` when it has no
    /// boolean `readOnlyHint` or `destructiveHint`. A hint of another type is ignored: it cannot
    /// be read, so it says nothing (and so cannot loosen anything).
    #[must_use]
    pub fn from_tool(tool: &Value, vetted: bool) -> Option<ToolHints> {
        let annotations = tool.get("annotations")?;
        let read_only = annotations.get("readOnlyHint").and_then(Value::as_bool);
        let destructive = annotations.get("destructiveHint").and_then(Value::as_bool);
        (read_only.is_some() || destructive.is_some()).then_some(ToolHints {
            read_only,
            destructive,
            vetted,
        })
    }

    /// The server says the tool changes something: `readOnlyHint: false` or
    /// `destructiveHint: true`.
    #[must_use]
    pub fn says_mutating(&self) -> bool {
        self.read_only == Some(false) || self.destructive == Some(true)
    }

    /// The server says the tool only reads: `readOnlyHint: true` and not `destructiveHint: true`.
    #[must_use]
    pub fn says_read_only(&self) -> bool {
        self.read_only == Some(true) && self.destructive != Some(true)
    }
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
    /// "time", "annotations"}`, where `annotations` is the tool's MCP annotations as the server
    /// lists them plus an optional `"vetted": true`. Unknown fields and wrong types are errors.
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
                "annotations" => call.hints = hints_field(v)?,
                other => {
                    return Err(format!(
                        "unknown call field `{other}`; expected server, tool, arguments, method, principal, agent, session, labels, time or annotations"
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

/// `annotations` of a call given as JSON: `readOnlyHint`, `destructiveHint` (booleans) and
/// `vetted` (boolean, default false). Strict, unlike [`ToolHints::from_tool`]: this is the
/// operator's own test input, so a typo must not pass silently.
fn hints_field(v: &Value) -> Result<Option<ToolHints>, String> {
    const EXPECTED: &str = "`annotations` must be an object with optional boolean `readOnlyHint`, `destructiveHint` and `vetted`";
    let obj = v.as_object().ok_or(EXPECTED)?;
    let mut hints = ToolHints::default();
    for (key, value) in obj {
        let flag = value
            .as_bool()
            .ok_or_else(|| format!("`annotations.{key}` must be true or false"))?;
        match key.as_str() {
            "readOnlyHint" => hints.read_only = Some(flag),
            "destructiveHint" => hints.destructive = Some(flag),
            "vetted" => hints.vetted = flag,
            other => return Err(format!("unknown annotation `{other}`; {EXPECTED}")),
        }
    }
    Ok(Some(hints))
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
    fn reads_annotations_strictly() {
        let call = Call::from_json(&json!({
            "server": "fs", "tool": "t",
            "annotations": {"readOnlyHint": true, "vetted": true}
        }))
        .unwrap();
        assert_eq!(
            call.hints,
            Some(ToolHints {
                read_only: Some(true),
                destructive: None,
                vetted: true
            })
        );
        for bad in [
            json!("yes"),
            json!({"readOnlyHint": "true"}),
            json!({"readonlyHint": true}),
            json!({"vetted": 1}),
        ] {
            let e = Call::from_json(&json!({"server": "fs", "tool": "t", "annotations": bad}))
                .unwrap_err();
            assert!(e.contains("annotations"), "{e}");
        }
    }

    #[test]
    fn hints_from_a_listed_tool_ignore_what_they_cannot_read() {
        let tool =
            json!({"name": "t", "annotations": {"readOnlyHint": "yes", "destructiveHint": true}});
        let hints = ToolHints::from_tool(&tool, false).unwrap();
        assert_eq!(hints.read_only, None);
        assert!(hints.says_mutating());
        assert!(!hints.says_read_only());
        assert_eq!(ToolHints::from_tool(&json!({"name": "t"}), true), None);
        assert_eq!(
            ToolHints::from_tool(&json!({"name": "t", "annotations": {"title": "x"}}), true),
            None
        );
        let read =
            ToolHints::from_tool(&json!({"annotations": {"readOnlyHint": true}}), true).unwrap();
        assert!(read.says_read_only() && !read.says_mutating());
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
