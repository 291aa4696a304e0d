//! Who is calling `portcullis serve`: API keys from the policy's `auth` section, mapped to the
//! principal that rules match and the audit log records.
//!
//! Keys travel as `Authorization: Bearer KEY`. The policy stores only each key's sha256, so a
//! leaked policy file leaks no credential. The presented key is hashed and compared with every
//! stored digest in constant time, so the time taken says nothing about which digest came close.

use portcullis_policy::model::AuthSpec;
use sha2::{Digest, Sha256};

/// The principal of requests on a loopback listener when the policy has no `auth` section.
pub const ANONYMOUS: &str = "anonymous";

/// The longest `Authorization` value read; anything longer is refused unread.
pub const MAX_AUTHORIZATION_BYTES: usize = 4096;

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Authenticator {
    /// No `auth` section: every request is [`ANONYMOUS`] (only allowed on loopback listeners).
    Anonymous,
    /// API keys: `(sha256, principal)` pairs.
    ApiKeys(Vec<([u8; 32], String)>),
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No credential was presented.
    Missing,
    /// A credential was presented and is not valid.
    Invalid,
}

impl Authenticator {
    /// From the policy's `auth` section (already checked by the policy compiler: well-formed,
    /// unique digests). A digest that still does not decode is left out, which can only refuse.
    pub(crate) fn from_policy(auth: Option<&AuthSpec>) -> Self {
        let Some(auth) = auth else {
            return Self::Anonymous;
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
        Self::ApiKeys(keys)
    }

    /// Whether requests need no credential.
    pub(crate) fn is_anonymous(&self) -> bool {
        matches!(self, Self::Anonymous)
    }

    /// The principal for a request carrying `authorization` (the header's value, if any).
    pub(crate) fn authenticate(&self, authorization: Option<&[u8]>) -> Result<String, AuthFailure> {
        let keys = match self {
            Self::Anonymous => return Ok(ANONYMOUS.to_owned()),
            Self::ApiKeys(keys) => keys,
        };
        let Some(value) = authorization else {
            return Err(AuthFailure::Missing);
        };
        if value.len() > MAX_AUTHORIZATION_BYTES {
            return Err(AuthFailure::Invalid);
        }
        let token = bearer_token(value).ok_or(AuthFailure::Invalid)?;
        let presented: [u8; 32] = Sha256::digest(token).into();
        let mut found: Option<&String> = None;
        for (digest, principal) in keys {
            if constant_time_eq(digest, &presented) {
                found = Some(principal);
            }
        }
        found.cloned().ok_or(AuthFailure::Invalid)
    }
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
mod tests {
    use portcullis_policy::model::ApiKeySpec;

    use super::*;

    fn keys() -> Authenticator {
        let sha = hex::encode(Sha256::digest(b"alice-key"));
        Authenticator::from_policy(Some(&AuthSpec {
            api_keys: vec![ApiKeySpec {
                principal: "alice".into(),
                sha256: sha,
            }],
        }))
    }

    #[test]
    fn a_valid_key_names_its_principal() {
        assert_eq!(
            keys().authenticate(Some(b"Bearer alice-key")),
            Ok("alice".to_owned())
        );
        assert_eq!(
            keys().authenticate(Some(b"bearer alice-key")),
            Ok("alice".to_owned())
        );
    }

    #[test]
    fn missing_and_wrong_keys_are_refused() {
        let auth = keys();
        assert_eq!(auth.authenticate(None), Err(AuthFailure::Missing));
        assert_eq!(
            auth.authenticate(Some(b"Bearer bob-key")),
            Err(AuthFailure::Invalid)
        );
        assert_eq!(
            auth.authenticate(Some(b"Basic alice-key")),
            Err(AuthFailure::Invalid)
        );
        assert_eq!(
            auth.authenticate(Some(b"Bearer ")),
            Err(AuthFailure::Invalid)
        );
    }

    #[test]
    fn without_auth_everyone_is_anonymous() {
        let auth = Authenticator::from_policy(None);
        assert_eq!(auth.authenticate(None), Ok(ANONYMOUS.to_owned()));
    }
}
