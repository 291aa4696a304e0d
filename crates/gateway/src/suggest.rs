//! `portcullis suggest`: proposed allow rules covering the calls the audit log saw in observe
//! mode, each as tight as the calls allow.
//!
//! Calls are grouped by server and tool. For each argument: paths are grouped under their
//! deepest common directories (at most [`SuggestOptions::max_dirs`], never `/`), URLs give their
//! hosts and schemes, other values are listed when there are few (numbers otherwise bounded by
//! the smallest and largest seen), and anything else is left to a human with a comment. The audit
//! stores arguments with credentials redacted: a redacted value is never used in a suggestion.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use portcullis_policy::CompiledPolicy;
use portcullis_policy::model::ArgKind;
use portcullis_policy::normalize::path::normalize_absolute;
use portcullis_policy::normalize::url::{UrlHost, url_readings};
use portcullis_store::{AuditEntry, AuditKind, Store, StoreError};
use serde_json::{Map, Value, json};

use crate::scan::yaml_str;

/// What the audit redactor leaves in place of a credential.
const REDACTED: &str = "[REDACTED:";
/// Records read per query.
const PAGE: usize = 1000;
/// The longest string value listed in `one_of`.
const MAX_LISTED_LEN: usize = 200;

/// What to suggest from.
#[derive(Debug, Clone)]
pub struct SuggestOptions {
    /// Only this server.
    pub server: Option<String>,
    /// Only records after this sequence number.
    pub since: u64,
    /// Also enforced records that were allowed (not only observe-mode ones).
    pub all: bool,
    /// The most directories one path argument's rule names.
    pub max_dirs: usize,
    /// The most distinct values listed for one argument.
    pub max_values: usize,
}

impl Default for SuggestOptions {
    fn default() -> Self {
        Self {
            server: None,
            since: 0,
            all: false,
            max_dirs: 4,
            max_values: 5,
        }
    }
}

/// One call seen in the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenCall {
    /// The record's sequence number.
    pub seq: u64,
    /// The server.
    pub server: String,
    /// The tool.
    pub tool: String,
    /// The (redacted) arguments.
    pub args: Map<String, Value>,
}

/// The `tools/call` decision records `options` selects, oldest first.
///
/// # Errors
///
/// When the store cannot be read.
pub fn seen_calls(store: &Store, options: &SuggestOptions) -> Result<Vec<SeenCall>, StoreError> {
    let mut out = Vec::new();
    let mut after = options.since;
    loop {
        let page: Vec<AuditEntry> = store.entries_after(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in page {
            let e = &entry.event;
            let wanted = e.kind == AuditKind::Decision
                && e.method == "tools/call"
                && (!e.enforced || (options.all && e.decision.as_deref() == Some("allow")))
                && options.server.as_ref().is_none_or(|s| *s == e.server);
            let Some(tool) = e.tool.clone().filter(|_| wanted) else {
                continue;
            };
            let args = match &e.args_redacted {
                Some(Value::Object(map)) => map.clone(),
                _ => Map::new(),
            };
            out.push(SeenCall {
                seq: entry.seq,
                server: e.server.clone(),
                tool,
                args,
            });
        }
    }
    Ok(out)
}

/// A condition on one argument, with the notes a human should read.
struct ArgSuggestion {
    condition: Option<Value>,
    notes: Vec<String>,
    /// The condition could not be made tight enough: the rule is written disabled.
    too_broad: bool,
}

fn is_redacted(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains(REDACTED),
        Value::Array(items) => items.iter().any(is_redacted),
        Value::Object(map) => map.values().any(is_redacted),
        _ => false,
    }
}

/// The strings of a value: itself, or the elements of an array of strings.
fn strings(value: &Value) -> Option<Vec<&str>> {
    match value {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

/// The deepest common directory of two absolute paths (`/` when they share nothing).
fn common_dir(a: &str, b: &str) -> String {
    let shared: Vec<&str> = components(a)
        .into_iter()
        .zip(components(b))
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    format!("/{}", shared.join("/"))
}

fn is_under(path: &str, dir: &str) -> bool {
    portcullis_policy::normalize::path::is_under(path, dir)
}

/// Directories covering `paths` (normalized absolute): each path's parent (or the path itself
/// when its parent is `/`), merged pairwise at their deepest common directory while there are
/// more than `max`, never at `/`. `Err` with the directories when they cannot be brought to
/// `max`.
fn group_dirs(paths: &BTreeSet<String>, max: usize) -> Result<Vec<String>, Vec<String>> {
    let mut dirs: BTreeSet<String> = paths
        .iter()
        .map(|p| match p.rsplit_once('/') {
            Some(("", _)) | None => p.clone(),
            Some((parent, _)) => parent.to_owned(),
        })
        .collect();
    let minimal = |dirs: &BTreeSet<String>| -> BTreeSet<String> {
        dirs.iter()
            .filter(|d| !dirs.iter().any(|o| o != *d && is_under(d, o)))
            .cloned()
            .collect()
    };
    dirs = minimal(&dirs);
    while dirs.len() > max.max(1) {
        let list: Vec<&String> = dirs.iter().collect();
        let mut best: Option<String> = None;
        for (i, a) in list.iter().enumerate() {
            for b in list.iter().skip(i + 1) {
                let c = common_dir(a, b);
                if c != "/"
                    && best
                        .as_ref()
                        .is_none_or(|x| components(&c).len() > components(x).len())
                {
                    best = Some(c);
                }
            }
        }
        let Some(merged) = best else {
            return Err(dirs.into_iter().collect());
        };
        dirs.insert(merged);
        dirs = minimal(&dirs);
    }
    Ok(dirs.into_iter().collect())
}

fn host_of(raw: &str) -> Option<(String, String)> {
    let readings = url_readings(raw).ok()?;
    let first = readings.first()?;
    let host = match first.host.as_ref()? {
        UrlHost::Name(name) => name.clone(),
        UrlHost::Ip(ip) => ip.to_string(),
    };
    // Several readings that disagree: the allow would not hold anyway.
    if readings.iter().any(|r| r.host != first.host) {
        return None;
    }
    Some((host, first.scheme.clone()))
}

fn suggest_arg(
    name: &str,
    values: &[&Value],
    kind: Option<ArgKind>,
    cwd: Option<&str>,
    options: &SuggestOptions,
) -> ArgSuggestion {
    let mut notes = Vec::new();
    let clean: Vec<&Value> = values.iter().copied().filter(|v| !is_redacted(v)).collect();
    let redacted = values.len() - clean.len();
    if redacted > 0 {
        notes.push(format!(
            "`{name}`: {redacted} value(s) were redacted as secrets and are not used"
        ));
    }
    if clean.is_empty() {
        notes.push(format!(
            "`{name}`: only redacted values seen; allowed only without a credential — review"
        ));
        return ArgSuggestion {
            condition: Some(json!({"secret": false})),
            notes,
            too_broad: false,
        };
    }
    let all_strings: Option<Vec<&str>> = clean
        .iter()
        .map(|v| strings(v))
        .collect::<Option<Vec<_>>>()
        .map(|v| v.into_iter().flatten().collect());
    let declared_path = matches!(kind, Some(ArgKind::Path | ArgKind::PathList));
    let declared_url = matches!(kind, Some(ArgKind::Url | ArgKind::UrlList));
    if let Some(items) = all_strings.as_ref().filter(|s| !s.is_empty()) {
        // Paths: declared so, or every value spelled as an absolute path.
        let absolute = |s: &str| -> Option<String> {
            if s.starts_with('/') {
                normalize_absolute(s)
            } else if declared_path {
                cwd.and_then(|c| normalize_absolute(&format!("{c}/{s}")))
            } else {
                None
            }
        };
        if declared_path || items.iter().all(|s| s.starts_with('/')) {
            let paths: Option<BTreeSet<String>> = items.iter().map(|s| absolute(s)).collect();
            if let Some(paths) = paths {
                return match group_dirs(&paths, options.max_dirs) {
                    Ok(dirs) => {
                        notes.push(format!(
                            "`{name}`: {} distinct path(s) under {} director{}",
                            paths.len(),
                            dirs.len(),
                            if dirs.len() == 1 { "y" } else { "ies" }
                        ));
                        ArgSuggestion {
                            condition: Some(json!({"under": dirs})),
                            notes,
                            too_broad: false,
                        }
                    }
                    Err(dirs) => {
                        notes.push(format!(
                            "`{name}`: paths in {} unrelated directories (more than {}); disabled — review",
                            dirs.len(),
                            options.max_dirs
                        ));
                        ArgSuggestion {
                            condition: Some(json!({"under": dirs})),
                            notes,
                            too_broad: true,
                        }
                    }
                };
            }
            notes.push(format!(
                "`{name}`: relative paths and no `cwd` for the server; not constrained — review"
            ));
            return ArgSuggestion {
                condition: None,
                notes,
                too_broad: true,
            };
        }
        if declared_url || items.iter().all(|s| s.contains("://")) {
            let hosts: Option<Vec<(String, String)>> = items.iter().map(|s| host_of(s)).collect();
            if let Some(hosts) = hosts {
                let names: BTreeSet<String> = hosts.iter().map(|(h, _)| h.clone()).collect();
                let schemes: BTreeSet<String> = hosts.into_iter().map(|(_, s)| s).collect();
                notes.push(format!("`{name}`: {} host(s)", names.len()));
                return ArgSuggestion {
                    condition: Some(json!({"host": names, "scheme": schemes})),
                    notes,
                    too_broad: false,
                };
            }
        }
    }
    // Other values: list them when few.
    let mut distinct: Vec<Value> = Vec::new();
    for v in &clean {
        let elements: Vec<Value> = match v {
            Value::Array(items) => items.clone(),
            other => vec![(*other).clone()],
        };
        for e in elements {
            if !distinct.contains(&e) {
                distinct.push(e);
            }
        }
    }
    let listable = distinct.iter().all(|v| match v {
        Value::String(s) => s.chars().count() <= MAX_LISTED_LEN,
        Value::Bool(_) | Value::Number(_) => true,
        _ => false,
    });
    if listable && !distinct.is_empty() && distinct.len() <= options.max_values {
        notes.push(format!("`{name}`: {} distinct value(s)", distinct.len()));
        return ArgSuggestion {
            condition: Some(json!({"one_of": distinct})),
            notes,
            too_broad: false,
        };
    }
    let numbers: Option<Vec<f64>> = distinct.iter().map(Value::as_f64).collect();
    if let Some(numbers) = numbers.filter(|n| !n.is_empty()) {
        let pick = |want_min: bool| {
            distinct
                .iter()
                .zip(&numbers)
                .fold(None::<(&Value, f64)>, |acc, (v, n)| match acc {
                    Some((_, m)) if (want_min && m <= *n) || (!want_min && m >= *n) => acc,
                    _ => Some((v, *n)),
                })
                .map(|(v, _)| v.clone())
        };
        notes.push(format!(
            "`{name}`: {} distinct numbers, bounded by the smallest and largest seen",
            distinct.len()
        ));
        return ArgSuggestion {
            condition: Some(json!({"min": pick(true), "max": pick(false)})),
            notes,
            too_broad: false,
        };
    }
    notes.push(format!(
        "`{name}`: {} distinct values, too many or too long to list; not constrained — review",
        distinct.len()
    ));
    let types: BTreeSet<&str> = clean
        .iter()
        .map(|v| match v {
            Value::String(_) => "string",
            Value::Number(_) => "number",
            Value::Bool(_) => "boolean",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
            Value::Null => "null",
        })
        .collect();
    let condition = match types.iter().next() {
        Some(only) if types.len() == 1 => Some(json!({"type": only})),
        _ => None,
    };
    ArgSuggestion {
        condition,
        notes,
        too_broad: false,
    }
}

/// A JSON value as YAML flow syntax, every string quoted (see [`yaml_str`]).
fn flow(value: &Value) -> String {
    match value {
        Value::String(s) => yaml_str(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(flow).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| {
                    let key = if k.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                        k.clone()
                    } else {
                        yaml_str(k)
                    };
                    format!("{key}: {}", flow(v))
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn glob_literal(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn id_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect()
}

fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

/// The suggested rules, as YAML under a `rules:` key, with a comment per rule on what it covers.
/// `policy` (when given) supplies declared argument kinds and servers' `cwd`.
#[must_use]
pub fn render(
    calls: &[SeenCall],
    policy: Option<&CompiledPolicy>,
    options: &SuggestOptions,
) -> String {
    let mut groups: BTreeMap<(&str, &str), Vec<&SeenCall>> = BTreeMap::new();
    for call in calls {
        groups
            .entry((call.server.as_str(), call.tool.as_str()))
            .or_default()
            .push(call);
    }
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Suggested by `portcullis suggest` from {} observed call(s): allow rules covering what was",
        calls.len()
    );
    let _ = writeln!(
        y,
        "# seen, each as tight as those calls allow. Review every one before enforcing: what an"
    );
    let _ = writeln!(
        y,
        "# agent did while observed is not necessarily what it should be allowed to do."
    );
    if groups.is_empty() {
        y.push_str("# No observed calls matched.\nrules: []\n");
        return y;
    }
    y.push_str("rules:\n");
    let mut ids = BTreeSet::new();
    for ((server, tool), group) in &groups {
        let kinds = policy
            .and_then(|p| p.raw().tools.get(&format!("{server}.{tool}")))
            .map(|spec| spec.value.args.clone())
            .unwrap_or_default();
        let cwd = policy
            .and_then(|p| p.servers().get(*server))
            .and_then(|s| s.spec.cwd.clone());
        let mut names: BTreeSet<&str> = group
            .iter()
            .flat_map(|c| c.args.keys().map(String::as_str))
            .collect();
        names.extend(kinds.keys().map(String::as_str));
        let mut args = Map::new();
        let mut notes = Vec::new();
        let mut too_broad = false;
        for name in names {
            let values: Vec<&Value> = group.iter().filter_map(|c| c.args.get(name)).collect();
            if values.is_empty() {
                notes.push(format!("`{name}`: declared but never seen; must be absent"));
                args.insert(name.to_owned(), json!({"present": false}));
                continue;
            }
            let s = suggest_arg(
                name,
                &values,
                kinds.get(name).copied(),
                cwd.as_deref(),
                options,
            );
            notes.extend(s.notes);
            too_broad |= s.too_broad;
            let Some(condition) = s.condition else {
                continue;
            };
            let condition = if values.len() < group.len() {
                notes.push(format!(
                    "`{name}`: absent in {} call(s)",
                    group.len() - values.len()
                ));
                json!({"any": [{"present": false}, condition]})
            } else {
                condition
            };
            args.insert(name.to_owned(), condition);
        }
        let first = group.first().map_or(0, |c| c.seq);
        let last = group.last().map_or(0, |c| c.seq);
        let mut id = format!("suggested-{server}-{}", id_part(tool));
        let mut n = 2;
        while !ids.insert(id.clone()) {
            id = format!("suggested-{server}-{}-{n}", id_part(tool));
            n += 1;
        }
        y.push('\n');
        let _ = writeln!(
            y,
            "  # {server}.{}: covers {} call(s), audit seq {first}..{last}",
            comment(tool),
            group.len()
        );
        for note in &notes {
            let _ = writeln!(y, "  #   {}", comment(note));
        }
        let _ = writeln!(y, "  - id: {id}");
        if too_broad {
            let _ = writeln!(y, "    enabled: false");
        }
        let _ = writeln!(y, "    when:");
        let _ = writeln!(y, "      server: {}", yaml_str(server));
        let _ = writeln!(y, "      tool: {}", yaml_str(&glob_literal(tool)));
        if !args.is_empty() {
            let _ = writeln!(y, "      args:");
            for (name, condition) in &args {
                let _ = writeln!(y, "        {}: {}", yaml_str(name), flow(condition));
            }
        }
        let _ = writeln!(y, "    decision: allow");
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn paths_group_under_common_directories_but_never_root() {
        let one = group_dirs(&set(&["/ws/a/x.txt", "/ws/a/y.txt"]), 4).unwrap();
        assert_eq!(one, ["/ws/a"]);
        let merged = group_dirs(&set(&["/ws/a/x", "/ws/b/y", "/ws/c/z"]), 2).unwrap();
        assert_eq!(merged, ["/ws"]);
        let apart = group_dirs(&set(&["/a/x", "/b/y", "/c/z"]), 2).unwrap_err();
        assert_eq!(apart.len(), 3);
        assert_eq!(group_dirs(&set(&["/tmp"]), 4).unwrap(), ["/tmp"]);
    }

    #[test]
    fn redacted_values_are_never_suggested() {
        let secret = json!("token [REDACTED:github_token]");
        let plain = json!("hello");
        let s = suggest_arg(
            "text",
            &[&secret, &plain],
            None,
            None,
            &SuggestOptions::default(),
        );
        assert_eq!(s.condition, Some(json!({"one_of": ["hello"]})));
        let only = suggest_arg("text", &[&secret], None, None, &SuggestOptions::default());
        assert_eq!(only.condition, Some(json!({"secret": false})));
    }

    #[test]
    fn urls_give_hosts_and_many_values_a_comment() {
        let a = json!("https://docs.rs/x");
        let b = json!("https://Docs.RS/y");
        let s = suggest_arg("url", &[&a, &b], None, None, &SuggestOptions::default());
        assert_eq!(
            s.condition,
            Some(json!({"host": ["docs.rs"], "scheme": ["https"]}))
        );
        let values: Vec<Value> = (0..10).map(|i| json!(format!("v{i}"))).collect();
        let refs: Vec<&Value> = values.iter().collect();
        let many = suggest_arg("q", &refs, None, None, &SuggestOptions::default());
        assert_eq!(many.condition, Some(json!({"type": "string"})));
    }
}
