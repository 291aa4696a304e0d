//! URL readings. CONTRACT STUB.

use std::net::IpAddr;

use super::Uncertain;

/// A URL host as a server might connect to it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UrlHost {
    /// An IP address (any spelling, already decoded).
    Ip(IpAddr),
    /// A DNS name, lower-case, IDNA ASCII form, without a trailing dot.
    Name(String),
}

/// One plausible reading of a URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UrlReading {
    /// Lower-case scheme.
    pub scheme: String,
    /// The host, `None` for host-less URLs (`file:`, `mailto:`).
    pub host: Option<UrlHost>,
    /// The effective port (explicit, else the scheme default), if any.
    pub port: Option<u16>,
    /// The normalized path.
    pub path: String,
    /// Which parser produced it (`whatwg`, `rfc3986`), for traces.
    pub parser: &'static str,
}

/// Every plausible reading of `raw`, or why none can be given with certainty.
pub fn url_readings(raw: &str) -> Result<Vec<UrlReading>, Uncertain> {
    let _ = raw;
    Err(Uncertain::new("url normalizer not implemented"))
}

/// Whether a host is loopback, private, link-local or a cloud metadata endpoint.
pub fn host_is_private(host: &UrlHost) -> bool {
    let _ = host;
    true
}
