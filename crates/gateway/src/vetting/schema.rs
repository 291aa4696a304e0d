//! Checking a call's arguments against the pinned input schema (DESIGN §3.4, §6).
//!
//! JSON Schema is validated with the `jsonschema` crate, offline: a `$ref` that is not local to
//! the schema is never fetched, and such a schema is never pinned automatically. On top of the
//! schema, portcullis refuses arguments the schema does not *declare* in `properties`, whatever
//! `additionalProperties` says: the policy reads arguments by name, and a name the gateway cannot
//! place (an extra key, a case variant such as `Path` beside `path`) makes the call undecidable.

use serde_json::{Map, Value};

/// The largest input schema (serialized bytes) pinned automatically.
pub(crate) const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// The deepest input schema pinned automatically.
pub(crate) const MAX_SCHEMA_DEPTH: usize = 32;

/// A pinned input schema, ready to check calls.
pub(crate) struct InputSchema {
    schema: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputSchema").finish_non_exhaustive()
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// References that leave the schema (anything but `#...`).
fn remote_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if matches!(key.as_str(), "$ref" | "$dynamicRef" | "$recursiveRef")
                    && let Value::String(target) = v
                    && !target.starts_with('#')
                {
                    out.push(target.clone());
                }
                remote_refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| remote_refs(v, out)),
        _ => {}
    }
}

impl InputSchema {
    /// Compiles a tool's `inputSchema`, or says why it cannot be pinned automatically.
    pub(crate) fn compile(schema: Option<&Value>) -> Result<InputSchema, String> {
        let Some(schema) = schema else {
            return Err("the tool has no inputSchema".to_owned());
        };
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err("the inputSchema is not of type object".to_owned());
        }
        let size = schema.to_string().len();
        if size > MAX_SCHEMA_BYTES {
            return Err(format!(
                "the inputSchema has {size} bytes, more than the {MAX_SCHEMA_BYTES} pinned automatically"
            ));
        }
        if depth(schema) > MAX_SCHEMA_DEPTH {
            return Err(format!(
                "the inputSchema nests deeper than {MAX_SCHEMA_DEPTH} levels"
            ));
        }
        let mut refs = Vec::new();
        remote_refs(schema, &mut refs);
        if let Some(first) = refs.first() {
            return Err(format!(
                "the inputSchema refers to a remote schema `{}`",
                first.escape_debug()
            ));
        }
        let validator = jsonschema::options()
            .offline()
            .build(schema)
            .map_err(|e| format!("the inputSchema does not compile: {e}"))?;
        Ok(InputSchema {
            schema: schema.clone(),
            validator,
        })
    }

    /// Checks a call's arguments: every key declared, then the schema itself.
    pub(crate) fn check(&self, arguments: &Map<String, Value>) -> Result<(), String> {
        undeclared(&self.schema, arguments, "")?;
        let instance = Value::Object(arguments.clone());
        if let Some(error) = self.validator.iter_errors(&instance).next() {
            let at = error.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            return Err(format!(
                "argument {at} does not fit the tool's input schema: {error}"
            ));
        }
        Ok(())
    }
}

/// Refuses keys that `schema.properties` does not name, at every level where the schema names
/// properties.
fn undeclared(schema: &Value, object: &Map<String, Value>, at: &str) -> Result<(), String> {
    let properties = schema.get("properties").and_then(Value::as_object);
    for (key, value) in object {
        let declared = properties.and_then(|p| p.get(key));
        let Some(sub) = declared else {
            let variant = properties
                .and_then(|p| p.keys().find(|k| k.eq_ignore_ascii_case(key)))
                .map(|k| format!(" (the schema declares `{k}`; keys are case-sensitive)"))
                .unwrap_or_default();
            return Err(format!(
                "argument `{at}/{}` is not declared by the tool's input schema{variant}",
                key.escape_debug()
            ));
        };
        if let Value::Object(inner) = value
            && sub.get("properties").is_some()
        {
            undeclared(sub, inner, &format!("{at}/{key}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fs_read() -> Value {
        // server-filesystem's read_text_file, as observed (peers/OBSERVED-TOOLS.md).
        json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "properties": {"path": {"type": "string"}, "tail": {"type": "number"}, "head": {"type": "number"}},
            "required": ["path"]})
    }

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn accepts_a_fitting_call() {
        let s = InputSchema::compile(Some(&fs_read())).unwrap();
        assert_eq!(s.check(&args(json!({"path": "/ws/a", "head": 3}))), Ok(()));
    }

    #[test]
    fn refuses_undeclared_and_case_variant_keys() {
        let s = InputSchema::compile(Some(&fs_read())).unwrap();
        let e = s
            .check(&args(json!({"path": "/ws/a", "mode": "raw"})))
            .unwrap_err();
        assert_eq!(
            e,
            "argument `/mode` is not declared by the tool's input schema"
        );
        let e = s
            .check(&args(json!({"Path": "/etc/passwd", "path": "/ws/a"})))
            .unwrap_err();
        assert!(e.contains("the schema declares `path`"), "{e}");
        let open = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true});
        let s = InputSchema::compile(Some(&open)).unwrap();
        assert!(s.check(&args(json!({"a": "x", "b": 1}))).is_err());
    }

    #[test]
    fn refuses_wrong_types_and_missing_required() {
        let s = InputSchema::compile(Some(&fs_read())).unwrap();
        let e = s.check(&args(json!({"path": ["/ws/a"]}))).unwrap_err();
        assert!(e.starts_with("argument /path does not fit"), "{e}");
        assert!(s.check(&args(json!({"head": 1}))).is_err());
        assert!(s.check(&args(json!({"path": "/a", "head": "1"}))).is_err());
    }

    #[test]
    fn nested_objects_are_checked_where_declared() {
        let schema = json!({"type": "object", "properties": {"opts": {"type": "object", "properties": {"x": {"type": "integer"}}}}});
        let s = InputSchema::compile(Some(&schema)).unwrap();
        assert_eq!(s.check(&args(json!({"opts": {"x": 1}}))), Ok(()));
        let e = s.check(&args(json!({"opts": {"y": 1}}))).unwrap_err();
        assert!(e.contains("`/opts/y`"), "{e}");
    }

    #[test]
    fn unpinnable_schemas_are_refused() {
        let remote =
            json!({"type": "object", "properties": {"a": {"$ref": "https://evil.example/s.json"}}});
        let e = InputSchema::compile(Some(&remote)).unwrap_err();
        assert!(e.contains("remote schema"), "{e}");
        let mut deep = json!({"type": "string"});
        for _ in 0..40 {
            deep = json!({"type": "object", "properties": {"a": deep}});
        }
        assert!(
            InputSchema::compile(Some(&deep))
                .unwrap_err()
                .contains("deeper")
        );
        let big = json!({"type": "object", "description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(
            InputSchema::compile(Some(&big))
                .unwrap_err()
                .contains("bytes")
        );
        assert!(InputSchema::compile(None).is_err());
        assert!(InputSchema::compile(Some(&json!({"type": "array"}))).is_err());
        let local = json!({"type": "object", "$defs": {"p": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/p"}}});
        assert!(InputSchema::compile(Some(&local)).is_ok());
    }
}
