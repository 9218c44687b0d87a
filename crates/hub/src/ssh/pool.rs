//! One SSH connection per host, reused by every command run on it.
//!
//! [`Pool::exec`] takes one of the host's channel permits (at most
//! [`PoolConfig::channels`] commands at once), connects when there is no
//! live connection (host key checked against the pin, then public-key
//! authentication), opens a session channel, runs the quoted argv and
//! collects its output under a deadline. A failed connect waits out a
//! growing backoff before the next try; a connection unused for
//! [`PoolConfig::idle`] is closed by [`Pool::run_reaper`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use tokio::io::AsyncRead;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::SshError;
use super::target::{Target, command_line};
use crate::lock;

/// How the pool behaves.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Commands at once on one host.
    pub channels: usize,
    /// A connection unused this long is closed.
    pub idle: Duration,
    /// Connect (TCP, key exchange, authentication) within this.
    pub connect_timeout: Duration,
    /// Backoff after a failed connect: first wait, doubling up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            channels: 4,
            idle: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// What one command gave.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// The exit status; `None` when the command ended without one (a signal).
    pub status: Option<u32>,
    /// Standard output, at most `max_output` bytes (see `truncated`).
    pub stdout: Vec<u8>,
    /// Standard error, at most 64 KiB.
    pub stderr: Vec<u8>,
    pub duration: Duration,
    /// Standard output went past `max_output`; the rest was dropped.
    pub truncated: bool,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Standard error's first line, for a message.
    pub fn error_line(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        format!(
            "exit status {}{}{}",
            self.status.map_or_else(|| "none".into(), |s| s.to_string()),
            if line.is_empty() { "" } else { ": " },
            line.chars().take(300).collect::<String>()
        )
    }
}

const STDERR_CAP: usize = 64 * 1024;

/// A host the pool may connect to.
#[derive(Clone)]
pub struct HostEntry {
    pub target: Target,
    /// The pinned host key's `SHA256:` fingerprint. `None`: only for a first
    /// contact ([`connect`]), never in the pool.
    pub pinned: String,
    /// The host's own key; the hub's identity when absent.
    pub key: Option<Arc<PrivateKey>>,
}

/// A host key that no longer matches its pin, seen by the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChanged {
    pub host_id: String,
    pub target: String,
    pub pinned: String,
    pub seen: String,
}

/// Counters for benches and `/metrics` (shared with its registry).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub connections_opened: Counter,
    pub connect_failures: Counter,
    pub commands_run: Counter,
    pub command_failures: Counter,
}

/// The counters' values.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct PoolStats {
    pub connections_opened: u64,
    pub connect_failures: u64,
    pub commands_run: u64,
    pub command_failures: u64,
    /// Connections open now.
    pub connections_open: u64,
}

struct Conn {
    handle: Option<Arc<Handle<Client>>>,
    last_used: Instant,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

struct Slot {
    entry: Mutex<HostEntry>,
    conn: tokio::sync::Mutex<Conn>,
    channels: Semaphore,
    /// The changed key last reported, so each change is raised once.
    reported: Mutex<Option<String>>,
}

struct Inner {
    identity: Arc<PrivateKey>,
    config: PoolConfig,
    hosts: Mutex<HashMap<String, Arc<Slot>>>,
    stats: Stats,
    key_changes: Option<mpsc::UnboundedSender<KeyChanged>>,
}

/// The pooled connections, one per host. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// A pool authenticating with `identity` unless a host has its own key;
    /// host keys that changed are sent to `key_changes`.
    pub fn new(
        identity: Arc<PrivateKey>,
        config: PoolConfig,
        key_changes: Option<mpsc::UnboundedSender<KeyChanged>>,
    ) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                identity,
                config,
                hosts: Mutex::new(HashMap::new()),
                stats: Stats::default(),
                key_changes,
            }),
        }
    }

    /// The hub's own key.
    pub fn identity(&self) -> &Arc<PrivateKey> {
        &self.inner.identity
    }

    /// Adds `host_id` (or replaces its entry; an open connection to the old
    /// entry is dropped).
    pub fn register(&self, host_id: &str, entry: HostEntry) {
        let slot = Arc::new(Slot {
            entry: Mutex::new(entry),
            conn: tokio::sync::Mutex::new(Conn {
                handle: None,
                last_used: Instant::now(),
                failures: 0,
                retry_at: None,
                last_error: String::new(),
            }),
            channels: Semaphore::new(self.inner.config.channels.max(1)),
            reported: Mutex::new(None),
        });
        lock(&self.inner.hosts).insert(host_id.to_string(), slot);
    }

    /// Whether `host_id` is in the pool.
    pub fn knows(&self, host_id: &str) -> bool {
        lock(&self.inner.hosts).contains_key(host_id)
    }

    /// Forgets `host_id` (its connection closes when its last command ends).
    pub fn remove(&self, host_id: &str) {
        lock(&self.inner.hosts).remove(host_id);
    }

    /// The counters themselves, for `/metrics`.
    pub fn counters(&self) -> &Stats {
        &self.inner.stats
    }

    pub fn stats(&self) -> PoolStats {
        let s = &self.inner.stats;
        let slots: Vec<Arc<Slot>> = lock(&self.inner.hosts).values().cloned().collect();
        let open = slots
            .iter()
            .filter(|s| {
                s.conn
                    .try_lock()
                    .map(|c| c.handle.as_ref().is_some_and(|h| !h.is_closed()))
                    .unwrap_or(true)
            })
            .count() as u64;
        PoolStats {
            connections_opened: s.connections_opened.get(),
            connect_failures: s.connect_failures.get(),
            commands_run: s.commands_run.get(),
            command_failures: s.command_failures.get(),
            connections_open: open,
        }
    }

    fn slot(&self, host_id: &str) -> Result<Arc<Slot>, SshError> {
        lock(&self.inner.hosts)
            .get(host_id)
            .cloned()
            .ok_or_else(|| SshError::UnknownHost(host_id.to_string()))
    }

    /// Runs one argv (each element shell-quoted here, never a free-form
    /// shell string from outside) on the host over the pooled connection,
    /// with a deadline; stdout capped at `max_output` bytes.
    pub async fn exec(
        &self,
        host: &str,
        argv: &[String],
        timeout: Duration,
        max_output: usize,
    ) -> Result<ExecOutput, SshError> {
        self.exec_with_input(host, argv, None::<&[u8]>, timeout, max_output)
            .await
    }

    /// [`Pool::exec`] with `input` streamed to the command's standard input
    /// (then end of file).
    pub async fn exec_with_input<R: AsyncRead + Unpin + Send>(
        &self,
        host: &str,
        argv: &[String],
        input: Option<R>,
        timeout: Duration,
        max_output: usize,
    ) -> Result<ExecOutput, SshError> {
        if argv.is_empty() {
            return Err(SshError::Channel("an empty command".into()));
        }
        let slot = self.slot(host)?;
        let start = Instant::now();
        let deadline = tokio::time::Instant::from_std(start + timeout);
        let _permit = tokio::time::timeout_at(deadline, slot.channels.acquire())
            .await
            .map_err(|_| SshError::Timeout(timeout))?
            .map_err(|_| SshError::Channel("the pool is closing".into()))?;
        let command = command_line(argv);
        let stats = &self.inner.stats;
        // A connection the server dropped since its last use fails at the
        // channel's opening: then reconnect once (the command has not run).
        let mut channel = None;
        for attempt in 0..2 {
            let handle = tokio::time::timeout_at(deadline, self.handle(host, &slot))
                .await
                .map_err(|_| SshError::Timeout(timeout))??;
            match tokio::time::timeout_at(deadline, handle.channel_open_session()).await {
                Err(_) => return Err(SshError::Timeout(timeout)),
                Ok(Ok(c)) => {
                    channel = Some(c);
                    break;
                }
                Ok(Err(e)) => {
                    self.drop_conn(&slot, &handle).await;
                    if attempt == 1 {
                        return Err(SshError::Channel(format!("cannot open a channel: {e}")));
                    }
                }
            }
        }
        let Some(channel) = channel else {
            return Err(SshError::Channel("cannot open a channel".into()));
        };
        stats.commands_run.inc();
        let run = run(channel, command, input, max_output, start);
        let out = match tokio::time::timeout_at(deadline, run).await {
            Ok(out) => out,
            Err(_) => Err(SshError::Timeout(timeout)),
        };
        lock_conn_touch(&slot).await;
        if !out.as_ref().is_ok_and(ExecOutput::success) {
            stats.command_failures.inc();
        }
        out
    }

    /// The host's live connection, connecting when there is none.
    async fn handle(&self, host_id: &str, slot: &Slot) -> Result<Arc<Handle<Client>>, SshError> {
        let mut conn = slot.conn.lock().await;
        if let Some(h) = conn.handle.clone() {
            if !h.is_closed() {
                conn.last_used = Instant::now();
                return Ok(h);
            }
            conn.handle = None;
        }
        if let Some(at) = conn.retry_at.filter(|at| *at > Instant::now()) {
            return Err(SshError::Backoff {
                retry_in_ms: at.duration_since(Instant::now()).as_millis() as u64,
                last: conn.last_error.clone(),
            });
        }
        let entry = lock(&slot.entry).clone();
        let key = entry
            .key
            .clone()
            .unwrap_or_else(|| self.inner.identity.clone());
        let stats = &self.inner.stats;
        match connect(
            &entry.target,
            &key,
            Some(&entry.pinned),
            self.inner.config.connect_timeout,
        )
        .await
        {
            Ok((handle, _)) => {
                stats.connections_opened.inc();
                let handle = Arc::new(handle);
                conn.handle = Some(handle.clone());
                conn.failures = 0;
                conn.retry_at = None;
                conn.last_used = Instant::now();
                *lock(&slot.reported) = None;
                Ok(handle)
            }
            Err(e) => {
                stats.connect_failures.inc();
                conn.failures = conn.failures.saturating_add(1);
                let c = &self.inner.config;
                let wait = c
                    .min_backoff
                    .saturating_mul(1 << conn.failures.min(16).saturating_sub(1))
                    .min(c.max_backoff);
                conn.retry_at = Some(Instant::now() + wait);
                conn.last_error = e.to_string();
                if let SshError::HostKeyMismatch { expected, seen } = &e {
                    let mut reported = lock(&slot.reported);
                    if reported.as_deref() != Some(seen.as_str()) {
                        *reported = Some(seen.clone());
                        if let Some(tx) = &self.inner.key_changes {
                            let _ = tx.send(KeyChanged {
                                host_id: host_id.to_string(),
                                target: entry.target.to_string(),
                                pinned: expected.clone(),
                                seen: seen.clone(),
                            });
                        }
                    }
                    return Err(SshError::HostKeyChanged {
                        pinned: expected.clone(),
                        seen: seen.clone(),
                    });
                }
                Err(e)
            }
        }
    }

    async fn drop_conn(&self, slot: &Slot, handle: &Arc<Handle<Client>>) {
        let mut conn = slot.conn.lock().await;
        if conn.handle.as_ref().is_some_and(|h| Arc::ptr_eq(h, handle)) {
            conn.handle = None;
        }
    }

    /// Closes `host_id`'s connection now (the next command reconnects at once).
    pub async fn disconnect(&self, host_id: &str) {
        if let Ok(slot) = self.slot(host_id) {
            let mut conn = slot.conn.lock().await;
            if let Some(h) = conn.handle.take() {
                let _ = h
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
            }
            conn.retry_at = None;
            conn.failures = 0;
        }
    }

    /// Closes connections idle for longer than the configured time, until
    /// `stop` fires.
    pub async fn run_reaper(self, stop: CancellationToken) {
        let idle = self.inner.config.idle;
        let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
            let slots: Vec<Arc<Slot>> = lock(&self.inner.hosts).values().cloned().collect();
            for slot in slots {
                let Ok(mut conn) = slot.conn.try_lock() else {
                    continue;
                };
                // In use: some channel permit is taken.
                if slot.channels.available_permits() < self.inner.config.channels.max(1) {
                    continue;
                }
                if conn.last_used.elapsed() >= idle
                    && let Some(h) = conn.handle.take()
                {
                    let _ = h
                        .disconnect(russh::Disconnect::ByApplication, "idle", "en")
                        .await;
                }
            }
        }
        // Close what is open, politely.
        let slots: Vec<Arc<Slot>> = lock(&self.inner.hosts).values().cloned().collect();
        for slot in slots {
            if let Some(h) = slot.conn.lock().await.handle.take() {
                let _ = h
                    .disconnect(russh::Disconnect::ByApplication, "hub stopping", "en")
                    .await;
            }
        }
    }
}

async fn lock_conn_touch(slot: &Slot) {
    slot.conn.lock().await.last_used = Instant::now();
}

/// Runs `command` on an open channel: input streamed in (if any) while the
/// output is read.
async fn run<R: AsyncRead + Unpin + Send>(
    channel: russh::Channel<client::Msg>,
    command: String,
    input: Option<R>,
    max_output: usize,
    start: Instant,
) -> Result<ExecOutput, SshError> {
    channel
        .exec(true, command)
        .await
        .map_err(|e| SshError::Channel(format!("exec: {e}")))?;
    let (mut read, write) = channel.split();
    let send = async {
        if let Some(input) = input {
            write
                .data(input)
                .await
                .map_err(|e| SshError::Channel(format!("sending input: {e}")))?;
        }
        write
            .eof()
            .await
            .map_err(|e| SshError::Channel(format!("end of input: {e}")))?;
        Ok::<_, SshError>(())
    };
    let collect = async {
        let mut out = ExecOutput {
            status: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            duration: Duration::ZERO,
            truncated: false,
        };
        let mut closed = false;
        while let Some(msg) = read.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    let room = max_output.saturating_sub(out.stdout.len());
                    if data.len() > room {
                        out.truncated = true;
                    }
                    out.stdout.extend_from_slice(&data[..data.len().min(room)]);
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    let room = STDERR_CAP.saturating_sub(out.stderr.len());
                    out.stderr.extend_from_slice(&data[..data.len().min(room)]);
                }
                ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                ChannelMsg::Close => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        (out, closed)
    };
    // Input and output go at once; output that ends first (the connection
    // went away) ends the wait for the input too.
    tokio::pin!(send, collect);
    let mut sent = None;
    let (mut out, closed) = loop {
        tokio::select! {
            r = &mut send, if sent.is_none() => sent = Some(r),
            c = &mut collect => break c,
        }
    };
    let sent = sent.unwrap_or(Ok(()));
    out.duration = start.elapsed();
    if out.status.is_none() && !closed {
        // The connection went away under the command.
        return Err(SshError::Channel(
            sent.err()
                .map_or_else(|| "the connection closed".into(), |e| e.to_string()),
        ));
    }
    Ok(out)
}

/// The client side of one connection: checks the server's key.
pub struct Client {
    expected: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_public_key else {
            *lock(&self.seen) = Some("(a certificate)".into());
            return Ok(false);
        };
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        let ok = self.expected.as_deref() == Some(fp.as_str());
        *lock(&self.seen) = Some(fp);
        Ok(ok)
    }
}

/// Connects to `target` and authenticates with `key`. The server's key
/// must have the fingerprint `expected`; without one, the connect fails
/// with [`SshError::UnknownHostKey`] naming the fingerprint seen (first
/// contact: the admin confirms it). Returns the handle and the fingerprint.
pub async fn connect(
    target: &Target,
    key: &Arc<PrivateKey>,
    expected: Option<&str>,
    timeout: Duration,
) -> Result<(Handle<Client>, String), SshError> {
    let seen = Arc::new(Mutex::new(None));
    let client = Client {
        expected: expected.map(str::to_string),
        seen: seen.clone(),
    };
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        ..Default::default()
    });
    let fail = |reason: String| SshError::Connect {
        target: target.to_string(),
        reason,
    };
    let go = async {
        let mut handle = match client::connect(config, target.address(), client).await {
            Ok(h) => h,
            Err(e) => {
                let seen = lock(&seen).clone();
                return Err(match (seen, expected) {
                    (Some(seen), None) => SshError::UnknownHostKey { fingerprint: seen },
                    (Some(seen), Some(exp)) if seen != exp => SshError::HostKeyMismatch {
                        expected: exp.to_string(),
                        seen,
                    },
                    _ => fail(e.to_string()),
                });
            }
        };
        let fp = lock(&seen).clone().unwrap_or_default();
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| fail(e.to_string()))?
            .flatten();
        let auth = handle
            .authenticate_publickey(
                target.user.clone(),
                PrivateKeyWithHashAlg::new(key.clone(), hash),
            )
            .await
            .map_err(|e| fail(format!("authentication: {e}")))?;
        if !auth.success() {
            return Err(SshError::Auth {
                target: target.to_string(),
                fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
            });
        }
        Ok((handle, fp))
    };
    tokio::time::timeout(timeout, go)
        .await
        .map_err(|_| fail(format!("no answer within {}s", timeout.as_secs())))?
}
