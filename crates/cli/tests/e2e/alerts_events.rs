//! Alerts on what happens and on what is coming, end to end against a
//! hand-written agent (the real protocol): a failed command and a
//! high-risk config change each raise an alert the moment the hub records
//! them, a later success resolves the command's; a mount filling fast is
//! forecast to fill and fires; channel secrets are not in the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use twinbay_proto::command::{CommandResult, Policy, Status};
use twinbay_proto::diff::{Change, Item};
use twinbay_proto::join::JoinString;
use twinbay_proto::message::{AgentMessage, FileChunk, HubMessage};
use twinbay_proto::model::{
    DiskSample, FileContent, FileKind, FileState, NodeState, Sample, WatchedFile,
};

use crate::harness::*;

const FAST: &[&str] = &["--alert-group-wait", "1s", "--alert-group-interval", "2s"];

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn compose(path: &str, text: &str) -> WatchedFile {
    WatchedFile {
        path: path.into(),
        state: FileState::Present,
        sha256: Some(sha(text)),
        size: Some(text.len() as u64),
        kind: FileKind::Compose,
        content: FileContent::Shipped,
        origin: "watch".into(),
        ..Default::default()
    }
}

/// A webhook receiver on loopback keeping each JSON body.
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    fn start() -> Hook {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Hook { url, got }
    }

    /// Messages of rule `name` with `status` (`firing`, `resolved`).
    fn of(&self, name: &str, status: &str) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["status"] == status && m["commonLabels"]["alertname"] == name)
            .cloned()
            .collect()
    }
}

/// A hand-written agent with the default policy, run in a task: answers
/// commands with the statuses queued in `results`, ships file content the
/// hub asks for, sends what the test hands it and a heartbeat every 300 ms.
struct Agent {
    node: String,
    out: mpsc::Sender<AgentMessage>,
    files: Arc<Mutex<HashMap<String, (String, String)>>>,
}

impl Agent {
    /// `files`: content by hash, shipped when the hub asks for it.
    async fn start_with(
        hub: &Hub,
        state: NodeState,
        results: Vec<Status>,
        files: Arc<Mutex<HashMap<String, (String, String)>>>,
    ) -> Agent {
        let join = hub.join();
        let token = JoinString::parse(&join).unwrap().token;
        let (mut raw, nonce) = RawAgent::connect(&join, new_key()).await;
        let mut hello = raw.hello(&nonce, None, Some(&token));
        if let AgentMessage::Hello(h) = &mut hello {
            h.policy = Some(Policy::default());
        }
        raw.send(&hello).await;
        let node = match raw.recv().await {
            HubMessage::Welcome { node_id, .. } => node_id,
            other => panic!("expected welcome, got {other:?}"),
        };
        raw.send(&AgentMessage::SyncFull {
            seq: 1,
            state: Box::new(state),
        })
        .await;
        let (out, mut rx) = mpsc::channel::<AgentMessage>(16);
        let shipped = files.clone();
        tokio::spawn(async move {
            let mut results = results.into_iter();
            let mut beat = tokio::time::interval(Duration::from_millis(300));
            loop {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(m) => raw.send(&m).await,
                        None => return,
                    },
                    _ = beat.tick() => {
                        raw.send(&AgentMessage::Heartbeat { ts_ms: now_ms() as i64 }).await;
                    }
                    frame = tokio::time::timeout(Duration::from_millis(100), raw.try_recv()) => {
                        let Ok(frame) = frame else { continue };
                        match frame {
                            Ok(Some(HubMessage::Command(c))) => {
                                let status = results.next().unwrap_or(Status::Ok);
                                let result = CommandResult {
                                    id: c.id,
                                    status,
                                    exit_code: Some(if status == Status::Ok { 0 } else { 1 }),
                                    error: None,
                                    duration_ms: 5,
                                    truncated: false,
                                };
                                raw.send(&AgentMessage::CommandResult(result)).await;
                            }
                            Ok(Some(HubMessage::NeedFiles { files })) => {
                                for f in files {
                                    let text = shipped.lock().unwrap().get(&f.sha256).map(|(_, t)| t.clone());
                                    if let Some(text) = text {
                                        raw.send(&AgentMessage::FileChunk(FileChunk {
                                            path: f.path,
                                            sha256: f.sha256,
                                            offset: 0,
                                            total: text.len() as u64,
                                            data: text,
                                        })).await;
                                    }
                                }
                            }
                            Ok(_) => {}
                            Err(e) => panic!("agent: {e}"),
                        }
                    }
                }
            }
        });
        Agent { node, out, files }
    }

    async fn send(&self, msg: AgentMessage) {
        self.out.send(msg).await.unwrap();
    }

    /// The compose file at `path` now holds `text`: its content is ready to
    /// ship and the change goes to the hub as diff `seq`.
    async fn edit_compose(&self, seq: u64, path: &str, text: &str) {
        self.files
            .lock()
            .unwrap()
            .insert(sha(text), (path.into(), text.into()));
        self.send(AgentMessage::SyncDiff {
            seq,
            changes: vec![Change::upsert(Item::Files(compose(path, text)))],
        })
        .await;
    }
}

/// Waits (without blocking the runtime) until `f` answers.
async fn until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A failed command and a high-risk config change each raise an alert at
/// once (event rules take no `for`), named with the host in the webhook
/// message; the same command succeeding resolves it; a change below the
/// rule's risk raises nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_command_and_a_risky_file_change_raise_alerts_as_they_happen() {
    let dir = temp_dir("alert-events");
    let hub = Hub::start_with(&dir.join("hub"), free_port(), FAST);
    let admin = hub.token("admin");
    let hook = Hook::start();
    let (_, c) = hub.post(
        "/api/v1/alerts/channels",
        &admin,
        &json!({"name": "ops", "url": hook.url}),
    );
    for body in [
        json!({"name": "command failed", "kind": "command_failed", "channels": [c["id"]]}),
        json!({"name": "risky change", "kind": "file_changed", "risk": "high", "channels": [c["id"]]}),
    ] {
        let (status, r) = hub.post("/api/v1/alerts/rules", &admin, &body);
        assert_eq!(status, 201, "{body}: {r}");
    }
    for (body, why) in [
        (
            json!({"name": "x", "kind": "command_failed", "for": "1m"}),
            "takes no `for`",
        ),
        (json!({"name": "x", "kind": "disk", "risk": "high"}), "risk"),
        (
            json!({"name": "x", "kind": "disk_forecast", "window": "1s"}),
            "window",
        ),
    ] {
        let (status, e) = hub.post("/api/v1/alerts/rules", &admin, &body);
        assert_eq!(status, 400, "{body}: {e}");
        assert!(e.to_string().contains(why), "{body}: {e}");
    }

    let path = "/srv/app/compose.yaml";
    let v1 = "services:\n  web:\n    image: nginx:1.27\n";
    let mut state = NodeState::default();
    state.host.hostname = "eventful".into();
    state.files.insert(path.into(), compose(path, v1));
    let files: Arc<Mutex<HashMap<String, (String, String)>>> = Arc::default();
    files
        .lock()
        .unwrap()
        .insert(sha(v1), (path.into(), v1.into()));
    let agent = Agent::start_with(&hub, state, vec![Status::Failed, Status::Ok], files).await;
    let node = agent.node.clone();
    let history = format!("/api/v1/nodes/{node}/files/history?path={path}");
    until("v1 recorded", Duration::from_secs(10), || {
        let (_, h) = hub.get(&history, &admin);
        (h.as_array()?.len() == 1).then_some(())
    })
    .await;

    // A command fails: one firing message, at once.
    let restart = json!({"op": "lifecycle", "target": {"kind": "container", "name": "web"}, "verb": "restart"});
    let commands = format!("/api/v1/nodes/{node}/commands");
    let started = std::time::Instant::now();
    let (status, cmd) = hub.post(&commands, &admin, &restart);
    assert!(status < 300, "{status} {cmd}");
    let fired = until("command failed firing", Duration::from_secs(10), || {
        hook.of("command failed", "firing").pop()
    })
    .await;
    println!(
        "command failed → webhook in {} ms (group wait 1 s)",
        started.elapsed().as_millis()
    );
    let summary = fired["alerts"][0]["annotations"]["summary"].to_string();
    assert!(
        summary.contains("restart container web") && summary.contains("eventful"),
        "{fired}"
    );
    let (_, alerts) = hub.get("/api/v1/alerts", &admin);
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["state"] == "firing" && a["subject"] == "restart container web"),
        "{alerts}"
    );

    // A high-risk change (privileged) fires; the file's path is named.
    let v2 = "services:\n  web:\n    image: nginx:1.27\n    privileged: true\n";
    agent.edit_compose(2, path, v2).await;
    let risky = until("risky change firing", Duration::from_secs(10), || {
        hook.of("risky change", "firing").pop()
    })
    .await;
    let summary = risky["alerts"][0]["annotations"]["summary"].to_string();
    assert!(
        summary.contains(path) && summary.contains("high risk"),
        "{risky}"
    );
    assert_eq!(risky["alerts"][0]["labels"]["subject"], path, "{risky}");

    // The same command succeeds: its alert resolves, with a message.
    let (status, _) = hub.post(&commands, &admin, &restart);
    assert!(status < 300);
    until("command failed resolved", Duration::from_secs(10), || {
        hook.of("command failed", "resolved").pop()
    })
    .await;

    // A change below the rule's risk (a new image tag) raises nothing new.
    let v3 = "services:\n  web:\n    image: nginx:1.28\n    privileged: true\n";
    agent.edit_compose(3, path, v3).await;
    until("v3 rated", Duration::from_secs(10), || {
        let (_, h) = hub.get(&history, &admin);
        let h = h.as_array()?.clone();
        (h.len() == 3 && h[0]["risk"].is_string()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.of("risky change", "firing").len(), 1, "one alert");
    assert_eq!(hook.of("command failed", "firing").len(), 1);
}

/// A mount filling fast (1 % of the disk a second) is forecast to fill
/// within the hour and fires; a flat mount of the same host does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filling_fast_is_forecast_to_fill() {
    let dir = temp_dir("alert-forecast");
    let hub = Hub::start_with(&dir.join("hub"), free_port(), FAST);
    let admin = hub.token("admin");
    let hook = Hook::start();
    let (_, c) = hub.post(
        "/api/v1/alerts/channels",
        &admin,
        &json!({"name": "ops", "url": hook.url}),
    );
    let (status, r) = hub.post(
        "/api/v1/alerts/rules",
        &admin,
        &json!({"name": "disk fills", "kind": "disk_forecast", "within": "1h", "window": "20s", "channels": [c["id"]]}),
    );
    assert_eq!(status, 201, "{r}");
    let mut state = NodeState::default();
    state.host.hostname = "filling".into();
    let agent = Agent::start_with(&hub, state, Vec::new(), Arc::default()).await;
    let total: u64 = 100 << 30;
    let started = std::time::Instant::now();
    let mut used = 20.0f64;
    let fired = loop {
        let sample = disks_sample(now_ms() as i64, total, used);
        agent
            .send(AgentMessage::Metrics {
                samples: vec![sample],
            })
            .await;
        if let Some(m) = hook.of("disk fills", "firing").pop() {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no forecast alert: {:?}",
            hook.got.lock().unwrap()
        );
        used += 0.5;
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "disk forecast fired after {} ms of samples at {used:.1} % used",
        started.elapsed().as_millis()
    );
    assert_forecast_for_data(&fired);
}

/// A sample of a host with a `/data` mount `used` % full and a `/` mount half full.
fn disks_sample(ts_ms: i64, total: u64, used: f64) -> Sample {
    Sample {
        ts_ms,
        cpu_pct: 5.0,
        mem_total: 100,
        mem_used: 10,
        disks: vec![
            DiskSample {
                mount: "/data".into(),
                total,
                used: (total as f64 * used / 100.0) as u64,
                ..Default::default()
            },
            DiskSample {
                mount: "/".into(),
                total,
                used: total / 2,
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

/// A forecast starts from the mount's metric history when the engine has
/// too few points of it (after a hub restart, or for a rule added later):
/// a disk that filled over the last ten minutes fires seconds after the
/// rule is made. From live points alone a one-hour window keeps one every
/// 15 s and needs 5: more than a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_forecast_starts_from_the_mounts_history() {
    let dir = temp_dir("alert-forecast-history");
    let hub = Hub::start_with(&dir.join("hub"), free_port(), FAST);
    let admin = hub.token("admin");
    let hook = Hook::start();
    let (_, c) = hub.post(
        "/api/v1/alerts/channels",
        &admin,
        &json!({"name": "ops", "url": hook.url}),
    );
    let mut state = NodeState::default();
    state.host.hostname = "was-filling".into();
    let agent = Agent::start_with(&hub, state, Vec::new(), Arc::default()).await;
    let total: u64 = 100 << 30;
    let now = now_ms() as i64;
    // Ten minutes a minute apart, 20 % → 70 % used (as an agent's buffer
    // sends them after an outage).
    let samples = (0..=10)
        .rev()
        .map(|ago| disks_sample(now - ago * 60_000, total, 70.0 - 5.0 * ago as f64))
        .collect();
    agent.send(AgentMessage::Metrics { samples }).await;
    let node = agent.node.clone();
    until(
        "the ten minutes in the history",
        Duration::from_secs(10),
        || {
            let (_, got) = hub.get(
                &format!(
                    "/api/v1/nodes/{node}/metrics?series=disk_used{{/data}}&resolution=raw&from={}",
                    now - 3_600_000
                ),
                &admin,
            );
            got["series"][0]["points"]
                .as_array()
                .is_some_and(|p| p.len() == 11)
                .then_some(())
        },
    )
    .await;
    let (status, r) = hub.post(
        "/api/v1/alerts/rules",
        &admin,
        &json!({"name": "disk fills", "kind": "disk_forecast", "within": "1h", "window": "1h", "channels": [c["id"]]}),
    );
    assert_eq!(status, 201, "{r}");
    let started = std::time::Instant::now();
    let fired = loop {
        if let Some(m) = hook.of("disk fills", "firing").pop() {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no forecast alert from the history: {:?}",
            hook.got.lock().unwrap()
        );
        agent
            .send(AgentMessage::Metrics {
                samples: vec![disks_sample(now_ms() as i64, total, 70.0)],
            })
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    println!(
        "disk forecast from the history fired {} ms after the rule",
        started.elapsed().as_millis()
    );
    assert_forecast_for_data(&fired);
}

/// One alert in the notification: `/data` predicted to fill.
fn assert_forecast_for_data(fired: &Value) {
    assert_eq!(fired["alerts"].as_array().unwrap().len(), 1, "{fired}");
    assert_eq!(fired["alerts"][0]["labels"]["subject"], "/data", "{fired}");
    let summary = fired["alerts"][0]["annotations"]["summary"].to_string();
    assert!(summary.contains("predicted to fill in"), "{summary}");
}

/// A channel's URL token and signing secret are sealed in the database:
/// neither is in the database's files; both still work (the message is
/// signed, the URL reached).
#[test]
fn channel_secrets_are_not_in_the_database_files() {
    let dir = temp_dir("alert-sealed");
    let hub = Hub::start_with(&dir.join("hub"), free_port(), FAST);
    let admin = hub.token("admin");
    let hook = Hook::start();
    let secret = "Sekr1t-signing-key-4711";
    let url = format!("{}?token=Url-t0ken-0815", hook.url);
    let (status, c) = hub.post(
        "/api/v1/alerts/channels",
        &admin,
        &json!({"name": "sealed", "url": url, "secret": secret}),
    );
    assert_eq!(status, 201, "{c}");
    let (status, _) = hub.post(
        &format!("/api/v1/alerts/channels/{}/test", c["id"]),
        &admin,
        &json!({}),
    );
    assert_eq!(status, 204, "the sealed URL still works");
    assert_eq!(hook.got.lock().unwrap().len(), 1);
    let key = std::fs::metadata(dir.join("hub/alerts.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir.join("hub")).unwrap() {
        let p = entry.unwrap().path();
        if !p.is_file() || p.ends_with("alerts.key") {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        for needle in [secret, "Url-t0ken-0815"] {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(format!("{needle} in {}", p.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
}
