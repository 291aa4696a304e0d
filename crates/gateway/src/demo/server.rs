//! The demo's sample MCP server: a small workspace server over stdio with `read_file`,
//! `write_file` and `run_command`.
//!
//! It is deliberately plain: Portcullis is what guards it. It still keeps to its directory and
//! runs no real commands (only `ls` and `echo` are imitated), so that running `portcullis
//! demo-server` by hand cannot do harm either.

use std::io::{BufRead, Write};
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value, json};

/// The protocol version the demo server answers with when the client asks for another one.
const PROTOCOL_VERSION: &str = "2025-11-25";

/// The largest file `read_file` returns, so a stray read of a large file stays small.
const MAX_READ_BYTES: u64 = 64 * 1024;

/// Serves MCP on `input`/`output` for the workspace `dir` until `input` ends.
///
/// # Errors
///
/// An I/O error reading `input` or writing `output`.
pub fn serve(dir: &Path, input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    let root = dir.canonicalize()?;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(Value::Object(message)) = serde_json::from_str::<Value>(&line) else {
            write_message(
                &mut output,
                &json!({"jsonrpc": "2.0", "id": null,
                        "error": {"code": -32700, "message": "parse error"}}),
            )?;
            continue;
        };
        // Notifications (no id) need no answer.
        let Some(id) = message.get("id").cloned() else {
            continue;
        };
        let method = message.get("method").and_then(Value::as_str).unwrap_or("");
        let params = message.get("params").and_then(Value::as_object);
        let answer = match handle(&root, method, params) {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err((code, text)) => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": text}})
            }
        };
        write_message(&mut output, &answer)?;
    }
    Ok(())
}

fn write_message(output: &mut impl Write, value: &Value) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    output.write_all(&bytes)?;
    output.flush()
}

type Answer = Result<Value, (i64, String)>;

fn handle(root: &Path, method: &str, params: Option<&Map<String, Value>>) -> Answer {
    match method {
        "initialize" => {
            let version = params
                .and_then(|p| p.get("protocolVersion"))
                .and_then(Value::as_str)
                .unwrap_or(PROTOCOL_VERSION);
            Ok(json!({
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "portcullis-demo-workspace", "version": env!("CARGO_PKG_VERSION")}
            }))
        }
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({"tools": tools()})),
        "tools/call" => {
            let name = params
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let empty = Map::new();
            let args = params
                .and_then(|p| p.get("arguments"))
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            Ok(match call(root, name, args) {
                Ok(text) => json!({"content": [{"type": "text", "text": text}]}),
                Err(text) => json!({"content": [{"type": "text", "text": text}], "isError": true}),
            })
        }
        other => Err((-32601, format!("method not found: {other}"))),
    }
}

fn tools() -> Value {
    let string = |description: &str| json!({"type": "string", "description": description});
    json!([
        {"name": "read_file", "description": "Read a text file in the workspace.",
         "inputSchema": {"type": "object", "properties": {"path": string("absolute path")},
                         "required": ["path"]}},
        {"name": "write_file", "description": "Write a text file in the workspace.",
         "inputSchema": {"type": "object",
                         "properties": {"path": string("absolute path"), "content": string("new content")},
                         "required": ["path", "content"]}},
        {"name": "run_command", "description": "Run a command in the workspace (the demo imitates `ls` and `echo`).",
         "inputSchema": {"type": "object", "properties": {"command": string("the command line")},
                         "required": ["command"]}}
    ])
}

fn call(root: &Path, name: &str, args: &Map<String, Value>) -> Result<String, String> {
    let text = |key: &str| {
        args.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("missing string argument `{key}`"))
    };
    match name {
        "read_file" => {
            let path = inside(root, text("path")?)?;
            let file = std::fs::File::open(&path).map_err(|e| format!("cannot read: {e}"))?;
            let mut content = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(file, MAX_READ_BYTES),
                &mut content,
            )
            .map_err(|e| format!("cannot read: {e}"))?;
            Ok(content)
        }
        "write_file" => {
            let path = inside(root, text("path")?)?;
            std::fs::write(&path, text("content")?).map_err(|e| format!("cannot write: {e}"))?;
            Ok(format!("wrote {}", path.display()))
        }
        "run_command" => {
            let command = text("command")?;
            let mut words = command.split_whitespace();
            match words.next() {
                Some("ls") => {
                    let mut names: Vec<String> = std::fs::read_dir(root)
                        .map_err(|e| format!("cannot list: {e}"))?
                        .filter_map(Result::ok)
                        .map(|entry| entry.file_name().to_string_lossy().into_owned())
                        .collect();
                    names.sort();
                    Ok(names.join("\n"))
                }
                Some("echo") => Ok(words.collect::<Vec<_>>().join(" ")),
                _ => Err(format!(
                    "the demo server only imitates `ls` and `echo`, not `{command}`"
                )),
            }
        }
        other => Err(format!("unknown tool `{other}`")),
    }
}

/// `path` if it stays inside `root` (lexically, and after resolving what exists of it).
fn inside(root: &Path, path: &str) -> Result<PathBuf, String> {
    let candidate = root.join(path);
    let mut clean = PathBuf::new();
    for component in candidate.components() {
        match component {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    let resolved = match clean.canonicalize() {
        Ok(path) => path,
        Err(_) => match (clean.parent().map(Path::canonicalize), clean.file_name()) {
            (Some(Ok(parent)), Some(name)) => parent.join(name),
            _ => clean.clone(),
        },
    };
    if clean.starts_with(root) && resolved.starts_with(root) {
        Ok(resolved)
    } else {
        Err(format!("`{path}` is outside the workspace"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(dir: &Path, lines: &[Value]) -> Vec<Value> {
        let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let mut out = Vec::new();
        serve(dir, input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn reads_writes_and_lists_inside_the_workspace() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("a.txt"), "alpha").unwrap();
        let path = |name: &str| dir.join(name).display().to_string();
        let answers = session(
            dir,
            &[
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}),
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": {"name": "read_file", "arguments": {"path": path("a.txt")}}}),
                json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                       "params": {"name": "write_file", "arguments": {"path": path("b.txt"), "content": "beta"}}}),
                json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                       "params": {"name": "run_command", "arguments": {"command": "ls"}}}),
            ],
        );
        assert_eq!(answers.len(), 4);
        assert_eq!(answers[0]["result"]["protocolVersion"], json!("2025-06-18"));
        assert_eq!(answers[1]["result"]["content"][0]["text"], json!("alpha"));
        assert_eq!(std::fs::read_to_string(dir.join("b.txt")).unwrap(), "beta");
        assert_eq!(
            answers[3]["result"]["content"][0]["text"],
            json!("a.txt\nb.txt")
        );
    }

    #[test]
    fn keeps_to_its_directory_and_runs_nothing_real() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        let outside = format!("{}/../secret", ws.display());
        let answers = session(
            &ws,
            &[
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "read_file", "arguments": {"path": outside}}}),
                json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": {"name": "run_command", "arguments": {"command": "rm -rf /"}}}),
                json!({"jsonrpc": "2.0", "id": 3, "method": "resources/list"}),
            ],
        );
        assert_eq!(answers[0]["result"]["isError"], json!(true));
        assert_eq!(answers[1]["result"]["isError"], json!(true));
        assert_eq!(answers[2]["error"]["code"], json!(-32601));
    }
}
