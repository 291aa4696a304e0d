//! `portcullis demo`: the whole loop on a built-in sample server, and the hidden `demo-server`
//! that is that sample server.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use portcullis_gateway::demo::{self, DemoOptions};

/// A first look: a scripted agent session through the gateway, on a built-in sample server.
///
/// Makes a throw-away workspace, writes the built-in demo policy beside it, and runs the real
/// gateway (`portcullis run`) around a small sample workspace server with `read_file`,
/// `write_file` and `run_command` tools. A scripted agent then talks MCP to the gateway and the
/// demo prints what happens to each call (an allow with its result, a deny with its rule and
/// reason, a write that needs an approval, a traversal attempt), followed by the audit trail and
/// `audit verify`.
///
/// Exit status 0 when every call was decided as the demo expects and the audit chain verifies.
///
/// Examples:
///   portcullis demo
///   portcullis demo --keep
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Keep the workspace, policy and audit log afterwards, to explore them.
    #[arg(long)]
    keep: bool,
}

/// The demo's sample MCP server on stdio (used by `portcullis demo`).
#[derive(Debug, Args)]
pub(crate) struct DemoServerArgs {
    /// The workspace directory it serves.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

pub(crate) fn run(args: &DemoArgs) -> Result<u8> {
    let exe = std::env::current_exe().context("cannot find the portcullis binary to run")?;
    let options = DemoOptions {
        exe,
        keep: args.keep,
    };
    let ok = demo::run(&options, &mut std::io::stdout().lock())?;
    Ok(if ok {
        crate::EXIT_OK
    } else {
        crate::EXIT_FAILED
    })
}

pub(crate) fn serve(args: &DemoServerArgs) -> Result<u8> {
    demo::serve(&args.dir, std::io::stdin().lock(), std::io::stdout().lock())
        .with_context(|| format!("demo server on `{}`", args.dir.display()))?;
    Ok(crate::EXIT_OK)
}
