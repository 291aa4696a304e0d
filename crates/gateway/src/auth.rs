//! Who is calling `portcullis serve`: API keys and JWT bearer tokens from the policy's `auth`
//! section, mapped to the principal (and agent) that rules match and the audit log records.
//!
//! Keys travel as `Authorization: Bearer KEY`. The policy stores only each key's sha256, so a
//! leaked policy file leaks no credential. The presented key is hashed and compared with every
//! stored digest in constant time, so the time taken says nothing about which digest came close.
//!
//! A JWT (`Bearer HEADER.PAYLOAD.SIGNATURE`) is valid when a key of the configured JWKS (chosen
//! by `kid`) verifies its signature with an asymmetric algorithm the key allows, it is within
//! `exp` and `nbf` (60 s leeway), its `iss` is the configured issuer and its `aud` includes the
//! configured audience (this gateway). Its principal is a string claim (`sub` by default).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis_policy::model::{AuthSpec, JwtSpec};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::GatewayError;

/// The principal of requests on a loopback listener when the policy has no `auth` section.
pub const ANONYMOUS: &str = "anonymous";

/// The longest `Authorization` value read; anything longer is refused unread.
pub const MAX_AUTHORIZATION_BYTES: usize = 4096;

/// How often a JWKS URL is fetched again (keys rotate).
pub(crate) const JWKS_REFRESH: Duration = Duration::from_secs(3600);

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 60;

/// The longest principal or agent taken from a token.
const MAX_NAME_LEN: usize = 128;

/// The largest JWKS document read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// What rules match as `principal`; sessions are bound to it.
    pub(crate) principal: String,
    /// What rules match as `agent`, from a token's agent claim.
    pub(crate) agent: Option<String>,
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub(crate) struct Authenticator {
    /// No `auth` section: every request is [`ANONYMOUS`] (only allowed on loopback listeners).
    anonymous: bool,
    /// API keys: `(sha256, principal)` pairs.
    keys: Vec<([u8; 32], String)>,
    jwt: Option<JwtVerifier>,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No credential was presented.
    Missing,
    /// A credential was presented and is not valid.
    Invalid,
}

/// JWT checks and the current keys.
#[derive(Debug, Clone)]
pub(crate) struct JwtVerifier {
    spec: JwtSpec,
    keys: Arc<Mutex<Arc<JwkSet>>>,
}

impl Authenticator {
    /// From the policy's `auth` section (already checked by the policy compiler: well-formed,
    /// unique digests, one key source). A digest that still does not decode is left out, which
    /// can only refuse. The JWKS is read (file) or fetched (URL) now.
    ///
    /// # Errors
    ///
    /// The JWKS cannot be read, fetched or parsed: the gateway does not start.
    pub(crate) async fn from_policy(
        auth: Option<&AuthSpec>,
        policy_dir: &std::path::Path,
    ) -> Result<Self, GatewayError> {
        let Some(auth) = auth else {
            return Ok(Self {
                anonymous: true,
                keys: Vec::new(),
                jwt: None,
            });
        };
        let keys = auth
            .api_keys
            .iter()
            .filter_map(|key| {
                let bytes = hex::decode(&key.sha256).ok()?;
                let digest: [u8; 32] = bytes.try_into().ok()?;
                Some((digest, key.principal.clone()))
            })
            .collect();
        let jwt = match &auth.jwt {
            Some(spec) => Some(JwtVerifier::load(spec, policy_dir).await?),
            None => None,
        };
        Ok(Self {
            anonymous: false,
            keys,
            jwt,
        })
    }

    /// Whether requests need no credential.
    pub(crate) fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// Whether JWTs are accepted.
    pub(crate) fn has_jwt(&self) -> bool {
        self.jwt.is_some()
    }

    /// The issuer of accepted JWTs: the authorization server clients get tokens from.
    pub(crate) fn issuer(&self) -> Option<&str> {
        self.jwt.as_ref().map(|jwt| jwt.spec.issuer.as_str())
    }

    /// The JWT verifier, for the key refresh task.
    pub(crate) fn jwt(&self) -> Option<&JwtVerifier> {
        self.jwt.as_ref()
    }

    /// Who sent a request carrying `authorization` (the header's value, if any).
    pub(crate) fn authenticate(
        &self,
        authorization: Option<&[u8]>,
    ) -> Result<Identity, AuthFailure> {
        if self.anonymous {
            return Ok(Identity {
                principal: ANONYMOUS.to_owned(),
                agent: None,
            });
        }
        let Some(value) = authorization else {
            return Err(AuthFailure::Missing);
        };
        if value.len() > MAX_AUTHORIZATION_BYTES {
            return Err(AuthFailure::Invalid);
        }
        let token = bearer_token(value).ok_or(AuthFailure::Invalid)?;
        if let Some(jwt) = &self.jwt
            && token.iter().filter(|&&b| b == b'.').count() == 2
        {
            return jwt.verify(token).ok_or(AuthFailure::Invalid);
        }
        let presented: [u8; 32] = Sha256::digest(token).into();
        let mut found: Option<&String> = None;
        for (digest, principal) in &self.keys {
            if constant_time_eq(digest, &presented) {
                found = Some(principal);
            }
        }
        found
            .map(|principal| Identity {
                principal: principal.clone(),
                agent: None,
            })
            .ok_or(AuthFailure::Invalid)
    }
}

impl JwtVerifier {
    async fn load(spec: &JwtSpec, policy_dir: &std::path::Path) -> Result<Self, GatewayError> {
        let keys = fetch_jwks(spec, policy_dir).await?;
        Ok(Self {
            spec: spec.clone(),
            keys: Arc::new(Mutex::new(Arc::new(keys))),
        })
    }

    /// Fetches a JWKS URL again every [`JWKS_REFRESH`]; a failure keeps the keys it had.
    pub(crate) async fn refresh_forever(self, policy_dir: std::path::PathBuf) {
        if self.spec.jwks_url.is_none() {
            return;
        }
        loop {
            tokio::time::sleep(JWKS_REFRESH).await;
            match fetch_jwks(&self.spec, &policy_dir).await {
                Ok(keys) => {
                    *self.keys.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                    tracing::info!("refreshed the JWKS");
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot refresh the JWKS; keeping the keys already loaded")
                }
            }
        }
    }

    fn verify(&self, token: &[u8]) -> Option<Identity> {
        let token = std::str::from_utf8(token).ok()?;
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            tracing::info!(alg = ?header.alg, "refused a JWT with a symmetric or unsupported algorithm");
            return None;
        }
        let keys = Arc::clone(&self.keys.lock().unwrap_or_else(PoisonError::into_inner));
        let jwk = match &header.kid {
            Some(kid) => keys.find(kid)?,
            None => match keys.keys.as_slice() {
                [only] => only,
                _ => return None,
            },
        };
        // A key that names its algorithm is used with that algorithm only.
        if let Some(alg) = jwk.common.key_algorithm
            && alg != jsonwebtoken::jwk::KeyAlgorithm::from(header.alg)
        {
            return None;
        }
        let key = DecodingKey::from_jwk(jwk).ok()?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.spec.issuer]);
        validation.set_audience(&[&self.spec.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
            Ok(data) => data,
            Err(error) => {
                tracing::info!(%error, "refused a JWT");
                return None;
            }
        };
        let claim = |name: &str| {
            data.claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| {
                    !v.is_empty()
                        && v.len() <= MAX_NAME_LEN
                        && v.chars().all(|c| c.is_ascii_graphic())
                })
                .map(str::to_owned)
        };
        let principal = claim(self.spec.principal_claim.as_deref().unwrap_or("sub"))?;
        let agent = self.spec.agent_claim.as_deref().and_then(claim);
        Some(Identity { principal, agent })
    }
}

/// The certificates of a `jwks_ca_file` (PEM, one or more).
async fn jwks_ca(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, GatewayError> {
    let pem = tokio::fs::read(path).await.map_err(|e| {
        GatewayError::Insecure(format!(
            "cannot read the JWKS CA file `{}`: {e}",
            path.display()
        ))
    })?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(certificates),
        Ok(_) | Err(_) => Err(GatewayError::Insecure(format!(
            "the JWKS CA file `{}` holds no PEM certificate\nhelp: give the CA certificate as `-----BEGIN CERTIFICATE-----` PEM",
            path.display()
        ))),
    }
}

/// An error and its causes, `a: b: c` (reqwest's own message alone says only "error sending
/// request", not that the certificate was not trusted).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The JWKS of `spec`, from its file (relative to the policy) or URL.
async fn fetch_jwks(spec: &JwtSpec, policy_dir: &std::path::Path) -> Result<JwkSet, GatewayError> {
    let bytes = match (&spec.jwks_file, &spec.jwks_url) {
        (Some(file), _) => {
            let path = policy_dir.join(file);
            tokio::fs::read(&path)
                .await
                .map_err(|source| GatewayError::Io {
                    what: "cannot read the JWKS file",
                    source,
                })?
        }
        (None, Some(url)) => {
            let mut client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .timeout(Duration::from_secs(10));
            if let Some(ca) = &spec.jwks_ca_file {
                for certificate in jwks_ca(&policy_dir.join(ca)).await? {
                    client = client.add_root_certificate(certificate);
                }
            }
            let client = client.build().map_err(|e| {
                GatewayError::Insecure(format!("cannot build an HTTP client for the JWKS: {e}"))
            })?;
            let response = client
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| {
                    GatewayError::Insecure(format!(
                        "cannot fetch the JWKS `{url}`: {}\nhelp: an identity provider behind a private CA needs `jwks_ca_file: ca.pem` in `auth.jwt`",
                        causes(&e.without_url())
                    ))
                })?;
            if response
                .content_length()
                .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
            {
                return Err(GatewayError::Insecure(format!(
                    "the JWKS at `{url}` is too large"
                )));
            }
            let bytes = response.bytes().await.map_err(|e| {
                GatewayError::Insecure(format!(
                    "cannot fetch the JWKS `{url}`: {}",
                    e.without_url()
                ))
            })?;
            bytes.to_vec()
        }
        (None, None) => {
            return Err(GatewayError::Insecure(
                "`auth.jwt` names no `jwks_file` or `jwks_url`".to_owned(),
            ));
        }
    };
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(GatewayError::Insecure("the JWKS is too large".to_owned()));
    }
    let keys: JwkSet = serde_json::from_slice(&bytes)
        .map_err(|e| GatewayError::Insecure(format!("the JWKS is not a JWK set: {e}")))?;
    if keys.keys.is_empty() {
        return Err(GatewayError::Insecure("the JWKS has no keys".to_owned()));
    }
    Ok(keys)
}

/// The token of `Bearer TOKEN` (scheme case-insensitive, RFC 7235); `None` otherwise.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value.get(7..)?.trim_ascii();
    (!token.is_empty() && token.iter().all(u8::is_ascii_graphic)).then_some(token)
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod jwks_tls;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{EncodingKey, Header};
    use portcullis_policy::model::ApiKeySpec;
    use serde_json::json;

    use super::*;

    fn keys() -> Authenticator {
        let sha = hex::encode(Sha256::digest(b"alice-key"));
        Authenticator {
            anonymous: false,
            keys: vec![(
                hex::decode(sha).unwrap().try_into().unwrap(),
                "alice".to_owned(),
            )],
            jwt: None,
        }
    }

    fn alice() -> Result<Identity, AuthFailure> {
        Ok(Identity {
            principal: "alice".to_owned(),
            agent: None,
        })
    }

    #[test]
    fn a_valid_key_names_its_principal() {
        assert_eq!(keys().authenticate(Some(b"Bearer alice-key")), alice());
        assert_eq!(keys().authenticate(Some(b"bearer alice-key")), alice());
    }

    #[test]
    fn missing_and_wrong_keys_are_refused() {
        let auth = keys();
        assert_eq!(auth.authenticate(None), Err(AuthFailure::Missing));
        for bad in [
            &b"Bearer bob-key"[..],
            b"Basic alice-key",
            b"Bearer ",
            b"Bearer a.b.c",
        ] {
            assert_eq!(auth.authenticate(Some(bad)), Err(AuthFailure::Invalid));
        }
    }

    #[tokio::test]
    async fn without_auth_everyone_is_anonymous() {
        let auth = Authenticator::from_policy(None, std::path::Path::new("."))
            .await
            .unwrap();
        assert_eq!(auth.authenticate(None).unwrap().principal, ANONYMOUS);
    }

    /// An Ed25519 key pair generated now: the signing key and its JWK (with `kid`).
    pub(super) fn key_pair(kid: &str) -> (EncodingKey, Jwk) {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        // PKCS#8 v1 for Ed25519: a fixed prefix and the 32-byte seed (RFC 8410).
        let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
        der.extend_from_slice(&seed);
        let key = EncodingKey::from_ed_der(&der);
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        (key, jwk)
    }

    pub(super) fn sign(key: &EncodingKey, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    pub(super) fn now() -> i64 {
        jiff::Timestamp::now().as_second()
    }

    async fn jwt_auth(
        jwks: &JwkSet,
        api_keys: Vec<ApiKeySpec>,
    ) -> (tempfile::TempDir, Authenticator) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("jwks.json"),
            serde_json::to_vec(jwks).unwrap(),
        )
        .unwrap();
        let spec = AuthSpec {
            api_keys,
            jwt: Some(JwtSpec {
                issuer: "https://idp.example".into(),
                audience: "https://mcp.example".into(),
                jwks_file: Some("jwks.json".into()),
                jwks_url: None,
                jwks_ca_file: None,
                principal_claim: Some("email".into()),
                agent_claim: Some("agent".into()),
            }),
        };
        let auth = Authenticator::from_policy(Some(&spec), dir.path())
            .await
            .unwrap();
        (dir, auth)
    }

    #[tokio::test]
    async fn jwts_are_checked_for_signature_time_issuer_and_audience() {
        let (key, jwk) = key_pair("k1");
        let (other_key, _) = key_pair("k1");
        let jwks = JwkSet { keys: vec![jwk] };
        let alice_key = ApiKeySpec {
            principal: "alice".into(),
            sha256: hex::encode(Sha256::digest(b"alice-key")),
        };
        let (_dir, auth) = jwt_auth(&jwks, vec![alice_key]).await;
        let good = json!({"iss": "https://idp.example", "aud": ["https://mcp.example", "other"],
            "exp": now() + 600, "nbf": now() - 10, "sub": "u-1", "email": "bob@example.com", "agent": "ci"});
        let bearer = |token: String| format!("Bearer {token}").into_bytes();
        assert_eq!(
            auth.authenticate(Some(&bearer(sign(&key, "k1", &good)))),
            Ok(Identity {
                principal: "bob@example.com".into(),
                agent: Some("ci".into())
            })
        );
        // API keys still work beside JWTs.
        assert_eq!(auth.authenticate(Some(b"Bearer alice-key")), alice());
        let mut refused = Vec::new();
        let with = |field: &str, value: Value| {
            let mut claims = good.clone();
            claims[field] = value;
            claims
        };
        refused.push(sign(
            &key,
            "k1",
            &with("iss", json!("https://evil.example")),
        ));
        refused.push(sign(
            &key,
            "k1",
            &with("aud", json!("https://other.example")),
        ));
        refused.push(sign(&key, "k1", &with("exp", json!(now() - 3600))));
        refused.push(sign(&key, "k1", &with("nbf", json!(now() + 3600))));
        refused.push(sign(&key, "k1", &with("email", json!(null))));
        refused.push(sign(&other_key, "k1", &good));
        refused.push(sign(&key, "unknown-kid", &good));
        let mut no_exp = good.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        refused.push(sign(&key, "k1", &no_exp));
        // A symmetric token "signed" with a public key as the HMAC secret is refused outright.
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some("k1".into());
        refused.push(jsonwebtoken::encode(&hs, &good, &EncodingKey::from_secret(b"k")).unwrap());
        for token in refused {
            assert_eq!(
                auth.authenticate(Some(&bearer(token))),
                Err(AuthFailure::Invalid)
            );
        }
    }

    #[tokio::test]
    async fn a_missing_or_empty_jwks_stops_the_start() {
        let spec = AuthSpec {
            api_keys: vec![],
            jwt: Some(JwtSpec {
                issuer: "i".into(),
                audience: "a".into(),
                jwks_file: Some("nope.json".into()),
                jwks_url: None,
                jwks_ca_file: None,
                principal_claim: None,
                agent_claim: None,
            }),
        };
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Authenticator::from_policy(Some(&spec), dir.path())
                .await
                .is_err()
        );
        std::fs::write(dir.path().join("nope.json"), br#"{"keys": []}"#).unwrap();
        assert!(
            Authenticator::from_policy(Some(&spec), dir.path())
                .await
                .is_err()
        );
    }
}
