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
pub(crate) struct Receiver {
    pub(crate) url: String,
    got: Received,
}

impl Receiver {
    pub(crate) fn start(fail_first: usize) -> Receiver {
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

    pub(crate) fn messages(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }
}

pub(crate) const FAST: &[&str] = &["--alert-group-wait", "1s", "--alert-group-interval", "2s"];

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
    // A second channel that always answers 500: retried, then given up,
    // shown on the channel and audited.
    let broken = Http::start("500 Internal Server Error");
    let (_, b) = hub.post(
        "/api/v1/alerts/channels",
        &admin,
        &json!({"name": "broken", "kind": "webhook", "url": format!("http://{}/hook", broken.base)}),
    );
    let broken_id = b["id"].as_i64().unwrap();
    let (status, r) = hub.post(
        "/api/v1/alerts/rules",
        &admin,
        &json!({"name": "host down", "kind": "host_down", "for": "2s", "channels": [channel, broken_id]}),
    );
    assert_eq!(status, 201, "{r}");
    let rule = r["id"].as_i64().unwrap();
    let mine = |alerts: Value| -> Vec<Value> {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["rule_id"] == rule)
            .cloned()
            .collect()
    };

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
    assert_eq!(mine(alerts.clone())[0]["state"], "firing", "{alerts}");
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
            .contains(" is back after "),
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
    assert_eq!(mine(all.clone())[0]["state"], "resolved", "{all}");
    let (_, active) = hub.get("/api/v1/alerts", &viewer);
    assert_eq!(mine(active), Vec::<Value>::new());
    // The channel's test button, and the audit trail.
    let (status, _) = hub.post(
        &format!("/api/v1/alerts/channels/{channel}/test"),
        &admin,
        &json!({}),
    );
    assert_eq!(status, 204);
    let (_, audit) = hub.get("/api/v1/audit?action=alert_rule.create", &admin);
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    // The broken channel: every delivery retried (5 attempts), then shown
    // and audited as given up.
    let given_up = wait_for("a delivery given up", Duration::from_secs(30), || {
        let (_, audit) = hub.get("/api/v1/audit?action=alert_channel.deliver", &admin);
        (!audit.as_array().unwrap().is_empty()).then_some(audit)
    });
    assert!(given_up.to_string().contains("500"), "{given_up}");
    assert!(broken.take().len() >= 5, "retried");
    let (_, list) = hub.get("/api/v1/alerts/channels", &admin);
    let shown = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == broken_id)
        .unwrap()
        .clone();
    assert!(
        shown["last_error"].as_str().unwrap().contains("500"),
        "{shown}"
    );
}

/// One request as a receiver saw it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{}: {e}", self.target))
    }
}

/// A plain HTTP receiver on loopback standing in for ntfy, Gotify,
/// Discord, Slack and Telegram: keeps every request; answers `status`.
struct Http {
    base: String,
    got: Arc<Mutex<Vec<Request>>>,
}

impl Http {
    fn start(status: &'static str) -> Http {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                reader.read_line(&mut first).unwrap_or(0);
                let mut parts = first.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let target = parts.next().unwrap_or_default().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let length = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                sink.lock().unwrap().push(Request {
                    method,
                    target,
                    headers,
                    body,
                });
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                );
            }
        });
        Http { base, got }
    }

    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

/// The real aiosmtpd (PyPI) with its Mailbox handler: messages land in a
/// maildir.
struct Smtp {
    port: u16,
    maildir: std::path::PathBuf,
    _proc: Proc,
}

impl Smtp {
    fn start(dir: &std::path::Path) -> Smtp {
        let port = free_port();
        let maildir = dir.join("mailbox");
        let child = std::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
        let proc = Proc {
            child,
            name: "aiosmtpd",
        };
        wait_for("aiosmtpd to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Smtp {
            port,
            maildir,
            _proc: proc,
        }
    }

    fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect()
    }
}

#[test]
fn every_channel_kind_delivers_a_test_shaped_as_its_service_documents() {
    let dir = temp_dir("alert-channels");
    let hub = Hub::start_with(&dir.join("hub"), free_port(), FAST);
    let admin = hub.token("admin");
    let operator = hub.token("operator");
    let rx = Http::start("200 OK");
    let smtp = Smtp::start(&dir);
    let b = &rx.base;
    let channels = [
        json!({"name": "phone", "url": format!("ntfy://:tk_ntfysecret@{b}/alerts?scheme=http&priority=5"), "quiet_hours": "22:00-07:00"}),
        json!({"name": "gotify", "url": format!("gotify://{b}/AppTokSecret?disabletls=yes")}),
        json!({"name": "discord", "kind": "discord", "url": format!("http://{b}/api/webhooks/123/discSecret")}),
        json!({"name": "slack", "kind": "slack", "url": format!("http://{b}/services/T1/B2/slackSecret")}),
        json!({"name": "telegram", "kind": "telegram", "url": format!("http://{b}/bot123:tgSecret/sendMessage?chat_id=42,@ops")}),
        json!({"name": "hook", "kind": "webhook", "url": format!("http://{b}/hook"), "secret": "hookSecret"}),
        json!({"name": "mail", "url": format!("smtp://127.0.0.1:{}/?from=hub@example.org&to=ops@example.org&encryption=none", smtp.port)}),
    ];
    let mut ids = Vec::new();
    for c in &channels {
        let (status, body) = hub.post("/api/v1/alerts/channels", &admin, c);
        assert_eq!(status, 201, "{c}: {body}");
        ids.push(body["id"].as_i64().unwrap());
    }
    // Bad URLs are refused with the reason; operators may not add channels.
    for (c, why) in [
        (json!({"name": "x", "url": "ntfy://ntfy.sh"}), "topic"),
        (
            json!({"name": "x", "url": "discord://tok@notanumber"}),
            "number",
        ),
        (
            json!({"name": "x", "url": "smtp://m.example/?to=a@b.c"}),
            "from",
        ),
        (
            json!({"name": "x", "kind": "gotify", "url": "ntfy://h/t"}),
            "gotify://",
        ),
        (json!({"name": "x", "url": "pager://x"}), "kind"),
        (
            json!({"name": "x", "url": "ntfy://h/t", "quiet_hours": "25:00-01:00"}),
            "quiet_hours",
        ),
    ] {
        let (status, e) = hub.post("/api/v1/alerts/channels", &admin, &c);
        assert_eq!(status, 400, "{c}: {e}");
        assert!(e.to_string().contains(why), "{c}: {e}");
    }
    let (status, _) = hub.post("/api/v1/alerts/channels", &operator, &channels[0]);
    assert_eq!(status, 403);

    for id in &ids {
        let (status, e) = hub.post(
            &format!("/api/v1/alerts/channels/{id}/test"),
            &admin,
            &json!({}),
        );
        assert_eq!(status, 204, "channel {id}: {e}");
    }
    let got = rx.take();
    let find = |prefix: &str| -> Vec<&Request> {
        got.iter()
            .filter(|r| r.target.starts_with(prefix))
            .collect()
    };
    // ntfy: POST /<topic>, the text as the body, Title/Priority/Tags, token.
    let n = find("/alerts")[0];
    assert_eq!(n.method, "POST");
    assert_eq!(n.target, "/alerts");
    assert_eq!(n.header("title"), Some("twinbay test"));
    assert_eq!(n.header("priority"), Some("5"));
    assert!(n.header("tags").unwrap().contains("rotating_light"));
    assert_eq!(n.header("authorization"), Some("Bearer tk_ntfysecret"));
    assert!(String::from_utf8_lossy(&n.body).contains("channel phone works"));
    // Gotify: POST /message?token=…, JSON title/message/priority.
    let g = find("/message")[0];
    assert_eq!(g.target, "/message?token=AppTokSecret");
    let j = g.json();
    assert_eq!(j["title"], "twinbay test");
    assert!(j["message"].as_str().unwrap().contains("works"));
    assert!(j["priority"].is_u64(), "{j}");
    // Discord: JSON content (≤ 2000) and username.
    let d = find("/api/webhooks/123/discSecret")[0].json();
    assert!(
        d["content"].as_str().unwrap().contains("twinbay test"),
        "{d}"
    );
    assert_eq!(d["username"], "twinbay");
    // Slack: JSON text.
    let s = find("/services/T1/B2/slackSecret")[0];
    assert_eq!(s.header("content-type"), Some("application/json"));
    assert!(s.json()["text"].as_str().unwrap().contains("twinbay test"));
    // Telegram: sendMessage once per chat with chat_id and text.
    let t: Vec<Value> = find("/bot123:tgSecret/sendMessage")
        .iter()
        .map(|r| r.json())
        .collect();
    let chats: Vec<&Value> = t.iter().map(|m| &m["chat_id"]).collect();
    assert_eq!(chats, vec!["42", "@ops"], "{t:?}");
    assert!(t[0]["text"].as_str().unwrap().contains("twinbay test"));
    // Webhook: Alertmanager's shape, signed.
    let h = find("/hook")[0];
    assert_eq!(h.json()["version"], "4");
    {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"hookSecret").unwrap();
        mac.update(&h.body);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(h.header("x-twinbay-signature"), Some(want.as_str()));
    }
    // Email: read back from aiosmtpd's mailbox.
    let mail = wait_for("the test email", Duration::from_secs(10), || {
        smtp.messages().into_iter().next()
    });
    assert!(mail.contains("Subject: twinbay test"), "{mail}");
    assert!(mail.contains("To: ops@example.org"), "{mail}");
    assert!(mail.contains("multipart/alternative"), "{mail}");
    assert!(
        mail.contains("text/plain") && mail.contains("text/html"),
        "{mail}"
    );

    // The API never shows a secret; each channel says when it last sent.
    let (_, list) = hub.get("/api/v1/alerts/channels", &admin);
    let text = list.to_string();
    for secret in [
        "tk_ntfysecret",
        "AppTokSecret",
        "discSecret",
        "slackSecret",
        "tgSecret",
        "hookSecret",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c["last_sent_ms"].is_i64()),
        "{list}"
    );
    assert_eq!(list[0]["quiet_hours"], "22:00-07:00", "{list}");

    // A receiver answering 500: the test says why, the channel shows it,
    // the audit trail has it.
    let broken = Http::start("500 Internal Server Error");
    let (_, c) = hub.post(
        "/api/v1/alerts/channels",
        &admin,
        &json!({"name": "broken", "kind": "slack", "url": format!("http://{}/services/A/B/C", broken.base)}),
    );
    let id = c["id"].as_i64().unwrap();
    let (status, e) = hub.post(
        &format!("/api/v1/alerts/channels/{id}/test"),
        &admin,
        &json!({}),
    );
    assert_eq!(status, 502, "{e}");
    assert!(e.to_string().contains("500"), "{e}");
    let (_, list) = hub.get("/api/v1/alerts/channels", &admin);
    let shown = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
        .clone();
    assert!(
        shown["last_error"].as_str().unwrap().contains("500"),
        "{shown}"
    );
    let (_, audit) = hub.get("/api/v1/audit?action=alert_channel.test", &admin);
    assert_eq!(audit.as_array().unwrap().len(), ids.len() + 1, "{audit}");
    assert!(!audit.to_string().contains("slackSecret"), "{audit}");
}

/// Silences (a maintenance window on one host) and acknowledgements: the
/// silenced alert is evaluated and listed, never sent; the acknowledged
/// one stops repeating and still sends its resolution; both audited; the
/// default rules are there and `/metrics` shows alert states.
#[test]
fn silences_and_acknowledgements_hold_back_notifications() {
    let dir = temp_dir("alert-silences");
    let extra = [FAST, &["--alert-repeat-interval", "3s"]].concat();
    let hub = Hub::start_with(&dir.join("hub"), free_port(), &extra);
    let admin = hub.token("admin");
    let operator = hub.token("operator");
    let viewer = hub.token("viewer");
    // A new hub has default rules, each can be turned off.
    let (_, rules) = hub.get("/api/v1/alerts/rules", &viewer);
    let kinds: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "host_down",
        "disk",
        "unit_failed",
        "container_down",
        "backup_failed",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {rules}");
    }
    for r in rules.as_array().unwrap() {
        let id = r["id"].as_i64().unwrap();
        let (status, e) = hub.send(
            "PATCH",
            &format!("/api/v1/alerts/rules/{id}"),
            &admin,
            &json!({"enabled": false}),
        );
        assert_eq!(status, 204, "{e}");
    }
    let (_, rules) = hub.get("/api/v1/alerts/rules", &viewer);
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["enabled"] == false)
    );

    let receiver = Receiver::start(0);
    let (_, c) = hub.post(
        "/api/v1/alerts/channels",
        &admin,
        &json!({"name": "ops", "url": receiver.url}),
    );
    let channel = c["id"].as_i64().unwrap();
    let rule = |name: &str| {
        let (status, r) = hub.post(
            "/api/v1/alerts/rules",
            &admin,
            &json!({"name": name, "kind": "host_down", "for": "1s", "channels": [channel]}),
        );
        assert_eq!(status, 201, "{r}");
        r["id"].as_i64().unwrap()
    };
    let silenced = rule("down (silenced)");
    let acked = rule("down (acked)");

    let state = dir.join("agent");
    let agent = agent_logged(&hub.join(), &state, &[]);
    hub.wait_connected(&admin, 1, Duration::from_secs(20));
    let node = hub.nodes(&admin)[0]["id"].as_str().unwrap().to_string();

    // Bad silences are refused; viewers may not silence.
    for (body, status, why) in [
        (json!({"duration": "1h", "comment": "x"}), 400, "matcher"),
        (
            json!({"node": node, "duration": "1h", "comment": " "}),
            400,
            "comment",
        ),
        (
            json!({"node": node, "duration": "soon", "comment": "x"}),
            400,
            "duration",
        ),
        (
            json!({"node": node, "duration": "100d", "comment": "x"}),
            400,
            "90 days",
        ),
        (
            json!({"node": "nope", "duration": "1h", "comment": "x"}),
            404,
            "no such host",
        ),
    ] {
        let (s, e) = hub.post("/api/v1/alerts/silences", &operator, &body);
        assert_eq!(s, status, "{body}: {e}");
        assert!(e.to_string().contains(why), "{body}: {e}");
    }
    let maintenance =
        json!({"rule_id": silenced, "node": node, "duration": "1h", "comment": "disk swap"});
    let (s, _) = hub.post("/api/v1/alerts/silences", &viewer, &maintenance);
    assert_eq!(s, 403);
    let (s, created) = hub.post("/api/v1/alerts/silences", &operator, &maintenance);
    assert_eq!(s, 201, "{created}");
    let silence = created["id"].as_i64().unwrap();

    agent.signal("-KILL");
    drop(agent);
    let by_rule = |rule: i64, status: &str| {
        let rule = rule.to_string();
        receiver
            .messages()
            .iter()
            .filter(|m| {
                m["commonLabels"]["rule_id"].as_str() == Some(rule.as_str())
                    && m["status"] == status
            })
            .count()
    };
    // The acked rule's alert fires and repeats (every 3 s) …
    wait_for("a repeated notification", Duration::from_secs(30), || {
        (by_rule(acked, "firing") >= 2).then_some(())
    });
    // … the silenced one is firing too, but never sent.
    let (_, alerts) = hub.get("/api/v1/alerts", &viewer);
    let find = |alerts: &Value, rule: i64| {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule_id"] == rule)
            .cloned()
            .unwrap_or_else(|| panic!("rule {rule} in {alerts}"))
    };
    assert_eq!(find(&alerts, silenced)["state"], "firing", "{alerts}");
    assert_eq!(find(&alerts, silenced)["silenced"], true, "{alerts}");
    assert_eq!(find(&alerts, acked)["silenced"], false, "{alerts}");
    assert_eq!(by_rule(silenced, "firing"), 0);
    let (_, metrics) = http(hub.addr, "GET", "/metrics", &[], "").unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("twinbay_alerts{")
            && l.contains("alertname=\"down (acked)\"")
            && l.contains("alertstate=\"firing\"")
            && l.ends_with(" 1")),
        "{metrics}"
    );

    // Acknowledged: no more repeats.
    let alert = find(&alerts, acked)["id"].as_i64().unwrap();
    let (s, _) = hub.post(
        &format!("/api/v1/alerts/{alert}/ack"),
        &viewer,
        &json!({"comment": "x"}),
    );
    assert_eq!(s, 403);
    let (s, a) = hub.post(
        &format!("/api/v1/alerts/{alert}/ack"),
        &operator,
        &json!({"comment": "on it"}),
    );
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["ack_comment"], "on it");
    assert!(a["acked_by"].as_str().unwrap().starts_with("token:"), "{a}");
    let after_ack = by_rule(acked, "firing");
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        by_rule(acked, "firing"),
        after_ack,
        "repeated after the ack"
    );

    // The host returns: the acked alert's resolution is sent, the
    // silenced one's is not.
    let _agent = agent_logged(&hub.join(), &state, &[]);
    wait_for("the resolution", Duration::from_secs(30), || {
        (by_rule(acked, "resolved") == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        by_rule(silenced, "firing") + by_rule(silenced, "resolved"),
        0
    );
    let (s, e) = hub.post(
        &format!("/api/v1/alerts/{alert}/ack"),
        &operator,
        &json!({"comment": "late"}),
    );
    assert_eq!(s, 409, "{e}");

    // Ending the silence; all of it in the audit trail.
    let (s, _) = hub.send(
        "DELETE",
        &format!("/api/v1/alerts/silences/{silence}"),
        &operator,
        &json!({}),
    );
    assert_eq!(s, 204);
    let (_, list) = hub.get("/api/v1/alerts/silences", &viewer);
    assert!(
        list[0]["ends_ms"].as_i64().unwrap() <= now_ms() as i64,
        "{list}"
    );
    assert_eq!(list[0]["comment"], "disk swap");
    // The same through `twinbay ctl alerts …`.
    let ctl = |token: &str, args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(["ctl", "--data-dir"])
            .arg(&hub.dir)
            .arg("alerts")
            .args(args)
            .env("TWINBAY_TOKEN", token)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, out) = ctl(&viewer, &["list", "--all"]);
    assert!(ok, "{out}");
    assert!(out.starts_with("ID"), "{out}");
    assert!(
        out.contains("resolved") && out.contains("down (acked)"),
        "{out}"
    );
    let (ok, out) = ctl(&viewer, &["silences"]);
    assert!(ok && out.contains("disk swap"), "{out}");
    assert!(out.contains(&format!("rule={silenced}")), "{out}");
    let (ok, out) = ctl(&admin, &["channels"]);
    assert!(
        ok && out.contains("ops") && out.contains("webhook"),
        "{out}"
    );
    let (ok, out) = ctl(&admin, &["rules", "--enable", &silenced.to_string()]);
    assert!(ok, "{out}");
    let (ok, out) = ctl(&viewer, &["rules", "--disable", &silenced.to_string()]);
    assert!(!ok, "{out}");
    let (ok, out) = ctl(
        &operator,
        &[
            "silence",
            "--node",
            &node,
            "--duration",
            "1h",
            "--comment",
            "kernel update",
        ],
    );
    assert!(ok && out.starts_with("silence "), "{out}");
    for action in [
        "alert_silence.create",
        "alert_silence.expire",
        "alert.ack",
        "alert_rule.update",
    ] {
        let (_, audit) = hub.get(&format!("/api/v1/audit?action={action}"), &admin);
        assert!(!audit.as_array().unwrap().is_empty(), "{action}: {audit}");
    }
}

/// A CPU rule with hysteresis (fires above 90, clears at or below 80) fed
/// by a host oscillating 85–95 around the threshold: one firing message,
/// not one per oscillation, and one resolution once it falls to 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_rule_with_hysteresis_fires_once_for_an_oscillating_host() {
    use twinbay_proto::message::AgentMessage;
    use twinbay_proto::model::{HostInfo, NodeState, Sample};

    let dir = temp_dir("alert-hysteresis");
    let hub = Hub::start_with(&dir.join("hub"), free_port(), FAST);
    let admin = hub.token("admin");
    let receiver = Receiver::start(0);
    let (_, c) = hub.post(
        "/api/v1/alerts/channels",
        &admin,
        &json!({"name": "ops", "url": receiver.url}),
    );
    let (status, r) = hub.post(
        "/api/v1/alerts/rules",
        &admin,
        &json!({"name": "cpu hot", "kind": "cpu", "above": 90, "clear": 80, "channels": [c["id"]]}),
    );
    assert_eq!(status, 201, "{r}");

    let (mut raw, _id) = RawAgent::enroll(&hub.join()).await;
    let state = NodeState {
        host: HostInfo {
            hostname: "oscillating".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    raw.send(&AgentMessage::SyncFull {
        seq: 1,
        state: Box::new(state),
    })
    .await;
    raw.recv().await;
    let mut series: Vec<f32> = vec![50.0, 50.0, 95.0];
    series.extend([85.0, 95.0, 86.0, 94.0, 85.0, 93.0, 84.0, 96.0].repeat(2));
    series.extend([50.0; 5]);
    for cpu in series {
        let sample = Sample {
            ts_ms: now_ms() as i64,
            cpu_pct: cpu,
            mem_total: 100,
            mem_used: 10,
            ..Default::default()
        };
        raw.send(&AgentMessage::Metrics {
            samples: vec![sample],
        })
        .await;
        raw.send(&AgentMessage::Heartbeat {
            ts_ms: now_ms() as i64,
        })
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let count = |status: &str| {
        receiver
            .messages()
            .iter()
            .filter(|m| m["status"] == status && m["commonLabels"]["alertname"] == "cpu hot")
            .count()
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (firing, resolved) = (count("firing"), count("resolved"));
    println!("hysteresis: {firing} firing, {resolved} resolved message(s) for 16 oscillations");
    assert_eq!((firing, resolved), (1, 1), "{:?}", receiver.messages());
}

/// A real Podman container in a crash loop (`--restart=always`, exits 3
/// each second): one alert, fired once and repeated while it loops (not one
/// per crash); a silence stops the repeats and is audited.
#[test]
fn a_podman_crash_loop_fires_once_and_a_silence_stops_it() {
    let image = IMAGE;
    let podman = |args: &[&str]| {
        let out = std::process::Command::new("podman")
            .args(args)
            .output()
            .expect("podman is installed (scripts/podman-setup.sh)");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let dir = temp_dir("alert-crashloop");
    let socket = dir.join("podman.sock");
    let _service = podman_service(&socket);
    let extra = [FAST, &["--alert-repeat-interval", "3s"]].concat();
    let hub = Hub::start_with(&dir.join("hub"), free_port(), &extra);
    let admin = hub.token("admin");
    let operator = hub.token("operator");
    let receiver = Receiver::start(0);
    let (_, c) = hub.post(
        "/api/v1/alerts/channels",
        &admin,
        &json!({"name": "ops", "url": receiver.url}),
    );
    let (status, r) = hub.post(
        "/api/v1/alerts/rules",
        &admin,
        &json!({"name": "crash loop", "kind": "container_down", "for": "3s", "channels": [c["id"]]}),
    );
    assert_eq!(status, 201, "{r}");
    let rule = r["id"].as_i64().unwrap();
    let sock = socket.to_str().unwrap().to_string();
    let _agent = agent_with(
        Some(&hub.join()),
        &dir.join("agent"),
        &["--container-socket", &sock],
    );
    let (node, _) = hub.wait_twin(
        &admin,
        "the node, with containers watched",
        Duration::from_secs(20),
        |twin| twin["sources"]["containers"]["available"] == true,
    );

    let name = format!("tb-crashloop-{}", std::process::id());
    let _ = std::process::Command::new("podman")
        .args(["rm", "-f", &name])
        .output();
    podman(&[
        "run",
        "-d",
        "--restart=always",
        "--name",
        &name,
        image,
        "sh",
        "-c",
        "sleep 1; exit 3",
    ]);
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::process::Command::new("podman")
                .args(["rm", "-f", "-t", "0", &self.0])
                .output();
        }
    }
    let _cleanup = Cleanup(name.clone());
    // Messages about this container (other tests' containers may share
    // this Podman).
    let mine = || -> Vec<Value> {
        receiver
            .messages()
            .into_iter()
            .filter(|m| {
                m["alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|a| a["labels"]["subject"] == name.as_str()))
            })
            .collect()
    };
    let first = wait_for("the crash-loop alert", Duration::from_secs(60), || {
        mine().into_iter().find(|m| m["status"] == "firing")
    });
    let alert = first["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["subject"] == name.as_str())
        .unwrap()
        .clone();
    println!("crash loop: {}", alert["annotations"]["summary"]);
    // Repeats (every 3 s here) while it loops; never a resolution between
    // crashes.
    wait_for("a repeat", Duration::from_secs(20), || {
        (mine().iter().filter(|m| m["status"] == "firing").count() >= 2).then_some(())
    });
    assert!(
        mine().iter().all(|m| m["status"] == "firing"),
        "resolved between crashes: {:?}",
        mine()
    );

    // A silence for this rule on this host: no more messages.
    let (s, created) = hub.post(
        "/api/v1/alerts/silences",
        &operator,
        &json!({"rule_id": rule, "node": node, "duration": "1h", "comment": "fixing the image"}),
    );
    assert_eq!(s, 201, "{created}");
    std::thread::sleep(Duration::from_secs(1));
    let before = mine().len();
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(mine().len(), before, "sent while silenced: {:?}", mine());
    let (_, alerts) = hub.get("/api/v1/alerts", &admin);
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["subject"] == name.as_str() && a["state"] == "firing"),
        "still evaluated and listed: {alerts}"
    );
    let (_, audit) = hub.get("/api/v1/audit?action=alert_silence.create", &admin);
    assert!(audit.to_string().contains("fixing the image"), "{audit}");
}

/// A fleet-wide event: 30 simulated hosts go down at once. Their host-down
/// alerts go out as a few notifications naming every host, not 30.
#[test]
fn a_fleet_going_down_at_once_is_a_few_notifications_not_one_per_host() {
    let dir = temp_dir("alert-fleet");
    let hub = Hub::start_with(&dir.join("hub"), free_port(), FAST);
    let admin = hub.token("admin");
    let receiver = Receiver::start(0);
    let (_, c) = hub.post(
        "/api/v1/alerts/channels",
        &admin,
        &json!({"name": "ops", "url": receiver.url}),
    );
    let (status, r) = hub.post(
        "/api/v1/alerts/rules",
        &admin,
        &json!({"name": "fleet down", "kind": "host_down", "for": "1s", "channels": [c["id"]]}),
    );
    assert_eq!(status, 201, "{r}");
    let hosts = 30;
    let fleet = sim(
        &hub.join(),
        hosts,
        &["--interval", "1s"],
        &dir.join("sim.log"),
    );
    hub.wait_connected(&admin, hosts as u64, Duration::from_secs(60));
    fleet.signal("-KILL");
    drop(fleet);
    let named = |status: &str| -> (usize, std::collections::BTreeSet<String>) {
        let msgs: Vec<Value> = receiver
            .messages()
            .into_iter()
            .filter(|m| m["status"] == status && m["commonLabels"]["alertname"] == "fleet down")
            .collect();
        let hosts = msgs
            .iter()
            .flat_map(|m| m["alerts"].as_array().unwrap().clone())
            .map(|a| a["labels"]["node_id"].as_str().unwrap().to_string())
            .collect();
        (msgs.len(), hosts)
    };
    wait_for("every host's alert", Duration::from_secs(60), || {
        (named("firing").1.len() == hosts).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let (messages, named_hosts) = named("firing");
    println!("fleet down: {hosts} hosts in {messages} notification(s)");
    assert_eq!(named_hosts.len(), hosts);
    assert!(messages <= 3, "{messages} notifications for {hosts} hosts");
}
