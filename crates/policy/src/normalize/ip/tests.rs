use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

fn ip(s: &str) -> IpAddr {
    match parse_lenient_ip(s) {
        Some(ip) => ip,
        None => panic!("`{s}` did not parse"),
    }
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

#[test]
fn loopback_in_every_ipv4_spelling() {
    for spelling in [
        "127.0.0.1",
        "127.1",
        "127.0.1",
        "2130706433",
        "0x7f000001",
        "0X7F000001",
        "0177.0.0.1",
        "017700000001",
        "0x7f.1",
        "0x7f.0.0.0x1",
        "127.0.0.1.",
        "0177.1",
    ] {
        assert_eq!(parse_lenient_ip(spelling), Some(LOOPBACK), "{spelling}");
    }
}

#[test]
fn zero_spellings() {
    let zero = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    assert_eq!(parse_lenient_ip("0"), Some(zero));
    assert_eq!(parse_lenient_ip("0.0.0.0"), Some(zero));
    assert_eq!(parse_lenient_ip("0x"), Some(zero));
    assert_eq!(parse_lenient_ip("00"), Some(zero));
}

#[test]
fn last_part_fills_remaining_bytes() {
    assert_eq!(
        parse_lenient_ip("10.65535"),
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 255, 255)))
    );
    assert_eq!(
        parse_lenient_ip("10.1.65535"),
        Some(IpAddr::V4(Ipv4Addr::new(10, 1, 255, 255)))
    );
    assert_eq!(
        parse_lenient_ip("10.1.65536"),
        None,
        "two leading parts leave 16 bits"
    );
    assert_eq!(
        parse_lenient_ip("10.16777215"),
        Some(IpAddr::V4(Ipv4Addr::new(10, 255, 255, 255)))
    );
    assert_eq!(
        parse_lenient_ip("4294967295"),
        Some(IpAddr::V4(Ipv4Addr::BROADCAST))
    );
}

#[test]
fn out_of_range_and_malformed_are_not_addresses() {
    for spelling in [
        "4294967296",
        "256.0.0.1",
        "1.2.3.256",
        "1.2.3.4.5",
        "08.0.0.1",
        "0x1g",
        "1..2",
        ".1.2.3",
        "1.2.3.4..",
        "",
        ".",
        "+1",
        "-1",
        "1 ",
        "example.com",
        "localhost",
        "0x7f.example",
        "99999999999999999999999",
        "１２７.0.0.1",
    ] {
        assert_eq!(parse_lenient_ip(spelling), None, "`{spelling}`");
    }
}

#[test]
fn ipv6_bare_bracketed_and_zoned() {
    assert_eq!(ip("::1"), v6("::1"));
    assert_eq!(ip("[::1]"), v6("::1"));
    assert_eq!(ip("[fe80::1%25eth0]"), v6("fe80::1"));
    assert_eq!(ip("fe80::1%eth0"), v6("fe80::1"));
    assert_eq!(ip("[::ffff:127.0.0.1]"), v6("::ffff:7f00:1"));
    assert_eq!(ip("[::ffff:7f00:1]"), v6("::ffff:127.0.0.1"));
    assert_eq!(parse_lenient_ip("[::1"), None);
    assert_eq!(parse_lenient_ip("[127.0.0.1]"), None);
    assert_eq!(parse_lenient_ip("fe80::1%"), None);
    assert_eq!(parse_lenient_ip("[::g]"), None);
}

#[test]
fn private_ipv4_ranges() {
    for spelling in [
        "0.0.0.0",
        "0",
        "0.1.2.3",
        "10.0.0.1",
        "100.64.0.1",
        "100.127.255.255",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "017700000001",
        "169.254.169.254",
        "169.254.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.19.255.255",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "100.100.100.200",
        "168.63.129.16",
    ] {
        assert!(is_private_ip(ip(spelling)), "{spelling}");
    }
}

#[test]
fn public_ipv4_is_not_private() {
    for spelling in [
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.1",
        "192.169.0.1",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "169.253.255.255",
        "11.0.0.0",
    ] {
        assert!(!is_private_ip(ip(spelling)), "{spelling}");
    }
}

#[test]
fn private_ipv6_ranges() {
    for spelling in [
        "[::]",
        "[::1]",
        "[fc00::1]",
        "[fd12:3456::1]",
        "[fe80::1%25eth0]",
        "[febf::1]",
        "[fec0::1]",
        "[ff02::1]",
        "[fd00:ec2::254]",
        "[64:ff9b:1::1]",
    ] {
        assert!(is_private_ip(ip(spelling)), "{spelling}");
    }
}

#[test]
fn ipv6_embedding_a_private_ipv4_is_private() {
    for spelling in [
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::ffff:169.254.169.254]",
        "[::ffff:0:10.0.0.1]",
        "[::127.0.0.1]",
        "[::a9fe:a9fe]",
        "64:ff9b::7f00:1",
        "64:ff9b::10.1.2.3",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        // Teredo, client 127.0.0.1 (XOR ffffffff = 80ff:fffe), public server 65.54.227.120.
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        // Teredo with a private server.
        "2001:0:a00:1::1",
    ] {
        assert!(is_private_ip(ip(spelling)), "{spelling}");
    }
}

#[test]
fn ipv6_embedding_a_public_ipv4_is_public() {
    for spelling in [
        "[2606:4700::1111]",
        "[2001:4860:4860::8888]",
        "[::ffff:8.8.8.8]",
        "64:ff9b::808:808",
        "2002:808:808::",
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
    ] {
        assert!(!is_private_ip(ip(spelling)), "{spelling}");
    }
}

#[test]
fn metadata_addresses() {
    for spelling in [
        "169.254.169.254",
        "0xa9fea9fe",
        "2852039166",
        "169.254.170.2",
        "100.100.100.200",
        "[fd00:ec2::254]",
        "[::ffff:169.254.169.254]",
        "2002:a9fe:a9fe::",
    ] {
        assert!(is_metadata_ip(ip(spelling)), "{spelling}");
    }
    for spelling in ["127.0.0.1", "169.254.169.253", "10.0.0.1", "[fd00:ec2::1]"] {
        assert!(!is_metadata_ip(ip(spelling)), "{spelling}");
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Every dotted-decimal address round-trips, and any string parses without panicking.
        #[test]
        fn dotted_decimal_round_trips(a: u8, b: u8, c: u8, d: u8) {
            let want = IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            prop_assert_eq!(parse_lenient_ip(&format!("{a}.{b}.{c}.{d}")), Some(want));
            let n = u32::from(Ipv4Addr::new(a, b, c, d));
            prop_assert_eq!(parse_lenient_ip(&n.to_string()), Some(want));
            prop_assert_eq!(parse_lenient_ip(&format!("{n:#x}")), Some(want));
            prop_assert_eq!(parse_lenient_ip(&format!("0{n:o}")), Some(want));
        }

        /// An IPv4-mapped address is private exactly when its IPv4 is.
        #[test]
        fn mapped_follows_ipv4(bits: u32) {
            let v4 = Ipv4Addr::from(bits);
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            prop_assert_eq!(is_private_ip(mapped), is_private_ip(IpAddr::V4(v4)));
        }

        #[test]
        fn arbitrary_strings_never_panic(raw in any::<String>()) {
            let _ = parse_lenient_ip(&raw);
        }
    }
}
