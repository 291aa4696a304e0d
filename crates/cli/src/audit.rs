//! `portcullis audit`: verify, read and export the audit chain.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use portcullis_store::{AuditEntry, Store};

/// How often `audit tail --follow` looks for new records.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);
/// Records read per query by `export` and `--follow`, bounding memory on a large log.
const PAGE: usize = 1000;

/// Verify, read and export the audit log.
///
/// Every decision the gateway makes is recorded before the call is forwarded, and every forwarded
/// call gets an outcome record. Records are hash-chained and the chain head is signed with the
/// gateway's Ed25519 key, so `verify` finds any edit, deletion, insertion or reordering.
///
/// The log lives in the state directory: --state-dir DIR, or the one the policy names (its
/// `state_dir`, else `.portcullis/` beside it), with --policy FILE (default ./portcullis.yaml).
///
/// Examples:
///   portcullis audit verify --policy portcullis.yaml
///   portcullis audit tail -n 20
///   portcullis audit tail --follow --json --state-dir /var/lib/portcullis
///   portcullis audit export --jsonl > audit.jsonl
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct AuditArgs {
    /// The policy file whose state directory holds the log.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "state_dir")]
    policy: Option<PathBuf>,
    /// The state directory holding the log.
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
    action: AuditAction,
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Check the whole chain and its signed head; exit 1 naming the first bad record.
    ///
    /// On a shared PostgreSQL store every gateway instance registers its own signing key in the
    /// database, so someone who can write the database could register a key of their own and
    /// re-sign a rewritten chain. --trusted-signer pins the keys you expect (each instance's
    /// public key, as `audit verify` prints it, and that of every state directory from which
    /// `approvals approve|deny` is run against the store): verification fails if any other key
    /// is registered to sign heads or receipts.
    Verify {
        /// A public key (64 hex digits) allowed to sign; repeatable.
        #[arg(long = "trusted-signer", value_name = "HEX")]
        trusted: Vec<String>,
        /// A file of trusted public keys, one per line (`#` starts a comment).
        #[arg(long = "trusted-signers", value_name = "FILE")]
        trusted_file: Option<PathBuf>,
    },
    /// Print the last records, oldest first.
    Tail {
        /// How many records.
        #[arg(short = 'n', long = "lines", default_value_t = 10, value_name = "N")]
        n: usize,
        /// Keep printing new records as they are written (Ctrl-C to stop).
        #[arg(long)]
        follow: bool,
        /// One JSON object per line instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Print every record as JSON lines.
    Export {
        /// JSON lines, one record per line (the only format so far).
        #[arg(long, required = true)]
        jsonl: bool,
    },
}

pub(crate) fn run(args: &AuditArgs) -> Result<u8> {
    let store = crate::policy_file::open_state(
        "audit log",
        args.policy.as_deref(),
        args.state_dir.as_deref(),
        args.store.as_deref(),
    )?;
    match &args.action {
        AuditAction::Verify {
            trusted,
            trusted_file,
        } => {
            let trusted = trusted_keys(trusted, trusted_file.as_deref())?;
            verify(&store, trusted.as_ref())
        }
        AuditAction::Tail { n, follow, json } => tail(&store, *n, *follow, *json),
        AuditAction::Export { .. } => export(&store),
    }
}

/// The keys given with --trusted-signer and --trusted-signers, lower-case hex; `None` when
/// neither was given (every registered key is accepted, as before).
fn trusted_keys(given: &[String], file: Option<&Path>) -> Result<Option<BTreeSet<String>>> {
    let mut lines: Vec<(String, String)> = given
        .iter()
        .map(|k| (k.clone(), "--trusted-signer".to_owned()))
        .collect();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the trusted signers file {}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            let key = line.split('#').next().unwrap_or("").trim();
            if !key.is_empty() {
                lines.push((key.to_owned(), format!("{}:{}", file.display(), n + 1)));
            }
        }
    }
    if given.is_empty() && file.is_none() {
        return Ok(None);
    }
    let mut keys = BTreeSet::new();
    for (key, at) in lines {
        let ok = key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            anyhow::bail!(
                "`{key}` ({at}) is not a public key\nhelp: give the 64 hex digits `portcullis audit verify` prints after `key` or `this one`"
            );
        }
        keys.insert(key.to_ascii_lowercase());
    }
    if keys.is_empty() {
        anyhow::bail!("no trusted signer given: the file lists no key");
    }
    Ok(Some(keys))
}

fn verify(store: &Store, trusted: Option<&BTreeSet<String>>) -> Result<u8> {
    // One call: the signers are checked in the snapshot the chain is verified in, so a key
    // registered, used and deleted between two reads cannot go unseen.
    let report = store
        .verify_trusting(trusted)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if report.problem.is_none() && !report.untrusted_signers.is_empty() {
        println!(
            "audit chain NOT TRUSTED: {} signing key(s) the store accepts are not among the trusted signers: {}",
            report.untrusted_signers.len(),
            report.untrusted_signers.join(", ")
        );
        return Ok(crate::EXIT_FAILED);
    }
    match report.problem {
        None if report.ok => {
            println!(
                "audit chain ok: {} records, signed head at {}, key {}",
                report.records,
                report
                    .head_seq
                    .map_or_else(|| "none (empty log)".to_owned(), |s| format!("record {s}")),
                signers(store)
            );
            Ok(crate::EXIT_OK)
        }
        Some(problem) => {
            println!(
                "audit chain BROKEN at record {}: {} ({:?})",
                problem.seq, problem.what, problem.kind
            );
            Ok(crate::EXIT_FAILED)
        }
        None => {
            println!("audit chain BROKEN: verification failed without naming a record");
            Ok(crate::EXIT_FAILED)
        }
    }
}

/// The key(s) that may sign the head: this gateway's, or every registered instance's.
fn signers(store: &Store) -> String {
    match store.signer_keys() {
        Ok(keys) if store.is_shared() => format!(
            "signed by one of {} registered gateway keys, this one {}",
            keys.len(),
            store.public_key_hex()
        ),
        _ => store.public_key_hex(),
    }
}

fn print(entry: &AuditEntry, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, entry)?;
        writeln!(out)?;
    } else {
        let e = &entry.event;
        let what = e
            .decision
            .as_deref()
            .or(e.outcome.as_deref())
            .unwrap_or("-");
        let tool = e.tool.as_deref().unwrap_or("-");
        let rules = e.rules.join(",");
        writeln!(
            out,
            "{:>6} {} {:?} {} {}.{} [{}] {} {}",
            entry.seq,
            e.time,
            e.kind,
            what,
            e.server,
            tool,
            rules,
            e.decision_id,
            e.reason.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}

fn tail(store: &Store, n: usize, follow: bool, json: bool) -> Result<u8> {
    let entries = store.tail(n).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut last = 0;
    for entry in &entries {
        print(entry, json)?;
        last = entry.seq;
    }
    if !follow {
        return Ok(crate::EXIT_OK);
    }
    if entries.is_empty() {
        last = store
            .tail(1)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .last()
            .map_or(0, |e| e.seq);
    }
    loop {
        std::thread::sleep(FOLLOW_INTERVAL);
        for entry in store
            .entries_after(last, PAGE)
            .map_err(|e| anyhow::anyhow!("{e}"))?
        {
            print(&entry, json)?;
            last = entry.seq;
        }
    }
}

fn export(store: &Store) -> Result<u8> {
    let mut last = 0;
    loop {
        let page = store
            .entries_after(last, PAGE)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some(end) = page.last().map(|e| e.seq) else {
            return Ok(crate::EXIT_OK);
        };
        for entry in &page {
            print(entry, true)?;
        }
        last = end;
    }
}
