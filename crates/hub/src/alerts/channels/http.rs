//! One POST over http or https (rustls with the system's trust store), for
//! the HTTP channels. Errors name the host and port only: a channel's URL
//! may carry a token in its path or query, and errors are shown and
//! logged.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The client TLS configuration: the system's roots (read once).
fn tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    "no trusted root certificates found: https alert channels will fail"
                );
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

/// `host:port` of a URL, for messages (never its credentials or path).
pub fn place(uri: &Uri) -> String {
    let host = uri.host().unwrap_or_default();
    match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// POSTs `body` with `headers`; `Err` says why it did not arrive
/// (answered non-2xx, unreachable, too slow).
pub async fn post(
    uri: &Uri,
    headers: &[(HeaderName, String)],
    body: Vec<u8>,
) -> Result<(), String> {
    let place = place(uri);
    tokio::time::timeout(TIMEOUT, attempt(uri, headers, body, &place))
        .await
        .unwrap_or_else(|_| Err(format!("{place}: no answer within {TIMEOUT:?}")))
}

async fn attempt(
    uri: &Uri,
    headers: &[(HeaderName, String)],
    body: Vec<u8>,
    place: &str,
) -> Result<(), String> {
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{place}: not an http(s) URL")),
    };
    let host = uri.host().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((bare, port))
        .await
        .map_err(|e| format!("{place}: {e}"))?;
    if https {
        let name = rustls::pki_types::ServerName::try_from(bare.to_string())
            .map_err(|e| format!("{place}: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{place}: TLS: {e}"))?;
        exchange(stream, uri, headers, body, place).await
    } else {
        exchange(tcp, uri, headers, body, place).await
    }
}

async fn exchange<S>(
    io: S,
    uri: &Uri,
    headers: &[(HeaderName, String)],
    body: Vec<u8>,
    place: &str,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("{place}: {e}"))?;
    let conn = tokio::spawn(conn);
    let host_header = match uri.port_u16() {
        Some(p) => format!("{}:{p}", uri.host().unwrap_or_default()),
        None => uri.host().unwrap_or_default().to_string(),
    };
    let mut request = Request::builder()
        .method("POST")
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(header::HOST, host_header)
        .header(
            header::USER_AGENT,
            concat!("twinbay/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::CONNECTION, "close");
    for (name, value) in headers {
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("{place}: header {name}: not sendable"))?;
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| format!("{place}: the request could not be built"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{place}: {e}"));
    let result = match response {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let status = r.status();
            let text = Limited::new(r.into_body(), 512)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            let text: String = text
                .trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            Err(format!("{place} answered {status}: {text}"))
        }
        Err(e) => Err(e),
    };
    conn.abort();
    result
}
