//! Starting hubs and agents, and talking to them like a user or an agent would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use twinbay_agent::link::HubSocket;
use twinbay_proto::join::JoinString;
use twinbay_proto::message::{AgentMessage, Hello, HubMessage};

pub const BIN: &str = env!("CARGO_BIN_EXE_twinbay");
/// The lean agent binary that `twinbay agent` hands over to.
pub const LEAN_BIN: &str = env!("CARGO_BIN_EXE_twinbay-agent");
pub const ADMIN_PASSWORD: &str = "correct-horse-battery";

/// Runs `start` (a spawn or an output of a binary this test just copied),
/// again while it fails with "text file busy": a child forked by another
/// test thread while the copy was open still holds its write handle until
/// it execs, for a few milliseconds.
pub fn retry_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match start() {
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20))
            }
            r => return r.unwrap(),
        }
    }
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twinbay-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `within`.
pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process that is killed when the test ends.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Proc {
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {}", self.name);
    }

    /// Waits for the process to exit; returns its output (stdout/stderr piped).
    pub fn wait_exit(mut self, within: Duration) -> Output {
        wait_for(&format!("{} to exit", self.name), within, || {
            self.child.try_wait().unwrap()
        });
        let child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Hub {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Hub {
    /// Starts `twinbay hub` with a 1 s heartbeat and waits until it serves.
    pub fn start(dir: &Path) -> Hub {
        Self::start_on(dir, free_port())
    }

    pub fn start_on(dir: &Path, port: u16) -> Hub {
        Self::start_with(dir, port, &[])
    }

    /// Starts a hub with extra command-line arguments.
    pub fn start_with(dir: &Path, port: u16, extra: &[&str]) -> Hub {
        Self::spawn(dir, port, extra, "info", Stdio::piped())
    }

    /// Starts a hub for a large fleet: warnings only, to `DIR.log` (a
    /// thousand agents' info lines would fill an unread pipe and stall it).
    pub fn start_for_fleet(dir: &Path, extra: &[&str]) -> Hub {
        let log = std::fs::File::create(dir.with_extension("log")).unwrap();
        Self::spawn(dir, free_port(), extra, "warn", log.into())
    }

    fn spawn(dir: &Path, port: u16, extra: &[&str], log_level: &str, stderr: Stdio) -> Hub {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new(BIN)
            .args([
                "hub",
                "--listen",
                &addr.to_string(),
                "--heartbeat",
                "1s",
                "--data-dir",
            ])
            .arg(dir)
            .args(extra)
            .env("TWINBAY_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", log_level)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let hub = Hub {
            proc: Proc { child, name: "hub" },
            addr,
            dir: dir.to_path_buf(),
        };
        wait_for("the hub to serve /healthz", Duration::from_secs(10), || {
            http(addr, "GET", "/healthz", &[], "")
                .ok()
                .filter(|r| r.0 == 200)
        });
        hub
    }

    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .arg("ctl")
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            stdout.lines().count(),
            1,
            "ctl prints exactly one line: {stdout:?}"
        );
        stdout.trim().to_string()
    }

    pub fn join(&self) -> String {
        self.ctl(&["join-token", "create"])
    }

    pub fn token(&self, role: &str) -> String {
        self.ctl(&["api-token", "create", "--role", role])
    }

    pub fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        let (status, body) = http(self.addr, "GET", path, &[("Authorization", &auth)], "").unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    /// A JSON `POST` with a bearer token; the body as JSON (a string if it is not).
    pub fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.send("POST", path, token, body)
    }

    /// A JSON request of any method with a bearer token; the body as JSON
    /// (a string if it is not).
    pub fn send(&self, method: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        let (status, text) = http(
            self.addr,
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &body.to_string(),
        )
        .unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Waits for command `id` to end; returns its record with output.
    pub fn wait_command(&self, token: &str, id: &str, within: Duration) -> Value {
        wait_for(&format!("command {id} to end"), within, || {
            let (status, c) = self.get(&format!("/api/v1/commands/{id}"), token);
            assert_eq!(status, 200, "{c}");
            (c["status"] != "running").then_some(c)
        })
    }

    pub fn nodes(&self, token: &str) -> Vec<Value> {
        let (status, body) = self.get("/api/v1/nodes", token);
        assert_eq!(status, 200, "{body}");
        body.as_array().unwrap().clone()
    }

    pub fn node(&self, token: &str, id: &str) -> Option<Value> {
        self.nodes(token).into_iter().find(|n| n["id"] == id)
    }

    /// Waits for a connected node whose twin satisfies `ready`; returns its id and twin.
    pub fn wait_twin(
        &self,
        token: &str,
        what: &str,
        within: Duration,
        ready: impl Fn(&Value) -> bool,
    ) -> (String, Value) {
        wait_for(what, within, || {
            let node = self
                .nodes(token)
                .into_iter()
                .find(|n| n["connected"] == true)?;
            let id = node["id"].as_str()?.to_string();
            let (_, twin) = self.get(&format!("/api/v1/nodes/{id}"), token);
            ready(&twin).then_some((id, twin))
        })
    }

    /// The hub's own counters (`GET /api/v1/hub`).
    pub fn status(&self, token: &str) -> Value {
        let (status, body) = self.get("/api/v1/hub", token);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until `n` agents are connected.
    pub fn wait_connected(&self, token: &str, n: u64, within: Duration) {
        wait_for(&format!("{n} connected agents"), within, || {
            (self.status(token)["connected"].as_u64() >= Some(n)).then_some(())
        });
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// `twinbay sim` with `n` agents (its log goes to `log`, never to a pipe
/// nobody reads).
pub fn sim(join: &str, n: usize, extra: &[&str], log: &Path) -> Proc {
    let child = Command::new(BIN)
        .args(["sim", "--join", join, "--agents", &n.to_string()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Proc { child, name: "sim" }
}

/// A process's resident memory in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib / 1024.0
}

pub fn agent(join: Option<&str>, state_dir: &Path) -> Proc {
    agent_with(join, state_dir, &[])
}

pub fn agent_with(join: Option<&str>, state_dir: &Path, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(["agent", "--interval", "1s", "--state-dir"])
        .arg(state_dir)
        .args(extra);
    if let Some(join) = join {
        cmd.args(["--join", join]);
    }
    let child = cmd
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Proc {
        child,
        name: "agent",
    }
}

/// An agent (1 s interval) joined to a hub, with `extra` arguments, logging
/// into `state_dir`'s sibling `agent.log` (read it when a test fails) rather
/// than a pipe nobody drains, which would fill and stall it.
pub fn agent_logged(join: &str, state_dir: &Path, extra: &[&str]) -> Proc {
    let log = std::fs::File::create(state_dir.with_file_name("agent.log")).unwrap();
    let child = Command::new(BIN)
        .args(["agent", "--interval", "1s", "--join", join, "--state-dir"])
        .arg(state_dir)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc {
        child,
        name: "agent",
    }
}

/// Everything the UI stream sends one client, as text, from now until the
/// hub closes it: to search for what must never be sent.
pub struct StreamTap {
    text: std::sync::Arc<std::sync::Mutex<String>>,
}

impl StreamTap {
    pub fn start(addr: SocketAddr, token: &str) -> StreamTap {
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (sink, token) = (text.clone(), token.to_string());
        let (ready_tx, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut ws = stream(addr, &token).await;
                let _ = ready_tx.send(());
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        sink.lock().unwrap().push_str(t.as_str());
                    }
                }
            });
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("the stream opened");
        StreamTap { text }
    }

    /// What arrived so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }
}

/// Signs in as `username`; returns the session cookie (`twinbay_session=…`).
pub fn sign_in_cookie(addr: SocketAddr, username: &str, password: &str) -> String {
    let body = format!(r#"{{"username":"{username}","password":"{password}"}}"#);
    let mut stream = TcpStream::connect(addr).unwrap();
    let req = format!(
        "POST /api/v1/session HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "sign-in failed: {raw}");
    raw.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().split(';').next().unwrap().to_string())
        })
        .expect("a session cookie")
}

/// A minimal HTTP/1.1 request over plain TCP; returns status and body.
/// `Host` is the address unless `headers` name one.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// The UI stream, authenticated with an API token, over plain WebSocket on loopback.
pub async fn stream(
    addr: SocketAddr,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    stream_over(tokio::net::TcpStream::connect(addr).await.unwrap(), token).await
}

/// The UI stream's WebSocket handshake request, for the caller to add
/// credentials (and an `Origin`) to.
pub fn stream_request(addr: SocketAddr) -> http::request::Builder {
    stream_request_to(addr, "/api/v1/stream")
}

/// The same handshake for another path and query (`/api/v1/stream?view=summary`).
pub fn stream_request_to(addr: SocketAddr, path: &str) -> http::request::Builder {
    http::Request::builder()
        .uri(format!("ws://{addr}{path}"))
        .header("Host", addr.to_string())
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
}

/// The UI stream's WebSocket handshake over a connection the caller opened.
pub async fn stream_over(
    tcp: tokio::net::TcpStream,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let addr = tcp.peer_addr().unwrap();
    let request = stream_request(addr)
        .header("Authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    tokio_tungstenite::client_async(request, tcp)
        .await
        .unwrap()
        .0
}

/// Wall-clock time in unix milliseconds.
pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// For a stream `diff` message: how long ago (ms) each container it shows
/// running was started (`twinbay sim` stamps `started_at` at the change).
pub fn container_start_latencies(text: &str) -> Vec<f64> {
    if !text.contains("\"type\":\"diff\"") {
        return Vec::new();
    }
    let now = now_ms();
    let Ok(msg) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let started = |change: &Value| {
        let value = &change["value"];
        if change["collection"] != "containers" || value["state"] != "running" {
            return None;
        }
        let at = humantime::parse_rfc3339(value["started_at"].as_str()?).ok()?;
        let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64() * 1000.0;
        Some(now - at)
    };
    msg["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(started)
        .collect()
}

pub async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("stream open")
            .expect("no websocket error");
        if let Message::Text(text) = msg {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// A hand-driven agent: real TLS with pinning, real keys, frames of our choosing.
pub struct RawAgent {
    pub ws: HubSocket,
    pub key: SigningKey,
}

pub fn new_key() -> SigningKey {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).unwrap();
    SigningKey::from_bytes(&secret)
}

impl RawAgent {
    /// Connects and reads the challenge; returns the agent and the nonce.
    pub async fn connect(join: &str, key: SigningKey) -> (RawAgent, String) {
        let join = JoinString::parse(join).unwrap();
        let ws = twinbay_agent::link::connect(&join.hub, &join.fp)
            .await
            .unwrap();
        let mut agent = RawAgent { ws, key };
        let nonce = match agent.recv().await {
            HubMessage::Challenge { nonce, .. } => nonce,
            other => panic!("expected a challenge, got {other:?}"),
        };
        (agent, nonce)
    }

    pub fn hello(&self, nonce: &str, node_id: Option<&str>, token: Option<&str>) -> AgentMessage {
        AgentMessage::Hello(Hello {
            protocol: twinbay_proto::PROTOCOL_VERSION,
            agent_version: "test".into(),
            public_key: STANDARD.encode(self.key.verifying_key().as_bytes()),
            signature: STANDARD.encode(
                self.key
                    .sign(&twinbay_proto::link_proof_message(nonce))
                    .to_bytes(),
            ),
            node_id: node_id.map(String::from),
            join_token: token.map(String::from),
            capabilities: vec![],
            simulated: false,
            policy: None,
        })
    }

    /// Enrolls with the join string's token; returns the node id.
    pub async fn enroll(join: &str) -> (RawAgent, String) {
        let token = JoinString::parse(join).unwrap().token;
        let (mut agent, nonce) = RawAgent::connect(join, new_key()).await;
        let hello = agent.hello(&nonce, None, Some(&token));
        agent.send(&hello).await;
        match agent.recv().await {
            HubMessage::Welcome { node_id, .. } => (agent, node_id),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn send(&mut self, msg: &AgentMessage) {
        self.send_text(serde_json::to_string(msg).unwrap()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn recv(&mut self) -> HubMessage {
        loop {
            match self.try_recv().await {
                Ok(Some(msg)) => return msg,
                Ok(None) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// The next hub message; `Ok(None)` for a non-text frame, `Err` when closed.
    pub async fn try_recv(&mut self) -> Result<Option<HubMessage>, String> {
        let frame = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
            .await
            .map_err(|_| "no frame from the hub within 10 s".to_string())?;
        match frame {
            Some(Ok(Message::Text(text))) => Ok(Some(serde_json::from_str(text.as_str()).unwrap())),
            Some(Ok(Message::Close(frame))) => Err(format!("closed: {frame:?}")),
            Some(Ok(_)) => Ok(None),
            Some(Err(e)) => Err(format!("error: {e}")),
            None => Err("closed".into()),
        }
    }
}

/// The image the container tests run (scripts/podman-setup.sh builds it).
pub const IMAGE: &str = "localhost/twinbay-busybox:latest";

/// A test's temp dir named `name` with Podman's API on a socket of its own
/// in it (`dir/podman.sock`), once Podman has [`IMAGE`].
pub fn podman_dir(name: &str) -> (PathBuf, PathBuf, Proc) {
    assert!(
        Command::new("podman")
            .args(["image", "exists", IMAGE])
            .status()
            .is_ok_and(|s| s.success()),
        "run scripts/podman-setup.sh first"
    );
    let dir = temp_dir(name);
    let socket = dir.join("podman.sock");
    let service = podman_service(&socket);
    (dir, socket, service)
}

/// Podman's Docker-compatible API on a socket of our own.
pub fn podman_service(socket: &Path) -> Proc {
    let _ = std::fs::remove_file(socket);
    let child = Command::new("podman")
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", socket.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the podman socket", Duration::from_secs(10), || {
        socket.exists().then_some(())
    });
    Proc {
        child,
        name: "podman service",
    }
}

/// A streaming POST: NDJSON events as they arrive, over plain HTTP/1.1.
pub struct Feed {
    reader: BufReader<TcpStream>,
    pending: String,
}

impl Feed {
    pub fn open(addr: SocketAddr, path: &str, token: &str, body: &Value) -> (u16, Feed) {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let body = body.to_string();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header == "\r\n" {
                break;
            }
        }
        (
            status,
            Feed {
                reader,
                pending: String::new(),
            },
        )
    }

    /// The next event (reading HTTP chunks as needed).
    pub fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.pending.find('\n') {
                let line: String = self.pending.drain(..=end).collect();
                return serde_json::from_str(&line).unwrap();
            }
            let mut size = String::new();
            self.reader.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            assert!(n > 0, "the feed ended");
            let mut chunk = vec![0; n + 2];
            self.reader.read_exact(&mut chunk).unwrap();
            self.pending
                .push_str(std::str::from_utf8(&chunk[..n]).unwrap());
        }
    }
}

/// A command's stored output, all streams in order, as one string.
pub fn command_output(c: &Value) -> String {
    c["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["data"].as_str().unwrap())
        .collect()
}

/// A minisign key pair made for a test, and its public key as the hub and
/// agents take it (`RW…`).
pub struct Key {
    pub public: String,
    pub pair: minisign::KeyPair,
}

impl Key {
    /// Writes the secret key as an unencrypted minisign key file (what
    /// `ctl release publish --key` reads) at `path`; returns `path`.
    pub fn save_secret(&self, path: PathBuf) -> PathBuf {
        std::fs::write(&path, self.pair.sk.to_box(None).unwrap().to_string()).unwrap();
        path
    }
}

pub fn key() -> Key {
    let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    Key {
        public: pair.pk.to_base64(),
        pair,
    }
}

/// A `.minisig` file's text: `data` signed by `key`, with `comment` trusted.
pub fn signature(key: &Key, data: &[u8], comment: &str) -> String {
    minisign::sign(Some(&key.pair.pk), &key.pair.sk, data, Some(comment), None)
        .unwrap()
        .into_string()
}

/// Publishes `file` as `version` on the hub whose data dir is `data_dir`,
/// through `ctl release publish --key` (signed on the spot with `secret`).
pub fn publish(data_dir: &Path, secret: &Path, file: &Path, version: &str) {
    let out = Command::new(BIN)
        .args(["ctl", "--data-dir"])
        .arg(data_dir)
        .args(["release", "publish", "--file"])
        .arg(file)
        .args(["--version", version, "--key"])
        .arg(secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "publish {version}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
