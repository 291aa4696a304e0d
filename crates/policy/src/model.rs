//! The policy file as written (DESIGN §3.1): plain data, deserialized strictly.
//!
//! Every struct denies unknown fields: a misspelled `unles:` must be an error, never a rule
//! that silently matches more than its author meant. These types are the *raw* stage; the
//! checked and compiled forms live in [`crate::compile`].

mod duration;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

pub use self::duration::PolicyDuration;
use crate::decision::{Decision, Effect, Mode};

/// The only policy file format version this build understands.
pub const POLICY_VERSION: u32 = 1;

/// A whole policy file.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Portcullis policy")]
pub struct PolicyFile {
    /// Format version; must be `1`.
    pub version: u32,
    /// `enforce` (default) or `observe` (forward everything, record what would be decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Where the gateway keeps its state (audit log, keys), relative to the policy file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<String>,
    /// Shared state on PostgreSQL, for several gateway instances behind a load balancer:
    /// `postgres://USER@HOST:PORT/DATABASE` (`${VAR}` references are resolved, so the password
    /// can come from the environment: `postgres://portcullis:${PG_PASSWORD}@db:5432/portcullis`).
    /// Approvals, leases, rate limits, pins and one audit chain then live in that database; the
    /// instance's signing key stays in `state_dir`. Without it, state is the embedded SQLite
    /// database in `state_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The MCP servers behind the gateway, by name.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ServerSpec>")]
    pub servers: BTreeMap<String, Spanned<ServerSpec>>,
    /// Trusted facts about tools, keyed `server.tool` (globs allowed).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ToolSpec>")]
    pub tools: BTreeMap<String, Spanned<ToolSpec>>,
    /// The rules; order never matters.
    #[serde(default)]
    #[schemars(with = "Vec<RuleSpec>")]
    pub rules: Vec<Spanned<RuleSpec>>,
    /// Tools that are never listed and never callable, as `server.tool` globs.
    #[serde(default)]
    pub hide: Vec<String>,
    /// End a session that keeps being denied (a server's own `kill_after` replaces this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_after: Option<KillAfterSpec>,
    /// Who may use `portcullis serve` (the HTTP front). Without it, `serve` accepts requests
    /// without credentials (principal `anonymous`) only on a loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
}

/// A trip wire: so many denials within so long end the session (DESIGN §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillAfterSpec {
    /// How many denials (at least 1) end the session.
    pub denials: u32,
    /// Within how long.
    pub within: PolicyDuration,
}

/// How a server's tool definitions are pinned (DESIGN §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PinMode {
    /// Only tools whose fingerprint is in `portcullis.lock` beside the policy are exposed.
    Lock,
    /// Trust on first use: the first tool list of the server is recorded in the store; any new or
    /// changed tool after that waits for `portcullis pin approve`.
    Tofu,
}

/// Credentials accepted by `portcullis serve`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// API keys, sent as `Authorization: Bearer KEY`; only their sha256 is stored here.
    #[serde(default)]
    pub api_keys: Vec<ApiKeySpec>,
    /// JWT bearer tokens signed by an identity provider, checked against its JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
}

/// JWT bearer tokens: signature by a key of the JWKS (asymmetric algorithms only), `exp` and
/// `nbf`, the issuer, and this gateway as the audience.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtSpec {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must include: this gateway's identifier (usually its public URL).
    pub audience: String,
    /// A JWKS file (JSON), read when `serve` starts. One of `jwks_file` and `jwks_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// A JWKS URL (https, or http on loopback), fetched when `serve` starts and hourly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// PEM certificates (relative to the policy) trusted for `jwks_url` besides the public web
    /// roots: for an identity provider behind a private CA. Only the JWKS fetch trusts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_ca_file: Option<String>,
    /// The claim naming the principal (default `sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_claim: Option<String>,
    /// The claim naming the agent, if any (rules match it as `agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_claim: Option<String>,
}

/// One API key: the principal it authenticates, and the key's sha256.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    /// The principal rules see (`when: { principal: ... }`) and the audit log records.
    pub principal: String,
    /// The sha256 of the key, 64 lower-case hex digits (`printf %s KEY | sha256sum`).
    pub sha256: String,
}

/// One MCP server: either a command to spawn (stdio) or a URL (Streamable HTTP).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Program and arguments of a stdio server. `${VAR}` is taken from the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Working directory of the server; relative paths in calls are resolved against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Extra environment variables for a stdio server (the gateway's own environment is not
    /// passed through). `${VAR}` is taken from the gateway's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// URL of a Streamable HTTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Headers the gateway sends to an HTTP server (its own credentials, never the client's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The server's home directory, so a leading `~` in a path can be read as it would be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// Resolve symlinks in path arguments (default: true for stdio servers, which share the
    /// gateway's filesystem; always false for URL servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_symlinks: Option<bool>,
    /// Let this server's vetted tool annotations (`readOnlyHint: true`, approved under `pin:`)
    /// make an undeclared tool a `read` (default false). Annotations always tighten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_annotations: Option<bool>,
    /// Per-server mode override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Pin the server's tool definitions: `lock` or `tofu`. Pinned tools are also checked for
    /// poisoning and their calls validated against the pinned input schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinMode>,
    /// A trip wire for this server's sessions, replacing the policy-wide `kill_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_after: Option<KillAfterSpec>,
    /// `portcullis serve` runs one process of this stdio server for all client sessions
    /// instead of one per session (default false). Only for stateless servers: every session
    /// reaches the same process, so anything it remembers is shared. Requests are multiplexed
    /// under gateway-owned ids; the server's own requests (sampling, elicitation, roots) are
    /// refused, its log messages and resource updates are dropped, and it is restarted if it
    /// exits. Ignored by `portcullis run`, which serves one client anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
}

/// Trusted facts about a tool.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// What the tool does to the world.
    pub effect: Effect,
    /// How to read its arguments, by name.
    #[serde(default)]
    pub args: BTreeMap<String, ArgKind>,
}

/// How an argument is read before matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
pub enum ArgKind {
    /// A filesystem path (string).
    #[serde(rename = "path")]
    Path,
    /// A list of filesystem paths.
    #[serde(rename = "path[]")]
    PathList,
    /// A URL (string).
    #[serde(rename = "url")]
    Url,
    /// A list of URLs.
    #[serde(rename = "url[]")]
    UrlList,
    /// A shell command line (string).
    #[serde(rename = "shell")]
    Shell,
    /// A plain string.
    #[serde(rename = "string")]
    String,
    /// A list of strings.
    #[serde(rename = "string[]")]
    StringList,
    /// A number.
    #[serde(rename = "number")]
    Number,
    /// An integer.
    #[serde(rename = "integer")]
    Integer,
    /// A boolean.
    #[serde(rename = "boolean")]
    Boolean,
    /// Any JSON value.
    #[serde(rename = "any")]
    Any,
}

impl ArgKind {
    /// The name as written in a policy file.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ArgKind::Path => "path",
            ArgKind::PathList => "path[]",
            ArgKind::Url => "url",
            ArgKind::UrlList => "url[]",
            ArgKind::Shell => "shell",
            ArgKind::String => "string",
            ArgKind::StringList => "string[]",
            ArgKind::Number => "number",
            ArgKind::Integer => "integer",
            ArgKind::Boolean => "boolean",
            ArgKind::Any => "any",
        }
    }
}

/// One rule.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique id, shown in every decision the rule contributes to.
    pub id: String,
    /// What the rule is for (not shown to agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Disabled rules never contribute.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// When the rule applies.
    pub when: MatchSpec,
    /// When the rule does not apply even though `when` holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<MatchSpec>,
    /// What the rule contributes.
    pub decision: Decision,
    /// Why, for humans reading the audit log and `explain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The reason shown to the agent on a denial (defaults to a generic message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_deny: Option<String>,
    /// How approvals for this rule work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
    /// A rate limit or budget on the calls this rule allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitSpec>,
    /// Only during these hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<HoursSpec>,
    /// Labels added to the session when a call this rule allowed goes through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taint: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// One value or a list of values.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a single value or a list of values, each of the type this field takes (a port is 1 to 65535; quote `yes`, `no`, `on`, `off` to use them as strings)"
)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list of values.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values as a slice.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(v) => v,
        }
    }
}

/// What a call must look like for a rule to apply. All fields given must hold.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Server name globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<OneOrMany<String>>,
    /// Tool name globs (or resource URI / prompt name for those methods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<OneOrMany<String>>,
    /// MCP methods (default `tools/call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<OneOrMany<String>>,
    /// Effect classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<OneOrMany<Effect>>,
    /// Principal globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<OneOrMany<String>>,
    /// Agent globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<OneOrMany<String>>,
    /// Session labels, all of which the session must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<OneOrMany<String>>,
    /// Conditions on arguments by name or JSON pointer (`/a/b`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, CondSpec>,
    /// A condition on every argument declared `path`/`path[]`; false when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<CondSpec>,
    /// A condition on every argument declared `url`/`url[]`; false when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<CondSpec>,
    /// A condition on every string anywhere in the arguments; false when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<CondSpec>,
    /// At least one of these must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<MatchSpec>>,
    /// This must not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<MatchSpec>>,
}

/// JSON types for the `type` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JsonType {
    /// A string.
    String,
    /// Any number.
    Number,
    /// A number with no fractional part (`1.0` and `1e2` count, as in JSON Schema).
    Integer,
    /// `true` or `false`.
    Boolean,
    /// An array.
    Array,
    /// An object.
    Object,
    /// `null`.
    Null,
}

/// Conditions on one value. All fields given must hold.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CondSpec {
    /// Equal to this JSON value (same type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
    /// Equal to one of these JSON values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<serde_json::Value>>,
    /// Matches one of these globs (on every reading; paths also case-insensitively).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<OneOrMany<String>>,
    /// Matches this regular expression (unanchored, size-limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Is one of these directories or below it, by whole path components, after normalization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under: Option<OneOrMany<String>>,
    /// The URL host matches one of these globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<OneOrMany<String>>,
    /// The URL host is (true) or is not (false) a loopback, private, link-local or metadata address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_address: Option<bool>,
    /// The URL scheme is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<OneOrMany<String>>,
    /// The URL's effective port is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<OneOrMany<u16>>,
    /// One simple shell command whose words match one of these patterns (`"git status"`, `"ls *"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<OneOrMany<String>>,
    /// The value carries (true) or does not carry (false) a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<bool>,
    /// Contains this substring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// At most this many characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// A number at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<serde_json::Number>,
    /// A number at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<serde_json::Number>,
    /// The argument is (true) or is not (false) present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// The value has this JSON type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub r#type: Option<JsonType>,
    /// The inner conditions do not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<CondSpec>>,
    /// At least one of these condition sets holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<CondSpec>>,
}

/// How approvals for a rule work (DESIGN §5).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    /// `hold` (wait for the human) or `retry` (deny now; the identical retry goes through once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ApprovalMode>,
    /// How long a held call waits before it is denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<PolicyDuration>,
    /// How long an approval stays valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<PolicyDuration>,
    /// The approver must not be the call's principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separate_approver: Option<bool>,
}

/// Approval modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// The call waits until resolved or timed out.
    Hold,
    /// The call is denied now; the identical call retried after approval goes through once.
    Retry,
}

/// A rate limit or budget.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// Count calls: at most this many per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
    /// Sum this numeric argument instead of counting calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<String>,
    /// The budget for `sum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// The window.
    pub per: PolicyDuration,
    /// Whose counter: `session` (default), `principal` or `global`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<LimitScope>,
}

/// Whose counter a limit uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// One counter per session.
    Session,
    /// One counter per principal.
    Principal,
    /// One counter for everyone.
    Global,
}

/// Days of the week for `hours`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// A weekly time window.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoursSpec {
    /// Days on which the window applies (default: every day).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Weekday>,
    /// Start, `HH:MM`, inclusive.
    pub from: String,
    /// End, `HH:MM`, exclusive.
    pub to: String,
    /// IANA time zone (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}
