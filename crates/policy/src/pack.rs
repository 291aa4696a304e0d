//! The canonical policy bundle (`portcullis pack`) and its sha256.
//!
//! The canonical form is the policy as written (environment references unresolved, so no
//! secret from the environment ends up in a bundle or changes its hash), as JSON with object
//! keys sorted and no insignificant whitespace. Comments, key order and YAML style in the
//! source do not change it; any change in meaning does.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::model::PolicyFile;

/// The bundle format version.
pub const BUNDLE_FORMAT: u32 = 1;

/// A packed policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always [`BUNDLE_FORMAT`].
    pub portcullis_bundle: u32,
    /// sha256 (hex) of the canonical policy JSON.
    pub sha256: String,
    /// The canonical policy.
    pub policy: Value,
}

/// Sort every object's keys, recursively.
#[must_use]
pub fn sort_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                if let Some(v) = map.get(k) {
                    out.insert(k.clone(), sort_keys(v));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

/// The canonical JSON text of a policy.
#[must_use]
pub fn canonical_policy_json(policy: &PolicyFile) -> String {
    // Serializing plain data structs to a Value cannot fail; a failure would be a bug, and the
    // empty-object fallback gives a hash that matches no real policy, so pinning fails closed.
    let value = serde_json::to_value(policy).unwrap_or_else(|_| Value::Object(Map::new()));
    sort_keys(&value).to_string()
}

/// Lower-case hex sha256.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Build the bundle of a policy.
#[must_use]
pub fn bundle(policy: &PolicyFile) -> Bundle {
    let canonical = canonical_policy_json(policy);
    let value = serde_json::from_str(&canonical).unwrap_or(Value::Null);
    Bundle {
        portcullis_bundle: BUNDLE_FORMAT,
        sha256: sha256_hex(canonical.as_bytes()),
        policy: value,
    }
}
