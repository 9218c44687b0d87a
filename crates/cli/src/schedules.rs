//! `twinbay ctl schedules list|add|rm|run|runs`: schedules through a
//! running hub's API (`docs/schedules.md`).

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use crate::args::RemoteArgs;

#[derive(Debug, Args)]
pub struct SchedulesArgs {
    #[command(subcommand)]
    pub command: SchedulesCommand,
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Every schedule, with its next and last run.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Adds a schedule: `add NAME --cron "30 2 * * *" --node ID --action NAME [--arg K=V…]`.
    Add(Box<AddArgs>),
    /// Removes a schedule (its runs go with it).
    Rm {
        #[command(flatten)]
        remote: RemoteArgs,
        id: i64,
    },
    /// Runs a schedule now on each of its hosts.
    Run {
        #[command(flatten)]
        remote: RemoteArgs,
        id: i64,
    },
    /// A schedule's runs, newest first.
    Runs {
        #[command(flatten)]
        remote: RemoteArgs,
        id: i64,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    pub name: String,
    /// Five fields: minute hour day-of-month month day-of-week.
    #[arg(long)]
    pub cron: String,
    /// An IANA time zone.
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// Run on this host (node id).
    #[arg(long, conflicts_with = "group", required_unless_present = "group")]
    pub node: Option<String>,
    /// Run on every host of this group (`key=value`).
    #[arg(long)]
    pub group: Option<String>,
    /// An action from the hosts' policy.
    #[arg(long, conflicts_with = "command", required_unless_present = "command")]
    pub action: Option<String>,
    /// The action's arguments, `KEY=VALUE` (repeatable).
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    pub args: Vec<String>,
    /// Any commands-API body as JSON instead of --action.
    #[arg(long)]
    pub command: Option<String>,
    /// `forbid` (default), `allow` or `replace`.
    #[arg(long)]
    pub overlap: Option<String>,
    /// Each host starts up to this many seconds late (fixed per host).
    #[arg(long)]
    pub jitter_secs: Option<u32>,
    /// Save it disabled.
    #[arg(long)]
    pub disabled: bool,
}

pub async fn run(data_dir: &Path, args: SchedulesArgs) -> Result<String> {
    match args.command {
        SchedulesCommand::List { remote } => {
            let client = crate::commands::remote_client(data_dir, &remote).await?;
            Ok(list(&client.get("/api/v1/schedules").await?))
        }
        SchedulesCommand::Add(a) => {
            let client = crate::commands::remote_client(data_dir, &a.remote).await?;
            let body = add_body(&a)?;
            let s = client
                .json(Method::POST, "/api/v1/schedules", Some(&body))
                .await?;
            Ok(format!(
                "schedule {} added; next run {}",
                s["id"],
                when(&s["next_run_ms"])
            ))
        }
        SchedulesCommand::Rm { remote, id } => {
            let client = crate::commands::remote_client(data_dir, &remote).await?;
            client
                .json(Method::DELETE, &format!("/api/v1/schedules/{id}"), None)
                .await?;
            Ok(format!("schedule {id} removed"))
        }
        SchedulesCommand::Run { remote, id } => {
            let client = crate::commands::remote_client(data_dir, &remote).await?;
            let runs = client
                .json(Method::POST, &format!("/api/v1/schedules/{id}/run"), None)
                .await?;
            let lines: Vec<String> = runs
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let what = r["command_id"]
                        .as_str()
                        .map(|c| format!("command {c}"))
                        .or_else(|| r["reason"].as_str().map(String::from))
                        .unwrap_or_default();
                    format!(
                        "{} {} {what}",
                        r["node_id"].as_str().unwrap_or("-"),
                        r["status"].as_str().unwrap_or("-")
                    )
                })
                .collect();
            Ok(lines.join("\n"))
        }
        SchedulesCommand::Runs { remote, id, limit } => {
            let client = crate::commands::remote_client(data_dir, &remote).await?;
            Ok(runs(
                &client
                    .get(&format!("/api/v1/schedules/{id}/runs?limit={limit}"))
                    .await?,
            ))
        }
    }
}

fn add_body(a: &AddArgs) -> Result<Value> {
    let command = match (&a.action, &a.command) {
        (Some(name), None) => {
            let mut kv = serde_json::Map::new();
            for arg in &a.args {
                let (k, v) = arg
                    .split_once('=')
                    .ok_or_else(|| anyhow!("{arg:?} is not KEY=VALUE"))?;
                kv.insert(k.to_string(), Value::String(v.to_string()));
            }
            json!({"op": "action", "name": name, "args": kv})
        }
        (None, Some(text)) => {
            serde_json::from_str(text).map_err(|e| anyhow!("--command is not JSON: {e}"))?
        }
        _ => bail!("give --action NAME or --command JSON"),
    };
    let target = match (&a.node, &a.group) {
        (Some(n), None) => json!({"node": n}),
        (None, Some(g)) => json!({"group": g}),
        _ => bail!("give --node ID or --group KEY=VALUE"),
    };
    let mut body = json!({
        "name": a.name, "cron": a.cron, "timezone": a.timezone,
        "target": target, "command": command, "enabled": !a.disabled,
    });
    if let Some(o) = &a.overlap {
        body["overlap"] = json!(o);
    }
    if let Some(j) = a.jitter_secs {
        body["jitter_secs"] = json!(j);
    }
    Ok(body)
}

/// A time in milliseconds as UTC, or `-`.
fn when(ms: &Value) -> String {
    ms.as_i64()
        .and_then(|t| u64::try_from(t).ok())
        .map(|t| {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(t);
            humantime::format_rfc3339_seconds(at).to_string()
        })
        .unwrap_or_else(|| "-".into())
}

fn target(t: &Value) -> String {
    match (t["node"].as_str(), t["group"].as_str()) {
        (Some(n), _) => format!("node {n}"),
        (_, Some(g)) => format!("group {g}"),
        _ => "-".into(),
    }
}

/// One schedule a line.
fn list(schedules: &Value) -> String {
    let mut out = vec!["ID\tNAME\tCRON\tTIMEZONE\tTARGET\tSTATE\tNEXT\tLAST".to_string()];
    for s in schedules.as_array().into_iter().flatten() {
        let mut state = match (s["enabled"].as_bool(), s["schedule_error"].as_str()) {
            (_, Some(e)) => format!("error: {e}"),
            (Some(false), _) => "disabled".into(),
            _ => "enabled".into(),
        };
        if let Some(last) = s["last_outcome"].as_str() {
            state.push_str(&format!(", last {last}"));
        }
        out.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{state}\t{}\t{}",
            s["id"],
            s["name"].as_str().unwrap_or("-"),
            s["cron"].as_str().unwrap_or("-"),
            s["timezone"].as_str().unwrap_or("-"),
            target(&s["target"]),
            when(&s["next_run_ms"]),
            when(&s["last_run_ms"]),
        ));
    }
    out.join("\n")
}

/// One run a line.
fn runs(runs: &Value) -> String {
    let mut out = vec!["ID\tNODE\tSLOT\tTRIGGER\tSTATUS\tCOMMAND\tREASON".to_string()];
    for r in runs.as_array().into_iter().flatten() {
        out.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r["id"],
            r["node_id"].as_str().unwrap_or("-"),
            when(&r["slot_ms"]),
            r["trigger"].as_str().unwrap_or("-"),
            r["status"].as_str().unwrap_or("-"),
            r["command_id"].as_str().unwrap_or("-"),
            r["reason"].as_str().unwrap_or(""),
        ));
    }
    out.join("\n")
}
