//! The plain, copying form of the URL readings as they were before the borrowed fast paths
//! (`url_readings`, `classify_host`, `percent_decode_host`, `host_is_private`), kept verbatim
//! for the tests: the property tests in `tests.rs` check that the fast form gives the same
//! readings, the same hosts and the same reasons for every generated URL.

use std::net::IpAddr;

use url::{Host, Url};

use super::super::Uncertain;
use super::super::ip::{is_private_ip, parse_lenient_ip};
use super::super::path::{hex_value, is_invisible, shown};
use super::{UrlHost, UrlReading, default_port, is_dns_name, is_special, require_host};

pub(super) fn url_readings(raw: &str) -> Result<Vec<UrlReading>, Uncertain> {
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
pub(super) fn classify_host(text: &str, raw: &str) -> Result<UrlHost, Uncertain> {
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

pub(super) fn host_is_private(host: &UrlHost) -> bool {
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
