//! Watched-file change latency, measured end to end with the real agent.
//!
//! Saves watched files EDITS times (200 by default), rotating through the
//! ways editors save (write in place; write a temp file and rename it over;
//! `sed -i`-style replace), and for every save measures from the moment the
//! save finished to (a) the hub applying the twin's new hash (`applied_ms` of
//! the stream's diff), (b) a WebSocket client receiving that diff and (c) the
//! client receiving `file.changed`, which the hub emits once the new content
//! is stored and rated. Beside it: what a poller that rescans every 60 s
//! would give (the save waits for the next poll: uniform over 0–60 s).
//! Run: `bash bench/file-changes/run.sh`.

#[path = "../tests/e2e/harness.rs"]
mod harness;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use harness::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

const FILES: usize = 20;

fn percentiles(label: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "  {label:<40} {:>8.1} {:>8.1} {:>8.1} {:>8.1}   (n={})",
        at(0.50),
        at(0.95),
        at(0.99),
        v[v.len() - 1],
        v.len()
    );
}

/// Saves `text` to `path` the way editor number `how` does; returns when the
/// save is complete (what a user would call "saved").
fn save(path: &Path, text: &str, how: usize) {
    match how % 3 {
        // Write in place (truncate and write; most simple editors, `>`).
        0 => std::fs::write(path, text).unwrap(),
        // Write a temp file beside it, rename over (vim, IDEs, Ansible).
        1 => {
            let tmp = path.with_extension("tmp~");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        // sed -i: a temp file named like sed's, then rename.
        _ => {
            let tmp = path
                .parent()
                .unwrap()
                .join(format!("sed{:06}", std::process::id() % 1_000_000));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
    }
}

#[tokio::main]
async fn main() {
    let edits: usize = std::env::var("EDITS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("twinbay-file-changes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let watched = dir.join("etc");
    std::fs::create_dir_all(&watched).unwrap();
    let paths: Vec<_> = (0..FILES)
        .map(|i| watched.join(format!("site-{i:02}.conf")))
        .collect();
    for (i, p) in paths.iter().enumerate() {
        std::fs::write(p, format!("server {i}\nlisten 80\n")).unwrap();
    }
    let hub = Hub::start(&dir.join("hub"));
    let token = hub.token("viewer");
    let _agent = agent_with(
        Some(&hub.join()),
        &dir.join("agent"),
        &["--watch", watched.to_str().unwrap()],
    );
    let addr = hub.addr;

    // Timestamp stream messages the moment they arrive, on a task of their own.
    let mut ws = stream(addr, &token).await;
    let (ws_tx, ws_rx) = mpsc::channel::<(f64, Value)>();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let recv_ms = now_ms();
            if let Message::Text(text) = msg
                && let Ok(v) = serde_json::from_str::<Value>(text.as_str())
            {
                let _ = ws_tx.send((recv_ms, v));
            }
        }
    });
    // Every file known to the twin before the first edit.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < FILES {
        let left = deadline.saturating_duration_since(Instant::now());
        let (_, v) = ws_rx
            .recv_timeout(left)
            .expect("the watched files in the twin");
        let nodes = match v["type"].as_str() {
            Some("snapshot") => v["nodes"].as_array().cloned().unwrap_or_default(),
            Some("node") => vec![v["node"].clone()],
            _ => Vec::new(),
        };
        for n in nodes {
            if let Some(files) = n["files"].as_object() {
                seen.extend(files.keys().cloned());
            }
        }
        if v["type"] == "diff" {
            for c in v["changes"].as_array().into_iter().flatten() {
                if c["collection"] == "files" {
                    seen.insert(c["key"].as_str().unwrap_or_default().to_string());
                }
            }
        }
    }
    // Let the first looks (first_seen versions) settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while ws_rx.try_recv().is_ok() {}

    let (mut applied, mut received, mut stored) = (Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    for i in 0..edits {
        let path = &paths[i % FILES];
        let key = path.to_str().unwrap();
        let text = format!("server {}\nlisten 80\n# edit {i}\n", i % FILES);
        let sha = hex::encode(Sha256::digest(text.as_bytes()));
        save(path, &text, i / FILES);
        let saved = now_ms();
        let (mut diff, mut event) = (None, None);
        while diff.is_none() || event.is_none() {
            let (recv_ms, v) = ws_rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("edit {i} of {key} reached the stream in time"));
            match v["type"].as_str() {
                Some("diff") => {
                    let hit = v["changes"].as_array().into_iter().flatten().any(|c| {
                        c["collection"] == "files" && c["key"] == key && c["value"]["sha256"] == sha
                    });
                    if hit {
                        diff = Some((v["applied_ms"].as_f64().unwrap(), recv_ms));
                    }
                }
                Some("event") => {
                    let e = &v["event"];
                    if e["kind"] == "file.changed" && e["detail"]["sha256"] == sha {
                        event = Some(recv_ms);
                    }
                }
                _ => {}
            }
        }
        let (applied_ms, recv_ms) = diff.unwrap();
        applied.push(applied_ms - saved);
        received.push(recv_ms - saved);
        stored.push(event.unwrap() - saved);
    }
    let elapsed = started.elapsed();
    println!(
        "file-changes: {edits} saves of {FILES} watched files (in place, temp+rename, sed -i) in {:.0} s",
        elapsed.as_secs_f64()
    );
    println!("  from the save, ms                              p50      p95      p99      max");
    percentiles("(a) hub applied the new hash", applied);
    percentiles("(b) stream client received the diff", received);
    percentiles("(c) stored, rated, file.changed received", stored);
    // The baseline: a poller every 60 s finds a save after a wait uniform
    // over [0, 60 s): its percentiles are those of the wait alone (before
    // any of the pipeline above).
    let poll: Vec<f64> = (0..edits)
        .map(|i| 60_000.0 * (i as f64 + 0.5) / edits as f64)
        .collect();
    let mean = poll.iter().sum::<f64>() / poll.len() as f64;
    percentiles("baseline: a 60 s rescan poller (model)", poll);
    println!("  baseline mean {mean:.0} ms: the poller's wait alone");
    let _ = std::fs::remove_dir_all(&dir);
}
