//! Accepting connections: TLS and plain HTTP on the same port.
//!
//! The first byte of a TLS connection is a handshake record (0x16); anything
//! else is plain HTTP. So `https://` and `http://` both work on the one listen
//! address, and a TLS-terminating proxy on loopback can talk plain HTTP to
//! it. (What plain HTTP may reach from off-loopback is limited in `api`.)
//!
//! A connection is admitted against the caps in [`limits`] before it costs
//! anything, and must deliver a complete request head within the header
//! timeout of being accepted (TLS handshake included); an idle keep-alive
//! connection gets the same time for its next one.

pub mod limits;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub use limits::{Admission, Connections, Limits};

/// How the client reached us; in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: bool,
}

/// The default for [`ServeConfig::header_timeout`].
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a request head may take in memory (HTTP/1 read buffer, HTTP/2
/// header list); hyper's default would let each connection hold 400 KiB.
const MAX_HEAD_BYTES: usize = 32 * 1024;
/// HTTP/2 is reachable only with prior knowledge (ALPN offers HTTP/1.1),
/// and kept small: streams at once per connection, and pings that close a
/// connection whose peer is gone.
const H2_MAX_STREAMS: u32 = 32;
const H2_PING_EVERY: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Between two warnings about refused connections.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ServeConfig {
    /// From accept to a complete first request head (TLS handshake
    /// included), and from a response to the next request head on a
    /// keep-alive connection.
    pub header_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_timeout: HEADER_TIMEOUT,
        }
    }
}

/// Serves `app` until `shutdown` fires, then drains open requests for a while.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    connections: Connections,
    config: ServeConfig,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut refusals = RefusalLog::default();
    loop {
        let (tcp, addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admission = match connections.admit(addr.ip()) {
            Ok(admission) => admission,
            Err(reason) => {
                // Closed at once, with a reset: no TLS, no task, no TIME_WAIT here.
                let _ = tcp.set_zero_linger();
                drop(tcp);
                refusals.refused(reason, addr, &connections);
                continue;
            }
        };
        let conn = Connection {
            app: app.clone(),
            acceptor: acceptor.clone(),
            addr,
            admission,
            config,
            accepted: Instant::now(),
        };
        let watcher = graceful.watcher();
        tokio::spawn(async move { conn.serve(tcp, watcher).await });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not finish in time");
    }
}

/// Says that connections are being refused, at most once a minute (a flood
/// must not become a flood of log lines).
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    since: u64,
}

impl RefusalLog {
    fn refused(&mut self, reason: limits::Refused, addr: SocketAddr, connections: &Connections) {
        self.since += 1;
        tracing::debug!(peer = %addr, reason = reason.as_str(), "connection refused");
        if self.last.is_some_and(|t| t.elapsed() < REFUSAL_LOG_EVERY) {
            return;
        }
        let limits = connections.limits();
        let counts = connections.counts();
        tracing::warn!(
            refused = self.since,
            reason = reason.as_str(),
            peer = %addr,
            open = counts.open,
            unproven = counts.unproven,
            max_open = limits.max_open,
            max_unproven = limits.max_unproven,
            max_per_address = limits.max_unproven_per_address,
            "refusing connections over the limits"
        );
        self.last = Some(Instant::now());
        self.since = 0;
    }
}

struct Connection {
    app: Router,
    acceptor: TlsAcceptor,
    addr: SocketAddr,
    admission: Admission,
    config: ServeConfig,
    accepted: Instant,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, watcher: hyper_util::server::graceful::Watcher) {
        let _ = tcp.set_nodelay(true);
        let deadline = self.accepted + self.config.header_timeout;
        let mut first = [0u8; 1];
        let tls = match tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
            Ok(Ok(1)) => first[0] == 0x16,
            _ => return,
        };
        let peer = Peer {
            addr: self.addr,
            tls,
        };
        let app = self.app;
        let admission = self.admission;
        // The socket holds the admission for as long as it is open, through
        // an upgrade to a WebSocket too; each request carries a clone, so
        // whoever authenticates the other end can prove it.
        let tcp = Counted {
            io: tcp,
            _admission: admission.clone(),
        };
        let requested = Arc::new(AtomicBool::new(false));
        let seen = requested.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            seen.store(true, Ordering::Relaxed);
            request.extensions_mut().insert(peer);
            request.extensions_mut().insert(admission.clone());
            app.clone().oneshot(request)
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.header_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_header_list_size(MAX_HEAD_BYTES as u32)
            .keep_alive_interval(H2_PING_EVERY)
            .keep_alive_timeout(H2_PING_TIMEOUT);
        let served = if tls {
            let stream = match tokio::time::timeout_at(deadline, self.acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %self.addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            until_first_request(watcher.watch(conn.into_owned()), deadline, &requested).await
        } else {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            until_first_request(watcher.watch(conn.into_owned()), deadline, &requested).await
        };
        match served {
            Some(Err(e)) => {
                tracing::debug!(peer = %self.addr, error = %e, "connection ended with an error")
            }
            Some(Ok(())) => {}
            None => tracing::debug!(peer = %self.addr, "no request head in time; closed"),
        }
    }
}

/// Runs `conn`, but gives up (dropping it, which closes the socket) if no
/// request head has arrived by `deadline`. This bounds what hyper's own
/// header timeout does not see: the HTTP/2 preface and the wait for the
/// protocol to be detected.
async fn until_first_request<F: Future>(
    conn: F,
    deadline: Instant,
    requested: &AtomicBool,
) -> Option<F::Output> {
    let expired = async {
        tokio::time::sleep_until(deadline).await;
        if requested.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        out = conn => Some(out),
        () = expired => None,
    }
}

/// A socket that keeps its connection counted until it is closed.
struct Counted {
    io: TcpStream,
    _admission: Admission,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
