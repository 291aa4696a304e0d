//! `portcullis scan`: list a server's tools and write a policy scaffold and its lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use portcullis_gateway::LockFile;
use portcullis_gateway::scan::{DEFAULT_SCAN_TIMEOUT, ScanOptions, default_server_name, scan};

use crate::EXIT_OK;

/// Connect to a server, list its tools and write a commented policy scaffold.
///
/// The server (COMMAND after `--`) is started like the gateway starts it: with a cleared
/// environment (PATH, HOME, USER, LANG, LC_ALL, TERM, TMPDIR only) in the current directory.
/// portcullis initializes it, lists every tool (following pagination), stops it, and writes:
///
///   - a policy scaffold: a `servers:` entry with the command and `pin: lock`; a `tools:` entry
///     per tool with an effect and argument kinds SUGGESTED from its name, annotations and input
///     schema (comments say why; none of it is trusted); poisoning findings as comments; `rules:`
///     empty, so every call is denied until a human writes rules (a commented example per tool);
///     tools with a finding in `hide:`.
///   - its portcullis.lock: the fingerprint of every tool without a finding.
///
/// Without --out the scaffold goes to standard output and a lock is written only with --lock.
/// Existing files are not replaced without --force.
///
/// Examples:
///   portcullis scan --out portcullis.yaml -- npx -y @modelcontextprotocol/server-filesystem /ws
///   portcullis scan --name git --out git.yaml -- uvx mcp-server-git --repository /ws
///   portcullis scan -- ./my-server --stdio > scaffold.yaml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ScanArgs {
    /// Write the scaffold here (its portcullis.lock goes beside it).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write the lock here instead of beside --out.
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// The server's name in the policy (default: from the program's name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// A Streamable HTTP server (not in this build).
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    url: Option<String>,
    /// Seconds each step (start, initialize, each page of tools) may take.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_SCAN_TIMEOUT.as_secs())]
    timeout: u64,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
    /// The server's program and arguments.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn refuse_existing(path: &Path, force: bool) -> Result<()> {
    if !force && path.exists() {
        bail!(
            "`{}` exists; not replacing it\nhelp: choose another --out/--lock, or pass --force",
            path.display()
        );
    }
    Ok(())
}

pub(crate) fn run(args: &ScanArgs) -> Result<u8> {
    if let Some(url) = &args.url {
        bail!(
            "scanning a Streamable HTTP server (`{url}`) is not in this build: the gateway has no HTTP client yet\nhelp: scan a stdio server with `portcullis scan -- COMMAND...`"
        );
    }
    if args.command.is_empty() {
        bail!("no server to scan\nhelp: portcullis scan --out portcullis.yaml -- COMMAND...");
    }
    let lock_path = match (&args.lock, &args.out) {
        (Some(lock), _) => Some(lock.clone()),
        (None, Some(out)) => Some(LockFile::path_for(out)),
        (None, None) => None,
    };
    if let Some(out) = &args.out {
        refuse_existing(out, args.force)?;
    }
    if let Some(lock) = &lock_path {
        refuse_existing(lock, args.force)?;
    }
    crate::run::init_logging();
    let options = ScanOptions {
        name: args
            .name
            .clone()
            .unwrap_or_else(|| default_server_name(&args.command)),
        command: args.command.clone(),
        cwd: std::env::current_dir().ok(),
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(scan(options));
    runtime.shutdown_timeout(Duration::from_millis(200));
    let scanned = result.map_err(|e| anyhow::anyhow!("scan failed: {e}"))?;
    let scaffold = scanned.scaffold();
    match &args.out {
        Some(out) => std::fs::write(out, &scaffold)
            .with_context(|| format!("cannot write `{}`", out.display()))?,
        None => print!("{scaffold}"),
    }
    let lock = scanned.lock();
    if let Some(path) = &lock_path {
        lock.write(path)?;
    }
    let flagged = scanned.tools.iter().filter(|t| !t.findings.is_empty());
    for tool in flagged {
        eprintln!(
            "finding: {}.{}: {}",
            scanned.options.name,
            tool.name.escape_debug(),
            tool.findings.join("; ").escape_debug()
        );
    }
    eprintln!(
        "scanned `{}`: {} tools, {} locked{}{}; every call is denied until you write rules",
        scanned.options.name,
        scanned.tools.len(),
        lock.tools.len(),
        args.out
            .as_ref()
            .map(|o| format!(", scaffold {}", o.display()))
            .unwrap_or_default(),
        lock_path
            .as_ref()
            .map(|l| format!(", lock {}", l.display()))
            .unwrap_or_default(),
    );
    Ok(EXIT_OK)
}
