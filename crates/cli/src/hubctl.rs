//! `twinbay ctl hub status|version|logs|update|restart`: the hub's own
//! lifecycle (admin; docs/updates.md, "The hub's update"). Without
//! `--token` a 10-minute admin token is minted from `--data-dir`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::release::OptionalTokenRemote;

#[derive(Debug, Args)]
pub struct HubCtlArgs {
    #[command(subcommand)]
    pub command: HubCtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum HubCtlCommand {
    /// The hub's process: version, pid, install kind, whether it can update itself.
    Status {
        #[command(flatten)]
        remote: OptionalTokenRemote,
    },
    /// The hub's version.
    Version {
        #[command(flatten)]
        remote: OptionalTokenRemote,
    },
    /// The hub's recent log lines.
    Logs {
        #[command(flatten)]
        remote: OptionalTokenRemote,
        #[arg(long, short = 'n', default_value_t = 100)]
        lines: u32,
    },
    /// Update the hub to a release published on it; waits for the outcome
    /// (exit non-zero when the new binary was rolled back).
    Update {
        #[command(flatten)]
        remote: OptionalTokenRemote,
        version: String,
        /// Return once the update started.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for the hub to come back.
        #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Restart the hub (same process, same arguments); waits until it serves again.
    Restart {
        #[command(flatten)]
        remote: OptionalTokenRemote,
        #[arg(long)]
        no_wait: bool,
        #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

pub async fn run(data_dir: &Path, args: HubCtlArgs) -> Result<String> {
    match args.command {
        HubCtlCommand::Status { remote } => {
            let client = remote.client_as(data_dir, "ctl hub").await?;
            Ok(serde_json::to_string_pretty(
                &client.get("/api/v1/hub").await?,
            )?)
        }
        HubCtlCommand::Version { remote } => {
            let client = remote.client_as(data_dir, "ctl hub").await?;
            let s = client.get("/api/v1/hub").await?;
            Ok(s["version"].as_str().unwrap_or_default().to_string())
        }
        HubCtlCommand::Logs { remote, lines } => {
            let client = remote.client_as(data_dir, "ctl hub").await?;
            let logs = client
                .get(&format!("/api/v1/hub/logs?lines={lines}"))
                .await?;
            let lines: Vec<&str> = logs["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            Ok(lines.join("\n"))
        }
        HubCtlCommand::Update {
            remote,
            version,
            no_wait,
            timeout,
        } => {
            let client = remote.client_as(data_dir, "ctl hub").await?;
            let before = client.get("/api/v1/hub").await?;
            let started = client
                .post("/api/v1/hub/update", &json!({"version": version}))
                .await?;
            let from = started["from_version"].as_str().unwrap_or("?");
            if no_wait {
                return Ok(format!(
                    "updating the hub from {from} to {version}: the new binary is on trial"
                ));
            }
            back(&client, &before, timeout).await?;
            let audit = client
                .get("/api/v1/audit?action=hub.update&limit=1")
                .await?;
            let last = audit["entries"]
                .as_array()
                .or(audit.as_array())
                .and_then(|a| a.first())
                .cloned()
                .unwrap_or(Value::Null);
            let detail = last["detail"].as_str().unwrap_or_default();
            if last["outcome"] == "ok" && last["actor_kind"] == "hub" {
                Ok(format!("the hub runs {version}: {detail}"))
            } else {
                bail!("the hub's update to {version} failed: {detail}")
            }
        }
        HubCtlCommand::Restart {
            remote,
            no_wait,
            timeout,
        } => {
            let client = remote.client_as(data_dir, "ctl hub").await?;
            let before = client.get("/api/v1/hub").await?;
            client.post("/api/v1/hub/restart", &json!({})).await?;
            if no_wait {
                return Ok("the hub is restarting".into());
            }
            let now = back(&client, &before, timeout).await?;
            Ok(format!(
                "the hub restarted (pid {}, version {})",
                now["pid"],
                now["version"].as_str().unwrap_or_default()
            ))
        }
    }
}

/// Waits until the hub answers again as a new start that is not on trial.
async fn back(client: &crate::remote::Remote, before: &Value, timeout: Duration) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Ok(now) = client.get("/api/v1/hub").await
            && now["started_ms"] != before["started_ms"]
            && now["trial"] == false
        {
            return Ok(now);
        }
        if Instant::now() > deadline {
            bail!(
                "the hub did not come back within {}",
                humantime::format_duration(timeout)
            );
        }
    }
}
