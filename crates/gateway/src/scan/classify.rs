//! Suggested classification of a tool from its name, annotations and input schema. Nothing here
//! is trusted: the server wrote all of it. The scaffold says so next to every suggestion.

use portcullis_policy::Effect;
use serde_json::Value;

/// Name words and the effect they suggest. A name with several such words gets the strictest.
const WORDS: &[(&[&str], Effect)] = &[
    (
        &[
            "read", "get", "list", "search", "find", "query", "show", "view", "describe", "status",
            "diff", "log", "tree", "info", "stat", "lookup", "inspect", "count", "head", "tail",
        ],
        Effect::Read,
    ),
    (
        &[
            "write", "create", "edit", "update", "move", "rename", "add", "set", "put", "patch",
            "insert", "append", "modify", "save", "upload", "commit", "checkout", "reset", "mkdir",
            "copy", "replace", "merge", "rebase", "tag", "init", "branch",
        ],
        Effect::Write,
    ),
    (
        &[
            "delete", "remove", "rm", "unlink", "drop", "destroy", "purge", "erase", "truncate",
        ],
        Effect::Delete,
    ),
    (
        &[
            "fetch", "http", "https", "url", "uri", "browse", "download", "navigate", "request",
            "curl", "web", "scrape", "crawl",
        ],
        Effect::Network,
    ),
    (
        &[
            "send", "post", "email", "mail", "message", "notify", "reply", "comment", "publish",
            "sms", "chat", "tweet",
        ],
        Effect::Message,
    ),
    (
        &[
            "run", "exec", "execute", "shell", "command", "cmd", "eval", "spawn", "bash", "script",
            "terminal", "invoke", "process",
        ],
        Effect::Exec,
    ),
    (
        &[
            "deploy",
            "release",
            "rollout",
            "provision",
            "scale",
            "restart",
        ],
        Effect::Deploy,
    ),
    (&["sign", "signature", "attest"], Effect::Sign),
    (
        &[
            "pay", "payment", "charge", "transfer", "refund", "invoice", "purchase", "buy",
            "withdraw",
        ],
        Effect::Payment,
    ),
    (
        &[
            "user",
            "users",
            "role",
            "roles",
            "permission",
            "permissions",
            "grant",
            "revoke",
            "token",
            "tokens",
            "key",
            "keys",
            "credential",
            "credentials",
            "password",
            "secret",
            "secrets",
            "auth",
            "invite",
            "member",
            "members",
            "acl",
            "policy",
        ],
        Effect::Identity,
    ),
];

/// How strict an effect is, for picking between suggestions (higher is stricter).
fn rank(effect: Effect) -> u8 {
    match effect {
        Effect::Read => 0,
        Effect::Write => 1,
        Effect::Delete => 2,
        Effect::Network => 3,
        Effect::Message => 4,
        Effect::Exec => 5,
        Effect::Deploy | Effect::Sign => 6,
        Effect::Payment | Effect::Identity => 7,
        Effect::Unknown => 8,
    }
}

/// The words of a tool name: split at `_`, `-`, `.`, `/`, spaces and lower-to-upper case changes.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_lowercase() || c.is_numeric();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A suggested effect and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// The suggested effect.
    pub effect: Effect,
    /// Why, for the scaffold's comment.
    pub why: String,
}

/// Suggests an effect from the tool's name, made stricter (never looser) by its annotations.
#[must_use]
pub fn suggest_effect(name: &str, annotations: Option<&Value>) -> Suggestion {
    let mut best: Option<(Effect, String)> = None;
    for word in words(name) {
        for (list, effect) in WORDS {
            if list.contains(&word.as_str())
                && best.as_ref().is_none_or(|(b, _)| rank(*effect) > rank(*b))
            {
                best = Some((*effect, word.clone()));
            }
        }
    }
    let hint = |key: &str| {
        annotations
            .and_then(|a| a.get(key))
            .and_then(Value::as_bool)
    };
    let Some((effect, word)) = best else {
        let note = match hint("readOnlyHint") {
            Some(true) => " (annotations claim read-only; not trusted)",
            _ => "",
        };
        return Suggestion {
            effect: Effect::Unknown,
            why: format!("no known verb in the name{note}"),
        };
    };
    let mut why = format!("name word `{word}`");
    let mut effect = effect;
    if effect == Effect::Read {
        if hint("destructiveHint") == Some(true) || hint("readOnlyHint") == Some(false) {
            effect = Effect::Write;
            why.push_str("; annotations say it changes things, so write");
        } else if hint("openWorldHint") == Some(true) {
            effect = Effect::Network;
            why.push_str("; annotations say it reaches the open world, so network");
        }
    }
    Suggestion { effect, why }
}

/// Argument names read as paths.
const PATH_NAMES: &[&str] = &[
    "path",
    "file",
    "filename",
    "filepath",
    "directory",
    "dir",
    "folder",
    "source",
    "destination",
    "src",
    "dest",
];

/// The suggested argument kind (as written in a policy) of argument `name` with schema `schema`.
#[must_use]
pub fn suggest_kind(name: &str, schema: &Value) -> &'static str {
    let lower = name.to_lowercase();
    let ty = schema.get("type").and_then(Value::as_str);
    let is_array = ty == Some("array");
    let item_ty = schema
        .get("items")
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str);
    let singular = lower
        .strip_suffix("es")
        .filter(|s| PATH_NAMES.contains(s))
        .or_else(|| lower.strip_suffix('s'))
        .unwrap_or(&lower);
    let path_like = PATH_NAMES.contains(&singular)
        || ["_path", "_file", "_dir", "_directory"]
            .iter()
            .any(|s| singular.ends_with(s))
        || name.ends_with("Path")
        || name.ends_with("Paths");
    let url_like = matches!(singular, "url" | "uri" | "link" | "href" | "endpoint")
        || singular.ends_with("_url")
        || name.ends_with("Url");
    match (ty, is_array, item_ty) {
        (Some("string"), _, _) if path_like => "path",
        (Some("string"), _, _) if url_like => "url",
        (Some("string"), _, _) if matches!(lower.as_str(), "command" | "cmd") => "shell",
        (_, true, Some("string")) if path_like => "path[]",
        (_, true, Some("string")) if url_like => "url[]",
        (_, true, Some("string")) => "string[]",
        (Some("string"), _, _) => "string",
        (Some("integer"), _, _) => "integer",
        (Some("number"), _, _) => "number",
        (Some("boolean"), _, _) => "boolean",
        _ => "any",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_suggest_effects() {
        let e = |n: &str| suggest_effect(n, None).effect;
        assert_eq!(e("read_text_file"), Effect::Read);
        assert_eq!(e("write_file"), Effect::Write);
        assert_eq!(e("delete_file"), Effect::Delete);
        assert_eq!(e("runCommand"), Effect::Exec);
        assert_eq!(e("fetch"), Effect::Network);
        assert_eq!(e("send_email"), Effect::Message);
        assert_eq!(e("transfer_funds"), Effect::Payment);
        assert_eq!(e("add_user_role"), Effect::Identity);
        assert_eq!(e("frobnicate"), Effect::Unknown);
        assert_eq!(e("read_and_delete"), Effect::Delete);
    }

    #[test]
    fn annotations_only_make_it_stricter() {
        let destructive = json!({"destructiveHint": true});
        assert_eq!(
            suggest_effect("get_thing", Some(&destructive)).effect,
            Effect::Write
        );
        let read_only = json!({"readOnlyHint": true});
        assert_eq!(
            suggest_effect("delete_thing", Some(&read_only)).effect,
            Effect::Delete
        );
        assert_eq!(
            suggest_effect("frob", Some(&read_only)).effect,
            Effect::Unknown
        );
    }

    #[test]
    fn argument_kinds() {
        let s = json!({"type": "string"});
        let a = json!({"type": "array", "items": {"type": "string"}});
        assert_eq!(suggest_kind("path", &s), "path");
        assert_eq!(suggest_kind("paths", &a), "path[]");
        assert_eq!(suggest_kind("repo_path", &s), "path");
        assert_eq!(suggest_kind("url", &s), "url");
        assert_eq!(suggest_kind("command", &s), "shell");
        assert_eq!(suggest_kind("content", &s), "string");
        assert_eq!(suggest_kind("head", &json!({"type": "number"})), "number");
        assert_eq!(
            suggest_kind("x", &json!({"type": ["string", "null"]})),
            "any"
        );
    }
}
