//! The hub's own lifecycle and update (issue 21, docs/updates.md), with
//! real processes: a hub started from a COPY of `twinbay` in a temp dir
//! (target/debug is never swapped), trusting a key made here.
//!
//! - `GET /api/v1/hub` says what it runs as; `/api/v1/hub/logs` has its log.
//! - `restart`: the same process (pid) serves again, started anew.
//! - `ctl hub update 9.9.9` to its own bytes signed as 9.9.9: the new binary
//!   passes its trial, the hub execs it (same pid) and says 9.9.9; `.prev`
//!   is kept.
//! - A signed release that exits at once (`#!/bin/sh\nexit 3`): the trial
//!   fails, the hub puts `.prev` back and runs it: it serves again with the
//!   old version. The audit has both outcomes (`hub.update`, ok and failed).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest;

use crate::harness::*;

fn sha256(path: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Waits until the hub answers as a start other than `before` that is not
/// an update's trial; returns its status.
fn back(hub: &Hub, token: &str, before: &Value, within: Duration) -> Value {
    wait_for("the hub back", within, || {
        let auth = format!("Bearer {token}");
        let (status, body) = http(
            hub.addr,
            "GET",
            "/api/v1/hub",
            &[("Authorization", &auth)],
            "",
        )
        .ok()?;
        let now: Value = serde_json::from_str(&body).ok()?;
        (status == 200 && now["started_ms"] != before["started_ms"] && now["trial"] == false)
            .then_some(now)
    })
}

#[test]
fn the_hub_restarts_updates_itself_and_rolls_back_a_broken_release() {
    let dir = temp_dir("hub-update");
    let trusted = key();
    let secret = trusted.save_secret(dir.join("trusted.key"));
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let exe = bin_dir.join("twinbay");
    std::fs::copy(BIN, &exe).unwrap();
    let original = sha256(&exe);
    let data = dir.join("hub");
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::File::create(dir.join("hub.log")).unwrap();
    let mut cmd = Command::new(&exe);
    cmd.args(["hub", "--listen", &addr.to_string(), "--data-dir"])
        .arg(&data)
        .args([
            "--update-key",
            &trusted.public,
            "--update-health-window",
            "8s",
        ])
        .env("TWINBAY_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "info")
        // This test may itself run in a container (its marker files would
        // make the hub refuse, rightly): it installs the hub plainly.
        .env("TWINBAY_INSTALL_KIND", "plain")
        .stdout(Stdio::null())
        .stderr(log);
    let child = retry_busy(|| cmd.spawn());
    let hub = Hub {
        proc: Proc { child, name: "hub" },
        addr,
        dir: data.clone(),
    };
    let hub_log = || std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default();
    wait_for("the hub to serve", Duration::from_secs(20), || {
        http(addr, "GET", "/healthz", &[], "")
            .ok()
            .filter(|r| r.0 == 200)
    });
    let pid = hub.proc.child.id();
    let admin = hub.token("admin");
    let viewer = hub.token("viewer");

    // What it runs as.
    let first = hub.status(&admin);
    let built = first["version"].as_str().unwrap().to_string();
    assert_eq!(first["build_version"], built);
    assert_eq!(first["pid"], pid);
    assert_eq!(first["install"], "plain", "{first}");
    assert_eq!(first["update_possible"], true, "{first}");
    assert_eq!(first["trial"], false);
    assert_eq!(first["executable"], exe.display().to_string());
    assert!(
        hub.status(&viewer)["executable"].is_null(),
        "paths for admins only"
    );

    // Its own log.
    let (status, logs) = hub.get("/api/v1/hub/logs?lines=500", &admin);
    assert_eq!(status, 200, "{logs}");
    assert!(
        logs["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("hub listening")),
        "{logs}"
    );
    assert_eq!(hub.get("/api/v1/hub/logs", &viewer).0, 403);
    assert_eq!(hub.post("/api/v1/hub/restart", &viewer, &json!({})).0, 403);

    // Restart: the same process serves again, as a new start.
    let (status, r) = hub.post("/api/v1/hub/restart", &admin, &json!({}));
    assert_eq!(status, 202, "{r}");
    let now = back(&hub, &admin, &first, Duration::from_secs(30));
    assert_eq!(now["pid"], pid, "the same process, exec'd");

    // An unknown release: refused, nothing changes.
    let (status, e) = hub.post("/api/v1/hub/update", &admin, &json!({"version": "7.7.7"}));
    assert_eq!(status, 404, "{e}");

    // Its own bytes signed as 9.9.9, through `ctl hub update`.
    publish(&data, &secret, &exe, "9.9.9");
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["ctl", "--data-dir"])
        .arg(&data)
        .args(["hub", "update", "9.9.9", "--timeout", "90s"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "ctl hub update: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        hub_log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("the hub runs 9.9.9"));
    let now = hub.status(&admin);
    assert_eq!(now["version"], "9.9.9", "{now}");
    assert_eq!(now["pid"], pid, "the same process, exec'd");
    assert!(
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .contains("--update-health-window"),
        "the same arguments"
    );
    assert_eq!(
        sha256(&bin_dir.join("twinbay.prev")),
        original,
        "the previous binary is kept"
    );
    let before_broken = now;

    // A signed release that exits at once: rolled back, the old one serves.
    let broken = dir.join("broken");
    std::fs::write(&broken, "#!/bin/sh\nexit 3\n").unwrap();
    publish(&data, &secret, &broken, "3.0.0");
    let started = Instant::now();
    let (status, r) = hub.post("/api/v1/hub/update", &admin, &json!({"version": "3.0.0"}));
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["from_version"], "9.9.9");
    let now = back(&hub, &admin, &before_broken, Duration::from_secs(60));
    let rollback = started.elapsed();
    assert_eq!(now["version"], "9.9.9", "the old version serves: {now}");
    assert_eq!(now["pid"], pid);
    assert_eq!(sha256(&exe), original, "the previous binary is back");
    assert!(!bin_dir.join("twinbay.prev").exists());

    let (_, audit) = hub.get("/api/v1/audit?action=hub.update&limit=20", &admin);
    let entries = audit["entries"]
        .as_array()
        .or(audit.as_array())
        .cloned()
        .unwrap_or_default();
    let by_hub: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e["actor_kind"] == "hub")
        .map(|e| {
            (
                e["outcome"].as_str().unwrap_or_default().to_string(),
                e["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        by_hub
            .iter()
            .any(|(o, d)| o == "ok" && d.contains("→ 9.9.9")),
        "{audit}"
    );
    assert!(
        by_hub.iter().any(|(o, d)| o == "failed"
            && d.contains("exited with code 3")
            && d.contains("rolled back to 9.9.9")),
        "{audit}"
    );
    let (_, restarts) = hub.get("/api/v1/audit?action=hub.restart&limit=5", &admin);
    assert!(restarts.to_string().contains("hub.restart"), "{restarts}");
    let (_, events) = hub.get("/api/v1/events?limit=100", &admin);
    let kinds = events.to_string();
    assert!(
        kinds.contains("hub.updated") && kinds.contains("hub.update_failed"),
        "{events}"
    );
    eprintln!(
        "hub update to 9.9.9 ({} MB): ctl to serving again in {:.1} s; the broken 3.0.0: request to serving the old binary again in {:.1} s",
        std::fs::metadata(&exe).unwrap().len() >> 20,
        took.as_secs_f64(),
        rollback.as_secs_f64()
    );
}
