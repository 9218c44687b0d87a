//! `twinbay mcp --hub URL`: an MCP server on stdio for assistants that
//! start their servers as processes (Claude Desktop, VS Code, …).
//!
//! It is a relay, not a second server: each JSON-RPC message read from
//! stdin is POSTed to the hub's `/mcp` with the API token, and every
//! JSON-RPC message of the answer (JSON or an SSE stream) is written to
//! stdout, one per line. Once the session is initialized, what the hub
//! sends unasked (`notifications/resources/updated` for a subscription,
//! list changes) comes on the session's GET stream, which is kept open and
//! relayed the same way. So the tools, their schemas, the role and host
//! group checks and the audit trail are the hub's own, exactly as over
//! HTTP; nothing here can drift from them. The connection is `twinbay
//! ctl`'s ([`crate::remote::Remote`]: the hub's certificate pinned by
//! fingerprint).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper::body::{Bytes, Incoming};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::remote::Remote;

/// The longest line (one JSON-RPC message) read from stdin.
const MAX_LINE: usize = 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct McpArgs {
    /// The hub's URL (`https://HOST:PORT`, or `http://` to a loopback hub);
    /// by default the public URL of the hub in --data-dir.
    #[arg(long, env = "TWINBAY_HUB")]
    pub hub: Option<String>,
    /// The hub certificate's SHA-256 fingerprint (the `fp` of a join
    /// string); read from --data-dir when not given.
    #[arg(long, env = "TWINBAY_FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// An API token; a viewer token is the safe start (`twinbay ctl
    /// api-token create --role viewer`).
    #[arg(long, env = "TWINBAY_TOKEN", hide_env_values = true)]
    pub token: String,
    /// A hub's data dir, for its URL and fingerprint.
    #[arg(long, env = "TWINBAY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

pub fn run(args: McpArgs) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(relay(args))
}

/// How long to wait before opening the hub's GET stream again after it
/// failed (it also ends, and is opened again at once, with the session).
const LISTEN_RETRY: Duration = Duration::from_secs(1);

struct Hub {
    remote: Remote,
    /// `Mcp-Session-Id` and the negotiated protocol version, once known.
    session: Mutex<(Option<String>, Option<String>)>,
    /// The client's `initialize`, to open a new session when the hub has
    /// ended an idle one (404 for its id).
    initialize: Mutex<Option<String>>,
}

async fn relay(args: McpArgs) -> Result<()> {
    let hub = Arc::new(Hub::new(&args).await?);
    let (out_tx, mut out_rx) = mpsc::channel::<String>(64);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = out_rx.recv().await {
            if stdout.write_all(line.as_bytes()).await.is_err()
                || stdout.write_all(b"\n").await.is_err()
                || stdout.flush().await.is_err()
            {
                break;
            }
        }
    });
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut listener: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        line.clear();
        let n = (&mut stdin)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await
            .context("reading stdin")?;
        if n == 0 {
            break;
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let error = rpc_error(Value::Null, -32700, &format!("parse error: {e}"));
                let _ = out_tx.send(error).await;
                continue;
            }
        };
        let id = message.get("id").cloned();
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .map(String::from);
        let relay = hub.clone();
        let out = out_tx.clone();
        let body = text.to_string();
        // Requests run side by side (a long command must not hold up a
        // ping); the handshake and notifications keep their order.
        let concurrent = id.is_some() && method.as_deref().is_some_and(|m| m != "initialize");
        let initialized = method.as_deref() == Some("notifications/initialized");
        let job = async move {
            if let Err(e) = relay.forward(body, &out).await
                && let Some(id) = id.filter(|_| method.is_some())
            {
                let _ = out.send(rpc_error(id, -32603, &format!("{e:#}"))).await;
            }
        };
        if concurrent {
            tasks.spawn(job);
        } else {
            job.await;
        }
        // The session is open once the client has said so: from then on
        // the hub's own messages are relayed too.
        if initialized && listener.is_none() {
            let hub = hub.clone();
            let out = out_tx.clone();
            listener = Some(tokio::spawn(async move { hub.listen(&out).await }));
        }
    }
    while tasks.join_next().await.is_some() {}
    if let Some(listener) = listener {
        listener.abort();
    }
    hub.close().await;
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

fn rpc_error(id: Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

impl Hub {
    async fn new(args: &McpArgs) -> Result<Hub> {
        let remote = Remote::locate(
            args.hub.clone(),
            args.fingerprint.clone(),
            args.token.clone(),
            args.data_dir.as_deref(),
        )
        .await?
        .with_user_agent(concat!("twinbay-mcp/", env!("CARGO_PKG_VERSION")));
        Ok(Hub {
            remote,
            session: Mutex::new((None, None)),
            initialize: Mutex::new(None),
        })
    }

    /// One request to `/mcp` on a new connection, in the session; the body
    /// streams.
    async fn send(&self, method: Method, body: String) -> Result<hyper::Response<Incoming>> {
        let (session, version) = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut request = self
            .remote
            .request(method, "/mcp")
            .header(hyper::header::ACCEPT, "application/json, text/event-stream");
        if let Some(s) = session {
            request = request.header("mcp-session-id", s);
        }
        if let Some(v) = version {
            request = request.header("mcp-protocol-version", v);
        }
        let request = request.body(Full::new(Bytes::from(body)))?;
        self.remote.exchange(request).await
    }

    /// Relays the session's GET stream (what the hub sends unasked:
    /// resource updates, list changes) until the relay ends, opening it
    /// again when it ends (a new session after the hub ended the old one).
    async fn listen(&self, out: &mpsc::Sender<String>) {
        loop {
            let opened = std::time::Instant::now();
            match self.send(Method::GET, String::new()).await {
                Ok(response) if response.status() == hyper::StatusCode::METHOD_NOT_ALLOWED => {
                    // A hub without the stream: nothing to relay.
                    return;
                }
                Ok(response) if response.status().is_success() && is_sse(&response) => {
                    let _ = self.relay_events(response.into_body(), out).await;
                }
                Ok(_) | Err(_) => {}
            }
            if out.is_closed() {
                return;
            }
            // A stream that lasted is opened again at once; one that failed
            // or ended right away, after a pause.
            if opened.elapsed() < LISTEN_RETRY {
                tokio::time::sleep(LISTEN_RETRY).await;
            }
        }
    }

    /// Writes the JSON-RPC message of each event of an SSE stream.
    async fn relay_events(&self, mut body: Incoming, out: &mpsc::Sender<String>) -> Result<()> {
        let mut pending = String::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the hub's answer")?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.push_str(&String::from_utf8_lossy(&data));
            pending = pending.replace("\r\n", "\n");
            while let Some(end) = pending.find("\n\n") {
                let event: String = pending.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                let data = data.join("\n");
                if !data.trim().is_empty() {
                    self.emit(&data, out).await;
                }
            }
        }
        Ok(())
    }

    /// Posts one message; writes every JSON-RPC message of the answer.
    async fn forward(&self, body: String, out: &mpsc::Sender<String>) -> Result<()> {
        let is_init =
            serde_json::from_str::<Value>(&body).is_ok_and(|v| v["method"] == "initialize");
        if is_init {
            *self.initialize.lock().unwrap_or_else(|e| e.into_inner()) = Some(body.clone());
        }
        let had_session = self.session_id().is_some();
        let mut response = self.send(Method::POST, body.clone()).await?;
        if response.status() == hyper::StatusCode::NOT_FOUND && had_session && !is_init {
            // The hub ended this session (idle too long, or it restarted):
            // open a new one the way the client opened the first, then retry.
            self.reopen().await?;
            response = self.send(Method::POST, body).await?;
        }
        let status = response.status();
        if let Some(s) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session.lock().unwrap_or_else(|e| e.into_inner()).0 = Some(s.to_string());
        }
        if is_sse(&response) && status.is_success() {
            return self.relay_events(response.into_body(), out).await;
        }
        let body = response.into_body();
        let bytes = body.collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        if status.is_success() {
            if !text.trim().is_empty() {
                self.emit(text.trim(), out).await;
            }
            return Ok(());
        }
        // A JSON-RPC error the hub's MCP server made: pass it on as it is.
        if let Ok(v) = serde_json::from_str::<Value>(&text)
            && v.get("jsonrpc").is_some()
        {
            self.emit(text.trim(), out).await;
            return Ok(());
        }
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(String::from))
            .unwrap_or_else(|| text.trim().chars().take(300).collect());
        bail!("the hub answered {status}: {message}")
    }

    fn session_id(&self) -> Option<String> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// A new session: the client's `initialize` again (its answer is not
    /// passed on: the client has one), then `initialized`.
    async fn reopen(&self) -> Result<()> {
        let init = self
            .initialize
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                anyhow!("the hub ended the session and there is no initialize to replay")
            })?;
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = (None, None);
        let response = self.send(Method::POST, init).await?;
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("the hub refused a new session: {status}");
        }
        let text = String::from_utf8_lossy(&bytes);
        let version = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .chain(std::iter::once(text.as_ref()))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find_map(|v| v["result"]["protocolVersion"].as_str().map(String::from));
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = (session, version);
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let response = self.send(Method::POST, initialized.to_string()).await?;
        let _ = response.into_body().collect().await;
        Ok(())
    }

    /// Writes one message; learns the protocol version from `initialize`.
    async fn emit(&self, data: &str, out: &mpsc::Sender<String>) {
        if let Ok(v) = serde_json::from_str::<Value>(data)
            && let Some(version) = v["result"]["protocolVersion"].as_str()
        {
            self.session.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(version.to_string());
        }
        let _ = out.send(data.replace('\n', " ")).await;
    }

    /// Ends the hub-side session (best effort).
    async fn close(&self) {
        if self.session_id().is_some() {
            let _ = self.send(Method::DELETE, String::new()).await;
        }
    }
}

fn is_sse(response: &hyper::Response<Incoming>) -> bool {
    response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}
