use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn readings(raw: &str) -> Vec<UrlReading> {
    match url_readings(raw) {
        Ok(readings) => readings,
        Err(e) => panic!("`{raw}` was uncertain: {e}"),
    }
}

fn why(raw: &str) -> String {
    match url_readings(raw) {
        Ok(readings) => panic!("`{raw}` was certain: {readings:?}"),
        Err(e) => e.why,
    }
}

fn assert_uncertain(raw: &str, needle: &str) {
    let why = why(raw);
    assert!(why.contains(needle), "`{raw}`: `{why}` lacks `{needle}`");
}

fn name(s: &str) -> Option<UrlHost> {
    Some(UrlHost::Name(s.to_owned()))
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> Option<UrlHost> {
    Some(UrlHost::Ip(IpAddr::V4(Ipv4Addr::new(a, b, c, d))))
}

fn v6(s: &str) -> Option<UrlHost> {
    Some(UrlHost::Ip(IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())))
}

fn reading(
    scheme: &str,
    host: Option<UrlHost>,
    port: Option<u16>,
    path: &str,
    parser: &'static str,
) -> UrlReading {
    UrlReading {
        scheme: scheme.to_owned(),
        host,
        port,
        path: path.to_owned(),
        parser,
    }
}

/// The hosts of every reading.
fn hosts(raw: &str) -> Vec<Option<UrlHost>> {
    readings(raw).into_iter().map(|r| r.host).collect()
}

// --- parser differentials ---------------------------------------------------------------

#[test]
fn backslash_before_at_gives_two_hosts() {
    assert_eq!(
        readings("http://a\\@b/"),
        [
            reading("http", name("a"), Some(80), "/@b/", "whatwg"),
            reading("http", name("b"), Some(80), "/", "rfc3986"),
        ]
    );
}

#[test]
fn backslash_before_at_reaches_a_private_host_in_one_reading() {
    let all = readings("http://evil.com\\@127.0.0.1/");
    assert_eq!(all.len(), 2);
    assert!(!host_is_private(all[0].host.as_ref().unwrap()));
    assert!(host_is_private(all[1].host.as_ref().unwrap()));
}

#[test]
fn two_at_signs_are_uncertain() {
    assert_eq!(
        why("http://user@127.0.0.1@evil.com/"),
        "url `http://user@127.0.0.1@evil.com/` has more than one `@` in its authority, and parsers disagree on which one ends the user info"
    );
}

#[test]
fn at_in_fragment_after_host_is_uncertain() {
    assert_uncertain(
        "http://evil.com#@127.0.0.1",
        "has an `@` in the query or fragment right after its host",
    );
    assert_uncertain("http://evil.com?@127.0.0.1", "right after its host");
}

#[test]
fn at_in_a_path_or_later_query_is_fine() {
    assert_eq!(
        hosts("http://example.com/a@b?c=d@e#f@g"),
        [name("example.com")]
    );
}

#[test]
fn userinfo_is_dropped() {
    assert_eq!(
        readings("http://user:pa%40ss@example.com/"),
        [reading(
            "http",
            name("example.com"),
            Some(80),
            "/",
            "whatwg"
        )]
    );
}

#[test]
fn dot_segments_give_an_rfc_reading_with_the_raw_path() {
    assert_eq!(
        readings("http://example.com/a/../b"),
        [
            reading("http", name("example.com"), Some(80), "/b", "whatwg"),
            reading("http", name("example.com"), Some(80), "/a/../b", "rfc3986"),
        ]
    );
}

// --- hosts -------------------------------------------------------------------------------

#[test]
fn localhost_with_case_and_trailing_dot() {
    assert_eq!(
        readings("http://LOCALHOST./"),
        [reading("http", name("localhost"), Some(80), "/", "whatwg")]
    );
    assert!(host_is_private(&UrlHost::Name("localhost".to_owned())));
}

#[test]
fn subdomain_of_localhost_is_private() {
    let all = readings("http://foo.localhost/");
    assert_eq!(
        all,
        [reading(
            "http",
            name("foo.localhost"),
            Some(80),
            "/",
            "whatwg"
        )]
    );
    assert!(host_is_private(all[0].host.as_ref().unwrap()));
}

#[test]
fn ipv4_spellings_become_addresses() {
    for raw in [
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://017700000001/",
        "http://127.0.0.1./",
        "http://0x7f.1/",
        "http://%31%32%37.0.0.1/",
        "http://１２７.０.０.１/",
    ] {
        assert_eq!(hosts(raw), [v4(127, 0, 0, 1)], "{raw}");
    }
}

#[test]
fn numeric_spellings_in_non_special_schemes_become_addresses() {
    assert_eq!(
        readings("foo://0x7f.1/x"),
        [reading("foo", v4(127, 0, 0, 1), None, "/x", "whatwg")]
    );
    assert_eq!(hosts("redis://2130706433:6379"), [v4(127, 0, 0, 1)]);
}

#[test]
fn ipv6_hosts() {
    assert_eq!(hosts("http://[::1]/"), [v6("::1")]);
    assert_eq!(hosts("http://[::ffff:127.0.0.1]/"), [v6("::ffff:7f00:1")]);
    assert_eq!(hosts("http://[::ffff:7f00:1]:8080/"), [v6("::ffff:7f00:1")]);
    assert_eq!(hosts("http://[fd00:ec2::254]/"), [v6("fd00:ec2::254")]);
    for raw in [
        "http://[::1]/",
        "http://[::ffff:7f00:1]/",
        "http://[fd00:ec2::254]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0/",
        "http://[64:ff9b::7f00:1]/",
    ] {
        assert!(
            readings(raw)
                .iter()
                .all(|r| host_is_private(r.host.as_ref().unwrap())),
            "{raw}"
        );
    }
}

#[test]
fn zoned_ipv6_is_uncertain() {
    assert_uncertain("http://[fe80::1%25eth0]/", "does not parse");
}

#[test]
fn public_hosts_are_not_private() {
    for raw in [
        "https://example.com/",
        "http://8.8.8.8/",
        "http://[2606:4700::1111]/",
        "https://metadata.example.com/",
        "https://localhost.example.com/",
    ] {
        assert!(
            readings(raw)
                .iter()
                .all(|r| !host_is_private(r.host.as_ref().unwrap())),
            "{raw}"
        );
    }
}

#[test]
fn idna_hosts_are_ascii() {
    assert_eq!(hosts("http://Bücher.de/"), [name("xn--bcher-kva.de")]);
    assert_eq!(hosts("http://ｅｘａｍｐｌｅ.com/"), [name("example.com")]);
}

#[test]
fn percent_encoded_host_is_decoded() {
    assert_eq!(hosts("http://%6c%6fcalhost/"), [name("localhost")]);
}

#[test]
fn invalid_hosts_are_uncertain() {
    assert_uncertain(
        "http://exa mple.com",
        "contains whitespace or a control character (U+0020)",
    );
    assert_uncertain("http://%00/", "does not parse");
    assert_uncertain(
        "http://a*b.com/",
        "has host `a*b.com`, which is not a valid host name or ip address",
    );
    assert_uncertain("foo://a*b/", "is not a valid host name or ip address");
    assert_uncertain("foo://a%zzb/", "invalid percent-encoding in its host");
    assert_uncertain(
        "foo://a%00b/",
        "decodes to whitespace or a control character (U+0000)",
    );
    assert_uncertain("foo://a%ffb/", "invalid percent-encoding in its host");
    assert_uncertain("http://1.2.3.256/", "does not parse");
    assert_uncertain("http://a..b/", "is not a valid host name or ip address");
    assert_uncertain("http://example.com\u{200B}/", "invisible");
    assert_uncertain("http://example.com/\t", "(U+0009)");
    assert_uncertain("http://example.com/\u{3000}", "(U+3000)");
}

#[test]
fn empty_or_missing_host_is_uncertain() {
    assert_uncertain("http:///x", "has no host, and `http` needs one");
    assert_uncertain("http:example.com", "has no host, and `http` needs one");
    assert_uncertain("http://", "does not parse");
}

#[test]
fn unparseable_urls_are_uncertain() {
    assert_eq!(why(""), "empty url");
    assert_uncertain("example.com/x", "does not parse");
    assert_uncertain("http://example.com:99999/", "does not parse");
    assert_uncertain("foo://example.com:99999/", "does not parse");
    assert_uncertain("1http://x/", "does not parse");
}

// --- ports, paths, host-less URLs --------------------------------------------------------

#[test]
fn explicit_port_and_path() {
    assert_eq!(
        readings("https://example.com:8443/x"),
        [reading(
            "https",
            name("example.com"),
            Some(8443),
            "/x",
            "whatwg"
        )]
    );
}

#[test]
fn default_ports() {
    let port = |raw: &str| readings(raw)[0].port;
    assert_eq!(port("http://example.com"), Some(80));
    assert_eq!(port("https://example.com"), Some(443));
    assert_eq!(port("ws://example.com"), Some(80));
    assert_eq!(port("wss://example.com"), Some(443));
    assert_eq!(port("ftp://example.com"), Some(21));
    assert_eq!(port("HTTPS://example.com:443"), Some(443));
    assert_eq!(port("redis://example.com"), None);
}

#[test]
fn scheme_is_lower_case() {
    assert_eq!(
        readings("HTTP://Example.COM/A"),
        [reading(
            "http",
            name("example.com"),
            Some(80),
            "/A",
            "whatwg"
        )]
    );
}

#[test]
fn file_url_has_no_host() {
    assert_eq!(
        readings("file:///etc/passwd"),
        [reading("file", None, None, "/etc/passwd", "whatwg")]
    );
}

#[test]
fn javascript_url_has_no_host() {
    assert_eq!(
        readings("javascript:alert(1)"),
        [reading("javascript", None, None, "alert(1)", "whatwg")]
    );
    assert_eq!(hosts("mailto:a@example.com"), [None]);
}

// --- host_is_private on names ------------------------------------------------------------

#[test]
fn private_names() {
    for n in [
        "localhost",
        "a.b.localhost",
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "db.internal",
        "printer.local",
        "nas.home.arpa",
        "intranet",
        "LocalHost.",
        "x.lvh.me",
    ] {
        assert!(host_is_private(&UrlHost::Name(n.to_owned())), "{n}");
    }
    for n in [
        "example.com",
        "notlocalhost.com",
        "internal.example.com",
        "metadata.goog.example.com",
    ] {
        assert!(!host_is_private(&UrlHost::Name(n.to_owned())), "{n}");
    }
}

/// Each spelling that takes a different branch of the borrowed readings, against the plain
/// copying form: IPv6 (with zones), IDNA, percent-encoding, user info, backslashes, ports,
/// upper-case schemes and hosts, empty hosts, trailing dots, host-less schemes.
#[test]
fn fast_form_equals_plain_form_on_edge_cases() {
    for raw in [
        "https://docs.rs/serde/latest/serde/",
        "HTTPS://DOCS.RS/serde",
        "HtTp://Example.COM.:8080/a?b#c",
        "http://[::1]:80/",
        "http://[fe80::1%25eth0]/",
        "http://[::ffff:127.0.0.1]/x",
        "http://bücher.de/",
        "http://xn--bcher-kva.de/",
        "http://ＥＸＡＭＰＬＥ.com/",
        "http://ex%41mple.com/",
        "http://%31%32%37.0.0.1/",
        "http://%zz.com/",
        "http://%C3%A9.com/",
        "http://user:pass@example.com/",
        "http://a\\@169.254.169.254/",
        "http://example.com\\@169.254.169.254/latest/meta-data",
        "https://a@b@c/",
        "http://evil.com#@127.0.0.1",
        "http://evil.com?@127.0.0.1",
        "http://example.com:99999/",
        "http://example.com:x/",
        "http://example.com:/",
        "https://example.com:443",
        "http:///x",
        "http://",
        "http:example.com/",
        "file:///etc/passwd",
        "file://host/share",
        "mailto:a@b.c",
        "javascript:alert(1)",
        "foo://0x7f.1/",
        "foo://Host/",
        "http://0x7f.1/",
        "http://2130706433/",
        "http://localhost./",
        "http://a..b/",
        "http://example.com/a/../b",
        "http://example.com/a\\..\\b",
        "http://example.com/%2e%2e/x",
        "http://example.com",
        "ws://example.com",
        "git+ssh://git@example.com:22/x",
        "http://a_b.example/",
        "http://a.0x1/",
        "http://a.0x/",
        "http://a.0xg/",
        "http://a.123/",
        "http://a.0/",
        "http://a.017/",
        "http://a.08/",
        "http://xn--a.com/",
        "http://a.xn--nxasmq6b/",
        "http://-a-.b-/",
        "foo://a.0x1/",
        "http://1a.2b/",
    ] {
        assert_eq!(url_readings(raw), reference::url_readings(raw), "`{raw}`");
    }
}

#[test]
fn upper_case_scheme_and_host_read_alike_by_both_parsers() {
    // The RFC 3986 split lower-cases the scheme and the host: the same reading as WHATWG, so
    // one reading, not two.
    assert_eq!(
        readings("HTTPS://DOCS.RS/serde"),
        vec![reading(
            "https",
            name("docs.rs"),
            Some(443),
            "/serde",
            "whatwg"
        )]
    );
}

#[test]
fn an_empty_path_is_a_slash_for_special_schemes_only() {
    assert_eq!(
        readings("https://example.com"),
        vec![reading(
            "https",
            name("example.com"),
            Some(443),
            "/",
            "whatwg"
        )]
    );
    assert_eq!(readings("foo://example.com").len(), 1);
}

#[test]
fn private_names_are_found_in_any_case_without_a_copy() {
    for n in [
        "LOCALHOST",
        "Metadata.Google.Internal",
        "printer.LAN.",
        "x.Localhost",
    ] {
        assert!(host_is_private(&UrlHost::Name(n.to_owned())), "{n}");
    }
    assert!(!host_is_private(&UrlHost::Name("Docs.RS".to_owned())));
}

#[test]
fn canonical_dns_names_skip_the_idna_pass_only_when_it_changes_nothing() {
    for n in ["docs.rs", "a_b.example", "-a-.b-", "1a.2b", "a.08b", "x"] {
        assert!(is_canonical_dns_name(n), "{n}");
    }
    // Upper case, punycode labels, a last label that WHATWG reads as a number (or, to keep the
    // test simple, any last label starting `0x`), empty labels: these take the full parse.
    for n in [
        "a.0xg",
        "Docs.rs",
        "xn--a.com",
        "a.xn--b",
        "a.0x1",
        "a.0x",
        "a.123",
        "a.0",
        "a..b",
        "a.",
        "",
        "a%41.com",
        "bücher.de",
    ] {
        assert!(!is_canonical_dns_name(n), "{n}");
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn arbitrary_urls_never_panic(raw in r"[a-z]{1,5}:(//)?[a-z0-9@\\\[\]:%.#?/x]{0,30}") {
            if let Ok(all) = url_readings(&raw) {
                prop_assert!(!all.is_empty() && all.len() <= 2);
                prop_assert_eq!(all[0].parser, "whatwg");
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(raw in any::<String>()) {
            let _ = url_readings(&raw);
        }

        // The borrowed readings (no copies to compare the two parsers, hosts classified without
        // decoding or lower-casing what needs neither) against the plain copying form they
        // replace: the same readings, or the same reason for uncertainty, on every URL.
        #[test]
        fn readings_equal_the_plain_form_on_url_shapes(raw in url_shape()) {
            prop_assert_eq!(url_readings(&raw), reference::url_readings(&raw), "{}", raw);
        }

        #[test]
        fn readings_equal_the_plain_form_on_loose_text(
            raw in r"[a-zA-Z+]{0,5}:(//)?[a-zA-Z0-9@\\\[\]:%.#?/x_\-éＡ]{0,30}",
        ) {
            prop_assert_eq!(url_readings(&raw), reference::url_readings(&raw), "{}", raw);
        }

        #[test]
        fn readings_equal_the_plain_form_on_any_string(raw in any::<String>()) {
            prop_assert_eq!(url_readings(&raw), reference::url_readings(&raw));
        }

        #[test]
        fn hosts_classify_as_the_plain_form(text in host_shape()) {
            prop_assert_eq!(
                classify_host(&text, "raw"),
                reference::classify_host(&text, "raw"),
                "{}",
                text
            );
        }

        #[test]
        fn private_names_equal_the_plain_form(name in r"[a-zA-Z0-9.\-]{0,12}(\.(localhost|LOCALHOST|Internal|lan|corp|me|lvh\.me|home\.arpa|example\.com))?\.?") {
            let host = UrlHost::Name(name.clone());
            prop_assert_eq!(host_is_private(&host), reference::host_is_private(&host), "{}", name);
        }
    }

    /// Hosts as spelled in URLs: names, IDNA, upper case, trailing dots, percent-encoding (valid,
    /// invalid, not UTF-8), every IPv4 spelling, IPv6 with zones, empty and odd labels.
    fn host_shape() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "docs.rs",
                "DOCS.RS",
                "Example.com",
                "example.com.",
                "example.com..",
                "a..b",
                "",
                ".",
                "xn--nxasmq6b.com",
                "xn--a.com",
                "XN--NXASMQ6B.COM",
                "bücher.de",
                "BÜCHER.de",
                "ＥＸＡＭＰＬＥ.com",
                "ex\u{ad}ample.com",
                "127.0.0.1",
                "0x7f.1",
                "0X7F.0.0.1",
                "2130706433",
                "017700000001",
                "1.2.3.4.5",
                "256.1.1.1",
                "a.b.c.0x1",
                "1.2.3",
                "[::1]",
                "[::ffff:127.0.0.1]",
                "[fe80::1%25eth0]",
                "[fe80::1%eth0]",
                "[::1",
                "[zz]",
                "::1",
                "169.254.169.254",
                "%31%32%37.0.0.1",
                "ex%41mple.com",
                "ex%41%4dple.com",
                "%zz.com",
                "%4",
                "%",
                "%C3%A9.com",
                "%C3.com",
                "%FF.com",
                "%00.com",
                "%20a.com",
                "localhost",
                "LOCALHOST.",
                "a_b.example",
                "-a.com",
                "a-.com",
                "a.-b",
                "metadata.google.internal",
                "a b.com",
                "a\tb.com",
                "a\u{202e}b.com",
            ])
            .prop_map(str::to_owned),
            r"[a-zA-Z0-9.%_\-]{0,16}",
            r"(xn--)?[a-z0-9\-]{1,8}(\.[a-zA-Z0-9]{1,6}){0,3}\.?",
            r"[0-9x.]{1,12}",
            r"([a-z0-9_\-]{1,5}\.){0,3}(xn--[a-z0-9]{0,4}|0x[0-9a-f]{0,3}|0[0-7]{0,3}|[0-9]{1,4}|[a-z0-9_\-]{1,5})\.?",
            r"([a-z0-9_\-]{0,4}\.){0,2}xn--[a-z0-9\-]{0,6}(\.[a-z]{1,3})?",
        ]
    }

    /// URLs built from pieces that parsers read differently: schemes in any case, with and
    /// without `//`, user info (with `\`, several `@`), every host shape, ports in and out of
    /// range, paths with dot segments, backslashes and encoded dots, queries and fragments with
    /// `@`.
    fn url_shape() -> impl Strategy<Value = String> {
        let scheme = prop::sample::select(vec![
            "http",
            "https",
            "HTTP",
            "HtTpS",
            "ftp",
            "ws",
            "WSS",
            "file",
            "mailto",
            "javascript",
            "foo",
            "git+ssh",
            "1x",
            "",
        ]);
        let slashes = prop::sample::select(vec!["://", ":", ":/", ":///", "//", ":\\\\", "://\\"]);
        let userinfo = prop::sample::select(vec![
            "", "", "", "user@", "u:p@", "a\\@", "@", "a@b@", "%40@", "u:@", "ü@",
        ]);
        let port = prop::sample::select(vec![
            "", "", "", ":", ":80", ":443", ":8080", ":99999", ":x", ":0", ":65535", ":65536",
            ":+1",
        ]);
        let path = prop::sample::select(vec![
            "",
            "",
            "/",
            "/a/b",
            "/a/../b",
            "/./x",
            "\\x",
            "/a\\..\\b",
            "/%2e%2e/",
            "?q=1",
            "#f",
            "?@x",
            "#@127.0.0.1",
            "/p?x#y",
            "/ü",
            "/a b",
            "/@x",
            "//x",
        ]);
        (scheme, slashes, userinfo, host_shape(), port, path).prop_map(
            |(scheme, slashes, userinfo, host, port, path)| {
                format!("{scheme}{slashes}{userinfo}{host}{port}{path}")
            },
        )
    }
}
