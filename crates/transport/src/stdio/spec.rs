//! [`ChildSpec`]: what to run for a stdio server, and the environment it gets.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// Variables copied from the gateway's environment into every server's, when set.
///
/// The environment is cleared before a server starts and only these, the spec's `inherit_env` and
/// its explicit `env` are passed. The gateway's own environment typically holds secrets (cloud
/// credentials, API tokens, the database URL of the store); an MCP server is arbitrary third-party
/// code that must get only what its configuration names. These few are what ordinary programs need
/// to find executables, a home directory, a locale and a temporary directory (`SYSTEMROOT` for
/// Windows runtimes such as Node under Wine-like setups; harmless elsewhere).
pub const ENV_ALLOW_LIST: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TERM",
    "TMPDIR",
    "SYSTEMROOT",
];

/// How to start one stdio MCP server.
///
/// `Debug` prints the names of `env` variables but not their values, which are often credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ChildSpec {
    /// The configured server name, used in logs and errors.
    pub name: String,
    /// The program: a name looked up on `PATH`, or a path.
    pub program: String,
    /// Arguments, passed as they are (no shell).
    pub args: Vec<String>,
    /// Working directory; the gateway's own when `None`.
    pub cwd: Option<PathBuf>,
    /// Extra variables for the server, set last (they override inherited ones).
    pub env: Vec<(String, String)>,
    /// Names of further variables to copy from the gateway's environment when set there.
    pub inherit_env: Vec<String>,
}

impl ChildSpec {
    /// A spec for `program` with no arguments, no working directory, and only the allow-listed
    /// environment.
    pub fn new(name: impl Into<String>, program: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            inherit_env: Vec::new(),
        }
    }

    /// Replaces the arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// The first variable name that cannot be passed to a process: empty, or containing `=` or NUL.
    pub(crate) fn invalid_env_name(&self) -> Option<&str> {
        let invalid = |name: &str| name.is_empty() || name.contains(['=', '\0']);
        self.inherit_env
            .iter()
            .map(String::as_str)
            .chain(self.env.iter().map(|(name, _)| name.as_str()))
            .find(|name| invalid(name))
    }

    /// The complete environment of the child, in the order it is applied: allow-list, `inherit_env`,
    /// then `env`. `lookup` reads the gateway's environment.
    pub(crate) fn child_env(
        &self,
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Vec<(OsString, OsString)> {
        let inherited = ENV_ALLOW_LIST
            .iter()
            .copied()
            .chain(self.inherit_env.iter().map(String::as_str))
            .filter_map(|name| lookup(name).map(|value| (OsString::from(name), value)));
        let explicit = self
            .env
            .iter()
            .map(|(name, value)| (OsString::from(name), OsString::from(value)));
        inherited.chain(explicit).collect()
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_names: Vec<&str> = self.env.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("args", &self.args)
            .field("cwd", &self.cwd)
            .field("env (values redacted)", &env_names)
            .field("inherit_env", &self.inherit_env)
            .finish()
    }
}
