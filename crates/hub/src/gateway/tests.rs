use super::*;

fn spec(s: &str) -> Spec {
    s.parse().unwrap()
}

#[test]
fn specs_parse_and_print_back() {
    for s in [
        "upnp",
        "upnp:http://10.0.0.1:5000/rootDesc.xml",
        "fritzbox://admin@fritz.box",
        "unifi://192.168.1.1",
        "fritzbox://admin@fritz.box:49443?tls",
        "fritzbox://admin@[fd00::1]:49000",
        "unifi://ro@unifi.lan:8443?site=lab&insecure-tls",
        "unifi://192.168.1.1?fingerprint=sha256:abababababababababababababababababababababababababababababababab",
        "probe:example.org:443",
        "probe:::1:53",
    ] {
        assert_eq!(spec(s).to_string(), s);
    }
    assert_eq!(
        spec("probe:[::1]:53"),
        Spec::Probe {
            host: "::1".into(),
            port: 53
        }
    );
    for bad in [
        "",
        "upnpx",
        "upnp:https://10.0.0.1/x",
        "upnp:ftp://x",
        "fritzbox://fritz.box",
        "fritzbox://admin:secret@fritz.box",
        "unifi://admin:pw@host",
        "unifi://host?tls",
        "unifi://host?site=a/b",
        "unifi://host?insecure-tls&fingerprint=sha256:abababababababababababababababababababababababababababababababab",
        "unifi://host?fingerprint=abc",
        "fritzbox://admin@fritz.box:0",
        "fritzbox://admin@fritz.box?site=x",
        "fritzbox://@fritz.box",
        "fritzbox://admin@[fd00::1",
        "probe:host",
        "probe:host:0",
        "probe:host:99999",
        "probe::80",
        "probe:a b:80",
        "tr064://x",
    ] {
        let e = bad.parse::<Spec>().unwrap_err();
        assert!(e.contains("gateway"), "{bad}: {e}");
    }
    // The password is refused without being echoed in a different form.
    let e = "fritzbox://admin:secret@fritz.box"
        .parse::<Spec>()
        .unwrap_err();
    assert!(e.contains("--gateway-password-file"), "{e}");
    assert!(!e.contains("secret"), "{e}");
    // A fingerprint is kept in one normal form.
    assert_eq!(
        spec("unifi://h?fingerprint=SHA256:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB").to_string(),
        format!("unifi://h?fingerprint=sha256:{}", "ab".repeat(32))
    );
}

proptest::proptest! {
    #[test]
    fn specs_never_panic_and_print_back(s in "(fritzbox|unifi)://[a-z@:\\[\\]0-9.?&=-]{0,40}") {
        if let Ok(parsed) = s.parse::<Spec>() {
            let again: Spec = parsed.to_string().parse().unwrap();
            proptest::prop_assert_eq!(again, parsed);
        }
    }
}

#[test]
fn secrets_are_not_printed() {
    let c = GatewayConfig {
        password: Some(Secret("hunter2".into())),
        ..GatewayConfig::default()
    };
    assert!(!format!("{c:?}").contains("hunter2"));
}

fn reading(ip: &str, upstream: Upstream) -> Reading {
    Reading {
        public_ip: Some(ip.into()),
        upstream,
        uptime_secs: Some(5),
        ..Reading::default()
    }
}

fn kinds(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

#[test]
fn a_status_follows_polls_and_says_what_changed() {
    let s0 = GatewayStatus::new(&spec("upnp"));
    let mut known = None;
    let (s1, ev) = apply(
        &s0,
        &mut known,
        Ok(reading("81.2.69.10", Upstream::Up)),
        1000,
    );
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(s1.public_ip.as_deref(), Some("81.2.69.10"));
    assert_eq!(s1.upstream, Upstream::Up);
    assert_eq!(s1.last_updated_ms, Some(1000));
    assert_eq!(s1.error, None);

    let (s2, ev) = apply(
        &s1,
        &mut known,
        Ok(reading("81.2.69.11", Upstream::Up)),
        2000,
    );
    assert_eq!(kinds(&ev), ["gateway.public_ip_changed"]);
    assert_eq!(ev[0].node_id, NODE_ID);
    assert_eq!(ev[0].target, "upnp");
    assert_eq!(
        ev[0].detail,
        json!({"old": "81.2.69.10", "new": "81.2.69.11"})
    );

    // A failed poll: nothing stale is shown as current.
    let (s3, ev) = apply(&s2, &mut known, Err("unreachable: refused".into()), 3000);
    assert_eq!(kinds(&ev), ["gateway.unreachable"]);
    assert_eq!(s3.public_ip, None);
    assert_eq!(s3.last_public_ip.as_deref(), Some("81.2.69.11"));
    assert_eq!(s3.upstream, Upstream::Unknown);
    assert_eq!(s3.uptime_secs, None);
    assert_eq!(s3.last_updated_ms, Some(2000));
    assert_eq!(s3.last_attempt_ms, Some(3000));
    assert_eq!(s3.error.as_deref(), Some("unreachable: refused"));
    let (s4, ev) = apply(&s3, &mut known, Err("still".into()), 4000);
    assert!(ev.is_empty());

    // Back, with a new address and the upstream down; then up again.
    let (s5, ev) = apply(
        &s4,
        &mut known,
        Ok(reading("81.2.69.12", Upstream::Down)),
        5000,
    );
    assert_eq!(
        kinds(&ev),
        [
            "gateway.reachable",
            "gateway.public_ip_changed",
            "gateway.upstream_down"
        ]
    );
    let (s6, ev) = apply(
        &s5,
        &mut known,
        Ok(reading("81.2.69.12", Upstream::Up)),
        6000,
    );
    assert_eq!(kinds(&ev), ["gateway.upstream_up"]);
    // Up → unreachable → up is no upstream event.
    let (s7, _) = apply(&s6, &mut known, Err("x".into()), 7000);
    let (_, ev) = apply(
        &s7,
        &mut known,
        Ok(reading("81.2.69.12", Upstream::Up)),
        8000,
    );
    assert_eq!(kinds(&ev), ["gateway.reachable"]);
}

#[test]
fn a_first_poll_that_fails_or_finds_the_upstream_down_says_so() {
    let s0 = GatewayStatus::new(&spec("probe:example.org:443"));
    let (_, ev) = apply(&s0, &mut None, Err("x".into()), 1);
    assert_eq!(kinds(&ev), ["gateway.unreachable"]);
    let down = Reading {
        upstream: Upstream::Down,
        reason: Some("cannot connect".into()),
        ..Reading::default()
    };
    let (s1, ev) = apply(&s0, &mut None, Ok(down), 1);
    assert_eq!(kinds(&ev), ["gateway.upstream_down"]);
    assert_eq!(s1.error.as_deref(), Some("cannot connect"));
}

#[test]
fn gauges_follow_the_status() {
    let gauges = Gauges::default();
    let mut registry = prometheus_client::registry::Registry::with_prefix("twinbay");
    for (name, help, family) in gauges.families() {
        registry.register(name, help, family);
    }
    let s0 = GatewayStatus::new(&spec("upnp"));
    let mut r = reading("81.2.69.10", Upstream::Up);
    r.link = Some(Link {
        max_up_bps: Some(1000),
        max_down_bps: Some(2000),
        up_bps: None,
        down_bps: None,
    });
    let (s1, _) = apply(&s0, &mut None, Ok(r), 1);
    gauges.record(&s1);
    let text = || {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    };
    let t = text();
    assert!(t.contains("# HELP twinbay_gateway_up "), "{t}");
    assert!(
        t.contains("twinbay_gateway_up{provider=\"upnp\",gateway=\"upnp\"} 1"),
        "{t}"
    );
    assert!(
        t.contains("twinbay_gateway_link_max_down_bps{provider=\"upnp\",gateway=\"upnp\"} 2000")
    );
    let (s2, _) = apply(&s1, &mut None, Err("x".into()), 2);
    gauges.record(&s2);
    let t = text();
    assert!(
        t.contains("twinbay_gateway_up{provider=\"upnp\",gateway=\"upnp\"} 0"),
        "{t}"
    );
    assert!(t.contains("twinbay_gateway_reachable{provider=\"upnp\",gateway=\"upnp\"} 0"));
    assert!(!t.contains("twinbay_gateway_link_max_down_bps{"), "{t}");
}

#[tokio::test]
async fn probe_sees_a_listener_and_its_absence() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = probe::poll("127.0.0.1", port, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(up.upstream, Upstream::Up);
    drop(listener);
    let down = probe::poll("127.0.0.1", port, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(down.upstream, Upstream::Down);
    assert!(down.reason.unwrap().contains("cannot connect"));
    // (Name resolution failing is not tested: it would ask a DNS server.)
}

/// A local HTTP double serving recorded miniupnpd answers on loopback.
async fn igd_double(fault_on: Option<&'static str>) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut n = 0;
                // Read the head and the body (by Content-Length).
                loop {
                    let m = s.read(&mut buf[n..]).await.unwrap_or(0);
                    if m == 0 {
                        break;
                    }
                    n += m;
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if n >= end + 4 + len {
                            break;
                        }
                    }
                }
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let action = req
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .starts_with("soapaction:")
                            .then(|| l.to_string())
                    })
                    .and_then(|l| {
                        l.split('#')
                            .nth(1)
                            .map(|a| a.trim_matches(['"', ' ']).to_string())
                    });
                let (status, body) = match action.as_deref() {
                    None => (
                        200,
                        include_str!("testdata/miniupnpd-rootDesc.xml").to_string(),
                    ),
                    Some(a) if Some(a) == fault_on => (
                        500,
                        include_str!("testdata/miniupnpd-fault.xml").to_string(),
                    ),
                    Some("GetExternalIPAddress") => (
                        200,
                        include_str!("testdata/miniupnpd-GetExternalIPAddress.xml").to_string(),
                    ),
                    Some("GetStatusInfo") => (
                        200,
                        include_str!("testdata/miniupnpd-GetStatusInfo.xml").to_string(),
                    ),
                    Some("GetCommonLinkProperties") => (
                        200,
                        include_str!("testdata/miniupnpd-GetCommonLinkProperties.xml").to_string(),
                    ),
                    Some("GetTotalBytesSent") => (
                        200,
                        include_str!("testdata/miniupnpd-GetTotalBytesSent.xml").to_string(),
                    ),
                    Some("GetTotalBytesReceived") => (
                        200,
                        include_str!("testdata/miniupnpd-GetTotalBytesReceived.xml").to_string(),
                    ),
                    Some(_) => (
                        500,
                        include_str!("testdata/miniupnpd-fault.xml").to_string(),
                    ),
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}/rootDesc.xml"), task)
}

#[tokio::test]
async fn upnp_polls_a_recorded_igd() {
    let (url, task) = igd_double(None).await;
    let mut upnp = upnp::Upnp::new(upnp::Source::Description(url.parse().unwrap()));
    let r = upnp.poll().await.unwrap();
    assert_eq!(r.public_ip.as_deref(), Some("81.2.69.10"));
    assert_eq!(r.upstream, Upstream::Up);
    assert_eq!(r.uptime_secs, Some(10));
    assert_eq!(r.device.as_deref(), Some("Debian router"));
    let link = r.link.unwrap();
    assert_eq!(link.max_up_bps, Some(1410065408));
    assert_eq!(link.up_bps, None);
    // The second poll has a rate (the double's counters stand still: 0).
    let r = upnp.poll().await.unwrap();
    assert_eq!(r.link.unwrap().up_bps, Some(0));
    task.abort();
}

#[tokio::test]
async fn upnp_reports_faults_and_a_dead_device() {
    let (url, task) = igd_double(Some("GetStatusInfo")).await;
    let mut upnp = upnp::Upnp::new(upnp::Source::Description(url.parse().unwrap()));
    let e = upnp.poll().await.unwrap_err().to_string();
    assert!(e.contains("GetStatusInfo: SOAP fault"), "{e}");
    assert!(e.contains("401"), "{e}");
    task.abort();
    let _ = task.await;
    let e = upnp.poll().await.unwrap_err().to_string();
    assert!(e.starts_with("unreachable:"), "{e}");
}
