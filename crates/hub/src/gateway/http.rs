//! Requests to a router on the LAN, with a bounded answer: plain HTTP for
//! UPnP, HTTPS (checked as [`super::tls`] says) for TR-064 on :49443 and
//! UniFi. One connection per request; the caller puts a deadline around it.

use std::sync::Arc;

use axum::body::Bytes;
use http::{HeaderMap, HeaderName, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

use super::GatewayError;
use super::xml::MAX_BYTES;

/// An answer: its status, headers and body text.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

/// GET (no `soap`) or a SOAP POST (`soap` = (SOAPAction, envelope)) to an
/// `http://` URL.
pub async fn request(url: &Uri, soap: Option<(&str, String)>) -> Result<Answer, GatewayError> {
    match soap {
        None => send(Method::GET, url, &[], Bytes::new(), None).await,
        Some((action, envelope)) => {
            send(
                Method::POST,
                url,
                &soap_headers(action),
                Bytes::from(envelope),
                None,
            )
            .await
        }
    }
}

/// The headers of a SOAP call of `action` (`TYPE#Action`).
pub fn soap_headers(action: &str) -> Vec<(HeaderName, String)> {
    vec![
        (header::CONTENT_TYPE, "text/xml; charset=\"utf-8\"".into()),
        (
            HeaderName::from_static("soapaction"),
            format!("\"{action}\""),
        ),
    ]
}

/// One request. `https://` URLs need `tls`; `http://` ones ignore it.
pub async fn send(
    method: Method,
    url: &Uri,
    headers: &[(HeaderName, String)],
    body: Bytes,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Answer, GatewayError> {
    let https = match url.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(GatewayError::Config(format!(
                "{url}: only http:// and https:// URLs are used"
            )));
        }
    };
    let host = url
        .host()
        .ok_or_else(|| GatewayError::Config(format!("{url}: no host")))?;
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = url.authority().map(|a| a.as_str()).unwrap_or(host);
    let path = url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = tokio::net::TcpStream::connect((bare, port))
        .await
        .map_err(|e| GatewayError::Unreachable(format!("{authority}: {e}")))?;
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, authority)
        .header(
            header::USER_AGENT,
            concat!("twinbay/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::CONNECTION, "close");
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Full::new(body))
        .map_err(|e| GatewayError::Config(format!("{url}: {e}")))?;
    if https {
        let config = tls
            .ok_or_else(|| GatewayError::Config(format!("{url}: no TLS settings")))?
            .clone();
        let name = rustls::pki_types::ServerName::try_from(bare.to_string())
            .map_err(|_| GatewayError::Config(format!("{url}: {bare:?} is no TLS server name")))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| GatewayError::Tls(format!("{authority}: {e}")))?;
        exchange(stream, request, authority).await
    } else {
        exchange(tcp, request, authority).await
    }
}

async fn exchange<S>(
    stream: S,
    request: Request<Full<Bytes>>,
    authority: &str,
) -> Result<Answer, GatewayError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| GatewayError::Http(format!("{authority}: {e}")))?;
    // The connection's task ends with this request, also when the poll's
    // deadline drops the request halfway.
    let _conn = AbortOnDrop(tokio::spawn(conn));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| GatewayError::Http(format!("{authority}: {e}")))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    match Limited::new(response.into_body(), MAX_BYTES)
        .collect()
        .await
    {
        Ok(body) => String::from_utf8(body.to_bytes().to_vec())
            .map(|body| Answer {
                status,
                headers,
                body,
            })
            .map_err(|_| GatewayError::BadXml("the answer is not UTF-8".into())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::TooLarge(MAX_BYTES))
        }
        Err(e) => Err(GatewayError::Http(format!("{authority}: {e}"))),
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `reference` resolved against `base` (control URLs are often relative).
pub fn resolve(base: &Uri, reference: &str) -> Result<Uri, GatewayError> {
    let reference = reference.trim();
    if reference.starts_with("http://") || reference.starts_with("https://") {
        return reference
            .parse()
            .map_err(|_| GatewayError::BadXml(format!("{reference:?} is not a URL")));
    }
    let authority = base
        .authority()
        .ok_or_else(|| GatewayError::Config(format!("{base}: no host")))?;
    let path = match reference.starts_with('/') {
        true => reference.to_string(),
        false => {
            let dir = base.path().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            format!("{dir}/{reference}")
        }
    };
    let scheme = base.scheme_str().unwrap_or("http");
    format!("{scheme}://{authority}{path}")
        .parse()
        .map_err(|_| GatewayError::BadXml(format!("{reference:?} is not a URL path")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_and_absolute() {
        let base: Uri = "http://10.0.0.1:5000/rootDesc.xml".parse().unwrap();
        assert_eq!(
            resolve(&base, "/ctl/IPConn").unwrap().to_string(),
            "http://10.0.0.1:5000/ctl/IPConn"
        );
        assert_eq!(
            resolve(&base, "ctl/IPConn").unwrap().to_string(),
            "http://10.0.0.1:5000/ctl/IPConn"
        );
        assert_eq!(
            resolve(&base, "http://10.0.0.2:49000/x")
                .unwrap()
                .to_string(),
            "http://10.0.0.2:49000/x"
        );
        assert!(resolve(&base, "/bad path").is_err());
    }
}
