//! Validation tests: every compile error names the rule (file:line:column of the rule) or the
//! server/tools field, says what is wrong and, where there is one fix, how to make it.

use super::*;

const SERVERS: &str = "version: 1\nservers:\n  fs: { command: [x], cwd: /ws }\n";

fn errors(text: &str) -> Vec<PolicyError> {
    let env = |v: &str| (v == "SET").then(|| "value".to_owned());
    match CompiledPolicy::from_yaml(text, "p.yaml", &env) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(PolicyErrors(errors)) => errors,
    }
}

/// The one error of a policy with a single rule (at line 5, column 5) written as `rule`.
fn rule_error(rule: &str) -> PolicyError {
    let mut e = errors(&format!("{SERVERS}rules:\n  - {rule}\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    let e = e.remove(0);
    assert_eq!(e.pos, Some(SourcePos { line: 5, column: 5 }), "{e}");
    assert!(e.to_string().starts_with("p.yaml:5:5: rules[0] (`"), "{e}");
    e
}

fn assert_rule_error(rule: &str, message: &str, help: Option<&str>) {
    let e = rule_error(rule);
    assert_eq!(e.message, message);
    assert_eq!(e.help.as_deref(), help);
}

#[test]
fn compiles_a_valid_policy() {
    let p = CompiledPolicy::from_yaml(
        &format!("{SERVERS}rules:\n  - {{ id: a, when: {{ server: fs }}, decision: allow }}\n"),
        "p.yaml",
        &|_| None,
    )
    .unwrap();
    assert_eq!(p.rule_count(), 1);
    assert_eq!(p.file(), "p.yaml");
    assert_eq!(p.sha256().len(), 64);
}

#[test]
fn rejects_duplicate_rule_ids_at_the_second_rule() {
    let e = errors(&format!(
        "{SERVERS}rules:\n  - {{ id: a, when: {{ server: fs }}, decision: deny }}\n  - {{ id: a, when: {{ server: fs }}, decision: deny }}\n"
    ));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].pos, Some(SourcePos { line: 6, column: 5 }));
    assert_eq!(e[0].field.as_deref(), Some("rules[1] (`a`)"));
    assert_eq!(e[0].message, "duplicate rule id `a`");
    assert_eq!(
        e[0].help.as_deref(),
        Some("every rule needs its own id, so each decision names the rule that made it")
    );
}

#[test]
fn rejects_reserved_and_invalid_rule_ids() {
    for id in RESERVED_RULE_IDS {
        assert_rule_error(
            &format!("{{ id: {id}, when: {{ server: fs }}, decision: deny }}"),
            &format!("rule id `{id}` is reserved for the engine's own decisions"),
            Some("choose another id"),
        );
    }
    let help = Some("use letters, digits, `-`, `_`, `.` and `:`");
    assert_rule_error(
        "{ id: 'a b', when: { server: fs }, decision: deny }",
        "invalid rule id `a b`",
        help,
    );
    assert_rule_error(
        "{ id: '', when: { server: fs }, decision: deny }",
        "invalid rule id ``",
        help,
    );
    let long = "a".repeat(129);
    assert_rule_error(
        &format!("{{ id: {long}, when: {{ server: fs }}, decision: deny }}"),
        &format!("invalid rule id `{long}`"),
        help,
    );
}

#[test]
fn rejects_invalid_globs_regexes_and_under() {
    let cases = [
        (
            "{ server: fs, args: { p: { glob: '[a' } } }",
            "when.args.p: invalid glob `[a`: unclosed character class; missing ']'",
        ),
        (
            "{ server: 'f[' }",
            "when.server: invalid glob `f[`: unclosed character class; missing ']'",
        ),
        (
            "{ server: fs, tool: [] }",
            "when.tool: an empty list never matches; remove the field or add a name",
        ),
        (
            "{ server: fs, args: { p: { regex: '(a' } } }",
            "when.args.p: invalid regex `(a`: error: unclosed group",
        ),
        (
            "{ server: fs, args: { p: { regex: '\\w{1000}\\w{1000}' } } }",
            "when.args.p: regex `\\w{1000}\\w{1000}` is too costly (its compiled form exceeds 262144 bytes)",
        ),
        (
            "{ server: fs, args: { p: { under: ws } } }",
            "when.args.p: `under: ws` must be an absolute path such as `/workspace`",
        ),
        (
            "{ server: fs, any: [ { not: { args: { p: { under: rel } } } } ] }",
            "when.any[0].not.args.p: `under: rel` must be an absolute path such as `/workspace`",
        ),
        (
            "{ server: fs, args: { p: { command: 'ls [' } } }",
            "when.args.p: invalid command pattern `ls [`: pattern word `[` has a `[` without a closing `]`; write `\\[` for a literal one",
        ),
        (
            "{ server: fs, method: tools/list }",
            "when.method: `tools/list` is not an evaluated method; use tools/call, resources/read or prompts/get",
        ),
        (
            "{ server: fs, args: { p: {} } }",
            "when.args.p: the condition is empty; add a test such as `glob`, `under` or `equals`",
        ),
        (
            "{ server: fs, args: { p: { present: false, equals: 1 } } }",
            "when.args.p: `present: false` cannot be combined with tests on the value, which is absent",
        ),
        (
            "{ server: fs, args: { p: { min: 3, max: 1 } } }",
            "when.args.p: `min` is greater than `max`, so the condition never holds",
        ),
        (
            "{ server: fs, args: { p: { one_of: [] } } }",
            "when.args.p: `one_of` is empty, so it never holds; list at least one value",
        ),
        (
            "{ server: fs, args: { p: { contains: '' } } }",
            "when.args.p: `contains: \"\"` always holds; remove it or give a substring",
        ),
        (
            "{ server: fs, any: [] }",
            "when.any: an empty list never holds",
        ),
        (
            "{ server: fs, effect: [] }",
            "when.effect: an empty list never matches",
        ),
        (
            "{ server: fs, labels: [] }",
            "when.labels: an empty list; remove the field or name a label",
        ),
        (
            "{ server: fs, args: { '': { present: true } } }",
            "when.args: an empty argument name",
        ),
    ];
    for (when, message) in cases {
        let e = rule_error(&format!("{{ id: a, when: {when}, decision: deny }}"));
        assert_eq!(e.message, message, "{when}");
    }
    let e = rule_error(
        "{ id: a, when: { server: fs }, unless: { args: { p: { glob: '[' } } }, decision: deny }",
    );
    assert_eq!(
        e.message,
        "unless.args.p: invalid glob `[`: unclosed character class; missing ']'"
    );
}

#[test]
fn rejects_bad_durations_hours_and_time_zones() {
    let e = errors(&format!(
        "{SERVERS}rules:\n  - {{ id: a, when: {{ server: fs }}, decision: require_approval, approval: {{ ttl: 0s }} }}\n"
    ));
    assert_eq!(
        e[0].pos,
        Some(SourcePos {
            line: 5,
            column: 81
        })
    );
    assert_eq!(e[0].message, "duration `0s` must be between 1s and 366d");
    let rule = |hours: &str| {
        format!("{{ id: a, when: {{ server: fs }}, decision: allow, hours: {hours} }}")
    };
    assert_rule_error(
        &rule("{ from: '8', to: '18:00' }"),
        "hours: time `8` must be written `HH:MM`",
        Some(
            "write e.g. `hours: { days: [mon, fri], from: \"08:00\", to: \"18:00\", tz: Europe/Berlin }`",
        ),
    );
    assert_rule_error(
        &rule("{ from: '08:00', to: '24:01' }"),
        "hours: time `24:01` is not between 00:00 and 24:00",
        Some(
            "write e.g. `hours: { days: [mon, fri], from: \"08:00\", to: \"18:00\", tz: Europe/Berlin }`",
        ),
    );
    assert_rule_error(
        &rule("{ from: '08:00', to: '08:00' }"),
        "hours: `from` and `to` are equal, so the window is empty",
        Some(
            "write e.g. `hours: { days: [mon, fri], from: \"08:00\", to: \"18:00\", tz: Europe/Berlin }`",
        ),
    );
    assert_rule_error(
        &rule("{ from: '08:00', to: '18:00', tz: Mars/Base }"),
        "hours: unknown time zone `Mars/Base`; use an IANA name such as `Europe/Berlin`",
        Some(
            "write e.g. `hours: { days: [mon, fri], from: \"08:00\", to: \"18:00\", tz: Europe/Berlin }`",
        ),
    );
}

#[test]
fn rejects_limit_shapes_and_misplaced_rule_settings() {
    let help = Some(
        "write e.g. `limit: { calls: 100, per: 1h }` or `limit: { sum: amount, max: 100000, per: 1d }`",
    );
    let rule = |limit: &str| {
        format!("{{ id: a, when: {{ server: fs }}, decision: allow, limit: {limit} }}")
    };
    assert_rule_error(
        &rule("{ calls: 1, sum: amount, max: 3, per: 1h }"),
        "limit: give either `calls` or `sum`, not both",
        help,
    );
    assert_rule_error(
        &rule("{ calls: 0, per: 1h }"),
        "limit: `calls: 0` never allows anything; use `decision: deny`",
        help,
    );
    assert_rule_error(
        &rule("{ sum: amount, per: 1h }"),
        "limit: `sum` needs a `max` budget",
        help,
    );
    assert_rule_error(
        &rule("{ max: 5, per: 1h }"),
        "limit: give `calls: N` or `sum: ARG` with `max: N`",
        help,
    );
    assert_rule_error(
        &rule("{ sum: '', max: 5, per: 1h }"),
        "limit: give `calls: N` or `sum: ARG` with `max: N`",
        help,
    );
    assert_rule_error(
        "{ id: a, when: { server: fs }, decision: deny, limit: { calls: 1, per: 1h } }",
        "`limit` only applies to rules that let calls through (allow, require_approval)",
        Some("change the decision to `allow` or `require_approval`, or remove `limit`"),
    );
    assert_rule_error(
        "{ id: a, when: { server: fs }, decision: deny, approval: { ttl: 1m } }",
        "`approval` only applies to `decision: require_approval`",
        Some("remove `approval` or change the decision"),
    );
    assert_rule_error(
        "{ id: a, when: { server: fs }, decision: kill_session, taint: [x] }",
        "`taint` only applies to rules that let calls through",
        Some("change the decision to `allow` or `require_approval`, or remove `taint`"),
    );
}

#[test]
fn rejects_an_allow_with_an_empty_when() {
    let help = Some(
        "name at least a server, tool or effect; allow-all belongs in a deliberate, scoped rule",
    );
    assert_rule_error(
        "{ id: a, when: {}, decision: allow }",
        "an allow rule with an empty `when` allows every call",
        help,
    );
    // `not` alone also allows nearly everything.
    assert_rule_error(
        "{ id: a, when: { not: { server: x } }, decision: allow }",
        "an allow rule with an empty `when` allows every call",
        help,
    );
    // A deny with an empty `when` is a legitimate kill switch.
    CompiledPolicy::from_yaml(
        &format!("{SERVERS}rules:\n  - {{ id: a, when: {{}}, decision: deny }}\n"),
        "p.yaml",
        &|_| None,
    )
    .unwrap();
}

/// Server errors name the field; they carry no line (servers are not spanned).
fn server_error(servers: &str) -> PolicyError {
    let mut e = errors(&format!("version: 1\nservers:\n{servers}"));
    assert_eq!(e.len(), 1, "{e:?}");
    e.remove(0)
}

#[test]
fn rejects_a_server_with_both_or_neither_command_and_url() {
    let e = server_error("  fs: { command: [x], url: 'http://a/' }\n");
    assert_eq!(
        (e.field.as_deref(), e.message.as_str()),
        (
            Some("servers.fs"),
            "a server has either `command` or `url`, not both"
        )
    );
    assert_eq!(e.help.as_deref(), Some("split it into two servers"));
    let e = server_error("  fs: { cwd: /ws }\n");
    assert_eq!(
        (e.field.as_deref(), e.message.as_str()),
        (
            Some("servers.fs"),
            "a server needs `command` (stdio) or `url` (Streamable HTTP)"
        )
    );
    assert!(
        e.help
            .as_deref()
            .unwrap()
            .starts_with("add e.g. `command: [")
    );
    let e = server_error("  fs: { command: [] }\n");
    assert_eq!(
        (e.field.as_deref(), e.message.as_str()),
        (Some("servers.fs.command"), "`command` is empty")
    );
    let e = server_error("  fs: { url: 'ftp://a/' }\n");
    assert_eq!(
        e.message,
        "`url: ftp://a/` must start with http:// or https://"
    );
    let e = server_error("  fs: { url: 'http://a/', resolve_symlinks: true }\n");
    assert_eq!(e.field.as_deref(), Some("servers.fs.resolve_symlinks"));
    let e = server_error("  fs: { url: 'http://a/', shared: true }\n");
    assert_eq!(
        (e.field.as_deref(), e.message.as_str()),
        (
            Some("servers.fs.shared"),
            "`shared: true` on a URL server: only stdio servers are started by the gateway, so only they can be shared"
        )
    );
    let e = server_error("  fs: { command: [x], cwd: rel }\n");
    assert_eq!(
        (e.field.as_deref(), e.message.as_str()),
        (
            Some("servers.fs.cwd"),
            "`cwd: rel` must be an absolute path"
        )
    );
    let e = server_error("  a.b: { command: [x] }\n");
    assert_eq!(e.message, "invalid server name `a.b`");
    let e = server_error("  a__b: { command: [x] }\n");
    assert_eq!(
        e.help.as_deref(),
        Some(
            "use letters, digits, `-` and `_` only; no `.` and no `__` (reserved for namespacing)"
        )
    );
}

#[test]
fn rejects_a_missing_variable_and_keeps_the_hash_free_of_the_environment() {
    let e = server_error("  fs: { command: ['${NOPE}'] }\n");
    assert_eq!(
        (e.field.as_deref(), e.message.as_str()),
        (
            Some("servers.fs.command[0]"),
            "environment variable `NOPE` is not set"
        )
    );
    let text = "version: 1\nservers:\n  fs: { command: ['${SET}', '$${SET}'] }\n";
    let a = CompiledPolicy::from_yaml(text, "p.yaml", &|_| Some("one".to_owned())).unwrap();
    let b = CompiledPolicy::from_yaml(text, "p.yaml", &|_| Some("two".to_owned())).unwrap();
    assert_eq!(a.sha256(), b.sha256());
    assert_eq!(
        a.servers()["fs"].spec.command.as_deref(),
        Some(&["one".to_owned(), "${SET}".to_owned()][..])
    );
    assert!(!a.canonical_json().contains("one"));
}

#[test]
fn rejects_bad_tools_keys_and_hide_patterns() {
    let e = errors("version: 1\ntools:\n  read: { effect: read }\n");
    assert_eq!(
        e[0].message,
        "tools.read: the key must be `server.tool` (e.g. `fs.read_text_file` or `fs.*`)"
    );
    assert_eq!(
        e[0].help.as_deref(),
        Some("see the `tools` section of docs/policy.md")
    );
    let e = errors("version: 1\ntools:\n  'fs.[': { effect: read }\n");
    assert_eq!(
        e[0].message,
        "tools.fs.[: invalid glob: unclosed character class; missing ']'"
    );
    let e = errors("version: 1\nhide: [move_file]\n");
    assert_eq!(
        e[0].message,
        "`hide: move_file` must be `server.tool` (globs allowed)"
    );
    let e = errors("version: 1\nhide: ['fs.[']\n");
    assert_eq!(
        e[0].message,
        "invalid glob `fs.[`: unclosed character class; missing ']'"
    );
}

#[test]
fn reports_every_error_not_just_the_first() {
    let e = errors(&format!(
        "{SERVERS}  web: {{ cwd: /x }}\nrules:\n  - {{ id: a, when: {{ args: {{ p: {{ under: rel }} }} }}, decision: deny }}\n  - {{ id: b, when: {{ server: fs, args: {{ p: {{ glob: '[' }} }} }}, decision: deny }}\n"
    ));
    let summary: Vec<_> = e
        .iter()
        .map(|e| (e.pos.map(|p| p.line), e.field.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        summary,
        [
            (Some(4), "servers.web".to_owned()),
            (Some(6), "rules[0] (`a`)".to_owned()),
            (Some(7), "rules[1] (`b`)".to_owned())
        ]
    );
}

#[test]
fn disabled_rules_are_validated_but_not_compiled() {
    let ok = format!(
        "{SERVERS}rules:\n  - {{ id: a, enabled: false, when: {{ server: fs }}, decision: deny }}\n"
    );
    assert_eq!(
        CompiledPolicy::from_yaml(&ok, "p.yaml", &|_| None)
            .unwrap()
            .rule_count(),
        0
    );
    assert_rule_error(
        "{ id: a, enabled: false, when: { server: fs, args: { p: { under: rel } } }, decision: deny }",
        "when.args.p: `under: rel` must be an absolute path such as `/workspace`",
        Some("`under` takes absolute directories such as `/workspace`"),
    );
}

mod glob_folding {
    use globset::Candidate;
    use proptest::prelude::*;

    use crate::compile::cond::{folding_is_moot, glob_set, is_literal_ascii_glob};

    fn sets(patterns: &[String]) -> Option<[globset::GlobSet; 4]> {
        Some([
            glob_set(patterns, true, false).ok()?,
            glob_set(patterns, true, true).ok()?,
            glob_set(patterns, false, false).ok()?,
            glob_set(patterns, false, true).ok()?,
        ])
    }

    #[test]
    fn folding_is_moot_only_for_lower_case_ascii_patterns_without_classes() {
        let moot =
            |ps: &[&str]| folding_is_moot(&ps.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>());
        assert!(moot(&[
            "**/.env",
            "**/.ssh/**",
            "**/*.pem",
            "**/id_rsa*",
            "{a,b}/?.k"
        ]));
        assert!(!moot(&["**/.env", "**/.ENV"]));
        assert!(!moot(&["**/[a-z].env"]));
        assert!(!moot(&["[0-_]"]));
        assert!(!moot(&["**/ſecret"]));
    }

    #[test]
    fn folded_and_exact_sets_agree_on_lower_ascii_values_for_the_realistic_patterns() {
        let patterns: Vec<String> = [
            "**/.env",
            "**/.ssh/**",
            "**/.aws/**",
            "**/*.pem",
            "**/id_rsa*",
        ]
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
        let Some([pe, pf, te, tf]) = sets(&patterns) else {
            panic!("the patterns compile");
        };
        for value in [
            "/workspace/.env",
            "/workspace/src/lib.rs",
            "/home/u/.ssh/id_rsa",
            "/a/k.pem",
            "/a/.aws/credentials",
            "",
            "/",
            "id_rsa.pub",
            "/x/.envs",
        ] {
            let c = Candidate::new(value);
            assert_eq!(
                pe.is_match_candidate(&c),
                pf.is_match_candidate(&c),
                "{value}"
            );
            assert_eq!(
                te.is_match_candidate(&c),
                tf.is_match_candidate(&c),
                "{value}"
            );
        }
        // Where the folded set does differ, the value is not lower-case ASCII.
        let c = Candidate::new("/workspace/.ENV");
        assert!(!pe.is_match_candidate(&c) && pf.is_match_candidate(&c));
    }

    #[test]
    fn literal_host_patterns_are_ascii_without_metacharacters() {
        for p in [
            "169.254.169.254",
            "metadata.google.internal",
            "::1",
            "a-b_c",
            "fe80::1%eth0",
        ] {
            assert!(is_literal_ascii_glob(p), "{p}");
        }
        for p in [
            "*.internal",
            "a?b",
            "[::1]",
            "{a,b}",
            "a,b",
            "a\\b",
            "bücher.de",
            "Docs.rs",
        ] {
            assert!(!is_literal_ascii_glob(p), "{p}");
        }
        let patterns = vec![
            "169.254.169.254".to_owned(),
            "metadata.google.internal".to_owned(),
        ];
        let Ok(set) = glob_set(&patterns, false, true) else {
            panic!("the patterns compile");
        };
        for (name, expected) in [
            ("169.254.169.254", true),
            ("metadata.google.internal", true),
            ("metadata.google.internal.evil", false),
            ("169.254.169.2540", false),
            ("", false),
        ] {
            assert_eq!(set.is_match(name), expected, "{name}");
            assert_eq!(patterns.iter().any(|p| p == name), expected, "{name}");
        }
    }

    proptest! {
        // The shortcut of `host`: literal ASCII patterns (lower-cased, as compiled) against a
        // lower-case ASCII name answer by equality exactly when the case-insensitive set does.
        #[test]
        fn literal_host_patterns_match_by_equality(
            patterns in prop::collection::vec(r"[ks0-9a-f.:%_\-]{1,8}", 1..4),
            other in r"[ksKS0-9a-f.:%_\-]{0,8}",
            pick in any::<prop::sample::Index>(),
            take_pattern in any::<bool>(),
        ) {
            let patterns: Vec<String> = patterns.iter().map(|p| p.to_ascii_lowercase()).collect();
            prop_assume!(patterns.iter().all(|p| is_literal_ascii_glob(p)));
            let Ok(set) = glob_set(&patterns, false, true) else {
                return Ok(());
            };
            let name = if take_pattern { pick.get(&patterns).clone() } else { other };
            if name.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
                prop_assert_eq!(patterns.contains(&name), set.is_match(&name), "{}", name);
            }
        }

        // The shortcut in `eval_test`: when `folding_is_moot` holds and the value is ASCII
        // without upper-case letters, the folded sets answer what the exact sets answer. The
        // alphabet has `k` and `s` (whose case-insensitive forms include non-ASCII letters),
        // separators, dots and every wildcard, so values often match.
        #[test]
        fn folded_sets_agree_with_exact_ones_when_folding_is_moot(
            patterns in prop::collection::vec(r"[aks.\-/*?{},\\]{0,8}", 1..4),
            value in r"[aksAKS./\-]{0,10}",
        ) {
            prop_assume!(folding_is_moot(&patterns));
            let Some([pe, pf, te, tf]) = sets(&patterns) else {
                return Ok(());
            };
            let lower_ascii = value.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase());
            let c = Candidate::new(&value);
            if lower_ascii {
                prop_assert_eq!(pe.is_match_candidate(&c), pf.is_match_candidate(&c));
                prop_assert_eq!(te.is_match_candidate(&c), tf.is_match_candidate(&c));
            }
        }

        #[test]
        fn folded_sets_agree_on_lower_ascii_paths_for_path_like_patterns(
            patterns in prop::collection::vec(r"(\*\*/)?[a-z0-9_.\-]{0,4}(\*|\?)?[a-z0-9_.\-]{0,4}(/\*\*)?", 1..5),
            value in r"(/[a-z0-9_.\-]{0,6}){0,4}",
        ) {
            prop_assume!(folding_is_moot(&patterns));
            let Some([pe, pf, te, tf]) = sets(&patterns) else {
                return Ok(());
            };
            let c = Candidate::new(&value);
            prop_assert_eq!(pe.is_match_candidate(&c), pf.is_match_candidate(&c));
            prop_assert_eq!(te.is_match_candidate(&c), tf.is_match_candidate(&c));
        }
    }
}
