//! IP address parsing in every spelling, and classification.
//!
//! SSRF filters are bypassed by spelling `127.0.0.1` as `127.1`, `2130706433`, `0x7f000001`,
//! `0177.0.0.1` or `[::ffff:127.0.0.1]`: `std::net` refuses all but the last, while glibc's
//! `inet_aton`, curl, browsers and the `url` crate connect to loopback. So we parse as leniently
//! as the most lenient resolver and classify embedded IPv4 addresses inside IPv6 forms too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Parse a host string as an IP address the way the most lenient resolver would
/// (`inet_aton`: decimal, octal, hex, 1–4 parts; bracketed or bare IPv6). `None` for names.
///
/// IPv4: one to four `.`-separated parts, each decimal, octal (leading `0`) or hex (`0x`); every
/// part but the last is one byte, the last fills the remaining bytes (`127.1` is `127.0.0.1`,
/// `0x7f.1` too). One trailing `.` is accepted (`127.0.0.1.` is a fully qualified spelling).
/// A value out of range is not an address. IPv6: bare or in brackets; a zone id (`%eth0`, or
/// `%25eth0` as written in URLs) is dropped, since it only picks the interface.
pub fn parse_lenient_ip(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[') {
        return parse_ipv6(inner.strip_suffix(']')?).map(IpAddr::V6);
    }
    if host.contains(':') {
        return parse_ipv6(host).map(IpAddr::V6);
    }
    parse_inet_aton(host).map(IpAddr::V4)
}

fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    let address = match s.split_once('%') {
        Some((address, zone)) if !zone.is_empty() => address,
        Some(_) => return None,
        None => s,
    };
    address.parse().ok()
}

/// glibc `inet_aton` (also what `ping`, `curl` and many HTTP clients accept).
fn parse_inet_aton(host: &str) -> Option<Ipv4Addr> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    let parts: Vec<u64> = host
        .split('.')
        .map(parse_part)
        .collect::<Option<Vec<u64>>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|&p| p > 0xff) {
        return None;
    }
    // The last part fills every byte the leading parts did not: 4 bytes alone, 1 byte after 3.
    let last_bits = 32u32.checked_sub(8u32.checked_mul(u32::try_from(leading.len()).ok()?)?)?;
    if *last >= 1u64.checked_shl(last_bits)? {
        return None;
    }
    let mut value: u64 = 0;
    for &part in leading {
        value = (value << 8) | part;
    }
    value = (value << last_bits) | last;
    Some(Ipv4Addr::from(u32::try_from(value).ok()?))
}

/// One `inet_aton` part: `0x`/`0X` hex, leading-`0` octal, else decimal. `None` on an empty
/// part, a stray character or a value too large to be meaningful.
fn parse_part(part: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            // `0x` alone is 0 for both glibc and WHATWG.
            if hex.is_empty() {
                return Some(0);
            }
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (part.get(1..)?, 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Anything above 32 bits is out of range for every part; `from_str_radix` rejects signs.
    u64::from_str_radix(digits, radix)
        .ok()
        .filter(|&v| v <= u64::from(u32::MAX))
}

/// Whether an address is loopback, private, link-local, CGNAT, unspecified, unique-local,
/// a cloud metadata address, or an IPv6 form embedding such an IPv4 address.
///
/// IPv4: `0.0.0.0/8`, `10/8`, `100.64/10`, `127/8`, `169.254/16`, `172.16/12`, `192.0.0/24`,
/// `192.168/16`, `198.18/15`, `224/4`, `240/4` (includes `255.255.255.255`) and the metadata
/// addresses of [`is_metadata_ip`]. IPv6: `::`, `::1`, `fc00::/7`, `fe80::/10`, `fec0::/10`
/// (deprecated site-local, still routed inside some networks), `ff00::/8`, `64:ff9b:1::/48`
/// (local-use NAT64), and every form that embeds an IPv4 address (mapped `::ffff:0:0/96`,
/// translated `::ffff:0:0:0/96`, compatible `::/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`,
/// Teredo `2001::/32` server and client) when that address is private: a dual-stack socket or
/// a NAT64 gateway connects to the embedded IPv4.
pub fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let first = s.first().copied().unwrap_or(0);
            let second = s.get(1).copied().unwrap_or(0);
            v6.is_unspecified()
                || v6.is_loopback()
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
                || first & 0xffc0 == 0xfec0
                || first & 0xff00 == 0xff00
                || (first == 0x0064 && second == 0xff9b && s.get(2) == Some(&1))
                || is_metadata_ip(ip)
                || embedded_v4(v6).iter().any(|&v4| is_private_v4(v4))
        }
    }
}

fn is_private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    a == 0
        || a == 10
        || (a == 100 && (64..128).contains(&b))
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b))
        || a >= 224
        || is_metadata_v4(v4)
}

/// Whether an address is a cloud instance-metadata endpoint (credentials live there), in any
/// form including IPv4 embedded in IPv6.
///
/// `169.254.169.254` (AWS, GCP, Azure, OpenStack, ...), `169.254.170.2` (AWS ECS task
/// credentials), `169.254.170.23` (EKS pod identity), `100.100.100.200` (Alibaba),
/// `168.63.129.16` (Azure wire server, a public address), `192.0.0.192` (Oracle), and
/// `fd00:ec2::254`, `fd00:ec2::23` (AWS over IPv6).
pub fn is_metadata_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_metadata_v4(v4),
        IpAddr::V6(v6) => {
            const AWS: [Ipv6Addr; 2] = [
                Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
                Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),
            ];
            AWS.contains(&v6) || embedded_v4(v6).iter().any(|&v4| is_metadata_v4(v4))
        }
    }
}

fn is_metadata_v4(v4: Ipv4Addr) -> bool {
    const METADATA: [Ipv4Addr; 6] = [
        Ipv4Addr::new(169, 254, 169, 254),
        Ipv4Addr::new(169, 254, 170, 2),
        Ipv4Addr::new(169, 254, 170, 23),
        Ipv4Addr::new(100, 100, 100, 200),
        Ipv4Addr::new(168, 63, 129, 16),
        Ipv4Addr::new(192, 0, 0, 192),
    ];
    METADATA.contains(&v4)
}

/// The IPv4 addresses an IPv6 address carries, by the transition mechanism it belongs to.
fn embedded_v4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let bits = u128::from(v6);
    let low32 = |b: u128| Ipv4Addr::from((b & 0xffff_ffff) as u32);
    let mut out = Vec::new();
    // `::ffff:a.b.c.d` (mapped) and `::a.b.c.d` (compatible, deprecated but still parsed).
    if bits >> 32 == 0xffff || bits >> 32 == 0 {
        out.push(low32(bits));
    }
    // `::ffff:0:a.b.c.d` (SIIT translated).
    if bits >> 32 == 0xffff_0000 {
        out.push(low32(bits));
    }
    // `64:ff9b::a.b.c.d` (NAT64 well-known prefix).
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        out.push(low32(bits));
    }
    // `2002:AABB:CCDD::/48` (6to4): the IPv4 is bits 16..48.
    if bits >> 112 == 0x2002 {
        out.push(low32(bits >> 80));
    }
    // `2001:0000:SERVER:...:CLIENT^ffffffff` (Teredo): both ends are IPv4 addresses.
    if bits >> 96 == 0x2001_0000 {
        out.push(low32(bits >> 64));
        out.push(low32(!bits));
    }
    out
}

#[cfg(test)]
mod tests;
