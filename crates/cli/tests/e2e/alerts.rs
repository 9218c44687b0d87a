//! Alerts end to end: a real agent stops, a host-down rule fires once to a
//! webhook (signed), the hub restarts while it fires (no duplicate), the
//! agent returns and one resolved message says so.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::Sha256;

use crate::harness::*;

/// Requests received: the signature header and the JSON body.
type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A webhook receiver on loopback: keeps each request's signature header
/// and JSON body; answers 500 to the first `fail_first` requests.
struct Receiver {
    url: String,
    got: Received,
}

impl Receiver {
    fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            let mut failed = 0;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut length, mut signature) = (0usize, None);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("x-twinbay-signature:") {
                        signature = Some(line.split_once(':').unwrap().1.trim().to_string());
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let status = if failed < fail_first {
                    failed += 1;
                    "500 Internal Server Error"
                } else {
                    let value: Value = serde_json::from_slice(&body).unwrap();
                    sink.lock().unwrap().push((signature, value));
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                // The signature is over the exact bytes.
                if let Some((Some(sig), _)) = sink.lock().unwrap().last() {
                    use hmac::{Hmac, KeyInit, Mac};
                    let mut mac =
                        <Hmac<Sha256> as KeyInit>::new_from_slice(b"hook-secret").unwrap();
                    mac.update(&body);
                    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
                    assert!(
                        status != "200 OK" || *sig == want,
                        "signature {sig} != {want}"
                    );
                }
            }
        });
        Receiver { url, got }
    }

    fn messages(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }
}

const FAST: &[&str] = &["--alert-group-wait", "1s", "--alert-group-interval", "2s"];

#[test]
fn host_down_fires_once_survives_a_restart_and_resolves() {
    let dir = temp_dir("alerts");
    let port = free_port();
    let hub = Hub::start_with(&dir.join("hub"), port, FAST);
    let admin = hub.token("admin");
    let viewer = hub.token("viewer");
    // The first delivery is refused with a 500: it is retried.
    let receiver = Receiver::start(1);
    let (status, c) = hub.post(
        "/api/v1/alerts/channels",
        &admin,
        &json!({"name": "ops", "kind": "webhook", "url": receiver.url, "secret": "hook-secret"}),
    );
    assert_eq!(status, 201, "{c}");
    let channel = c["id"].as_i64().unwrap();
    // Bad rules are refused with the reason.
    for (body, why) in [
        (
            json!({"name": "x", "kind": "host_down", "for": "soon", "channels": [channel]}),
            "for",
        ),
        (
            json!({"name": "x", "kind": "cpu", "above": 50, "clear": 60}),
            "clear",
        ),
        (
            json!({"name": "x", "kind": "host_down", "channels": [999]}),
            "channel 999",
        ),
        (
            json!({"name": "x", "kind": "nope"}),
            "unknown variant `nope`",
        ),
    ] {
        let (status, e) = hub.post("/api/v1/alerts/rules", &admin, &body);
        let expected = if why.starts_with("channel") { 404 } else { 400 };
        assert_eq!(status, expected, "{body}: {e}");
        assert!(e.to_string().contains(why), "{e}");
    }
    let (status, _) = hub.post(
        "/api/v1/alerts/rules",
        &viewer,
        &json!({"name": "x", "kind": "host_down"}),
    );
    assert_eq!(status, 403);
    let (status, r) = hub.post(
        "/api/v1/alerts/rules",
        &admin,
        &json!({"name": "host down", "kind": "host_down", "for": "2s", "channels": [channel]}),
    );
    assert_eq!(status, 201, "{r}");

    let state = dir.join("agent");
    let agent = agent_logged(&hub.join(), &state, &[]);
    hub.wait_connected(&admin, 1, Duration::from_secs(20));
    let node = hub.nodes(&admin)[0]["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        receiver.messages().is_empty(),
        "nothing while the host is up"
    );

    // Down: pending, then firing after 2 s, then one notification.
    agent.signal("-KILL");
    drop(agent);
    let firing = wait_for("the firing notification", Duration::from_secs(30), || {
        receiver
            .messages()
            .into_iter()
            .find(|m| m["status"] == "firing")
    });
    assert_eq!(firing["commonLabels"]["alertname"], "host down");
    assert_eq!(firing["commonLabels"]["node_id"], node.as_str());
    assert!(
        firing["alerts"][0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("is not connected")
    );
    let (_, alerts) = hub.get("/api/v1/alerts", &viewer);
    assert_eq!(alerts[0]["state"], "firing", "{alerts}");
    let (_, channels) = hub.get("/api/v1/alerts/channels", &admin);
    assert_eq!(channels[0]["signed"], true);
    assert!(!channels.to_string().contains("hook-secret"), "{channels}");

    // The hub restarts while the alert fires: no second firing message.
    let Hub { proc, .. } = hub;
    proc.signal("-TERM");
    proc.wait_exit(Duration::from_secs(15));
    let hub = Hub::start_with(&dir.join("hub"), port, FAST);
    std::thread::sleep(Duration::from_secs(4));
    let count = |status: &str| {
        receiver
            .messages()
            .iter()
            .filter(|m| m["status"] == status)
            .count()
    };
    assert_eq!(count("firing"), 1, "{:?}", receiver.messages());

    // Back: one resolved message with the duration.
    let _agent = agent_logged(&hub.join(), &state, &[]);
    let resolved = wait_for("the resolved notification", Duration::from_secs(30), || {
        receiver
            .messages()
            .into_iter()
            .find(|m| m["status"] == "resolved")
    });
    assert!(
        resolved["alerts"][0]["annotations"]["description"]
            .as_str()
            .unwrap()
            .starts_with("resolved after"),
        "{resolved}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        (count("firing"), count("resolved")),
        (1, 1),
        "{:?}",
        receiver.messages()
    );
    let (_, all) = hub.get("/api/v1/alerts?show=all", &viewer);
    assert_eq!(all[0]["state"], "resolved", "{all}");
    let (_, active) = hub.get("/api/v1/alerts", &viewer);
    assert_eq!(active, json!([]));
    // The channel's test button, and the audit trail.
    let (status, _) = hub.post(
        &format!("/api/v1/alerts/channels/{channel}/test"),
        &admin,
        &json!({}),
    );
    assert_eq!(status, 204);
    let (_, audit) = hub.get("/api/v1/audit?action=alert_rule.create", &admin);
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
}
