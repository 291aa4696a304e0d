//! Loading tests: strict YAML, every error with file:line:column, a message and a `help`.

use super::*;

/// The one error a text produces, or a panic naming what loaded instead.
fn error(text: &str) -> PolicyError {
    match parse_policy(text, "p.yaml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(PolicyErrors(mut errors)) => {
            assert_eq!(errors.len(), 1, "{errors:?}");
            errors.remove(0)
        }
    }
}

fn at(line: u64, column: u64) -> Option<SourcePos> {
    Some(SourcePos { line, column })
}

/// Assert position, message substring and help substring, and that Display shows them all.
fn assert_error(e: &PolicyError, pos: Option<SourcePos>, message: &str, help: &str) {
    assert_eq!(e.file, "p.yaml");
    assert_eq!(e.pos, pos, "{e}");
    assert!(
        e.message.contains(message),
        "message {:?} lacks {message:?}",
        e.message
    );
    let h = e.help.as_deref().unwrap_or_default();
    assert!(h.contains(help), "help {h:?} lacks {help:?}");
    let shown = e.to_string();
    if let Some(p) = pos {
        assert!(
            shown.starts_with(&format!("p.yaml:{}:{}: ", p.line, p.column)),
            "{shown}"
        );
    }
    assert!(shown.contains(&format!("\n  help: {h}")), "{shown}");
}

const UNKNOWN_FIELD_HELP: &str = "remove the field or correct its spelling";

#[test]
fn accepts_a_minimal_policy() {
    let p = parse_policy("version: 1\n", "p.yaml").unwrap();
    assert_eq!(p.version, 1);
    assert!(p.rules.is_empty() && p.servers.is_empty());
}

#[test]
fn rejects_an_unknown_top_level_field() {
    let e = error("version: 1\nservrs: {}\n");
    assert_error(
        &e,
        at(2, 1),
        "unknown field `servrs`, expected one of version, mode",
        UNKNOWN_FIELD_HELP,
    );
}

#[test]
fn rejects_an_unknown_field_in_a_rule() {
    let e = error("version: 1\nrules:\n  - id: a\n    when: { server: fs }\n    decison: allow\n");
    assert_error(&e, at(5, 5), "unknown field `decison`", UNKNOWN_FIELD_HELP);
}

#[test]
fn rejects_an_unknown_field_in_when_and_in_a_condition() {
    let e = error(
        "version: 1\nrules:\n  - id: a\n    when: { server: fs, unles: {} }\n    decision: allow\n",
    );
    assert_error(
        &e,
        at(4, 25),
        "unknown field `unles`, expected one of server, tool",
        UNKNOWN_FIELD_HELP,
    );
    let e = error(
        "version: 1\nrules:\n  - id: a\n    when: { server: fs, args: { path: { undr: /ws } } }\n    decision: allow\n",
    );
    assert_error(
        &e,
        at(4, 41),
        "unknown field `undr`, expected one of equals, one_of",
        UNKNOWN_FIELD_HELP,
    );
}

#[test]
fn rejects_an_unknown_field_in_a_server_and_a_tool() {
    let e = error("version: 1\nservers:\n  fs: { command: [x], comand: [y] }\n");
    assert_error(&e, at(3, 23), "unknown field `comand`", UNKNOWN_FIELD_HELP);
    let e = error("version: 1\ntools:\n  fs.read: { effect: read, arg: {} }\n");
    assert_error(&e, at(3, 28), "unknown field `arg`", UNKNOWN_FIELD_HELP);
}

#[test]
fn rejects_duplicate_keys_at_any_depth() {
    let help = "each key may appear only once in a mapping";
    assert_error(
        &error("version: 1\nversion: 1\n"),
        at(2, 1),
        "duplicate mapping key: version",
        help,
    );
    let e = error("version: 1\nservers:\n  fs: { command: [a], command: [b] }\n");
    assert_error(&e, at(3, 23), "duplicate mapping key: command", help);
    let e = error(
        "version: 1\nrules:\n  - id: a\n    when: { args: { p: { equals: 1, equals: 2 } } }\n    decision: deny\n",
    );
    assert_error(&e, at(4, 37), "duplicate mapping key: equals", help);
}

#[test]
fn rejects_wrong_types_and_unknown_variants() {
    let shape = "fix the YAML at this position";
    assert_error(&error("version: one\n"), at(1, 10), "invalid u32", shape);
    assert_error(
        &error("version: 1\nrules: {}\n"),
        at(2, 8),
        "expected sequence start",
        shape,
    );
    let e =
        error("version: 1\nrules:\n  - id: a\n    when: { server: fs }\n    decision: permit\n");
    assert_error(
        &e,
        at(5, 15),
        "unknown variant `permit`, expected one of allow, require_approval, deny, kill_session",
        "use one of the values listed",
    );
    let e = error("version: 1\ntools:\n  fs.read: { effect: reed }\n");
    assert_error(
        &e,
        at(3, 22),
        "unknown variant `reed`",
        "use one of the values listed",
    );
    let e = error("version: 1\ntools:\n  fs.read: { effect: read, args: { p: \"path[][]\" } }\n");
    assert_error(
        &e,
        at(3, 39),
        "unknown variant `path[][]`",
        "use one of the values listed",
    );
    let e = error(
        "version: 1\nrules:\n  - id: a\n    when: { urls: { port: 70000 } }\n    decision: deny\n",
    );
    assert_error(&e, at(4, 27), "a single value or a list of values", shape);
}

#[test]
fn rejects_missing_required_fields() {
    let help = "add the field";
    assert_error(
        &error("servers: {}\n"),
        at(1, 1),
        "missing field `version`",
        help,
    );
    let e = error("version: 1\nrules:\n  - id: a\n    decision: allow\n");
    assert_error(&e, at(4, 5), "missing field `when`", help);
}

#[test]
fn rejects_other_versions() {
    let e = error("version: 2\n");
    assert_eq!(e.message, "unsupported policy version `2`");
    assert_eq!(e.field.as_deref(), Some("version"));
    assert_eq!(
        e.help.as_deref(),
        Some("this build of portcullis reads `version: 1`")
    );
    assert_eq!(
        e.to_string(),
        "p.yaml:1:1: version: unsupported policy version `2`\n  help: this build of portcullis reads `version: 1`"
    );
}

#[test]
fn rejects_a_byte_order_mark() {
    let e = error("\u{feff}version: 1\n");
    assert_eq!(e.message, "the policy starts with a byte-order mark");
    assert_eq!(
        e.help.as_deref(),
        Some("save the file as UTF-8 without BOM")
    );
}

#[test]
fn rejects_an_oversized_file_before_parsing_and_accepts_one_at_the_limit() {
    let head = "version: 1\n#";
    let at_limit = format!("{head}{}", "x".repeat(MAX_POLICY_BYTES - head.len()));
    assert_eq!(at_limit.len(), MAX_POLICY_BYTES);
    assert!(parse_policy(&at_limit, "p.yaml").is_ok());
    let over = format!("{at_limit}x");
    let e = error(&over);
    assert_eq!(
        e.message,
        format!(
            "the policy is {} bytes, more than the limit of {MAX_POLICY_BYTES}",
            MAX_POLICY_BYTES + 1
        )
    );
    assert_eq!(
        e.help.as_deref(),
        Some("split the policy or remove generated content")
    );
}

fn nested(depth: usize) -> String {
    format!(
        "version: 1\nrules:\n  - id: a\n    when: {{ args: {{ p: {{ equals: {}{} }} }} }}\n    decision: deny\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[test]
fn rejects_nesting_deeper_than_the_limit() {
    // The rule itself sits 6 levels deep; the limit counts from the document root.
    assert!(parse_policy(&nested(MAX_POLICY_DEPTH - 7), "p.yaml").is_ok());
    let e = error(&nested(100));
    assert_error(
        &e,
        at(4, 92),
        "the policy nests deeper than 64 levels (a parser limit)",
        "simplify the policy",
    );
}

#[test]
fn rejects_a_billion_laughs() {
    // Ten `x` under `a`, each level ten aliases of the one before: 10^9 nodes if expanded.
    let mut text = String::from(
        "version: 1\nrules:\n  - id: a\n    decision: deny\n    when: { args: { p: { one_of: [ &a [x,x,x,x,x,x,x,x,x,x]",
    );
    let mut prev = "a".to_owned();
    for i in 0..8 {
        let name = format!("l{i}");
        let refs = vec![format!("*{prev}"); 10].join(",");
        text.push_str(&format!(", &{name} [{refs}]"));
        prev = name;
    }
    text.push_str(" ] } } }\n");
    let e = error(&text);
    assert_eq!(
        e.message, "the policy has more YAML nodes than allowed (a parser limit)",
        "{e}"
    );
    assert!(
        e.help.as_deref().is_some_and(|h| h.contains("aliases")),
        "{e}"
    );
    assert_eq!(e.pos.map(|p| p.line), Some(5));
}

#[test]
fn reports_yaml_syntax_errors_with_position() {
    let e = error("version: 1\nservers:\n\tfs: {}\n");
    assert_error(
        &e,
        at(3, 2),
        "tabs disallowed",
        "fix the YAML at this position",
    );
    assert_error(
        &error(""),
        at(1, 1),
        "unexpected end of input",
        "fix the YAML",
    );
}

#[test]
fn substitutes_variables_and_the_dollar_escape() {
    let env = |v: &str| (v == "TOKEN").then(|| "s3cret".to_owned());
    assert_eq!(
        substitute("Bearer ${TOKEN}", &env).as_deref(),
        Ok("Bearer s3cret")
    );
    assert_eq!(
        substitute("$${TOKEN} and $5 and $", &env).as_deref(),
        Ok("${TOKEN} and $5 and $")
    );
    assert_eq!(
        substitute("${TOKEN}${TOKEN}", &env).as_deref(),
        Ok("s3crets3cret")
    );
    assert_eq!(
        substitute("${MISSING}", &env),
        Err("environment variable `MISSING` is not set".to_owned())
    );
    assert_eq!(
        substitute("${TOKEN", &env),
        Err("unterminated `${` in `${TOKEN`".to_owned())
    );
    assert_eq!(
        substitute("${A-B}", &env),
        Err("invalid variable name `A-B` in `${A-B}`".to_owned())
    );
    assert_eq!(
        substitute("${}", &env),
        Err("invalid variable name `` in `${}`".to_owned())
    );
    // A value is substituted once: a `${` inside it is not expanded again.
    let nested = |v: &str| (v == "A").then(|| "${B}".to_owned());
    assert_eq!(substitute("${A}", &nested).as_deref(), Ok("${B}"));
}

#[test]
fn resolves_every_server_setting_and_reports_each_missing_variable() {
    let text = "version: 1\nservers:\n  fs:\n    command: [\"${BIN}\", x]\n    cwd: ${DIR}\n    env: { K: \"${NOPE}\" }\n  web:\n    url: http://h/\n    headers: { Authorization: \"Bearer ${TOKEN}\" }\n";
    let mut p = parse_policy(text, "p.yaml").unwrap();
    let env = |v: &str| match v {
        "BIN" => Some("/bin/fs".to_owned()),
        "DIR" => Some("/ws".to_owned()),
        _ => None,
    };
    let PolicyErrors(errors) = resolve_env(&mut p, "p.yaml", &env).unwrap_err();
    let fields: Vec<_> = errors
        .iter()
        .map(|e| (e.field.clone().unwrap_or_default(), e.message.clone()))
        .collect();
    assert_eq!(
        fields,
        [
            (
                "servers.fs.env.K".to_owned(),
                "environment variable `NOPE` is not set".to_owned()
            ),
            (
                "servers.web.headers.Authorization".to_owned(),
                "environment variable `TOKEN` is not set".to_owned()
            ),
        ]
    );
    assert!(errors.iter().all(|e| e.help.as_deref()
        == Some(
            "set the variable in the gateway's environment, or write `$${` for a literal `${`"
        )));
    let env = |v: &str| Some(format!("<{v}>"));
    let mut p = parse_policy(text, "p.yaml").unwrap();
    resolve_env(&mut p, "p.yaml", &env).unwrap();
    let fs = &p.servers["fs"].value;
    assert_eq!(
        fs.command.as_deref(),
        Some(&["<BIN>".to_owned(), "x".to_owned()][..])
    );
    assert_eq!(fs.cwd.as_deref(), Some("<DIR>"));
    assert_eq!(
        p.servers["web"].value.headers["Authorization"],
        "Bearer <TOKEN>"
    );
}

#[test]
fn reports_several_errors_as_one_list() {
    let errors = PolicyErrors(vec![
        PolicyError::new("a.yaml", "one"),
        PolicyError::new("a.yaml", "two").help("fix"),
    ]);
    assert_eq!(
        errors.to_string(),
        "error: a.yaml: one\nerror: a.yaml: two\n  help: fix"
    );
}

#[test]
fn the_store_url_resolves_variables_and_must_be_postgres() {
    let text = "version: 1\nstore: postgres://gw:${PG_PASSWORD}@db:5432/portcullis\n";
    let env = |v: &str| (v == "PG_PASSWORD").then(|| "s3cret".to_owned());
    let compiled = crate::compile(parse_policy(text, "p.yaml").unwrap(), "p.yaml", &env).unwrap();
    assert_eq!(
        compiled.store(),
        Some("postgres://gw:s3cret@db:5432/portcullis")
    );
    // The hash and the policy as written keep the reference, never the password.
    assert_eq!(
        compiled.raw().store.as_deref(),
        Some("postgres://gw:${PG_PASSWORD}@db:5432/portcullis")
    );
    let PolicyErrors(errors) =
        crate::compile(parse_policy(text, "p.yaml").unwrap(), "p.yaml", &|_| None).unwrap_err();
    assert_eq!(errors[0].field.as_deref(), Some("store"));
    assert_eq!(
        errors[0].message,
        "environment variable `PG_PASSWORD` is not set"
    );
    let wrong = "version: 1\nstore: mysql://db/portcullis\n";
    let PolicyErrors(errors) =
        crate::compile(parse_policy(wrong, "p.yaml").unwrap(), "p.yaml", &|_| None).unwrap_err();
    assert_eq!(errors[0].message, "`store` must be a `postgres://` URL");
    assert!(
        errors[0]
            .help
            .as_deref()
            .unwrap()
            .contains("${PG_PASSWORD}")
    );
}
