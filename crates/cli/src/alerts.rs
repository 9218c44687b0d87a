//! `twinbay ctl alerts …`: the alert list, acknowledgements, silences,
//! channels and rules, through a running hub's API.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use crate::args::RemoteArgs;

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(subcommand)]
    pub command: AlertsCommand,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Pending and firing alerts (`--all`: the newest of any state).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge a firing alert: not sent again until it resolves.
    Ack {
        id: i64,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Silence matching alerts for a while (evaluated, listed, not sent).
    Silence {
        /// Only this rule's alerts.
        #[arg(long)]
        rule: Option<i64>,
        /// Only this host's (node id): a maintenance window.
        #[arg(long)]
        node: Option<String>,
        /// Only hosts with this label (`key=value`; repeat for several).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// How long (`30m`, `2h`, up to 90 days).
        #[arg(long)]
        duration: String,
        /// Why.
        #[arg(long)]
        comment: String,
    },
    /// The silences; `--expire ID` ends one now.
    Silences {
        #[arg(long)]
        expire: Option<i64>,
    },
    /// Channels: list them, `--add NAME URL`, `--test ID`, `--remove ID`.
    Channels {
        /// Add a channel: its name and URL (https://…, ntfy://…, smtp://…).
        #[arg(long, num_args = 2, value_names = ["NAME", "URL"])]
        add: Option<Vec<String>>,
        /// With --add: the kind, when the URL's scheme does not say it.
        #[arg(long)]
        kind: Option<String>,
        /// Send a test message.
        #[arg(long)]
        test: Option<i64>,
        #[arg(long)]
        remove: Option<i64>,
    },
    /// Rules: list them, `--enable ID`, `--disable ID`.
    Rules {
        #[arg(long)]
        enable: Option<i64>,
        #[arg(long)]
        disable: Option<i64>,
    },
}

pub async fn run(data_dir: &Path, args: AlertsArgs) -> Result<String> {
    let client = crate::commands::remote_client(data_dir, &args.remote).await?;
    Ok(match args.command {
        AlertsCommand::List { all } => {
            let rules = client.get("/api/v1/alerts/rules").await?;
            let path = match all {
                true => "/api/v1/alerts?show=all",
                false => "/api/v1/alerts",
            };
            alert_table(&client.get(path).await?, &rules)
        }
        AlertsCommand::Ack { id, comment } => {
            let a = client
                .call(
                    Method::POST,
                    &format!("/api/v1/alerts/{id}/ack"),
                    &json!({"comment": comment}),
                )
                .await?;
            format!("acknowledged alert {id}: {}", text(&a["summary"]))
        }
        AlertsCommand::Silence {
            rule,
            node,
            labels,
            duration,
            comment,
        } => {
            let mut map = serde_json::Map::new();
            for l in labels {
                let Some((k, v)) = l.split_once('=') else {
                    bail!("--label {l:?}: key=value");
                };
                map.insert(k.to_string(), v.into());
            }
            let node = match node {
                Some(n) => Some(client.resolve_node(&n).await?),
                None => None,
            };
            let body = json!({"rule_id": rule, "node": node, "labels": map,
                "duration": duration, "comment": comment});
            let c = client
                .call(Method::POST, "/api/v1/alerts/silences", &body)
                .await?;
            format!("silence {} for {duration}", c["id"])
        }
        AlertsCommand::Silences { expire: Some(id) } => {
            client
                .call(
                    Method::DELETE,
                    &format!("/api/v1/alerts/silences/{id}"),
                    &json!({}),
                )
                .await?;
            format!("silence {id} ended")
        }
        AlertsCommand::Silences { expire: None } => {
            silence_table(&client.get("/api/v1/alerts/silences").await?)
        }
        AlertsCommand::Channels {
            add: Some(add),
            kind,
            ..
        } => {
            let mut body = json!({"name": add[0], "url": add[1]});
            if let Some(k) = kind {
                body["kind"] = k.into();
            }
            let c = client
                .call(Method::POST, "/api/v1/alerts/channels", &body)
                .await?;
            format!("channel {}", c["id"])
        }
        AlertsCommand::Channels { test: Some(id), .. } => {
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/alerts/channels/{id}/test"),
                    &json!({}),
                )
                .await?;
            format!("channel {id}: the test message was taken")
        }
        AlertsCommand::Channels {
            remove: Some(id), ..
        } => {
            client
                .call(
                    Method::DELETE,
                    &format!("/api/v1/alerts/channels/{id}"),
                    &json!({}),
                )
                .await?;
            format!("channel {id} removed")
        }
        AlertsCommand::Channels { .. } => {
            channel_table(&client.get("/api/v1/alerts/channels").await?)
        }
        AlertsCommand::Rules {
            enable, disable, ..
        } if enable.is_some() || disable.is_some() => {
            let (id, on) = match (enable, disable) {
                (Some(id), None) => (id, true),
                (None, Some(id)) => (id, false),
                _ => bail!("--enable or --disable, not both"),
            };
            client
                .call(
                    Method::PATCH,
                    &format!("/api/v1/alerts/rules/{id}"),
                    &json!({"enabled": on}),
                )
                .await?;
            format!("rule {id} {}", if on { "enabled" } else { "disabled" })
        }
        AlertsCommand::Rules { .. } => rule_table(&client.get("/api/v1/alerts/rules").await?),
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

/// `2026-12-03 04:05:06Z` for a time in ms.
fn when(v: &Value) -> String {
    match v.as_i64().and_then(|ms| u64::try_from(ms).ok()) {
        Some(ms) => {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            let s = humantime::format_rfc3339_seconds(t).to_string();
            s.replace('T', " ")
        }
        None => "-".into(),
    }
}

/// Left-aligned columns, the last one as it is.
fn table(heads: &[&str], rows: Vec<Vec<String>>) -> String {
    let n = heads.len();
    let w: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([heads[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(w[i] + 1 - c.chars().count().min(w[i])));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(heads.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r));
    }
    out
}

fn alert_table(alerts: &Value, rules: &Value) -> String {
    let rule_name = |id: &Value| {
        rules
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| &r["id"] == id)
            .map(|r| text(&r["name"]))
            .unwrap_or_else(|| text(id))
    };
    let rows = alerts
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let state = match a["acked_ms"].is_i64() && a["state"] != "resolved" {
                true => format!("{} (acked)", text(&a["state"])),
                false => text(&a["state"]),
            };
            vec![
                text(&a["id"]),
                state,
                rule_name(&a["rule_id"]),
                text(&a["node_id"]),
                when(&a["started_ms"]),
                text(&a["summary"]),
            ]
        })
        .collect();
    table(&["ID", "STATE", "RULE", "NODE", "SINCE", "SUMMARY"], rows)
}

fn silence_table(silences: &Value) -> String {
    let rows = silences
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let mut matchers = Vec::new();
            if !s["rule_id"].is_null() {
                matchers.push(format!("rule={}", s["rule_id"]));
            }
            if let Some(n) = s["node_id"].as_str() {
                matchers.push(format!("node={n}"));
            }
            for (k, v) in s["labels"].as_object().into_iter().flatten() {
                matchers.push(format!("{k}={}", text(v)));
            }
            vec![
                text(&s["id"]),
                matchers.join(","),
                when(&s["starts_ms"]),
                when(&s["ends_ms"]),
                text(&s["created_by"]),
                text(&s["comment"]),
            ]
        })
        .collect();
    table(&["ID", "MATCHES", "FROM", "UNTIL", "BY", "COMMENT"], rows)
}

fn channel_table(channels: &Value) -> String {
    let rows = channels
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            vec![
                text(&c["id"]),
                text(&c["name"]),
                text(&c["kind"]),
                when(&c["last_sent_ms"]),
                text(&c["last_error"]),
                text(&c["url"]),
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "KIND", "LAST SENT", "LAST ERROR", "URL"],
        rows,
    )
}

fn rule_table(rules: &Value) -> String {
    let rows = rules
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                text(&r["id"]),
                text(&r["name"]),
                text(&r["kind"]),
                if r["enabled"] == true { "on" } else { "off" }.into(),
                format!("{}s", r["for_ms"].as_i64().unwrap_or(0) / 1000),
                r["channels"]
                    .as_array()
                    .map(|c| c.iter().map(text).collect::<Vec<_>>().join(","))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(&["ID", "NAME", "KIND", "ON", "FOR", "CHANNELS"], rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_line_up() {
        let alerts = json!([{"id": 3, "state": "firing", "rule_id": 1, "node_id": "n1",
            "started_ms": 0, "summary": "host nas is not connected", "acked_ms": 5}]);
        let rules = json!([{"id": 1, "name": "host down"}]);
        assert_eq!(
            alert_table(&alerts, &rules),
            "ID STATE          RULE      NODE SINCE                SUMMARY\n\
             3  firing (acked) host down n1   1970-01-01 00:00:00Z host nas is not connected"
        );
    }
}
