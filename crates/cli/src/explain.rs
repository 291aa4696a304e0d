//! `portcullis explain`: one call in, the decision and its full trace out.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use portcullis_mcp::{Limits, parse_json};
use portcullis_policy::{Call, Decision, EvalContext, Evaluation, Tri, explain};
use serde_json::{Value, json};

use crate::policy_file::{DEFAULT_POLICY, LoadFailure, load, read_input};

/// Explain the decision on one call, with its full trace.
///
/// Shows which rules matched, which condition was unknown and why, and which reading of an
/// argument made it so.
///
/// The call is a JSON object:
///   {"server": "fs", "tool": "read_text_file", "arguments": {"path": "/workspace/a"},
///    "method": "tools/call", "principal": "alice", "agent": "coder", "session": "s1",
///    "labels": ["secret"], "time": "2026-01-05T09:30:00Z",
///    "annotations": {"readOnlyHint": true, "destructiveHint": false, "vetted": true}}
/// Only server and tool are required. It is parsed strictly: duplicate keys are an error.
/// `annotations` are the tool's MCP annotations as the server would list them, with `vetted`
/// saying whether the gateway would have approved the definition under `pin:`.
///
/// With --json, one JSON object is printed with at least decision, rules, reason and effect
/// (the stable machine interface). The exit status is 0 whatever the decision; it is non-zero
/// only when no decision could be made (unreadable policy or call), and then the decision
/// printed is deny.
///
/// Examples:
///   portcullis explain --policy portcullis.yaml \
///     --call '{"server":"fs","tool":"read_text_file","arguments":{"path":"/workspace/a.txt"}}'
///   portcullis explain --policy portcullis.yaml --call @call.json --json
///   echo '{"server":"fs","tool":"write_file"}' | portcullis explain --call - --json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ExplainArgs {
    /// The policy file.
    #[arg(long, default_value = DEFAULT_POLICY, value_name = "FILE")]
    policy: PathBuf,
    /// The call: inline JSON, `@FILE`, or `-` for standard input.
    #[arg(long, value_name = "JSON")]
    call: String,
    /// Print one JSON object instead of the human-readable trace.
    #[arg(long)]
    json: bool,
}

fn undecided(json: bool, why: &str) -> u8 {
    if json {
        let out = json!({
            "decision": "deny",
            "rules": ["invalid-input"],
            "reason": why,
            "effect": "unknown",
            "error": why,
        });
        println!("{out}");
    } else {
        println!("decision: deny (no decision could be made)");
    }
    eprintln!("error: {why}");
    crate::EXIT_ERROR
}

pub(crate) fn run(args: &ExplainArgs) -> Result<u8> {
    let policy = match load(&args.policy) {
        Ok(p) => p,
        Err(LoadFailure::Io(e)) => return Ok(undecided(args.json, &format!("{e:#}"))),
        Err(LoadFailure::Invalid(msg)) => return Ok(undecided(args.json, &msg)),
    };
    let bytes = match read_input(&args.call) {
        Ok(b) => b,
        Err(e) => return Ok(undecided(args.json, &format!("{e:#}"))),
    };
    let value = match parse_json(&bytes, &Limits::default()) {
        Ok(v) => v,
        Err(e) => {
            return Ok(undecided(
                args.json,
                &format!("the call is not valid JSON: {e}"),
            ));
        }
    };
    let call = match Call::from_json(&value) {
        Ok(c) => c,
        Err(e) => return Ok(undecided(args.json, &format!("invalid call: {e}"))),
    };
    // Resolve symlinks on this machine, as the gateway does for stdio servers that share its
    // filesystem, so `explain` gives the verdict the gateway would.
    let resolver = portcullis_gateway::FsResolver::new();
    let ctx = EvalContext {
        resolver: Some(&resolver),
    };
    let evaluation = explain(&policy, &call, &ctx);
    if args.json {
        println!("{}", to_json(&evaluation, policy.sha256()));
    } else {
        print_human(&evaluation, &call);
    }
    Ok(crate::EXIT_OK)
}

fn to_json(e: &Evaluation, sha: &str) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or_else(|_| json!({"decision": "deny"}));
    if let Value::Object(map) = &mut v {
        map.insert("policy_sha256".into(), Value::String(sha.to_owned()));
        if !map.contains_key("trace") {
            map.insert("trace".into(), Value::Array(Vec::new()));
        }
    }
    v
}

fn print_human(e: &Evaluation, call: &Call) {
    println!("decision:   {} ({})", e.decision, e.rules.join(", "));
    println!(
        "call:       {} {} on server `{}`",
        call.method, call.tool, call.server
    );
    println!("effect:     {}", e.effect);
    println!("reason:     {}", e.reason);
    if e.decision != Decision::Allow {
        println!("agent sees: {} [{}]", e.public_reason, e.reason_class);
    }
    if let Some(a) = &e.approval {
        let ttl = a
            .ttl
            .map_or_else(|| "default".to_owned(), |t| t.to_string());
        println!("approval:   ttl {ttl}");
    }
    for (rule, limit) in &e.limits {
        println!("limit:      {rule}: {limit:?}");
    }
    if !e.taint.is_empty() {
        println!("taint:      {}", e.taint.join(", "));
    }
    if e.trace.is_empty() {
        println!("rules:      none of the rules could match this call");
        return;
    }
    println!("rules considered:");
    for t in &e.trace {
        let verdict = if t.contributed {
            "contributed"
        } else {
            "did not contribute"
        };
        let unless = match t.unless {
            Some(u) => format!(", unless {}", word(u)),
            None => String::new(),
        };
        println!(
            "  {} ({}): when {}{unless} → {verdict}",
            t.rule,
            t.decision,
            word(t.when)
        );
        for n in &t.notes {
            println!("      {n}");
        }
    }
}

fn word(t: Tri) -> &'static str {
    match t {
        Tri::True => "true",
        Tri::False => "false",
        Tri::Unknown => "unknown",
    }
}
