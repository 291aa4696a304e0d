//! Portcullis against other policy engines on the same policy and the same calls.
//!
//! The realistic 15-rule MCP policy of `crates/policy/benches/policy_eval.rs` (one shared file,
//! `crates/policy/benches/data/realistic-15.yaml`) is written four times: as a Portcullis
//! policy, as 15 CEL programs (the `cel` crate), as a Cedar policy set with a schema
//! (`cedar-policy`) and as a Rego module (`regorus`). Five calls are decided by each engine; the
//! decisions are checked equal to Portcullis's before anything is timed (the bench stops
//! otherwise). What is timed, for every engine, is the whole step a gateway would take: from the
//! call as a parsed JSON value (`{"server", "tool", "arguments"}`) to a decision, including
//! building the engine's own input.
//!
//! What the other engines are given: they know nothing of MCP, so a small host-side step in Rust
//! (timed, shared by the three) looks the tool up in the same `tools` table (effect and which
//! arguments are paths or URLs), parses each URL with the `url` crate (one WHATWG reading),
//! flags private IP hosts, and runs Portcullis's own credential detector over every string
//! argument (none of the three can express it: Cedar has no regex, and CEL or Rego would need
//! the detector's 17 patterns). Path conditions are written as careful authors write them in
//! those languages: string prefixes and suffixes plus a guard against `..` components. They are
//! not normalized: Portcullis does strictly more work on every path (the readings closure:
//! lexical, percent-decoded, backslash, Unicode and Windows-trimmed spellings, compared exactly
//! and case-folded). A separate, untimed table printed at the start shows hostile spellings on
//! which the other engines decide differently.
//!
//! Decisions: CEL programs are evaluated one per rule and the strictest decision of the rules
//! that hold is taken in Rust (`kill_session` > `deny` > `require_approval` > `allow`, none →
//! `deny`). Cedar knows only permit and forbid, so every rule is a `permit` carrying a
//! `@decision("...")` annotation; Cedar's `reason()` (the permits that held) is mapped through
//! the annotations to the strictest decision in Rust, and no permit holding is the default deny.
//! The Rego module computes the decision itself with an `else` chain.
//!
//! Run: `cargo bench -p portcullis-engines-bench --bench engines -- --warm-up-time 1 --measurement-time 3`.
//! Figures are in `docs/performance.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    reason = "a bench whose fixture is broken must stop loudly"
)]

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_policy::normalize::secret::find_secret;
use portcullis_policy::{Call, CompiledPolicy, Decision, EvalContext, evaluate};
use serde_json::{Value, json};

/// The Portcullis policy: the same file as `REALISTIC` in `crates/policy/benches/policy_eval.rs`.
const PORTCULLIS: &str = include_str!("../../../crates/policy/benches/data/realistic-15.yaml");

// ---------------------------------------------------------------------------------------------
// Host-side facts for the other engines (timed as part of each of them).
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Path,
    PathList,
    Url,
    Other,
}

/// A tool's arguments and what each one is.
type ArgKinds = &'static [(&'static str, Kind)];

/// The same `tools` table as the policy: (key, effect, arguments).
const TOOLS: &[(&str, &str, ArgKinds)] = &[
    ("fs.read_text_file", "read", &[("path", Kind::Path)]),
    (
        "fs.read_multiple_files",
        "read",
        &[("paths", Kind::PathList)],
    ),
    ("fs.list_directory", "read", &[("path", Kind::Path)]),
    (
        "fs.search_files",
        "read",
        &[("path", Kind::Path), ("pattern", Kind::Other)],
    ),
    (
        "fs.write_file",
        "write",
        &[("path", Kind::Path), ("content", Kind::Other)],
    ),
    ("fs.edit_file", "write", &[("path", Kind::Path)]),
    (
        "fs.move_file",
        "write",
        &[("source", Kind::Path), ("destination", Kind::Path)],
    ),
    ("git.git_status", "read", &[("repo_path", Kind::Path)]),
    ("git.git_log", "read", &[("repo_path", Kind::Path)]),
    ("git.git_diff", "read", &[("repo_path", Kind::Path)]),
    (
        "git.git_commit",
        "write",
        &[("repo_path", Kind::Path), ("message", Kind::Other)],
    ),
    ("fetch.fetch", "network", &[("url", Kind::Url)]),
    ("shell.run", "exec", &[("command", Kind::Other)]),
];

type ToolTable = HashMap<&'static str, (&'static str, ArgKinds)>;

fn tool_table() -> ToolTable {
    TOOLS.iter().map(|(k, e, a)| (*k, (*e, *a))).collect()
}

struct UrlFacts {
    scheme: String,
    host: String,
    private: bool,
}

/// What the other engines' policies look at, taken from the JSON call.
struct Facts<'a> {
    server: &'a str,
    tool: &'a str,
    effect: &'static str,
    paths: Vec<&'a str>,
    urls: Vec<UrlFacts>,
    secret: bool,
    labels: Vec<&'a str>,
    args: &'a serde_json::Map<String, Value>,
}

fn is_private_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
        }
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_unique_local()
                || ip.is_unicast_link_local()
        }
        Err(_) => false,
    }
}

fn any_secret(v: &Value) -> bool {
    match v {
        Value::String(s) => find_secret(s).is_some(),
        Value::Array(items) => items.iter().any(any_secret),
        Value::Object(map) => map.values().any(any_secret),
        _ => false,
    }
}

fn facts<'a>(call: &'a Value, tools: &ToolTable) -> Facts<'a> {
    static EMPTY: std::sync::LazyLock<serde_json::Map<String, Value>> =
        std::sync::LazyLock::new(serde_json::Map::new);
    let server = call["server"].as_str().unwrap_or_default();
    let tool = call["tool"].as_str().unwrap_or_default();
    let args = call["arguments"].as_object().unwrap_or(&EMPTY);
    let labels = call
        .get("labels")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut key = String::with_capacity(server.len() + tool.len() + 1);
    key.push_str(server);
    key.push('.');
    key.push_str(tool);
    let (effect, kinds) = tools.get(key.as_str()).copied().unwrap_or(("unknown", &[]));
    let mut paths = Vec::new();
    let mut urls = Vec::new();
    for (name, kind) in kinds {
        let Some(v) = args.get(*name) else { continue };
        match kind {
            Kind::Path => paths.extend(v.as_str()),
            Kind::PathList => {
                paths.extend(v.as_array().into_iter().flatten().filter_map(Value::as_str))
            }
            Kind::Url => {
                if let Some(u) = v.as_str().and_then(|s| url::Url::parse(s).ok()) {
                    let host = u.host_str().unwrap_or_default().to_owned();
                    urls.push(UrlFacts {
                        scheme: u.scheme().to_owned(),
                        private: is_private_host(&host),
                        host,
                    });
                }
            }
            Kind::Other => {}
        }
    }
    Facts {
        server,
        tool,
        effect,
        paths,
        urls,
        secret: args.values().any(any_secret),
        labels,
        args,
    }
}

fn strictest(decisions: impl IntoIterator<Item = Decision>) -> Decision {
    decisions.into_iter().max().unwrap_or(Decision::Deny)
}

fn parse_decision(s: &str) -> Decision {
    match s {
        "allow" => Decision::Allow,
        "require_approval" => Decision::RequireApproval,
        "deny" => Decision::Deny,
        "kill_session" => Decision::KillSession,
        other => panic!("unknown decision `{other}`"),
    }
}

// ---------------------------------------------------------------------------------------------
// Portcullis
// ---------------------------------------------------------------------------------------------

fn portcullis(policy: &CompiledPolicy, call: &Value) -> Decision {
    match Call::from_json(call) {
        Ok(c) => evaluate(policy, &c, &EvalContext::default()).decision,
        Err(_) => Decision::Deny,
    }
}

// ---------------------------------------------------------------------------------------------
// CEL: one program per rule, one shared environment.
// ---------------------------------------------------------------------------------------------

const UNDER_WS_CEL: &str = r#"((P == "/workspace" || P.startsWith("/workspace/")) && !P.contains("/../") && !P.endsWith("/.."))"#;

fn cel_rules() -> Vec<(&'static str, String)> {
    let under = |var: &str| UNDER_WS_CEL.replace('P', var);
    vec![
        ("deny", r#"server == "fs" && paths.exists(p, p.endsWith("/.env") || p.contains("/.ssh/") || p.contains("/.aws/") || p.endsWith(".pem") || p.contains("/id_rsa"))"#.to_owned()),
        ("deny", "secret".to_owned()),
        ("allow", format!(r#"server == "fs" && effect == "read" && size(paths) > 0 && paths.all(p, {})"#, under("p"))),
        ("require_approval", r#"effect in ["write", "delete", "exec", "network", "message", "deploy", "payment", "sign", "identity", "unknown"]"#.to_owned()),
        ("allow", format!(r#"server == "git" && tool in ["git_status", "git_log", "git_diff"] && has(args.repo_path) && {}"#, under("args.repo_path"))),
        ("require_approval", r#"server == "git" && tool == "git_commit""#.to_owned()),
        ("allow", r#"server == "fetch" && tool == "fetch" && size(urls) > 0 && urls.all(u, u.scheme == "https" && !u.private)"#.to_owned()),
        ("deny", r#"server == "fetch" && urls.exists(u, u.private)"#.to_owned()),
        ("kill_session", r#"urls.exists(u, u.host in ["169.254.169.254", "metadata.google.internal"])"#.to_owned()),
        ("allow", r#"server == "shell" && tool == "run" && has(args.command) && (args.command == "git status" || args.command.startsWith("ls ") || args.command.startsWith("cat "))"#.to_owned()),
        ("deny", r#"server == "shell" && has(args.command) && args.command.matches("rm\\s+-[a-z]*r")"#.to_owned()),
        ("deny", format!(r#"server == "fs" && effect == "write" && paths.exists(p, !{})"#, under("p"))),
        ("allow", format!(r#"server == "fs" && tool == "search_files" && size(paths) > 0 && paths.all(p, {})"#, under("p"))),
        ("deny", r#""secret" in labels && effect == "network""#.to_owned()),
        ("deny", r#"server == "fs" && tool == "move_file""#.to_owned()),
    ]
}

struct CelEngine {
    env: Arc<cel::Env>,
    programs: Vec<(Decision, cel::Program)>,
}

impl CelEngine {
    fn new() -> Self {
        let env = Arc::new(cel::Env::stdlib());
        let programs = cel_rules()
            .into_iter()
            .map(|(d, src)| {
                (
                    parse_decision(d),
                    env.compile(&src).unwrap_or_else(|e| panic!("{src}: {e:?}")),
                )
            })
            .collect();
        CelEngine { env, programs }
    }

    fn decide(&self, call: &Value, tools: &ToolTable) -> Decision {
        let f = facts(call, tools);
        let mut ctx = cel::Context::with_env(Arc::clone(&self.env));
        ctx.add_variable_from_value("server", f.server);
        ctx.add_variable_from_value("tool", f.tool);
        ctx.add_variable_from_value("effect", f.effect);
        ctx.add_variable_from_value(
            "paths",
            f.paths
                .iter()
                .map(|p| cel::Value::from(*p))
                .collect::<Vec<_>>(),
        );
        let urls: Vec<cel::Value> = f
            .urls
            .iter()
            .map(|u| {
                let mut m: HashMap<&str, cel::Value> = HashMap::new();
                m.insert("scheme", u.scheme.as_str().into());
                m.insert("host", u.host.as_str().into());
                m.insert("private", u.private.into());
                m.into()
            })
            .collect();
        ctx.add_variable_from_value("urls", urls);
        ctx.add_variable_from_value("secret", f.secret);
        ctx.add_variable_from_value(
            "labels",
            f.labels
                .iter()
                .map(|l| cel::Value::from(*l))
                .collect::<Vec<_>>(),
        );
        let args: HashMap<&str, cel::Value> = f
            .args
            .iter()
            .map(|(k, v)| (k.as_str(), cel_value(v)))
            .collect();
        ctx.add_variable_from_value("args", args);
        strictest(self.programs.iter().filter_map(|(d, p)| {
            // An error (a missing field, a wrong type) counts as "holds" for non-allow rules
            // and "does not hold" for allow rules: fail closed, as Portcullis does with unknown.
            match p.execute(&ctx) {
                Ok(cel::Value::Bool(true)) => Some(*d),
                Ok(_) => None,
                Err(_) if *d != Decision::Allow => Some(*d),
                Err(_) => None,
            }
        }))
    }
}

fn cel_value(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| n.as_f64().unwrap_or(f64::NAN).into(), Into::into),
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => items.iter().map(cel_value).collect::<Vec<_>>().into(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.as_str(), cel_value(v)))
            .collect::<HashMap<_, _>>()
            .into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Cedar: every rule a `permit` with a `@decision` annotation; schema-validated requests.
// ---------------------------------------------------------------------------------------------

const CEDAR_SCHEMA: &str = r#"
entity Agent;
entity Tool;
action call appliesTo {
  principal: [Agent],
  resource: [Tool],
  context: {
    server: String,
    tool: String,
    effect: String,
    secret: Bool,
    labels: Set<String>,
    path?: String,
    url_scheme?: String,
    url_host?: String,
    url_private?: Bool,
    repo_path?: String,
    command?: String,
  }
};
"#;

const UNDER_WS_CEDAR: &str =
    r#"((P == "/workspace" || P like "/workspace/*") && !(P like "*/../*") && !(P like "*/.."))"#;

fn cedar_policies() -> String {
    let under = |var: &str| UNDER_WS_CEDAR.replace('P', var);
    let rules: Vec<(&str, String)> = vec![
        ("deny", r#"context.server == "fs" && context has path && (context.path like "*/.env" || context.path like "*/.ssh/*" || context.path like "*/.aws/*" || context.path like "*.pem" || context.path like "*/id_rsa*")"#.to_owned()),
        ("deny", "context.secret".to_owned()),
        ("allow", format!(r#"context.server == "fs" && context.effect == "read" && context has path && {}"#, under("context.path"))),
        ("require_approval", r#"["write", "delete", "exec", "network", "message", "deploy", "payment", "sign", "identity", "unknown"].contains(context.effect)"#.to_owned()),
        ("allow", format!(r#"context.server == "git" && ["git_status", "git_log", "git_diff"].contains(context.tool) && context has repo_path && {}"#, under("context.repo_path"))),
        ("require_approval", r#"context.server == "git" && context.tool == "git_commit""#.to_owned()),
        ("allow", r#"context.server == "fetch" && context.tool == "fetch" && context has url_scheme && context.url_scheme == "https" && context has url_private && !context.url_private"#.to_owned()),
        ("deny", r#"context.server == "fetch" && context has url_private && context.url_private"#.to_owned()),
        ("kill_session", r#"context has url_host && ["169.254.169.254", "metadata.google.internal"].contains(context.url_host)"#.to_owned()),
        ("allow", r#"context.server == "shell" && context.tool == "run" && context has command && (context.command == "git status" || context.command like "ls *" || context.command like "cat *")"#.to_owned()),
        // No regex in Cedar: `rm\s+-[a-z]*r` approximated by a wildcard.
        ("deny", r#"context.server == "shell" && context has command && context.command like "*rm -*r*""#.to_owned()),
        ("deny", format!(r#"context.server == "fs" && context.effect == "write" && context has path && !{}"#, under("context.path"))),
        ("allow", format!(r#"context.server == "fs" && context.tool == "search_files" && context has path && {}"#, under("context.path"))),
        ("deny", r#"context.labels.contains("secret") && context.effect == "network""#.to_owned()),
        ("deny", r#"context.server == "fs" && context.tool == "move_file""#.to_owned()),
    ];
    rules
        .iter()
        .map(|(d, cond)| format!("@decision(\"{d}\")\npermit(principal, action == Action::\"call\", resource) when {{ {cond} }};\n"))
        .collect()
}

struct CedarEngine {
    schema: cedar_policy::Schema,
    policies: cedar_policy::PolicySet,
    decisions: HashMap<cedar_policy::PolicyId, Decision>,
    authorizer: cedar_policy::Authorizer,
    entities: cedar_policy::Entities,
    principal: cedar_policy::EntityUid,
    action: cedar_policy::EntityUid,
    tool_type: cedar_policy::EntityTypeName,
}

impl CedarEngine {
    fn new() -> Self {
        let (schema, warnings) = cedar_policy::Schema::from_cedarschema_str(CEDAR_SCHEMA).unwrap();
        assert_eq!(warnings.count(), 0);
        let policies = cedar_policy::PolicySet::from_str(&cedar_policies()).unwrap();
        let validation = cedar_policy::Validator::new(schema.clone())
            .validate(&policies, cedar_policy::ValidationMode::Strict);
        assert!(validation.validation_passed(), "{validation:?}");
        let decisions = policies
            .policies()
            .map(|p| {
                (
                    p.id().clone(),
                    parse_decision(p.annotation("decision").unwrap()),
                )
            })
            .collect();
        CedarEngine {
            schema,
            policies,
            decisions,
            authorizer: cedar_policy::Authorizer::new(),
            entities: cedar_policy::Entities::empty(),
            principal: cedar_policy::EntityUid::from_str(r#"Agent::"session""#).unwrap(),
            action: cedar_policy::EntityUid::from_str(r#"Action::"call""#).unwrap(),
            tool_type: cedar_policy::EntityTypeName::from_str("Tool").unwrap(),
        }
    }

    fn decide(&self, call: &Value, tools: &ToolTable) -> Decision {
        use cedar_policy::RestrictedExpression as E;
        let f = facts(call, tools);
        let s = |v: &str| E::new_string(v.to_owned());
        let mut pairs = vec![
            ("server".to_owned(), s(f.server)),
            ("tool".to_owned(), s(f.tool)),
            ("effect".to_owned(), s(f.effect)),
            ("secret".to_owned(), E::new_bool(f.secret)),
            (
                "labels".to_owned(),
                E::new_set(f.labels.iter().map(|l| s(l))),
            ),
        ];
        // Cedar cannot quantify over a set of strings: the policies read one `path` and one URL.
        // Every benchmarked call has at most one of each.
        if let Some(p) = f.paths.first() {
            pairs.push(("path".to_owned(), s(p)));
        }
        if let Some(u) = f.urls.first() {
            pairs.push(("url_scheme".to_owned(), s(&u.scheme)));
            pairs.push(("url_host".to_owned(), s(&u.host)));
            pairs.push(("url_private".to_owned(), E::new_bool(u.private)));
        }
        for name in ["repo_path", "command"] {
            if let Some(v) = f.args.get(name).and_then(Value::as_str) {
                pairs.push((name.to_owned(), s(v)));
            }
        }
        let Ok(context) = cedar_policy::Context::from_pairs(pairs) else {
            return Decision::Deny;
        };
        let resource = cedar_policy::EntityUid::from_type_name_and_id(
            self.tool_type.clone(),
            cedar_policy::EntityId::new(format!("{}.{}", f.server, f.tool)),
        );
        let Ok(request) = cedar_policy::Request::new(
            self.principal.clone(),
            self.action.clone(),
            resource,
            context,
            Some(&self.schema),
        ) else {
            return Decision::Deny;
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &self.entities);
        if response.diagnostics().errors().next().is_some() {
            return Decision::Deny;
        }
        strictest(
            response
                .diagnostics()
                .reason()
                .map(|id| self.decisions.get(id).copied().unwrap_or(Decision::Deny)),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Rego (regorus): the module computes the decision.
// ---------------------------------------------------------------------------------------------

const REGO: &str = r#"
package portcullis

import rego.v1

under_ws(p) if p == "/workspace"

under_ws(p) if {
	startswith(p, "/workspace/")
	not contains(p, "/../")
	not endswith(p, "/..")
}

secret_path(p) if endswith(p, "/.env")
secret_path(p) if contains(p, "/.ssh/")
secret_path(p) if contains(p, "/.aws/")
secret_path(p) if endswith(p, ".pem")
secret_path(p) if contains(p, "/id_rsa")

mutations := {"write", "delete", "exec", "network", "message", "deploy", "payment", "sign", "identity", "unknown"}

deny if {
	input.server == "fs"
	some p in input.paths
	secret_path(p)
}

deny if input.secret

allow if {
	input.server == "fs"
	input.effect == "read"
	count(input.paths) > 0
	every p in input.paths { under_ws(p) }
}

approval if input.effect in mutations

allow if {
	input.server == "git"
	input.tool in {"git_status", "git_log", "git_diff"}
	under_ws(input.args.repo_path)
}

approval if {
	input.server == "git"
	input.tool == "git_commit"
}

allow if {
	input.server == "fetch"
	input.tool == "fetch"
	count(input.urls) > 0
	every u in input.urls {
		u.scheme == "https"
		u.private == false
	}
}

deny if {
	input.server == "fetch"
	some u in input.urls
	u.private == true
}

kill if {
	some u in input.urls
	u.host in {"169.254.169.254", "metadata.google.internal"}
}

safe_command(c) if c == "git status"
safe_command(c) if startswith(c, "ls ")
safe_command(c) if startswith(c, "cat ")

allow if {
	input.server == "shell"
	input.tool == "run"
	safe_command(input.args.command)
}

deny if {
	input.server == "shell"
	regex.match(`rm\s+-[a-z]*r`, input.args.command)
}

deny if {
	input.server == "fs"
	input.effect == "write"
	some p in input.paths
	not under_ws(p)
}

allow if {
	input.server == "fs"
	input.tool == "search_files"
	count(input.paths) > 0
	every p in input.paths { under_ws(p) }
}

deny if {
	"secret" in input.labels
	input.effect == "network"
}

deny if {
	input.server == "fs"
	input.tool == "move_file"
}

default decision := "deny"

decision := "kill_session" if kill
else := "deny" if deny
else := "require_approval" if approval
else := "allow" if allow
"#;

fn rego_engine() -> regorus::Engine {
    let mut engine = regorus::Engine::new();
    engine
        .add_policy("portcullis.rego".to_owned(), REGO.to_owned())
        .unwrap();
    engine
}

fn rego_value(v: &Value) -> regorus::Value {
    match v {
        Value::Null => regorus::Value::Null,
        Value::Bool(b) => regorus::Value::Bool(*b),
        Value::Number(n) => n.as_i64().map_or_else(
            || regorus::Value::from(n.as_f64().unwrap_or(f64::NAN)),
            regorus::Value::from,
        ),
        Value::String(s) => regorus::Value::from(s.as_str()),
        Value::Array(items) => {
            regorus::Value::from(items.iter().map(rego_value).collect::<Vec<_>>())
        }
        Value::Object(map) => regorus::Value::from(
            map.iter()
                .map(|(k, v)| (regorus::Value::from(k.as_str()), rego_value(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

fn rego_decide(engine: &mut regorus::Engine, call: &Value, tools: &ToolTable) -> Decision {
    let f = facts(call, tools);
    let s = |v: &str| regorus::Value::from(v);
    let mut input = BTreeMap::new();
    input.insert(s("server"), s(f.server));
    input.insert(s("tool"), s(f.tool));
    input.insert(s("effect"), s(f.effect));
    input.insert(
        s("paths"),
        regorus::Value::from(f.paths.iter().map(|p| s(p)).collect::<Vec<_>>()),
    );
    let urls = f
        .urls
        .iter()
        .map(|u| {
            let mut m = BTreeMap::new();
            m.insert(s("scheme"), s(&u.scheme));
            m.insert(s("host"), s(&u.host));
            m.insert(s("private"), regorus::Value::Bool(u.private));
            regorus::Value::from(m)
        })
        .collect::<Vec<_>>();
    input.insert(s("urls"), regorus::Value::from(urls));
    input.insert(s("secret"), regorus::Value::Bool(f.secret));
    input.insert(
        s("labels"),
        regorus::Value::from(f.labels.iter().map(|l| s(l)).collect::<Vec<_>>()),
    );
    let args = f
        .args
        .iter()
        .map(|(k, v)| (s(k), rego_value(v)))
        .collect::<BTreeMap<_, _>>();
    input.insert(s("args"), regorus::Value::from(args));
    engine.set_input(regorus::Value::from(input));
    match engine.eval_rule("data.portcullis.decision".to_owned()) {
        Ok(v) => v.as_string().map_or(Decision::Deny, |d| parse_decision(d)),
        Err(_) => Decision::Deny,
    }
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

fn tool_call(server: &str, tool: &str, arguments: Value) -> Value {
    json!({ "server": server, "tool": tool, "arguments": arguments })
}

/// The timed calls, with the decision every engine must reach.
fn calls() -> Vec<(&'static str, Value, Decision)> {
    vec![
        (
            "allowed_read",
            tool_call(
                "fs",
                "read_text_file",
                json!({ "path": "/workspace/src/main.rs" }),
            ),
            Decision::Allow,
        ),
        (
            "denied_traversal",
            tool_call(
                "fs",
                "read_text_file",
                json!({ "path": "/workspace/../etc/passwd" }),
            ),
            Decision::Deny,
        ),
        (
            "approval_write",
            tool_call(
                "fs",
                "write_file",
                json!({ "path": "/workspace/src/lib.rs", "content": "pub fn answer() -> u32 { 42 }\n" }),
            ),
            Decision::RequireApproval,
        ),
        (
            "denied_secret_read",
            tool_call("fs", "read_text_file", json!({ "path": "/workspace/.env" })),
            Decision::Deny,
        ),
        // `fetch-public` allows it and `approve-mutations` (network is a mutation) asks: the
        // strictest of the two.
        (
            "network_allowed_host",
            tool_call(
                "fetch",
                "fetch",
                json!({ "url": "https://docs.rs/serde/latest/serde/" }),
            ),
            Decision::RequireApproval,
        ),
    ]
}

/// Hostile spellings, decided but not timed: where the engines that compare raw strings differ.
fn hostile_calls() -> Vec<(&'static str, Value)> {
    let read = |p: &str| tool_call("fs", "read_text_file", json!({ "path": p }));
    vec![
        ("percent-encoded `..`", read("/workspace/%2e%2e/etc/passwd")),
        ("backslash `..`", read("/workspace/..\\..\\etc\\passwd")),
        (
            "fullwidth `..`",
            read("/workspace/\u{ff0e}\u{ff0e}/etc/passwd"),
        ),
        ("trailing dot `.env.`", read("/workspace/.env.")),
        ("case `.ENV`", read("/workspace/.ENV")),
        ("double slash + dot `//./.env`", read("/workspace//./.env")),
        (
            "`\\@` host confusion",
            tool_call(
                "fetch",
                "fetch",
                json!({ "url": "https://example.com\\@169.254.169.254/latest/meta-data" }),
            ),
        ),
        (
            "write via `/workspace/./../etc`",
            tool_call(
                "fs",
                "write_file",
                json!({ "path": "/workspace/./../etc/cron.d/x", "content": "x" }),
            ),
        ),
    ]
}

fn word(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "allow",
        Decision::RequireApproval => "require_approval",
        Decision::Deny => "deny",
        Decision::KillSession => "kill_session",
    }
}

fn engines(c: &mut Criterion) {
    let policy = CompiledPolicy::from_yaml(PORTCULLIS, "realistic.yaml", &|_| None).unwrap();
    assert_eq!(policy.rule_count(), 15);
    let tools = tool_table();
    let cel = CelEngine::new();
    assert_eq!(cel.programs.len(), 15);
    let cedar = CedarEngine::new();
    assert_eq!(cedar.decisions.len(), 15);
    let mut rego = rego_engine();

    // Correctness first: every engine agrees with Portcullis on every timed call.
    for (label, call, expected) in calls() {
        assert_eq!(portcullis(&policy, &call), expected, "portcullis/{label}");
        assert_eq!(cel.decide(&call, &tools), expected, "cel/{label}");
        assert_eq!(cedar.decide(&call, &tools), expected, "cedar/{label}");
        assert_eq!(
            rego_decide(&mut rego, &call, &tools),
            expected,
            "rego/{label}"
        );
    }
    // Untimed: hostile spellings, where only Portcullis reads paths and URLs as servers do.
    println!("\n| hostile call | portcullis | cel | cedar | regorus |");
    println!("|---|---|---|---|---|");
    for (label, call) in hostile_calls() {
        let p = portcullis(&policy, &call);
        let mark = |d: Decision| {
            if d == p {
                word(d).to_owned()
            } else {
                format!("**{}** (wrong)", word(d))
            }
        };
        println!(
            "| {label} | {} | {} | {} | {} |",
            word(p),
            mark(cel.decide(&call, &tools)),
            mark(cedar.decide(&call, &tools)),
            mark(rego_decide(&mut rego, &call, &tools))
        );
    }
    println!();

    let mut group = c.benchmark_group("engines");
    for (label, call, _) in calls() {
        group.bench_with_input(BenchmarkId::new("portcullis", label), &call, |b, call| {
            b.iter(|| portcullis(black_box(&policy), black_box(call)));
        });
        group.bench_with_input(BenchmarkId::new("cel", label), &call, |b, call| {
            b.iter(|| cel.decide(black_box(call), &tools));
        });
        group.bench_with_input(BenchmarkId::new("cedar", label), &call, |b, call| {
            b.iter(|| cedar.decide(black_box(call), &tools));
        });
        group.bench_with_input(BenchmarkId::new("regorus", label), &call, |b, call| {
            b.iter(|| rego_decide(&mut rego, black_box(call), &tools));
        });
    }
    group.finish();
}

criterion_group!(benches, engines);
criterion_main!(benches);
