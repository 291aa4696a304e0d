//! The demo's built-in policy.

use std::path::Path;

/// The policy template; `{EXE}`, `{WS}` and `{STATE}` are replaced by JSON-quoted paths (a JSON
/// string is a valid YAML scalar, whatever characters the temporary directory holds).
const TEMPLATE: &str = r#"# The portcullis demo policy: read the workspace, run `ls`, never touch secrets,
# writes need a human's approval, and everything else is denied.
version: 1
mode: enforce
state_dir: {STATE}
servers:
  workspace:
    command: [{EXE}, demo-server, {WS}]
tools:
  workspace.read_file:   { effect: read,  args: { path: path } }
  workspace.write_file:  { effect: write, args: { path: path } }
  workspace.run_command: { effect: exec,  args: { command: shell } }
rules:
  - id: deny-secrets
    when: { server: workspace, paths: { glob: ["**/.env", "**/*.key", "**/.ssh/**"] } }
    decision: deny
    reason: credentials must never reach the model
    on_deny: secrets are off limits
  - id: read-workspace
    when: { server: workspace, effect: read, paths: { under: {WS} } }
    decision: allow
  - id: safe-commands
    when: { server: workspace, tool: run_command, args: { command: { command: ["ls", "ls *"] } } }
    decision: allow
  - id: approve-writes
    when: { server: workspace, effect: write }
    decision: require_approval
    approval: { ttl: 10m }
"#;

/// The demo policy for the `portcullis` binary `exe`, workspace `ws` and state directory `state`.
pub(super) fn render(exe: &Path, ws: &Path, state: &Path) -> String {
    let quote = |path: &Path| {
        serde_json::to_string(&path.display().to_string()).unwrap_or_else(|_| "\"\"".to_owned())
    };
    TEMPLATE
        .replace("{EXE}", &quote(exe))
        .replace("{WS}", &quote(ws))
        .replace("{STATE}", &quote(state))
}
