//! A minimal HTTP/1.1 GET over TCP for the proxies' admin APIs: one
//! connection per request, a deadline for the whole exchange and a cap on
//! the body (hyper, which the agent already builds for the Engine API).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// The most one API answer may weigh.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// The most one request may take, connect to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// A response: status, headers, body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// `GET url` (plain `http://` only). Errors are short, readable reasons.
pub async fn get(url: &str) -> Result<Response, String> {
    match tokio::time::timeout(TIMEOUT, get_inner(url)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}s", TIMEOUT.as_secs())),
    }
}

async fn get_inner(url: &str) -> Result<Response, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// admin APIs are read".into());
    }
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    let stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let request = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
    .await;
    conn.abort();
    result
}

/// `GET url` and parse a 200 answer as JSON.
pub async fn get_json(url: &str) -> Result<(serde_json::Value, http::HeaderMap), String> {
    let r = get(url).await?;
    if r.status != 200 {
        return Err(format!("answered {}", r.status));
    }
    let value = serde_json::from_slice(&r.body).map_err(|e| format!("not JSON: {e}"))?;
    Ok((value, r.headers))
}
