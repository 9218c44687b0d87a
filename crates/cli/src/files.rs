//! `twinbay ctl files …`: what a host watches, a file's versions and their
//! diffs, through a running hub's API.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::args::{FilesArgs, FilesCommand};

pub async fn run(data_dir: &Path, args: FilesArgs) -> Result<String> {
    match args.command {
        None => {
            let node = args.node.unwrap_or_default();
            let client = crate::commands::remote_client(data_dir, &args.remote).await?;
            let node = client.resolve_node(&node).await?;
            let files = client.get(&format!("/api/v1/nodes/{node}/files")).await?;
            Ok(list(&files))
        }
        Some(FilesCommand::History { remote, node, path }) => {
            let client = crate::commands::remote_client(data_dir, &remote).await?;
            let node = client.resolve_node(&node).await?;
            let versions = client
                .get(&format!(
                    "/api/v1/nodes/{node}/files/history?path={}",
                    encode(&path)
                ))
                .await?;
            Ok(history(&versions))
        }
        Some(FilesCommand::Diff {
            remote,
            node,
            path,
            from,
            to,
        }) => {
            let client = crate::commands::remote_client(data_dir, &remote).await?;
            let node = client.resolve_node(&node).await?;
            let mut query = format!("path={}", encode(&path));
            for (name, value) in [("from", from), ("to", to)] {
                if let Some(v) = value {
                    query.push_str(&format!("&{name}={}", encode(&v)));
                }
            }
            let diff = client
                .get(&format!("/api/v1/nodes/{node}/files/diff?{query}"))
                .await?;
            let Some(text) = diff["diff"].as_str() else {
                bail!("the hub's answer has no diff");
            };
            let colour = std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            Ok(if colour {
                colourise(text)
            } else {
                text.trim_end().to_string()
            })
        }
    }
}

/// A query-string value: everything but unreserved characters and `/` escaped.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn short(sha: &Value) -> String {
    sha.as_str()
        .map(|s| s.chars().take(12).collect())
        .unwrap_or_else(|| "-".into())
}

fn time(ms: &Value) -> String {
    ms.as_i64()
        .and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
            humantime::format_rfc3339_seconds(t).to_string()
        })
        .unwrap_or_else(|| "-".into())
}

fn list(files: &Value) -> String {
    let mut out = format!(
        "{:<12} {:<10} {:<12} {:<8} {:<20} PATH",
        "SHA256", "STATE", "KIND", "RISK", "LAST CHANGE"
    );
    for f in files.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n{:<12} {:<10} {:<12} {:<8} {:<20} {}",
            short(&f["sha256"]),
            f["state"].as_str().unwrap_or("-"),
            f["kind"].as_str().unwrap_or("-"),
            f["risk"].as_str().unwrap_or("-"),
            time(&f["last_change_ms"]),
            f["path"].as_str().unwrap_or("-"),
        ));
    }
    out
}

fn history(versions: &Value) -> String {
    let mut out = format!(
        "{:<20} {:<12} {:<10} {:<8} SUMMARY",
        "TIME", "SHA256", "CHANGE", "RISK"
    );
    for v in versions.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n{:<20} {:<12} {:<10} {:<8} {}",
            time(&v["ts_ms"]),
            short(&v["sha256"]),
            v["change"].as_str().unwrap_or("-"),
            v["risk"].as_str().unwrap_or("pending"),
            v["summary"].as_str().unwrap_or(""),
        ));
    }
    out
}

/// Red removals, green additions, cyan hunk headers.
fn colourise(diff: &str) -> String {
    diff.lines()
        .map(|l| {
            let code = match l.as_bytes().first() {
                Some(b'+') if !l.starts_with("+++") => "32",
                Some(b'-') if !l.starts_with("---") => "31",
                Some(b'@') => "36",
                _ => return l.to_string(),
            };
            format!("\x1b[{code}m{l}\x1b[0m")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_escaped_for_a_query() {
        assert_eq!(
            encode("/etc/nginx/sites enabled/a&b=c"),
            "/etc/nginx/sites%20enabled/a%26b%3Dc"
        );
        assert_eq!(encode("/é"), "/%C3%A9");
    }
}
