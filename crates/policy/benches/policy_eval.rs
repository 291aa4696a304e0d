//! Nanoseconds per decision, from an already-parsed [`Call`] to a [`Decision`].
//!
//! Three policies: a realistic 15-rule MCP policy (filesystem, git, fetch and shell servers;
//! denies on secrets, allows under a workspace, approvals on writes) and generated policies of
//! 1,000 and 10,000 rules spread over many servers and tools, so the per-server/per-tool index
//! matters, with a share of rules that apply to any tool (which the index cannot skip). The
//! generated policies contain the 15 realistic rules, so the same three calls get the same
//! decisions in every policy:
//!
//! - an allowed read under the workspace (`allow`),
//! - a traversal out of it (`/workspace/../etc/passwd`, `deny`),
//! - a write (`require_approval`).
//!
//! Run: `cargo bench -p portcullis-policy --bench policy_eval -- --warm-up-time 1 --measurement-time 3`.
//! Figures are in `docs/performance.md`.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a bench whose fixture is broken must stop loudly"
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_policy::{Call, CompiledPolicy, Decision, EvalContext, evaluate};
use serde_json::{Map, Value, json};

/// The realistic policy, as a policy author would write it.
const REALISTIC: &str = include_str!("data/realistic-15.yaml");

/// A small deterministic generator (xorshift), so every run benches the same policy.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const GENERATED_SERVERS: u64 = 50;
const TOOLS_PER_SERVER: u64 = 20;

/// The realistic policy plus `total - 15` generated rules over 50 more servers of 20 tools each.
/// 90% of the generated rules name one server and literal tools (the index sends a call only
/// to its own bucket); 9% name a server and no tool or a tool glob, and 1% name no server at
/// all: those are candidates for every call to that server (or to every server). For the `fs`
/// calls benched that is 17 generated candidates at 1,000 rules and 103 at 10,000. None of them
/// changes the decision on the benchmarked calls, but the any-tool ones are evaluated.
fn generated(total: usize) -> CompiledPolicy {
    let mut policy: Value = serde_saphyr::from_str(REALISTIC).unwrap();
    let real_rules = policy["rules"].as_array().unwrap().len();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let servers = policy["servers"].as_object_mut().unwrap();
    for s in 0..GENERATED_SERVERS {
        servers.insert(
            format!("s{s}"),
            json!({ "command": [format!("server-{s}")], "cwd": "/data" }),
        );
    }
    let tools = policy["tools"].as_object_mut().unwrap();
    for s in 0..GENERATED_SERVERS {
        for t in 0..TOOLS_PER_SERVER {
            let effect = ["read", "write", "delete", "network"][(t % 4) as usize];
            tools.insert(
                format!("s{s}.t{t}"),
                json!({ "effect": effect, "args": { "path": "path" } }),
            );
        }
    }
    let real_servers = ["fs", "git", "fetch", "shell"];
    let rules = policy["rules"].as_array_mut().unwrap();
    for i in 0..total.saturating_sub(real_rules) {
        let id = format!("gen-{i}");
        let roll = rng.below(100);
        let server = if rng.below(20) == 0 {
            real_servers[rng.below(4) as usize].to_owned()
        } else {
            format!("s{}", rng.below(GENERATED_SERVERS))
        };
        let tool = format!("t{}", rng.below(TOOLS_PER_SERVER));
        let dir = format!("/data/{}", rng.below(1000));
        let rule = match roll {
            // Literal server and tool: indexed.
            0..=29 => json!({ "id": id, "decision": "allow",
                "when": { "server": server, "tool": tool, "args": { "path": { "under": dir } } } }),
            30..=59 => json!({ "id": id, "decision": "deny",
                "when": { "server": server, "tool": tool, "args": { "path": { "glob": ["**/*.key", "**/private/**"] } } } }),
            60..=89 => json!({ "id": id, "decision": "require_approval",
                "when": { "server": server, "tool": [tool, format!("t{}", rng.below(TOOLS_PER_SERVER))], "effect": ["write", "delete"] } }),
            // Any tool of one server: evaluated for every call to it.
            90..=94 => json!({ "id": id, "decision": "deny",
                "when": { "server": server, "paths": { "glob": format!("**/gen-{i}/**") } } }),
            95..=98 => json!({ "id": id, "decision": "deny",
                "when": { "server": server, "tool": "*_admin", "effect": "delete" } }),
            // Any server, any tool: evaluated for every call.
            _ => json!({ "id": id, "decision": "deny",
                "when": { "effect": ["payment", "sign"], "principal": format!("blocked-{i}") } }),
        };
        rules.push(rule);
    }
    assert_eq!(rules.len(), total);
    // JSON is YAML: the policy goes through the same parser as a file would.
    let text = serde_json::to_string(&policy).unwrap();
    CompiledPolicy::from_yaml(&text, "generated.yaml", &|_| None).unwrap()
}

fn call(tool: &str, args: Value) -> Call {
    let args: Map<String, Value> = args.as_object().unwrap().clone();
    Call::tool_call("fs", tool, args)
}

fn calls() -> [(&'static str, Call, Decision); 3] {
    [
        (
            "allowed_read",
            call(
                "read_text_file",
                json!({ "path": "/workspace/src/main.rs" }),
            ),
            Decision::Allow,
        ),
        (
            "denied_traversal",
            call(
                "read_text_file",
                json!({ "path": "/workspace/../etc/passwd" }),
            ),
            Decision::Deny,
        ),
        (
            "approval_write",
            call(
                "write_file",
                json!({ "path": "/workspace/src/lib.rs", "content": "pub fn answer() -> u32 { 42 }\n" }),
            ),
            Decision::RequireApproval,
        ),
    ]
}

fn bench_policy(c: &mut Criterion, name: &str, policy: &CompiledPolicy) {
    let ctx = EvalContext::default();
    let mut group = c.benchmark_group(format!("policy_eval/{name}"));
    for (label, call, expected) in calls() {
        // A bench that measures the wrong decision measures nothing.
        assert_eq!(
            evaluate(policy, &call, &ctx).decision,
            expected,
            "{name}/{label}"
        );
        group.bench_with_input(BenchmarkId::from_parameter(label), &call, |b, call| {
            b.iter(|| evaluate(black_box(policy), black_box(call), &ctx).decision);
        });
    }
    group.finish();
}

fn policy_eval(c: &mut Criterion) {
    let realistic = CompiledPolicy::from_yaml(REALISTIC, "realistic.yaml", &|_| None).unwrap();
    assert_eq!(realistic.rule_count(), 15);
    bench_policy(c, "rules_15", &realistic);
    let thousand = generated(1_000);
    assert_eq!(thousand.rule_count(), 1_000);
    bench_policy(c, "rules_1000", &thousand);
    let ten_thousand = generated(10_000);
    assert_eq!(ten_thousand.rule_count(), 10_000);
    bench_policy(c, "rules_10000", &ten_thousand);
}

criterion_group!(benches, policy_eval);
criterion_main!(benches);
