//! `twinbay ctl host NODE [--at T] [--json]` and `twinbay ctl changes
//! [--since 2h | --from T [--to T]] [--host NODE] [--json]`: a host now or
//! as it was, and what changed between two moments, through a running
//! hub's API (`GET /api/v1/nodes/{id}[?at=]`, `GET /api/v1/changes`).
//!
//! Moments are what `twinbay_hub::journal::parse_moment` reads: RFC 3339,
//! `YYYY-MM-DD HH:MM[:SS]` in **UTC** (an offset only in RFC 3339), unix
//! ms, or a span back from now (`2h`, `30m ago`). They go to the hub as
//! unix ms, so the hub and this machine agree on them whatever their zones.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use serde_json::Value;
use twinbay_hub::api::past::{FleetChanges, utc};
use twinbay_hub::journal::parse_moment;

use crate::args::RemoteArgs;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct HostArgs {
    #[command(subcommand)]
    pub command: Option<crate::ssh::HostCommand>,
    #[command(flatten)]
    pub remote: Option<RemoteArgs>,
    /// Node id or hostname.
    #[arg(required = true)]
    pub node: Option<String>,
    /// As it was at this moment: RFC 3339, 'YYYY-MM-DD HH:MM[:SS]' (UTC),
    /// unix ms, or a span back ('2h', '30m ago').
    #[arg(long)]
    pub at: Option<String>,
    /// The hub's JSON answer, as it is.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ChangesArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// From this long ago up to now ('2h', '30m', '1d'); the default is 1h.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub since: Option<String>,
    /// From this moment: RFC 3339, 'YYYY-MM-DD HH:MM[:SS]' (UTC), unix ms, or '2h ago'.
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this moment (default now); at most 7 days after --from.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Only this host (node id or hostname).
    #[arg(long)]
    pub host: Option<String>,
    /// The hub's JSON answer, as it is.
    #[arg(long)]
    pub json: bool,
}

fn now_ms() -> i64 {
    twinbay_hub::store::now_ms()
}

/// A moment given on the command line, as unix ms.
fn moment(flag: &str, s: &str) -> Result<i64> {
    parse_moment(s, now_ms()).map_err(|e| anyhow!("--{flag}: {e}"))
}

pub async fn host(data_dir: &Path, args: HostArgs) -> Result<String> {
    if let Some(crate::ssh::HostCommand::Add(add)) = args.command {
        return crate::ssh::add(data_dir, add).await;
    }
    let Some(node) = args.node else {
        anyhow::bail!("give a node id or hostname, or `add ssh://USER@HOST`");
    };
    let Some(remote) = args.remote else {
        anyhow::bail!("give an API token: --token or TWINBAY_TOKEN");
    };
    let at = args.at.as_deref().map(|s| moment("at", s)).transpose()?;
    let client = crate::commands::remote_client(data_dir, &remote).await?;
    let id = client.resolve_node(&node).await?;
    let path = match at {
        Some(at) => format!("/api/v1/nodes/{id}?at={at}"),
        None => format!("/api/v1/nodes/{id}"),
    };
    let twin = client.get(&path).await?;
    Ok(match args.json {
        true => serde_json::to_string_pretty(&twin)?,
        false => host_text(&twin),
    })
}

pub async fn changes(data_dir: &Path, args: ChangesArgs) -> Result<String> {
    let (from, to) = match (&args.since, &args.from) {
        (_, Some(from)) => (
            moment("from", from)?,
            args.to.as_deref().map(|t| moment("to", t)).transpose()?,
        ),
        (since, None) => {
            let since = since.as_deref().unwrap_or("1h");
            let back = humantime::parse_duration(since.trim())
                .map_err(|e| anyhow!("--since {since:?}: {e} (give a span: 2h, 30m, 1d)"))?;
            (
                now_ms() - i64::try_from(back.as_millis()).unwrap_or(i64::MAX),
                None,
            )
        }
    };
    let client = crate::commands::remote_client(data_dir, &args.remote).await?;
    let mut path = format!("/api/v1/changes?from={}", from.max(0));
    if let Some(to) = to {
        path.push_str(&format!("&to={to}"));
    }
    if let Some(host) = &args.host {
        path.push_str(&format!("&node={}", client.resolve_node(host).await?));
    }
    let answer = client.get(&path).await?;
    if args.json {
        return Ok(serde_json::to_string_pretty(&answer)?);
    }
    let list: FleetChanges =
        serde_json::from_value(answer).context("the hub's change list is not as expected")?;
    Ok(list.text().trim_end().to_string())
}

/// A host's twin (now or then) as text: who and when, then containers,
/// units that are not plainly active, ports, watched files and routes.
pub fn host_text(t: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut out = format!("{} ({})", s(&t["hostname"]), s(&t["id"]));
    match t["at"].as_i64() {
        Some(at) => out.push_str(&format!(
            " as it was at {} UTC (recorded {} UTC)",
            utc(at),
            t["recorded_at"].as_i64().map(utc).unwrap_or_default()
        )),
        None => out.push_str(&format!(" now, {} UTC", utc(now_ms()))),
    }
    let host = &t["host"];
    out.push_str(&format!(
        "\n{}, {} {} {}, agent {}",
        if t["connected"] == true {
            "connected"
        } else {
            "disconnected"
        },
        s(&host["os"]),
        s(&host["kernel"]),
        s(&host["arch"]),
        s(&t["agent_version"]),
    ));
    if let Some(labels) = host["labels"].as_object().filter(|l| !l.is_empty()) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", s(v)))
            .collect();
        out.push_str(&format!("\nlabels: {}", labels.join(" ")));
    }
    let items = |key: &str| -> Vec<&Value> {
        t[key]
            .as_object()
            .map(|m| m.values().collect())
            .unwrap_or_default()
    };
    let mut containers: Vec<[String; 3]> = items("containers")
        .iter()
        .map(|c| {
            let mut state = s(&c["state"]);
            if let Some(code) = c["exit_code"].as_i64().filter(|_| state == "exited") {
                state.push_str(&format!(" ({code})"));
            }
            [s(&c["name"]), s(&c["image"]), state]
        })
        .collect();
    containers.sort();
    section(
        &mut out,
        "CONTAINERS",
        ["NAME", "IMAGE", "STATE"],
        containers,
    );
    let all_units = items("units");
    let mut units: Vec<[String; 3]> = all_units
        .iter()
        .filter(|u| u["active_state"] != "active" || u["sub_state"] != "running")
        .map(|u| {
            [
                s(&u["name"]),
                format!("{}/{}", s(&u["active_state"]), s(&u["sub_state"])),
                s(&u["description"]),
            ]
        })
        .collect();
    units.sort();
    let running = all_units.len() - units.len();
    section(
        &mut out,
        &format!("UNITS ({running} active and running not shown)"),
        ["NAME", "STATE", "DESCRIPTION"],
        units,
    );
    let mut ports: Vec<[String; 3]> = items("ports")
        .iter()
        .map(|p| {
            [
                s(&p["protocol"]),
                format!("{}:{}", s(&p["address"]), p["port"]),
                s(&p["process"]),
            ]
        })
        .collect();
    ports.sort();
    section(&mut out, "PORTS", ["PROTO", "ADDRESS", "PROCESS"], ports);
    let mut files: Vec<[String; 3]> = items("files")
        .iter()
        .map(|f| {
            let sha = s(&f["sha256"]);
            [
                s(&f["path"]),
                s(&f["state"]),
                sha.chars().take(12).collect(),
            ]
        })
        .collect();
    files.sort();
    section(&mut out, "FILES", ["PATH", "STATE", "SHA256"], files);
    let mut routes: Vec<[String; 3]> = items("routes")
        .iter()
        .map(|r| {
            [
                format!("{}{}", s(&r["host"]), s(&r["path"])),
                s(&r["upstream"]),
                s(&r["instance"]),
            ]
        })
        .collect();
    routes.sort();
    section(&mut out, "ROUTES", ["ROUTE", "UPSTREAM", "PROXY"], routes);
    out
}

/// A titled table, columns padded; `(none)` when empty.
fn section(out: &mut String, title: &str, heads: [&str; 3], rows: Vec<[String; 3]>) {
    out.push_str(&format!("\n\n{title}"));
    if rows.is_empty() {
        out.push_str("\n(none)");
        return;
    }
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([heads[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (width(0), width(1));
    let line = |a: &str, b: &str, c: &str| {
        format!(
            "\n{a}{}  {b}{}  {c}",
            " ".repeat(w0 - a.chars().count()),
            " ".repeat(w1 - b.chars().count())
        )
        .trim_end()
        .to_string()
    };
    out.push_str(&line(heads[0], heads[1], heads[2]));
    for r in &rows {
        out.push_str(&line(&r[0], &r[1], &r[2]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_past_host_reads_as_tables_with_its_moment() {
        let t = json!({
            "id": "n_1", "hostname": "web-1", "connected": true, "agent_version": "0.1.0",
            "at": 1_764_731_520_000_i64, "recorded_at": 1_764_731_519_000_i64,
            "host": {"os": "Debian 12", "kernel": "6.1", "arch": "x86_64", "labels": {"env": "prod"}},
            "containers": {"c1": {"name": "web", "image": "nginx:1.25", "state": "exited", "exit_code": 7},
                           "c2": {"name": "db", "image": "postgres:16", "state": "running"}},
            "units": {"a": {"name": "a.service", "active_state": "active", "sub_state": "running"},
                      "b": {"name": "backup.service", "active_state": "failed", "sub_state": "failed", "description": "Backup"}},
            "ports": {"p": {"protocol": "tcp", "address": "0.0.0.0", "port": 8443, "process": "nginx"}},
            "files": {}, "routes": {}
        });
        let text = host_text(&t);
        assert_eq!(
            text,
            "web-1 (n_1) as it was at 2025-12-03 03:12:00 UTC (recorded 2025-12-03 03:11:59 UTC)\n\
             connected, Debian 12 6.1 x86_64, agent 0.1.0\n\
             labels: env=prod\n\
             \n\
             CONTAINERS\n\
             NAME  IMAGE        STATE\n\
             db    postgres:16  running\n\
             web   nginx:1.25   exited (7)\n\
             \n\
             UNITS (1 active and running not shown)\n\
             NAME            STATE          DESCRIPTION\n\
             backup.service  failed/failed  Backup\n\
             \n\
             PORTS\n\
             PROTO  ADDRESS       PROCESS\n\
             tcp    0.0.0.0:8443  nginx\n\
             \n\
             FILES\n\
             (none)\n\
             \n\
             ROUTES\n\
             (none)"
        );
    }
}
