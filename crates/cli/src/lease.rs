//! `portcullis lease`: grant, list and revoke scope leases.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use portcullis_policy::model::PolicyDuration;
use portcullis_store::NewLease;

use crate::approvals::{StateArgs, open, who};

/// Grant standing approval for a narrow scope: calls that would need a human's approval are
/// allowed while they match the lease, before it expires, up to its call count.
///
/// A lease is for one session (--session, the id in `portcullis approvals list` and the audit
/// log) or one principal (--principal). It covers `tools/call` of tools matching --tool (a glob,
/// matched like a rule's `tool`), on --server if given, and with every --args-under NAME=DIR
/// argument a path under DIR (normalized and symlink-resolved like a rule's `under`). It never
/// turns `deny` into anything: only `require_approval` becomes `allow`. Each use is counted
/// atomically and named in the audit record (`lease_id`).
///
/// Examples:
///   portcullis lease grant --session s-4e1f... --tool write_file --args-under path=/ws/src --ttl 30m --max-calls 20
///   portcullis lease grant --principal alice --server fs --tool 'write_*' --ttl 1h --max-calls 5
///   portcullis lease list
///   portcullis lease revoke l-77c0...
///
/// EXIT STATUS: 0 done; 1 no such active lease (revoke); 2 usage or runtime error.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct LeaseArgs {
    #[command(flatten)]
    state: StateArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Grant a lease.
    Grant(Grant),
    /// List active leases.
    List {
        /// Include expired, used-up and revoked leases.
        #[arg(long)]
        all: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a lease at once.
    Revoke {
        /// The lease id.
        id: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["session", "principal"])))]
struct Grant {
    /// Only calls of this gateway session.
    #[arg(long, value_name = "S")]
    session: Option<String>,
    /// Only calls of this principal.
    #[arg(long, value_name = "P")]
    principal: Option<String>,
    /// Only calls to this configured server.
    #[arg(long, value_name = "NAME")]
    server: Option<String>,
    /// The tools it covers (a glob).
    #[arg(long, value_name = "GLOB")]
    tool: String,
    /// Argument NAME must be a path under the absolute directory PATH (repeatable).
    #[arg(long = "args-under", value_name = "NAME=PATH")]
    args_under: Vec<String>,
    /// How long it lasts (`30s`, `30m`, `2h`, `1d`).
    #[arg(long, value_name = "DURATION")]
    ttl: String,
    /// How many calls it covers.
    #[arg(long, value_name = "N")]
    max_calls: u64,
    /// Who grants it (default: $USER).
    #[arg(long = "as", value_name = "NAME")]
    granted_by: Option<String>,
    /// A note for the record.
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,
}

pub(crate) fn run(args: &LeaseArgs) -> Result<u8> {
    let store = open(&args.state)?;
    match &args.action {
        Action::Grant(grant) => {
            let ttl =
                PolicyDuration::parse(&grant.ttl).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
            if grant.max_calls == 0 {
                bail!("--max-calls must be at least 1");
            }
            let mut args_under = Vec::new();
            for item in &grant.args_under {
                let Some((name, path)) = item.split_once('=') else {
                    bail!("--args-under `{item}`: write NAME=PATH, e.g. path=/workspace/src");
                };
                if name.is_empty() || !path.starts_with('/') {
                    bail!("--args-under `{item}`: NAME must be given and PATH must be absolute");
                }
                args_under.push((name.to_owned(), path.to_owned()));
            }
            let lease = store
                .grant_lease(&NewLease {
                    id: portcullis_gateway::approvals::new_id("l-"),
                    session: grant.session.clone(),
                    principal: grant.principal.clone(),
                    server: grant.server.clone(),
                    tool: grant.tool.clone(),
                    args_under,
                    ttl_ms: ttl.seconds().saturating_mul(1000),
                    max_calls: grant.max_calls,
                    granted_by: who(grant.granted_by.as_deref())?,
                    note: grant.note.clone(),
                })
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{} granted: {} calls of `{}` until {}",
                lease.id, lease.max_calls, lease.tool, lease.expires_at
            );
            Ok(crate::EXIT_OK)
        }
        Action::List { all, json } => {
            let leases = store.leases(*all).map_err(|e| anyhow::anyhow!("{e}"))?;
            for lease in &leases {
                if *json {
                    println!("{}", serde_json::to_string(lease)?);
                } else {
                    let under: Vec<String> = lease
                        .args_under
                        .iter()
                        .map(|(n, p)| format!("{n}={p}"))
                        .collect();
                    println!(
                        "{} {} for {} tool={} server={} under=[{}] used {}/{} expires {} by {}",
                        lease.id,
                        if lease.active { "active" } else { "inactive" },
                        lease
                            .session
                            .as_deref()
                            .map(|s| format!("session {s}"))
                            .or_else(|| lease
                                .principal
                                .as_deref()
                                .map(|p| format!("principal {p}")))
                            .unwrap_or_default(),
                        lease.tool,
                        lease.server.as_deref().unwrap_or("*"),
                        under.join(","),
                        lease.used_calls,
                        lease.max_calls,
                        lease.expires_at,
                        lease.granted_by
                    );
                }
            }
            Ok(crate::EXIT_OK)
        }
        Action::Revoke { id } => {
            if store.revoke_lease(id).map_err(|e| anyhow::anyhow!("{e}"))? {
                println!("{id} revoked");
                Ok(crate::EXIT_OK)
            } else {
                eprintln!("error: no active lease `{id}`");
                Ok(crate::EXIT_FAILED)
            }
        }
    }
}
