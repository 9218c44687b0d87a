//! Hosts over SSH against a real OpenSSH server: a private `sshd -D -e` on a
//! loopback port with its own host key, logging in a throwaway user whose
//! `authorized_keys` holds the hub's public key. The hub installs an agent
//! there (`ctl host add`), refuses an unconfirmed or wrong host key, undoes
//! an install whose connection is cut during the copy, and refuses (and
//! records) a host key that changed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

/// A throwaway login, removed with its home when dropped.
pub(crate) struct User {
    pub(crate) name: String,
    home: PathBuf,
}

impl User {
    pub(crate) fn create(tag: &str, dir: &Path) -> User {
        let name = format!("tb{tag}{}", std::process::id() % 100_000);
        let home = dir.join("home");
        let _ = Command::new("userdel").args(["-r", &name]).output();
        // `*`: no password, but not locked (sshd without PAM refuses locked accounts).
        let ok = Command::new("useradd")
            .args(["-m", "-p", "*", "-s", "/bin/sh", "-d"])
            .arg(&home)
            .arg(&name)
            .status()
            .unwrap()
            .success();
        assert!(ok, "useradd {name}");
        User { name, home }
    }

    /// Ends what the install may have started (the agent's pid file).
    fn stop_agent(&self) {
        let pidfile = self.home.join(".local/state/twinbay-agent/agent.pid");
        if let Ok(pid) = std::fs::read_to_string(pidfile) {
            let pid = pid.trim().to_string();
            let _ = Command::new("kill").arg(&pid).status();
            // userdel refuses a user with a live process.
            for _ in 0..100 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// What the install leaves in the home, besides the user's own files.
    fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for p in [
            ".config/systemd/user/twinbay-agent.service",
            ".local/share/twinbay/bin/twinbay",
            ".local/state/twinbay-agent",
        ] {
            if self.home.join(p).exists() {
                found.push(p.to_string());
            }
        }
        for e in std::fs::read_dir(&self.home).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".twinbay-") {
                found.push(name);
            }
        }
        found
    }
}

impl Drop for User {
    fn drop(&mut self) {
        self.stop_agent();
        let _ = Command::new("userdel").args(["-r", &self.name]).output();
    }
}

/// A private sshd for one user.
pub(crate) struct Sshd {
    dir: PathBuf,
    port: u16,
    proc: Option<Proc>,
}

impl Sshd {
    pub(crate) fn start(dir: &Path, user: &str, authorized: &str) -> Sshd {
        std::fs::create_dir_all("/run/sshd").unwrap();
        std::fs::write(dir.join("authorized_keys"), format!("{authorized}\n")).unwrap();
        let mut sshd = Sshd {
            dir: dir.to_path_buf(),
            port: free_port(),
            proc: None,
        };
        sshd.new_host_key();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\nPidFile none\n\
             AuthorizedKeysFile {dir}/authorized_keys\nUsePAM no\nStrictModes no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nAllowUsers {user}\nLogLevel VERBOSE\n",
            port = sshd.port,
            dir = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        sshd.run();
        sshd
    }

    fn new_host_key(&self) {
        let key = self.dir.join("host_key");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh-keygen");
    }

    /// `SHA256:…` of the current host key.
    pub(crate) fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir.join("host_key.pub"))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().nth(1).unwrap().to_string()
    }

    fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sshd.log"))
            .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(self.dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.proc = Some(Proc {
            child,
            name: "sshd",
        });
        let port = self.port;
        wait_for("sshd to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// Kills the server and every sshd process under it (the connections),
    /// leaving the users' own processes alone.
    fn kill_all(&mut self) {
        let Some(proc) = self.proc.take() else { return };
        let mut pids = vec![proc.child.id()];
        let mut i = 0;
        while i < pids.len() {
            for kid in children(pids[i]) {
                if comm(kid).starts_with("sshd") {
                    pids.push(kid);
                }
            }
            i += 1;
        }
        for pid in pids.iter().rev() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        drop(proc);
    }

    pub(crate) fn target(&self, user: &str) -> String {
        format!("ssh://{user}@127.0.0.1:{}", self.port)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn wait_install(hub: &Hub, admin: &str, id: &str, within: Duration) -> Value {
    wait_for("the install to end", within, || {
        let (status, host) = hub.get(&format!("/api/v1/ssh/hosts/{id}"), admin);
        assert_eq!(status, 200, "{host}");
        (host["install"]["state"] != "running").then_some(host)
    })
}

/// A hub, a throwaway login and a private sshd that lets the hub's key in.
/// Tests take it apart as `let Lab { hub, admin, user, mut sshd, .. }`:
/// bindings drop in reverse, so the server (and its sessions) goes first,
/// then the login, then the hub.
struct Lab {
    hub: Hub,
    admin: String,
    user: User,
    sshd: Sshd,
    sshd_dir: PathBuf,
}

impl Lab {
    fn start(name: &str, user_tag: &str) -> Lab {
        let dir = temp_dir(name);
        let hub = Hub::start(&dir.join("hub"));
        let admin = hub.token("admin");
        let (status, identity) = hub.get("/api/v1/ssh/identity", &admin);
        assert_eq!(status, 200, "{identity}");
        let sshd_dir = dir.join("sshd");
        std::fs::create_dir_all(&sshd_dir).unwrap();
        let user = User::create(user_tag, &dir);
        let sshd = Sshd::start(
            &sshd_dir,
            &user.name,
            identity["public_key"].as_str().unwrap(),
        );
        Lab {
            hub,
            admin,
            user,
            sshd,
            sshd_dir,
        }
    }
}

#[test]
fn add_installs_an_agent_and_a_changed_host_key_is_refused() {
    // Bindings drop in reverse: the server first, then the login, the hub.
    let Lab {
        hub,
        admin,
        user,
        mut sshd,
        sshd_dir,
    } = Lab::start("ssh-add", "a");
    let (status, identity) = hub.get("/api/v1/ssh/identity", &admin);
    assert_eq!(status, 200, "{identity}");
    let public_key = identity["public_key"].as_str().unwrap();
    assert!(public_key.starts_with("ssh-ed25519 AAAA"), "{public_key}");
    assert!(public_key.contains("twinbay-hub@"), "{public_key}");
    assert!(!identity.to_string().contains("PRIVATE"), "{identity}");
    let fp = sshd.fingerprint();
    let target = sshd.target(&user.name);

    // First contact without a fingerprint: stops and names the host's.
    let (status, body) = hub.post("/api/v1/ssh/hosts", &admin, &json!({"target": target}));
    assert_eq!(status, 409, "{body}");
    assert!(
        message(&body).contains(&format!("unknown host key {fp}")),
        "{body}"
    );
    // A wrong fingerprint is refused, and audited.
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (status, body) = hub.post(
        "/api/v1/ssh/hosts",
        &admin,
        &json!({"target": target, "fingerprint": wrong}),
    );
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains("refused"), "{body}");
    let (_, hosts) = hub.get("/api/v1/ssh/hosts", &admin);
    assert_eq!(hosts, json!([]), "nothing recorded for a refused key");

    // The CLI with the confirmed fingerprint: every step printed, an agent up.
    let out = Command::new(BIN)
        .arg("ctl")
        .arg("--data-dir")
        .arg(&hub.dir)
        .args([
            "host",
            "add",
            &target,
            "--fingerprint",
            &fp,
            "--token",
            &admin,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(sshd_dir.join("sshd.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "ctl host add: {stdout}\n{}\nsshd: {log}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "[arch] done",
        "[copy] done",
        "[token] done",
        "[install] done",
        "[start] done",
        "[enroll] done",
    ] {
        assert!(stdout.contains(step), "no {step:?} in:\n{stdout}");
    }
    assert!(
        stdout.contains("setsid"),
        "the fallback start is said: {stdout}"
    );
    assert!(stdout.contains("SHA-256 checked"), "{stdout}");
    println!("{stdout}");

    let (_, hosts) = hub.get("/api/v1/ssh/hosts", &admin);
    let host = hosts[0].clone();
    let id = host["id"].as_str().unwrap().to_string();
    let node = host["node_id"]
        .as_str()
        .expect("the node is recorded")
        .to_string();
    assert_eq!(host["fingerprint"], fp.as_str());
    assert_eq!(host["install"]["state"], "done", "{host}");
    let twin = hub.node(&admin, &node).expect("the node is in the fleet");
    assert_eq!(twin["connected"], true, "{twin}");
    // Installed under the user's home; no temporary files left.
    let left = user.leftovers();
    assert!(
        left.contains(&".config/systemd/user/twinbay-agent.service".to_string()),
        "{left:?}"
    );
    assert!(
        left.contains(&".local/share/twinbay/bin/twinbay".to_string()),
        "{left:?}"
    );
    assert!(!left.iter().any(|l| l.starts_with(".twinbay-")), "{left:?}");
    // The agent runs as that user.
    let pid =
        std::fs::read_to_string(user.home.join(".local/state/twinbay-agent/agent.pid")).unwrap();
    let status_file = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let uid_line = status_file
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    assert!(
        !uid_line.contains("\t0\t"),
        "the agent runs as the login's user: {uid_line}"
    );

    // Adding the same login again is refused.
    let (status, body) = hub.post(
        "/api/v1/ssh/hosts",
        &admin,
        &json!({"target": target, "fingerprint": fp}),
    );
    assert_eq!(status, 409, "{body}");

    // The same server with a new host key: refused, never re-learned.
    let (status, body) = hub.post(&format!("/api/v1/ssh/hosts/{id}/check"), &admin, &json!({}));
    assert_eq!((status, body["ok"].clone()), (200, json!(true)), "{body}");
    sshd.kill_all();
    sshd.new_host_key();
    let new_fp = sshd.fingerprint();
    sshd.run();
    let (status, body) = hub.post(&format!("/api/v1/ssh/hosts/{id}/check"), &admin, &json!({}));
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains(&new_fp), "{body}");
    let (_, host) = hub.get(&format!("/api/v1/ssh/hosts/{id}"), &admin);
    assert_eq!(host["security"]["state"], "host_key_changed", "{host}");
    assert_eq!(host["security"]["pinned"], fp.as_str());
    assert_eq!(host["security"]["seen"], new_fp.as_str());
    assert_eq!(host["fingerprint"], fp.as_str(), "the pin stays");
    let events = wait_for("the timeline event", Duration::from_secs(10), || {
        let (_, events) = hub.get(&format!("/api/v1/nodes/{node}/events"), &admin);
        events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "ssh.host_key_changed")
            .cloned()
    });
    assert_eq!(events["detail"]["seen"], new_fp.as_str(), "{events}");
    let (_, audit) = hub.get("/api/v1/audit?action=ssh.host_key_changed", &admin);
    let entries = audit["entries"]
        .as_array()
        .or(audit.as_array())
        .cloned()
        .unwrap_or_default();
    assert_eq!(entries.len(), 1, "one audit record: {audit}");
    // Still refused on the next try, and raised once.
    let (status, _) = hub.post(&format!("/api/v1/ssh/hosts/{id}/check"), &admin, &json!({}));
    assert_eq!(status, 409);
    let (_, audit) = hub.get("/api/v1/audit?action=ssh.host_key_changed", &admin);
    let entries = audit["entries"]
        .as_array()
        .or(audit.as_array())
        .cloned()
        .unwrap_or_default();
    assert_eq!(entries.len(), 1, "raised once: {audit}");
    let (_, audit) = hub.get("/api/v1/audit?action=ssh_host.install", &admin);
    assert!(audit.to_string().contains("enrolled as node"), "{audit}");

    user.stop_agent();
}

#[test]
fn a_connection_cut_during_the_copy_leaves_nothing_behind() {
    let Lab {
        hub,
        admin,
        user,
        mut sshd,
        ..
    } = Lab::start("ssh-cut", "c");
    let (status, host) = hub.post(
        "/api/v1/ssh/hosts",
        &admin,
        &json!({"target": sshd.target(&user.name), "fingerprint": sshd.fingerprint()}),
    );
    assert_eq!(status, 202, "{host}");
    let id = host["id"].as_str().unwrap().to_string();
    // As soon as bytes flow, cut every connection and stop the server.
    wait_for("the copy to start", Duration::from_secs(60), || {
        let (_, host) = hub.get(&format!("/api/v1/ssh/hosts/{id}"), &admin);
        let steps = host["install"]["steps"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let last = steps.last().cloned().unwrap_or_default();
        (last["name"] == "copy" && last["detail"].as_str().unwrap_or("").starts_with("copying"))
            .then_some(())
    });
    sshd.kill_all();
    let host = wait_install(&hub, &admin, &id, Duration::from_secs(60));
    assert_eq!(host["install"]["state"], "failed", "{host}");
    let error = host["install"]["error"].as_str().unwrap();
    assert!(error.starts_with("copy failed"), "{error}");
    println!("error: {error}; undo: {}", host["install"]["undo"]);
    // The host's side removes its partial file itself once its input ends.
    wait_for("nothing left in the home", Duration::from_secs(10), || {
        user.leftovers().is_empty().then_some(())
    });
    let (_, audit) = hub.get(
        "/api/v1/audit?action=ssh_host.install&outcome=failed",
        &admin,
    );
    assert!(audit.to_string().contains("copy failed"), "{audit}");
}

/// Issue 25, acceptances 2 and 3 for a host with no agent: the hub reads it
/// over SSH on its interval; a stopped sshd marks its sources unavailable
/// with the reason; a changed host key is refused and shown.
#[test]
fn an_agentless_host_is_read_over_ssh() {
    let Lab {
        hub,
        admin,
        user,
        mut sshd,
        ..
    } = Lab::start("ssh-agentless", "l");
    let fp = sshd.fingerprint();
    let out = Command::new(BIN)
        .arg("ctl")
        .arg("--data-dir")
        .arg(&hub.dir)
        .args(["host", "add", &sshd.target(&user.name), "--agentless"])
        .args(["--interval", "2s", "--fingerprint", &fp, "--token", &admin])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctl host add --agentless: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, hosts) = hub.get("/api/v1/ssh/hosts", &admin);
    let id = hosts[0]["id"].as_str().unwrap().to_string();
    assert_eq!(hosts[0]["agentless"], true, "{hosts}");
    let node = hosts[0]["node_id"].as_str().expect("a node").to_string();

    // CPU, memory, disks, interfaces and listening ports, as a login reads them.
    let port = sshd
        .target(&user.name)
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let twin = wait_for("the agentless twin", Duration::from_secs(60), || {
        let (status, twin) = hub.get(&format!("/api/v1/nodes/{node}"), &admin);
        (status == 200
            && twin["connected"] == true
            && twin["resources"]["mem_total"].as_u64().unwrap_or(0) > 0
            && twin["ports"]
                .as_object()
                .is_some_and(|p| p.keys().any(|k| k.ends_with(&format!(":{port}")))))
        .then_some(twin)
    });
    assert_eq!(
        twin["agentless"]["interval_secs"], 2,
        "{}",
        twin["agentless"]
    );
    assert!(
        twin["mounts"].as_object().unwrap().contains_key("/"),
        "{}",
        twin["mounts"]
    );
    assert!(!twin["interfaces"].as_object().unwrap().is_empty());
    for source in ["cpu", "memory", "disks", "net", "ports"] {
        assert_eq!(
            twin["sources"][source]["available"], true,
            "{source}: {}",
            twin["sources"]
        );
    }
    let cpu = twin["resources"]["cpu_pct"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
    // Refreshed on its interval: last_seen moves.
    let seen = twin["last_seen"].as_i64().unwrap();
    wait_for("a later collection", Duration::from_secs(20), || {
        let (_, t) = hub.get(&format!("/api/v1/nodes/{node}"), &admin);
        (t["last_seen"].as_i64().unwrap_or(0) > seen).then_some(())
    });
    // Every run is recorded.
    let (status, runs) = hub.get(&format!("/api/v1/nodes/{node}/collections"), &admin);
    assert_eq!(status, 200, "{runs}");
    assert!(runs.to_string().contains("/proc/meminfo"), "{runs}");

    // sshd stopped: the sources say why, the host is down.
    sshd.kill_all();
    let twin = wait_for("sources unavailable", Duration::from_secs(60), || {
        let (_, t) = hub.get(&format!("/api/v1/nodes/{node}"), &admin);
        (t["sources"]["cpu"]["available"] == false).then_some(t)
    });
    let reason = twin["sources"]["cpu"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("unreachable"), "{reason}");
    assert_eq!(twin["connected"], false, "{twin}");

    // Back with another host key: refused, never re-learned, and shown.
    sshd.new_host_key();
    let new_fp = sshd.fingerprint();
    sshd.run();
    let host = wait_for("the security state", Duration::from_secs(90), || {
        let (_, h) = hub.get(&format!("/api/v1/ssh/hosts/{id}"), &admin);
        (h["security"]["state"] == "host_key_changed").then_some(h)
    });
    assert_eq!(host["security"]["seen"], new_fp.as_str());
    assert_eq!(host["fingerprint"], fp.as_str(), "the pin stays");
    let (_, t) = hub.get(&format!("/api/v1/nodes/{node}"), &admin);
    assert_eq!(t["connected"], false, "not read with a changed key: {t}");
    // The host's own timeline has the event.
    wait_for("the timeline event", Duration::from_secs(10), || {
        let (_, events) = hub.get(&format!("/api/v1/nodes/{node}/events"), &admin);
        events
            .as_array()?
            .iter()
            .find(|e| e["kind"] == "ssh.host_key_changed")
            .cloned()
    });

    // Removed: reading stops.
    let (status, _) = hub.send(
        "DELETE",
        &format!("/api/v1/ssh/hosts/{id}"),
        &admin,
        &Value::Null,
    );
    assert_eq!(status, 204);
}
