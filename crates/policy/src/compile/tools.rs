//! The `tools` table: trusted effect and argument kinds per `server.tool`.

use std::collections::{BTreeMap, HashMap};

use globset::{GlobBuilder, GlobMatcher};

use crate::compile::names::has_glob_meta;
use crate::decision::Effect;
use crate::model::{ArgKind, ToolSpec};

/// What the policy says about one tool of one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ToolFacts<'a> {
    /// No entry: effect unknown (treated as a mutation), argument kinds undeclared.
    Undeclared,
    /// Exactly one entry (or several that agree).
    Declared(&'a ToolSpec),
    /// Several glob entries disagree: effect unknown, argument kinds ambiguous.
    Ambiguous(Vec<String>),
}

impl ToolFacts<'_> {
    pub(crate) fn effect(&self) -> Effect {
        match self {
            ToolFacts::Declared(spec) => spec.effect,
            ToolFacts::Undeclared | ToolFacts::Ambiguous(_) => Effect::Unknown,
        }
    }

    pub(crate) fn arg_kind(&self, name: &str) -> Option<ArgKind> {
        match self {
            ToolFacts::Declared(spec) => spec.args.get(name).copied(),
            ToolFacts::Undeclared | ToolFacts::Ambiguous(_) => None,
        }
    }
}

/// The compiled table.
#[derive(Clone, Debug, Default)]
pub(crate) struct ToolTable {
    exact: HashMap<String, ToolSpec>,
    /// The exact entries again, by server then tool (split at the key's first `.`), so that a
    /// lookup for a server name without a `.` (every valid one) needs no `server.tool` string.
    by_server: BTreeMap<String, BTreeMap<String, ToolSpec>>,
    globs: Vec<(String, GlobMatcher, ToolSpec)>,
}

impl ToolTable {
    pub(crate) fn compile(tools: &BTreeMap<String, ToolSpec>) -> Result<Self, Vec<String>> {
        let mut table = ToolTable::default();
        let mut errors = Vec::new();
        for (key, spec) in tools {
            if !key.contains('.') {
                errors.push(format!(
                    "tools.{key}: the key must be `server.tool` (e.g. `fs.read_text_file` or `fs.*`)"
                ));
                continue;
            }
            if has_glob_meta(key) {
                match GlobBuilder::new(key).literal_separator(false).build() {
                    Ok(g) => table
                        .globs
                        .push((key.clone(), g.compile_matcher(), spec.clone())),
                    Err(e) => errors.push(format!("tools.{key}: invalid glob: {}", e.kind())),
                }
            } else {
                table.exact.insert(key.clone(), spec.clone());
                if let Some((server, tool)) = key.split_once('.') {
                    table
                        .by_server
                        .entry(server.to_owned())
                        .or_default()
                        .insert(tool.to_owned(), spec.clone());
                }
            }
        }
        if errors.is_empty() {
            Ok(table)
        } else {
            Err(errors)
        }
    }

    /// The facts for `server.tool`: an exact entry wins; otherwise the glob entries, which must
    /// agree (if they do not, the tool is ambiguous and treated as unknown — never the looser one).
    pub(crate) fn lookup(&self, server: &str, tool: &str) -> ToolFacts<'_> {
        if !server.contains('.') {
            // `server.tool` splits at its first `.` back into `server` and `tool`.
            if let Some(spec) = self.by_server.get(server).and_then(|t| t.get(tool)) {
                return ToolFacts::Declared(spec);
            }
            if self.globs.is_empty() {
                return ToolFacts::Undeclared;
            }
        }
        let key = format!("{server}.{tool}");
        if let Some(spec) = self.exact.get(&key) {
            return ToolFacts::Declared(spec);
        }
        let mut found: Option<&ToolSpec> = None;
        let mut keys = Vec::new();
        let mut disagree = false;
        for (pattern, matcher, spec) in &self.globs {
            if matcher.is_match(&key) {
                keys.push(pattern.clone());
                match found {
                    None => found = Some(spec),
                    Some(prev) if prev == spec => {}
                    Some(_) => disagree = true,
                }
            }
        }
        match (found, disagree) {
            (_, true) => ToolFacts::Ambiguous(keys),
            (Some(spec), false) => ToolFacts::Declared(spec),
            (None, false) => ToolFacts::Undeclared,
        }
    }

    /// Whether any entry (exact or glob) covers `server.tool`.
    pub(crate) fn covers(&self, server: &str, tool: &str) -> bool {
        !matches!(self.lookup(server, tool), ToolFacts::Undeclared)
    }
}
