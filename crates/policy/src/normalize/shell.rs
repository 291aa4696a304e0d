//! POSIX shell word parsing for the `command` condition.
//!
//! A server that hands a string to `sh -c` runs whatever the shell makes of it, not the string.
//! The `command` condition therefore matches patterns against the *words the shell would
//! execute* (`g"i"t log` runs `git log`), and only when the string is exactly one simple command
//! of literal words. Anything whose meaning depends on the shell's state, the filesystem or a
//! second command — operators, expansions, globs, redirections, assignments, keywords — and any
//! character a server might fold into one of those makes the value *uncertain* (DESIGN §3.3,
//! §3.4): a deny rule then still fires and an allow rule does not.
//!
//! The parser is deliberately stricter than any real shell: rejecting a harmless command costs an
//! approval, accepting a harmful one costs the machine.

use unicode_normalization::UnicodeNormalization;

use super::Uncertain;

#[cfg(test)]
mod tests;

/// First words that are reserved words or builtins which change control flow or evaluate other
/// text as code. As the first word they mean the rest is not "one command with these arguments".
/// Quoting does not matter for builtins (`'eval' x` still evaluates), so these are compared with
/// the unquoted word. Beyond POSIX: bash's `[[`, `coproc`, `select`, `function`, `time`, and the
/// builtins that evaluate strings or arithmetic (`let`, `declare`, `trap`, `mapfile -C`, ...).
const FORBIDDEN_FIRST_WORDS: &[&str] = &[
    "!",
    "if",
    "then",
    "else",
    "elif",
    "fi",
    "for",
    "while",
    "until",
    "do",
    "done",
    "case",
    "esac",
    "in",
    "function",
    "select",
    "time",
    "coproc",
    "[[",
    "]]",
    "{",
    "}",
    "eval",
    "exec",
    "source",
    ".",
    "alias",
    "let",
    "declare",
    "typeset",
    "local",
    "export",
    "readonly",
    "command",
    "builtin",
    "trap",
    "fc",
    "enable",
    "mapfile",
    "readarray",
];

/// Split `raw` into the words of exactly one simple command, or say why it is more than that.
///
/// Succeeds only for literal words: quotes are removed and concatenated the way the shell does
/// (`'git' "st"atus` gives `git`, `status`). Every operator, expansion, glob, redirection,
/// assignment, control-flow word, control or invisible character and compatibility character
/// gives an [`Uncertain`] naming the construct.
pub fn simple_command_words(raw: &str) -> Result<Vec<String>, Uncertain> {
    check_characters(raw)?;
    let words = split_words(raw)?;
    check_command_position(&words)?;
    Ok(words)
}

/// `U+XXXX` for a character that cannot be shown as itself (control and invisible characters).
fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// Whether `c` is invisible or a bidirectional control: text that looks like one command to a
/// human reviewer may be a different one to the machine (Trojan Source, CVE-2021-42574).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{2000}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{205F}'..='\u{206F}'
            | '\u{3000}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E0FFF}'
    ) || (c.is_whitespace() && !c.is_ascii())
}

/// Reject characters before parsing, wherever they are (inside quotes too): a server-side tool
/// may strip, fold or reinterpret them, so the words we would see are not the words it runs.
fn check_characters(raw: &str) -> Result<(), Uncertain> {
    for c in raw.chars() {
        match c {
            '\n' => return Err(Uncertain::new("a newline (`\\n`) separates commands")),
            '\r' => {
                return Err(Uncertain::new(
                    "a carriage return (`\\r`) may separate commands",
                ));
            }
            '\t' => {}
            c if c.is_control() => {
                return Err(Uncertain::new(format!(
                    "control character `{}` in the command",
                    code_point(c)
                )));
            }
            c if is_invisible(c) => {
                return Err(Uncertain::new(format!(
                    "invisible or non-ascii space character `{}` in the command",
                    code_point(c)
                )));
            }
            c if !c.is_ascii() => {
                // Fullwidth `；`, `｜`, `＆` fold to `;`, `|`, `&` under NFKC, which some tools
                // apply before handing the string on.
                let folded: String = std::iter::once(c).nfkc().collect();
                if folded.chars().ne(std::iter::once(c)) {
                    return Err(Uncertain::new(format!(
                        "`{c}` ({}) may be folded to `{folded}` by a server",
                        code_point(c)
                    )));
                }
            }
            _ => {}
        }
    }
    // Per-character checks miss sequences that compose (`e` + U+0301): catch those too.
    if !unicode_normalization::is_nfkc(raw) {
        return Err(Uncertain::new(
            "the command is not in unicode nfkc form, so a server may fold its characters",
        ));
    }
    Ok(())
}

/// The lexer: quotes, escapes and word separation, rejecting every unquoted special character.
fn split_words(raw: &str) -> Result<Vec<String>, Uncertain> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut word_start = 0usize;
    // The last character added outside quotes and escapes: bash expands `~` after an unquoted
    // `=` or `:` in assignment-like words (`--prefix=~/x`), so that `~` is not literal either.
    let mut last_plain: Option<char> = None;
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == ' ' || c == '\t' {
            if let Some(done) = word.take() {
                words.push(done);
            }
            last_plain = None;
            continue;
        }
        let rest = raw.get(i..).unwrap_or_default();
        let at_word_start = word.is_none();
        if at_word_start {
            word_start = i;
        }
        match c {
            '\'' => {
                single_quoted(&mut chars, word.get_or_insert_with(String::new))?;
                last_plain = None;
            }
            '"' => {
                double_quoted(raw, &mut chars, word.get_or_insert_with(String::new))?;
                last_plain = None;
            }
            '\\' => match chars.next() {
                None => {
                    return Err(Uncertain::new(
                        "a trailing backslash (`\\`) escapes nothing",
                    ));
                }
                Some((_, escaped)) => {
                    word.get_or_insert_with(String::new).push(escaped);
                    last_plain = None;
                }
            },
            ';' | '&' | '|' | '<' | '>' | '(' | ')' => {
                // `2>file`: the digits just before a redirection are its file descriptor.
                let prefix = if at_word_start {
                    ""
                } else {
                    raw.get(word_start..i)
                        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
                        .unwrap_or_default()
                };
                return Err(operator(prefix, rest));
            }
            '$' => return Err(dollar(rest, false)),
            '`' => return Err(backtick()),
            '*' | '?' | '[' => {
                return Err(Uncertain::new(format!(
                    "`{c}` is a glob the shell expands against the filesystem"
                )));
            }
            '#' if at_word_start => {
                return Err(Uncertain::new(
                    "`#` starts a comment that hides the rest of the command",
                ));
            }
            '~' if at_word_start || matches!(last_plain, Some('=' | ':')) => {
                return Err(Uncertain::new("`~` expands to a home directory"));
            }
            '{' => {
                let literal = literal_braces(rest, at_word_start)?;
                let current = word.get_or_insert_with(String::new);
                current.push_str(literal);
                // `literal` is ASCII and starts with the `{` already consumed.
                for _ in 1..literal.len() {
                    chars.next();
                }
                last_plain = Some('}');
            }
            '}' => {
                return Err(Uncertain::new(
                    "`}` ends a command group or a brace expansion",
                ));
            }
            other => {
                word.get_or_insert_with(String::new).push(other);
                last_plain = Some(other);
            }
        }
    }
    if let Some(done) = word.take() {
        words.push(done);
    }
    Ok(words)
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Inside `'...'` every character is literal up to the closing quote.
fn single_quoted(chars: &mut Chars<'_>, word: &mut String) -> Result<(), Uncertain> {
    for (_, c) in chars.by_ref() {
        if c == '\'' {
            return Ok(());
        }
        word.push(c);
    }
    Err(Uncertain::new("unterminated single quote (`'`)"))
}

/// Inside `"..."` characters are literal except `$` and backtick, which expand (rejected), and
/// `\`, which escapes only `$`, backtick, `"`, `\` and newline (POSIX 2.2.3) and is otherwise kept.
fn double_quoted(raw: &str, chars: &mut Chars<'_>, word: &mut String) -> Result<(), Uncertain> {
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok(()),
            '$' => return Err(dollar(raw.get(i..).unwrap_or_default(), true)),
            '`' => return Err(backtick()),
            '\\' => match chars.peek() {
                Some(&(_, '\n')) => {
                    return Err(Uncertain::new("a backslash-newline joins lines"));
                }
                Some(&(_, escaped @ ('$' | '`' | '"' | '\\'))) => {
                    word.push(escaped);
                    chars.next();
                }
                _ => word.push('\\'),
            },
            other => word.push(other),
        }
    }
    Err(Uncertain::new("unterminated double quote (`\"`)"))
}

/// `{}` and `{N}` (as in `find -exec {}` or `stash@{0}`) are literal: bash expands braces only
/// around a `,` or a `..` sequence. Any other `{` is a brace expansion or a command group.
fn literal_braces(rest: &str, at_word_start: bool) -> Result<&str, Uncertain> {
    let after = rest.get(1..).unwrap_or_default();
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    if after
        .get(digits..)
        .is_some_and(|tail| tail.starts_with('}'))
        && let Some(literal) = rest.get(..digits.saturating_add(2))
    {
        return Ok(literal);
    }
    let group = at_word_start && after.chars().next().is_none_or(|c| c == ' ' || c == '\t');
    Err(Uncertain::new(if group {
        "`{` starts a command group"
    } else {
        "`{` may start a brace expansion"
    }))
}

/// Name the operator at the start of `rest` (with a file-descriptor `prefix` for redirections).
fn operator(prefix: &str, rest: &str) -> Uncertain {
    const JOINS: &[(&str, &str)] = &[
        ("&&", "`&&` joins several commands"),
        ("||", "`||` joins several commands"),
        ("|&", "`|&` pipes into another command"),
        ("|", "`|` pipes into another command"),
        (";", "`;` joins several commands"),
        ("<(", "`<(` is a process substitution"),
        (">(", "`>(` is a process substitution"),
        ("<<<", "`<<<` is a here-string"),
        ("<<", "`<<` is a here-document"),
        ("(", "`(` starts a subshell"),
        (")", "`)` ends a subshell"),
    ];
    const REDIRECTIONS: &[&str] = &["&>>", "&>", "<&", "<>", "<", ">>", ">&", ">|", ">"];
    if let Some((_, why)) = JOINS.iter().find(|(op, _)| rest.starts_with(op)) {
        return Uncertain::new(*why);
    }
    if let Some(op) = REDIRECTIONS.iter().find(|op| rest.starts_with(*op)) {
        return Uncertain::new(format!("`{prefix}{op}` is a redirection"));
    }
    // Only `&` is left: the caller dispatches on `;&|<>()`.
    Uncertain::new("`&` runs a command in the background")
}

/// Name the expansion that a `$` at the start of `rest` begins.
fn dollar(rest: &str, in_double_quotes: bool) -> Uncertain {
    let after = rest.get(1..).unwrap_or_default();
    let fixed = if after.starts_with("((") {
        Some("`$((` is an arithmetic expansion")
    } else if after.starts_with('(') {
        Some("`$(` is a command substitution")
    } else if after.starts_with('{') {
        Some("`${` is a parameter expansion")
    } else if after.starts_with('[') {
        Some("`$[` is an arithmetic expansion")
    } else if after.starts_with('\'') && !in_double_quotes {
        Some("`$'` is an ansi-c quoted string with escapes")
    } else if after.starts_with('"') && !in_double_quotes {
        Some("`$\"` is a locale-translated string")
    } else {
        None
    };
    if let Some(why) = fixed {
        return Uncertain::new(why);
    }
    let name_len = match after.bytes().next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count(),
        Some(b) if b.is_ascii_digit() || b"@*#?$!-".contains(&b) => 1,
        _ => 0,
    };
    match after.get(..name_len).filter(|name| !name.is_empty()) {
        Some(name) => Uncertain::new(format!("`${name}` is a parameter expansion")),
        None => Uncertain::new("`$` may start an expansion"),
    }
}

fn backtick() -> Uncertain {
    Uncertain::new("a backtick (`` ` ``) starts a command substitution")
}

/// Checks on the word in command position: empty commands, keywords and assignments.
fn check_command_position(words: &[String]) -> Result<(), Uncertain> {
    let Some(first) = words.first() else {
        return Err(Uncertain::new("the command is empty"));
    };
    if first.is_empty() {
        return Err(Uncertain::new("the command name is empty"));
    }
    if FORBIDDEN_FIRST_WORDS.contains(&first.as_str()) {
        return Err(Uncertain::new(format!(
            "`{first}` is a shell keyword or builtin that changes what runs"
        )));
    }
    if is_assignment(first) {
        return Err(Uncertain::new(format!(
            "`{first}` assigns a shell variable"
        )));
    }
    Ok(())
}

/// `NAME=value` or `NAME+=value`. Compared on the unquoted word, which is stricter than the shell
/// (`'A'=1` is a command name there) but never looser.
fn is_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    let name = name.strip_suffix('+').unwrap_or(name);
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A compiled `command` pattern such as `"git status"` or `"ls *"`.
///
/// The pattern is split on ASCII whitespace; each pattern word is a glob on one command word
/// (`*` any run of characters, `?` one character, `[abc]`/`[a-z]`/`[!abc]` a class, `\x` a
/// literal `x`). A last pattern word that is exactly `*` matches zero or more remaining words;
/// elsewhere `*` matches exactly one word. Matching is exact and case-sensitive.
#[derive(Clone, Debug)]
pub struct CommandPattern {
    source: String,
    words: Vec<Vec<Token>>,
    /// Whether a final `*` lets any number of further words follow.
    rest: bool,
}

/// One element of a word glob.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    /// Whether this single-character token accepts `c` (`AnyRun` is handled by the matcher).
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyChar | Token::AnyRun => true,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

impl CommandPattern {
    /// Compile a pattern, or explain why it is not valid.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let mut raw_words: Vec<&str> = pattern.split_ascii_whitespace().collect();
        if raw_words.is_empty() {
            return Err(
                "a command pattern needs at least one word, such as `git status` or `ls *`"
                    .to_owned(),
            );
        }
        let rest = raw_words.last() == Some(&"*");
        if rest {
            raw_words.pop();
        }
        let words = raw_words
            .iter()
            .map(|w| parse_word_glob(w))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CommandPattern {
            source: pattern.to_owned(),
            words,
            rest,
        })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the words of a simple command match this pattern.
    pub fn matches(&self, words: &[String]) -> bool {
        let count_ok = if self.rest {
            words.len() >= self.words.len()
        } else {
            words.len() == self.words.len()
        };
        count_ok
            && self
                .words
                .iter()
                .zip(words)
                .all(|(glob, word)| glob_matches(glob, word))
    }
}

/// Parse one pattern word into glob tokens.
fn parse_word_glob(word: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        let token = match c {
            '*' => Token::AnyRun,
            '?' => Token::AnyChar,
            '\\' => match chars.next() {
                Some(escaped) => Token::Literal(escaped),
                None => {
                    return Err(format!(
                        "pattern word `{word}` ends with a backslash; write `\\\\` for a literal one"
                    ));
                }
            },
            '[' => parse_class(&mut chars).ok_or_else(|| {
                format!("pattern word `{word}` has a `[` without a closing `]`; write `\\[` for a literal one")
            })?,
            other => Token::Literal(other),
        };
        // Consecutive `*` mean the same as one; merging keeps the matcher's work small.
        if token == Token::AnyRun && tokens.last() == Some(&Token::AnyRun) {
            continue;
        }
        tokens.push(token);
    }
    Ok(tokens)
}

/// Parse a class after its `[`: `[abc]`, `[a-z]`, `[!abc]` or `[^abc]`; a `]` right after the
/// opening (or the negation) is a member. `None` when there is no closing `]`.
fn parse_class(chars: &mut std::str::Chars<'_>) -> Option<Token> {
    let mut negated = false;
    let mut ranges = Vec::new();
    let mut first = true;
    let mut pending: Option<char> = None;
    loop {
        let c = chars.next()?;
        if first && !negated && (c == '!' || c == '^') {
            negated = true;
            continue;
        }
        if c == ']' && !first {
            break;
        }
        first = false;
        // `a-z` is a range; a `-` first or last in the class is a member.
        if c == '-'
            && let Some(lo) = pending
            && let Some(hi) = chars.clone().next().filter(|hi| *hi != ']')
        {
            chars.next();
            ranges.push((lo, hi));
            pending = None;
            continue;
        }
        if let Some(p) = pending.replace(c) {
            ranges.push((p, p));
        }
    }
    if let Some(p) = pending {
        ranges.push((p, p));
    }
    Some(Token::Class { negated, ranges })
}

/// Glob match with the classic single-backtrack algorithm: on a mismatch, retry from the last
/// `*` consuming one more character. Worst case O(pattern × word), no exponential blow-up.
fn glob_matches(tokens: &[Token], word: &str) -> bool {
    let text: Vec<char> = word.chars().collect();
    let (mut t, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        match tokens.get(t) {
            Some(Token::AnyRun) => {
                star = Some((t, s));
                t = t.saturating_add(1);
                continue;
            }
            Some(token) if text.get(s).is_some_and(|c| token.accepts(*c)) => {
                t = t.saturating_add(1);
                s = s.saturating_add(1);
                continue;
            }
            Some(_) => {}
            None if s >= text.len() => return true,
            None => {}
        }
        match star {
            Some((star_t, star_s)) if star_s < text.len() => {
                let next_s = star_s.saturating_add(1);
                star = Some((star_t, next_s));
                t = star_t.saturating_add(1);
                s = next_s;
            }
            _ => return false,
        }
    }
}
