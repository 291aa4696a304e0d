//! Name sets: globs on server, tool, principal and agent names.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// A compiled list of name globs. Names are matched exactly (case-sensitive), `*` crosses `/`.
#[derive(Clone, Debug)]
pub(crate) struct NameSet {
    set: GlobSet,
    /// The patterns as written, for traces and lints.
    pub(crate) patterns: Vec<String>,
    /// Whether every pattern is a literal (no glob metacharacters): usable for indexing.
    pub(crate) all_literal: bool,
}

/// Longest all-literal list matched by comparing strings one by one instead of the glob set.
const MAX_LITERAL_SCAN: usize = 8;

pub(crate) fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

fn name_glob(pattern: &str) -> Result<Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("invalid glob `{pattern}`: {}", e.kind()))
}

impl NameSet {
    pub(crate) fn new(patterns: &[String]) -> Result<Self, String> {
        if patterns.is_empty() {
            return Err("an empty list never matches; remove the field or add a name".to_owned());
        }
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            if p.is_empty() {
                return Err("an empty name never matches".to_owned());
            }
            builder.add(name_glob(p)?);
        }
        let set = builder
            .build()
            .map_err(|e| format!("invalid glob list: {e}"))?;
        Ok(NameSet {
            set,
            patterns: patterns.to_vec(),
            all_literal: patterns.iter().all(|p| !has_glob_meta(p)),
        })
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        // A literal pattern (no glob metacharacter, so no escape either) matches exactly its
        // own text: compare strings rather than run the glob set on the common short lists.
        if self.all_literal && self.patterns.len() <= MAX_LITERAL_SCAN {
            return self.patterns.iter().any(|p| p == name);
        }
        self.set.is_match(name)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::NameSet;

    proptest! {
        /// The string comparison used for short all-literal lists agrees with the glob set.
        #[test]
        fn literal_scan_agrees_with_the_glob_set(
            patterns in proptest::collection::vec("[a-cA-C._/ -]{1,6}|ä|K|\u{212a}", 1..4),
            name in "[a-cA-C._/ -]{0,6}|ä|K|k|\u{212a}",
        ) {
            let set = NameSet::new(&patterns).unwrap();
            prop_assert!(set.all_literal);
            let in_list = patterns.iter().any(|p| p == &name);
            prop_assert_eq!(set.matches(&name), in_list);
            prop_assert_eq!(set.set.is_match(&name), in_list);
            for p in &patterns {
                prop_assert!(set.set.is_match(p));
            }
        }
    }
}
