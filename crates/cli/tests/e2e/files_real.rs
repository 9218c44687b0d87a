//! Watched files end to end with the real agent (inotify on real files),
//! real editors' save patterns, secrets that never reach the hub, and a
//! compose change to a real Podman container: risk, affected, drift.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

struct Container(&'static str);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", self.0])
            .output();
    }
}

fn run_web(compose: &Path) {
    let _ = Command::new("podman")
        .args(["rm", "-f", "-t", "0", "tbfiles-web"])
        .output();
    let dir = compose.parent().unwrap().to_str().unwrap();
    let out = Command::new("podman")
        .args(["run", "-d", "--name", "tbfiles-web"])
        .args(["--label", "com.docker.compose.project=tbfiles"])
        .args(["--label", "com.docker.compose.service=web"])
        .args([
            "--label",
            &format!("com.docker.compose.project.working_dir={dir}"),
        ])
        .args([
            "--label",
            "com.docker.compose.project.config_files=compose.yaml",
        ])
        .args([IMAGE, "sleep", "600"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_real_agent_saves_secrets_and_drift() {
    let dir = temp_dir("files-real");
    let files = dir.join("srv");
    std::fs::create_dir_all(&files).unwrap();
    let conf = files.join("app.conf");
    let env = files.join(".env");
    let compose = files.join("compose.yaml");
    let later = files.join("later.conf");
    std::fs::write(&conf, "a = 1\n").unwrap();
    std::fs::write(&env, "DB_PASSWORD=s3cr3t-Env-Value-42\nLOG=info\n").unwrap();
    std::fs::write(
        &compose,
        "services:\n  web:\n    image: busybox\n    environment:\n      DB_PASSWORD: hunter2-Compose-Secret\n",
    )
    .unwrap();
    let socket = dir.join("podman.sock");
    let _service = podman_service(&socket);
    let _web = Container("tbfiles-web");
    run_web(&compose);

    let hub = Hub::start(&dir.join("hub"));
    let admin = hub.token("admin");
    // Everything the UI stream sends, from before the first file is seen.
    let tap = StreamTap::start(hub.addr, &admin);
    let _agent = agent_logged(
        &hub.join(),
        &dir.join("agent"),
        &[
            "--container-socket",
            socket.to_str().unwrap(),
            "--watch",
            conf.to_str().unwrap(),
            "--watch",
            env.to_str().unwrap(),
            "--watch",
            compose.to_str().unwrap(),
            "--watch",
            later.to_str().unwrap(),
        ],
    );
    let (node, _) = hub.wait_twin(
        &admin,
        "the files and the container",
        Duration::from_secs(30),
        |t| {
            t["files"].as_object().is_some_and(|f| f.len() == 4)
                && t["containers"]
                    .as_object()
                    .is_some_and(|c| c.values().any(|c| c["name"] == "tbfiles-web"))
        },
    );
    let history = |path: &Path| -> Vec<Value> {
        let (_, h) = hub.get(
            &format!("/api/v1/nodes/{node}/files/history?path={}", path.display()),
            &admin,
        );
        h.as_array().cloned().unwrap_or_default()
    };
    let settled = |path: &Path, n: usize, what: &str| -> Vec<Value> {
        wait_for(what, Duration::from_secs(15), || {
            let h = history(path);
            (h.len() == n && h.iter().all(|v| v["risk"].is_string())).then_some(h)
        })
    };
    settled(&conf, 1, "app.conf seen");
    settled(&later, 1, "later.conf seen, missing");

    // Each way of saving is one new version, no more.
    type Save<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let saves: Vec<Save> = vec![
        (
            "write in place",
            Box::new(|| std::fs::write(&conf, "a = 2\n").unwrap()),
        ),
        (
            "temp file renamed over",
            Box::new(|| {
                let tmp = files.join(".app.conf.tmp");
                std::fs::write(&tmp, "a = 3\n").unwrap();
                std::fs::rename(&tmp, &conf).unwrap();
            }),
        ),
        (
            "vim: rename to backup, write anew",
            Box::new(|| {
                let backup = files.join("app.conf~");
                std::fs::rename(&conf, &backup).unwrap();
                std::fs::write(&conf, "a = 4\n").unwrap();
                std::fs::remove_file(&backup).unwrap();
            }),
        ),
        (
            "sed -i",
            Box::new(|| {
                let ok = Command::new("sed")
                    .args(["-i", "s/4/5/"])
                    .arg(&conf)
                    .status()
                    .unwrap();
                assert!(ok.success());
            }),
        ),
        ("delete", Box::new(|| std::fs::remove_file(&conf).unwrap())),
        (
            "re-create",
            Box::new(|| std::fs::write(&conf, "a = 6\n").unwrap()),
        ),
    ];
    for (i, (how, save)) in saves.iter().enumerate() {
        save();
        let h = settled(&conf, i + 2, how);
        // Nothing more arrives for the same save.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(history(&conf).len(), i + 2, "{how}: one version");
        let expected = match *how {
            "delete" => "deleted",
            "re-create" => "created",
            _ => "changed",
        };
        assert_eq!(h[0]["change"], expected, "{how}");
    }
    let (_, d) = hub.get(
        &format!("/api/v1/nodes/{node}/files/diff?path={}", conf.display()),
        &admin,
    );
    assert!(d["diff"].as_str().unwrap().contains("+a = 6"), "{d}");
    // A watched file that did not exist appears.
    std::fs::write(&later, "now = here\n").unwrap();
    assert_eq!(
        settled(&later, 2, "later.conf created")[0]["change"],
        "created"
    );

    // Secrets: change both, then look for their values everywhere on the hub.
    std::fs::write(&env, "DB_PASSWORD=n3w-Env-Value-43\nLOG=info\n").unwrap();
    std::fs::write(
        &compose,
        "services:\n  web:\n    image: busybox\n    privileged: true\n    environment:\n      DB_PASSWORD: hunter3-Compose-Secret\n",
    )
    .unwrap();
    settled(&env, 2, ".env changed");
    let h = settled(&compose, 2, "compose changed");
    // The password change is said without its value; privileged is high,
    // names the running container, and shows drift.
    assert_eq!(h[0]["risk"], "high", "{}", h[0]);
    let text = h[0].to_string();
    assert!(text.contains("DB_PASSWORD"), "{text}");
    assert!(text.contains("tbfiles-web"), "affected: {text}");
    let drift = &h[0]["assessment"]["drift"];
    assert!(drift.as_array().is_some_and(|d| !d.is_empty()), "{text}");
    let (_, d) = hub.get(
        &format!("/api/v1/nodes/{node}/files/diff?path={}", compose.display()),
        &admin,
    );
    let diff = d["diff"].as_str().unwrap();
    assert!(
        diff.contains("«redacted:") && diff.contains("+    privileged: true"),
        "{diff}"
    );

    // Recreated: the drift resolves.
    run_web(&compose);
    wait_for("drift resolved", Duration::from_secs(30), || {
        let h = history(&compose);
        h[0]["assessment"]["drift"]
            .as_array()
            .is_some_and(|d| d.is_empty())
            .then_some(())
    });
    let (_, events) = hub.get(&format!("/api/v1/nodes/{node}/events?limit=200"), &admin);
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"file.drift") && kinds.contains(&"file.drift_resolved"),
        "{kinds:?}"
    );

    // Nowhere on the hub: API answers, the stream, the database's bytes, the log.
    let secrets = [
        "s3cr3t-Env-Value-42",
        "n3w-Env-Value-43",
        "hunter2-Compose-Secret",
        "hunter3-Compose-Secret",
    ];
    let mut seen = String::new();
    for path in [&env, &compose] {
        seen.push_str(&Value::Array(history(path)).to_string());
    }
    seen.push_str(
        &hub.get(&format!("/api/v1/nodes/{node}"), &admin)
            .1
            .to_string(),
    );
    seen.push_str(
        &hub.get(&format!("/api/v1/nodes/{node}/files"), &admin)
            .1
            .to_string(),
    );
    seen.push_str(&events.to_string());
    let streamed = tap.text();
    assert!(
        streamed.contains("file.changed") && streamed.contains("DB_PASSWORD"),
        "the stream carried the changes: {streamed:.2000}"
    );
    seen.push_str(&streamed);
    let Hub {
        proc, dir: hub_dir, ..
    } = hub;
    proc.signal("-TERM");
    let out = proc.wait_exit(Duration::from_secs(15));
    seen.push_str(&String::from_utf8_lossy(&out.stderr));
    for entry in std::fs::read_dir(&hub_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            seen.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    for secret in secrets {
        assert!(!seen.contains(secret), "{secret} reached the hub");
    }
}
