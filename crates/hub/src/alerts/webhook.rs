//! The generic webhook channel: a JSON body shaped like Alertmanager's
//! webhook payload (so receivers written for it work), signed with
//! HMAC-SHA256 when the channel has a secret:
//! `X-Twinbay-Signature: sha256=HEX(HMAC(secret, body))`.

use std::time::Duration;

use axum::body::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::Sha256;

use super::Batch;
use crate::store::ChannelRecord;

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Checks a channel's URL: http:// with a host (https:// needs a trust
/// store the hub does not carry yet: say so rather than fail later).
pub fn check_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| format!("url {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "url {url:?}: https webhooks are not supported yet; use http:// (on a LAN or through a local relay)"
            ));
        }
        _ => return Err(format!("url {url:?}: give an http:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("url {url:?}: no host"));
    }
    Ok(uri)
}

fn rfc3339(ms: Option<i64>) -> Value {
    match ms.and_then(|ms| u64::try_from(ms).ok()) {
        Some(ms) => {
            let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
            json!(humantime::format_rfc3339_millis(t).to_string())
        }
        // Alertmanager's "not yet" (an alert still firing has no end).
        None => json!("0001-01-01T00:00:00Z"),
    }
}

/// The body for a batch: Alertmanager's webhook format (version 4).
pub fn payload(channel: &ChannelRecord, batch: &Batch) -> Value {
    let firing = batch.alerts.iter().any(|a| a.state == "firing");
    let common = json!({
        "alertname": batch.rule.name,
        "rule_id": batch.rule.id.to_string(),
        "kind": batch.rule.kind,
        "node_id": batch.node_id,
        "host": batch.hostname,
    });
    let alerts: Vec<Value> = batch
        .alerts
        .iter()
        .map(|a| {
            let mut labels = common.clone();
            labels["subject"] = json!(a.subject);
            let duration = a
                .resolved_ms
                .zip(a.fired_ms.or(Some(a.started_ms)))
                .map(|(end, start)| (end - start) / 1000);
            json!({
                "status": if a.state == "firing" { "firing" } else { "resolved" },
                "labels": labels,
                "annotations": {
                    "summary": a.summary,
                    "description": match duration {
                        Some(secs) => format!("resolved after {}", humantime::format_duration(Duration::from_secs(secs.max(0) as u64))),
                        None => a.summary.clone(),
                    },
                },
                "startsAt": rfc3339(a.fired_ms.or(Some(a.started_ms))),
                "endsAt": rfc3339(a.resolved_ms),
                "fingerprint": format!("{}:{}:{}", a.rule_id, a.node_id, a.subject),
            })
        })
        .collect();
    json!({
        "version": "4",
        "receiver": channel.name,
        "status": if firing { "firing" } else { "resolved" },
        "groupKey": format!("{{}}:{{rule=\"{}\",node_id=\"{}\"}}", batch.rule.id, batch.node_id),
        "groupLabels": {"alertname": batch.rule.name, "node_id": batch.node_id},
        "commonLabels": common,
        "commonAnnotations": {},
        "truncatedAlerts": 0,
        "alerts": alerts,
    })
}

/// The signature header's value for `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs the batch; `Err` says why it did not arrive (answered non-2xx,
/// unreachable, too slow).
pub async fn send(channel: &ChannelRecord, batch: &Batch) -> Result<(), String> {
    let body = payload(channel, batch).to_string();
    post(channel, body.into_bytes()).await
}

/// POSTs a JSON body to the channel's URL.
pub async fn post(channel: &ChannelRecord, body: Vec<u8>) -> Result<(), String> {
    let uri = check_url(&channel.url)?;
    let attempt = async {
        let host = uri.host().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let tcp = tokio::net::TcpStream::connect((bare, port))
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        let conn = tokio::spawn(conn);
        let mut request = Request::builder()
            .method("POST")
            .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("twinbay/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::CONNECTION, "close");
        if let Some(secret) = &channel.secret {
            request = request.header("X-Twinbay-Signature", signature(secret, &body));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{authority}: {e}"));
        let result = match response {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                let status = r.status();
                let text = Limited::new(r.into_body(), 1024)
                    .collect()
                    .await
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                    .unwrap_or_default();
                Err(format!("{authority} answered {status}: {}", text.trim()))
            }
            Err(e) => Err(e),
        };
        conn.abort();
        result
    };
    tokio::time::timeout(TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {TIMEOUT:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AlertRecord, RuleRecord};

    fn batch(state: &str) -> Batch {
        Batch {
            rule: RuleRecord {
                id: 7,
                name: "host down".into(),
                kind: "host_down".into(),
                for_ms: 10_000,
                above: None,
                clear: None,
                group: None,
                node_id: None,
                channels: vec![1],
                enabled: true,
                created_ms: 0,
            },
            node_id: "n1".into(),
            hostname: "nas".into(),
            alerts: vec![AlertRecord {
                id: 1,
                rule_id: 7,
                node_id: "n1".into(),
                subject: String::new(),
                state: state.into(),
                summary: "host nas is not connected".into(),
                started_ms: 1_700_000_000_000,
                fired_ms: Some(1_700_000_010_000),
                resolved_ms: (state == "resolved").then_some(1_700_000_730_000),
                notified: false,
            }],
        }
    }

    fn channel() -> ChannelRecord {
        ChannelRecord {
            id: 1,
            name: "ops".into(),
            kind: "webhook".into(),
            url: "http://127.0.0.1:9/hook".into(),
            signed: true,
            secret: Some("s3cret".into()),
            created_ms: 0,
            last_ok_ms: None,
            last_error: None,
            last_error_ms: None,
        }
    }

    #[test]
    fn the_payload_names_the_rule_and_the_host() {
        let p = payload(&channel(), &batch("firing"));
        assert_eq!(p["status"], "firing");
        assert_eq!(p["commonLabels"]["alertname"], "host down");
        assert_eq!(p["commonLabels"]["host"], "nas");
        assert_eq!(p["alerts"][0]["startsAt"], "2023-11-14T22:13:30.000Z");
        let p = payload(&channel(), &batch("resolved"));
        assert_eq!(p["status"], "resolved");
        assert_eq!(
            p["alerts"][0]["annotations"]["description"],
            "resolved after 12m"
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://10.0.0.5:8080/hook").is_ok());
        assert!(
            check_url("https://example.org/hook")
                .unwrap_err()
                .contains("not supported yet")
        );
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("nonsense").is_err());
    }
}
