//! `twinbay ctl exec|logs|status|start|stop|restart|version`: run a command
//! on a host through a running hub's API and stream its output here.
//!
//! The hub is the one of the data dir (its public URL, its certificate
//! pinned by fingerprint) unless `--hub` names another. Output goes to
//! stdout and stderr as it arrives; the exit code is the remote one.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// Exit codes besides the remote one.
pub const EXIT_REFUSED: u8 = 1;
pub const EXIT_TIMED_OUT: u8 = 124;
pub const EXIT_CANCELLED: u8 = 130;

pub struct Remote {
    scheme_tls: bool,
    host: String,
    port: u16,
    authority: String,
    fingerprint: Option<String>,
    token: String,
    user_agent: &'static str,
}

impl Remote {
    /// The hub `hub` names (else the one of `data_dir`: its public URL),
    /// its certificate pinned by `fingerprint` (else the data dir's).
    pub async fn locate(
        hub: Option<String>,
        fingerprint: Option<String>,
        token: String,
        data_dir: Option<&Path>,
    ) -> Result<Remote> {
        let from_dir = match (&hub, &fingerprint, data_dir) {
            (Some(_), Some(_), _) | (_, _, None) => None,
            (_, _, Some(dir)) => twinbay_hub::admin::hub_address(dir).await.ok(),
        };
        let url = hub
            .or_else(|| from_dir.as_ref().map(|(u, _)| u.clone()))
            .ok_or_else(|| match data_dir {
                Some(dir) => anyhow!(
                    "no hub: pass --hub URL, or --data-dir of a hub that has run ({})",
                    dir.display()
                ),
                None => anyhow!("no hub: pass --hub URL (or --data-dir of a hub that has run)"),
            })?;
        let fingerprint = fingerprint.or_else(|| from_dir.map(|(_, fp)| fp));
        Remote::new(&url, fingerprint, token)
    }

    /// `url` is `https://host:port` (with a certificate fingerprint to pin)
    /// or `http://` to a loopback address.
    pub fn new(url: &str, fingerprint: Option<String>, token: String) -> Result<Remote> {
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
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Remote {
            scheme_tls: tls,
            authority: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            host,
            port,
            fingerprint,
            token,
            user_agent: concat!("twinbay-ctl/", env!("CARGO_PKG_VERSION")),
        })
    }

    /// The same hub, naming itself `user_agent` to it.
    pub fn with_user_agent(mut self, user_agent: &'static str) -> Remote {
        self.user_agent = user_agent;
        self
    }

    /// A request to `path` with the hub's Host, the token, a JSON content
    /// type and this client's user agent; [`Remote::exchange`] sends it.
    pub(crate) fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, self.user_agent)
    }

    /// Sends one request on a new connection; the response body streams.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = self
            .request(method, path)
            .body(Full::new(Bytes::from(body)))?;
        self.exchange(request).await
    }

    /// `body` as `content_type` with `headers`, and the JSON answer; an API
    /// error becomes an error.
    pub async fn upload(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Value> {
        let mut request = self.request(Method::POST, path);
        if let Some(h) = request.headers_mut() {
            h.insert(hyper::header::CONTENT_TYPE, content_type.parse()?);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        json_answer(self.exchange(request.body(Full::new(body))?).await?).await
    }

    /// Sends `request` on a new connection (TLS with the pinned
    /// certificate, or plain to a loopback hub); the response body streams.
    pub(crate) async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connecting to the hub at {}", self.authority))?;
        tcp.set_nodelay(true)?;
        if self.scheme_tls {
            let fp = self.fingerprint.as_deref().unwrap_or_default();
            let config = Arc::new(twinbay_agent::tls::pinned_client_config(fp));
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

    /// A JSON request and its JSON answer; an API error becomes an error.
    pub async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        json_answer(self.send(method, path, body).await?).await
    }

    /// `GET path`, its JSON answer; an API error becomes an error.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.json(Method::GET, path, None).await
    }

    /// Any method with a JSON body; its JSON answer (null when empty).
    pub async fn call(&self, method: Method, path: &str, body: &Value) -> Result<Value> {
        self.json(method, path, Some(body)).await
    }

    /// `POST path` with a JSON body, its JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.json(Method::POST, path, Some(body)).await
    }

    /// The node id for an id or a hostname.
    pub async fn resolve_node(&self, node: &str) -> Result<String> {
        let nodes = self.json(Method::GET, "/api/v1/nodes", None).await?;
        let nodes = nodes.as_array().cloned().unwrap_or_default();
        if nodes.iter().any(|n| n["id"] == node) {
            return Ok(node.to_string());
        }
        let matches: Vec<&Value> = nodes.iter().filter(|n| n["hostname"] == node).collect();
        match matches.as_slice() {
            [one] => Ok(one["id"].as_str().unwrap_or_default().to_string()),
            [] => bail!("no node {node:?} (neither an id nor a hostname the hub knows)"),
            many => bail!(
                "{} nodes are called {node:?}; use an id: {}",
                many.len(),
                many.iter()
                    .filter_map(|n| n["id"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Runs `op` on `node` and streams its output; returns the exit code.
    pub async fn run(&self, node: &str, mut op: Value, wait_secs: u32) -> Result<u8> {
        let node = self.resolve_node(node).await?;
        op["stream"] = json!(true);
        op["wait_secs"] = json!(wait_secs);
        let path = format!("/api/v1/nodes/{node}/commands");
        let response = self.send(Method::POST, &path, Some(&op)).await?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.into_body().collect().await?.to_bytes();
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            bail!("{}", api_error(status, &value));
        }
        let mut body = response.into_body();
        let mut pending = Vec::new();
        let mut id = None::<String>;
        let mut interrupted = false;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            let frame = tokio::select! {
                _ = &mut ctrl_c, if !interrupted => {
                    interrupted = true;
                    if let Some(id) = &id {
                        eprintln!("cancelling {id}…");
                        let _ = self.json(Method::DELETE, &format!("/api/v1/commands/{id}"), None).await;
                    } else {
                        return Ok(EXIT_CANCELLED);
                    }
                    continue;
                }
                frame = body.frame() => frame,
            };
            let Some(frame) = frame else {
                bail!("the hub ended the stream before the command's result");
            };
            let frame = frame.context("reading the command's output")?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                match event["type"].as_str() {
                    Some("command") => {
                        id = event["command"]["id"].as_str().map(str::to_string);
                    }
                    Some("output") => {
                        let data = event["data"].as_str().unwrap_or_default();
                        if event["stream"] == "stderr" {
                            let mut err = std::io::stderr().lock();
                            let _ = err.write_all(data.as_bytes());
                            let _ = err.flush();
                        } else {
                            let mut out = std::io::stdout().lock();
                            let _ = out.write_all(data.as_bytes());
                            let _ = out.flush();
                        }
                    }
                    Some("result") => return Ok(exit_code(&event["command"])),
                    Some("error") => bail!("{}", event["message"].as_str().unwrap_or("error")),
                    _ => {}
                }
            }
        }
    }
}

/// The exit code for a finished command record, with a word on stderr for
/// ends that are not the command's own exit.
pub fn exit_code(record: &Value) -> u8 {
    let error = record["error"].as_str().unwrap_or_default();
    match record["status"].as_str().unwrap_or_default() {
        "ok" => 0,
        "failed" => match record["exit_code"].as_i64() {
            Some(code) => code.clamp(1, 255) as u8,
            None => {
                eprintln!("error: {error}");
                EXIT_REFUSED
            }
        },
        "timed_out" => {
            eprintln!("error: timed out: {error}");
            EXIT_TIMED_OUT
        }
        "cancelled" => EXIT_CANCELLED,
        other => {
            eprintln!("error: {other}: {error}");
            EXIT_REFUSED
        }
    }
}

/// A response's JSON body (null when empty or not JSON); an API error
/// status becomes an error.
async fn json_answer(response: hyper::Response<hyper::body::Incoming>) -> Result<Value> {
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{}", api_error(status, &value));
    }
    Ok(value)
}

pub(crate) fn api_error(status: StatusCode, body: &Value) -> String {
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| status.to_string());
    format!("the hub refused: {message} ({})", status.as_u16())
}
