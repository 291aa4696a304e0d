//! Reading a policy file from disk for the commands.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use portcullis_policy::CompiledPolicy;

/// The default policy path.
pub(crate) const DEFAULT_POLICY: &str = "portcullis.yaml";

/// Why a policy could not be used.
#[derive(Debug)]
pub(crate) enum LoadFailure {
    /// The file could not be read.
    Io(anyhow::Error),
    /// The file was read but is not a valid policy; the diagnostics are ready to print.
    Invalid(String),
}

/// Read and compile a policy, resolving `${VAR}` from the process environment.
pub(crate) fn load(path: &Path) -> Result<CompiledPolicy, LoadFailure> {
    let text = std::fs::read(path)
        .with_context(|| format!("cannot read policy `{}`", path.display()))
        .map_err(LoadFailure::Io)?;
    let text = String::from_utf8(text).map_err(|e| {
        LoadFailure::Invalid(format!(
            "error: {}: the file is not valid UTF-8 (byte {})\n  help: save the policy as UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    let env = |name: &str| std::env::var(name).ok();
    CompiledPolicy::from_yaml(&text, &path.display().to_string(), &env)
        .map_err(|e| LoadFailure::Invalid(e.to_string()))
}

/// Read a policy or turn the failure into an error for the top level.
pub(crate) fn load_or_error(path: &Path) -> Result<CompiledPolicy> {
    load(path).map_err(|f| match f {
        LoadFailure::Io(e) => e,
        LoadFailure::Invalid(msg) => anyhow::anyhow!("the policy does not load:\n{msg}"),
    })
}

/// Read a file argument that may be `-` (standard input) or `@FILE`.
pub(crate) fn read_input(spec: &str) -> Result<Vec<u8>> {
    if spec == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("cannot read standard input")?;
        Ok(buf)
    } else if let Some(file) = spec.strip_prefix('@') {
        std::fs::read(PathBuf::from(file)).with_context(|| format!("cannot read `{file}`"))
    } else {
        Ok(spec.as_bytes().to_vec())
    }
}

/// Opens the gateway state for the commands that read it (`audit`, `approvals`, `lease`, `pin`):
/// PostgreSQL when `--store` or the policy's `store` names one, else the SQLite database in the
/// state directory, which must exist already (these commands never start a new, empty state).
/// `what` names the state in messages (`audit log`, `gateway state`).
pub(crate) fn open_state(
    what: &str,
    policy: Option<&Path>,
    state_dir: Option<&Path>,
    store: Option<&str>,
) -> Result<portcullis_store::Store> {
    let (dir, url) = match (state_dir, store) {
        (Some(dir), url) => (dir.to_path_buf(), url.map(str::to_owned)),
        (None, url) => {
            let (policy_path, policy) = load_for_state(policy)?;
            let dir = portcullis_gateway::state_dir(&policy_path, &policy, None::<&Path>);
            (dir, url.or(policy.store()).map(str::to_owned))
        }
    };
    if url.is_none() {
        let why = if !dir.is_dir() {
            "the directory does not exist".to_owned()
        } else if !dir.join(portcullis_store::DB_FILE).is_file() {
            format!("there is no `{}` in it", portcullis_store::DB_FILE)
        } else {
            String::new()
        };
        if !why.is_empty() {
            anyhow::bail!(
                "no {what} at `{}`: {why}\nhelp: point --state-dir or --policy at the gateway's state, or --store at its shared database",
                dir.display()
            );
        }
    }
    portcullis_store::Store::open(&dir, url.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))
}

fn load_for_state(policy: Option<&Path>) -> Result<(PathBuf, CompiledPolicy)> {
    let policy_path = policy.map_or_else(|| PathBuf::from(DEFAULT_POLICY), Path::to_path_buf);
    let (policy, _) = portcullis_gateway::load_policy(&policy_path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "cannot find the state directory through `{}`",
                policy_path.display()
            )
        })?;
    Ok((policy_path, policy))
}
