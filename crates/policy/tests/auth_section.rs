//! The `auth` section: API keys are stored as well-formed, unique sha256 digests.

use portcullis_policy::CompiledPolicy;

const HASH: &str = "4c94485e0c21ae6c41ce1dfe7b6bfaceea5ab68e40a2476f50208e526f506080";

fn compile(auth: &str) -> Result<CompiledPolicy, String> {
    let text = format!("version: 1\nservers:\n  a: {{ command: [x] }}\n{auth}");
    CompiledPolicy::from_yaml(&text, "p.yaml", &|_| None).map_err(|e| e.to_string())
}

#[test]
fn accepts_hashed_api_keys() {
    let policy = compile(&format!(
        "auth:\n  api_keys:\n    - {{ principal: alice, sha256: {HASH} }}\n"
    ))
    .unwrap();
    let auth = policy.raw().auth.clone().unwrap();
    assert_eq!(auth.api_keys[0].principal, "alice");
}

#[test]
fn rejects_a_key_that_is_not_a_sha256() {
    let error = compile("auth:\n  api_keys:\n    - { principal: alice, sha256: secret-key }\n")
        .unwrap_err();
    assert!(
        error.contains("`sha256` must be 64 lower-case hex digits"),
        "{error}"
    );
}

#[test]
fn rejects_two_principals_with_one_key() {
    let error = compile(&format!(
        "auth:\n  api_keys:\n    - {{ principal: a, sha256: {HASH} }}\n    - {{ principal: b, sha256: {HASH} }}\n"
    ))
    .unwrap_err();
    assert!(
        error.contains("two API keys have the same `sha256`"),
        "{error}"
    );
}

#[test]
fn rejects_unknown_auth_fields() {
    let error = compile("auth:\n  api_key: []\n").unwrap_err();
    assert!(error.contains("api_key"), "{error}");
}
