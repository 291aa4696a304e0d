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

fn jwt(fields: &str) -> Result<CompiledPolicy, String> {
    compile(&format!(
        "auth:\n  jwt: {{ issuer: 'https://idp.example', audience: 'https://mcp.example', {fields} }}\n"
    ))
}

#[test]
fn a_jwks_url_must_be_https_unless_loopback() {
    for url in [
        "http://idp.example/jwks.json",
        "http://10.0.0.5/jwks.json",
        "http://127.0.0.1.evil.example/jwks.json",
        "ftp://idp.example/jwks.json",
    ] {
        let error = jwt(&format!("jwks_url: '{url}'")).unwrap_err();
        assert!(
            error.contains(&format!("`jwks_url` `{url}` is not https")),
            "{error}"
        );
        assert!(
            error.contains(
                "keys fetched in the clear could be replaced; use https (http only on loopback)"
            ),
            "{error}"
        );
    }
    for url in [
        "https://idp.example/jwks.json",
        "http://127.0.0.1:8080/jwks.json",
        "http://localhost/jwks.json",
        "http://[::1]:9/jwks.json",
    ] {
        jwt(&format!("jwks_url: '{url}'")).unwrap();
    }
}

#[test]
fn a_jwks_ca_file_needs_a_jwks_url() {
    jwt("jwks_url: 'https://idp.example/jwks.json', jwks_ca_file: ca.pem").unwrap();
    let error = jwt("jwks_file: jwks.json, jwks_ca_file: ca.pem").unwrap_err();
    assert!(
        error.contains(
            "`jwks_ca_file` without `jwks_url`: it only says whom to trust when fetching the JWKS"
        ),
        "{error}"
    );
}
