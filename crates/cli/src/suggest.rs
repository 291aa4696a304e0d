//! `portcullis suggest`: propose allow rules from observe-mode audit records.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use portcullis_gateway::suggest::{SuggestOptions, render, seen_calls};
use portcullis_store::Store;

use crate::EXIT_OK;

/// Propose allow rules covering the calls seen in observe mode.
///
/// Reads the audit log's decision records of `tools/call` that were not enforced (observe mode;
/// with --all also enforced calls that were allowed), groups them by server and tool, and prints
/// one allow rule per group, as tight as the calls seen allow: path arguments under their deepest
/// common directories (at most --max-dirs, never `/`; a group whose paths cannot be brought
/// together is written `enabled: false`), URL arguments by host and scheme, other arguments as
/// the list of values seen when there are at most --max-values (numbers otherwise as the range
/// seen), else left unconstrained with a comment. Arguments are stored redacted: a value redacted
/// as a secret is never used. Each rule has a comment saying how many calls it covers.
///
/// With --policy, declared argument kinds and servers' `cwd` are used, and the log is the one in
/// the policy's state directory. Review every rule: what an agent did while observed is not
/// necessarily what it should be allowed to do.
///
/// Examples:
///   portcullis suggest --policy portcullis.yaml
///   portcullis suggest --state-dir .portcullis --server fs --since 120
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct SuggestArgs {
    /// The policy file (its state directory holds the log).
    #[arg(long, value_name = "FILE", required_unless_present = "state_dir")]
    policy: Option<PathBuf>,
    /// The state directory holding the log.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Only this server.
    #[arg(long, value_name = "NAME")]
    server: Option<String>,
    /// Only records after this sequence number.
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    since: u64,
    /// Also use enforced calls that were allowed.
    #[arg(long)]
    all: bool,
    /// The most directories one path argument's rule may name.
    #[arg(long, value_name = "N", default_value_t = 4)]
    max_dirs: usize,
    /// The most distinct values listed for one argument.
    #[arg(long, value_name = "N", default_value_t = 5)]
    max_values: usize,
}

pub(crate) fn run(args: &SuggestArgs) -> Result<u8> {
    let policy = match &args.policy {
        Some(path) => Some(
            portcullis_gateway::load_policy(path)
                .map_err(|e| anyhow!("{e}"))
                .with_context(|| format!("cannot load `{}`", path.display()))?
                .0,
        ),
        None => None,
    };
    let dir = match (&args.state_dir, &args.policy, &policy) {
        (Some(dir), _, _) => dir.clone(),
        (None, Some(path), Some(policy)) => portcullis_gateway::state_dir(path, policy, None),
        _ => bail!("give --policy FILE or --state-dir DIR"),
    };
    // A policy with a shared `store` reads the shared audit chain.
    let url = policy.as_ref().and_then(|p| p.store());
    if url.is_none() && !dir.join(portcullis_store::DB_FILE).is_file() {
        bail!(
            "no audit log at `{}`: run the gateway in observe mode first",
            dir.display()
        );
    }
    let store = Store::open(&dir, url).map_err(|e| anyhow!("{e}"))?;
    let options = SuggestOptions {
        server: args.server.clone(),
        since: args.since,
        all: args.all,
        max_dirs: args.max_dirs.max(1),
        max_values: args.max_values,
    };
    let calls = seen_calls(&store, &options).map_err(|e| anyhow!("{e}"))?;
    print!("{}", render(&calls, policy.as_ref(), &options));
    Ok(EXIT_OK)
}
