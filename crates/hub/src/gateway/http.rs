//! Plain-HTTP requests to a router on the LAN (UPnP speaks HTTP/1.1 without
//! TLS), with a bounded answer. One connection per request; the caller puts a
//! deadline around it.

use axum::body::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

use super::GatewayError;
use super::xml::MAX_BYTES;

/// An answer: its status and body text.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// GET (no `soap`) or a SOAP POST (`soap` = (SOAPAction, envelope)) to `url`.
pub async fn request(url: &Uri, soap: Option<(&str, String)>) -> Result<Answer, GatewayError> {
    if url.scheme_str() != Some("http") {
        return Err(GatewayError::Config(format!(
            "{url}: only http:// URLs are used"
        )));
    }
    let host = url
        .host()
        .ok_or_else(|| GatewayError::Config(format!("{url}: no host")))?;
    let port = url.port_u16().unwrap_or(80);
    let authority = url.authority().map(|a| a.as_str()).unwrap_or(host);
    let path = url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = tokio::net::TcpStream::connect((bare, port))
        .await
        .map_err(|e| GatewayError::Unreachable(format!("{authority}: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| GatewayError::Http(format!("{authority}: {e}")))?;
    // The connection's task ends with this request, also when the poll's
    // deadline drops the request halfway.
    let _conn = AbortOnDrop(tokio::spawn(conn));
    let builder = Request::builder()
        .uri(path)
        .header(header::HOST, authority)
        .header(
            header::USER_AGENT,
            concat!("twinbay/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::CONNECTION, "close");
    let request = match soap {
        None => builder.method("GET").body(Full::new(Bytes::new())),
        Some((action, envelope)) => builder
            .method("POST")
            .header(header::CONTENT_TYPE, "text/xml; charset=\"utf-8\"")
            .header("SOAPAction", format!("\"{action}\""))
            .body(Full::new(Bytes::from(envelope))),
    }
    .map_err(|e| GatewayError::Config(format!("{url}: {e}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| GatewayError::Http(format!("{authority}: {e}")));
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            match Limited::new(response.into_body(), MAX_BYTES)
                .collect()
                .await
            {
                Ok(body) => String::from_utf8(body.to_bytes().to_vec())
                    .map(|body| Answer { status, body })
                    .map_err(|_| GatewayError::BadXml("the answer is not UTF-8".into())),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    Err(GatewayError::TooLarge(MAX_BYTES))
                }
                Err(e) => Err(GatewayError::Http(format!("{authority}: {e}"))),
            }
        }
        Err(e) => Err(e),
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
    format!("http://{authority}{path}")
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
