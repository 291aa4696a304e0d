//! The JSON Schema of the policy file, for editors.

use crate::model::PolicyFile;

/// The JSON Schema (draft 2020-12) of a policy file, pretty-printed.
#[must_use]
pub fn policy_json_schema() -> String {
    let schema = schemars::schema_for!(PolicyFile);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
