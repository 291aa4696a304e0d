//! Evaluating value conditions on arguments, over every reading of every element.

use serde_json::Value;

use crate::compile::cond::{Cond, Test};
use crate::eval::Scope;
use crate::eval::args::{ArgLookup, DeclaredGroup};
use crate::model::{ArgKind, JsonType};
use crate::normalize::path::is_under;
use crate::normalize::secret::find_secret;
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

fn has_element_tests(c: &Cond) -> bool {
    c.any_test(&|t| !matches!(t, Test::Present(_) | Test::Type(_)))
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
            Value::String(s) => Tri::from_bool(find_secret(s).is_some() == *expected),
            Value::Number(_) | Value::Bool(_) | Value::Null => Tri::from_bool(!*expected),
            _ => mistyped("a string"),
        },
        Test::Glob(g) => with_string(elem, kind, scope, label, &mistyped, |s, is_path| {
            if is_path {
                dual(g.path_exact.is_match(s), g.path_folded.is_match(s))
            } else {
                dual(g.text_exact.is_match(s), g.text_folded.is_match(s))
            }
        }),
        Test::Regex(r) => with_string(elem, kind, scope, label, &mistyped, |s, _| {
            dual(r.exact.is_match(s), r.folded.is_match(s))
        }),
        Test::Contains(needle) => with_string(elem, kind, scope, label, &mistyped, |s, _| {
            dual(
                s.contains(needle.as_str()),
                s.to_lowercase().contains(&needle.to_lowercase()),
            )
        }),
        Test::Under(bases) => {
            let Value::String(s) = elem else {
                return mistyped("a path string");
            };
            over_paths(elem, s, scope, label, |p| {
                let exact = bases.iter().any(|b| is_under(p, b));
                let lp = p.to_lowercase();
                let folded = bases.iter().any(|b| is_under(&lp, &b.to_lowercase()));
                dual(exact, folded)
            })
        }
        Test::Host(set) => over_urls(elem, scope, label, &mistyped, |r| match &r.host {
            None => Tri::False,
            Some(UrlHost::Name(n)) => Tri::from_bool(set.is_match(n)),
            Some(UrlHost::Ip(ip)) => Tri::from_bool(set.is_match(ip.to_string())),
        }),
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
    if kind == Some(ArgKind::Path) {
        over_paths(elem, s, scope, label, |p| f(p, true))
    } else {
        f(s, false)
    }
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
            let results: Vec<Tri> = list.iter().map(|r| f(&r.path)).collect();
            let combined = Tri::all_or_none(results.iter().copied());
            if combined == Tri::Unknown {
                scope.note(|| {
                    let detail: Vec<String> = list
                        .iter()
                        .zip(&results)
                        .map(|(r, t)| {
                            format!(
                                "`{}` ({:?}) → {}",
                                r.path,
                                r.kind,
                                crate::eval::tri_word(*t)
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
            if kind == Some(ArgKind::Path) {
                let Some(target) = crate::normalize::path::normalize_absolute(e) else {
                    return Tri::from_bool(s == e);
                };
                over_paths(elem, s, scope, label, |p| {
                    dual(p == target, p.to_lowercase() == target.to_lowercase())
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
    let spec = match &scope.facts {
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
    let mut elements: Vec<&Value> = Vec::new();
    for (name, kind) in &spec.args {
        if !group.includes(*kind) {
            continue;
        }
        match scope.call.arguments.get(name) {
            None => {}
            Some(Value::Array(items)) => elements.extend(items.iter()),
            Some(v) => elements.push(v),
        }
    }
    if elements.is_empty() {
        return Tri::False;
    }
    let kind = Some(group.element_kind());
    Tri::all_or_none(
        elements
            .into_iter()
            .map(|e| eval_cond(c, e, e, kind, scope, label)),
    )
}

/// `values`: a condition on every string anywhere in the arguments.
pub(crate) fn eval_values(c: &Cond, scope: &Scope<'_>) -> Tri {
    let mut strings = Vec::new();
    let mut too_deep = false;
    for v in scope.call.arguments.values() {
        collect_strings(v, 0, &mut strings, &mut too_deep);
    }
    if too_deep {
        scope.note(|| {
            format!("values: unknown because the arguments nest deeper than {MAX_VALUES_DEPTH}")
        });
        return Tri::Unknown;
    }
    if strings.is_empty() {
        return Tri::False;
    }
    Tri::all_or_none(
        strings
            .into_iter()
            .map(|s| eval_cond(c, s, s, None, scope, "values")),
    )
}

fn collect_strings<'a>(v: &'a Value, depth: usize, out: &mut Vec<&'a Value>, too_deep: &mut bool) {
    if depth > MAX_VALUES_DEPTH {
        *too_deep = true;
        return;
    }
    match v {
        Value::String(_) => out.push(v),
        Value::Array(items) => items
            .iter()
            .for_each(|i| collect_strings(i, depth + 1, out, too_deep)),
        Value::Object(map) => map
            .values()
            .for_each(|i| collect_strings(i, depth + 1, out, too_deep)),
        _ => {}
    }
}
