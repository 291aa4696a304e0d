//! Compiling value conditions (`CondSpec`) into tests.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::model::{CondSpec, JsonType};
use crate::normalize::path::normalize_absolute;
use crate::normalize::shell::CommandPattern;
use crate::number::Decimal;

/// The longest regex source accepted, in bytes.
pub(crate) const MAX_REGEX_SOURCE: usize = 1024;
/// The compiled-program size limit per regex. The `regex` crate runs in linear time, so the
/// only cost to bound is the size of the automaton.
pub(crate) const MAX_REGEX_PROGRAM: usize = 256 * 1024;
/// Compiled regexes larger than this are reported by `check` as costly.
pub(crate) const WARN_REGEX_PROGRAM: usize = 32 * 1024;

/// A compiled condition: every test, `not` and `any` must hold (Kleene AND).
#[derive(Clone, Debug)]
pub(crate) struct Cond {
    pub(crate) tests: Vec<Test>,
    pub(crate) not: Option<Box<Cond>>,
    pub(crate) any: Option<Vec<Cond>>,
}

/// Glob sets for one `glob` list, compiled for each way a value may be compared.
#[derive(Clone, Debug)]
pub(crate) struct GlobTest {
    /// For paths: `*` stops at `/`, `**` crosses it.
    pub(crate) path_exact: GlobSet,
    pub(crate) path_folded: GlobSet,
    /// For other strings: `*` matches anything.
    pub(crate) text_exact: GlobSet,
    pub(crate) text_folded: GlobSet,
    /// Whether the folded sets match exactly what the exact sets match on a value with no
    /// upper-case letter and no non-ASCII character (see [`folding_is_moot`]), so that for such
    /// a value only the exact set needs to run.
    pub(crate) fold_moot_on_lower_ascii: bool,
}

/// Whether case-insensitive matching of `patterns` can differ from exact matching only on
/// values with an upper-case ASCII letter or a non-ASCII character: true when every pattern is
/// ASCII with no upper-case letter and no `[` class. Then each literal character of a pattern
/// is a lower-case letter or a character without case, which case-insensitively also matches
/// only its upper-case form and, for `k` and `s`, the non-ASCII `K` (Kelvin) and `ſ`; the
/// wildcards (`*`, `?`, `**`, `{a,b}` alternatives) do not depend on case. A class is left out
/// because a range such as `[0-_]` spans upper-case letters without spelling one.
pub(crate) fn folding_is_moot(patterns: &[String]) -> bool {
    patterns.iter().all(|p| {
        p.bytes()
            .all(|b| b.is_ascii() && !b.is_ascii_uppercase() && b != b'[')
    })
}

/// `host` patterns (lower-cased), matched case-insensitively.
#[derive(Clone, Debug)]
pub(crate) struct HostTest {
    pub(crate) set: GlobSet,
    /// The patterns themselves when none has a glob metacharacter and all are ASCII: then the
    /// set matches a name that is ASCII without upper-case letters (every DNS name and IP
    /// address a URL reading gives) exactly when the name equals a pattern, so a comparison
    /// answers for it (see [`is_literal_ascii_glob`]).
    pub(crate) literals: Option<Vec<String>>,
}

/// Whether a lower-cased pattern is ASCII with no glob metacharacter (`*`, `?`, `[`, `]`, `{`,
/// `}`, `,` or the escape `\`). Such a pattern compiles to an anchored literal, which,
/// case-insensitively, matches a character of a value with no upper-case letter and no
/// non-ASCII character only when it is the same character (the case-insensitive forms of a
/// lower-case letter are upper-case or, for `k` and `s`, non-ASCII).
pub(crate) fn is_literal_ascii_glob(pattern: &str) -> bool {
    pattern.bytes().all(|b| {
        b.is_ascii()
            && !b.is_ascii_uppercase()
            && !matches!(b, b'*' | b'?' | b'[' | b']' | b'{' | b'}' | b',' | b'\\')
    })
}

/// `under` bases, normalized, and their lower-case forms for the case-folded comparison
/// (lowered here once instead of for every reading of every call).
#[derive(Clone, Debug)]
pub(crate) struct UnderTest {
    pub(crate) bases: Vec<String>,
    pub(crate) folded: Vec<String>,
}

/// A compiled regex, with a case-insensitive twin for paths.
#[derive(Clone, Debug)]
pub(crate) struct RegexTest {
    pub(crate) source: String,
    pub(crate) exact: Regex,
    pub(crate) folded: Regex,
}

/// One test on a value.
#[derive(Clone, Debug)]
pub(crate) enum Test {
    Equals(Value),
    OneOf(Vec<Value>),
    Glob(Box<GlobTest>),
    Regex(Box<RegexTest>),
    Under(Box<UnderTest>),
    Host(Box<HostTest>),
    PrivateAddress(bool),
    Scheme(Vec<String>),
    Port(Vec<u16>),
    Command(Vec<CommandPattern>),
    Secret(bool),
    Contains(String),
    MaxLength(u64),
    Min(Decimal),
    Max(Decimal),
    Present(bool),
    Type(JsonType),
}

impl Test {
    /// The field name as written in a policy.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Test::Equals(_) => "equals",
            Test::OneOf(_) => "one_of",
            Test::Glob(_) => "glob",
            Test::Regex(_) => "regex",
            Test::Under(_) => "under",
            Test::Host(_) => "host",
            Test::PrivateAddress(_) => "private_address",
            Test::Scheme(_) => "scheme",
            Test::Port(_) => "port",
            Test::Command(_) => "command",
            Test::Secret(_) => "secret",
            Test::Contains(_) => "contains",
            Test::MaxLength(_) => "max_length",
            Test::Min(_) => "min",
            Test::Max(_) => "max",
            Test::Present(_) => "present",
            Test::Type(_) => "type",
        }
    }
}

pub(crate) fn glob_set(
    patterns: &[String],
    literal_separator: bool,
    fold: bool,
) -> Result<GlobSet, String> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = GlobBuilder::new(p)
            .literal_separator(literal_separator)
            .case_insensitive(fold)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("invalid glob `{p}`: {}", e.kind()))?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| format!("invalid glob list: {e}"))
}

fn compile_regex(source: &str, fold: bool) -> Result<Regex, String> {
    RegexBuilder::new(source)
        .case_insensitive(fold)
        .size_limit(MAX_REGEX_PROGRAM)
        .dfa_size_limit(MAX_REGEX_PROGRAM)
        .nest_limit(32)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => format!(
                "regex `{source}` is too costly (its compiled form exceeds {MAX_REGEX_PROGRAM} bytes)"
            ),
            other => format!("invalid regex `{source}`: {}", other.to_string().lines().last().unwrap_or_default()),
        })
}

fn decimal(n: &serde_json::Number, field: &str) -> Result<Decimal, String> {
    let text = n.to_string();
    Decimal::parse(&text)
        .ok_or_else(|| format!("`{field}: {text}` is not a number portcullis can compare exactly"))
}

/// Compile one condition. `field` names where it sits, for messages.
pub(crate) fn compile_cond(spec: &CondSpec) -> Result<Cond, String> {
    let mut tests = Vec::new();
    if let Some(v) = &spec.equals {
        tests.push(Test::Equals(v.clone()));
    }
    if let Some(vs) = &spec.one_of {
        if vs.is_empty() {
            return Err("`one_of` is empty, so it never holds; list at least one value".to_owned());
        }
        tests.push(Test::OneOf(vs.clone()));
    }
    if let Some(g) = &spec.glob {
        let patterns = g.as_slice().to_vec();
        if patterns.is_empty() {
            return Err("`glob` is empty; list at least one pattern".to_owned());
        }
        tests.push(Test::Glob(Box::new(GlobTest {
            path_exact: glob_set(&patterns, true, false)?,
            path_folded: glob_set(&patterns, true, true)?,
            text_exact: glob_set(&patterns, false, false)?,
            text_folded: glob_set(&patterns, false, true)?,
            fold_moot_on_lower_ascii: folding_is_moot(&patterns),
        })));
    }
    if let Some(source) = &spec.regex {
        if source.len() > MAX_REGEX_SOURCE {
            return Err(format!(
                "regex is {} bytes, more than the limit of {MAX_REGEX_SOURCE}",
                source.len()
            ));
        }
        tests.push(Test::Regex(Box::new(RegexTest {
            source: source.clone(),
            exact: compile_regex(source, false)?,
            folded: compile_regex(source, true)?,
        })));
    }
    if let Some(u) = &spec.under {
        let mut bases = Vec::new();
        for base in u.as_slice() {
            let normalized = normalize_absolute(base).ok_or_else(|| {
                format!("`under: {base}` must be an absolute path such as `/workspace`")
            })?;
            bases.push(normalized);
        }
        if bases.is_empty() {
            return Err("`under` is empty; list at least one directory".to_owned());
        }
        let folded = bases.iter().map(|b| b.to_lowercase()).collect();
        tests.push(Test::Under(Box::new(UnderTest { bases, folded })));
    }
    if let Some(h) = &spec.host {
        let patterns: Vec<String> = h
            .as_slice()
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect();
        if patterns.is_empty() {
            return Err("`host` is empty; list at least one host pattern".to_owned());
        }
        let set = glob_set(&patterns, false, true)?;
        let literals = patterns
            .iter()
            .all(|p| is_literal_ascii_glob(p))
            .then(|| patterns.clone());
        tests.push(Test::Host(Box::new(HostTest { set, literals })));
    }
    if let Some(b) = spec.private_address {
        tests.push(Test::PrivateAddress(b));
    }
    if let Some(s) = &spec.scheme {
        tests.push(Test::Scheme(
            s.as_slice()
                .iter()
                .map(|x| x.to_ascii_lowercase())
                .collect(),
        ));
    }
    if let Some(p) = &spec.port {
        tests.push(Test::Port(p.as_slice().to_vec()));
    }
    if let Some(c) = &spec.command {
        let mut patterns = Vec::new();
        for p in c.as_slice() {
            patterns.push(
                CommandPattern::new(p)
                    .map_err(|e| format!("invalid command pattern `{p}`: {e}"))?,
            );
        }
        if patterns.is_empty() {
            return Err("`command` is empty; list at least one pattern".to_owned());
        }
        tests.push(Test::Command(patterns));
    }
    if let Some(b) = spec.secret {
        tests.push(Test::Secret(b));
    }
    if let Some(s) = &spec.contains {
        if s.is_empty() {
            return Err("`contains: \"\"` always holds; remove it or give a substring".to_owned());
        }
        tests.push(Test::Contains(s.clone()));
    }
    if let Some(n) = spec.max_length {
        tests.push(Test::MaxLength(n));
    }
    let min = spec.min.as_ref().map(|n| decimal(n, "min")).transpose()?;
    let max = spec.max.as_ref().map(|n| decimal(n, "max")).transpose()?;
    if let (Some(lo), Some(hi)) = (&min, &max)
        && lo > hi
    {
        return Err("`min` is greater than `max`, so the condition never holds".to_owned());
    }
    if let Some(lo) = min {
        tests.push(Test::Min(lo));
    }
    if let Some(hi) = max {
        tests.push(Test::Max(hi));
    }
    if let Some(t) = spec.r#type {
        tests.push(Test::Type(t));
    }
    if let Some(p) = spec.present {
        if !p && (!tests.is_empty() || spec.not.is_some() || spec.any.is_some()) {
            return Err(
                "`present: false` cannot be combined with tests on the value, which is absent"
                    .to_owned(),
            );
        }
        tests.push(Test::Present(p));
    }
    let not = spec
        .not
        .as_ref()
        .map(|n| compile_cond(n).map(Box::new))
        .transpose()
        .map_err(|e| format!("not: {e}"))?;
    let any = match &spec.any {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(
                "`any` is empty, so it never holds; list at least one condition".to_owned(),
            );
        }
        Some(list) => {
            let mut out = Vec::new();
            for (i, c) in list.iter().enumerate() {
                out.push(compile_cond(c).map_err(|e| format!("any[{i}]: {e}"))?);
            }
            Some(out)
        }
    };
    if tests.is_empty() && not.is_none() && any.is_none() {
        return Err(
            "the condition is empty; add a test such as `glob`, `under` or `equals`".to_owned(),
        );
    }
    Ok(Cond { tests, not, any })
}

impl Cond {
    /// Whether this condition (or a nested one) uses the given test kind.
    pub(crate) fn any_test(&self, f: &dyn Fn(&Test) -> bool) -> bool {
        self.tests.iter().any(f)
            || self.not.as_ref().is_some_and(|n| n.any_test(f))
            || self
                .any
                .as_ref()
                .is_some_and(|a| a.iter().any(|c| c.any_test(f)))
    }
}
