//! `twinbay mcp --hub URL`: an MCP server on stdio for assistants that
//! start their servers as processes (Claude Desktop, VS Code, …).
//!
//! It is a relay, not a second server: each JSON-RPC message read from
//! stdin is POSTed to the hub's `/mcp` with the API token, and every
//! JSON-RPC message of the answer (JSON or an SSE stream) is written to
//! stdout, one per line. So the tools, their schemas, the role and host
//! group checks and the audit trail are the hub's own, exactly as over
//! HTTP; nothing here can drift from them. The hub's self-signed
//! certificate is pinned by fingerprint, as `twinbay ctl` does.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

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

struct Hub {
    tls: bool,
    host: String,
    port: u16,
    authority: String,
    fingerprint: String,
    token: String,
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
        let hub = hub.clone();
        let out = out_tx.clone();
        let body = text.to_string();
        // Requests run side by side (a long command must not hold up a
        // ping); the handshake and notifications keep their order.
        let concurrent = id.is_some() && method.as_deref().is_some_and(|m| m != "initialize");
        let job = async move {
            if let Err(e) = hub.forward(body, &out).await
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
    }
    while tasks.join_next().await.is_some() {}
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
        let from_dir = match (&args.hub, &args.fingerprint, &args.data_dir) {
            (Some(_), Some(_), _) | (_, _, None) => None,
            (_, _, Some(dir)) => twinbay_hub::admin::hub_address(dir).await.ok(),
        };
        let url = args
            .hub
            .clone()
            .or_else(|| from_dir.as_ref().map(|(u, _)| u.clone()))
            .ok_or_else(|| {
                anyhow!("no hub: pass --hub URL (or --data-dir of a hub that has run)")
            })?;
        let fingerprint = args
            .fingerprint
            .clone()
            .or_else(|| from_dir.map(|(_, fp)| fp));
        let uri: hyper::Uri = url
            .parse()
            .with_context(|| format!("bad hub URL {url:?}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("the hub URL must start with https:// (or http:// on loopback)"),
        };
        let host = uri
            .host()
            .ok_or_else(|| anyhow!("no host in {url:?}"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback {
            bail!("plain http:// is only for a loopback hub; use https://");
        }
        if tls && fingerprint.is_none() {
            bail!(
                "no certificate fingerprint for {url}: pass --fingerprint (the `fp` in a join string) or --data-dir of the hub"
            );
        }
        Ok(Hub {
            tls,
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            authority: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            host,
            fingerprint: fingerprint.unwrap_or_default(),
            token: args.token.clone(),
            session: Mutex::new((None, None)),
            initialize: Mutex::new(None),
        })
    }

    /// One request to `/mcp` on a new connection; the body streams.
    async fn send(
        &self,
        method: Method,
        body: String,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connecting to the hub at {}", self.authority))?;
        tcp.set_nodelay(true)?;
        let (session, version) = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut request = Request::builder()
            .method(method)
            .uri("/mcp")
            .header(hyper::header::HOST, &self.authority)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json, text/event-stream")
            .header(
                hyper::header::USER_AGENT,
                concat!("twinbay-mcp/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(s) = session {
            request = request.header("mcp-session-id", s);
        }
        if let Some(v) = version {
            request = request.header("mcp-protocol-version", v);
        }
        let request = request.body(Full::new(Bytes::from(body)))?;
        if self.tls {
            let config = Arc::new(twinbay_agent::tls::pinned_client_config(&self.fingerprint));
            let name = ServerName::try_from(self.host.clone())
                .map_err(|_| anyhow!("{:?} is not a valid server name", self.host))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .context("TLS with the hub (is the fingerprint the hub's?)")?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            Ok(sender.send_request(request).await?)
        } else {
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            Ok(sender.send_request(request).await?)
        }
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
        let sse = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut body = response.into_body();
        if sse && status.is_success() {
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
            return Ok(());
        }
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
