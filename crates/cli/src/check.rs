//! `portcullis check`: validate and lint a policy.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use portcullis_policy::check::lint;

use crate::policy_file::{DEFAULT_POLICY, LoadFailure, load};

/// Validate a policy and lint it.
///
/// Loading checks the YAML strictly (unknown fields, duplicate keys and wrong types are errors,
/// each shown as file:line:column with a help line), resolves ${VAR} references, and compiles
/// every glob, regex, path and duration. The lints then report rules that can never match,
/// allow rules shadowed by a deny, allow rules broader than the deny beside them, costly
/// regexes, tools without a declared effect, and observe mode.
///
/// Examples:
///   portcullis check --policy portcullis.yaml
///   portcullis check --policy examples/filesystem.yaml --deny-warnings
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The policy file.
    #[arg(long, default_value = DEFAULT_POLICY, value_name = "FILE")]
    policy: PathBuf,
    /// Exit 1 when there are lint warnings, not only errors.
    #[arg(long)]
    deny_warnings: bool,
}

pub(crate) fn run(args: &CheckArgs) -> Result<u8> {
    let policy = match load(&args.policy) {
        Ok(p) => p,
        Err(LoadFailure::Io(e)) => return Err(e),
        Err(LoadFailure::Invalid(msg)) => {
            eprintln!("{msg}");
            eprintln!("check failed: {} does not load", args.policy.display());
            return Ok(crate::EXIT_FAILED);
        }
    };
    let lints = lint(&policy);
    for l in &lints {
        eprintln!("{}: {l}", args.policy.display());
    }
    println!(
        "{}: ok — {} rules, {} servers, mode {}, sha256 {}, {} warning{}",
        args.policy.display(),
        policy.rule_count(),
        policy.servers().len(),
        match policy.mode() {
            portcullis_policy::Mode::Enforce => "enforce",
            portcullis_policy::Mode::Observe => "observe",
        },
        policy.sha256(),
        lints.len(),
        if lints.len() == 1 { "" } else { "s" }
    );
    if args.deny_warnings && !lints.is_empty() {
        return Ok(crate::EXIT_FAILED);
    }
    Ok(crate::EXIT_OK)
}
