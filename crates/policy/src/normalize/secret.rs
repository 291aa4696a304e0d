//! Credential detection for the `secret` condition and audit redaction. CONTRACT STUB.

/// The kind of credential found in a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// A PEM private key block.
    PrivateKey,
}

/// The first credential found in `value`, if any.
pub fn find_secret(value: &str) -> Option<SecretKind> {
    let _ = value;
    None
}
