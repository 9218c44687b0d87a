//! Rollouts (issue 21, docs/updates.md): a signed release sent to the fleet
//! in stages, with real agents (each a COPY of `twinbay-agent` in a temp dir)
//! and with simulated ones, which pretend and say so.
//!
//! - A broken release (`#!/bin/sh\nexit 3`, signed) reaches the canary only:
//!   it fails its trial, the agent rolls back by itself, and the rollout
//!   halts before the other agents.
//! - A good release (the agents' own bytes signed as 9.9.9) goes canary
//!   first, then batch by batch: every agent ends on 9.9.9, keeps `.prev`,
//!   and the audit trail has every step. The time is printed.
//! - Simulated agents: pause, resume, abort, one active rollout at a time,
//!   and refusals of bad bodies and roles.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;
use crate::update::sha256;

/// A real agent running from its own copy of the lean binary.
struct Agent {
    _proc: Proc,
    bin: PathBuf,
}

fn start_agent(dir: &std::path::Path, join: &str) -> Agent {
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let exe = bin_dir.join("twinbay-agent");
    std::fs::copy(LEAN_BIN, &exe).unwrap();
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let mut cmd = Command::new(&exe);
    cmd.args(["--interval", "1s", "--join", join, "--state-dir"])
        .arg(dir.join("state"))
        .args(["--update-health-window", "6s"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    let child = retry_busy(|| cmd.spawn());
    Agent {
        _proc: Proc {
            child,
            name: "agent",
        },
        bin: exe,
    }
}

/// Waits for the rollout to leave `running`; returns it.
fn wait_rollout(hub: &Hub, token: &str, id: &str, state: &str, within: Duration) -> Value {
    wait_for(&format!("rollout {id} {state}"), within, || {
        let (status, r) = hub.get(&format!("/api/v1/rollouts/{id}"), token);
        assert_eq!(status, 200, "{r}");
        (r["state"] == state).then_some(r)
    })
}

fn host<'a>(r: &'a Value, node: &str) -> &'a Value {
    r["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["node_id"] == node)
        .unwrap_or_else(|| panic!("{node} not in {r}"))
}

#[test]
fn a_release_goes_canary_first_and_a_broken_one_halts_at_the_canary() {
    let dir = temp_dir("rollouts");
    let trusted = key();
    let secret = trusted.save_secret(dir.join("trusted.key"));
    let hub = Hub::start_with(
        &dir.join("hub"),
        free_port(),
        &["--update-key", &trusted.public],
    );
    let admin = hub.token("admin");
    let agents: Vec<Agent> = (0..3)
        .map(|i| start_agent(&dir.join(format!("a{i}")), &hub.join()))
        .collect();
    hub.wait_connected(&admin, 3, Duration::from_secs(60));
    let original = sha256(&agents[0].bin);
    let built = hub.nodes(&admin)[0]["agent_version"]
        .as_str()
        .unwrap()
        .to_string();

    // A signed release that exits at once: the canary tries it, rolls back
    // by itself, and the rollout halts before the other two.
    let broken = dir.join("broken");
    std::fs::write(&broken, "#!/bin/sh\nexit 3\n").unwrap();
    publish(&hub.dir, &secret, &broken, "6.6.6");
    let body = json!({"version": "6.6.6", "canaries": 1, "batch": 1, "max_failures": 5});
    let (status, r) = hub.post("/api/v1/rollouts", &admin, &body);
    assert_eq!(status, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["hosts"].as_array().unwrap().len(), 3, "{r}");
    let r = wait_rollout(&hub, &admin, &id, "halted", Duration::from_secs(90));
    let canary = r["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["stage"] == "canary")
        .unwrap();
    assert_eq!(canary["state"], "rolled_back", "{r}");
    let why = canary["reason"].as_str().unwrap();
    assert!(
        why.contains("code 3") && why.contains("rolled back"),
        "{why}"
    );
    assert!(r["reason"].as_str().unwrap().contains("canary"), "{r}");
    for h in r["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["stage"] != "canary")
    {
        assert_eq!(h["state"], "pending", "never sent: {r}");
        assert!(h["command_id"].is_null(), "{r}");
    }
    for a in &agents {
        assert_eq!(sha256(&a.bin), original, "nothing swapped for good");
    }
    wait_for(
        "all three back on the built version",
        Duration::from_secs(30),
        || {
            let nodes = hub.nodes(&admin);
            nodes
                .iter()
                .all(|n| n["connected"] == true && n["agent_version"] == built.as_str())
                .then_some(())
        },
    );

    // The agents' own bytes signed as 9.9.9: canary, then one per batch.
    publish(&hub.dir, &secret, &agents[0].bin, "9.9.9");
    let started = Instant::now();
    let body = json!({"version": "9.9.9", "target": "all", "canaries": 1, "batch": 1});
    let (status, r) = hub.post("/api/v1/rollouts", &admin, &body);
    assert_eq!(status, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let r = wait_rollout(&hub, &admin, &id, "done", Duration::from_secs(240));
    let took = started.elapsed();
    println!(
        "rollout to 3 real agents (1 canary, batches of 1, health window 6 s): {:.1} s from start to all healthy",
        took.as_secs_f64()
    );
    assert_eq!(r["counts"]["healthy"], 3, "{r}");
    let mut order: Vec<(i64, i64)> = Vec::new();
    for n in hub.nodes(&admin) {
        let id = n["id"].as_str().unwrap();
        assert_eq!(n["agent_version"], "9.9.9", "its hello says so: {n}");
        let h = host(&r, id);
        assert_eq!(h["state"], "healthy");
        assert_eq!(h["from_version"], built.as_str());
        let (_, c) = hub.get(
            &format!("/api/v1/commands/{}", h["command_id"].as_str().unwrap()),
            &admin,
        );
        assert_eq!(c["status"], "ok", "{c}");
        order.push((
            h["batch"].as_i64().unwrap(),
            c["started_ms"].as_i64().unwrap(),
        ));
    }
    order.sort();
    assert!(
        order.windows(2).all(|w| w[0].1 <= w[1].1),
        "batches went in order: {order:?}"
    );
    for a in &agents {
        let prev = a.bin.with_file_name("twinbay-agent.prev");
        assert!(prev.exists(), "the old binary is kept");
        assert_eq!(sha256(&prev), original);
    }
    // Every step is in the audit trail.
    let (_, audit) = hub.get("/api/v1/audit?limit=500", &admin);
    let entries = audit
        .as_array()
        .or(audit["entries"].as_array())
        .cloned()
        .unwrap_or_default();
    let count = |action: &str, needle: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == action && e.to_string().contains(needle))
            .count()
    };
    assert_eq!(count("rollout.start", "9.9.9"), 1, "{audit}");
    assert_eq!(count("command.run", &format!("rollout:{id}")), 3, "{audit}");
    assert_eq!(count("rollout.host", &id), 3, "{audit}");
    assert_eq!(count("agent.update", "9.9.9"), 3, "{audit}");
    assert_eq!(count("rollout.done", &id), 1, "{audit}");
    assert_eq!(count("rollout.halted", "6.6.6"), 1, "{audit}");
}

#[test]
fn simulated_agents_pretend_and_a_rollout_pauses_resumes_and_aborts() {
    let dir = temp_dir("rollouts-sim");
    let trusted = key();
    let secret = trusted.save_secret(dir.join("trusted.key"));
    let hub = Hub::start_with(
        &dir.join("hub"),
        free_port(),
        &["--update-key", &trusted.public],
    );
    let (admin, operator) = (hub.token("admin"), hub.token("operator"));
    let _sim = sim(&hub.join(), 20, &["--interval", "5s"], &dir.join("sim.log"));
    hub.wait_connected(&admin, 20, Duration::from_secs(60));
    let release = dir.join("release");
    std::fs::write(&release, "#!/bin/sh\nexit 0\n").unwrap();
    publish(&hub.dir, &secret, &release, "9.9.9");
    publish(&hub.dir, &secret, &release, "9.9.10");

    // Refusals: a bad body, an unknown release, a role too low.
    for (body, want) in [
        (json!({"version": "9.9.9", "batch": "0%"}), 400),
        (json!({"version": "9.9.9", "pause_between": "soon"}), 400),
        (
            json!({"version": "9.9.9", "target": {"group": "nolabel"}}),
            400,
        ),
        (
            json!({"version": "9.9.9", "target": {"nodes": ["nope"]}}),
            404,
        ),
        (json!({"version": "1.2.3"}), 404),
        (json!({"version": "9.9.9", "surprise": 1}), 400),
    ] {
        let (status, r) = hub.post("/api/v1/rollouts", &admin, &body);
        assert_eq!(status, want, "{body}: {r}");
        assert!(r["error"]["message"].is_string(), "{r}");
    }
    let (status, _) = hub.post("/api/v1/rollouts", &operator, &json!({"version": "9.9.9"}));
    assert_eq!(status, 403);

    let body = json!({"version": "9.9.9", "canaries": 1, "batch": 5, "pause_between": "3s"});
    let (status, r) = hub.post("/api/v1/rollouts", &admin, &body);
    assert_eq!(status, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let (status, r2) = hub.post("/api/v1/rollouts", &admin, &json!({"version": "9.9.10"}));
    assert_eq!(status, 409, "one at a time: {r2}");
    // The canary goes alone; pause in the pause between batches.
    wait_for("the canary healthy", Duration::from_secs(30), || {
        let (_, r) = hub.get(&format!("/api/v1/rollouts/{id}"), &admin);
        (r["counts"]["healthy"] == 1).then_some(())
    });
    let (status, r) = hub.post(&format!("/api/v1/rollouts/{id}/pause"), &admin, &json!({}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["state"], "paused");
    std::thread::sleep(Duration::from_secs(5));
    let (_, r) = hub.get(&format!("/api/v1/rollouts/{id}"), &admin);
    assert_eq!(r["state"], "paused");
    assert_eq!(r["counts"]["healthy"], 1, "nothing new while paused: {r}");
    let (status, _) = hub.post(&format!("/api/v1/rollouts/{id}/pause"), &admin, &json!({}));
    assert_eq!(status, 409, "already paused");
    let (status, r) = hub.post(&format!("/api/v1/rollouts/{id}/resume"), &admin, &json!({}));
    assert_eq!(status, 200, "{r}");
    let started = Instant::now();
    let r = wait_rollout(&hub, &admin, &id, "done", Duration::from_secs(60));
    println!(
        "rollout to 19 simulated agents after the canary (batches of 5, 3 s pauses): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(r["counts"]["healthy"], 20, "{r}");
    let h = &r["hosts"][0];
    assert_eq!(h["simulated"], true);
    let (_, c) = hub.get(
        &format!("/api/v1/commands/{}", h["command_id"].as_str().unwrap()),
        &admin,
    );
    assert!(
        command_output(&c).contains("simulated agent: pretends"),
        "{c}"
    );
    wait_for("20 hellos saying 9.9.9", Duration::from_secs(30), || {
        let nodes = hub.nodes(&admin);
        (nodes.len() == 20 && nodes.iter().all(|n| n["agent_version"] == "9.9.9")).then_some(())
    });
    let (status, _) = hub.post(&format!("/api/v1/rollouts/{id}/abort"), &admin, &json!({}));
    assert_eq!(status, 409, "a finished rollout stays finished");

    // Abort: what was not sent is skipped.
    let body = json!({"version": "9.9.10", "canaries": 1, "batch": 1, "pause_between": "1h"});
    let (status, r) = hub.post("/api/v1/rollouts", &admin, &body);
    assert_eq!(status, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let (status, r) = hub.post(&format!("/api/v1/rollouts/{id}/abort"), &admin, &json!({}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["state"], "aborted");
    let skipped = r["counts"]["skipped"].as_u64().unwrap();
    assert!(skipped >= 19, "{r}");
    let (_, all) = hub.get("/api/v1/rollouts", &operator);
    let states: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["aborted", "done"], "newest first");
}
