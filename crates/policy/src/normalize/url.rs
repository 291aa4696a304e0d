//! URL readings: every host a server might connect to for one argument string.
//!
//! URL parsers disagree on hostile spellings: `http://a\@b/` is host `a` for WHATWG parsers (the
//! `url` crate, browsers, Node) but `b` for RFC 3986 parsers (Python's `urllib`, many HTTP
//! clients). A policy that checks one parser's host while the server uses the other is bypassed,
//! so we yield both readings and the evaluator demands that a condition hold for each
//! (DESIGN §3.4). Spellings that no parser reads unambiguously are [`Uncertain`].

use std::borrow::Cow;
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
    let url = Url::parse(raw)
        .map_err(|e| Uncertain::new(format!("url `{}` does not parse: {e}", shown(raw))))?;
    // The two parsers usually agree on the host's text: classify it once (`classify_host` is a
    // pure function of the text and `raw`) and let the second reading reuse the result.
    let (whatwg, whatwg_host_text) = whatwg_reading(&url, raw)?;
    let memo = whatwg_host_text.zip(whatwg.host.as_ref());
    // The RFC 3986 reading is split on borrowed text and only built when it differs, which for
    // ordinary URLs it does not: no copies of the scheme, host and path just to compare them.
    let rfc = rfc3986_split(raw, memo)?;
    let second = (!rfc.same_as(&whatwg)).then(|| rfc.into_reading());
    let mut readings = Vec::with_capacity(if second.is_some() { 2 } else { 1 });
    readings.push(whatwg);
    readings.extend(second);
    Ok(readings)
}

/// The WHATWG reading, and the host's text as the `url` crate gave it when it is a name.
fn whatwg_reading<'u>(url: &'u Url, raw: &str) -> Result<(UrlReading, Option<&'u str>), Uncertain> {
    let scheme = url.scheme().to_ascii_lowercase();
    let (host, host_text) = match url.host() {
        None => (None, None),
        Some(Host::Domain("")) => (None, None),
        // Opaque hosts of non-special schemes keep their percent-encoding and numeric
        // spellings (`foo://0x7f.1`): classify them as a resolver would.
        Some(Host::Domain(name)) => (Some(classify_host(name, raw)?), Some(name)),
        Some(Host::Ipv4(v4)) => (Some(UrlHost::Ip(IpAddr::V4(v4))), None),
        Some(Host::Ipv6(v6)) => (Some(UrlHost::Ip(IpAddr::V6(v6))), None),
    };
    require_host(&scheme, host.as_ref(), raw)?;
    let reading = UrlReading {
        port: url
            .port_or_known_default()
            .or_else(|| default_port(&scheme)),
        path: url.path().to_owned(),
        scheme,
        host,
        parser: "whatwg",
    };
    Ok((reading, host_text))
}

/// An RFC 3986 reading before it is copied out: borrowed from the raw text where it can be.
struct RfcSplit<'a> {
    /// Lower-case scheme.
    scheme: Cow<'a, str>,
    /// The classified host: the WHATWG reading's own when both read the same host text.
    host: RfcHost<'a>,
    port: Option<u16>,
    /// The path up to `?` or `#`; `/` is meant when it is empty and `slash` is set.
    path: &'a str,
    slash: bool,
}

enum RfcHost<'a> {
    None,
    /// The same text as the WHATWG host, so the same classification.
    Same(&'a UrlHost),
    Own(UrlHost),
}

impl RfcSplit<'_> {
    fn same_as(&self, whatwg: &UrlReading) -> bool {
        let host_same = match &self.host {
            RfcHost::None => whatwg.host.is_none(),
            RfcHost::Same(host) => whatwg.host.as_ref() == Some(*host),
            RfcHost::Own(host) => whatwg.host.as_ref() == Some(host),
        };
        let path_same = if self.slash {
            whatwg.path == "/"
        } else {
            whatwg.path == self.path
        };
        whatwg.scheme == self.scheme && host_same && whatwg.port == self.port && path_same
    }

    fn into_reading(self) -> UrlReading {
        let mut path = self.path.to_owned();
        if self.slash {
            path.push('/');
        }
        UrlReading {
            scheme: self.scheme.into_owned(),
            host: match self.host {
                RfcHost::None => None,
                RfcHost::Same(host) => Some(host.clone()),
                RfcHost::Own(host) => Some(host),
            },
            port: self.port,
            path,
            parser: "rfc3986",
        }
    }
}

fn rfc3986_split<'a>(
    raw: &'a str,
    memo: Option<(&str, &'a UrlHost)>,
) -> Result<RfcSplit<'a>, Uncertain> {
    // Every delimiter below is ASCII: byte searches find the same places as `char` ones.
    let (scheme, rest) = split_at_byte(raw, b':')
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
    let scheme = if scheme.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(scheme.to_ascii_lowercase())
    } else {
        Cow::Borrowed(scheme)
    };

    let Some(after_slashes) = rest.strip_prefix("//") else {
        let path = until_query_or_fragment(rest);
        require_host(&scheme, None, raw)?;
        return Ok(RfcSplit {
            scheme,
            host: RfcHost::None,
            port: None,
            path,
            slash: false,
        });
    };

    let end = after_slashes
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(after_slashes.len());
    let (authority, tail) = after_slashes.split_at(end);
    if authority.bytes().filter(|&b| b == b'@').count() > 1 {
        return Err(Uncertain::new(format!(
            "url `{}` has more than one `@` in its authority, and parsers disagree on which one ends the user info",
            shown(raw)
        )));
    }
    // `http://evil.com#@127.0.0.1`: naive filters and some parsers take the host after the `@`.
    if (tail.starts_with('?') || tail.starts_with('#')) && tail.bytes().any(|b| b == b'@') {
        return Err(Uncertain::new(format!(
            "url `{}` has an `@` in the query or fragment right after its host, where some parsers read the host",
            shown(raw)
        )));
    }
    let hostport = rsplit_at_byte(authority, b'@').map_or(authority, |(_, hostport)| hostport);
    let (host_text, port_text) = split_host_port(hostport, raw)?;
    let host = if host_text.is_empty() {
        RfcHost::None
    } else {
        match memo {
            Some((text, host)) if text == host_text => RfcHost::Same(host),
            _ => RfcHost::Own(classify_host(host_text, raw)?),
        }
    };
    let host_ref = match &host {
        RfcHost::None => None,
        RfcHost::Same(host) => Some(*host),
        RfcHost::Own(host) => Some(host),
    };
    require_host(&scheme, host_ref, raw)?;
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
    let path = until_query_or_fragment(tail);
    let slash = path.is_empty() && is_special(&scheme);
    Ok(RfcSplit {
        scheme,
        host,
        port,
        path,
        slash,
    })
}

fn until_query_or_fragment(s: &str) -> &str {
    // A byte search: both delimiters are ASCII, so the cut is on a character boundary.
    let end = s
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(s.len());
    s.get(..end).unwrap_or(s)
}

/// `s.split_once(c)` for an ASCII `c`, by a byte search.
fn split_at_byte(s: &str, c: u8) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == c)?;
    Some((s.get(..at)?, s.get(at.checked_add(1)?..)?))
}

/// `s.rsplit_once(c)` for an ASCII `c`, by a byte search.
fn rsplit_at_byte(s: &str, c: u8) -> Option<(&str, &str)> {
    let at = s.bytes().rposition(|b| b == c)?;
    Some((s.get(..at)?, s.get(at.checked_add(1)?..)?))
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
    Ok(rsplit_at_byte(hostport, b':').unwrap_or((hostport, "")))
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
    // For ASCII, `to_lowercase` is the ASCII lower case, and a host without upper-case letters
    // (the usual one) is its own lower case.
    let lowered: Cow<'_, str> = if !printable_ascii {
        Cow::Owned(decoded.to_lowercase())
    } else if decoded.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(decoded.to_ascii_lowercase())
    } else {
        decoded
    };
    let name = lowered.strip_suffix('.').unwrap_or(&lowered);
    if name.is_empty() {
        return Err(invalid());
    }
    if let Some(ip) = parse_lenient_ip(name) {
        return Ok(UrlHost::Ip(ip));
    }
    // A name that is already what `Host::parse` would make of it (lower-case LDH labels, none
    // of them punycode, the last not a number) is returned as it is, without the IDNA pass.
    if is_canonical_dns_name(name) {
        return Ok(UrlHost::Name(name.to_owned()));
    }
    match Host::parse(name).map_err(|_| invalid())? {
        Host::Domain(mut domain) => {
            if domain.ends_with('.') {
                domain.pop();
            }
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
fn percent_decode_host<'t>(text: &'t str, raw: &str) -> Result<Cow<'t, str>, Uncertain> {
    // Without a `%` there is nothing to decode, and `text` is already UTF-8.
    if !text.contains('%') {
        return Ok(Cow::Borrowed(text));
    }
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
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| invalid())
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

/// Whether `Host::parse` returns `name` itself as a domain, which then passes [`is_dns_name`]:
/// true for a DNS name whose labels are lower-case ASCII letters, digits, `-` and `_` (for
/// these, IDNA's mapping is the identity and the URL deny list forbids none), none starting
/// with `xn--` (those are decoded and checked as punycode), and whose last label is not a
/// number (WHATWG "ends in a number": all digits, or `0x` and hex digits, would be read as an
/// IPv4 address). Property tests check the shortcut against the full parse.
fn is_canonical_dns_name(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    is_dns_name(name)
        && !name.split('.').any(|label| label.starts_with("xn--"))
        && !last.starts_with("0x")
        && !last.bytes().all(|b| b.is_ascii_digit())
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
            // Names from `url_readings` are already lower case: no copy for them.
            let name: Cow<'_, str> = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(name.to_ascii_lowercase())
            } else {
                Cow::Borrowed(name)
            };
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

#[cfg(test)]
mod reference;
