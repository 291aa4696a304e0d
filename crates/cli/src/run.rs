//! `portcullis run`: wrap one stdio MCP server for one stdio client.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use portcullis_gateway::RunOptions;

use crate::policy_file::DEFAULT_POLICY;

/// How long the runtime may take to stop after the session ended. Standard input is read on a
/// blocking thread that cannot be cancelled; without a bound the process would wait for input
/// that never comes.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(200);

/// Wrap a stdio MCP server: check, record, then forward every request.
///
/// The client (Claude Desktop, Cursor, VS Code, an agent) talks MCP to this process on standard
/// input and output; the server is started from the policy's `command` for the selected server
/// (or from COMMAND after `--`, which replaces it; nothing a client sends ever chooses what runs).
/// `tools/call`, `resources/read` and `prompts/get` are evaluated; the decision is written to the
/// audit log and made durable before a call is forwarded. Denials reach the model as tool results
/// with `isError: true` naming the rule, the reason and the decision id.
///
/// Before serving, the gateway refuses a policy that does not load (exit 2) and runs a self-test
/// that must deny a forbidden call. It then prints one line to standard error naming the server,
/// the policy's sha256, the mode and the state directory. The policy file is re-read every second;
/// a change that loads replaces the policy, a broken one keeps the last good policy.
///
/// Logs go to standard error (standard output is the MCP channel); set PORTCULLIS_LOG (for
/// example `debug`, `warn`, `portcullis_gateway=debug`) to change the level, default `info`.
///
/// The exit status is the server's (128+N if it died of signal N), or 1 when the policy ended the
/// session with `kill_session`, or 2 when the gateway could not start.
///
/// Examples:
///   portcullis run --policy portcullis.yaml
///   portcullis run --policy portcullis.yaml --server fs
///   portcullis run --server fs -- npx -y @modelcontextprotocol/server-filesystem /ws
///   portcullis run --policy portcullis.yaml --state-dir /var/lib/portcullis
///   portcullis run --policy portcullis.yaml --admin 127.0.0.1:8751 --principal alice
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct RunArgs {
    /// The policy file.
    #[arg(long, default_value = DEFAULT_POLICY, value_name = "FILE")]
    policy: PathBuf,
    /// The configured server whose rules apply (required when the policy configures several).
    #[arg(long, value_name = "NAME")]
    server: Option<String>,
    /// Where the audit log and signing key live (default: the policy's `state_dir`, else
    /// `.portcullis/` beside the policy file).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Shared state on PostgreSQL, a `postgres://` URL (default: the policy's `store`, else
    /// SQLite in the state directory, which keeps the signing key either way). From
    /// $PORTCULLIS_STORE, so a password need not be on the command line.
    #[arg(
        long,
        value_name = "URL",
        env = "PORTCULLIS_STORE",
        hide_env_values = true
    )]
    store: Option<String>,
    /// The principal of this session's calls (rules' `principal`, approval digests, and
    /// `separate_approver`: this name cannot approve its own calls).
    #[arg(long, value_name = "NAME")]
    principal: Option<String>,
    /// Serve the approvals admin API and web page on ADDR (`127.0.0.1:PORT`, port 0 picks one)
    /// or a unix socket path; requests need the token in the state directory's `admin.token`.
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Run this command instead of the server's configured one.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub(crate) fn run(args: RunArgs) -> Result<u8> {
    init_logging();
    // One session, one thread: every event of the session is handled by one task, so more
    // threads only add wake-ups between them (measured: a third of the added latency at one
    // call in flight, docs/performance.md). Durable audit writes keep their own thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let options = RunOptions {
        policy: args.policy,
        server: args.server,
        state_dir: args.state_dir,
        store: args.store,
        command: (!args.command.is_empty()).then_some(args.command),
        principal: args.principal,
        admin: args.admin,
    };
    let result = runtime.block_on(portcullis_gateway::run(options));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    let code = result.map_err(|error| anyhow::anyhow!("{error}\nportcullis: refusing to start"))?;
    Ok(u8::try_from(code.clamp(0, 255)).unwrap_or(crate::EXIT_ERROR))
}

/// Logs to standard error only: standard output carries the MCP messages.
pub(crate) fn init_logging() {
    init_logging_as(LogFormat::Text);
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `message` and the event's fields), for
    /// log pipelines.
    Json,
}

/// Logs to standard error in `format`, at the level `PORTCULLIS_LOG` sets (default `info`).
pub(crate) fn init_logging_as(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        // Clients such as Claude Desktop save the server's stderr to log files: colour codes
        // only where a person is watching a terminal.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}
