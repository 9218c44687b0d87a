//! A simulated fleet against a real hub: back-pressure and recovery.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;

/// A stream client that completes the WebSocket handshake with a tiny
/// receive window and then never reads again.
async fn stalled_stream(
    addr: SocketAddr,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    stream_over(socket.connect(addr).await.unwrap(), token).await
}

/// What a healthy client saw: container-start latencies (from the sim's
/// `started_at`) and the longest silence between two messages.
#[derive(Debug, Default)]
struct Seen {
    latencies: Vec<f64>,
    longest_gap: Duration,
    messages: usize,
}

async fn watch(addr: SocketAddr, token: String, for_: Duration) -> Seen {
    let mut ws = stream(addr, &token).await;
    let mut seen = Seen::default();
    let start = Instant::now();
    let mut last = Instant::now();
    while start.elapsed() < for_ {
        // A stalled client that held the others up would silence them for
        // its whole send timeout (10 s); 8 s leaves room for a loaded VM.
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(8), ws.next()).await
        else {
            panic!("healthy client's stream ended or fell silent for 8 s");
        };
        seen.longest_gap = seen.longest_gap.max(last.elapsed());
        last = Instant::now();
        seen.messages += 1;
        if let Message::Text(text) = msg {
            seen.latencies
                .extend(container_start_latencies(text.as_str()));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_ui_client_is_dropped_with_bounded_memory_and_others_keep_up() {
    let dir = temp_dir("stalled");
    let hub = Hub::start(&dir);
    let token = hub.token("viewer");
    let sim = sim(
        &hub.join(),
        100,
        &["--interval", "1s", "--churn", "30"],
        &dir.join("sim.log"),
    );
    hub.wait_connected(&token, 100, Duration::from_secs(30));
    let hub_pid = hub.proc.child.id();

    let stalled = stalled_stream(hub.addr, &token).await;
    let healthy: Vec<_> = (0..2)
        .map(|_| tokio::spawn(watch(hub.addr, token.clone(), Duration::from_secs(40))))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_mib(hub_pid);
    let mut peak = before;
    let start = Instant::now();
    let dropped_after = loop {
        peak = peak.max(rss_mib(hub_pid));
        let status = hub.status(&token);
        if status["ui_dropped"].as_u64() == Some(1) {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(35),
            "the stalled client was never dropped: {status}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(hub.status(&token)["ui_clients"], 2);
    assert!(
        peak - before < 48.0,
        "hub memory grew from {before:.1} to {peak:.1} MiB while a client stalled"
    );

    for task in healthy {
        let seen = task.await.unwrap();
        let mut lat = seen.latencies;
        lat.sort_by(f64::total_cmp);
        assert!(
            lat.len() > 50,
            "too few container starts seen: {}",
            lat.len()
        );
        let p99 = lat[(lat.len() - 1) * 99 / 100];
        // A stalled client that held the others up would cost them its
        // whole send timeout (10 s); the bound leaves room for a loaded
        // 2-core CI machine running the other e2e tests at once.
        assert!(
            p99 < 8000.0,
            "healthy client p99 {p99:.0} ms (stalled client dropped after {dropped_after:?})"
        );
        assert!(
            seen.longest_gap < Duration::from_secs(8),
            "a healthy client waited {:?} for a message",
            seen.longest_gap
        );
    }
    drop(stalled);
    drop(sim);
}

/// The herd after a hub crash: every agent back, none refused, none enrolled
/// twice. (300 agents against this debug build; `bench/hub-scale` does it
/// with 1,000 against a release build and reports the time.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_comes_back_after_the_hub_is_killed() {
    const AGENTS: u64 = 300;
    let dir = temp_dir("fleet-restart");
    let port = free_port();
    // The simulated hosts all dial from 127.0.0.1; real ones would each
    // have an address of their own (and be under its cap).
    let one_address = ["--max-connections-per-ip", "100000"];
    let hub = Hub::start_with(&dir, port, &one_address);
    let token = hub.token("viewer");
    // Enrolled at a pace a real fleet might be; the restart is the herd.
    let _sim = sim(
        &hub.join(),
        AGENTS as usize,
        &["--ramp", "100"],
        &dir.join("sim.log"),
    );
    hub.wait_connected(&token, AGENTS, Duration::from_secs(60));

    hub.proc.signal("-KILL");
    drop(hub);
    let hub = Hub::start_with(&dir, port, &one_address);
    let back = Instant::now();
    hub.wait_connected(&token, AGENTS, Duration::from_secs(30));
    let status = hub.status(&token);
    assert_eq!(status["nodes"], AGENTS, "no node enrolled twice: {status}");
    assert_eq!(status["agent_refusals"], 0, "{status}");
    eprintln!(
        "{AGENTS} agents back {:?} after the restart",
        back.elapsed()
    );
}
