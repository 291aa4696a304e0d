//! Finding argument values and checking them against the declared kinds.

use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;

use crate::compile::matcher::ArgRef;
use crate::compile::tools::ToolFacts;
use crate::eval::type_name;
use crate::model::ArgKind;

/// An argument as found in a call.
pub(crate) enum ArgLookup<'a> {
    /// Not in the call (certain).
    Absent,
    /// Present, with its declared kind if the tools entry gives one.
    Present(&'a Value, Option<ArgKind>),
    /// The call carries a key that a server may read as this argument but the gateway cannot
    /// be sure of (a case or Unicode variant of the name), or the kind is ambiguous.
    Ambiguous(String),
}

/// Fold a key the way lenient servers might when binding arguments (case, compatibility forms).
pub(crate) fn fold_key(k: &str) -> String {
    k.nfkc().flat_map(char::to_lowercase).collect()
}

/// Whether `fold_key(k) == folded`, without allocating when `k` is ASCII (the common case):
/// NFKC leaves ASCII unchanged and `char::to_lowercase` of an ASCII character is its ASCII
/// lower case, so the fold of an ASCII key is its byte-wise ASCII lower case.
pub(crate) fn folds_to(k: &str, folded: &str) -> bool {
    if k.is_ascii() {
        k.len() == folded.len()
            && k.bytes()
                .zip(folded.bytes())
                .all(|(a, b)| a.to_ascii_lowercase() == b)
    } else {
        fold_key(k) == folded
    }
}

/// Arguments objects with at most this many keys are searched in order rather than hashed.
const SCAN_KEYS_UP_TO: usize = 8;

/// `args.get(name)`, without hashing the name when the object is small (a tool call has a
/// handful of arguments): `serde_json`'s ordered map hashes every lookup with SipHash, which
/// costs more than comparing a few short keys. Keys are unique, so both find the same value.
pub(crate) fn argument<'a>(args: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if args.len() <= SCAN_KEYS_UP_TO {
        args.iter().find_map(|(k, v)| (k == name).then_some(v))
    } else {
        args.get(name)
    }
}

impl<'a> ArgLookup<'a> {
    pub(crate) fn find(arg: &ArgRef, args: &'a Map<String, Value>, facts: &ToolFacts<'_>) -> Self {
        if let ToolFacts::Ambiguous(keys) = facts {
            return ArgLookup::Ambiguous(format!(
                "the tool matches several `tools` entries that disagree ({})",
                keys.join(", ")
            ));
        }
        match arg {
            ArgRef::Name { name, folded } => {
                if let Some(alias) = args.keys().find(|k| *k != name && folds_to(k, folded)) {
                    return ArgLookup::Ambiguous(format!(
                        "the call carries `{alias}`, which a server may read as `{name}`"
                    ));
                }
                match argument(args, name) {
                    Some(v) => ArgLookup::Present(v, facts.arg_kind(name)),
                    None => ArgLookup::Absent,
                }
            }
            ArgRef::Pointer(pointer) => match pointer_get(args, pointer) {
                Ok(Some(v)) => ArgLookup::Present(v, None),
                Ok(None) => ArgLookup::Absent,
                Err(why) => ArgLookup::Ambiguous(why),
            },
        }
    }
}

/// RFC 6901 lookup inside the arguments object.
fn pointer_get<'a>(
    args: &'a Map<String, Value>,
    pointer: &str,
) -> Result<Option<&'a Value>, String> {
    let mut parts = pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"));
    let Some(first) = parts.next() else {
        return Ok(None);
    };
    let mut current = match argument(args, &first) {
        Some(v) => v,
        None => return Ok(None),
    };
    for part in parts {
        current = match current {
            Value::Object(map) => match argument(map, &part) {
                Some(v) => v,
                None => return Ok(None),
            },
            Value::Array(items) => {
                let idx: usize = match part.parse() {
                    Ok(i) if part == "0" || !part.starts_with('0') => i,
                    _ => return Ok(None),
                };
                match items.get(idx) {
                    Some(v) => v,
                    None => return Ok(None),
                }
            }
            // A pointer through a scalar: the shape is not what the rule expects.
            other => {
                return Err(format!(
                    "`{pointer}` goes through a {} value",
                    type_name(other)
                ));
            }
        };
    }
    Ok(Some(current))
}

/// Whether a value fits a declared kind.
pub(crate) fn fits(kind: ArgKind, v: &Value) -> bool {
    let all_strings = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
    match kind {
        ArgKind::Path | ArgKind::Url | ArgKind::Shell | ArgKind::String => v.is_string(),
        ArgKind::PathList | ArgKind::UrlList | ArgKind::StringList => all_strings(v),
        ArgKind::Number => v.is_number(),
        ArgKind::Integer => v
            .as_number()
            .and_then(|n| crate::number::Decimal::parse(&n.to_string()))
            .is_some_and(|d| d.is_integer()),
        ArgKind::Boolean => v.is_boolean(),
        ArgKind::Any => true,
    }
}

/// DESIGN §3.4: a value of the wrong JSON type for its declared kind makes the call
/// undecidable — denied, never coerced.
pub(crate) fn declared_type_problem(
    facts: &ToolFacts<'_>,
    args: &Map<String, Value>,
) -> Option<String> {
    let ToolFacts::Declared(spec) = facts else {
        return None;
    };
    // A key that differs from a declared argument only by case or compatibility form may be
    // bound to that argument by a lenient server, bypassing conditions on the declared name.
    for key in args.keys() {
        if spec.args.contains_key(key) {
            continue;
        }
        let folded = fold_key(key);
        if let Some(name) = spec.args.keys().find(|n| folds_to(n, &folded)) {
            return Some(format!(
                "the call carries `{key}`, which a server may read as the declared argument `{name}`"
            ));
        }
    }
    for (name, kind) in &spec.args {
        if let Some(v) = argument(args, name)
            && !fits(*kind, v)
        {
            return Some(format!(
                "argument `{name}` is declared `{}` but the call gives a {}",
                kind.as_str(),
                type_name(v)
            ));
        }
    }
    None
}

/// Which declared arguments `paths` / `urls` look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeclaredGroup {
    Paths,
    Urls,
}

impl DeclaredGroup {
    pub(crate) fn includes(self, kind: ArgKind) -> bool {
        match self {
            DeclaredGroup::Paths => matches!(kind, ArgKind::Path | ArgKind::PathList),
            DeclaredGroup::Urls => matches!(kind, ArgKind::Url | ArgKind::UrlList),
        }
    }

    pub(crate) fn element_kind(self) -> ArgKind {
        match self {
            DeclaredGroup::Paths => ArgKind::Path,
            DeclaredGroup::Urls => ArgKind::Url,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::argument;

    proptest! {
        // The scan of small objects against the hashed lookup it stands for, on objects below,
        // at and above the scan limit, with names present and absent, in any case.
        #[test]
        fn argument_finds_what_get_finds(
            keys in prop::collection::vec("[a-cA-C_]{0,3}", 0..14),
            name in "[a-cA-C_]{0,3}",
        ) {
            let args: Map<String, Value> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), Value::from(i)))
                .collect();
            prop_assert_eq!(argument(&args, &name), args.get(&name));
            for k in args.keys() {
                prop_assert_eq!(argument(&args, k), args.get(k));
            }
        }
    }
}
