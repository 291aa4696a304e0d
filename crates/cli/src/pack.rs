//! `portcullis pack`: the canonical compiled bundle and its sha256.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use portcullis_policy::pack::{Bundle, bundle};

use crate::policy_file::{DEFAULT_POLICY, load_or_error};

/// Write the canonical bundle of a policy and print its sha256.
///
/// The bundle is the policy as written (with ${VAR} references unresolved, so no secret from
/// the environment ends up in it) as canonical JSON. Comments, key order and YAML style do not
/// change its hash; any change in meaning does. A gateway can be pinned to the hash.
///
/// Examples:
///   portcullis pack --policy portcullis.yaml                  # print the sha256
///   portcullis pack --policy portcullis.yaml --out policy.bundle.json
///   portcullis pack --policy portcullis.yaml --check policy.bundle.json   # exit 1 on drift
#[derive(Debug, Args)]
pub(crate) struct PackArgs {
    /// The policy file.
    #[arg(long, default_value = DEFAULT_POLICY, value_name = "FILE")]
    policy: PathBuf,
    /// Write the bundle to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Compare with an existing bundle; exit 1 if the policy has drifted from it.
    #[arg(long, value_name = "FILE", conflicts_with = "out")]
    check: Option<PathBuf>,
}

pub(crate) fn run(args: &PackArgs) -> Result<u8> {
    let policy = load_or_error(&args.policy)?;
    let current = bundle(policy.raw());
    if let Some(path) = &args.check {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read bundle `{}`", path.display()))?;
        let recorded: Bundle = serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not a portcullis bundle", path.display()))?;
        if recorded.sha256 != current.sha256 || recorded.policy != current.policy {
            eprintln!(
                "drift: {} has sha256 {} but the bundle {} records {}",
                args.policy.display(),
                current.sha256,
                path.display(),
                recorded.sha256
            );
            return Ok(crate::EXIT_FAILED);
        }
        println!(
            "{} matches {} (sha256 {})",
            args.policy.display(),
            path.display(),
            current.sha256
        );
        return Ok(crate::EXIT_OK);
    }
    if let Some(out) = &args.out {
        let mut text =
            serde_json::to_string_pretty(&current).context("cannot serialize the bundle")?;
        text.push('\n');
        std::fs::write(out, text).with_context(|| format!("cannot write `{}`", out.display()))?;
    }
    println!("{}", current.sha256);
    Ok(crate::EXIT_OK)
}
