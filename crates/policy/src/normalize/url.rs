//! URL readings: every host a server might connect to for one argument string.
//!
//! URL parsers disagree on hostile spellings: `http://a\@b/` is host `a` for WHATWG parsers (the
//! `url` crate, browsers, Node) but `b` for RFC 3986 parsers (Python's `urllib`, many HTTP
//! clients). A policy that checks one parser's host while the server uses the other is bypassed,
//! so we yield both readings and the evaluator demands that a condition hold for each
//! (DESIGN §3.4). Spellings that no parser reads unambiguously are [`Uncertain`].

use std::net::IpAddr;

use url::{Host, Url};

use super::Uncertain;
use super::ip::{is_private_ip, parse_lenient_ip};
use super::path::{hex_value, is_invisible, shown};

/// Longest DNS name accepted (RFC 1035, without the trailing dot).
const MAX_DNS_NAME_BYTES: usize = 253;

/// Longest DNS label accepted (RFC 1035).
const MAX_DNS_LABEL_BYTES: usize = 63;

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
    /// The path as the parser left it: not percent-decoded (decoding could invent a `/` or
    /// `..` that the server never sees). The `whatwg` reading has dot segments resolved and `\`
    /// read as `/` for special schemes; the `rfc3986` reading is the raw text. Host-less URLs
    /// (`javascript:alert(1)`) have everything after the scheme up to `?`/`#` here.
    pub path: String,
    /// Which parser produced it (`whatwg`, `rfc3986`), for traces.
    pub parser: &'static str,
}

/// Every plausible reading of `raw`, or why none can be given with certainty.
///
/// The first reading is the WHATWG one (the `url` crate). The second, added only when it differs
/// in scheme, host, port or path, is an RFC 3986 split: the authority runs from `//` to the
/// first `/`, `?` or `#`, the user info to its `@`, and `\` is an ordinary character. Uncertain:
/// whitespace, control or invisible characters anywhere, a URL either parser rejects, a host
/// that is neither a DNS name nor an IP address in some reading, invalid percent-encoding in a
/// host, a missing host where the scheme needs one, more than one `@` in the authority and an
/// `@` in a query or fragment that directly follows the host (parsers and filters disagree on
/// where the user info ends in both).
pub fn url_readings(raw: &str) -> Result<Vec<UrlReading>, Uncertain> {
    if raw.is_empty() {
        return Err(Uncertain::new("empty url"));
    }
    // WHATWG parsers silently drop tabs and newlines and trim spaces; others stop at them.
    // Printable ASCII (the common case) has neither, nor any invisible character: one byte scan
    // decides it, and only other strings are searched character by character.
    let printable_ascii = raw.bytes().all(|b| b.is_ascii_graphic());
    if let Some(c) = raw
        .chars()
        .take_while(|_| !printable_ascii)
        .find(|&c| c.is_control() || c.is_whitespace())
    {
        return Err(Uncertain::new(format!(
            "url `{}` contains whitespace or a control character (U+{:04X})",
            shown(raw),
            u32::from(c)
        )));
    }
    if let Some(c) = raw
        .chars()
        .take_while(|_| !printable_ascii)
        .find(|&c| is_invisible(c))
    {
        return Err(Uncertain::new(format!(
            "url `{}` contains an invisible or bidirectional-control character (U+{:04X})",
            shown(raw),
            u32::from(c)
        )));
    }
    // The two parsers usually agree on the host's text: classify it once (`classify_host` is a
    // pure function of the text and `raw`) and let the second reading reuse the result.
    let mut memo: Option<(String, UrlHost)> = None;
    let whatwg = whatwg_reading(raw, &mut memo)?;
    let rfc = rfc3986_reading(raw, memo.as_ref())?;
    let same = whatwg.scheme == rfc.scheme
        && whatwg.host == rfc.host
        && whatwg.port == rfc.port
        && whatwg.path == rfc.path;
    let mut readings = vec![whatwg];
    if !same {
        readings.push(rfc);
    }
    Ok(readings)
}

fn whatwg_reading(
    raw: &str,
    memo: &mut Option<(String, UrlHost)>,
) -> Result<UrlReading, Uncertain> {
    let url = Url::parse(raw)
        .map_err(|e| Uncertain::new(format!("url `{}` does not parse: {e}", shown(raw))))?;
    let scheme = url.scheme().to_ascii_lowercase();
    let host = match url.host() {
        None => None,
        Some(Host::Domain("")) => None,
        // Opaque hosts of non-special schemes keep their percent-encoding and numeric
        // spellings (`foo://0x7f.1`): classify them as a resolver would.
        Some(Host::Domain(name)) => {
            let host = classify_host(name, raw)?;
            *memo = Some((name.to_owned(), host.clone()));
            Some(host)
        }
        Some(Host::Ipv4(v4)) => Some(UrlHost::Ip(IpAddr::V4(v4))),
        Some(Host::Ipv6(v6)) => Some(UrlHost::Ip(IpAddr::V6(v6))),
    };
    require_host(&scheme, host.as_ref(), raw)?;
    Ok(UrlReading {
        port: url
            .port_or_known_default()
            .or_else(|| default_port(&scheme)),
        path: url.path().to_owned(),
        scheme,
        host,
        parser: "whatwg",
    })
}

fn rfc3986_reading(raw: &str, memo: Option<&(String, UrlHost)>) -> Result<UrlReading, Uncertain> {
    let (scheme, rest) = raw
        .split_once(':')
        .ok_or_else(|| Uncertain::new(format!("url `{}` has no scheme", shown(raw))))?;
    let mut scheme_chars = scheme.chars();
    let valid_scheme = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return Err(Uncertain::new(format!(
            "url `{}` has an invalid scheme",
            shown(raw)
        )));
    }
    let scheme = scheme.to_ascii_lowercase();

    let Some(after_slashes) = rest.strip_prefix("//") else {
        let path = until_query_or_fragment(rest).to_owned();
        require_host(&scheme, None, raw)?;
        return Ok(UrlReading {
            scheme,
            host: None,
            port: None,
            path,
            parser: "rfc3986",
        });
    };

    let end = after_slashes
        .find(['/', '?', '#'])
        .unwrap_or(after_slashes.len());
    let (authority, tail) = after_slashes.split_at(end);
    if authority.matches('@').count() > 1 {
        return Err(Uncertain::new(format!(
            "url `{}` has more than one `@` in its authority, and parsers disagree on which one ends the user info",
            shown(raw)
        )));
    }
    // `http://evil.com#@127.0.0.1`: naive filters and some parsers take the host after the `@`.
    if (tail.starts_with('?') || tail.starts_with('#')) && tail.contains('@') {
        return Err(Uncertain::new(format!(
            "url `{}` has an `@` in the query or fragment right after its host, where some parsers read the host",
            shown(raw)
        )));
    }
    let hostport = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hostport)| hostport);
    let (host_text, port_text) = split_host_port(hostport, raw)?;
    let host = if host_text.is_empty() {
        None
    } else {
        match memo {
            Some((text, host)) if text == host_text => Some(host.clone()),
            _ => Some(classify_host(host_text, raw)?),
        }
    };
    require_host(&scheme, host.as_ref(), raw)?;
    let port = match port_text {
        "" => default_port(&scheme),
        digits if digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse::<u16>().map_err(|_| {
                Uncertain::new(format!("url `{}` has a port out of range", shown(raw)))
            })?)
        }
        _ => {
            return Err(Uncertain::new(format!(
                "url `{}` has a port that is not a number",
                shown(raw)
            )));
        }
    };
    let mut path = until_query_or_fragment(tail).to_owned();
    if path.is_empty() && is_special(&scheme) {
        path.push('/');
    }
    Ok(UrlReading {
        scheme,
        host,
        port,
        path,
        parser: "rfc3986",
    })
}

fn until_query_or_fragment(s: &str) -> &str {
    s.split(['?', '#']).next().unwrap_or(s)
}

/// Split `host[:port]` or `[v6]:port`.
fn split_host_port<'a>(hostport: &'a str, raw: &str) -> Result<(&'a str, &'a str), Uncertain> {
    if hostport.starts_with('[') {
        let close = hostport.find(']').ok_or_else(|| {
            Uncertain::new(format!(
                "url `{}` has an unclosed `[` in its host",
                shown(raw)
            ))
        })?;
        let (host, after) = hostport.split_at(close.saturating_add(1));
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, port)),
            None if after.is_empty() => Ok((host, "")),
            None => Err(Uncertain::new(format!(
                "url `{}` has text after its ipv6 host",
                shown(raw)
            ))),
        };
    }
    Ok(hostport.rsplit_once(':').unwrap_or((hostport, "")))
}

/// Classify a host as a resolver would: percent-decoded, lower-case, without a trailing dot, an
/// IP in any `inet_aton` spelling, else an IDNA-mapped DNS name.
fn classify_host(text: &str, raw: &str) -> Result<UrlHost, Uncertain> {
    let invalid = || {
        Uncertain::new(format!(
            "url `{}` has host `{}`, which is not a valid host name or ip address",
            shown(raw),
            shown(text)
        ))
    };
    if text.starts_with('[') {
        return parse_lenient_ip(text).map(UrlHost::Ip).ok_or_else(invalid);
    }
    let decoded = percent_decode_host(text, raw)?;
    let printable_ascii = decoded.bytes().all(|b| b.is_ascii_graphic());
    if let Some(c) = decoded
        .chars()
        .take_while(|_| !printable_ascii)
        .find(|&c| c.is_control() || c.is_whitespace() || is_invisible(c))
    {
        return Err(Uncertain::new(format!(
            "url `{}` has a host that decodes to whitespace or a control character (U+{:04X})",
            shown(raw),
            u32::from(c)
        )));
    }
    // For ASCII, `to_lowercase` is the ASCII lower case.
    let lowered = if printable_ascii {
        decoded.to_ascii_lowercase()
    } else {
        decoded.to_lowercase()
    };
    let name = lowered.strip_suffix('.').unwrap_or(&lowered);
    if name.is_empty() {
        return Err(invalid());
    }
    if let Some(ip) = parse_lenient_ip(name) {
        return Ok(UrlHost::Ip(ip));
    }
    match Host::parse(name).map_err(|_| invalid())? {
        Host::Domain(domain) => {
            let domain = domain.strip_suffix('.').unwrap_or(&domain).to_owned();
            if is_dns_name(&domain) {
                Ok(UrlHost::Name(domain))
            } else {
                Err(invalid())
            }
        }
        Host::Ipv4(v4) => Ok(UrlHost::Ip(IpAddr::V4(v4))),
        Host::Ipv6(v6) => Ok(UrlHost::Ip(IpAddr::V6(v6))),
    }
}

/// Percent-decode a host strictly: a `%` without two hex digits, or bytes that are not UTF-8,
/// mean parsers will disagree on the host.
fn percent_decode_host(text: &str, raw: &str) -> Result<String, Uncertain> {
    let invalid = || {
        Uncertain::new(format!(
            "url `{}` has invalid percent-encoding in its host",
            shown(raw)
        ))
    };
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i.saturating_add(1)).copied().and_then(hex_value);
            let lo = bytes.get(i.saturating_add(2)).copied().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(invalid());
            };
            out.push(hi.wrapping_mul(16).wrapping_add(lo));
            i = i.saturating_add(3);
        } else {
            out.push(b);
            i = i.saturating_add(1);
        }
    }
    String::from_utf8(out).map_err(|_| invalid())
}

/// LDH labels (plus `_`, which real resolvers accept), 1–63 bytes each, at most 253 in all.
fn is_dns_name(name: &str) -> bool {
    name.len() <= MAX_DNS_NAME_BYTES
        && name.split('.').all(|label| {
            (1..=MAX_DNS_LABEL_BYTES).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

/// Schemes whose URLs always name a host to connect to.
fn needs_host(scheme: &str) -> bool {
    matches!(scheme, "http" | "https" | "ws" | "wss" | "ftp")
}

/// WHATWG "special" schemes: an empty path is `/`.
fn is_special(scheme: &str) -> bool {
    needs_host(scheme) || scheme == "file"
}

fn require_host(scheme: &str, host: Option<&UrlHost>, raw: &str) -> Result<(), Uncertain> {
    if host.is_none() && needs_host(scheme) {
        return Err(Uncertain::new(format!(
            "url `{}` has no host, and `{scheme}` needs one",
            shown(raw)
        )));
    }
    Ok(())
}

/// The port a client uses when the URL gives none.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "ftp" => Some(21),
        _ => None,
    }
}

/// Whether a host is loopback, private, link-local or a cloud metadata endpoint.
///
/// An IP address is classified by [`is_private_ip`]. A name is private when it is one that
/// resolves inside the machine or network by convention: `localhost`, `*.localhost`,
/// `localhost.localdomain`, `ip6-localhost`, `ip6-loopback`, `metadata`,
/// `metadata.google.internal`, `metadata.goog`, `instance-data`, `localtest.me`, `lvh.me` and
/// their subdomains, anything under `.internal`, `.local` (mDNS), `.localdomain`, `.home.arpa`,
/// `.lan`, `.intranet`, `.corp`, `.private`, and every single-label name (`intranet`): a name
/// without a dot is completed with the resolver's search domains, inside the network.
///
/// Limitation: a public-looking name that merely *resolves* to a private address (a DNS record
/// pointing at `127.0.0.1`, rebinding services) cannot be known without DNS, which this pure
/// crate does not do; the gateway must check the address it actually connects to.
pub fn host_is_private(host: &UrlHost) -> bool {
    match host {
        UrlHost::Ip(ip) => is_private_ip(*ip),
        UrlHost::Name(name) => {
            const EXACT: &[&str] = &[
                "localhost.localdomain",
                "ip6-localhost",
                "ip6-loopback",
                "metadata.google.internal",
                "metadata.goog",
            ];
            const WITH_SUBDOMAINS: &[&str] = &[
                "localhost",
                "localtest.me",
                "lvh.me",
                "internal",
                "local",
                "localdomain",
                "home.arpa",
                "lan",
                "intranet",
                "corp",
                "private",
            ];
            let name = name.to_ascii_lowercase();
            let name = name.strip_suffix('.').unwrap_or(&name);
            !name.contains('.')
                || EXACT.contains(&name)
                || WITH_SUBDOMAINS.iter().any(|zone| {
                    name == *zone
                        || name
                            .strip_suffix(zone)
                            .is_some_and(|prefix| prefix.ends_with('.'))
                })
        }
    }
}

#[cfg(test)]
mod tests;
