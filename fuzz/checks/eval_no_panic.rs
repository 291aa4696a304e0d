//! Property of `eval_no_panic`: `evaluate` on arbitrary arguments against a fixed policy never
//! fails internally (a panic inside is caught and becomes `internal-error`, which this target
//! treats as a crash), and an allowed read is really inside the workspace and not a secret, by an
//! independent, deliberately simple oracle: the raw path percent-decoded up to three times, with
//! `\` as `/`, NFKC-folded, lower-cased and lexically normalized.

use portcullis_policy::{Call, CompiledPolicy, Decision, EvalContext, evaluate};
use unicode_normalization::UnicodeNormalization;

/// The fixed policy: reads under /ws allowed, secrets denied, one fetcher, one shell allow.
pub(crate) const POLICY: &str = r#"
version: 1
servers:
  fs: { command: [server], cwd: /ws, home: /home/u }
tools:
  fs.read_file: { effect: read, args: { path: path } }
  fs.fetch: { effect: network, args: { url: url } }
  fs.run: { effect: exec, args: { command: shell } }
rules:
  - id: read-ws
    when: { server: fs, tool: read_file, paths: { under: /ws } }
    decision: allow
  - id: deny-env
    when: { server: fs, paths: { glob: ["**/.env", "**/.ssh/**"] } }
    decision: deny
  - id: fetch-public
    when: { server: fs, tool: fetch, urls: { private_address: false, scheme: [http, https] } }
    decision: allow
  - id: run-ls
    when: { server: fs, tool: run, args: { command: { command: ["ls *"] } } }
    decision: allow
"#;

fn policy() -> &'static CompiledPolicy {
    static POLICY_ONCE: std::sync::OnceLock<CompiledPolicy> = std::sync::OnceLock::new();
    POLICY_ONCE.get_or_init(|| {
        CompiledPolicy::from_yaml(POLICY, "eval.yaml", &|_| None).expect("the fixed policy")
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
        if let (Some(b'%'), Some(hi), Some(lo)) = (bytes.get(i), hex(i + 1), hex(i + 2)) {
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The oracle's single reading of a path argument.
fn oracle(raw: &str) -> String {
    let mut text = raw.to_owned();
    for _ in 0..3 {
        text = percent_decode(&text);
    }
    let text: String = text
        .replace('\\', "/")
        .nfkc()
        .collect::<String>()
        .to_lowercase();
    let absolute = if text.starts_with('/') {
        text
    } else {
        format!("/ws/{text}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for component in absolute.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Panics when the property fails for `data` (JSON arguments, or a raw string as every argument).
pub(crate) fn check(data: &[u8]) {
    let args = match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => {
            let text = String::from_utf8_lossy(data).into_owned();
            let value = serde_json::json!({"path": text, "url": text, "command": text});
            value.as_object().cloned().unwrap_or_default()
        }
    };
    for tool in ["read_file", "fetch", "run"] {
        let call = Call::tool_call("fs", tool, args.clone());
        let verdict = evaluate(policy(), &call, &EvalContext::default());
        assert!(
            !verdict.rules.iter().any(|r| r == "internal-error"),
            "the evaluator failed on {tool} {args:?}: {}",
            verdict.reason
        );
        if tool == "read_file" && verdict.decision == Decision::Allow {
            let raw = args
                .get("path")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let seen = oracle(raw);
            assert!(
                seen == "/ws" || seen.starts_with("/ws/"),
                "allowed {raw:?}, which reads as {seen:?}"
            );
            // Mirrors the policy's globs: `**/.env` (the file itself) and `**/.ssh/**`.
            let components: Vec<&str> = seen
                .split('/')
                .map(|c| c.trim_end_matches(['.', ' ']))
                .collect();
            let env = components.last().is_some_and(|c| *c == ".env");
            let ssh = components
                .iter()
                .take(components.len().saturating_sub(1))
                .any(|c| *c == ".ssh");
            assert!(
                !env && !ssh,
                "allowed {raw:?}, which reads as the secret {seen:?}"
            );
        }
    }
}
