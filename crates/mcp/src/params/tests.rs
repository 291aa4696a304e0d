use serde_json::json;

use super::*;
use crate::error::INVALID_PARAMS;

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn id() -> Id {
    Id::Number(7)
}

/// Asserts a `-32602` answering id 7 with `message`.
fn assert_invalid(result: Result<impl std::fmt::Debug, FrameError>, message: &str) {
    let err = result.unwrap_err();
    assert_eq!(
        (err.code(), err.id(), err.to_string().as_str()),
        (INVALID_PARAMS, Some(&id()), message)
    );
}

#[test]
fn reads_tool_call_params_keeping_unknown_members() {
    let params = object(json!({
        "name": "read_file",
        "arguments": {"path": "/ws/a"},
        "_meta": {"progressToken": 1},
        "task": {"ttl": 60000},
    }));
    let call = ToolCallParams::parse(&id(), Some(&params)).unwrap();
    assert_eq!(call.name, "read_file");
    assert_eq!(call.arguments, Some(object(json!({"path": "/ws/a"}))));
    assert_eq!(call.meta, Some(object(json!({"progressToken": 1}))));
    assert_eq!(call.extra, object(json!({"task": {"ttl": 60000}})));
}

#[test]
fn tool_call_arguments_are_optional() {
    let call = ToolCallParams::parse(&id(), Some(&object(json!({"name": "x"})))).unwrap();
    assert_eq!((call.arguments, call.meta), (None, None));
    assert!(call.extra.is_empty());
}

#[test]
fn rejects_malformed_tool_call_params() {
    for (params, message) in [
        (json!({}), "missing `name` in params"),
        (
            json!({"name": 5}),
            "`name` must be a string, found a number",
        ),
        (json!({"name": ""}), "`name` must not be empty"),
        (
            json!({"name": "x", "arguments": "{\"a\":1}"}),
            "`arguments` must be an object, found a string",
        ),
        (
            json!({"name": "x", "arguments": [1]}),
            "`arguments` must be an object, found an array",
        ),
        (
            json!({"name": "x", "arguments": null}),
            "`arguments` must be an object, found null",
        ),
        (
            json!({"name": "x", "_meta": 1}),
            "`_meta` must be an object, found a number",
        ),
    ] {
        assert_invalid(ToolCallParams::parse(&id(), Some(&object(params))), message);
    }
    assert_invalid(
        ToolCallParams::parse(&id(), None),
        "missing `name` in params",
    );
}

#[test]
fn tool_call_params_from_a_parsed_message() {
    let line =
        br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":[]}}"#;
    let parsed = crate::parse_message(line, &crate::Limits::default()).unwrap();
    let crate::Message::Request {
        id: got, params, ..
    } = parsed.message()
    else {
        panic!("not a request");
    };
    assert_eq!(got, &id());
    assert_invalid(
        ToolCallParams::parse(got, params.as_ref()),
        "`arguments` must be an object, found an array",
    );
}

#[test]
fn reads_resource_read_params() {
    let read =
        ResourceReadParams::parse(&id(), Some(&object(json!({"uri": "file:///ws/a"})))).unwrap();
    assert_eq!(read.uri, "file:///ws/a");
    assert_invalid(
        ResourceReadParams::parse(&id(), Some(&object(json!({"uri": ["a"]})))),
        "`uri` must be a string, found an array",
    );
    assert_invalid(
        ResourceReadParams::parse(&id(), Some(&object(json!({"uri": ""})))),
        "`uri` must not be empty",
    );
    assert_invalid(
        ResourceReadParams::parse(&id(), None),
        "missing `uri` in params",
    );
}

#[test]
fn reads_prompt_get_params_with_string_arguments_only() {
    let get = PromptGetParams::parse(
        &id(),
        Some(&object(
            json!({"name": "p", "arguments": {"a": "1", "b": ""}}),
        )),
    )
    .unwrap();
    assert_eq!(get.name, "p");
    assert_eq!(get.arguments, Some(object(json!({"a": "1", "b": ""}))));
    assert_invalid(
        PromptGetParams::parse(
            &id(),
            Some(&object(
                json!({"name": "p", "arguments": {"a": "1", "b": 2}}),
            )),
        ),
        "`arguments.b` must be a string, found a number",
    );
    assert_invalid(
        PromptGetParams::parse(&id(), Some(&object(json!({"name": "p", "arguments": "a"})))),
        "`arguments` must be an object, found a string",
    );
}

fn initialize(capabilities: Value) -> InitializeParams {
    let params = object(json!({
        "protocolVersion": "2025-06-18",
        "capabilities": capabilities,
        "clientInfo": {"name": "claude", "version": "1.0", "title": "Claude"},
    }));
    InitializeParams::parse(&id(), Some(&params)).unwrap()
}

#[test]
fn reads_initialize_params_and_capabilities() {
    let init = initialize(json!({"elicitation": {}, "roots": {"listChanged": true}}));
    assert_eq!(init.protocol_version, "2025-06-18");
    assert_eq!(init.client_info.name, "claude");
    assert_eq!(init.client_info.version, "1.0");
    assert_eq!(init.client_info.extra, object(json!({"title": "Claude"})));
    assert!(init.has_elicitation());
    assert!(init.has_roots());
    assert!(!init.has_sampling());

    let init = initialize(json!({"sampling": {}, "elicitation": true}));
    assert!(init.has_sampling());
    assert!(
        !init.has_elicitation(),
        "a non-object capability does not count"
    );
}

#[test]
fn rejects_malformed_initialize_params() {
    for (params, message) in [
        (json!({}), "missing `protocolVersion` in params"),
        (
            json!({"protocolVersion": 1, "capabilities": {}, "clientInfo": {}}),
            "`protocolVersion` must be a string, found a number",
        ),
        (
            json!({"protocolVersion": "v", "clientInfo": {}}),
            "missing `capabilities` in params",
        ),
        (
            json!({"protocolVersion": "v", "capabilities": [], "clientInfo": {}}),
            "`capabilities` must be an object, found an array",
        ),
        (
            json!({"protocolVersion": "v", "capabilities": {}, "clientInfo": {"version": "1"}}),
            "missing `clientInfo.name` in params",
        ),
        (
            json!({"protocolVersion": "v", "capabilities": {}, "clientInfo": {"name": "n", "version": 1}}),
            "`clientInfo.version` must be a string, found a number",
        ),
    ] {
        assert_invalid(
            InitializeParams::parse(&id(), Some(&object(params))),
            message,
        );
    }
}
