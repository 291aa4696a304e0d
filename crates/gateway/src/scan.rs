//! `portcullis scan`: connect to a server, list its tools, and write a commented policy scaffold
//! in which every tool is classified (suggested, not trusted) and every call is denied until a
//! human writes allow rules, plus the `portcullis.lock` of the definitions seen.
//!
//! The server is started like the gateway starts it (cleared environment, see
//! [`ENV_ALLOW_LIST`](portcullis_transport::stdio::ENV_ALLOW_LIST)); every step has a deadline.
//! Tools with a poisoning finding, an input schema the gateway would not pin, or a duplicated name
//! are left out of the lock and put in `hide:`.

mod classify;
mod client;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use portcullis_policy::Effect;
use portcullis_transport::stdio::ChildSpec;
use serde_json::Value;

pub use classify::{Suggestion, suggest_effect, suggest_kind};

use crate::vetting::pins::{LockFile, fingerprint};
use crate::vetting::poison;
use crate::vetting::schema::InputSchema;

/// The default deadline of each step (start, `initialize`, each `tools/list` page).
pub const DEFAULT_SCAN_TIMEOUT: Duration = Duration::from_secs(30);

/// What to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The server's name in the scaffold.
    pub name: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// The working directory the server runs in (also written as its `cwd`).
    pub cwd: Option<PathBuf>,
    /// The deadline of each step.
    pub timeout: Duration,
}

/// Why a scan failed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The options are not usable.
    #[error("{0}")]
    Usage(String),
    /// The server could not be started.
    #[error("{0}")]
    Spawn(String),
    /// A step took too long.
    #[error("timed out {0}")]
    Timeout(String),
    /// The server said something a scan cannot use.
    #[error("{0}")]
    Protocol(String),
}

/// One listed tool, as the scan sees it.
#[derive(Debug, Clone)]
pub struct ScannedTool {
    /// The tool's name.
    pub name: String,
    /// Its definition as listed.
    pub definition: Value,
    /// Its fingerprint (see [`fingerprint`]).
    pub sha: String,
    /// The suggested effect.
    pub effect: Suggestion,
    /// Argument name → suggested kind, in schema order.
    pub args: Vec<(String, &'static str)>,
    /// Poisoning findings and schema problems: such a tool is not locked and is hidden.
    pub findings: Vec<String>,
}

/// The result of a scan.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The options scanned with.
    pub options: ScanOptions,
    /// The server's `initialize` result.
    pub init: Value,
    /// The tools, in listing order.
    pub tools: Vec<ScannedTool>,
    /// Listed entries without a usable name.
    pub skipped: usize,
}

/// Whether `name` can be a server name in a policy.
#[must_use]
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.contains("__")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A server name derived from the program: its file name without `mcp-server-` and the like.
#[must_use]
pub fn default_server_name(command: &[String]) -> String {
    let program = command
        .iter()
        .find(|a| {
            !a.starts_with('-')
                && !a.contains('=')
                && !matches!(
                    a.rsplit('/').next().unwrap_or(a),
                    "npx" | "uvx" | "env" | "node" | "python" | "python3" | "bunx" | "deno"
                )
        })
        .or_else(|| command.first())
        .map(String::as_str)
        .unwrap_or("server");
    let base = program.rsplit('/').next().unwrap_or(program);
    let base = base.split('@').next().unwrap_or(base);
    let base = ["mcp-server-", "server-", "mcp-"]
        .iter()
        .find_map(|p| base.strip_prefix(p))
        .unwrap_or(base);
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    let name: String = name.chars().take(64).collect();
    if valid_server_name(&name) {
        name
    } else {
        "server".to_owned()
    }
}

/// Starts the server, lists its tools and classifies them.
///
/// # Errors
///
/// [`ScanError`] when the options are unusable, the server cannot be started, a step times out,
/// or the server answers something that cannot be used.
pub async fn scan(options: ScanOptions) -> Result<Scan, ScanError> {
    if !valid_server_name(&options.name) {
        return Err(ScanError::Usage(format!(
            "`{}` cannot be a server name: use letters, digits, `-` and `_` (no `__`)",
            options.name.escape_debug()
        )));
    }
    let Some((program, args)) = options.command.split_first() else {
        return Err(ScanError::Usage(
            "no command to scan: give it after `--`".to_owned(),
        ));
    };
    let mut spec = ChildSpec::new(options.name.clone(), program.clone()).args(args.iter().cloned());
    spec.cwd.clone_from(&options.cwd);
    let listing = client::list_tools(spec, options.timeout).await?;
    let (tools, skipped) = classify_all(&listing.tools);
    Ok(Scan {
        options,
        init: listing.init,
        tools,
        skipped,
    })
}

/// Classifies every listed tool.
fn classify_all(listed: &[Value]) -> (Vec<ScannedTool>, usize) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for tool in listed {
        if let Some(name) = tool.get("name").and_then(Value::as_str) {
            *counts.entry(name).or_default() += 1;
        }
    }
    let mut out: Vec<ScannedTool> = Vec::new();
    let mut skipped = 0;
    for tool in listed {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            skipped += 1;
            continue;
        };
        if out.iter().any(|t| t.name == name) {
            continue;
        }
        let (_, sha) = fingerprint(tool);
        let mut findings = poison::scan(tool, &[]);
        if let Err(problem) = InputSchema::compile(tool.get("inputSchema")) {
            findings.push(format!("inputSchema: {problem}"));
        }
        if counts.get(name).copied().unwrap_or(0) > 1 {
            findings.push("the server lists this name more than once".to_owned());
        }
        let args = tool
            .get("inputSchema")
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(k, v)| (k.clone(), suggest_kind(k, v)))
                    .collect()
            })
            .unwrap_or_default();
        out.push(ScannedTool {
            name: name.to_owned(),
            definition: tool.clone(),
            sha,
            effect: suggest_effect(name, tool.get("annotations")),
            args,
            findings,
        });
    }
    (out, skipped)
}

/// `s` as a YAML double-quoted scalar: everything but printable ASCII is escaped, so nothing a
/// server wrote can end a line, hide in the file or be read two ways.
#[must_use]
pub fn yaml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// `s` made safe for a YAML comment: one line, printable ASCII, at most `max` characters.
fn comment_text(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.split_whitespace().collect::<Vec<_>>().join(" ").chars() {
        if out.chars().count() >= max {
            out.push_str(" ...");
            break;
        }
        match c {
            ' '..='~' => out.push(c),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    out
}

/// Characters that make a `tools` key or a `tool:` match field a glob.
const GLOB_CHARS: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

/// `name` as a glob that matches only itself.
fn glob_literal(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if GLOB_CHARS.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A rule id fragment from a tool name.
fn id_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(96)
        .collect()
}

impl Scan {
    /// The lock of every tool without a finding.
    #[must_use]
    pub fn lock(&self) -> LockFile {
        let mut lock = LockFile::empty();
        for tool in self.tools.iter().filter(|t| t.findings.is_empty()) {
            lock.tools.insert(
                format!("{}.{}", self.options.name, tool.name),
                tool.sha.clone(),
            );
        }
        lock
    }

    /// The commented policy scaffold.
    #[must_use]
    pub fn scaffold(&self) -> String {
        let name = &self.options.name;
        let mut y = String::new();
        let info = self.init.get("serverInfo");
        let field = |k: &str| {
            info.and_then(|i| i.get(k))
                .and_then(Value::as_str)
                .map(|s| comment_text(s, 80))
                .unwrap_or_else(|| "?".to_owned())
        };
        let protocol = self
            .init
            .get("protocolVersion")
            .and_then(Value::as_str)
            .map_or_else(|| "?".to_owned(), |s| comment_text(s, 40));
        let _ = writeln!(y, "# Policy scaffold written by `portcullis scan`.");
        let _ = writeln!(
            y,
            "# Server `{name}`: serverInfo {} {}, protocol {protocol}, {} tools.",
            field("name"),
            field("version"),
            self.tools.len()
        );
        let _ = writeln!(y, "#");
        let _ = writeln!(
            y,
            "# Every effect and argument kind under `tools:` is SUGGESTED from the tool's name,"
        );
        let _ = writeln!(
            y,
            "# annotations and input schema, which the server wrote about itself: not trusted, review"
        );
        let _ = writeln!(
            y,
            "# each one. No rule allows anything: every call is denied until you write allow rules"
        );
        let _ = writeln!(
            y,
            "# (commented examples under `rules:`). `pin: lock` accepts only the tool definitions in"
        );
        let _ = writeln!(
            y,
            "# portcullis.lock beside this file, written by the same scan; review it too."
        );
        let _ = writeln!(
            y,
            "# Next: portcullis check --policy FILE, then observe mode and `portcullis suggest`"
        );
        let _ = writeln!(y, "# (docs/onboarding.md).");
        if self.skipped > 0 {
            let _ = writeln!(
                y,
                "# {} listed entries had no name and were left out.",
                self.skipped
            );
        }
        y.push_str("version: 1\nservers:\n");
        let _ = writeln!(y, "  {name}:");
        let command: Vec<String> = self.options.command.iter().map(|a| yaml_str(a)).collect();
        let _ = writeln!(y, "    command: [{}]", command.join(", "));
        if let Some(cwd) = &self.options.cwd {
            let _ = writeln!(y, "    cwd: {}", yaml_str(&cwd.display().to_string()));
        }
        y.push_str("    pin: lock\n");
        if self.tools.is_empty() {
            y.push_str("tools: {}\n");
        } else {
            y.push_str("tools:\n");
        }
        let mut hidden = Vec::new();
        for tool in &self.tools {
            self.tool_entry(&mut y, tool);
            if !tool.findings.is_empty() {
                hidden.push(format!("{name}.{}", tool.name));
            }
        }
        y.push_str("rules: []\n");
        let _ = writeln!(
            y,
            "# Every call is denied (default-deny) until you replace `[]` with rules. Examples, one per"
        );
        let _ = writeln!(
            y,
            "# tool, to adapt; start from the tightest conditions you can (docs/policy.md):"
        );
        for tool in &self.tools {
            self.example_rule(&mut y, tool);
        }
        if hidden.is_empty() {
            y.push_str("hide: []\n");
        } else {
            let _ = writeln!(
                y,
                "# Tools with a finding are hidden and left out of portcullis.lock until a human has read"
            );
            let _ = writeln!(y, "# their definitions.");
            y.push_str("hide:\n");
            for h in hidden {
                let _ = writeln!(y, "  - {}", yaml_str(&glob_literal(&h)));
            }
        }
        y
    }

    fn tool_entry(&self, y: &mut String, tool: &ScannedTool) {
        let name = &self.options.name;
        y.push('\n');
        let description = tool
            .definition
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("(no description)");
        let _ = writeln!(
            y,
            "  # {}: {}",
            comment_text(&tool.name, 80),
            comment_text(description, 110)
        );
        if let Some(annotations) = tool
            .definition
            .get("annotations")
            .and_then(Value::as_object)
        {
            let hints: Vec<String> = annotations
                .iter()
                .filter(|(_, v)| v.is_boolean())
                .map(|(k, v)| format!("{}={v}", comment_text(k, 40)))
                .collect();
            if !hints.is_empty() {
                let _ = writeln!(y, "  # annotations: {}", hints.join(", "));
            }
        }
        let _ = writeln!(
            y,
            "  # effect `{}` suggested from the name/annotations ({}) — not trusted, review",
            tool.effect.effect,
            comment_text(&tool.effect.why, 100)
        );
        if !tool.args.is_empty() {
            let _ = writeln!(
                y,
                "  # argument kinds suggested from the input schema — not trusted, review"
            );
        }
        for finding in &tool.findings {
            let _ = writeln!(y, "  # FINDING: {}", comment_text(finding, 200));
        }
        let _ = writeln!(y, "  # sha256 {}", tool.sha);
        let args: Vec<String> = tool
            .args
            .iter()
            .map(|(k, kind)| format!("{}: {}", yaml_str(k), yaml_str(kind)))
            .collect();
        let args = if args.is_empty() {
            String::new()
        } else {
            format!(", args: {{ {} }}", args.join(", "))
        };
        let entry = format!(
            "{}: {{ effect: {}{args} }}",
            yaml_str(&format!("{name}.{}", tool.name)),
            tool.effect.effect
        );
        if tool.name.contains(GLOB_CHARS) || tool.name.chars().any(char::is_control) {
            let _ = writeln!(
                y,
                "  # left out: the name has glob or control characters and would match other tools"
            );
            let _ = writeln!(y, "  # {}", comment_text(&entry, 300));
        } else {
            let _ = writeln!(y, "  {entry}");
        }
    }

    fn example_rule(&self, y: &mut String, tool: &ScannedTool) {
        let name = &self.options.name;
        let mut when = format!(
            "server: {name}, tool: {}",
            yaml_str(&glob_literal(&tool.name))
        );
        let kinds: Vec<&str> = tool.args.iter().map(|(_, k)| *k).collect();
        if kinds.iter().any(|k| k.starts_with("path")) {
            when.push_str(", paths: { under: /CHANGE/ME }");
        }
        if kinds.iter().any(|k| k.starts_with("url")) {
            when.push_str(", urls: { host: CHANGE.example.com }");
        }
        if let Some((arg, _)) = tool.args.iter().find(|(_, k)| *k == "shell") {
            let _ = write!(
                when,
                ", args: {{ {}: {{ command: [\"CHANGE ME *\"] }} }}",
                yaml_str(arg)
            );
        }
        let _ = writeln!(y, "#  - id: allow-{name}-{}", id_part(&tool.name));
        let _ = writeln!(y, "#    when: {{ {} }}", comment_text(&when, 400));
        let _ = writeln!(y, "#    decision: allow");
        if tool.effect.effect != Effect::Read {
            let _ = writeln!(
                y,
                "#    # effect {}: consider decision: require_approval",
                tool.effect.effect
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn server_names_come_from_the_program() {
        let name = |a: &[&str]| default_server_name(&argv(a));
        assert_eq!(
            name(&[
                "npx",
                "-y",
                "@modelcontextprotocol/server-filesystem",
                "/ws"
            ]),
            "filesystem"
        );
        assert_eq!(
            name(&["uvx", "mcp-server-git", "--repository", "/ws"]),
            "git"
        );
        assert_eq!(
            name(&["/usr/bin/env", "X=1", "/opt/my.server"]),
            "my_server"
        );
        assert_eq!(name(&[]), "server");
    }

    #[test]
    fn yaml_strings_escape_everything_unusual() {
        assert_eq!(yaml_str("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(yaml_str("x\u{202e}y\n"), r#""x\u202ey\u000a""#);
        assert_eq!(yaml_str("\u{e0041}"), r#""\U000e0041""#);
    }
}
