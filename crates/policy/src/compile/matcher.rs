//! Compiling `when` / `unless` (`MatchSpec`).

use crate::call::{METHOD_PROMPTS_GET, METHOD_RESOURCES_READ, METHOD_TOOLS_CALL};
use crate::compile::cond::{Cond, compile_cond};
use crate::compile::names::NameSet;
use crate::decision::Effect;
use crate::model::MatchSpec;

/// Which argument a condition looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ArgRef {
    /// A top-level argument by name, with the name folded as a lenient server might fold a
    /// call's keys (computed once here rather than on every evaluation).
    Name { name: String, folded: String },
    /// A JSON pointer into the arguments object (`/options/path`).
    Pointer(String),
}

impl ArgRef {
    pub(crate) fn display(&self) -> &str {
        match self {
            ArgRef::Name { name: n, .. } | ArgRef::Pointer(n) => n,
        }
    }
}

/// A condition on one argument, with its trace label (`args.NAME`) built at compile time so
/// that evaluation never formats it.
#[derive(Clone, Debug)]
pub(crate) struct ArgCond {
    pub(crate) arg: ArgRef,
    pub(crate) cond: Cond,
    pub(crate) label: String,
}

/// A compiled `when`/`unless`: every field given must hold (Kleene AND).
#[derive(Clone, Debug, Default)]
pub(crate) struct Matcher {
    pub(crate) server: Option<NameSet>,
    pub(crate) tool: Option<NameSet>,
    /// `None` means the default, `tools/call` only.
    pub(crate) method: Option<Vec<String>>,
    pub(crate) effect: Option<Vec<Effect>>,
    pub(crate) principal: Option<NameSet>,
    pub(crate) agent: Option<NameSet>,
    pub(crate) labels: Option<Vec<String>>,
    pub(crate) args: Vec<ArgCond>,
    pub(crate) paths: Option<Cond>,
    pub(crate) urls: Option<Cond>,
    pub(crate) values: Option<Cond>,
    pub(crate) any: Option<Vec<Matcher>>,
    pub(crate) not: Option<Box<Matcher>>,
}

/// The methods a rule may name.
pub(crate) const EVALUATED_METHODS: [&str; 3] =
    [METHOD_TOOLS_CALL, METHOD_RESOURCES_READ, METHOD_PROMPTS_GET];

fn names(
    list: Option<&crate::model::OneOrMany<String>>,
    field: &str,
) -> Result<Option<NameSet>, String> {
    list.map(|l| NameSet::new(l.as_slice()).map_err(|e| format!("{field}: {e}")))
        .transpose()
}

/// Compile a matcher. `nested` is true inside `any`/`not`, where `method` keeps no default.
pub(crate) fn compile_matcher(spec: &MatchSpec) -> Result<Matcher, String> {
    let method = match &spec.method {
        None => None,
        Some(m) => {
            let list = m.as_slice().to_vec();
            for name in &list {
                if !EVALUATED_METHODS.contains(&name.as_str()) {
                    return Err(format!(
                        "method: `{name}` is not an evaluated method; use tools/call, resources/read or prompts/get"
                    ));
                }
            }
            Some(list)
        }
    };
    let mut args = Vec::new();
    for (key, cond) in &spec.args {
        let arg = if key.starts_with('/') {
            ArgRef::Pointer(key.clone())
        } else if key.is_empty() {
            return Err("args: an empty argument name".to_owned());
        } else {
            ArgRef::Name {
                name: key.clone(),
                folded: crate::eval::fold_key(key),
            }
        };
        let compiled = compile_cond(cond).map_err(|e| format!("args.{key}: {e}"))?;
        args.push(ArgCond {
            label: format!("args.{}", arg.display()),
            arg,
            cond: compiled,
        });
    }
    let cond = |c: Option<&crate::model::CondSpec>, field: &str| {
        c.map(|c| compile_cond(c).map_err(|e| format!("{field}: {e}")))
            .transpose()
    };
    let any = match &spec.any {
        None => None,
        Some(list) if list.is_empty() => return Err("any: an empty list never holds".to_owned()),
        Some(list) => {
            let mut out = Vec::new();
            for (i, m) in list.iter().enumerate() {
                out.push(compile_matcher(m).map_err(|e| format!("any[{i}].{e}"))?);
            }
            Some(out)
        }
    };
    let not = spec
        .not
        .as_ref()
        .map(|m| {
            compile_matcher(m)
                .map(Box::new)
                .map_err(|e| format!("not.{e}"))
        })
        .transpose()?;
    let labels = spec.labels.as_ref().map(|l| l.as_slice().to_vec());
    if labels.as_ref().is_some_and(Vec::is_empty) {
        return Err("labels: an empty list; remove the field or name a label".to_owned());
    }
    let effect = spec.effect.as_ref().map(|e| e.as_slice().to_vec());
    if effect.as_ref().is_some_and(Vec::is_empty) {
        return Err("effect: an empty list never matches".to_owned());
    }
    Ok(Matcher {
        server: names(spec.server.as_ref(), "server")?,
        tool: names(spec.tool.as_ref(), "tool")?,
        method,
        effect,
        principal: names(spec.principal.as_ref(), "principal")?,
        agent: names(spec.agent.as_ref(), "agent")?,
        labels,
        args,
        paths: cond(spec.paths.as_ref(), "paths")?,
        urls: cond(spec.urls.as_ref(), "urls")?,
        values: cond(spec.values.as_ref(), "values")?,
        any,
        not,
    })
}

impl Matcher {
    /// Whether the matcher looks at arguments anywhere.
    pub(crate) fn uses_args(&self) -> bool {
        !self.args.is_empty()
            || self.paths.is_some()
            || self.urls.is_some()
            || self.values.is_some()
            || self
                .any
                .as_ref()
                .is_some_and(|a| a.iter().any(Matcher::uses_args))
            || self.not.as_ref().is_some_and(|n| n.uses_args())
    }

    /// Whether the matcher looks at session labels anywhere.
    pub(crate) fn uses_labels(&self) -> bool {
        self.labels.is_some()
            || self
                .any
                .as_ref()
                .is_some_and(|a| a.iter().any(Matcher::uses_labels))
            || self.not.as_ref().is_some_and(|n| n.uses_labels())
    }
}
