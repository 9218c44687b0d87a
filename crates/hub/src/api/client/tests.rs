use axum::http::HeaderValue;
use proptest::prelude::*;

use super::*;

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|n| n.parse().unwrap()).collect()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(*name, HeaderValue::from_str(value).unwrap());
    }
    h
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn an_untrusted_peer_is_the_client_whatever_it_claims() {
    let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
    let c = client_addr(ip("127.0.0.1"), &h, &[]);
    assert_eq!(
        c,
        Client {
            addr: ip("127.0.0.1"),
            proxied: false
        }
    );
    let c = client_addr(ip("192.0.2.5"), &h, &nets(&["127.0.0.1/32"]));
    assert_eq!(c.addr, ip("192.0.2.5"));
    assert!(!c.proxied);
}

#[test]
fn a_trusted_proxy_names_the_client_read_from_the_right() {
    let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
    // The client forged the left entry; the proxies appended the rest.
    let h = headers(&[("x-forwarded-for", "198.51.100.66, 203.0.113.9, 10.1.2.3")]);
    let c = client_addr(ip("127.0.0.1"), &h, &trusted);
    assert_eq!(
        c,
        Client {
            addr: ip("203.0.113.9"),
            proxied: true
        }
    );
    // Several header lines are one list.
    let h = headers(&[
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-for", "10.1.2.3"),
    ]);
    assert_eq!(
        client_addr(ip("127.0.0.1"), &h, &trusted).addr,
        ip("203.0.113.9")
    );
}

#[test]
fn forwarded_wins_over_x_forwarded_for_and_takes_ports_and_brackets() {
    let trusted = nets(&["::1/128", "127.0.0.0/8"]);
    let h = headers(&[
        (
            "forwarded",
            r#"for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711""#,
        ),
        ("x-forwarded-for", "198.51.100.1"),
    ]);
    assert_eq!(
        client_addr(ip("::1"), &h, &trusted).addr,
        ip("2001:db8:cafe::17")
    );
    let h = headers(&[("forwarded", "for=192.0.2.43:47011")]);
    assert_eq!(
        client_addr(ip("127.0.0.1"), &h, &trusted).addr,
        ip("192.0.2.43")
    );
}

#[test]
fn garbage_stops_at_the_last_true_address() {
    let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
    for value in ["unknown", "not an ip, 10.0.0.2", "_hidden"] {
        let h = headers(&[("x-forwarded-for", value)]);
        let c = client_addr(ip("127.0.0.1"), &h, &trusted);
        assert!(
            c.addr == ip("127.0.0.1") || c.addr == ip("10.0.0.2"),
            "{value}: {c:?}"
        );
        assert!(c.proxied);
    }
    // No header at all: the proxy itself asked.
    let c = client_addr(ip("127.0.0.1"), &HeaderMap::new(), &trusted);
    assert_eq!(
        c,
        Client {
            addr: ip("127.0.0.1"),
            proxied: false
        }
    );
}

#[test]
fn mapped_ipv4_counts_as_ipv4() {
    let trusted = nets(&["127.0.0.1/32"]);
    let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.9")]);
    let c = client_addr(ip("::ffff:127.0.0.1"), &h, &trusted);
    assert_eq!(c.addr, ip("203.0.113.9"));
}

#[test]
fn allowed_hosts_are_the_hubs_names_addresses_and_localhost() {
    let hosts = AllowedHosts::new(["hub.example.org".into(), "*.lab.example".into()]);
    for ok in [
        "hub.example.org",
        "HUB.example.org:7780",
        "hub.example.org.",
        "grafana.lab.example",
        "127.0.0.1:7780",
        "[::1]:7780",
        "192.168.1.20",
        "localhost:7780",
        "app.localhost",
    ] {
        assert!(hosts.allows(ok), "{ok} should be allowed");
    }
    for bad in [
        "evil.example",
        "hub.example.org.evil.example",
        "lab.example",
        "xlab.example",
        "",
        "hub.example.org:notaport",
        "hub.example.org:7780:1",
        "[::1",
        "a b",
    ] {
        assert!(!hosts.allows(bad), "{bad} should be refused");
    }
}

#[test]
fn url_hosts() {
    assert_eq!(
        url_host("https://hub.example.org:7780/x").as_deref(),
        Some("hub.example.org")
    );
    assert_eq!(url_host("https://[::1]:7780").as_deref(), Some("::1"));
    assert_eq!(url_host("wss://u@10.0.0.1/").as_deref(), Some("10.0.0.1"));
}

proptest! {
    /// Whatever the headers say, the client is the peer or an address the
    /// headers name, and never a trusted proxy unless every hop is one.
    #[test]
    fn the_client_is_never_made_up(xff in "[ -~]{0,80}", fwd in "[ -~]{0,80}", peer_trusted: bool) {
        let trusted = nets(&["127.0.0.1/32"]);
        let peer = if peer_trusted { ip("127.0.0.1") } else { ip("192.0.2.1") };
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&xff) { h.insert("x-forwarded-for", v); }
        if let (false, Ok(v)) = (fwd.is_empty(), HeaderValue::from_str(&fwd)) { h.insert("forwarded", v); }
        let c = client_addr(peer, &h, &trusted);
        if !peer_trusted {
            prop_assert_eq!(c.addr, peer);
        } else if c.addr != peer {
            let named = forwarded_chain(&h).iter().flatten().any(|hop| canonical(*hop) == c.addr);
            prop_assert!(named, "{:?} from {:?} / {:?}", c, xff, fwd);
        }
    }

    #[test]
    fn allows_never_panics(host in "\\PC{0,40}") {
        let _ = AllowedHosts::new(["a.example".into()]).allows(&host);
    }
}
