//! The agent's own update (issue 21, docs/updates.md), with real processes:
//! a hub that trusts a key made here, and a real agent whose binary is a
//! COPY of `twinbay-agent` in a temp dir (target/debug is never swapped).
//!
//! - Releases the hub is made to offer wrongly (written straight into its
//!   data dir: a bad signature, a wrong hash, a truncated binary, an
//!   untrusted key) are refused by the agent's own check; nothing swapped.
//! - A signed release that is `#!/bin/sh\nexit 3` is swapped in, fails its
//!   trial, and the agent rolls back by itself: the original bytes are back,
//!   it reconnects, and the hub has the failure (command, event, audit).
//!   One that runs but never comes up is killed when the (shortened) health
//!   window ends, and rolled back the same way.
//! - The agent's own bytes signed as 9.9.9: it passes its trial, the agent
//!   execs it (same pid) and says 9.9.9 in its hello; `.prev` is kept.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::Digest;

use crate::harness::*;

pub(crate) fn sha256(path: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// The directory the hub keeps release `version` in.
fn release_dir(hub: &Hub, version: &str) -> PathBuf {
    hub.dir
        .join("releases")
        .join(version)
        .join(std::env::consts::ARCH)
}

/// Runs `update agent to version` on `node` and waits for its end.
fn update(hub: &Hub, token: &str, node: &str, version: &str, within: Duration) -> Value {
    let body = json!({"op": "lifecycle", "target": {"kind": "agent"}, "verb": "update", "version": version});
    let (status, c) = hub.post(&format!("/api/v1/nodes/{node}/commands"), token, &body);
    assert!(
        status == 201 || status == 200 || status == 202,
        "{status} {c}"
    );
    let id = c["id"].as_str().unwrap().to_string();
    hub.wait_command(token, &id, within)
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
}

#[test]
fn the_agent_verifies_swaps_tries_and_rolls_back_its_own_binary() {
    let dir = temp_dir("update");
    let (trusted, stranger) = (key(), key());
    let secret = trusted.save_secret(dir.join("trusted.key"));
    let hub = Hub::start_with(
        &dir.join("hub"),
        free_port(),
        &["--update-key", &trusted.public],
    );
    let operator = hub.token("operator");
    let admin = hub.token("admin");

    // The join string carries the hub's trusted key to the agent.
    let join = hub.join();
    let decoded = twinbay_proto::join::JoinString::parse(&join).unwrap();
    assert_eq!(decoded.update_keys, vec![trusted.public.clone()]);

    // The agent runs from a copy of the lean binary, in a dir of its own.
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let exe = bin_dir.join("twinbay-agent");
    std::fs::copy(LEAN_BIN, &exe).unwrap();
    let original = sha256(&exe);
    let state = dir.join("state");
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let mut cmd = Command::new(&exe);
    cmd.args(["--interval", "1s", "--join", &join, "--state-dir"])
        .arg(&state)
        .args(["--update-health-window", "6s"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    let child = retry_busy(|| cmd.spawn());
    let agent = Proc {
        child,
        name: "agent",
    };
    let pid = agent.child.id();
    let node = wait_for("the agent", Duration::from_secs(30), || {
        hub.nodes(&operator)
            .into_iter()
            .find(|n| n["connected"] == true)
            .and_then(|n| n["id"].as_str().map(String::from))
    });
    let enrolled: Value =
        serde_json::from_slice(&std::fs::read(state.join("agent.json")).unwrap()).unwrap();
    assert_eq!(enrolled["update_keys"], json!([trusted.public]));
    let version_now = |hub: &Hub| {
        hub.node(&operator, &node)
            .filter(|n| n["connected"] == true)
            .and_then(|n| n["agent_version"].as_str().map(String::from))
    };
    let built = version_now(&hub).unwrap();

    // (c) The hub offers releases that are not what they claim: the agent's
    // own check refuses each, and nothing is swapped.
    let junk: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let junk_file = dir.join("junk");
    std::fs::write(&junk_file, &junk).unwrap();
    type Tamper<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, &str, Tamper); 4] = [
        ("2.0.1", "bad signature", &|d: &Path| {
            // Other bytes, their hash in the manifest: only the signature can tell.
            let mut other = junk.clone();
            other[1000] ^= 0xff;
            std::fs::write(d.join("twinbay"), &other).unwrap();
            let mut m: Value =
                serde_json::from_slice(&std::fs::read(d.join("manifest.json")).unwrap()).unwrap();
            m["sha256"] = json!(hex::encode(sha2::Sha256::digest(&other)));
            std::fs::write(d.join("manifest.json"), m.to_string()).unwrap();
        }),
        ("2.0.2", "wrong hash", &|d: &Path| {
            let mut other = junk.clone();
            other[5] ^= 0xff;
            std::fs::write(d.join("twinbay"), &other).unwrap();
        }),
        ("2.0.3", "truncated", &|d: &Path| {
            std::fs::write(d.join("twinbay"), &junk[..junk.len() / 2]).unwrap();
        }),
        ("2.0.4", "not trusted", &|d: &Path| {
            let comment = format!("version:2.0.4 arch:{}", std::env::consts::ARCH);
            std::fs::write(
                d.join("twinbay.minisig"),
                signature(&stranger, &junk, &comment),
            )
            .unwrap();
        }),
    ];
    for (version, why, tamper) in cases {
        publish(&hub.dir, &secret, &junk_file, version);
        tamper(&release_dir(&hub, version));
        let c = update(&hub, &operator, &node, version, Duration::from_secs(30));
        assert_eq!(c["status"], "refused", "{version}: {c}");
        let error = c["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{version}: {error}");
        assert_eq!(sha256(&exe), original, "{version}: nothing swapped");
        let left: Vec<_> = std::fs::read_dir(&bin_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            vec!["twinbay-agent".to_string()],
            "{version}: no leftovers"
        );
    }

    // (b) A signed release that exits at once: swapped in, fails its trial,
    // rolled back by the agent itself.
    let broken = dir.join("broken");
    std::fs::write(&broken, "#!/bin/sh\nexit 3\n").unwrap();
    publish(&hub.dir, &secret, &broken, "3.0.0");
    let started = std::time::Instant::now();
    let c = update(&hub, &operator, &node, "3.0.0", Duration::from_secs(60));
    let rollback = started.elapsed();
    assert_eq!(c["status"], "failed", "{c}\n{}", log_of(&dir));
    let error = c["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("exited with code 3") && error.contains("rolled back"),
        "{error}"
    );
    assert_eq!(sha256(&exe), original, "the original binary is back");
    assert!(!bin_dir.join("twinbay-agent.prev").exists());
    assert_eq!(agent.child.id(), pid);
    wait_for("the agent back", Duration::from_secs(30), || {
        version_now(&hub).filter(|v| *v == built)
    });
    let (_, events) = hub.get(&format!("/api/v1/nodes/{node}/events"), &operator);
    let failed = events
        .as_array()
        .or(events["events"].as_array())
        .into_iter()
        .flatten()
        .find(|e| e["kind"] == "agent.update_failed")
        .cloned()
        .unwrap_or_else(|| panic!("no agent.update_failed event: {events}"));
    assert_eq!(failed["detail"]["version"], "3.0.0", "{failed}");
    let recorded: Value =
        serde_json::from_slice(&std::fs::read(state.join("update.json")).unwrap()).unwrap();
    assert!(
        recorded["failed"]["3.0.0"]
            .as_str()
            .is_some_and(|r| r.contains("code 3")),
        "{recorded}"
    );

    // A signed release that runs but never comes up: killed at the end of
    // the (shortened) window, rolled back.
    let silent = dir.join("silent");
    std::fs::write(&silent, "#!/bin/sh\nexec sleep 300\n").unwrap();
    publish(&hub.dir, &secret, &silent, "3.0.1");
    let c = update(&hub, &operator, &node, "3.0.1", Duration::from_secs(60));
    assert_eq!(c["status"], "failed", "{c}");
    let error = c["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("did not report healthy within 6s") && error.contains("rolled back"),
        "{error}"
    );
    assert_eq!(sha256(&exe), original, "the original binary is back");
    let sleeping = Command::new("pgrep")
        .args(["-f", "-P", &pid.to_string(), "sleep 300"])
        .output()
        .unwrap();
    assert!(sleeping.stdout.is_empty(), "the trial child was killed");
    wait_for("the agent back", Duration::from_secs(30), || {
        version_now(&hub).filter(|v| *v == built)
    });

    // (a) The agent's own bytes signed as 9.9.9: it passes its trial, and the
    // agent runs it (the same process) and reports it.
    publish(&hub.dir, &secret, &exe, "9.9.9");
    let started = std::time::Instant::now();
    let c = update(&hub, &operator, &node, "9.9.9", Duration::from_secs(90));
    assert_eq!(c["status"], "ok", "{c}\n{}", log_of(&dir));
    let took = started.elapsed();
    let v = wait_for("the agent on 9.9.9", Duration::from_secs(30), || {
        version_now(&hub).filter(|v| v == "9.9.9")
    });
    assert_eq!(v, "9.9.9");
    assert_eq!(agent.child.id(), pid, "the same process, exec'd");
    assert!(
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .contains("--update-health-window"),
        "the same arguments"
    );
    assert_eq!(sha256(&exe), original);
    assert_eq!(
        sha256(&bin_dir.join("twinbay-agent.prev")),
        original,
        "the previous binary is kept"
    );
    let (_, audit) = hub.get("/api/v1/audit?action=agent.update&limit=10", &admin);
    let entries = audit["entries"]
        .as_array()
        .or(audit.as_array())
        .cloned()
        .unwrap_or_default();
    let outcomes: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert!(
        outcomes.contains(&"ok") && outcomes.contains(&"failed"),
        "{audit}"
    );
    let (_, ends) = hub.get("/api/v1/audit?action=command.end&limit=20", &admin);
    assert!(
        ends.to_string().contains("update agent to 9.9.9: ok"),
        "{ends}"
    );
    eprintln!(
        "update to 9.9.9 ({} MB): command to ok in {:.1} s (download, verify, trial, exec, reconnect); \
         the broken 3.0.0: command to rolled back in {:.1} s",
        std::fs::metadata(&exe).unwrap().len() >> 20,
        took.as_secs_f64(),
        rollback.as_secs_f64()
    );
}

#[test]
fn twinbay_started_as_twinbay_agent_is_the_lean_agent() {
    let dir = temp_dir("update-argv0");
    let as_lean = dir.join("twinbay-agent");
    std::fs::copy(BIN, &as_lean).unwrap();
    for args in [&["--help"][..], &["agent", "--help"][..]] {
        let out = retry_busy(|| Command::new(&as_lean).args(args).output());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {text}");
        assert!(text.contains("Usage: twinbay-agent"), "{args:?}: {text}");
        assert!(text.contains("--update-key"), "{text}");
    }
    // The lean binary takes `twinbay agent`'s leading word too.
    let out = Command::new(LEAN_BIN)
        .args(["agent", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
