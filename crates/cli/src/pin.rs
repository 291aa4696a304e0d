//! `portcullis pin`: review and approve the tool definitions the gateway pinned.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use portcullis_gateway::LockFile;
use portcullis_policy::model::PinMode;
use portcullis_store::{PinStatus, Store};

use crate::policy_file::DEFAULT_POLICY;
use crate::{EXIT_FAILED, EXIT_OK};

/// Review and approve pinned tool definitions.
///
/// Under `pin: tofu` or `pin: lock` on a server, the gateway fingerprints every tool the server
/// lists. A new, changed, renamed or poisoned tool is left out of tools/list and its calls are
/// denied until a human approves it here. `status` shows every tool the gateway has seen, with
/// the finding that holds it back; `approve` accepts the definition last seen (for `pin: lock`
/// it is written into portcullis.lock beside the policy); `update` writes portcullis.lock from
/// every tool last seen without a finding, for review in a diff.
///
/// Examples:
///   portcullis pin status --policy portcullis.yaml
///   portcullis pin approve fs.read_text_file
///   portcullis pin update --server fs && git diff portcullis.lock
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct PinArgs {
    /// The policy file (its lock file and state directory are beside it).
    #[arg(long, global = true, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The state directory, if not the policy's.
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The shared store, a `postgres://` URL (default: the policy's `store`, else SQLite in the
    /// state directory). From $PORTCULLIS_STORE, so a password need not be on the command line.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "PORTCULLIS_STORE",
        hide_env_values = true
    )]
    store: Option<String>,
    #[command(subcommand)]
    action: PinAction,
}

#[derive(Debug, Subcommand)]
enum PinAction {
    /// List every tool the gateway has seen; exit 1 if any is held back.
    Status {
        /// Only this server.
        #[arg(long, value_name = "NAME")]
        server: Option<String>,
    },
    /// Approve the definition last seen of SERVER.TOOL.
    Approve {
        /// The tool, as `server.tool`.
        #[arg(value_name = "SERVER.TOOL")]
        tool: String,
    },
    /// Write portcullis.lock from the tools last seen without a finding.
    Update {
        /// Only this server.
        #[arg(long, value_name = "NAME")]
        server: Option<String>,
    },
}

pub(crate) fn run(args: &PinArgs) -> Result<u8> {
    let policy_path = args
        .policy
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY));
    let (policy, _) = portcullis_gateway::load_policy(&policy_path)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot load `{}`", policy_path.display()))?;
    let dir = portcullis_gateway::state_dir(&policy_path, &policy, args.state_dir.as_deref());
    let url = args.store.as_deref().or(policy.store());
    if url.is_none() && !dir.join(portcullis_store::DB_FILE).is_file() {
        bail!(
            "no state at `{}`: the gateway has not run with this policy yet",
            dir.display()
        );
    }
    let store = Store::open(&dir, url).map_err(|e| anyhow!("{e}"))?;
    let lock_path = LockFile::path_for(&policy_path);
    match &args.action {
        PinAction::Status { server } => status(&store, server.as_deref()),
        PinAction::Approve { tool } => {
            let (server, name) = tool
                .split_once('.')
                .ok_or_else(|| anyhow!("`{tool}` is not `server.tool`"))?;
            let mode = policy.pin_mode(server).ok_or_else(|| {
                anyhow!("server `{server}` is not pinned in the policy (no `pin:`)")
            })?;
            let Some(pin) = store
                .approve_pin(server, name)
                .map_err(|e| anyhow!("{e}"))?
            else {
                bail!("the gateway has never seen `{tool}`; run it so the server lists its tools");
            };
            if mode == PinMode::Lock {
                let mut lock = LockFile::read(&lock_path)?;
                lock.tools.insert(tool.clone(), pin.seen_sha.clone());
                lock.write(&lock_path)?;
                println!(
                    "approved {tool} ({}) in {}",
                    short(&pin.seen_sha),
                    lock_path.display()
                );
            } else {
                println!("approved {tool} ({})", short(&pin.seen_sha));
            }
            Ok(EXIT_OK)
        }
        PinAction::Update { server } => update(&store, &lock_path, server.as_deref()),
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn status(store: &Store, server: Option<&str>) -> Result<u8> {
    let pins = store.pins(server).map_err(|e| anyhow!("{e}"))?;
    let mut held = 0;
    for pin in &pins {
        println!(
            "{:<12} {}.{} {}{}",
            pin.status.as_str(),
            pin.server,
            pin.tool,
            short(&pin.seen_sha),
            pin.finding
                .as_deref()
                .map(|f| format!("  — {f}"))
                .unwrap_or_default()
        );
        if pin.status != PinStatus::Approved {
            held += 1;
        }
    }
    if pins.is_empty() {
        println!("no tools seen yet");
    }
    Ok(if held > 0 { EXIT_FAILED } else { EXIT_OK })
}

fn update(store: &Store, lock_path: &Path, server: Option<&str>) -> Result<u8> {
    let mut lock = LockFile::read(lock_path)?;
    let mut skipped = 0;
    for pin in store.pins(server).map_err(|e| anyhow!("{e}"))? {
        let key = format!("{}.{}", pin.server, pin.tool);
        if pin.status == PinStatus::Quarantined
            && pin.approved_sha.as_deref() != Some(&pin.seen_sha)
        {
            eprintln!(
                "not locked: {key}: {}",
                pin.finding.as_deref().unwrap_or("quarantined")
            );
            skipped += 1;
            continue;
        }
        lock.tools.insert(key, pin.seen_sha);
    }
    lock.write(lock_path)?;
    println!("wrote {} ({} tools)", lock_path.display(), lock.tools.len());
    Ok(if skipped > 0 { EXIT_FAILED } else { EXIT_OK })
}
