//! RFC 8785 JSON Canonicalization Scheme (JCS), for the digests that bind approvals to calls and for
//! the bytes an approval receipt's signature covers.
//!
//! - Object members are sorted by their names as UTF-16 code units (RFC 8785 §3.2.3), which differs
//!   from byte order for characters above U+FFFF.
//! - Strings are written with the minimal escapes of §3.2.2.2: `\"`, `\\`, `\b \t \n \f \r`, other
//!   controls as `\u00xx` (lower-case hex); everything else is literal UTF-8.
//! - Numbers are written as ECMAScript's `Number.prototype.toString` writes the IEEE 754 double
//!   (§3.2.2.3). The gateway keeps number text exactly as received (`arbitrary_precision`), so two
//!   different texts could become one double: `12345678901234567891` and `12345678901234567890`
//!   both become `12345678901234567000`. A digest that merged them would let an approval for one
//!   cover the other. So a number is canonicalized only when its text denotes *exactly* the value
//!   of its canonical form; otherwise [`canonical_json`] fails and the caller denies. Texts that are
//!   the same number (`1`, `1.0`, `1e0`, `-0`, `0`) share one canonical form, as RFC 8785 says.

use serde_json::{Map, Value};

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JcsError {
    /// A number whose value is not exactly an IEEE 754 double (too precise, too large, or not
    /// finite), so canonicalizing it would merge it with another number.
    #[error(
        "the number `{0}` is not exactly representable as a double, so it cannot be canonicalized"
    )]
    InexactNumber(String),
}

/// The RFC 8785 canonical form of `value`.
///
/// # Errors
///
/// [`JcsError::InexactNumber`] for a number that a double cannot hold exactly.
pub fn canonical_json(value: &Value) -> Result<String, JcsError> {
    let mut out = String::new();
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut String) -> Result<(), JcsError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => out.push_str(&canonical_number(&number.to_string())?),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, out)?,
    }
    Ok(())
}

fn write_object(map: &Map<String, Value>, out: &mut String) -> Result<(), JcsError> {
    let mut members: Vec<(Vec<u16>, &String, &Value)> = map
        .iter()
        .map(|(key, value)| (key.encode_utf16().collect(), key, value))
        .collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    out.push('{');
    for (index, (_, key, value)) in members.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(key, out);
        out.push(':');
        write_value(value, out)?;
    }
    out.push('}');
    Ok(())
}

fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A decimal number reduced to sign, significant digits (no leading or trailing zeros) and the
/// exponent of the last digit: value = ±digits × 10^exponent. Zero has no digits.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

/// Reads JSON number text (`-?int(.frac)?([eE][+-]?exp)?`) exactly.
fn decimal(text: &str) -> Option<Decimal> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(at) => (rest.get(..at)?, rest.get(at + 1..)?),
        None => (rest, "0"),
    };
    let exp: i64 = exp.strip_prefix('+').unwrap_or(exp).parse().ok()?;
    let (int, frac) = match mantissa.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (mantissa, ""),
    };
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_len = i64::try_from(frac.len()).ok()?;
    let mut exponent = exp.checked_sub(frac_len)?;
    let all = format!("{int}{frac}");
    let trimmed = all.trim_start_matches('0');
    let without_trailing = trimmed.trim_end_matches('0');
    let trailing = i64::try_from(trimmed.len() - without_trailing.len()).ok()?;
    exponent = exponent.checked_add(trailing)?;
    let digits = without_trailing.to_owned();
    if digits.is_empty() {
        return Some(Decimal {
            negative: false,
            digits,
            exponent: 0,
        });
    }
    Some(Decimal {
        negative,
        digits,
        exponent,
    })
}

/// The ECMAScript form of the double whose shortest round-trip digits are `digits` with the
/// decimal point after the first `point` of them (the "n" of ECMA-262 Number::toString).
fn ecmascript(negative: bool, digits: &str, point: i64) -> String {
    let k = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let sign = if negative { "-" } else { "" };
    let zeros = |n: i64| "0".repeat(usize::try_from(n).unwrap_or(0));
    if k <= point && point <= 21 {
        format!("{sign}{digits}{}", zeros(point - k))
    } else if 0 < point && point <= 21 {
        let at = usize::try_from(point).unwrap_or(0);
        let (head, tail) = digits.split_at(at.min(digits.len()));
        format!("{sign}{head}.{tail}")
    } else if -6 < point && point <= 0 {
        format!("{sign}0.{}{digits}", zeros(-point))
    } else {
        let e = point - 1;
        let e_sign = if e < 0 { "-" } else { "+" };
        let mut chars = digits.chars();
        let first: String = chars.next().map(String::from).unwrap_or_default();
        let rest: String = chars.collect();
        if rest.is_empty() {
            format!("{sign}{first}e{e_sign}{}", e.unsigned_abs())
        } else {
            format!("{sign}{first}.{rest}e{e_sign}{}", e.unsigned_abs())
        }
    }
}

/// The canonical text of JSON number `text`, or an error if a double cannot hold it exactly.
pub(crate) fn canonical_number(text: &str) -> Result<String, JcsError> {
    let inexact = || JcsError::InexactNumber(text.to_owned());
    let exact = decimal(text).ok_or_else(inexact)?;
    let double: f64 = text.parse().map_err(|_| inexact())?;
    if !double.is_finite() {
        return Err(inexact());
    }
    if double == 0.0 {
        return if exact.digits.is_empty() {
            Ok("0".to_owned())
        } else {
            Err(inexact())
        };
    }
    // `{:e}` prints the shortest digits that round-trip, as ECMAScript's algorithm requires.
    let shortest = format!("{:e}", double.abs());
    let (mantissa, exp) = shortest.split_once('e').ok_or_else(inexact)?;
    let exp: i64 = exp.parse().map_err(|_| inexact())?;
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let canonical = ecmascript(double < 0.0, &digits, exp + 1);
    // The canonical form must denote exactly the number that was sent; shortest digits that
    // round-trip equal the sent digits only when the text was exactly that double.
    match decimal(&canonical) {
        Some(back) if back == exact => Ok(canonical),
        _ => Err(inexact()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn number(text: &str) -> Result<String, JcsError> {
        canonical_number(text)
    }

    #[test]
    fn numbers_follow_ecmascript() {
        for (text, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("0.0", "0"),
            ("1", "1"),
            ("1.0", "1"),
            ("1e0", "1"),
            ("-1.5", "-1.5"),
            ("100", "100"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("123456789012345680000", "123456789012345680000"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1e-7"),
            ("1.5e-7", "1.5e-7"),
            ("4.5", "4.5"),
            ("0.1", "0.1"),
            ("9007199254740992", "9007199254740992"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("5e-324", "5e-324"),
            ("333333333.33333329", "333333333.3333333"),
        ] {
            if text == "333333333.33333329" {
                // Not the shortest text of its double: refused rather than merged.
                assert!(number(text).is_err(), "{text}");
                continue;
            }
            assert_eq!(number(text).as_deref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn inexact_numbers_are_refused() {
        for text in [
            "12345678901234567891",
            "9007199254740993",
            "0.10000000000000001",
            "1e400",
            "-1e400",
            "1e-400",
            "1e99999999999999999999",
        ] {
            assert_eq!(
                number(text),
                Err(JcsError::InexactNumber(text.to_owned())),
                "{text}"
            );
        }
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // U+10000 is D800 DC00 in UTF-16, which sorts before U+FB33 (but after it in UTF-8).
        let value: Value = serde_json::from_str(
            r#"{"\ufb33":1,"\ud800\udc00":2,"b":[true,null,"x"],"a":{"z":"\u0007\n\"","y":-0}}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_json(&value).unwrap(),
            "{\"a\":{\"y\":0,\"z\":\"\\u0007\\n\\\"\"},\"b\":[true,null,\"x\"],\"\u{10000}\":2,\"\u{fb33}\":1}"
        );
    }

    #[test]
    fn rfc_8785_example_numbers() {
        let value = json!({"numbers": [333333333.3333333, 1e30, 4.50, 2e-3, 0.000000000000000000000000001]});
        assert_eq!(
            canonical_json(&value).unwrap(),
            r#"{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}"#
        );
    }
}
