//! The `tools` table: trusted effect and argument kinds per `server.tool`.

use std::collections::{BTreeMap, HashMap};

use globset::{GlobBuilder, GlobMatcher};

use crate::call::ToolHints;
use crate::compile::names::has_glob_meta;
use crate::decision::Effect;
use crate::model::{ArgKind, ToolSpec};
use crate::tri::Tri;

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

    /// The effect a call is evaluated with (DESIGN §3.5): the policy's classification, made
    /// stricter when the server's own annotations say a tool declared `read` changes something,
    /// and loosened only for a tool the policy does not declare, to `read`, when the operator
    /// trusts this server's annotations and they come from a vetted definition. An explicit or
    /// ambiguous declaration is never loosened: the operator's word wins over the server's.
    pub(crate) fn effect_with(&self, hints: Option<&ToolHints>, trust: bool) -> CallEffect {
        let declared = self.effect();
        let Some(hints) = hints else {
            return CallEffect::Known(declared);
        };
        match self {
            ToolFacts::Declared(_) if declared == Effect::Read && hints.says_mutating() => {
                CallEffect::Contested(declared)
            }
            ToolFacts::Undeclared if trust && hints.vetted && hints.says_read_only() => {
                CallEffect::Known(Effect::Read)
            }
            _ => CallEffect::Known(declared),
        }
    }

    pub(crate) fn arg_kind(&self, name: &str) -> Option<ArgKind> {
        match self {
            ToolFacts::Declared(spec) => spec.args.get(name).copied(),
            ToolFacts::Undeclared | ToolFacts::Ambiguous(_) => None,
        }
    }
}

/// A call's effect as evaluation sees it.
///
/// "Stricter" cannot mean swapping `read` for `unknown`: a `deny` rule written for reads (say,
/// of secret paths) would then stop matching, and an approval rule for unknown effects could
/// start to, which is looser. So a contested effect is *both*: an `effect` condition that lists
/// one of the two but not the other is unknown (Kleene), which a deny honours and an allow does
/// not, exactly like any other uncertain fact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallEffect {
    /// One effect.
    Known(Effect),
    /// The policy declares this effect (`read`), but the server says the tool changes something:
    /// it may be this or `unknown`.
    Contested(Effect),
}

impl CallEffect {
    /// Whether an `effect` condition listing `listed` holds.
    pub(crate) fn within(self, listed: &[Effect]) -> Tri {
        match self {
            CallEffect::Known(e) => Tri::from_bool(listed.contains(&e)),
            CallEffect::Contested(e) => {
                match (listed.contains(&e), listed.contains(&Effect::Unknown)) {
                    (true, true) => Tri::True,
                    (false, false) => Tri::False,
                    _ => Tri::Unknown,
                }
            }
        }
    }

    /// The effect recorded with the decision (audit, approvals): the stricter one.
    pub(crate) fn reported(self) -> Effect {
        match self {
            CallEffect::Known(e) => e,
            CallEffect::Contested(_) => Effect::Unknown,
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
