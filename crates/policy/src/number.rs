//! Exact comparison of JSON numbers as written, without a lossy trip through `f64`.
//!
//! `50000.0000000000001` must not compare equal to `50000` because a float rounded it: a budget
//! check that rounds in the caller's favour is a loosened verdict.

use std::cmp::Ordering;

/// A decimal number: sign, significant digits (no leading/trailing zeros) and the power of ten
/// of the last digit. Zero has no digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

/// Exponents beyond this are refused: `1e999999999` is not a value a tool acts on, and the
/// comparison would otherwise need unbounded memory.
const MAX_EXPONENT: i64 = 10_000;

impl Decimal {
    /// Parse JSON number text (as kept by `arbitrary_precision`). `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(i) => (rest.get(..i)?, rest.get(i + 1..)?),
            None => (rest, ""),
        };
        let mut exponent: i64 = if exp.is_empty() {
            0
        } else {
            let e = exp.strip_prefix('+').unwrap_or(exp);
            if e.is_empty() || e.len() > 7 {
                return None;
            }
            e.parse().ok()?
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if mantissa.contains('.')
            && (frac_part.is_empty() || !frac_part.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let mut digits: Vec<u8> = int_part
            .bytes()
            .chain(frac_part.bytes())
            .map(|b| b - b'0')
            .collect();
        exponent -= i64::try_from(frac_part.len()).ok()?;
        while digits.first() == Some(&0) {
            digits.remove(0);
        }
        while digits.last() == Some(&0) {
            digits.pop();
            exponent += 1;
        }
        if digits.is_empty() {
            return Some(Decimal {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        let magnitude = exponent + i64::try_from(digits.len()).ok()?;
        if magnitude.abs() > MAX_EXPONENT || exponent.abs() > MAX_EXPONENT {
            return None;
        }
        Some(Decimal {
            negative,
            digits,
            exponent,
        })
    }

    fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    fn cmp_magnitude(&self, other: &Decimal) -> Ordering {
        // Compare the position of the most significant digit first.
        let len = |d: &Decimal| d.exponent + d.digits.len() as i64;
        match len(self).cmp(&len(other)) {
            Ordering::Equal => {}
            o => return o,
        }
        let n = self.digits.len().max(other.digits.len());
        for i in 0..n {
            let a = self.digits.get(i).copied().unwrap_or(0);
            let b = other.digits.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        Ordering::Equal
    }

    /// Whether the number is an integer.
    pub(crate) fn is_integer(&self) -> bool {
        self.exponent >= 0
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => {
                return if other.negative {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
            }
            (false, true) => {
                return if self.negative {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
            (false, false) => {}
        }
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn compares_exactly() {
        assert!(d("50000.0000000000001") > d("50000"));
        assert_eq!(d("50000.0").cmp(&d("5e4")), Ordering::Equal);
        assert!(d("-1") < d("0"));
        assert!(d("-0") == d("0"));
        assert!(d("-2") < d("-1.5"));
        assert!(d("18446744073709551616") > d("18446744073709551615"));
        assert!(d("1e-3") < d("0.01"));
        assert!(d("0.001") == d("1e-3"));
        assert!(d("1E+2") == d("100"));
    }

    #[test]
    fn refuses_non_numbers_and_huge_exponents() {
        assert!(Decimal::parse("1e400").is_some());
        assert!(Decimal::parse("1e99999999").is_none());
        assert!(Decimal::parse("abc").is_none());
        assert!(Decimal::parse("1.").is_none());
        assert!(Decimal::parse(".5").is_none());
        assert!(Decimal::parse("").is_none());
        assert!(Decimal::parse("NaN").is_none());
    }

    #[test]
    fn integer_detection() {
        assert!(d("100").is_integer());
        assert!(d("1.0").is_integer());
        assert!(d("1e2").is_integer());
        assert!(!d("1.5").is_integer());
    }
}
