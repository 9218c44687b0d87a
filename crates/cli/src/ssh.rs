//! `ctl host add ssh://USER@HOST[:PORT]` (a host added over SSH, its agent
//! installed by the hub, each step printed as it goes) and `ctl ssh
//! identity` (the hub's public key for `authorized_keys`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::args::RemoteArgs;

/// How to reach the hub, where `--fingerprint` means the host key's.
#[derive(Debug, Args)]
pub struct HubArgs {
    /// The hub's URL; by default the public URL of the hub in --data-dir.
    #[arg(long, env = "TWINBAY_HUB")]
    pub hub: Option<String>,
    /// The hub certificate's SHA-256 fingerprint; read from --data-dir when not given.
    #[arg(long, env = "TWINBAY_FINGERPRINT")]
    pub hub_fingerprint: Option<String>,
    /// An admin's API token.
    #[arg(long, env = "TWINBAY_TOKEN", hide_env_values = true)]
    pub token: String,
}

impl HubArgs {
    fn remote(self) -> RemoteArgs {
        RemoteArgs {
            hub: self.hub,
            fingerprint: self.hub_fingerprint,
            token: self.token,
            wait: Duration::ZERO,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Adds a host over SSH: the hub connects, pins its host key, and
    /// (unless --agentless) installs and starts an agent there.
    Add(AddArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// ssh://USER@HOST[:PORT]
    pub target: String,
    /// Watch it over SSH; install nothing.
    #[arg(long)]
    pub agentless: bool,
    /// With --agentless: how often the hub reads the host (default 30s).
    #[arg(long, value_parser = humantime::parse_duration, requires = "agentless")]
    pub interval: Option<Duration>,
    /// Log in with this OpenSSH private key (unencrypted) instead of the
    /// hub's own key; it is sent to the hub once and kept there (0600).
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// The host key's fingerprint (SHA256:…) you confirmed; without it the
    /// add stops and shows the fingerprint the host presented.
    #[arg(long, value_name = "SHA256:…")]
    pub fingerprint: Option<String>,
    /// Give up waiting for the install after this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    #[command(subcommand)]
    pub command: SshCommand,
}

#[derive(Debug, Subcommand)]
pub enum SshCommand {
    /// The hub's SSH public key (for the hosts' authorized_keys) and its fingerprint.
    Identity {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// The hosts added over SSH, with their security state.
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
}

pub async fn ssh(data_dir: &Path, args: SshArgs) -> Result<String> {
    match args.command {
        SshCommand::Identity { hub } => {
            let client = crate::commands::remote_client(data_dir, &hub.remote()).await?;
            let id = client.get("/api/v1/ssh/identity").await?;
            Ok(format!(
                "{}\n# fingerprint {}",
                id["public_key"].as_str().unwrap_or_default(),
                id["fingerprint"].as_str().unwrap_or_default()
            ))
        }
        SshCommand::List { hub } => {
            let client = crate::commands::remote_client(data_dir, &hub.remote()).await?;
            let hosts = client.get("/api/v1/ssh/hosts").await?;
            let mut out = Vec::new();
            for h in hosts.as_array().into_iter().flatten() {
                let state = if let Some(s) = h["security"].as_object() {
                    format!(
                        "SECURITY: {} (pinned {}, seen {})",
                        s["state"].as_str().unwrap_or(""),
                        s["pinned"].as_str().unwrap_or(""),
                        s["seen"].as_str().unwrap_or("")
                    )
                } else if h["agentless"] == true {
                    "agentless".into()
                } else {
                    h["install"]["state"].as_str().unwrap_or("").to_string()
                };
                out.push(format!(
                    "{}  {}  {}  {}",
                    h["id"].as_str().unwrap_or(""),
                    h["target"].as_str().unwrap_or(""),
                    h["node_id"].as_str().unwrap_or("-"),
                    state
                ));
            }
            Ok(out.join("\n"))
        }
    }
}

pub async fn add(data_dir: &Path, args: AddArgs) -> Result<String> {
    let private_key = match &args.ssh_key {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--ssh-key {}", path.display()))?,
        ),
        None => None,
    };
    let client = crate::commands::remote_client(data_dir, &args.hub.remote()).await?;
    let mut body = json!({"target": args.target, "agentless": args.agentless});
    if let Some(every) = args.interval {
        body["interval_secs"] = json!(every.as_secs());
    }
    if let Some(fp) = &args.fingerprint {
        body["fingerprint"] = json!(fp);
    }
    if let Some(pem) = private_key {
        body["private_key"] = json!(pem);
    }
    let host = client.post("/api/v1/ssh/hosts", &body).await?;
    let id = host["id"].as_str().unwrap_or_default().to_string();
    println!(
        "{} is {id}; host key {} pinned",
        host["target"].as_str().unwrap_or_default(),
        host["fingerprint"].as_str().unwrap_or_default()
    );
    if host["agentless"] == true {
        return Ok(format!("{id}: agentless, watched over SSH"));
    }
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut shown: Vec<(String, String)> = Vec::new();
    let mut host = host;
    loop {
        print_new_steps(&host, &mut shown);
        match host["install"]["state"].as_str() {
            Some("done") => {
                return Ok(format!(
                    "{id}: agent installed, enrolled as node {}",
                    host["node_id"].as_str().unwrap_or("?")
                ));
            }
            Some("failed") => bail!(
                "{}; undone on the host: {}",
                host["install"]["error"]
                    .as_str()
                    .unwrap_or("the install failed"),
                host["install"]["undo"].as_str().unwrap_or("nothing")
            ),
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the install still runs after {:?}; follow it with GET /api/v1/ssh/hosts/{id}",
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        host = client.get(&format!("/api/v1/ssh/hosts/{id}")).await?;
    }
}

/// Prints each step's state the first time it is seen.
fn print_new_steps(host: &Value, shown: &mut Vec<(String, String)>) {
    for step in host["install"]["steps"].as_array().into_iter().flatten() {
        let name = step["name"].as_str().unwrap_or("").to_string();
        let line = format!(
            "{}: {}",
            step["state"].as_str().unwrap_or(""),
            step["detail"].as_str().unwrap_or("")
        );
        if !shown.iter().any(|(n, l)| *n == name && *l == line) {
            println!("[{name}] {line}");
            shown.push((name, line));
        }
    }
}
