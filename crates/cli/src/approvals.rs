//! `portcullis approvals`: list, show, approve, deny and verify human approvals.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use portcullis_store::{Approval, Channel, Receipt, Resolution, ResolveError, Store};

/// Resolve the calls the policy holds for a human (`decision: require_approval`).
///
/// A call that needs an approval gets a pending approval bound to the exact call (server, tool,
/// method, arguments, session, principal). `approve` lets that exact call through once, before the
/// approval expires; `deny` refuses it. Every resolution writes a receipt signed with the gateway's
/// Ed25519 key; `verify` checks one. A running gateway notices a resolution within a second.
///
/// The approvals live in the state directory: --state-dir DIR, or the one the policy names (its
/// `state_dir`, else `.portcullis/` beside it), with --policy FILE (default ./portcullis.yaml).
///
/// Examples:
///   portcullis approvals list
///   portcullis approvals show a-3f2c...
///   portcullis approvals approve a-3f2c... --note "checked the diff" --as alice
///   portcullis approvals deny a-3f2c... --note "not in this repo"
///   portcullis approvals verify r-91ab...      (a receipt id, an approval id, or a receipt file)
///
/// EXIT STATUS: 0 done (or receipt valid); 1 refused (unknown, not pending, expired, same approver)
/// or receipt invalid; 2 usage or runtime error.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ApprovalsArgs {
    #[command(flatten)]
    pub(crate) state: StateArgs,
    #[command(subcommand)]
    action: Action,
}

/// Where the state directory is.
#[derive(Debug, Args)]
pub(crate) struct StateArgs {
    /// The policy file whose state directory holds the approvals.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "state_dir")]
    pub(crate) policy: Option<PathBuf>,
    /// The state directory.
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// The shared store, a `postgres://` URL (default: the policy's `store`, else SQLite in the
    /// state directory). From $PORTCULLIS_STORE, so a password need not be on the command line.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "PORTCULLIS_STORE",
        hide_env_values = true
    )]
    pub(crate) store: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List pending approvals (newest first).
    List {
        /// Include resolved, expired and used approvals.
        #[arg(long)]
        all: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show one approval with its exact arguments.
    Show {
        /// The approval id.
        id: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve one pending call: it goes through once.
    Approve(Decide),
    /// Deny one pending call.
    Deny(Decide),
    /// Check a receipt's signature against this state directory's key.
    Verify {
        /// A receipt id, an approval id, or a file holding a receipt's JSON.
        receipt: String,
    },
}

#[derive(Debug, Args)]
struct Decide {
    /// The approval id.
    id: String,
    /// A note for the receipt.
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,
    /// Who decides (default: $USER).
    #[arg(long = "as", value_name = "NAME")]
    approver: Option<String>,
}

/// Opens the approvals of an existing state (state directory or shared store).
pub(crate) fn open(state: &StateArgs) -> Result<Store> {
    crate::policy_file::open_state(
        "gateway state",
        state.policy.as_deref(),
        state.state_dir.as_deref(),
        state.store.as_deref(),
    )
}

/// The approver: --as, else the login name.
pub(crate) fn who(given: Option<&str>) -> Result<String> {
    if let Some(name) = given {
        return Ok(name.to_owned());
    }
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|name| !name.is_empty())
        .context("cannot tell who you are: give --as NAME")
}

pub(crate) fn run(args: &ApprovalsArgs) -> Result<u8> {
    let store = open(&args.state)?;
    match &args.action {
        Action::List { all, json } => {
            let list = store.list(*all).map_err(|e| anyhow::anyhow!("{e}"))?;
            for approval in &list {
                if *json {
                    println!("{}", serde_json::to_string(approval)?);
                } else {
                    println!("{}", summary(approval));
                }
            }
            if list.is_empty() && !*json {
                eprintln!("no {}approvals", if *all { "" } else { "pending " });
            }
            if list.len() >= portcullis_store::LIST_LIMIT {
                // Said on standard error, so `--json` output stays one approval per line.
                let total = store.count(*all).map_err(|e| anyhow::anyhow!("{e}"))?;
                eprintln!(
                    "note: showing the newest {} of {total} {}approvals; resolve or let some expire to see older ones, or use `approvals show ID`",
                    list.len(),
                    if *all { "" } else { "pending " }
                );
            }
            Ok(crate::EXIT_OK)
        }
        Action::Show { id, json } => {
            let Some(approval) = store.show(id).map_err(|e| anyhow::anyhow!("{e}"))? else {
                eprintln!("error: no approval `{id}`");
                return Ok(crate::EXIT_FAILED);
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&approval)?);
            } else {
                print_details(&approval);
            }
            Ok(crate::EXIT_OK)
        }
        Action::Approve(decide) => resolve(&store, decide, true),
        Action::Deny(decide) => resolve(&store, decide, false),
        Action::Verify { receipt } => verify(&store, receipt),
    }
}

fn summary(a: &Approval) -> String {
    format!(
        "{} {} {}.{} effect={} rule={} session={} expires={}",
        a.id,
        a.state.as_str(),
        a.server,
        a.tool,
        a.effect,
        a.rule,
        a.session,
        a.expires_at
    )
}

fn print_details(a: &Approval) {
    println!("approval   {}", a.id);
    println!("state      {}", a.state.as_str());
    println!(
        "call       {}.{} ({}, mode {})",
        a.server, a.tool, a.method, a.mode
    );
    println!("effect     {}", a.effect);
    println!("rule       {}", a.rule);
    println!("reason     {}", a.reason);
    println!("session    {}", a.session);
    println!("principal  {}", a.principal.as_deref().unwrap_or("-"));
    println!("digest     {}", a.digest);
    println!("created    {}", a.created_at);
    println!("expires    {}", a.expires_at);
    if let Some(approver) = &a.approver {
        println!(
            "resolved   {} by {approver} via {}",
            a.resolved_at.as_deref().unwrap_or("?"),
            a.channel.as_deref().unwrap_or("?")
        );
    }
    if let Some(note) = &a.note {
        println!("note       {note}");
    }
    if let Some(receipt) = &a.receipt_id {
        println!("receipt    {receipt}");
    }
    println!("arguments (exact):");
    println!(
        "{}",
        serde_json::to_string_pretty(&a.arguments).unwrap_or_default()
    );
}

fn resolve(store: &Store, decide: &Decide, approve: bool) -> Result<u8> {
    let resolution = Resolution {
        approve,
        approver: who(decide.approver.as_deref())?,
        channel: Channel::Cli,
        note: decide.note.clone(),
    };
    match store.resolve(&decide.id, &resolution) {
        Ok(receipt) => {
            println!(
                "{} {} by {}; receipt {}",
                receipt.body.approval_id,
                receipt.body.decision,
                receipt.body.approver,
                receipt.body.id
            );
            Ok(crate::EXIT_OK)
        }
        Err(ResolveError::Store(e)) => Err(anyhow::anyhow!("{e}")),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(crate::EXIT_FAILED)
        }
    }
}

fn verify(store: &Store, what: &str) -> Result<u8> {
    let path = Path::new(what);
    let receipt: Receipt = if path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        match serde_json::from_str(&text) {
            Ok(receipt) => receipt,
            Err(e) => {
                println!("receipt INVALID: `{what}` is not a receipt: {e}");
                return Ok(crate::EXIT_FAILED);
            }
        }
    } else {
        match store.receipt(what).map_err(|e| anyhow::anyhow!("{e}"))? {
            Some(receipt) => receipt,
            None => {
                eprintln!("error: no receipt `{what}` (and no such file)");
                return Ok(crate::EXIT_FAILED);
            }
        }
    };
    let keys = store.signer_keys().map_err(|e| anyhow::anyhow!("{e}"))?;
    if keys.iter().any(|key| receipt.verify(key)) {
        let b = &receipt.body;
        println!(
            "receipt ok: {} {} {} by {} via {} ({} assurance) at {}; call digest {}",
            b.id, b.approval_id, b.decision, b.approver, b.channel, b.assurance, b.time, b.digest
        );
        println!("{}", serde_json::to_string(&receipt)?);
        Ok(crate::EXIT_OK)
    } else {
        println!(
            "receipt INVALID: the signature does not match this gateway's key ({}) or another registered gateway key",
            hex_key(store)
        );
        Ok(crate::EXIT_FAILED)
    }
}

fn hex_key(store: &Store) -> String {
    store
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
