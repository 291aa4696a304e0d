//! `portcullis test`: a file of calls with expected decisions, for CI; and a gap finder.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use portcullis_policy::{Call, CompiledPolicy, Decision, EvalContext, evaluate};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::policy_file::{DEFAULT_POLICY, load_or_error};

/// Run a file of calls with expected decisions against a policy.
///
/// CASES.yaml:
///   cases:
///     - name: read a file in the workspace
///       call: { server: fs, tool: read_text_file, arguments: { path: /workspace/a } }
///       expect: allow              # allow | deny | require_approval | kill_session
///       rules: [read-workspace]    # optional: the exact contributing rule ids
///
/// Prints a line per failing case and a summary; exits 1 if any case fails.
///
/// With --gaps, each case is also mutated the way a lenient server might read it differently
/// — numbers sent as strings ("1000" for 1000), an extra argument, argument names in another
/// case — and any mutation that gets a looser decision than the original is reported as a gap.
///
/// Examples:
///   portcullis test --policy examples/filesystem.yaml examples/filesystem.cases.yaml
///   portcullis test --policy portcullis.yaml cases.yaml --gaps
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// The policy file.
    #[arg(long, default_value = DEFAULT_POLICY, value_name = "FILE")]
    policy: PathBuf,
    /// The cases file.
    #[arg(value_name = "CASES.yaml")]
    cases: PathBuf,
    /// Also look for argument shapes that get a looser decision (gap finder).
    #[arg(long)]
    gaps: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    call: Value,
    expect: Decision,
    #[serde(default)]
    rules: Option<Vec<String>>,
}

pub(crate) fn run(args: &TestArgs) -> Result<u8> {
    let policy = load_or_error(&args.policy)?;
    let text = std::fs::read_to_string(&args.cases)
        .with_context(|| format!("cannot read cases `{}`", args.cases.display()))?;
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    let file: CaseFile = serde_saphyr::from_str_with_options(&text, options)
        .map_err(|e| anyhow::anyhow!("{}: {}", args.cases.display(), e))?;
    let ctx = EvalContext::default();
    let (mut passed, mut failed, mut gaps) = (0usize, 0usize, 0usize);
    for (i, case) in file.cases.iter().enumerate() {
        let call = match Call::from_json(&case.call) {
            Ok(c) => c,
            Err(e) => {
                println!("FAIL {} (case {}): invalid call: {e}", case.name, i + 1);
                failed += 1;
                continue;
            }
        };
        let got = evaluate(&policy, &call, &ctx);
        let rules_ok = case.rules.as_ref().is_none_or(|want| {
            let mut a = want.clone();
            let mut b = got.rules.clone();
            a.sort();
            b.sort();
            a == b
        });
        if got.decision == case.expect && rules_ok {
            passed += 1;
        } else {
            failed += 1;
            let want_rules = case
                .rules
                .as_ref()
                .map(|r| format!(" by [{}]", r.join(", ")))
                .unwrap_or_default();
            println!(
                "FAIL {}: expected {}{want_rules}, got {} by [{}] — {}",
                case.name,
                case.expect,
                got.decision,
                got.rules.join(", "),
                got.reason
            );
        }
        if args.gaps {
            gaps += find_gaps(&policy, &call, got.decision, &case.name);
        }
    }
    println!("{passed} passed, {failed} failed");
    if args.gaps {
        println!("{gaps} gap{} found", if gaps == 1 { "" } else { "s" });
    }
    Ok(if failed > 0 {
        crate::EXIT_FAILED
    } else {
        crate::EXIT_OK
    })
}

/// Mutate a call the ways lenient servers read arguments and report looser decisions.
fn find_gaps(policy: &CompiledPolicy, call: &Call, original: Decision, name: &str) -> usize {
    let ctx = EvalContext::default();
    let mut found = 0;
    let mut report = |what: String, mutated: &Call| {
        let d = evaluate(policy, mutated, &ctx);
        if d.decision < original {
            found += 1;
            println!(
                "GAP  {name}: {what} turns {original} into {} (by [{}])",
                d.decision,
                d.rules.join(", ")
            );
        }
    };
    for (key, value) in &call.arguments {
        if let Value::Number(n) = value {
            let mut m = call.clone();
            m.arguments
                .insert(key.clone(), Value::String(n.to_string()));
            report(format!("sending `{key}` as the string \"{n}\""), &m);
        }
        for variant in [key.to_uppercase(), capitalize(key)] {
            if variant != *key {
                let mut m = call.clone();
                let mut args = Map::new();
                for (k, v) in &call.arguments {
                    args.insert(
                        if k == key { variant.clone() } else { k.clone() },
                        v.clone(),
                    );
                }
                m.arguments = args;
                report(
                    format!("naming the argument `{variant}` instead of `{key}`"),
                    &m,
                );
            }
        }
    }
    let mut extra = call.clone();
    extra
        .arguments
        .insert("__portcullis_extra".into(), Value::String("x".into()));
    if evaluate(policy, &extra, &ctx).decision == Decision::Allow && original == Decision::Allow {
        found += 1;
        println!(
            "GAP  {name}: an extra, undeclared argument is still allowed (pin the tool's schema to deny it)"
        );
    }
    found
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
