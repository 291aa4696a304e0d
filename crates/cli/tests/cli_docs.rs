//! `docs/cli.md` is the `--help` of every command, so the CLI reference can never drift from the
//! binary. Regenerate it with `UPDATE_DOCS=1 cargo test -p portcullis --test cli_docs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use std::path::Path;
use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .expect("run portcullis --help");
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// Subcommands listed in the top-level help (hidden ones are not listed there).
fn subcommands(top: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_list = false;
    for line in top.lines() {
        if line.starts_with("Commands:") {
            in_list = true;
            continue;
        }
        if in_list {
            if !line.starts_with("  ") {
                break;
            }
            if let Some(name) = line.split_whitespace().next()
                && name != "help"
                && line.starts_with("  ")
                && !line.starts_with("   ")
            {
                names.push(name.to_owned());
            }
        }
    }
    names
}

fn generate() -> String {
    let top = help(&[]);
    let mut doc = String::from(
        "# Command-line reference\n\n\
         Generated from `portcullis --help` by `crates/cli/tests/cli_docs.rs`; a test fails when it\n\
         drifts from the binary. Exit status everywhere: 0 ok, 1 denied / check, test or verify\n\
         failed, 2 usage or runtime error.\n\n",
    );
    doc.push_str("## portcullis\n\n```text\n");
    doc.push_str(&top);
    doc.push_str("```\n");
    for name in subcommands(&top) {
        let text = help(&[&name]);
        doc.push_str(&format!("\n## portcullis {name}\n\n```text\n{text}```\n"));
        for sub in subcommands(&text) {
            let text = help(&[&name, &sub]);
            doc.push_str(&format!(
                "\n### portcullis {name} {sub}\n\n```text\n{text}```\n"
            ));
        }
    }
    doc
}

#[test]
fn cli_reference_matches_the_binary() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let expected = generate();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == expected,
        "docs/cli.md is out of date: run `UPDATE_DOCS=1 cargo test -p portcullis --test cli_docs`"
    );
}
