//! `portcullis schema`: print the JSON Schema of the policy file.

use anyhow::Result;
use clap::Args;

/// Print the JSON Schema of the policy file, for editors (YAML language servers) to
/// autocomplete and validate policies.
///
/// Example, in VS Code with the YAML extension, at the top of a policy:
///   # yaml-language-server: $schema=./docs/policy.schema.json
#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {}

pub(crate) fn run(_: &SchemaArgs) -> Result<u8> {
    println!("{}", portcullis_policy::schema::policy_json_schema());
    Ok(crate::EXIT_OK)
}
