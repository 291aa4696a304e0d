use super::{CommandPattern, simple_command_words};

fn words(raw: &str) -> Vec<String> {
    match simple_command_words(raw) {
        Ok(words) => words,
        Err(e) => panic!("`{raw}` should parse, got: {e}"),
    }
}

/// Asserts that `raw` is rejected with a message containing `why`.
fn rejects(raw: &str, why: &str) {
    match simple_command_words(raw) {
        Ok(words) => panic!("`{raw}` should be uncertain, got words {words:?}"),
        Err(e) => assert!(
            e.why.contains(why),
            "`{raw}`: message `{}` lacks `{why}`",
            e.why
        ),
    }
}

fn pattern(p: &str) -> CommandPattern {
    match CommandPattern::new(p) {
        Ok(p) => p,
        Err(e) => panic!("pattern `{p}` should compile: {e}"),
    }
}

fn matches(p: &str, command: &str) -> bool {
    pattern(p).matches(&words(command))
}

// ---- accepted commands -------------------------------------------------------------------

#[test]
fn splits_a_plain_command() {
    assert_eq!(words("git status"), ["git", "status"]);
}

#[test]
fn splits_options_and_paths() {
    assert_eq!(words("ls -la /tmp"), ["ls", "-la", "/tmp"]);
}

#[test]
fn removes_single_and_double_quotes() {
    assert_eq!(words("'git' \"status\""), ["git", "status"]);
}

#[test]
fn concatenates_quoted_parts_of_a_word() {
    assert_eq!(words("g\"i\"t log"), ["git", "log"]);
    assert_eq!(words("'g'i\"t\" log"), ["git", "log"]);
}

#[test]
fn keeps_operators_inside_single_quotes_literal() {
    assert_eq!(words("echo 'a;b'"), ["echo", "a;b"]);
    assert_eq!(
        words("echo '$(id) `id` | & > * ~ # {a,b}'"),
        ["echo", "$(id) `id` | & > * ~ # {a,b}"]
    );
}

#[test]
fn keeps_spaces_inside_double_quotes() {
    assert_eq!(words("grep \"foo bar\" file"), ["grep", "foo bar", "file"]);
}

#[test]
fn separates_words_on_tabs_and_runs_of_blanks() {
    assert_eq!(words("git\tstatus"), ["git", "status"]);
    assert_eq!(words("  git \t  status  "), ["git", "status"]);
}

#[test]
fn escaped_dollar_in_double_quotes_is_literal() {
    assert_eq!(words("echo \"\\$HOME\""), ["echo", "$HOME"]);
}

#[test]
fn double_quote_backslash_escapes_only_posix_set() {
    assert_eq!(
        words(r#"echo "a\"b" "c\\d" "e\`f" "g\nh""#),
        ["echo", "a\"b", "c\\d", "e`f", "g\\nh"]
    );
}

#[test]
fn backslash_outside_quotes_escapes_any_character() {
    assert_eq!(
        words(r"echo a\;b \$HOME \* \~ \#x"),
        ["echo", "a;b", "$HOME", "*", "~", "#x"]
    );
}

#[test]
fn keeps_empty_quoted_words() {
    assert_eq!(words("git commit -m ''"), ["git", "commit", "-m", ""]);
    assert_eq!(words("echo \"\""), ["echo", ""]);
}

#[test]
fn hash_inside_a_word_is_literal() {
    assert_eq!(words("echo a#b"), ["echo", "a#b"]);
}

#[test]
fn tilde_inside_a_word_is_literal() {
    assert_eq!(words("git show HEAD~1"), ["git", "show", "HEAD~1"]);
}

#[test]
fn quoted_tilde_and_hash_are_literal() {
    assert_eq!(words("ls '~' \"#x\""), ["ls", "~", "#x"]);
}

#[test]
fn literal_braces_that_cannot_expand_are_kept() {
    assert_eq!(
        words("git stash show stash@{0}"),
        ["git", "stash", "show", "stash@{0}"]
    );
    assert_eq!(words("echo {}"), ["echo", "{}"]);
}

#[test]
fn assignment_like_words_after_the_command_are_arguments() {
    assert_eq!(words("make PREFIX=/usr"), ["make", "PREFIX=/usr"]);
}

#[test]
fn non_ascii_letters_in_nfkc_form_are_allowed() {
    assert_eq!(words("cat caf\u{e9}.txt"), ["cat", "caf\u{e9}.txt"]);
}

#[test]
fn shells_are_not_forbidden_by_the_parser() {
    assert_eq!(words("sh script.sh"), ["sh", "script.sh"]);
    assert_eq!(words("bash -x run"), ["bash", "-x", "run"]);
}

#[test]
fn exclamation_mark_inside_a_word_is_literal() {
    assert_eq!(words("echo hi!"), ["echo", "hi!"]);
}

// ---- operators and control ---------------------------------------------------------------

#[test]
fn rejects_semicolon() {
    rejects("git status;rm -rf /", "`;` joins several commands");
}

#[test]
fn rejects_and_list() {
    rejects("git status && curl x|sh", "`&&` joins several commands");
}

#[test]
fn rejects_or_list() {
    rejects("false || rm -rf /", "`||` joins several commands");
}

#[test]
fn rejects_pipe() {
    rejects("cat /etc/passwd | sh", "`|` pipes into another command");
}

#[test]
fn rejects_pipe_with_stderr() {
    rejects("make |& tee log", "`|&` pipes into another command");
}

#[test]
fn rejects_background() {
    rejects("sleep 1 & rm x", "`&` runs a command in the background");
}

#[test]
fn rejects_newline() {
    rejects("a\nb", "a newline (`\\n`) separates commands");
}

#[test]
fn rejects_newline_even_inside_quotes() {
    rejects("echo 'a\nb'", "newline");
}

#[test]
fn rejects_carriage_return() {
    rejects("a\rb", "a carriage return (`\\r`) may separate commands");
}

#[test]
fn rejects_subshell_parentheses() {
    rejects("(rm x)", "`(` starts a subshell");
    rejects("a)", "`)` ends a subshell");
}

#[test]
fn rejects_command_group_braces() {
    rejects("{ ls; }", "`{` starts a command group");
    rejects("}", "`}` ends a command group");
}

#[test]
fn rejects_negation_at_command_start() {
    rejects("! git status", "`!` is a shell keyword or builtin");
}

#[test]
fn rejects_comment() {
    rejects("git status #; rm -rf /", "`#` starts a comment");
}

#[test]
fn rejects_output_redirections() {
    rejects("echo x > /etc/passwd", "`>` is a redirection");
    rejects("echo x >> f", "`>>` is a redirection");
    rejects("echo x >| f", "`>|` is a redirection");
    rejects("echo x >&2", "`>&` is a redirection");
    rejects("echo x &> f", "`&>` is a redirection");
}

#[test]
fn rejects_input_redirections() {
    rejects("cat < /etc/shadow", "`<` is a redirection");
    rejects("cat <&3", "`<&` is a redirection");
    rejects("cat <> f", "`<>` is a redirection");
}

#[test]
fn rejects_here_documents_and_strings() {
    rejects("cat << EOF", "`<<` is a here-document");
    rejects("cat <<< hi", "`<<<` is a here-string");
}

#[test]
fn rejects_fd_redirection_naming_the_fd() {
    rejects("ls 2>/dev/null", "`2>` is a redirection");
    rejects("ls 2>&1", "`2>&` is a redirection");
}

#[test]
fn rejects_redirection_glued_to_a_word() {
    rejects("ls a>b", "`>` is a redirection");
}

// ---- expansions and substitutions --------------------------------------------------------

#[test]
fn rejects_variable() {
    rejects("echo $IFS", "`$IFS` is a parameter expansion");
}

#[test]
fn rejects_braced_parameter() {
    rejects("cat${IFS}/etc/passwd", "`${` is a parameter expansion");
}

#[test]
fn rejects_special_parameters() {
    rejects("echo $1", "`$1` is a parameter expansion");
    rejects("echo $@", "`$@` is a parameter expansion");
}

#[test]
fn rejects_lone_dollar() {
    rejects("echo $", "`$` may start an expansion");
}

#[test]
fn rejects_command_substitution() {
    rejects("echo $(id)", "`$(` is a command substitution");
}

#[test]
fn rejects_command_substitution_inside_double_quotes() {
    rejects("echo \"$(id)\"", "`$(` is a command substitution");
    rejects("echo \"$HOME\"", "`$HOME` is a parameter expansion");
}

#[test]
fn rejects_backticks() {
    rejects("`id`", "a backtick (`` ` ``) starts a command substitution");
    rejects("echo \"`id`\"", "backtick");
}

#[test]
fn rejects_arithmetic_expansion() {
    rejects("echo $((1+2))", "`$((` is an arithmetic expansion");
}

#[test]
fn rejects_ansi_c_and_locale_strings() {
    rejects("echo $'\\x41'", "`$'` is an ansi-c quoted string");
    rejects("echo $\"hi\"", "`$\"` is a locale-translated string");
}

#[test]
fn rejects_process_substitution() {
    rejects("diff <(ls) b", "`<(` is a process substitution");
    rejects("tee >(sh)", "`>(` is a process substitution");
}

#[test]
fn rejects_glob_star() {
    rejects(
        "ls *",
        "`*` is a glob the shell expands against the filesystem",
    );
}

#[test]
fn rejects_glob_question_mark_and_bracket() {
    rejects("ls ?", "`?` is a glob");
    rejects("ls [ab]", "`[` is a glob");
}

#[test]
fn rejects_brace_expansion() {
    rejects("{ls,-la}", "`{` may start a brace expansion");
    rejects("echo {1..3}", "`{` may start a brace expansion");
    rejects("echo a{b,c}", "`{` may start a brace expansion");
}

#[test]
fn rejects_stray_closing_brace() {
    rejects("echo a}", "`}` ends a command group or a brace expansion");
}

#[test]
fn rejects_tilde_at_word_start() {
    rejects("ls ~", "`~` expands to a home directory");
    rejects("cat ~root/.ssh/id_rsa", "`~` expands");
}

#[test]
fn rejects_tilde_after_equals() {
    rejects("make --prefix=~/x", "`~` expands");
}

// ---- command position --------------------------------------------------------------------

#[test]
fn rejects_assignment_prefix() {
    rejects("FOO=1 git status", "`FOO=1` assigns a shell variable");
    rejects("PATH+=:/x ls", "assigns a shell variable");
}

#[test]
fn rejects_assignment_even_if_quoted() {
    rejects("'FOO=1' git status", "assigns a shell variable");
}

#[test]
fn rejects_keywords() {
    for kw in [
        "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
        "function", "select", "time", "coproc",
    ] {
        rejects(
            &format!("{kw} x"),
            &format!("`{kw}` is a shell keyword or builtin"),
        );
    }
}

#[test]
fn rejects_code_evaluating_builtins() {
    for kw in [
        "eval", "exec", "source", ".", "alias", "let", "declare", "export", "command", "trap",
    ] {
        rejects(
            &format!("{kw} x"),
            &format!("`{kw}` is a shell keyword or builtin"),
        );
    }
}

#[test]
fn rejects_quoted_builtins() {
    rejects("'eval' id", "`eval` is a shell keyword");
    rejects("e\"va\"l id", "`eval` is a shell keyword");
}

#[test]
fn keywords_later_in_the_command_are_arguments() {
    assert_eq!(words("echo if then eval"), ["echo", "if", "then", "eval"]);
}

#[test]
fn rejects_empty_command() {
    rejects("", "the command is empty");
    rejects(" \t ", "the command is empty");
}

#[test]
fn rejects_empty_command_name() {
    rejects("'' x", "the command name is empty");
}

// ---- quoting errors ----------------------------------------------------------------------

#[test]
fn rejects_unterminated_single_quote() {
    rejects("'unterminated", "unterminated single quote");
}

#[test]
fn rejects_unterminated_double_quote() {
    rejects("echo \"abc", "unterminated double quote");
}

#[test]
fn rejects_trailing_backslash() {
    rejects("echo \\", "a trailing backslash");
}

#[test]
fn rejects_backslash_newline() {
    rejects("echo a\\\nb", "newline");
}

// ---- characters --------------------------------------------------------------------------

#[test]
fn rejects_control_characters() {
    rejects("git\u{0}status", "control character `U+0000`");
    rejects("git\u{1b}[2Jstatus", "control character `U+001B`");
    rejects("git\u{7f}", "control character `U+007F`");
    rejects("git\u{85}status", "control character `U+0085`");
}

#[test]
fn rejects_fullwidth_semicolon() {
    rejects(
        "git st\u{FF1B}rm",
        "`\u{FF1B}` (U+FF1B) may be folded to `;`",
    );
}

#[test]
fn rejects_fullwidth_pipe_and_ampersand() {
    rejects("a \u{FF5C} sh", "may be folded to `|`");
    rejects("a \u{FF06} b", "may be folded to `&`");
}

#[test]
fn rejects_confusables_even_inside_quotes() {
    rejects("echo '\u{FF1B}'", "may be folded to `;`");
}

#[test]
fn rejects_no_break_space() {
    rejects(
        "git\u{00A0}status",
        "invisible or non-ascii space character `U+00A0`",
    );
}

#[test]
fn rejects_invisible_and_bidi_characters() {
    for c in [
        '\u{200B}', '\u{200E}', '\u{2028}', '\u{202E}', '\u{2066}', '\u{3000}', '\u{FEFF}',
    ] {
        rejects(
            &format!("git{c}status"),
            &format!("`U+{:04X}`", u32::from(c)),
        );
    }
}

#[test]
fn rejects_combining_sequences_that_compose() {
    rejects("cat cafe\u{301}.txt", "nfkc");
}

// ---- patterns ----------------------------------------------------------------------------

#[test]
fn exact_pattern_matches_only_exactly() {
    assert!(matches("git status", "git status"));
    assert!(!matches("git status", "git status -s"));
    assert!(!matches("git status", "git"));
    assert!(!matches("git status", "git Status"));
}

#[test]
fn trailing_star_matches_zero_or_more_words() {
    assert!(matches("git log *", "git log"));
    assert!(matches("git log *", "git log -n 1"));
    assert!(!matches("git log *", "git status"));
    assert!(!matches("git log *", "git"));
}

#[test]
fn ls_star_matches_any_arguments() {
    assert!(matches("ls *", "ls"));
    assert!(matches("ls *", "ls -la /tmp"));
    assert!(!matches("ls *", "lsof"));
}

#[test]
fn word_glob_matches_within_one_word() {
    assert!(matches("cat *.md", "cat README.md"));
    assert!(!matches("cat *.md", "cat a b.md"));
    assert!(!matches("cat *.md", "cat README.txt"));
    assert!(matches("cat *.md", "cat 'a b.md'"));
}

#[test]
fn non_last_star_matches_exactly_one_word() {
    assert!(matches("* status", "git status"));
    assert!(!matches("* status", "status"));
    assert!(!matches("* status", "git x status"));
}

#[test]
fn question_mark_matches_one_character() {
    assert!(matches("ls -?", "ls -l"));
    assert!(!matches("ls -?", "ls -la"));
    assert!(!matches("ls -?", "ls -"));
}

#[test]
fn star_in_word_matches_slashes_and_empty_runs() {
    assert!(matches("cat /tmp/*", "cat /tmp/a/b"));
    assert!(matches("cat /tmp/*", "cat /tmp/"));
}

#[test]
fn classes_match_members_ranges_and_negations() {
    assert!(matches("ls -[al]", "ls -a"));
    assert!(!matches("ls -[al]", "ls -x"));
    assert!(matches("tail -n [0-9]*", "tail -n 10"));
    assert!(!matches("tail -n [!0-9]*", "tail -n 10"));
    assert!(matches("echo []]", "echo ]"));
    assert!(matches("echo [a-]", "echo -"));
}

#[test]
fn escaped_pattern_characters_are_literal() {
    assert!(matches(r"echo \*", r"echo '*'"));
    assert!(!matches(r"echo \*", "echo x"));
}

#[test]
fn pattern_words_split_on_any_ascii_whitespace() {
    assert!(matches("  git\tstatus ", "git status"));
}

#[test]
fn pattern_keeps_its_source() {
    assert_eq!(pattern("git log *").source(), "git log *");
}

#[test]
fn empty_pattern_is_an_error() {
    let err = CommandPattern::new("  ").map(|p| p.source().to_owned());
    assert_eq!(
        err,
        Err("a command pattern needs at least one word, such as `git status` or `ls *`".to_owned())
    );
}

#[test]
fn unterminated_class_is_an_error() {
    let err = CommandPattern::new("ls [ab").map(|p| p.source().to_owned());
    assert_eq!(
        err,
        Err(
            "pattern word `[ab` has a `[` without a closing `]`; write `\\[` for a literal one"
                .to_owned()
        )
    );
}

#[test]
fn trailing_backslash_in_pattern_is_an_error() {
    let err = CommandPattern::new("ls a\\").map(|p| p.source().to_owned());
    assert_eq!(
        err,
        Err("pattern word `a\\` ends with a backslash; write `\\\\` for a literal one".to_owned())
    );
}

#[test]
fn lone_star_pattern_matches_any_command() {
    assert!(matches("*", "anything at all"));
}

#[test]
fn many_stars_do_not_explode() {
    let p = pattern(&format!("x {}b", "*a".repeat(40)));
    let long = format!("x {}", "a".repeat(5000));
    assert!(!p.matches(&words(&long)));
}

proptest::proptest! {
    #[test]
    fn parsing_never_panics(raw in "\\PC{0,80}") {
        let _ = simple_command_words(&raw);
    }

    /// Words made only of safe characters survive a round trip through single quotes.
    #[test]
    fn single_quoted_words_round_trip(ws in proptest::collection::vec("[a-z0-9;|&$`*?~#(){}<> -]{1,8}", 1..5)) {
        let raw = ws.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
        let first_is_special = ws.first().is_some_and(|w| {
            super::FORBIDDEN_FIRST_WORDS.contains(&w.as_str()) || super::is_assignment(w)
        });
        proptest::prop_assume!(!first_is_special);
        proptest::prop_assert_eq!(simple_command_words(&raw), Ok(ws));
    }

    /// Without quotes or escapes, nothing that parses contains an operator or expansion (`#`
    /// and `~` inside a word, and `{}`, are literal and allowed).
    #[test]
    fn unquoted_input_that_parses_has_no_specials(raw in "[a-z ;|&$`*~#(){}<>\t]{0,20}") {
        if let Ok(words) = simple_command_words(&raw) {
            proptest::prop_assert!(!words.is_empty());
            proptest::prop_assert!(!raw.contains([';', '|', '&', '$', '`', '*', '(', ')', '<', '>']));
        }
    }
}
