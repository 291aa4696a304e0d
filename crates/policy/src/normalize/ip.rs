//! IP address parsing in every spelling and classification. CONTRACT STUB.

use std::net::IpAddr;

/// Parse a host string as an IP address the way the most lenient resolver would
/// (`inet_aton`: decimal, octal, hex, 1–4 parts; bracketed or bare IPv6). `None` for names.
pub fn parse_lenient_ip(host: &str) -> Option<IpAddr> {
    let _ = host;
    None
}

/// Whether an address is loopback, private, link-local, CGNAT, unspecified, unique-local,
/// a cloud metadata address, or an IPv6 form embedding such an IPv4 address.
pub fn is_private_ip(ip: IpAddr) -> bool {
    let _ = ip;
    true
}
