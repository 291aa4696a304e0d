//! `portcullis store`: check and migrate the shared PostgreSQL store, and copy a gateway's
//! embedded SQLite state into it.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use portcullis_store::{SchemaStatus, check_schema, copy_sqlite_to_postgres, migrate_schema};

use crate::policy_file::DEFAULT_POLICY;

/// Check, migrate and fill the shared PostgreSQL store.
///
/// Several `portcullis serve` instances share approvals, leases, rate limits, pins and one audit
/// chain through PostgreSQL (`store: postgres://...` in the policy, or --store). Every instance
/// migrates the schema when it starts; `migrate` does it ahead of a rollout, and `check` says
/// whether this build can use the database. `copy` moves a gateway's embedded SQLite state into
/// a new, empty PostgreSQL database and verifies the copied audit chain.
///
/// The database is --store URL (or $PORTCULLIS_STORE), else the `store` of the policy
/// (--policy FILE, default ./portcullis.yaml). Keep passwords out of the command line: put the
/// URL in $PORTCULLIS_STORE, or `${VAR}` in the policy.
///
/// Examples:
///   portcullis store check --policy team.yaml
///   PORTCULLIS_STORE=postgres://portcullis:$PW@localhost/portcullis portcullis store migrate
///   portcullis store copy --from .portcullis --to postgres://portcullis@localhost/portcullis
///   portcullis store copy --from team.yaml --to 'postgres://gw@db.lan/gw?sslmode=disable'
///
/// EXIT STATUS: 0 done, or (check) the schema is current; 1 (check) the database needs
/// `migrate` or was migrated by a newer portcullis; 2 usage or runtime error (a malformed URL,
/// an unreachable server, a refused copy).
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct StoreArgs {
    /// The policy whose `store` names the database.
    #[arg(long, global = true, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The database, a `postgres://` URL (overrides the policy's `store`).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "PORTCULLIS_STORE",
        hide_env_values = true
    )]
    store: Option<String>,
    #[command(subcommand)]
    action: StoreAction,
}

#[derive(Debug, Subcommand)]
enum StoreAction {
    /// Say whether the database's schema is the one this build uses; exit 1 if not.
    Check,
    /// Bring the database's schema up to date (idempotent; refuses a newer schema).
    Migrate,
    /// Copy a gateway's SQLite state into a new, empty PostgreSQL database and verify it.
    Copy {
        /// The source: a state directory (holding `state.db` and `signing.key`), or a policy
        /// file whose state directory to copy.
        #[arg(long, value_name = "DIR|POLICY")]
        from: PathBuf,
        /// The destination database, a `postgres://` URL (default: --store or $PORTCULLIS_STORE,
        /// which keeps a password off the command line).
        #[arg(long, value_name = "URL")]
        to: Option<String>,
    },
}

pub(crate) fn run(args: &StoreArgs) -> Result<u8> {
    match &args.action {
        StoreAction::Check => {
            let status = check_schema(&url(args)?).map_err(|e| anyhow!("{e}"))?;
            Ok(report_check(&status))
        }
        StoreAction::Migrate => {
            let status = migrate_schema(&url(args)?).map_err(|e| anyhow!("{e}"))?;
            if status.found == status.now {
                println!(
                    "store {}: schema version {} is up to date",
                    status.target, status.now
                );
            } else {
                println!(
                    "store {}: migrated the schema from version {} to {}",
                    status.target, status.found, status.now
                );
            }
            Ok(crate::EXIT_OK)
        }
        StoreAction::Copy { from, to } => {
            let dir = source_dir(from)?;
            let Some(to) = to.as_deref().or(args.store.as_deref()) else {
                bail!("no destination\nhelp: give --to postgres://... (or set $PORTCULLIS_STORE)");
            };
            let report = copy_sqlite_to_postgres(&dir, to).map_err(|e| anyhow!("{e}"))?;
            println!(
                "copied `{}` to {}: {} audit records (chain verified), {} approvals, {} receipts, {} leases, {} sessions, {} counters, {} pins",
                dir.display(),
                report.target,
                report.audit,
                report.approvals,
                report.receipts,
                report.leases,
                report.sessions,
                report.counters,
                report.pins
            );
            Ok(crate::EXIT_OK)
        }
    }
}

fn report_check(status: &SchemaStatus) -> u8 {
    let SchemaStatus {
        target,
        found,
        supported,
        ..
    } = status;
    if found == supported {
        println!("store {target}: schema version {found}, the one this build uses");
        crate::EXIT_OK
    } else if found < supported {
        println!(
            "store {target}: schema version {found}, this build uses {supported}\nhelp: run `portcullis store migrate` (every instance also migrates when it starts)"
        );
        crate::EXIT_FAILED
    } else {
        println!(
            "store {target}: schema version {found} is newer than this build knows ({supported})\nhelp: upgrade portcullis on this machine"
        );
        crate::EXIT_FAILED
    }
}

/// The database: --store, else the policy's `store`.
fn url(args: &StoreArgs) -> Result<String> {
    if let Some(url) = &args.store {
        return Ok(url.clone());
    }
    let path = args
        .policy
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY));
    let (policy, _) = portcullis_gateway::load_policy(&path).map_err(|e| {
        anyhow!(
            "{e}\nhelp: name the database with --store URL (or $PORTCULLIS_STORE), or a policy with `store:` with --policy FILE"
        )
    })?;
    match policy.store() {
        Some(url) => Ok(url.to_owned()),
        None => bail!(
            "the policy `{}` has no `store`: its state is the embedded SQLite database\nhelp: add `store: postgres://...` to the policy, or give --store URL",
            path.display()
        ),
    }
}

/// A state directory as given, or the state directory of a policy file.
fn source_dir(from: &Path) -> Result<PathBuf> {
    if from.is_dir() {
        return Ok(from.to_path_buf());
    }
    if !from.is_file() {
        bail!(
            "`{}` is neither a state directory nor a policy file",
            from.display()
        );
    }
    let (policy, _) = portcullis_gateway::load_policy(from).map_err(|e| anyhow!("{e}"))?;
    Ok(portcullis_gateway::state_dir(from, &policy, None::<&Path>))
}
