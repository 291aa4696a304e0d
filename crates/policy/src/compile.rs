//! Checked and compiled policy: globs and regexes built, rules indexed, ready to evaluate.

pub(crate) mod cond;
pub(crate) mod hours;
pub(crate) mod matcher;
pub(crate) mod names;
mod reach;
pub(crate) mod tools;

use std::collections::{BTreeMap, HashSet};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use self::hours::Hours;
use self::matcher::{Matcher, compile_matcher};
use self::tools::ToolTable;
use crate::decision::{Decision, Mode};
use crate::error::{PolicyError, PolicyErrors, SourcePos};
use crate::load::{parse_policy, resolve_env};
use crate::model::{
    ApprovalSpec, KillAfterSpec, LimitSpec, PinMode, PolicyFile, RuleSpec, ServerSpec,
};
use crate::pack::canonical_policy_json;

/// Ids the engine itself uses for decisions no rule made; a policy may not reuse them.
pub const RESERVED_RULE_IDS: [&str; 8] = [
    "default-deny",
    "tool-identity",
    "input-schema",
    "unconfigured-server",
    "hidden-tool",
    "argument-type",
    "internal-error",
    "self-test",
];

/// A configured server, as the engine needs it.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// The server's name in the policy.
    pub name: String,
    /// Its settings with `${VAR}` resolved.
    pub spec: ServerSpec,
    /// Whether path arguments are also read through symlinks.
    pub resolve_symlinks: bool,
    /// The effective mode (server override, else policy mode).
    pub mode: Mode,
    /// Whether vetted tool annotations may loosen a classification (`trust_annotations`).
    pub trust_annotations: bool,
}

/// One compiled rule.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) id: String,
    pub(crate) decision: Decision,
    pub(crate) when: Matcher,
    pub(crate) unless: Option<Matcher>,
    pub(crate) hours: Option<Hours>,
    pub(crate) reason: Option<String>,
    pub(crate) on_deny: Option<String>,
    pub(crate) approval: Option<ApprovalSpec>,
    pub(crate) limit: Option<LimitSpec>,
    pub(crate) taint: Vec<String>,
    pub(crate) pos: Option<SourcePos>,
}

/// Per-server rule index: cost does not grow with rules that cannot match the server or tool.
/// Ordered maps rather than hash maps: a lookup compares a few short names instead of hashing
/// the name with SipHash, which cost more on every call (measured with callgrind).
#[derive(Clone, Debug, Default)]
pub(crate) struct ServerIndex {
    /// Rules whose top-level `tool` names this literal tool, merged with the any-tool rules.
    pub(crate) by_tool: BTreeMap<String, Vec<usize>>,
    /// Rules that may apply to any tool of this server.
    pub(crate) any_tool: Vec<usize>,
}

impl ServerIndex {
    pub(crate) fn candidates(&self, tool: &str) -> &[usize] {
        self.by_tool.get(tool).map_or(&self.any_tool, Vec::as_slice)
    }
}

/// A policy ready to evaluate.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    pub(crate) file: String,
    pub(crate) raw: PolicyFile,
    pub(crate) canonical: String,
    pub(crate) sha256: String,
    pub(crate) mode: Mode,
    pub(crate) servers: BTreeMap<String, ServerInfo>,
    pub(crate) tools: ToolTable,
    pub(crate) rules: Vec<Rule>,
    pub(crate) index: BTreeMap<String, ServerIndex>,
    pub(crate) hide: GlobSet,
    pub(crate) hide_patterns: Vec<String>,
    /// The shared store URL with `${VAR}` resolved (the hash covers it as written, unresolved).
    pub(crate) store: Option<String>,
}

impl CompiledPolicy {
    /// Parse, resolve `${VAR}` from `env`, validate and compile a policy in one step.
    pub fn from_yaml(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<CompiledPolicy, PolicyErrors> {
        let raw = parse_policy(text, file)?;
        compile(raw, file, env).map_err(|mut errors| {
            // Top-level settings carry no parser span: find their key in the text.
            for e in &mut errors.0 {
                if e.pos.is_none()
                    && let Some(field) = &e.field
                {
                    let key = field.split(['.', '[']).next().unwrap_or(field);
                    e.pos = crate::load::locate_top_level(text, key);
                }
            }
            errors
        })
    }

    /// The sha256 (hex) of the canonical policy, as `portcullis pack` prints it.
    #[must_use]
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The canonical JSON of the policy as written (environment references unresolved).
    #[must_use]
    pub fn canonical_json(&self) -> &str {
        &self.canonical
    }

    /// The policy-wide mode.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The file the policy came from.
    #[must_use]
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The configured servers.
    #[must_use]
    pub fn servers(&self) -> &BTreeMap<String, ServerInfo> {
        &self.servers
    }

    /// The shared store's URL (`store:`, `${VAR}` resolved), if the policy names one.
    #[must_use]
    pub fn store(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// The policy as written.
    #[must_use]
    pub fn raw(&self) -> &PolicyFile {
        &self.raw
    }

    /// Number of rules.
    #[must_use]
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The trip wire for sessions of `server`: the server's own `kill_after`, else the policy's.
    #[must_use]
    pub fn kill_after(&self, server: &str) -> Option<KillAfterSpec> {
        self.servers
            .get(server)
            .and_then(|s| s.spec.kill_after)
            .or(self.raw.kill_after)
    }

    /// How `server`'s tools are pinned, if they are.
    #[must_use]
    pub fn pin_mode(&self, server: &str) -> Option<PinMode> {
        self.servers.get(server).and_then(|s| s.spec.pin)
    }

    /// Whether `server.tool` is hidden by `hide`.
    #[must_use]
    pub fn is_hidden(&self, server: &str, tool: &str) -> bool {
        !self.hide_patterns.is_empty() && self.hide.is_match(format!("{server}.{tool}"))
    }
}

fn valid_rule_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

fn pos_of(rule: &serde_saphyr::Spanned<RuleSpec>) -> Option<SourcePos> {
    let l = rule.referenced;
    (l.line() > 0).then(|| SourcePos {
        line: l.line(),
        column: l.column(),
    })
}

/// Validate and compile a parsed policy. `${VAR}` references are resolved from `env`; the hash
/// is taken over the policy as written, so it never depends on (or leaks) the environment.
pub fn compile(
    raw: PolicyFile,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CompiledPolicy, PolicyErrors> {
    let canonical = canonical_policy_json(&raw);
    let sha256 = crate::pack::sha256_hex(canonical.as_bytes());
    let mut resolved = raw.clone();
    resolve_env(&mut resolved, file, env)?;
    let mut errors = Vec::new();
    let mode = resolved.mode.unwrap_or_default();

    let kill_after_zero = |k: &Option<KillAfterSpec>| k.is_some_and(|k| k.denials == 0);
    if kill_after_zero(&resolved.kill_after) {
        errors.push(
            PolicyError::new(file, "`kill_after.denials` must be at least 1")
                .field("kill_after")
                .help("write e.g. `kill_after: { denials: 5, within: 1m }`"),
        );
    }
    if let Some(store) = &resolved.store
        && !(store.starts_with("postgres://") || store.starts_with("postgresql://"))
    {
        errors.push(
            PolicyError::new(file, "`store` must be a `postgres://` URL")
                .field("store")
                .help("write e.g. `store: postgres://portcullis:${PG_PASSWORD}@localhost:5432/portcullis`, or leave `store` out for the embedded SQLite store in `state_dir`"),
        );
    }
    let mut servers = BTreeMap::new();
    for (name, spanned) in &resolved.servers {
        let spec = &spanned.value;
        let first_error = errors.len();
        if kill_after_zero(&spec.kill_after) {
            errors.push(
                PolicyError::new(file, "`kill_after.denials` must be at least 1")
                    .field(format!("servers.{name}.kill_after"))
                    .help("write e.g. `kill_after: { denials: 5, within: 1m }`"),
            );
        }
        let field = format!("servers.{name}");
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok || name.contains("__") {
            errors.push(
                PolicyError::new(file, format!("invalid server name `{name}`"))
                    .field(&field)
                    .help("use letters, digits, `-` and `_` only; no `.` and no `__` (reserved for namespacing)"),
            );
        }
        match (&spec.command, &spec.url) {
            (Some(_), Some(_)) => errors.push(
                PolicyError::new(file, "a server has either `command` or `url`, not both")
                    .field(&field)
                    .help("split it into two servers"),
            ),
            (None, None) => errors.push(
                PolicyError::new(file, "a server needs `command` (stdio) or `url` (Streamable HTTP)")
                    .field(&field)
                    .help("add e.g. `command: [npx, -y, \"@modelcontextprotocol/server-filesystem\", /workspace]`"),
            ),
            (Some(cmd), None) if cmd.is_empty() || cmd.first().is_some_and(String::is_empty) => errors.push(
                PolicyError::new(file, "`command` is empty")
                    .field(format!("{field}.command"))
                    .help("give the program and its arguments as a list"),
            ),
            _ => {}
        }
        if let Some(url) = &spec.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                errors.push(
                    PolicyError::new(
                        file,
                        format!("`url: {url}` must start with http:// or https://"),
                    )
                    .field(format!("{field}.url"))
                    .help("give the server's Streamable HTTP endpoint, e.g. `http://127.0.0.1:9000/mcp`"),
                );
            }
            if spec.resolve_symlinks == Some(true) {
                errors.push(
                    PolicyError::new(file, "`resolve_symlinks: true` on a URL server: it does not share this machine's filesystem")
                        .field(format!("{field}.resolve_symlinks"))
                        .help("remove the field"),
                );
            }
            if spec.shared == Some(true) {
                errors.push(
                    PolicyError::new(file, "`shared: true` on a URL server: only stdio servers are started by the gateway, so only they can be shared")
                        .field(format!("{field}.shared"))
                        .help("remove the field; a URL server's sessions are its own business"),
                );
            }
        }
        for (key, path) in [("cwd", &spec.cwd), ("home", &spec.home)] {
            if let Some(p) = path
                && crate::normalize::path::normalize_absolute(p).is_none()
            {
                errors.push(
                    PolicyError::new(file, format!("`{key}: {p}` must be an absolute path"))
                        .field(format!("{field}.{key}"))
                        .help("write the directory from the root, e.g. `/workspace`"),
                );
            }
        }
        let pos = crate::load::span_pos(spanned.referenced);
        for e in errors.iter_mut().skip(first_error) {
            e.pos = e.pos.or(pos);
        }
        servers.insert(
            name.clone(),
            ServerInfo {
                name: name.clone(),
                resolve_symlinks: spec.url.is_none() && spec.resolve_symlinks.unwrap_or(true),
                mode: spec.mode.unwrap_or(mode),
                // Only pinned definitions can be vetted, so without `pin:` trust has no effect
                // (also for hints given by hand in `explain` or a test file).
                trust_annotations: spec.trust_annotations.unwrap_or(false) && spec.pin.is_some(),
                spec: spec.clone(),
            },
        );
    }

    if let Some(auth) = &resolved.auth {
        check_auth(auth, file, &mut errors);
    }

    let tool_specs: BTreeMap<String, crate::model::ToolSpec> = resolved
        .tools
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    let tools = match ToolTable::compile(&tool_specs) {
        Ok(t) => t,
        Err(msgs) => {
            for m in msgs {
                // Each message starts `tools.KEY:`; point at that entry.
                let pos = resolved
                    .tools
                    .iter()
                    .find(|(k, _)| m.starts_with(&format!("tools.{k}:")))
                    .and_then(|(_, v)| crate::load::span_pos(v.referenced));
                errors.push(
                    PolicyError::new(file, m)
                        .at(pos)
                        .help("see the `tools` section of docs/policy.md"),
                );
            }
            ToolTable::default()
        }
    };

    let mut hide_builder = GlobSetBuilder::new();
    for pattern in &resolved.hide {
        if !pattern.contains('.') {
            errors.push(
                PolicyError::new(
                    file,
                    format!("`hide: {pattern}` must be `server.tool` (globs allowed)"),
                )
                .field("hide")
                .help("write e.g. `hide: [fs.move_file, \"shell.*\"]`"),
            );
            continue;
        }
        match GlobBuilder::new(pattern).literal_separator(false).build() {
            Ok(g) => {
                hide_builder.add(g);
            }
            Err(e) => errors.push(
                PolicyError::new(file, format!("invalid glob `{pattern}`: {}", e.kind()))
                    .field("hide")
                    .help("globs: `*` any run of characters, `?` one, `[abc]` a class"),
            ),
        }
    }
    let hide = hide_builder.build().unwrap_or_else(|_| GlobSet::empty());

    let mut rules = Vec::new();
    let mut seen_ids = HashSet::new();
    for (i, spanned) in resolved.rules.iter().enumerate() {
        let spec = &spanned.value;
        let pos = pos_of(spanned);
        let field = format!("rules[{i}] (`{}`)", spec.id);
        let err = |msg: String| PolicyError::new(file, msg).at(pos).field(field.clone());
        if !valid_rule_id(&spec.id) {
            errors.push(
                err(format!("invalid rule id `{}`", spec.id))
                    .help("use letters, digits, `-`, `_`, `.` and `:`"),
            );
        }
        if RESERVED_RULE_IDS.contains(&spec.id.as_str()) {
            errors.push(
                err(format!(
                    "rule id `{}` is reserved for the engine's own decisions",
                    spec.id
                ))
                .help("choose another id"),
            );
        }
        if !seen_ids.insert(spec.id.clone()) {
            errors.push(
                err(format!("duplicate rule id `{}`", spec.id)).help(
                    "every rule needs its own id, so each decision names the rule that made it",
                ),
            );
        }
        let when = compile_matcher(&spec.when).map_err(|e| err(format!("when.{e}")));
        let unless = spec
            .unless
            .as_ref()
            .map(|u| compile_matcher(u).map_err(|e| err(format!("unless.{e}"))))
            .transpose();
        let hours = spec
            .hours
            .as_ref()
            .map(|h| Hours::compile(h).map_err(|e| err(format!("hours: {e}"))))
            .transpose();
        if spec.approval.is_some() && spec.decision != Decision::RequireApproval {
            errors.push(
                err("`approval` only applies to `decision: require_approval`".to_owned())
                    .help("remove `approval` or change the decision"),
            );
        }
        if let Some(limit) = &spec.limit {
            if let Some(m) = limit_problem(limit) {
                errors.push(err(format!("limit: {m}")).help("write e.g. `limit: { calls: 100, per: 1h }` or `limit: { sum: amount, max: 100000, per: 1d }`"));
            }
            if spec.decision != Decision::Allow && spec.decision != Decision::RequireApproval {
                errors.push(err("`limit` only applies to rules that let calls through (allow, require_approval)".to_owned()).help("change the decision to `allow` or `require_approval`, or remove `limit`"));
            }
        }
        if !spec.taint.is_empty()
            && spec.decision != Decision::Allow
            && spec.decision != Decision::RequireApproval
        {
            errors.push(
                err("`taint` only applies to rules that let calls through".to_owned()).help(
                    "change the decision to `allow` or `require_approval`, or remove `taint`",
                ),
            );
        }
        if spec.when.server.is_none()
            && spec.when.tool.is_none()
            && spec.when.effect.is_none()
            && spec.decision == Decision::Allow
            && spec.when.args.is_empty()
            && spec.when.paths.is_none()
            && spec.when.urls.is_none()
            && spec.when.principal.is_none()
            && spec.when.labels.is_none()
            && spec.when.any.is_none()
            && spec.when.values.is_none()
            && spec.when.agent.is_none()
        {
            errors.push(err("an allow rule with an empty `when` allows every call".to_owned()).help("name at least a server, tool or effect; allow-all belongs in a deliberate, scoped rule"));
        }
        match (when, unless, hours) {
            (Ok(_), Ok(_), Ok(_)) if !spec.enabled => {}
            (Ok(when), Ok(unless), Ok(hours)) => rules.push(Rule {
                id: spec.id.clone(),
                decision: spec.decision,
                when,
                unless,
                hours,
                reason: spec.reason.clone(),
                on_deny: spec.on_deny.clone(),
                approval: spec.approval.clone(),
                limit: spec.limit.clone(),
                taint: spec.taint.clone(),
                pos,
            }),
            (w, u, h) => {
                for e in [w.err(), u.err(), h.err()].into_iter().flatten() {
                    let help = condition_help(&e.message);
                    errors.push(if e.help.is_some() { e } else { e.help(help) });
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(PolicyErrors(errors));
    }
    let index = build_index(&servers, &rules);
    Ok(CompiledPolicy {
        file: file.to_owned(),
        raw,
        canonical,
        sha256,
        mode,
        servers,
        tools,
        rules,
        index,
        hide,
        hide_patterns: resolved.hide.clone(),
        store: resolved.store.clone(),
    })
}

/// A `help:` line for an error inside a rule's `when`, `unless` or `hours`.
fn condition_help(message: &str) -> &'static str {
    if message.contains("glob") {
        "globs: `*` matches within one path component, `**` across components, `?` one character, `[abc]` a class; escape with `\\`"
    } else if message.contains("regex") {
        "regexes use the Rust `regex` syntax (no look-around or back-references) and are unanchored; prefer `glob` where it fits"
    } else if message.contains("under") || message.contains("absolute path") {
        "`under` takes absolute directories such as `/workspace`"
    } else if message.contains("command pattern") {
        "command patterns are words such as `git status` or `ls *`; a final `*` matches any further words"
    } else if message.contains("method") {
        "evaluated methods are tools/call, resources/read and prompts/get"
    } else if message.contains("hours")
        || message.contains("time zone")
        || message.contains("HH:MM")
    {
        "write e.g. `hours: { days: [mon, fri], from: \"08:00\", to: \"18:00\", tz: Europe/Berlin }`"
    } else if message.contains("`min`") || message.contains("`max`") {
        "`min` and `max` are inclusive bounds on a number; `min` must not exceed `max`"
    } else if message.contains("empty") || message.contains("present: false") {
        "give each condition at least one test that can hold; docs/policy.md lists them"
    } else {
        "see the conditions section of docs/policy.md"
    }
}

fn limit_problem(limit: &LimitSpec) -> Option<String> {
    match (&limit.calls, &limit.sum, &limit.max) {
        (Some(0), _, _) => {
            Some("`calls: 0` never allows anything; use `decision: deny`".to_owned())
        }
        (Some(_), None, None) => None,
        (None, Some(arg), Some(_)) if !arg.is_empty() => None,
        (None, Some(_), None) => Some("`sum` needs a `max` budget".to_owned()),
        (Some(_), Some(_), _) => Some("give either `calls` or `sum`, not both".to_owned()),
        _ => Some("give `calls: N` or `sum: ARG` with `max: N`".to_owned()),
    }
}

/// Build the per-server index. Only top-level `when.server` and literal `when.tool` are used,
/// so a rule is left out of a bucket only when it certainly cannot match there.
fn build_index(
    servers: &BTreeMap<String, ServerInfo>,
    rules: &[Rule],
) -> BTreeMap<String, ServerIndex> {
    let mut index = BTreeMap::new();
    for server in servers.keys() {
        let mut si = ServerIndex::default();
        let mut literal: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule
                .when
                .server
                .as_ref()
                .is_some_and(|s| !s.matches(server))
            {
                continue;
            }
            match &rule.when.tool {
                Some(t) if t.all_literal => {
                    for name in &t.patterns {
                        literal.entry(name.clone()).or_default().push(i);
                    }
                }
                _ => si.any_tool.push(i),
            }
        }
        for (tool, mut list) in literal {
            list.extend(si.any_tool.iter().copied());
            list.sort_unstable();
            list.dedup();
            si.by_tool.insert(tool, list);
        }
        index.insert(server.clone(), si);
    }
    index
}

/// Load a policy from text: parse, resolve, validate, compile.
pub fn load_policy(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CompiledPolicy, PolicyErrors> {
    CompiledPolicy::from_yaml(text, file, env)
}

/// The longest principal name an API key may carry.
const MAX_PRINCIPAL_LEN: usize = 128;

/// API keys: a principal name rules can match, and a well-formed, unique sha256. JWT: an
/// issuer, an audience and exactly one key source.
fn check_auth(auth: &crate::model::AuthSpec, file: &str, errors: &mut Vec<PolicyError>) {
    if let Some(jwt) = &auth.jwt {
        if jwt.issuer.trim().is_empty() || jwt.audience.trim().is_empty() {
            errors.push(
                PolicyError::new(file, "`issuer` and `audience` must not be empty")
                    .field("auth.jwt")
                    .help("the audience is this gateway's identifier, usually its public URL"),
            );
        }
        match (&jwt.jwks_file, &jwt.jwks_url) {
            (Some(_), None) => {}
            (None, Some(url)) => {
                let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                    .iter()
                    .any(|prefix| {
                        url.strip_prefix(prefix)
                            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
                    });
                if !url.starts_with("https://") && !loopback {
                    errors.push(
                        PolicyError::new(file, format!("`jwks_url` `{url}` is not https"))
                            .field("auth.jwt.jwks_url")
                            .help("keys fetched in the clear could be replaced; use https (http only on loopback)"),
                    );
                }
            }
            _ => errors.push(
                PolicyError::new(file, "give exactly one of `jwks_file` and `jwks_url`")
                    .field("auth.jwt"),
            ),
        }
        if jwt.jwks_ca_file.is_some() && jwt.jwks_url.is_none() {
            errors.push(
                PolicyError::new(file, "`jwks_ca_file` without `jwks_url`: it only says whom to trust when fetching the JWKS")
                    .field("auth.jwt.jwks_ca_file")
                    .help("remove it, or fetch the keys from `jwks_url`"),
            );
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (index, key) in auth.api_keys.iter().enumerate() {
        let field = format!("auth.api_keys[{index}]");
        let principal_ok = !key.principal.is_empty()
            && key.principal.len() <= MAX_PRINCIPAL_LEN
            && key.principal.chars().all(|c| c.is_ascii_graphic());
        if !principal_ok {
            errors.push(
                PolicyError::new(file, format!("invalid principal `{}`", key.principal))
                    .field(format!("{field}.principal"))
                    .help("use 1 to 128 printable ASCII characters, no spaces"),
            );
        }
        let hash_ok = key.sha256.len() == 64
            && key
                .sha256
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, 'a'..='f'));
        if !hash_ok {
            errors.push(
                PolicyError::new(file, "`sha256` must be 64 lower-case hex digits")
                    .field(format!("{field}.sha256"))
                    .help("store the key's hash, never the key: `printf %s KEY | sha256sum`"),
            );
        } else if !seen.insert(key.sha256.as_str()) {
            errors.push(
                PolicyError::new(file, "two API keys have the same `sha256`")
                    .field(format!("{field}.sha256"))
                    .help("give every principal its own key"),
            );
        }
    }
}

#[cfg(test)]
mod tests;
