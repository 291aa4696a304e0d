//! Three-valued (Kleene) truth, the result of every condition.
//!
//! A condition is `True` or `False` only when the gateway is certain; anything it cannot decide
//! with certainty (a value that does not normalize, a mistyped argument, an internal error) is
//! `Unknown`. Rules then treat `Unknown` asymmetrically (DESIGN §3.4): an allow needs `True`,
//! a stricter rule fires on `True` or `Unknown`.

use serde::Serialize;

/// Kleene three-valued truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tri {
    /// Certainly holds.
    True,
    /// Certainly does not hold.
    False,
    /// Cannot be decided with certainty.
    Unknown,
}

impl Tri {
    /// `True` for `true`, `False` for `false`.
    #[must_use]
    pub const fn from_bool(b: bool) -> Self {
        if b { Tri::True } else { Tri::False }
    }

    /// Kleene conjunction: `False` dominates, then `Unknown`.
    #[must_use]
    pub const fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::False, _) | (_, Tri::False) => Tri::False,
            (Tri::True, Tri::True) => Tri::True,
            _ => Tri::Unknown,
        }
    }

    /// Kleene disjunction: `True` dominates, then `Unknown`.
    #[must_use]
    pub const fn or(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::True, _) | (_, Tri::True) => Tri::True,
            (Tri::False, Tri::False) => Tri::False,
            _ => Tri::Unknown,
        }
    }

    /// Kleene negation: `Unknown` stays `Unknown`.
    #[must_use]
    pub const fn not(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }

    /// Combine the results of one test over several readings (or array elements): `True` when
    /// it holds for all, `False` when for none, `Unknown` otherwise (including no readings).
    #[must_use]
    pub fn all_or_none<I: IntoIterator<Item = Tri>>(results: I) -> Tri {
        let mut any_true = false;
        let mut any_false = false;
        let mut any = false;
        for r in results {
            any = true;
            match r {
                Tri::True => any_true = true,
                Tri::False => any_false = true,
                Tri::Unknown => return Tri::Unknown,
            }
        }
        match (any, any_true, any_false) {
            (false, _, _) => Tri::Unknown,
            (true, true, false) => Tri::True,
            (true, false, true) => Tri::False,
            _ => Tri::Unknown,
        }
    }

    /// Whether this is `True`.
    #[must_use]
    pub const fn is_true(self) -> bool {
        matches!(self, Tri::True)
    }
}

#[cfg(test)]
mod tests {
    use super::Tri::{False as F, True as T, Unknown as U};
    use super::*;

    #[test]
    fn kleene_tables() {
        assert_eq!(T.and(U), U);
        assert_eq!(F.and(U), F);
        assert_eq!(T.or(U), T);
        assert_eq!(F.or(U), U);
        assert_eq!(U.not(), U);
        assert_eq!(T.not(), F);
    }

    #[test]
    fn all_or_none_mixed_is_unknown() {
        assert_eq!(Tri::all_or_none([T, T]), T);
        assert_eq!(Tri::all_or_none([F, F]), F);
        assert_eq!(Tri::all_or_none([T, F]), U);
        assert_eq!(Tri::all_or_none([T, U]), U);
        assert_eq!(Tri::all_or_none([]), U);
    }
}
