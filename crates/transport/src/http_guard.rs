//! DNS-rebinding protection for the Streamable HTTP front: which `Host` and `Origin` headers a
//! request may carry.
//!
//! A web page on `evil.example` whose name is re-pointed at 127.0.0.1 makes the victim's browser
//! send requests to a local server with `Host: evil.example` and `Origin: http://evil.example`.
//! The MCP transport spec (2025-11-25, "Security Warning") requires servers to validate `Origin`;
//! checking `Host` as well also stops non-browser rebinding. By default only loopback names are
//! accepted; an operator behind a load balancer names the public host explicitly.

/// Host names that always mean "this machine" (with any port).
const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

/// The hosts and origins a gateway accepts beyond loopback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostGuard {
    /// Extra accepted `Host` names (without port, lower case), e.g. `mcp.example.com`.
    pub hosts: Vec<String>,
    /// Extra accepted origins, exactly as browsers send them (`https://app.example.com`).
    pub origins: Vec<String>,
}

impl HostGuard {
    /// Whether a request's `Host` header value is acceptable. A missing header is refused: every
    /// HTTP/1.1 request carries one, so its absence is a malformed or crafted request.
    #[must_use]
    pub fn host_ok(&self, host: Option<&str>) -> bool {
        let Some(name) = host.and_then(host_name) else {
            return false;
        };
        LOOPBACK_HOSTS.contains(&name.as_str()) || self.hosts.contains(&name)
    }

    /// Whether a request's `Origin` header value is acceptable. No `Origin` is fine (non-browser
    /// clients do not send one); `null` and anything unparsable are refused.
    #[must_use]
    pub fn origin_ok(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.origins.iter().any(|o| o.as_str() == origin) {
            return true;
        }
        let rest = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        match rest {
            Some(authority) if !authority.contains(['/', '@', '?', '#']) => {
                host_name(authority).is_some_and(|name| LOOPBACK_HOSTS.contains(&name.as_str()))
            }
            _ => false,
        }
    }
}

/// The lower-cased host part of `host[:port]` or `[v6][:port]`; `None` when malformed.
fn host_name(authority: &str) -> Option<String> {
    let authority = authority.trim();
    if authority.is_empty() || authority.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let name = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (name, rest) = authority.split_at(end.checked_add(1)?);
        if !(rest.is_empty() || port_ok(rest.strip_prefix(':')?)) {
            return None;
        }
        name
    } else {
        match authority.split_once(':') {
            Some((name, port)) if port_ok(port) => name,
            Some(_) => return None,
            None => authority,
        }
    };
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

fn port_ok(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_hosts_with_and_without_port() {
        let guard = HostGuard::default();
        for host in ["localhost", "127.0.0.1:8750", "[::1]:80", "LOCALHOST:1"] {
            assert!(guard.host_ok(Some(host)), "{host}");
        }
    }

    #[test]
    fn refuses_foreign_and_malformed_hosts() {
        let guard = HostGuard::default();
        for host in [
            "evil.example.com",
            "evil.example.com:8750",
            "127.0.0.1.evil.example",
            "localhost:x",
            "",
            "[::1",
            "127.0.0.1:80:80",
        ] {
            assert!(!guard.host_ok(Some(host)), "{host}");
        }
        assert!(!guard.host_ok(None));
    }

    #[test]
    fn configured_hosts_are_accepted() {
        let guard = HostGuard {
            hosts: vec!["mcp.example.com".into()],
            origins: vec!["https://app.example.com".into()],
        };
        assert!(guard.host_ok(Some("mcp.example.com:443")));
        assert!(guard.origin_ok(Some("https://app.example.com")));
        assert!(!guard.origin_ok(Some("https://app.example.com.evil")));
    }

    #[test]
    fn origins_must_be_loopback_or_configured() {
        let guard = HostGuard::default();
        assert!(guard.origin_ok(None));
        assert!(guard.origin_ok(Some("http://localhost:3000")));
        assert!(guard.origin_ok(Some("http://127.0.0.1")));
        for origin in [
            "http://evil.example.com",
            "null",
            "http://localhost@evil.example.com",
            "http://localhost/path",
            "file://",
        ] {
            assert!(!guard.origin_ok(Some(origin)), "{origin}");
        }
    }
}
