//! `portcullis demo`: the whole loop on a built-in sample server, for a first look.
//!
//! The demo makes a throw-away workspace (a README, a `.env` with a fake secret), writes the
//! built-in policy beside it, and starts the real gateway (`portcullis run`, spawned from the
//! binary itself) around the sample workspace server (`portcullis demo-server`, also the binary
//! itself). A scripted agent then talks MCP to the gateway over its stdio and prints what happens
//! to each call: an allow with its result, a deny with its rule and reason, a write that needs an
//! approval, a traversal attempt; then the audit trail and its verification.
//!
//! Nothing is mocked between the agent and the server: the demo runs the same code path as a
//! client such as Claude Desktop does.

mod agent;
mod policy;
mod server;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

pub use server::serve;

use agent::Agent;

/// How much of a result the demo prints.
const SHOWN_CHARS: usize = 60;

/// A demo that could not run (as opposed to one whose steps came out unexpectedly).
#[derive(Debug)]
pub struct DemoError(String);

impl DemoError {
    fn new(message: impl Into<String>) -> DemoError {
        DemoError(message.into())
    }
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DemoError {}

/// What `portcullis demo` needs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `portcullis` binary, started as the gateway and as the sample server.
    pub exe: PathBuf,
    /// Keep the workspace, policy and audit log afterwards (and say where they are).
    pub keep: bool,
}

/// What the policy should make of one step.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Allow,
    Deny {
        rule: &'static str,
        class: &'static str,
    },
}

/// What the demo's human does while a call waits for approval.
#[derive(Clone, Copy, Debug)]
enum Human {
    /// Nobody is asked.
    Absent,
    /// `portcullis approvals approve ID`.
    Approves,
    /// `portcullis approvals deny ID`.
    Denies,
}

/// One call of the scripted agent.
struct Step {
    what: &'static str,
    tool: &'static str,
    args: Value,
    expect: Expect,
    human: Human,
}

/// Runs the demo, printing to `out`. Returns `true` when every call was decided as the demo
/// policy says it should be and the audit chain verified.
///
/// # Errors
///
/// A [`DemoError`] when the demo could not run at all (no temporary directory, the gateway did
/// not start, an answer never came).
pub fn run(options: &DemoOptions, out: &mut dyn Write) -> Result<bool, DemoError> {
    let root = make_root()?;
    let result = run_in(options, &root, out);
    if options.keep {
        let _ = writeln!(
            out,
            "\nkept in {} (try: {} audit tail --state-dir {})",
            root.display(),
            options.exe.display(),
            root.join("state").display()
        );
    } else if let Err(error) = std::fs::remove_dir_all(&root) {
        let _ = writeln!(out, "\ncould not remove {}: {error}", root.display());
    }
    result
}

fn run_in(options: &DemoOptions, root: &Path, out: &mut dyn Write) -> Result<bool, DemoError> {
    let io = |e: std::io::Error| DemoError::new(format!("cannot set up the demo: {e}"));
    let ws = root.join("workspace");
    let state = root.join("state");
    let policy_path = root.join("portcullis.yaml");
    std::fs::create_dir_all(ws.join("src")).map_err(io)?;
    std::fs::write(
        ws.join("README.md"),
        "# Demo project\nA tiny workspace for the portcullis demo.\n",
    )
    .map_err(io)?;
    std::fs::write(ws.join("src/main.rs"), "fn main() {}\n").map_err(io)?;
    std::fs::write(ws.join(".env"), "API_KEY=sk-demo-not-a-real-key\n").map_err(io)?;
    let policy = policy::render(&options.exe, &ws, &state);
    std::fs::write(&policy_path, &policy).map_err(io)?;

    let ws_text = ws.display().to_string();
    let p = |rel: &str| format!("{ws_text}/{rel}");
    let steps = [
        Step {
            what: "read the project README",
            tool: "read_file",
            args: json!({"path": p("README.md")}),
            expect: Expect::Allow,
            human: Human::Absent,
        },
        Step {
            what: "list the workspace",
            tool: "run_command",
            args: json!({"command": "ls"}),
            expect: Expect::Allow,
            human: Human::Absent,
        },
        Step {
            what: "read the API key in .env",
            tool: "read_file",
            args: json!({"path": p(".env")}),
            expect: Expect::Deny {
                rule: "deny-secrets",
                class: "argument",
            },
            human: Human::Absent,
        },
        Step {
            what: "write a file: the call is held until a human approves it",
            tool: "write_file",
            args: json!({"path": p("NOTES.md"), "content": "agent notes\n"}),
            expect: Expect::Allow,
            human: Human::Approves,
        },
        Step {
            what: "overwrite the README: the human says no",
            tool: "write_file",
            args: json!({"path": p("README.md"), "content": "pwned\n"}),
            expect: Expect::Deny {
                rule: "approve-writes",
                class: "approval",
            },
            human: Human::Denies,
        },
        Step {
            what: "climb out of the workspace with ../",
            tool: "read_file",
            args: json!({"path": p("src/../../../../etc/passwd")}),
            expect: Expect::Deny {
                rule: "default-deny",
                class: "default",
            },
            human: Human::Absent,
        },
        Step {
            what: "run something destructive",
            tool: "run_command",
            args: json!({"command": "rm -rf ~"}),
            expect: Expect::Deny {
                rule: "default-deny",
                class: "default",
            },
            human: Human::Absent,
        },
    ];

    let w = |out: &mut dyn Write, text: String| {
        writeln!(out, "{text}").map_err(|e| DemoError::new(format!("cannot print: {e}")))
    };
    w(
        out,
        "Portcullis demo: a scripted agent calls tools through the gateway.\n".to_owned(),
    )?;
    w(
        out,
        format!("  workspace  $WS = {ws_text}  (README.md, src/main.rs, .env)"),
    )?;
    w(out, format!("  policy     {}", policy_path.display()))?;
    w(out, format!("  audit log  {}\n", state.display()))?;
    w(out, "── the built-in policy ──".to_owned())?;
    for line in policy.lines() {
        w(out, format!("  {}", line.replace(&ws_text, "$WS")))?;
    }

    let mut command = Command::new(&options.exe);
    command.arg("run").arg("--policy").arg(&policy_path);
    let mut agent = Agent::start(command)?;
    let server = agent.initialize()?;
    w(
        out,
        format!(
            "\n── the session (the agent speaks MCP to `portcullis run`, which wraps `{server}`) ──"
        ),
    )?;

    let mut as_expected = true;
    for (n, step) in steps.iter().enumerate() {
        let args = step.args.to_string().replace(&ws_text, "$WS");
        w(
            out,
            format!(
                "\n{}. {}\n   agent → {} {args}",
                n + 1,
                step.what,
                step.tool
            ),
        )?;
        let id = agent.start_request(
            "tools/call",
            json!({"name": step.tool, "arguments": step.args}),
        )?;
        if !matches!(step.human, Human::Absent) {
            for line in act_as_human(&options.exe, &state, step.human)? {
                w(out, format!("   {}", line.replace(&ws_text, "$WS")))?;
            }
        }
        let answer = agent.answer(id, "tools/call")?;
        let (shown, ok) = describe(&answer, step.expect);
        for line in shown {
            w(out, format!("   {line}"))?;
        }
        if !ok {
            as_expected = false;
            w(
                out,
                format!("   !! expected {:?}, got: {answer}", step.expect),
            )?;
        }
    }
    if std::fs::read_to_string(ws.join("README.md")).is_ok_and(|t| t.contains("pwned")) {
        as_expected = false;
        w(
            out,
            "   !! the refused write reached the server: README.md was overwritten".to_owned(),
        )?;
    }
    if std::fs::metadata(ws.join("NOTES.md")).is_err() {
        as_expected = false;
        w(
            out,
            "   !! the approved write did not reach the server: NOTES.md is missing".to_owned(),
        )?;
    }
    if let Err(error) = agent.finish() {
        as_expected = false;
        w(out, format!("!! {error}"))?;
    }

    let state_text = state.display().to_string();
    w(
        out,
        "\n── the audit trail: portcullis audit tail -n 20 ──".to_owned(),
    )?;
    let (tail_ok, tail) = portcullis(
        &options.exe,
        &["audit", "tail", "-n", "20", "--state-dir", &state_text],
    )?;
    for line in tail.lines() {
        w(out, format!("  {}", line.replace(&ws_text, "$WS")))?;
    }
    w(out, "\n── portcullis audit verify ──".to_owned())?;
    let (verify_ok, verify) = portcullis(
        &options.exe,
        &["audit", "verify", "--state-dir", &state_text],
    )?;
    for line in verify.lines() {
        w(out, format!("  {line}"))?;
    }
    as_expected &= tail_ok && verify_ok;

    w(
        out,
        if as_expected {
            "\nEvery call was decided as the policy says, each decision was recorded before the call went on, and the chain verifies.".to_owned()
        } else {
            "\nSomething did not go as the demo expected (see `!!` above).".to_owned()
        },
    )?;
    Ok(as_expected)
}

/// The lines to print for one answer, and whether it is what `expect` says.
fn describe(answer: &Value, expect: Expect) -> (Vec<String>, bool) {
    let result = answer.get("result");
    let is_error = result
        .and_then(|r| r.get("isError"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let text = result
        .and_then(|r| r.pointer("/content/0/text"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let decision = result.and_then(|r| r.get("structuredContent"));
    let field = |name: &str| {
        decision
            .and_then(|d| d.get(name))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    match (result, is_error, decision) {
        (Some(_), false, _) => {
            let joined = text.lines().collect::<Vec<_>>().join(" | ");
            let shown: String = joined.chars().take(SHOWN_CHARS).collect();
            let more = if shown.len() < joined.len() {
                " …"
            } else {
                ""
            };
            (
                vec![format!("ALLOWED  the server answered: {shown:?}{more}")],
                matches!(expect, Expect::Allow),
            )
        }
        (Some(_), true, Some(_)) => {
            let (rule, class) = (field("rule"), field("reason_class"));
            let lines = vec![
                format!(
                    "DENIED   rule {rule}, reason class {class}: {}",
                    field("reason")
                ),
                format!(
                    "         decision {} (find it in the audit trail)",
                    field("decision_id")
                ),
            ];
            let ok =
                matches!(expect, Expect::Deny { rule: r, class: c } if r == rule && c == class);
            (lines, ok)
        }
        _ => (vec![format!("ERROR    {answer}")], false),
    }
}

/// Runs `exe args...`; returns whether it succeeded and its standard output (with its standard
/// error on failure).
fn portcullis(exe: &Path, args: &[&str]) -> Result<(bool, String), DemoError> {
    let output = Command::new(exe)
        .args(args)
        .output()
        .map_err(|e| DemoError::new(format!("cannot run `portcullis {}`: {e}", args.join(" "))))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        text.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    Ok((output.status.success(), text))
}

/// A fresh private directory under the system's temporary directory.
fn make_root() -> Result<PathBuf, DemoError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| DemoError::new(format!("no randomness for a temporary name: {e}")))?;
    let root = std::env::temp_dir().join(format!("portcullis-demo-{}", hex::encode(bytes)));
    std::fs::create_dir(&root)
        .and_then(|()| root.canonicalize())
        .map_err(|e| DemoError::new(format!("cannot create {}: {e}", root.display())))
}

/// How long the demo's human waits for the held call to show up in the approvals list.
const HUMAN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// Plays the human at the approvals CLI: waits for the pending approval, shows it, then
/// approves or denies it with `portcullis approvals`, exactly as an operator would.
fn act_as_human(exe: &Path, state: &Path, human: Human) -> Result<Vec<String>, DemoError> {
    let state_text = state.display().to_string();
    let deadline = std::time::Instant::now() + HUMAN_PATIENCE;
    let pending = loop {
        let (_, list) = portcullis(
            exe,
            &["approvals", "list", "--json", "--state-dir", &state_text],
        )?;
        let found = list
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|a| a.get("state").and_then(Value::as_str) == Some("pending"));
        if let Some(found) = found {
            break found;
        }
        if std::time::Instant::now() > deadline {
            return Err(DemoError::new(
                "the held call never appeared in `portcullis approvals list`",
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let id = pending
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut shown = vec![format!(
        "HELD     pending approval {id}: {} {} ({} effect, rule {})",
        pending.get("tool").and_then(Value::as_str).unwrap_or("?"),
        pending
            .get("arguments")
            .map(Value::to_string)
            .unwrap_or_default(),
        pending.get("effect").and_then(Value::as_str).unwrap_or("?"),
        pending.get("rule").and_then(Value::as_str).unwrap_or("?"),
    )];
    let (verb, note) = match human {
        Human::Denies => ("deny", "the README stays as it is"),
        Human::Approves | Human::Absent => ("approve", "notes are fine"),
    };
    let (ok, said) = portcullis(
        exe,
        &[
            "approvals",
            verb,
            &id,
            "--as",
            "demo-human",
            "--note",
            note,
            "--state-dir",
            &state_text,
        ],
    )?;
    if !ok {
        return Err(DemoError::new(format!(
            "`portcullis approvals {verb}` failed: {said}"
        )));
    }
    shown.push(format!(
        "human → portcullis approvals {verb} {id} --as demo-human"
    ));
    Ok(shown)
}
