//! The generic webhook channel: a JSON body shaped like Alertmanager's
//! webhook payload (so receivers written for it work), signed with
//! HMAC-SHA256 when the channel has a secret:
//! `X-Twinbay-Signature: sha256=HEX(HMAC(secret, body))`.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderName, Uri, header};
use serde_json::{Value, json};
use sha2::Sha256;

use super::super::Batch;
use crate::store::ChannelRecord;

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
    // Labels common to every alert: the host only when there is one.
    let mut common = json!({
        "alertname": batch.rule.name,
        "rule_id": batch.rule.id.to_string(),
        "kind": batch.rule.kind,
    });
    if !batch.node_id.is_empty() {
        common["node_id"] = json!(batch.node_id);
        common["host"] = json!(batch.host_of(&batch.node_id));
    }
    let alerts: Vec<Value> = batch
        .alerts
        .iter()
        .map(|a| {
            let mut labels = common.clone();
            labels["node_id"] = json!(a.node_id);
            labels["host"] = json!(batch.host_of(&a.node_id));
            labels["subject"] = json!(a.subject);
            json!({
                "status": if a.state == "firing" { "firing" } else { "resolved" },
                "labels": labels,
                "annotations": {
                    "summary": a.summary,
                    "description": super::line(&batch.rule.kind, batch.host_of(&a.node_id), a),
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

/// The test message, in the same shape.
pub fn test_payload(channel: &ChannelRecord) -> Value {
    json!({
        "version": "4",
        "receiver": channel.name,
        "status": "firing",
        "groupLabels": {"alertname": "twinbay test"},
        "commonLabels": {"alertname": "twinbay test"},
        "commonAnnotations": {},
        "truncatedAlerts": 0,
        "alerts": [{"status": "firing", "labels": {"alertname": "twinbay test"},
            "annotations": {"summary": format!("a test message from twinbay: channel {} works", channel.name)},
            "startsAt": rfc3339(Some(crate::store::now_ms())), "endsAt": rfc3339(None),
            "fingerprint": "test"}],
    })
}

/// POSTs a JSON body, signed when there is a secret.
pub async fn post(url: &Uri, secret: Option<&str>, body: Vec<u8>) -> Result<(), String> {
    let mut headers = vec![(header::CONTENT_TYPE, "application/json".to_string())];
    if let Some(secret) = secret {
        headers.push((
            HeaderName::from_static("x-twinbay-signature"),
            signature(secret, &body),
        ));
    }
    super::http::post(url, &headers, body).await
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
                within_ms: None,
                window_ms: None,
                risk: None,
            },
            node_id: "n1".into(),
            hostname: "nas".into(),
            hosts: [("n1".to_string(), "nas".to_string())].into(),
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
                acked_ms: None,
                acked_by: None,
                ack_comment: None,
                silenced: false,
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
            last_sent_ms: None,
            last_error: None,
            last_error_ms: None,
            quiet_hours: None,
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
            "host nas is back after 12 min"
        );
    }

    #[test]
    fn a_channel_never_prints_its_secrets() {
        let mut c = channel();
        c.kind = "ntfy".into();
        c.url = "ntfy://:tk_hidden@ntfy.sh/t".into();
        let printed = format!("{c:?}");
        assert!(
            !printed.contains("s3cret") && !printed.contains("tk_hidden"),
            "{printed}"
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
}
