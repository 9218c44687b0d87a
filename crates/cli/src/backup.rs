//! `twinbay ctl backup run|list|download|restore|verify|prune`: backups through a
//! running hub's API. `run` is a command (`op: backup`) whose output streams
//! here; `download` streams the artifact into a file (through a temporary
//! file, renamed once complete) and checks its SHA-256 on the way.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::args::{BackupArgs, BackupCommand};

pub async fn run(data_dir: &Path, args: BackupArgs) -> Result<String> {
    match args.command {
        BackupCommand::Run {
            remote,
            node,
            job,
            dir,
            volume,
            exclude,
            action,
            args,
            keep_last,
            keep_hourly,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
        } => {
            let source = match (dir, volume, action) {
                (Some(path), None, None) => {
                    json!({"kind": "dir", "path": path, "exclude": exclude})
                }
                (None, Some(name), None) => {
                    json!({"kind": "volume", "name": name, "exclude": exclude})
                }
                (None, None, Some(name)) if exclude.is_empty() => {
                    json!({"kind": "action", "name": name, "args": key_values(&args)?})
                }
                (None, None, Some(_)) => bail!("--exclude goes with --dir or --volume"),
                _ => bail!("give one of --dir PATH, --volume NAME or --action NAME"),
            };
            let mut op = json!({"op": "backup", "job": job, "source": source});
            let keep = json!({
                "last": keep_last, "hourly": keep_hourly, "daily": keep_daily,
                "weekly": keep_weekly, "monthly": keep_monthly, "yearly": keep_yearly,
            });
            if keep.as_object().is_some_and(|k| k.values().any(|v| v != 0)) {
                op["keep"] = keep;
            }
            let client = crate::commands::remote_client(data_dir, &remote).await?;
            let wait = u32::try_from(remote.wait.as_secs()).unwrap_or(u32::MAX);
            let code = client.run(&node, op, wait).await?;
            std::process::exit(i32::from(code));
        }
        BackupCommand::List { remote, node, job } => {
            let client = crate::commands::remote_client(data_dir, &remote).await?;
            let mut query = Vec::new();
            if let Some(node) = node {
                let node = client.resolve_node(&node).await?;
                query.push(format!("node={}", crate::files::encode(&node)));
            }
            if let Some(job) = job {
                query.push(format!("job={}", crate::files::encode(&job)));
            }
            let path = if query.is_empty() {
                "/api/v1/backups".to_string()
            } else {
                format!("/api/v1/backups?{}", query.join("&"))
            };
            Ok(list(&client.get(&path).await?))
        }
        BackupCommand::Download { remote, id, output } => {
            let client = crate::commands::remote_client(data_dir, &remote).await?;
            let path = format!("/api/v1/backups/{}/download", crate::files::encode(&id));
            let response = client.send(Method::GET, &path, None).await?;
            let status = response.status();
            if !status.is_success() {
                let bytes = response.into_body().collect().await?.to_bytes();
                let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                bail!("{}", crate::remote::api_error(status, &value));
            }
            let etag = response
                .headers()
                .get(hyper::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim_matches('"').to_string());
            let total = response
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let output = match output {
                Some(o) => o,
                None => std::path::PathBuf::from(
                    file_name(&response).unwrap_or_else(|| format!("{id}.zst")),
                ),
            };
            let tmp = output.with_extension("part");
            let mut file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let mut hasher = Sha256::new();
            let mut got = 0u64;
            let mut body = response.into_body();
            let mut progress = Progress::new(total);
            while let Some(frame) = body.frame().await {
                let frame = frame.context("reading the artifact")?;
                if let Ok(data) = frame.into_data() {
                    hasher.update(&data);
                    file.write_all(&data)
                        .with_context(|| format!("writing {}", tmp.display()))?;
                    got += data.len() as u64;
                    progress.at(got);
                }
            }
            progress.done();
            file.sync_all()?;
            drop(file);
            let sha = hex::encode(hasher.finalize());
            if total.is_some_and(|t| t != got) {
                let _ = std::fs::remove_file(&tmp);
                bail!("the download broke off after {got} bytes");
            }
            if let Some(etag) = &etag
                && *etag != sha
            {
                let _ = std::fs::remove_file(&tmp);
                bail!("the download's sha256 {sha} is not the hub's {etag}");
            }
            std::fs::rename(&tmp, &output)
                .with_context(|| format!("renaming to {}", output.display()))?;
            Ok(format!("{}: {got} bytes, sha256 {sha}", output.display()))
        }
        BackupCommand::Restore {
            remote,
            id,
            node,
            dir,
            volume,
            action,
            args,
        } => {
            let target = match (dir, volume, action) {
                (Some(path), None, None) => json!({"kind": "dir", "path": path}),
                (None, Some(name), None) => json!({"kind": "volume", "name": name}),
                (None, None, Some(name)) => {
                    json!({"kind": "action", "name": name, "args": key_values(&args)?})
                }
                _ => bail!("give one of --dir PATH, --volume NAME or --action NAME"),
            };
            let op = json!({"op": "restore", "backup_id": id, "target": target});
            let client = crate::commands::remote_client(data_dir, &remote).await?;
            let wait = u32::try_from(remote.wait.as_secs()).unwrap_or(u32::MAX);
            let code = client.run(&node, op, wait).await?;
            std::process::exit(i32::from(code));
        }
        BackupCommand::Verify { remote, id } => {
            let client = crate::commands::remote_client(data_dir, &remote).await?;
            let path = format!("/api/v1/backups/{}/verify", crate::files::encode(&id));
            let report = client.post(&path, &json!({})).await?;
            if report["ok"] == true {
                Ok(format!(
                    "{id}: ok ({} bytes, sha256 {})",
                    report["size_actual"],
                    report["sha256_actual"].as_str().unwrap_or("")
                ))
            } else {
                bail!(
                    "{id}: damaged: sha256 {} is not {} ({} of {} bytes)",
                    report["sha256_actual"].as_str().unwrap_or(""),
                    report["sha256_expected"].as_str().unwrap_or(""),
                    report["size_actual"],
                    report["size_expected"]
                )
            }
        }
        BackupCommand::Prune { remote, node, job } => {
            let client = crate::commands::remote_client(data_dir, &remote).await?;
            let node = match node {
                Some(n) => Some(client.resolve_node(&n).await?),
                None => None,
            };
            let reports = client
                .post("/api/v1/backups/prune", &json!({"node": node, "job": job}))
                .await?;
            let mut out = String::new();
            for r in reports.as_array().cloned().unwrap_or_default() {
                let removed: Vec<&str> = r["removed"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|d| d["id"].as_str()).collect())
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{} {} ({}): kept {}, removed {}\n",
                    r["node_id"].as_str().unwrap_or(""),
                    r["job"].as_str().unwrap_or(""),
                    r["rules"].as_str().unwrap_or(""),
                    r["kept"].as_array().map_or(0, |a| a.len()),
                    if removed.is_empty() {
                        "nothing".to_string()
                    } else {
                        removed.join(", ")
                    }
                ));
            }
            Ok(out.trim_end().to_string())
        }
    }
}

fn key_values(args: &[String]) -> Result<serde_json::Map<String, Value>> {
    let mut kv = serde_json::Map::new();
    for arg in args {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| anyhow!("{arg:?} is not KEY=VALUE"))?;
        kv.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(kv)
}

fn file_name(response: &hyper::Response<hyper::body::Incoming>) -> Option<String> {
    let cd = response
        .headers()
        .get(hyper::header::CONTENT_DISPOSITION)?
        .to_str()
        .ok()?;
    let name = cd.split("filename=\"").nth(1)?.split('"').next()?;
    // Only a plain name, never a path.
    (!name.is_empty() && !name.contains('/') && !name.starts_with('.')).then(|| name.to_string())
}

fn list(backups: &Value) -> String {
    let rows = backups.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no backups".into();
    }
    let mut out = format!(
        "{:<26} {:<20} {:<16} {:>12} {:<12} {:<9} {}\n",
        "ID", "NODE", "JOB", "SIZE", "SHA256", "STATUS", "KEPT BY"
    );
    for b in rows {
        out.push_str(&format!(
            "{:<26} {:<20} {:<16} {:>12} {:<12} {:<9} {}\n",
            b["id"].as_str().unwrap_or(""),
            b["node_id"].as_str().unwrap_or(""),
            b["job"].as_str().unwrap_or(""),
            b["size"].as_u64().unwrap_or(0),
            b["sha256"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(12)
                .collect::<String>(),
            b["status"].as_str().unwrap_or(""),
            b["retention"].as_str().unwrap_or(""),
        ));
    }
    out.trim_end().to_string()
}

/// A progress line on stderr when it is a terminal; nothing otherwise.
struct Progress {
    total: Option<u64>,
    shown: u64,
    on: bool,
}

impl Progress {
    fn new(total: Option<u64>) -> Progress {
        use std::io::IsTerminal;
        Progress {
            total,
            shown: 0,
            on: std::io::stderr().is_terminal(),
        }
    }

    fn at(&mut self, n: u64) {
        if !self.on || n < self.shown + (4 << 20) {
            return;
        }
        self.shown = n;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        match self.total {
            Some(t) if t > 0 => eprint!("\r{:.1}/{:.1} MiB ({}%)", mib(n), mib(t), n * 100 / t),
            _ => eprint!("\r{:.1} MiB", mib(n)),
        }
    }

    fn done(&mut self) {
        if self.on && self.shown > 0 {
            eprint!("\r\x1b[K");
        }
    }
}
