//! Loading a policy file: strict YAML → [`PolicyFile`], environment references resolved.

use serde_saphyr::{DuplicateKeyPolicy, Options, budget::Budget};

use crate::error::{PolicyError, PolicyErrors, SourcePos};
use crate::model::{POLICY_VERSION, PolicyFile, ServerSpec};

/// The largest policy file accepted: 4 MiB. A policy is written by people; anything larger is a
/// mistake or an attack on the parser.
pub const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;
/// The deepest YAML nesting accepted.
pub const MAX_POLICY_DEPTH: usize = 64;

fn yaml_options() -> Options {
    let mut options = Options::default();
    // Parsers disagree on which of two duplicate keys wins; a policy must not be ambiguous.
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    let mut budget = Budget::default();
    budget.max_depth = MAX_POLICY_DEPTH;
    budget.max_reader_input_bytes = Some(MAX_POLICY_BYTES);
    // Anchors and aliases can expand a small file into a huge one ("billion laughs").
    budget.max_aliases = 1000;
    budget.max_nodes = 250_000;
    options.budget = Some(budget);
    options
}

/// Parse the text of a policy file. `file` is only used in messages. `${VAR}` references in
/// server settings are *not* resolved here (see [`resolve_env`]), so that a policy's hash and
/// its packed bundle never contain secrets from the environment.
pub fn parse_policy(text: &str, file: &str) -> Result<PolicyFile, PolicyErrors> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::new(
            file,
            format!(
                "the policy is {} bytes, more than the limit of {MAX_POLICY_BYTES}",
                text.len()
            ),
        )
        .help("split the policy or remove generated content")
        .into());
    }
    if text.starts_with('\u{feff}') {
        return Err(
            PolicyError::new(file, "the policy starts with a byte-order mark")
                .help("save the file as UTF-8 without BOM")
                .into(),
        );
    }
    let policy: PolicyFile = serde_saphyr::from_str_with_options(text, yaml_options())
        .map_err(|e| yaml_error(file, &e))?;
    if policy.version != POLICY_VERSION {
        return Err(PolicyError::new(
            file,
            format!("unsupported policy version `{}`", policy.version),
        )
        .field("version")
        .at(locate_top_level(text, "version"))
        .help(format!(
            "this build of portcullis reads `version: {POLICY_VERSION}`"
        ))
        .into());
    }
    Ok(policy)
}

fn yaml_error(file: &str, e: &serde_saphyr::Error) -> PolicyError {
    let pos = e.location().and_then(|l| {
        (l.line() > 0).then(|| SourcePos {
            line: l.line(),
            column: l.column(),
        })
    });
    let message = e.without_snippet().to_string();
    // The library prefixes its own location; keep only the message.
    let message = friendly_budget(&strip_location_suffix(&message));
    let help = if message.contains("parser limit") {
        "simplify the policy: it is deeper, larger or uses more aliases than a policy needs"
    } else if message.contains("unknown field") {
        "remove the field or correct its spelling; docs/policy.md lists every field"
    } else if message.contains("duplicate") {
        "each key may appear only once in a mapping; remove or merge the repeated key"
    } else if message.contains("missing field") {
        "add the field; docs/policy.md shows an example"
    } else if message.contains("unknown variant") {
        "use one of the values listed"
    } else {
        "fix the YAML at this position; docs/policy.md shows the expected shape"
    };
    PolicyError::new(file, message).at(pos).help(help)
}

fn strip_location_suffix(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    let cut = [" at line ", " (defined at", " (defined"]
        .iter()
        .filter_map(|m| first.find(m))
        .min();
    match cut {
        Some(i) => first.get(..i).unwrap_or(first).to_owned(),
        None => first.to_owned(),
    }
}

/// The parser reports breached resource budgets in its own debug notation; say it in words.
fn friendly_budget(message: &str) -> String {
    if !message.contains("budget") {
        return message.to_owned();
    }
    let what = if message.contains("Depth") {
        format!("nests deeper than {MAX_POLICY_DEPTH} levels")
    } else if message.contains("Alias") || message.contains("Anchor") {
        "uses more aliases or anchors than allowed (aliases can expand a small file into a huge one)".to_owned()
    } else if message.contains("Nodes") || message.contains("Events") {
        "has more YAML nodes than allowed".to_owned()
    } else if message.contains("Bytes") || message.contains("bytes") {
        format!("is larger than {MAX_POLICY_BYTES} bytes")
    } else {
        "exceeds a resource limit".to_owned()
    };
    format!("the policy {what} (a parser limit)")
}

/// Resolve `${VAR}` references in every server's settings and in `store` from `lookup` (the
/// environment, passed in so this crate stays pure). `$${` writes a literal `${`. A missing
/// variable is an error.
pub fn resolve_env(
    policy: &mut PolicyFile,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), PolicyErrors> {
    let mut errors = Vec::new();
    for (name, server) in &mut policy.servers {
        let pos = span_pos(server.referenced);
        let before = errors.len();
        resolve_server(name, &mut server.value, file, lookup, &mut errors);
        for e in errors.iter_mut().skip(before) {
            e.pos = e.pos.or(pos);
        }
    }
    if let Some(store) = &mut policy.store {
        match substitute(store, lookup) {
            Ok(v) => *store = v,
            Err(msg) => errors.push(PolicyError::new(file, msg).field("store").help(
                "set the variable in the gateway's environment, or write `$${` for a literal `${`",
            )),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PolicyErrors(errors))
    }
}

/// The position of a top-level key (`hide:`, `auth:`) in the policy text, for settings the
/// parser gives no span for.
pub(crate) fn locate_top_level(text: &str, key: &str) -> Option<SourcePos> {
    let needle = format!("{key}:");
    text.lines()
        .position(|l| l.starts_with(&needle))
        .and_then(|i| u64::try_from(i + 1).ok())
        .map(|line| SourcePos { line, column: 1 })
}

/// The position of a spanned node, when the parser recorded one.
pub(crate) fn span_pos(l: serde_saphyr::Location) -> Option<SourcePos> {
    (l.line() > 0).then(|| SourcePos {
        line: l.line(),
        column: l.column(),
    })
}

fn resolve_server(
    name: &str,
    server: &mut ServerSpec,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<PolicyError>,
) {
    let mut fix = |field: String, value: &mut String| match substitute(value, lookup) {
        Ok(v) => *value = v,
        Err(msg) => errors.push(PolicyError::new(file, msg).field(field).help(
            "set the variable in the gateway's environment, or write `$${` for a literal `${`",
        )),
    };
    if let Some(command) = &mut server.command {
        for (i, word) in command.iter_mut().enumerate() {
            fix(format!("servers.{name}.command[{i}]"), word);
        }
    }
    if let Some(cwd) = &mut server.cwd {
        fix(format!("servers.{name}.cwd"), cwd);
    }
    if let Some(home) = &mut server.home {
        fix(format!("servers.{name}.home"), home);
    }
    if let Some(url) = &mut server.url {
        fix(format!("servers.{name}.url"), url);
    }
    for (k, v) in &mut server.env {
        fix(format!("servers.{name}.env.{k}"), v);
    }
    for (k, v) in &mut server.headers {
        fix(format!("servers.{name}.headers.{k}"), v);
    }
}

/// Replace `${VAR}` with its value; `$${` is a literal `${`.
pub fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i..).unwrap_or_default();
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in `{text}`"))?;
            let var = tail.get(..end).unwrap_or_default();
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name `{var}` in `{text}`"));
            }
            let value =
                lookup(var).ok_or_else(|| format!("environment variable `{var}` is not set"))?;
            out.push_str(&value);
            rest = tail.get(end + 1..).unwrap_or_default();
        } else {
            out.push('$');
            rest = after.get(1..).unwrap_or_default();
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
