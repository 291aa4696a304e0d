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
        self.set.is_match(name)
    }
}
