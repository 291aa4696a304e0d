//! Tool fingerprints, the lock file, and the pinning decision (DESIGN §6).
//!
//! A tool's fingerprint is the sha256 of the canonical JSON (keys sorted at every level, no
//! whitespace, number text kept) of the object of its identity fields: `name`, `title`,
//! `description`, `inputSchema`, `outputSchema`, `annotations`, `icons`. A field the server
//! leaves out is left out. Key order and whitespace are therefore no change; anything a model or
//! the server acts on is: hashing only the description would let a schema change slip through.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use portcullis_policy::model::PinMode;
use portcullis_store::{PinRecord, PinStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The identity fields of a tool, in the order they are documented.
pub(crate) const IDENTITY_FIELDS: [&str; 7] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
    "icons",
];

/// The lock file's name, beside the policy file.
pub const LOCK_FILE: &str = "portcullis.lock";

/// The only lock file version this build reads.
const LOCK_VERSION: u32 = 1;

/// `value` with every object's keys sorted, recursively.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                if let Some(v) = map.get(key) {
                    out.insert(key.clone(), sorted(v));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The canonical JSON of a tool's identity fields and its fingerprint (sha256, hex).
pub fn fingerprint(tool: &Value) -> (String, String) {
    let mut identity = Map::new();
    for field in IDENTITY_FIELDS {
        if let Some(v) = tool.get(field) {
            identity.insert(field.to_owned(), v.clone());
        }
    }
    let canonical = sorted(&Value::Object(identity)).to_string();
    let sha = hex::encode(Sha256::digest(canonical.as_bytes()));
    (canonical, sha)
}

/// `portcullis.lock`: the approved fingerprint of every pinned tool, keyed `server.tool`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    /// Format version; must be 1.
    pub version: u32,
    /// `server.tool` → sha256 (hex).
    pub tools: BTreeMap<String, String>,
}

/// Why a lock file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The file could not be read or written.
    #[error("cannot {during} `{path}`: {source}")]
    Io {
        /// `read` or `write`.
        during: &'static str,
        /// The lock file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a version-1 lock file.
    #[error("`{path}` is not a valid portcullis.lock: {reason}")]
    Invalid {
        /// The lock file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl LockFile {
    /// Where the lock file of `policy` lives.
    #[must_use]
    pub fn path_for(policy: &Path) -> PathBuf {
        policy
            .parent()
            .map_or_else(|| PathBuf::from(LOCK_FILE), |dir| dir.join(LOCK_FILE))
    }

    /// Reads a lock file; a missing file is an empty lock (which approves nothing).
    pub fn read(path: &Path) -> Result<LockFile, LockError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LockFile {
                    version: LOCK_VERSION,
                    tools: BTreeMap::new(),
                });
            }
            Err(source) => {
                return Err(LockError::Io {
                    during: "read",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let lock: LockFile = serde_json::from_str(&text).map_err(|e| LockError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if lock.version != LOCK_VERSION {
            return Err(LockError::Invalid {
                path: path.to_path_buf(),
                reason: format!("version {} (this build reads version 1)", lock.version),
            });
        }
        Ok(lock)
    }

    /// Writes the lock file (one tool per line, sorted, so a review diff shows each change).
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| LockError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|source| LockError::Io {
            during: "write",
            path: path.to_path_buf(),
            source,
        })
    }

    /// An empty version-1 lock.
    #[must_use]
    pub fn empty() -> LockFile {
        LockFile {
            version: LOCK_VERSION,
            tools: BTreeMap::new(),
        }
    }
}

/// What is known about one listed tool before the pinning decision.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    pub(crate) server: String,
    pub(crate) tool: String,
    pub(crate) sha: String,
    pub(crate) canonical: String,
    /// Poisoning findings and schema problems; any of them keeps the tool from being approved
    /// automatically.
    pub(crate) findings: Vec<String>,
}

/// The pinning decision for one tool: the row to store. The tool is usable when the returned
/// record's status is [`PinStatus::Approved`].
///
/// - An approved fingerprint equal to the one seen wins: a human (or first sight) approved this
///   exact definition, findings included.
/// - `lock`: the approved fingerprint is the lock file's; anything else is pending.
/// - `tofu`: on first contact with a server (`first_contact`: the store has no pin of it), a
///   tool without findings is approved as seen; later, a new or changed tool is pending.
/// - A tool with findings that is not approved is quarantined.
pub(crate) fn decide(
    mode: PinMode,
    lock: Option<&LockFile>,
    stored: Option<&PinRecord>,
    first_contact: bool,
    seen: &Observed,
) -> PinRecord {
    let key = format!("{}.{}", seen.server, seen.tool);
    let approved_sha = match mode {
        PinMode::Lock => lock.and_then(|l| l.tools.get(&key).cloned()),
        PinMode::Tofu => stored.and_then(|p| p.approved_sha.clone()),
    };
    let record = |approved_sha: Option<String>, status, finding: Option<String>| PinRecord {
        server: seen.server.clone(),
        tool: seen.tool.clone(),
        approved_sha,
        seen_sha: seen.sha.clone(),
        seen_def: seen.canonical.clone(),
        status,
        finding,
        updated: String::new(),
    };
    if approved_sha.as_deref() == Some(seen.sha.as_str()) {
        return record(approved_sha, PinStatus::Approved, None);
    }
    if !seen.findings.is_empty() {
        return record(
            approved_sha,
            PinStatus::Quarantined,
            Some(seen.findings.join("; ")),
        );
    }
    match (mode, &approved_sha) {
        (PinMode::Tofu, None) if first_contact => {
            record(Some(seen.sha.clone()), PinStatus::Approved, None)
        }
        (PinMode::Lock, None) => record(
            None,
            PinStatus::Pending,
            Some(format!("`{key}` is not in portcullis.lock")),
        ),
        (PinMode::Tofu, None) => record(
            None,
            PinStatus::Pending,
            Some("a new tool, first seen after the server's tools were pinned".to_owned()),
        ),
        (_, Some(_)) => record(
            approved_sha,
            PinStatus::Pending,
            Some("the definition changed since it was approved".to_owned()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn key_order_and_whitespace_are_not_changes() {
        let a: Value = serde_json::from_str(
            r#"{"name":"read","description":"Read a file","inputSchema":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{ "inputSchema" : { "required" : ["path"], "properties": {"path": {"type":"string"}}, "type": "object" },
                "description": "Read a file", "name": "read" }"#,
        )
        .unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn every_identity_field_is_a_change_and_others_are_not() {
        let base = json!({"name": "t", "description": "d", "inputSchema": {"type": "object"}});
        let (_, sha) = fingerprint(&base);
        for (field, value) in [
            ("name", json!("u")),
            ("title", json!("T")),
            ("description", json!("e")),
            (
                "inputSchema",
                json!({"type": "object", "properties": {"x": {}}}),
            ),
            ("outputSchema", json!({"type": "object"})),
            ("annotations", json!({"readOnlyHint": true})),
            ("icons", json!([{"src": "x"}])),
        ] {
            let mut changed = base.clone();
            changed[field] = value;
            assert_ne!(fingerprint(&changed).1, sha, "{field}");
        }
        let mut other = base.clone();
        other["_meta"] = json!({"x": 1});
        other["execution"] = json!({"taskSupport": "optional"});
        assert_eq!(fingerprint(&other).1, sha);
    }

    fn seen(sha: &str, findings: &[&str]) -> Observed {
        Observed {
            server: "fs".into(),
            tool: "read".into(),
            sha: sha.into(),
            canonical: "{}".into(),
            findings: findings.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    #[test]
    fn tofu_approves_on_first_contact_and_holds_later_changes() {
        let first = decide(PinMode::Tofu, None, None, true, &seen("a", &[]));
        assert_eq!(first.status, PinStatus::Approved);
        assert_eq!(first.approved_sha.as_deref(), Some("a"));
        let same = decide(PinMode::Tofu, None, Some(&first), false, &seen("a", &[]));
        assert_eq!(same.status, PinStatus::Approved);
        let changed = decide(PinMode::Tofu, None, Some(&first), false, &seen("b", &[]));
        assert_eq!(changed.status, PinStatus::Pending);
        assert_eq!(changed.approved_sha.as_deref(), Some("a"));
        let new = decide(PinMode::Tofu, None, None, false, &seen("c", &[]));
        assert_eq!(new.status, PinStatus::Pending);
        let poisoned = decide(PinMode::Tofu, None, None, true, &seen("d", &["bidi"]));
        assert_eq!(poisoned.status, PinStatus::Quarantined);
        assert_eq!(poisoned.finding.as_deref(), Some("bidi"));
    }

    #[test]
    fn lock_approves_only_what_the_lock_names() {
        let mut lock = LockFile::empty();
        lock.tools.insert("fs.read".into(), "a".into());
        let ok = decide(PinMode::Lock, Some(&lock), None, true, &seen("a", &["x"]));
        assert_eq!(ok.status, PinStatus::Approved, "a locked definition wins");
        let changed = decide(PinMode::Lock, Some(&lock), None, true, &seen("b", &[]));
        assert_eq!(changed.status, PinStatus::Pending);
        let none = decide(PinMode::Lock, None, None, true, &seen("a", &[]));
        assert_eq!(none.status, PinStatus::Pending);
    }

    #[test]
    fn lock_file_round_trips_and_refuses_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        assert_eq!(LockFile::read(&path).unwrap(), LockFile::empty());
        let mut lock = LockFile::empty();
        lock.tools.insert("fs.b".into(), "2".into());
        lock.tools.insert("fs.a".into(), "1".into());
        lock.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.find("fs.a").unwrap() < text.find("fs.b").unwrap());
        assert_eq!(LockFile::read(&path).unwrap(), lock);
        std::fs::write(&path, r#"{"version":2,"tools":{}}"#).unwrap();
        assert!(matches!(
            LockFile::read(&path),
            Err(LockError::Invalid { .. })
        ));
    }
}
