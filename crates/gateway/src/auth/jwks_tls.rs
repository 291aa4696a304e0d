//! `jwks_url` over https: a local TLS server with a self-signed certificate (rcgen) serves the
//! JWKS; the gateway trusts it only through `jwks_ca_file`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::io::{Read, Write};
use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;
use portcullis_policy::model::{AuthSpec, JwtSpec};
use serde_json::json;

use super::tests::{key_pair, now, sign};
use super::{Authenticator, Identity};

/// Serves `body` as `application/json` over TLS on a loopback port, with a fresh self-signed
/// certificate for `127.0.0.1` and `localhost`; returns the port and the certificate (PEM).
fn tls_server(body: String) -> (u16, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let pem = certified.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let connection = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            // A client that does not trust the certificate aborts the handshake here.
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if !head.starts_with(b"GET /jwks.json ") {
                continue;
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(response.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (port, pem)
}

fn spec(port: u16, ca: Option<&str>) -> AuthSpec {
    AuthSpec {
        api_keys: Vec::new(),
        jwt: Some(JwtSpec {
            issuer: "https://idp.example".into(),
            audience: "https://mcp.example".into(),
            jwks_file: None,
            jwks_url: Some(format!("https://127.0.0.1:{port}/jwks.json")),
            jwks_ca_file: ca.map(str::to_owned),
            principal_claim: None,
            agent_claim: None,
        }),
    }
}

#[tokio::test]
async fn a_jwks_url_over_https_is_trusted_through_jwks_ca_file() {
    let (key, jwk) = key_pair("tls-1");
    let jwks = serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap();
    let (port, pem) = tls_server(jwks);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("idp-ca.pem"), pem).unwrap();

    let auth = Authenticator::from_policy(Some(&spec(port, Some("idp-ca.pem"))), dir.path())
        .await
        .unwrap();
    let token = sign(
        &key,
        "tls-1",
        &json!({"iss": "https://idp.example", "aud": "https://mcp.example",
            "exp": now() + 600, "sub": "carol"}),
    );
    assert_eq!(
        auth.authenticate(Some(format!("Bearer {token}").as_bytes())),
        Ok(Identity {
            principal: "carol".into(),
            agent: None
        })
    );
}

#[tokio::test]
async fn an_untrusted_certificate_stops_the_start_with_a_clear_error() {
    let (_, jwk) = key_pair("tls-2");
    let (port, _) = tls_server(serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let error = Authenticator::from_policy(Some(&spec(port, None)), dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!(
            "cannot fetch the JWKS `https://127.0.0.1:{port}/jwks.json`: "
        )),
        "{error}"
    );
    assert!(error.contains("certificate"), "{error}");
    assert!(
        error.ends_with(
            "help: an identity provider behind a private CA needs `jwks_ca_file: ca.pem` in `auth.jwt`"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_jwks_ca_file_must_hold_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
    let error = Authenticator::from_policy(Some(&spec(9, Some("ca.pem"))), dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        format!(
            "the JWKS CA file `{}` holds no PEM certificate\nhelp: give the CA certificate as `-----BEGIN CERTIFICATE-----` PEM",
            dir.path().join("ca.pem").display()
        )
    );
    let error = Authenticator::from_policy(Some(&spec(9, Some("missing.pem"))), dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!(
            "cannot read the JWKS CA file `{}`: ",
            dir.path().join("missing.pem").display()
        )),
        "{error}"
    );
}
