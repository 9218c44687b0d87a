//! Accepting connections: TLS and plain HTTP on the same port.
//!
//! The first byte of a TLS connection is a handshake record (0x16); anything
//! else is plain HTTP. So `https://` and `http://` both work on the one listen
//! address, and a TLS-terminating proxy on loopback can talk plain HTTP to
//! it. (What plain HTTP may reach from off-loopback is limited in `api`.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How the client reached us; in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: bool,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `app` until `shutdown` fires, then drains open requests for a while.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
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
        let conn = Connection {
            app: app.clone(),
            acceptor: acceptor.clone(),
            addr,
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

struct Connection {
    app: Router,
    acceptor: TlsAcceptor,
    addr: SocketAddr,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, watcher: hyper_util::server::graceful::Watcher) {
        let _ = tcp.set_nodelay(true);
        let mut first = [0u8; 1];
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
            Ok(Ok(1)) => first[0] == 0x16,
            _ => return,
        };
        let peer = Peer {
            addr: self.addr,
            tls,
        };
        let app = self.app;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(peer);
            app.clone().oneshot(request)
        });
        let builder = auto::Builder::new(TokioExecutor::new());
        let result = if tls {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %self.addr, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            watcher.watch(conn.into_owned()).await
        } else {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            watcher.watch(conn.into_owned()).await
        };
        if let Err(e) = result {
            tracing::debug!(peer = %self.addr, error = %e, "connection ended with an error");
        }
    }
}
