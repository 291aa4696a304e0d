//! A loop of evaluations for counting instructions with callgrind (see docs/performance.md,
//! "Where the time went, commit by commit"): not a bench, it measures nothing by itself.
//!
//! ```text
//! cargo build --release -p portcullis-policy --example eval_loop
//! valgrind --tool=callgrind target/release/examples/eval_loop fetch 1000 [from-json]
//! valgrind --tool=callgrind target/release/examples/eval_loop fetch 3000 [from-json]
//! ```
//!
//! (the 3,000-call count minus the 1,000-call count, divided by 2,000, is one call: policy
//! compilation and the one-time build of the secret detector cancel out). Calls: `read`,
//! `traversal`, `write`, `secret`, `fetch`, those of the benches. With `from-json` each turn
//! also builds the `Call` from its JSON form, as the engine comparison bench times it.

use std::hint::black_box;
use std::process::ExitCode;

use portcullis_policy::{Call, CompiledPolicy, EvalContext, evaluate};
use serde_json::{Value, json};

/// The 15-rule policy of the benches.
const POLICY: &str = include_str!("../benches/data/realistic-15.yaml");

fn call(name: &str) -> Option<Value> {
    let (server, tool, arguments) = match name {
        "read" => (
            "fs",
            "read_text_file",
            json!({ "path": "/workspace/src/main.rs" }),
        ),
        "traversal" => (
            "fs",
            "read_text_file",
            json!({ "path": "/workspace/../etc/passwd" }),
        ),
        "write" => (
            "fs",
            "write_file",
            json!({ "path": "/workspace/src/lib.rs", "content": "pub fn answer() -> u32 { 42 }\n" }),
        ),
        "secret" => ("fs", "read_text_file", json!({ "path": "/workspace/.env" })),
        "fetch" => (
            "fetch",
            "fetch",
            json!({ "url": "https://docs.rs/serde/latest/serde/" }),
        ),
        _ => return None,
    };
    Some(json!({ "server": server, "tool": tool, "arguments": arguments }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(Ok(turns))) = (args.first(), args.get(1).map(|n| n.parse::<usize>()))
    else {
        eprintln!("usage: eval_loop read|traversal|write|secret|fetch TURNS [from-json]");
        return ExitCode::from(2);
    };
    let from_json = args.get(2).is_some_and(|a| a == "from-json");
    let Some(value) = call(name) else {
        eprintln!("unknown call `{name}`");
        return ExitCode::from(2);
    };
    let policy = match CompiledPolicy::from_yaml(POLICY, "realistic-15.yaml", &|_| None) {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let parsed = match Call::from_json(&value) {
        Ok(call) => call,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut last = None;
    for _ in 0..turns {
        let decision = if from_json {
            Call::from_json(black_box(&value))
                .map(|c| evaluate(black_box(&policy), &c, &EvalContext::default()).decision)
        } else {
            Ok(evaluate(
                black_box(&policy),
                black_box(&parsed),
                &EvalContext::default(),
            )
            .decision)
        };
        last = Some(decision);
    }
    println!("{name} x{turns}: {last:?}");
    ExitCode::SUCCESS
}
