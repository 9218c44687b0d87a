//! Slow and numerous clients: the header deadline and the connection caps,
//! against the real hub on loopback. Other loopback addresses (127.0.0.x)
//! stand in for other clients.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::*;

/// A plain TCP connection to `hub` from the loopback address `source`.
async fn connect_from(source: [u8; 4], hub: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(hub).await.unwrap()
}

/// Whether the hub closes a new connection from `source` at once, without
/// an answer (the reset may already fail the connect).
async fn refused_from(source: [u8; 4], hub: SocketAddr) -> bool {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let start = Instant::now();
    let Ok(mut tcp) = socket.connect(hub).await else {
        return true;
    };
    let _ = tcp
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await;
    let reply = closed_within(&mut tcp, Duration::from_secs(5)).await;
    reply == Some(Vec::new()) && start.elapsed() < Duration::from_secs(1)
}

/// Reads until the hub closes `tcp` (end of stream or reset); what it sent
/// before that, or `None` if it is still open after `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A `GET /healthz` from `source`: the status line, or `None` if the hub
/// closed the connection unanswered.
async fn healthz_from(source: [u8; 4], hub: SocketAddr) -> Option<String> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let mut tcp = socket.connect(hub).await.ok()?;
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let reply = closed_within(&mut tcp, Duration::from_secs(5)).await?;
    let text = String::from_utf8_lossy(&reply).to_string();
    text.lines().next().map(String::from)
}

/// Asserts the hub closed the connection between 75 % and 200 % of `deadline`
/// after `start`.
fn assert_closed_at_deadline(what: &str, start: Instant, deadline: Duration) {
    let took = start.elapsed();
    assert!(
        took >= deadline.mul_f64(0.75) && took <= deadline * 2,
        "{what}: closed after {took:?}, deadline {deadline:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_connections_are_closed_at_the_header_deadline() {
    let dir = temp_dir("header-deadline");
    let hub = Hub::start_with(&dir, free_port(), &["--header-timeout", "2s"]);
    let deadline = Duration::from_secs(2);

    // One header line every 250 ms: each arrives well within any per-read
    // timeout, but the head is never complete.
    let start = Instant::now();
    let mut slow = TcpStream::connect(hub.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "a trickling connection was still open after 8 s"
        );
        if slow.write_all(b"X-Trickle: 1\r\n").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(250), slow.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => break,
            // Whatever the hub says (a 408), it then closes.
            Ok(Ok(_)) => continue,
        }
    }
    assert_closed_at_deadline("trickling headers", start, deadline);

    // Connected and silent.
    let start = Instant::now();
    let mut silent = TcpStream::connect(hub.addr).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(8))
            .await
            .is_some(),
        "a silent connection was still open after 8 s"
    );
    assert_closed_at_deadline("silent", start, deadline);

    // The start of a TLS record, then nothing: the TLS handshake is inside
    // the same deadline.
    let start = Instant::now();
    let mut tls = TcpStream::connect(hub.addr).await.unwrap();
    tls.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    assert!(
        closed_within(&mut tls, Duration::from_secs(8))
            .await
            .is_some(),
        "a stalled TLS handshake was still open after 8 s"
    );
    assert_closed_at_deadline("stalled TLS handshake", start, deadline);

    // Part of the HTTP/2 preface: the protocol is never decided, which no
    // HTTP/1 header timer sees; the deadline does.
    let start = Instant::now();
    let mut h2 = TcpStream::connect(hub.addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM").await.unwrap();
    assert!(
        closed_within(&mut h2, Duration::from_secs(8))
            .await
            .is_some(),
        "a connection stalled in the HTTP/2 preface was still open after 8 s"
    );
    assert_closed_at_deadline("stalled HTTP/2 preface", start, deadline);

    // A keep-alive connection gets an answer, then as long for its next
    // request before it is closed.
    let mut idle = TcpStream::connect(hub.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await
        .unwrap();
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let start = Instant::now();
    assert!(
        closed_within(&mut idle, Duration::from_secs(8))
            .await
            .is_some(),
        "an idle keep-alive connection was still open after 8 s"
    );
    assert_closed_at_deadline("idle keep-alive", start, deadline);

    // And the hub still serves.
    assert_eq!(http(hub.addr, "GET", "/healthz", &[], "").unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_over_its_cap_is_refused_while_others_are_served() {
    let dir = temp_dir("per-ip-cap");
    let hub = Hub::start_with(
        &dir,
        free_port(),
        &["--max-connections-per-ip", "4", "--header-timeout", "60s"],
    );
    let token = hub.token("viewer");
    let crowd = [127, 0, 0, 2];

    // Four half-sent requests from one address: held, as the cap allows.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut tcp = connect_from(crowd, hub.addr).await;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        held.push(tcp);
    }
    // A fifth from the same address is closed at once, unanswered.
    assert!(
        refused_from(crowd, hub.addr).await,
        "a fifth connection from one address is refused"
    );

    // Other addresses on the same machine are served meanwhile.
    let line = healthz_from([127, 0, 0, 3], hub.addr).await;
    assert!(line.as_deref().unwrap_or("").contains("200"), "{line:?}");
    assert_eq!(http(hub.addr, "GET", "/healthz", &[], "").unwrap().0, 200);
    let status = hub.status(&token);
    assert_eq!(status["connections_refused"], 1, "{status}");
    assert!(
        status["connections_unproven"].as_u64() >= Some(4),
        "{status}"
    );

    // The crowd's own clients are held to the limit, not locked out: once
    // one of them leaves, the next gets in.
    for tcp in held.iter_mut().take(1) {
        tcp.shutdown().await.unwrap();
    }
    drop(held.remove(0));
    let start = Instant::now();
    let line = loop {
        if let Some(line) = healthz_from(crowd, hub.addr).await {
            break line;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "still refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(line.contains("200"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_agents_and_streams_leave_the_cap_to_others() {
    let dir = temp_dir("proven");
    let hub = Hub::start_with(
        &dir,
        free_port(),
        &["--max-connections-per-ip", "2", "--header-timeout", "60s"],
    );
    let token = hub.token("viewer");

    // Four agents and two UI streams, all from 127.0.0.1, twice the cap
    // and more: each leaves the count once it has proved who it is.
    let mut agents = Vec::new();
    for _ in 0..4 {
        agents.push(RawAgent::enroll(&hub.join()).await);
    }
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut ws = stream(hub.addr, &token).await;
        assert_eq!(next_json(&mut ws).await["type"], "snapshot");
        streams.push(ws);
    }
    let status = hub.status(&token);
    assert_eq!(status["connected"], 4, "{status}");
    assert!(status["connections_open"].as_u64() >= Some(6), "{status}");
    assert_eq!(status["connections_refused"], 0, "{status}");

    // Two half-sent requests fill the cap for unproven connections…
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tcp = connect_from([127, 0, 0, 1], hub.addr).await;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        held.push(tcp);
    }
    assert!(
        refused_from([127, 0, 0, 1], hub.addr).await,
        "a third unproven connection is refused"
    );
    // …and the agents are still connected and heard.
    for (agent, _) in agents.iter_mut() {
        agent
            .send(&twinbay_proto::message::AgentMessage::Heartbeat { ts_ms: 0 })
            .await;
    }
    drop(held);
    wait_for("room under the cap", Duration::from_secs(5), || {
        http(hub.addr, "GET", "/healthz", &[], "")
            .ok()
            .filter(|r| r.0 == 200)
    });
    let status = hub.status(&token);
    assert_eq!(status["connected"], 4, "{status}");
    assert!(
        status["connections_refused"].as_u64() >= Some(1),
        "{status}"
    );
}
