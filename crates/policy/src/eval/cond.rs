//! Evaluating value conditions on arguments, over every reading of every element.

use std::borrow::Cow;

use globset::Candidate;
use serde_json::Value;

use crate::compile::cond::{Cond, Test};
use crate::eval::Scope;
use crate::eval::args::{ArgLookup, DeclaredGroup, argument};
use crate::model::{ArgKind, JsonType};
use crate::normalize::path::is_under;
use crate::normalize::secret::has_secret;
use crate::normalize::url::{UrlHost, host_is_private};
use crate::number::Decimal;
use crate::tri::Tri;

/// The deepest argument nesting `values` walks; deeper values make it unknown.
pub(crate) const MAX_VALUES_DEPTH: usize = 64;

/// A condition on one named argument.
pub(crate) fn eval_arg(c: &Cond, lookup: &ArgLookup<'_>, scope: &Scope<'_>, label: &str) -> Tri {
    match lookup {
        ArgLookup::Absent => eval_absent(c),
        ArgLookup::Ambiguous(why) => {
            scope.note(|| format!("{label}: unknown because {why}"));
            Tri::Unknown
        }
        ArgLookup::Present(v, kind) => eval_value(c, v, *kind, scope, label),
    }
}

/// DESIGN §3.3: a condition on an absent argument is false, except `present: false`.
fn eval_absent(c: &Cond) -> Tri {
    let mut result = Tri::True;
    for t in &c.tests {
        result = result.and(Tri::from_bool(matches!(t, Test::Present(false))));
    }
    if c.not.is_some() {
        result = Tri::False;
    }
    if let Some(list) = &c.any {
        result = result.and(
            list.iter()
                .fold(Tri::False, |acc, sub| acc.or(eval_absent(sub))),
        );
    }
    if c.tests.is_empty() && c.any.is_none() {
        return Tri::False;
    }
    result
}

/// Whether a test looks at one element of a list rather than the whole value. `equals` /
/// `one_of` with a list or object operand compare the whole value.
fn is_element_test(t: &Test) -> bool {
    let compound = |v: &Value| v.is_array() || v.is_object();
    match t {
        Test::Present(_) | Test::Type(_) => false,
        Test::Equals(v) => !compound(v),
        Test::OneOf(vs) => !vs.iter().all(compound),
        _ => true,
    }
}

fn has_element_tests(c: &Cond) -> bool {
    c.any_test(&is_element_test)
}

fn element_kind(kind: Option<ArgKind>) -> Option<ArgKind> {
    match kind {
        Some(ArgKind::PathList) => Some(ArgKind::Path),
        Some(ArgKind::UrlList) => Some(ArgKind::Url),
        Some(ArgKind::StringList) => Some(ArgKind::String),
        other => other,
    }
}

fn allows_list(kind: Option<ArgKind>) -> bool {
    matches!(
        kind,
        None | Some(ArgKind::Any | ArgKind::PathList | ArgKind::UrlList | ArgKind::StringList)
    )
}

/// A condition on a present value: arrays element by element (true when it holds for every
/// element, false when for none, unknown otherwise; an empty array is false).
pub(crate) fn eval_value(
    c: &Cond,
    v: &Value,
    kind: Option<ArgKind>,
    scope: &Scope<'_>,
    label: &str,
) -> Tri {
    if let Value::Array(items) = v
        && has_element_tests(c)
    {
        if !allows_list(kind) {
            scope.note(|| {
                format!("{label}: unknown because a list was given where one value is declared")
            });
            return Tri::Unknown;
        }
        if items.is_empty() {
            scope.note(|| format!("{label}: false because the list is empty"));
            return Tri::False;
        }
        let ek = element_kind(kind);
        return Tri::all_or_none(items.iter().map(|e| eval_cond(c, v, e, ek, scope, label)));
    }
    eval_cond(c, v, v, kind, scope, label)
}

fn eval_cond(
    c: &Cond,
    whole: &Value,
    elem: &Value,
    kind: Option<ArgKind>,
    scope: &Scope<'_>,
    label: &str,
) -> Tri {
    let mut acc = Tri::True;
    for t in &c.tests {
        let r = eval_test(t, whole, elem, kind, scope, label);
        acc = acc.and(r);
        if acc == Tri::False {
            return acc;
        }
    }
    if let Some(n) = &c.not {
        acc = acc.and(eval_cond(n, whole, elem, kind, scope, label).not());
        if acc == Tri::False {
            return acc;
        }
    }
    if let Some(list) = &c.any {
        let mut any = Tri::False;
        for sub in list {
            any = any.or(eval_cond(sub, whole, elem, kind, scope, label));
            if any == Tri::True {
                break;
            }
        }
        acc = acc.and(any);
    }
    acc
}

fn json_type_holds(t: JsonType, v: &Value) -> bool {
    match t {
        JsonType::String => v.is_string(),
        JsonType::Number => v.is_number(),
        JsonType::Integer => v
            .as_number()
            .and_then(|n| Decimal::parse(&n.to_string()))
            .is_some_and(|d| d.is_integer()),
        JsonType::Boolean => v.is_boolean(),
        JsonType::Array => v.is_array(),
        JsonType::Object => v.is_object(),
        JsonType::Null => v.is_null(),
    }
}

/// `s.to_lowercase()`, without allocating when `s` is ASCII with no upper-case letter (the
/// common case): for ASCII, `to_lowercase` is the ASCII lower case.
pub(crate) fn lower(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// ASCII without an upper-case letter.
fn is_lower_ascii(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase())
}

/// Compare a string both exactly and case-folded: a value that differs only by case is a
/// different reading on a case-insensitive filesystem or service, so the two must agree.
fn dual(exact: bool, folded: bool) -> Tri {
    Tri::all_or_none([Tri::from_bool(exact), Tri::from_bool(folded)])
}

fn eval_test(
    t: &Test,
    whole: &Value,
    elem: &Value,
    kind: Option<ArgKind>,
    scope: &Scope<'_>,
    label: &str,
) -> Tri {
    let mistyped = |expected: &str| {
        scope.note(|| {
            format!(
                "{label}: `{}` is unknown because the value is a {}, not {expected}",
                t.name(),
                crate::eval::type_name(elem)
            )
        });
        Tri::Unknown
    };
    match t {
        Test::Present(p) => Tri::from_bool(*p),
        Test::Type(ty) => Tri::from_bool(json_type_holds(*ty, whole)),
        Test::Equals(expected) => equals(elem, expected, kind, scope, label),
        Test::OneOf(options) => options.iter().fold(Tri::False, |acc, o| {
            acc.or(equals(elem, o, kind, scope, label))
        }),
        Test::MaxLength(n) => match elem.as_str() {
            Some(s) => Tri::from_bool(s.chars().count() as u64 <= *n),
            None => mistyped("a string"),
        },
        Test::Min(bound) | Test::Max(bound) => {
            let Some(n) = elem.as_number() else {
                return mistyped("a number");
            };
            let Some(d) = Decimal::parse(&n.to_string()) else {
                scope.note(|| format!("{label}: the number `{n}` cannot be compared exactly"));
                return Tri::Unknown;
            };
            Tri::from_bool(if matches!(t, Test::Min(_)) {
                d >= *bound
            } else {
                d <= *bound
            })
        }
        Test::Secret(expected) => match elem {
            Value::String(s) => Tri::from_bool(has_secret(s) == *expected),
            Value::Number(_) | Value::Bool(_) | Value::Null => Tri::from_bool(!*expected),
            _ => mistyped("a string"),
        },
        Test::Glob(g) => with_string(elem, kind, scope, label, &mistyped, |s, is_path| {
            let candidate = Candidate::new(s);
            // Most values (paths above all) have no upper-case letter and are ASCII: for them
            // the folded set matches what the exact set matches (`folding_is_moot`), so its
            // answer is known without running it.
            if g.fold_moot_on_lower_ascii && is_lower_ascii(s) {
                let exact = if is_path {
                    g.path_exact.is_match_candidate(&candidate)
                } else {
                    g.text_exact.is_match_candidate(&candidate)
                };
                return dual(exact, exact);
            }
            if is_path {
                dual(
                    g.path_exact.is_match_candidate(&candidate),
                    g.path_folded.is_match_candidate(&candidate),
                )
            } else {
                dual(
                    g.text_exact.is_match_candidate(&candidate),
                    g.text_folded.is_match_candidate(&candidate),
                )
            }
        }),
        Test::Regex(r) => with_string(elem, kind, scope, label, &mistyped, |s, _| {
            dual(r.exact.is_match(s), r.folded.is_match(s))
        }),
        Test::Contains(needle) => with_string(elem, kind, scope, label, &mistyped, |s, _| {
            dual(
                s.contains(needle.as_str()),
                lower(s).contains(lower(needle).as_ref()),
            )
        }),
        Test::Under(under) => {
            let Value::String(s) = elem else {
                return mistyped("a path string");
            };
            over_paths(elem, s, scope, label, |p| {
                let exact = under.bases.iter().any(|b| is_under(p, b));
                let lp = lower(p);
                let folded = under.folded.iter().any(|b| is_under(&lp, b));
                dual(exact, folded)
            })
        }
        Test::Host(h) => {
            let matches = |name: &str| match &h.literals {
                // Literal ASCII patterns against an ASCII lower-case name: the set's answer is
                // equality (`is_literal_ascii_glob`).
                Some(literals) if is_lower_ascii(name) => literals.iter().any(|p| p == name),
                _ => h.set.is_match(name),
            };
            over_urls(elem, scope, label, &mistyped, |r| match &r.host {
                None => Tri::False,
                Some(UrlHost::Name(n)) => Tri::from_bool(matches(n)),
                Some(UrlHost::Ip(ip)) => Tri::from_bool(matches(&ip.to_string())),
            })
        }
        Test::PrivateAddress(expected) => {
            over_urls(elem, scope, label, &mistyped, |r| match &r.host {
                None => Tri::False,
                Some(h) => Tri::from_bool(host_is_private(h) == *expected),
            })
        }
        Test::Scheme(list) => over_urls(elem, scope, label, &mistyped, |r| {
            Tri::from_bool(list.contains(&r.scheme))
        }),
        Test::Port(list) => over_urls(elem, scope, label, &mistyped, |r| {
            Tri::from_bool(r.port.is_some_and(|p| list.contains(&p)))
        }),
        Test::Command(patterns) => {
            let Value::String(s) = elem else {
                return mistyped("a command string");
            };
            let words = scope.readings.words(elem, s);
            match words.as_ref() {
                Ok(words) => Tri::from_bool(patterns.iter().any(|p| p.matches(words))),
                Err(why) => {
                    scope.note(|| format!("{label}: `command` is unknown because {why}"));
                    Tri::Unknown
                }
            }
        }
    }
}

/// Run a string test on a value: on every path reading for declared paths, on the raw
/// string otherwise.
fn with_string(
    elem: &Value,
    kind: Option<ArgKind>,
    scope: &Scope<'_>,
    label: &str,
    mistyped: &dyn Fn(&str) -> Tri,
    f: impl Fn(&str, bool) -> Tri,
) -> Tri {
    let Value::String(s) = elem else {
        return mistyped("a string");
    };
    if kind == Some(ArgKind::Path) || (kind.is_none() && looks_like_path(s)) {
        over_paths(elem, s, scope, label, |p| f(p, true))
    } else {
        f(s, false)
    }
}

/// An undeclared argument (or one reached by JSON pointer) that is spelled like an absolute
/// path is also read as a path: extra readings can only make a condition unknown, which is
/// never looser, and they stop `/workspace/../etc/x` from matching a glob on `/workspace/*`.
fn looks_like_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with('~') || s.starts_with('\\')
}

fn over_paths(
    elem: &Value,
    s: &str,
    scope: &Scope<'_>,
    label: &str,
    f: impl Fn(&str) -> Tri,
) -> Tri {
    let readings = scope.readings.path(elem, s);
    match readings.as_ref() {
        Err(why) => {
            scope.note(|| format!("{label}: unknown because {why}"));
            Tri::Unknown
        }
        Ok(list) => {
            // `f` is pure, so the per-reading results are computed again only for the trace.
            let combined = Tri::all_or_none(list.iter().map(|r| f(&r.path)));
            if combined == Tri::Unknown {
                scope.note(|| {
                    let detail: Vec<String> = list
                        .iter()
                        .map(|r| {
                            format!(
                                "`{}` ({:?}) → {}",
                                r.path,
                                r.kind,
                                crate::eval::tri_word(f(&r.path))
                            )
                        })
                        .collect();
                    format!("{label}: the readings disagree: {}", detail.join(", "))
                });
            }
            combined
        }
    }
}

fn over_urls(
    elem: &Value,
    scope: &Scope<'_>,
    label: &str,
    mistyped: &dyn Fn(&str) -> Tri,
    f: impl Fn(&crate::normalize::url::UrlReading) -> Tri,
) -> Tri {
    let Value::String(s) = elem else {
        return mistyped("a URL string");
    };
    let readings = scope.readings.url(elem, s);
    match readings.as_ref() {
        Err(why) => {
            scope.note(|| format!("{label}: unknown because {why}"));
            Tri::Unknown
        }
        Ok(list) => {
            let combined = Tri::all_or_none(list.iter().map(&f));
            if combined == Tri::Unknown {
                scope.note(|| {
                    format!(
                        "{label}: the URL's readings disagree ({} parsers)",
                        list.len()
                    )
                });
            }
            combined
        }
    }
}

fn equals(
    elem: &Value,
    expected: &Value,
    kind: Option<ArgKind>,
    scope: &Scope<'_>,
    label: &str,
) -> Tri {
    match (elem, expected) {
        (Value::String(s), Value::String(e)) => {
            if kind == Some(ArgKind::Path) || (kind.is_none() && looks_like_path(s)) {
                let Some(target) = crate::normalize::path::normalize_absolute(e) else {
                    return Tri::from_bool(s == e);
                };
                let folded_target = lower(&target);
                over_paths(elem, s, scope, label, |p| {
                    dual(p == target, lower(p) == folded_target)
                })
            } else {
                Tri::from_bool(s == e)
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            match (
                Decimal::parse(&a.to_string()),
                Decimal::parse(&b.to_string()),
            ) {
                (Some(a), Some(b)) => Tri::from_bool(a == b),
                _ => Tri::Unknown,
            }
        }
        (Value::Bool(a), Value::Bool(b)) => Tri::from_bool(a == b),
        (Value::Null, Value::Null) => Tri::True,
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => {
            Tri::from_bool(elem == expected)
        }
        _ => {
            // A different JSON type: a server may coerce `"1000"` to `1000`, so this is not
            // certainly unequal.
            scope.note(|| {
                format!(
                    "{label}: `equals` is unknown because the value is a {} and the policy compares with a {}",
                    crate::eval::type_name(elem),
                    crate::eval::type_name(expected)
                )
            });
            Tri::Unknown
        }
    }
}

/// `paths` / `urls`: a condition on every element of every declared argument of that group.
pub(crate) fn eval_declared(c: &Cond, scope: &Scope<'_>, group: DeclaredGroup) -> Tri {
    let spec = match scope.facts {
        crate::compile::tools::ToolFacts::Declared(spec) => spec,
        crate::compile::tools::ToolFacts::Undeclared => return Tri::False,
        crate::compile::tools::ToolFacts::Ambiguous(_) => {
            scope.note(|| "the tool matches several `tools` entries that disagree".to_owned());
            return Tri::Unknown;
        }
    };
    let label = match group {
        DeclaredGroup::Paths => "paths",
        DeclaredGroup::Urls => "urls",
    };
    // The elements of every present argument of the group, in declaration order, without
    // collecting them: a list argument contributes its items, any other value itself.
    let mut elements = spec
        .args
        .iter()
        .filter(|(_, kind)| group.includes(**kind))
        .filter_map(|(name, _)| argument(&scope.call.arguments, name))
        .flat_map(|v| match v {
            Value::Array(items) => items.as_slice(),
            other => std::slice::from_ref(other),
        })
        .peekable();
    if elements.peek().is_none() {
        return Tri::False;
    }
    let kind = Some(group.element_kind());
    Tri::all_or_none(elements.map(|e| eval_cond(c, e, e, kind, scope, label)))
}

/// `values`: a condition on every string anywhere in the arguments.
pub(crate) fn eval_values(c: &Cond, scope: &Scope<'_>) -> Tri {
    // First the shape (too deep, or no string at all), then the strings in document order,
    // stopping at the first unknown as `Tri::all_or_none` does; nothing is collected.
    let mut shape = Shape::default();
    for v in scope.call.arguments.values() {
        shape.visit(v, 0);
    }
    if shape.too_deep {
        scope.note(|| {
            format!("values: unknown because the arguments nest deeper than {MAX_VALUES_DEPTH}")
        });
        return Tri::Unknown;
    }
    if !shape.any_string {
        return Tri::False;
    }
    let mut all = AllOrNone::default();
    for v in scope.call.arguments.values() {
        if !each_string(v, &mut |s| {
            all.push(eval_cond(c, s, s, None, scope, "values"))
        }) {
            break;
        }
    }
    all.result()
}

#[derive(Default)]
struct Shape {
    too_deep: bool,
    any_string: bool,
}

impl Shape {
    fn visit(&mut self, v: &Value, depth: usize) {
        if depth > MAX_VALUES_DEPTH {
            self.too_deep = true;
            return;
        }
        match v {
            Value::String(_) => self.any_string = true,
            Value::Array(items) => items.iter().for_each(|i| self.visit(i, depth + 1)),
            Value::Object(map) => map.values().for_each(|i| self.visit(i, depth + 1)),
            _ => {}
        }
    }
}

/// Call `f` on every string in `v` (depth already checked), in document order, while it
/// returns true; false when `f` asked to stop.
fn each_string(v: &Value, f: &mut dyn FnMut(&Value) -> bool) -> bool {
    match v {
        Value::String(_) => f(v),
        Value::Array(items) => items.iter().all(|i| each_string(i, f)),
        Value::Object(map) => map.values().all(|i| each_string(i, f)),
        _ => true,
    }
}

/// `Tri::all_or_none`, fed one result at a time.
#[derive(Default)]
struct AllOrNone {
    any_true: bool,
    any_false: bool,
    unknown: bool,
}

impl AllOrNone {
    /// Record a result; false once the outcome is unknown whatever follows.
    fn push(&mut self, r: Tri) -> bool {
        match r {
            Tri::True => self.any_true = true,
            Tri::False => self.any_false = true,
            Tri::Unknown => self.unknown = true,
        }
        !self.unknown
    }

    fn result(&self) -> Tri {
        match (self.unknown, self.any_true, self.any_false) {
            (false, true, false) => Tri::True,
            (false, false, true) => Tri::False,
            _ => Tri::Unknown,
        }
    }
}
