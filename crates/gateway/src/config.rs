//! What `portcullis run` was asked to do: the policy file, the server, the state directory and an
//! optional command override; and how each is resolved.

use std::path::{Path, PathBuf};

use portcullis_policy::{CompiledPolicy, ServerInfo};
use portcullis_transport::stdio::ChildSpec;

use crate::error::GatewayError;

/// The directory name used for state beside the policy file when nothing else is configured.
pub const DEFAULT_STATE_DIR: &str = ".portcullis";

/// Options of `portcullis run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// The policy file.
    pub policy: PathBuf,
    /// The configured server whose rules apply; required when the policy configures several.
    pub server: Option<String>,
    /// Overrides the policy's `state_dir`.
    pub state_dir: Option<PathBuf>,
    /// Overrides the policy's `store` (a `postgres://` URL for shared state).
    pub store: Option<String>,
    /// Replaces the server's configured command (program and arguments), from the command line
    /// after `--`. Never taken from anything a client sends.
    pub command: Option<Vec<String>>,
    /// The principal of the session's calls (approvals: compared with the approver when a rule
    /// asks for `separate_approver`, and part of every approval digest).
    pub principal: Option<String>,
    /// Serve the approvals admin API and web page on this address (`127.0.0.1:PORT`) or unix
    /// socket path (approvals).
    pub admin: Option<String>,
}

/// Reads and compiles the policy at `path`; `${VAR}` references come from the environment.
///
/// # Errors
///
/// [`GatewayError::ReadPolicy`] when the file cannot be read, [`GatewayError::InvalidPolicy`]
/// with the engine's full diagnostics when it does not load, validate or compile.
pub fn load_policy(path: &Path) -> Result<(CompiledPolicy, String), GatewayError> {
    let text = std::fs::read_to_string(path).map_err(|source| GatewayError::ReadPolicy {
        path: path.to_path_buf(),
        source,
    })?;
    let policy = compile_policy(&text, path)?;
    Ok((policy, text))
}

/// Compiles policy `text` read from `path`.
pub(crate) fn compile_policy(text: &str, path: &Path) -> Result<CompiledPolicy, GatewayError> {
    let file = path.display().to_string();
    CompiledPolicy::from_yaml(text, &file, &|name| std::env::var(name).ok()).map_err(|errors| {
        GatewayError::InvalidPolicy {
            diagnostics: errors.to_string(),
        }
    })
}

/// The state directory: `override_dir`, else the policy's `state_dir` (relative to the policy
/// file's directory), else `.portcullis/` beside the policy file. Clients such as Claude Desktop
/// start the gateway from an arbitrary working directory, so nothing here depends on it except an
/// explicitly relative `--state-dir`.
#[must_use]
pub fn state_dir(
    policy_path: &Path,
    policy: &CompiledPolicy,
    override_dir: Option<&Path>,
) -> PathBuf {
    if let Some(dir) = override_dir {
        return dir.to_path_buf();
    }
    let base = policy_dir(policy_path);
    match policy.raw().state_dir.as_deref() {
        Some(dir) => base.join(dir),
        None => base.join(DEFAULT_STATE_DIR),
    }
}

/// Opens the gateway's store: PostgreSQL when `store_override` (`--store`) or the policy's
/// `store` names one, else SQLite in the state directory. The state directory (which holds the
/// instance's signing key either way) is `state_dir(policy_path, policy, state_dir_override)`.
///
/// # Errors
///
/// [`GatewayError::Store`] naming the state directory or the database and what failed.
pub fn open_store(
    policy_path: &Path,
    policy: &CompiledPolicy,
    state_dir_override: Option<&Path>,
    store_override: Option<&str>,
) -> Result<(portcullis_store::Store, PathBuf), GatewayError> {
    let state = state_dir(policy_path, policy, state_dir_override);
    let url = store_override.or(policy.store());
    let store = portcullis_store::Store::open(&state, url).map_err(|source| match url {
        Some(url) => GatewayError::Store {
            location: portcullis_store::redact_url(url),
            source,
        },
        None => GatewayError::StateDir {
            path: state.clone(),
            source,
        },
    })?;
    Ok((store, state))
}

/// The directory holding the policy file (`.` for a bare file name).
fn policy_dir(policy_path: &Path) -> PathBuf {
    match policy_path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Picks the configured server: `wanted` if given, else the only one.
///
/// # Errors
///
/// [`GatewayError::ServerSelection`] naming the configured servers.
pub fn select_server<'p>(
    policy: &'p CompiledPolicy,
    wanted: Option<&str>,
) -> Result<&'p ServerInfo, GatewayError> {
    let names = || {
        policy
            .servers()
            .keys()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(name) => policy.servers().get(name).ok_or_else(|| {
            GatewayError::ServerSelection(format!(
                "the policy configures no server `{name}`\nhelp: use one of: {}",
                names()
            ))
        }),
        None => {
            let mut servers = policy.servers().values();
            match (servers.next(), servers.next()) {
                (Some(only), None) => Ok(only),
                (None, _) => Err(GatewayError::ServerSelection(
                    "the policy configures no servers\nhelp: add one under `servers:`".to_owned(),
                )),
                (Some(_), Some(_)) => Err(GatewayError::ServerSelection(format!(
                    "the policy configures several servers; choose one with `--server NAME`\nhelp: use one of: {}",
                    names()
                ))),
            }
        }
    }
}

/// How to start `server`: its configured command, or `command` from the command line instead.
///
/// # Errors
///
/// [`GatewayError::NotStdio`] when there is no command to run (a URL server and no override).
pub fn child_spec(
    server: &ServerInfo,
    command: Option<&[String]>,
) -> Result<ChildSpec, GatewayError> {
    let argv = command
        .or(server.spec.command.as_deref())
        .ok_or_else(|| {
            GatewayError::NotStdio(format!(
                "server `{}` has no `command`, so `portcullis run` cannot start it\nhelp: give the command after `--`, or use a stdio server",
                server.name
            ))
        })?;
    let Some((program, args)) = argv.split_first() else {
        return Err(GatewayError::NotStdio(format!(
            "server `{}` has an empty `command`\nhelp: name the program to run",
            server.name
        )));
    };
    let mut spec = ChildSpec::new(server.name.clone(), program.clone()).args(args.iter().cloned());
    spec.cwd = server.spec.cwd.as_ref().map(PathBuf::from);
    spec.env = server
        .spec
        .env
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    Ok(spec)
}
