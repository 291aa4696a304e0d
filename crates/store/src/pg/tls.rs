//! Whether a PostgreSQL connection is encrypted, and with which trusted roots.
//!
//! The password exchange and every audit record cross the connection, so the rule is: a
//! database on another host is reached over TLS with its certificate verified (chain and host
//! name), unless the operator says `sslmode=disable` for a private network they trust.
//! Loopback and unix sockets stay in clear unless the URL asks for TLS.
//!
//! What the URL may say, beyond what the `postgres` crate reads itself:
//!
//! - `sslmode=require`, `verify-ca`, `verify-full`: TLS, certificate always verified (this client
//!   has no unverified TLS; `require` here means what libpq calls `verify-full`).
//! - `sslmode=disable`: no TLS.
//! - `sslmode=prefer` (libpq's default): refused for a remote host, since it falls back to an
//!   unencrypted connection without a word; on loopback it is read as `disable`, as before.
//! - no `sslmode`: TLS for a remote host, none on loopback.
//! - `sslrootcert=FILE`: the PEM certificates to trust instead of the public CA roots (a
//!   managed database's own CA, or your own).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::Config;
use postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How to reach the database.
#[derive(Clone)]
pub(crate) enum Transport {
    /// In clear: loopback, a unix socket, or `sslmode=disable`.
    Plain,
    /// Over TLS, the server's certificate verified against these roots.
    Tls(MakeRustlsConnect),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Plain => "Plain",
            Transport::Tls(_) => "Tls",
        })
    }
}

/// What [`split_url`] takes out of a URL before the `postgres` crate reads it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsParams {
    /// `sslmode` as written, lower-cased; `None` when the URL does not say.
    pub(crate) sslmode: Option<String>,
    /// `sslrootcert`, percent-decoded.
    pub(crate) rootcert: Option<PathBuf>,
}

/// Takes `sslrootcert` out of the URL's query (the `postgres` crate refuses options it does
/// not know) and reads `sslmode`; `verify-ca` and `verify-full` become `require`, which this
/// client always verifies. Gives back the URL for the `postgres` crate.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsParams), String> {
    let mut params = TlsParams::default();
    let Some((head, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), params));
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| format!("the value of `{key}` is not UTF-8 once percent-decoded"))?;
        match key {
            "sslrootcert" => {
                if params.rootcert.is_some() {
                    return Err("it names `sslrootcert` twice".to_owned());
                }
                if decoded.is_empty() {
                    return Err("`sslrootcert` is empty; give the path of a PEM file".to_owned());
                }
                params.rootcert = Some(PathBuf::from(decoded.as_ref()));
            }
            "sslmode" => {
                if params.sslmode.is_some() {
                    return Err("it names `sslmode` twice".to_owned());
                }
                let mode = decoded.to_ascii_lowercase();
                let passed = match mode.as_str() {
                    "verify-ca" | "verify-full" => "require",
                    "disable" | "prefer" | "require" => mode.as_str(),
                    other => return Err(unsupported(other)),
                };
                kept.push(format!("sslmode={passed}"));
                params.sslmode = Some(mode);
            }
            _ => kept.push(pair.to_owned()),
        }
    }
    let url = if kept.is_empty() {
        head.to_owned()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    Ok((url, params))
}

/// Decides the transport for `config` (as parsed from the URL `split_url` gave back) and sets
/// its `sslmode` to match.
pub(crate) fn choose(config: &mut Config, params: &TlsParams) -> Result<Transport, String> {
    let remote = remote_host(config);
    let tls = match (params.sslmode.as_deref(), &remote) {
        (Some("disable"), _) => false,
        (Some("require" | "verify-ca" | "verify-full"), _) | (None, Some(_)) => true,
        (Some("prefer") | None, None) => false,
        (Some("prefer"), Some(remote)) => {
            return Err(format!(
                "sslmode=prefer would reach `{remote}` without encryption, without a word, \
                 whenever TLS is not offered; help: say `sslmode=require` (TLS, certificate \
                 verified) or, on a private network you trust, `sslmode=disable`"
            ));
        }
        (Some(other), _) => return Err(unsupported(other)),
    };
    if !tls {
        if params.rootcert.is_some() {
            return Err(
                "it names `sslrootcert` but the connection does not use TLS; help: add \
                 `sslmode=require`"
                    .to_owned(),
            );
        }
        config.ssl_mode(SslMode::Disable);
        return Ok(Transport::Plain);
    }
    config.ssl_mode(SslMode::Require);
    let roots = match &params.rootcert {
        Some(path) => roots_from(path)?,
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Transport::Tls(MakeRustlsConnect::new(client)))
}

fn unsupported(mode: &str) -> String {
    format!("sslmode={mode} is not supported; help: use `require` (or `verify-full`) or `disable`")
}

/// The first host that is neither loopback nor a unix socket, by name or by `hostaddr`.
fn remote_host(config: &Config) -> Option<String> {
    // `hostaddr=` decides where a TCP connection goes whatever `host` says, so both count.
    config
        .get_hosts()
        .iter()
        .find_map(|host| match host {
            Host::Tcp(name) if !is_loopback(name) => Some(name.clone()),
            _ => None,
        })
        .or_else(|| {
            config
                .get_hostaddrs()
                .iter()
                .find(|addr| !addr.is_loopback())
                .map(ToString::to_string)
        })
}

/// `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The certificates of a PEM file, as trusted roots.
fn roots_from(path: &Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read sslrootcert `{shown}`: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("sslrootcert `{shown}` is not a valid PEM file: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "sslrootcert `{shown}` holds no certificate (expected `-----BEGIN CERTIFICATE-----`)"
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| {
            format!("sslrootcert `{shown}` holds a certificate rustls refuses: {e}")
        })?;
    }
    Ok(roots)
}
