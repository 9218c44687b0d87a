//! Issue 8: commands and lifecycle verbs, with real Podman and real processes.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Removes the container when the test ends, passed or not.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

/// The host's uptime in seconds (containers see the host's /proc/uptime).
fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn setup(name: &str, policy: &str) -> (std::path::PathBuf, Proc, Hub, Proc, String, String) {
    let (dir, socket, service) = podman_dir(name);
    let hub = Hub::start(&dir.join("hub"));
    let admin = hub.token("admin");
    let policy_file = dir.join("policy.yaml");
    std::fs::write(&policy_file, policy.replace("DIR", dir.to_str().unwrap())).unwrap();
    let agent = agent_logged(
        &hub.join(),
        &dir.join("agent"),
        &[
            "--container-socket",
            socket.to_str().unwrap(),
            "--policy",
            policy_file.to_str().unwrap(),
        ],
    );
    let (id, _) = hub.wait_twin(
        &admin,
        "the node with containers",
        Duration::from_secs(20),
        |t| t["sources"]["containers"]["available"] == true && t["policy"].is_object(),
    );
    (dir, service, hub, agent, admin, id)
}

fn container_state(hub: &Hub, token: &str, node: &str, name: &str) -> Option<Value> {
    let (_, twin) = hub.get(&format!("/api/v1/nodes/{node}"), token);
    twin["containers"]
        .as_object()?
        .values()
        .find(|c| c["name"] == name)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_a_container_from_the_api_and_follow_its_logs() {
    let (_dir, _service, hub, _agent, admin, node) = setup("cmd-containers", "{}");
    let operator = hub.token("operator");
    let name = format!("tb-cmd-{}", std::process::id());
    let _cleanup = Container(name.clone());
    podman(&[
        "run",
        "-d",
        "--name",
        &name,
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do echo tick $(cut -d' ' -f1 /proc/uptime); sleep 1; done",
    ]);
    let before = tokio::task::block_in_place(|| {
        wait_for(
            "the running container in the twin",
            Duration::from_secs(5),
            || container_state(&hub, &admin, &node, &name).filter(|c| c["state"] == "running"),
        )
    });
    let cid = before["id"].as_str().unwrap().to_string();

    // Acceptance 1: restart from the API; the stream shows stop and start.
    let mut ui = stream(hub.addr, &admin).await;
    next_json(&mut ui).await;
    let body = json!({"op": "lifecycle", "target": {"kind": "container", "name": name}, "verb": "restart"});
    let (status, record) = tokio::task::block_in_place(|| {
        hub.post(&format!("/api/v1/nodes/{node}/commands"), &operator, &body)
    });
    assert_eq!(status, 202, "{record}");
    assert_eq!(record["status"], "running");
    assert_eq!(record["summary"], format!("restart container {name}"));
    let id = record["id"].as_str().unwrap().to_string();
    let mut states = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(states.contains(&"exited".to_string())
        && states.last().map(String::as_str) == Some("running"))
    {
        assert!(Instant::now() < deadline, "transitions seen: {states:?}");
        let e = next_json(&mut ui).await;
        if e["type"] != "diff" {
            continue;
        }
        for change in e["changes"].as_array().unwrap() {
            if change["collection"] == "containers" && change["key"] == cid.as_str() {
                let state = change["value"]["state"].as_str().unwrap_or("").to_string();
                if states.last() != Some(&state) {
                    states.push(state);
                }
            }
        }
    }
    let done =
        tokio::task::block_in_place(|| hub.wait_command(&operator, &id, Duration::from_secs(20)));
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(done["exit_code"], 0);
    assert!(
        command_output(&done).contains(&format!("restarted {name}")),
        "{done}"
    );
    // The state comes from Podman's event at once; the new start time from
    // the inspection that follows it, a moment later.
    tokio::task::block_in_place(|| {
        wait_for("a new start time", Duration::from_secs(5), || {
            container_state(&hub, &admin, &node, &name)
                .filter(|c| c["started_at"] != before["started_at"])
        })
    });
    // The end is shown as soon as the agent reports it; its audit entry is
    // written just after (with the stored record), so allow it a moment.
    for action in ["command.run", "command.end"] {
        tokio::task::block_in_place(|| {
            wait_for(
                &format!("{action} for {id} in the audit trail"),
                Duration::from_secs(5),
                || {
                    let (_, audit) = hub.get("/api/v1/audit?action=command.", &admin);
                    audit
                        .as_array()?
                        .iter()
                        .any(|e| {
                            e["action"] == action
                                && e["outcome"] == "ok"
                                && e["target"] == format!("node:{node}")
                                && e["detail"].as_str().is_some_and(|d| d.contains(&id))
                        })
                        .then_some(())
                },
            )
        });
    }
    // The host's history has it.
    let (_, history) = hub.get(&format!("/api/v1/nodes/{node}/commands"), &admin);
    assert_eq!(history[0]["id"], id.as_str(), "{history}");

    // Acceptance 2: logs -f streams each line within 1 s of its printing,
    // and the agent stops following when the client goes.
    let body = json!({"op": "lifecycle", "target": {"kind": "container", "name": name}, "verb": "logs", "lines": 1, "follow": true, "stream": true});
    let (follow_id, latencies) = tokio::task::block_in_place(|| {
        let (status, mut feed) = Feed::open(
            hub.addr,
            &format!("/api/v1/nodes/{node}/commands"),
            &operator,
            &body,
        );
        assert_eq!(status, 200);
        let first = feed.next();
        assert_eq!(first["type"], "command", "{first}");
        let follow_id = first["command"]["id"].as_str().unwrap().to_string();
        let mut latencies = Vec::new();
        let mut lines = String::new();
        // The first line is the tail (printed up to a second ago); time the next ones.
        let mut seen = 0;
        while latencies.len() < 4 {
            let e = feed.next();
            assert_eq!(e["type"], "output", "{e}");
            let now = uptime();
            lines.push_str(e["data"].as_str().unwrap());
            while let Some(end) = lines.find('\n') {
                let line: String = lines.drain(..=end).collect();
                let printed: f64 = line.trim().strip_prefix("tick ").unwrap().parse().unwrap();
                seen += 1;
                if seen > 1 {
                    latencies.push(now - printed);
                }
            }
        }
        drop(feed);
        (follow_id, latencies)
    });
    println!("logs -f latencies (s): {latencies:?}");
    assert!(latencies.iter().all(|l| *l < 1.0), "{latencies:?}");
    let ended = tokio::task::block_in_place(|| {
        hub.wait_command(&operator, &follow_id, Duration::from_secs(10))
    });
    assert_eq!(ended["status"], "cancelled", "{ended}");

    // The same from the CLI: lines as they come; Ctrl-C stops it on the host.
    let mut cli = Command::new(BIN)
        .arg("ctl")
        .arg("--data-dir")
        .arg(&hub.dir)
        .args(["logs", &node, &format!("container:{name}"), "-f", "-n", "1"])
        .env("TWINBAY_TOKEN", &operator)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(cli.stdout.take().unwrap()));
    for _ in 0..2 {
        let line = tokio::task::block_in_place(|| lines.next().unwrap().unwrap());
        assert!(line.starts_with("tick "), "{line}");
    }
    assert!(
        Command::new("kill")
            .args(["-INT", &cli.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let code = tokio::task::block_in_place(|| {
        wait_for("ctl logs to exit", Duration::from_secs(10), || {
            cli.try_wait().unwrap()
        })
    });
    assert_eq!(code.code(), Some(130));
    tokio::task::block_in_place(|| {
        wait_for(
            "the CLI's follow to end on the host",
            Duration::from_secs(10),
            || {
                let (_, history) = hub.get(&format!("/api/v1/nodes/{node}/commands"), &admin);
                (history[0]["summary"] == format!("logs container {name} (follow)")
                    && history[0]["status"] == "cancelled")
                    .then_some(())
            },
        )
    });

    // The agent is fine, and says no command runs any more.
    let body = json!({"op": "lifecycle", "target": {"kind": "agent"}, "verb": "status"});
    let (status, record) = tokio::task::block_in_place(|| {
        hub.post(&format!("/api/v1/nodes/{node}/commands"), &operator, &body)
    });
    assert_eq!(status, 202, "{record}");
    let status_cmd = tokio::task::block_in_place(|| {
        hub.wait_command(
            &operator,
            record["id"].as_str().unwrap(),
            Duration::from_secs(10),
        )
    });
    let text = command_output(&status_cmd);
    assert!(
        text.contains("commands running: 1"),
        "only the status command itself: {text}"
    );
}

const POLICY: &str = r#"
actions:
  echo:
    description: Say something
    argv: [echo, "{msg}"]
    args:
      - { name: msg, type: string, max_len: 32, required: true }
  touch:
    argv: [touch, "{path}"]
    args:
      - { name: path, type: path, under: DIR/files, required: true }
  fail:
    argv: [sh, -c, "echo no >&2; exit 3"]
  sleepy:
    argv: [sh, -c, "(sleep 3; touch DIR/survivor) & sleep 60"]
    timeout: 1s
  long:
    argv: [sleep, "60"]
    timeout: 2m
  chatty:
    argv: [sh, -c, "yes twinbay | head -c 200000; echo finished >&2"]
    output_cap: 1KiB
  admin-only:
    argv: ["true"]
    role: admin
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_run_as_the_policy_says_and_nothing_else_does() {
    let (dir, _service, hub, agent, admin, node) = setup("cmd-actions", POLICY);
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let operator = hub.token("operator");
    let viewer = hub.token("viewer");
    let run = |token: &str, body: Value| {
        tokio::task::block_in_place(|| {
            hub.post(&format!("/api/v1/nodes/{node}/commands"), token, &body)
        })
    };
    let action = |name: &str, args: Value| json!({"op": "action", "name": name, "args": args});
    let until_done = |record: &Value| {
        tokio::task::block_in_place(|| {
            hub.wait_command(
                &admin,
                record["id"].as_str().unwrap(),
                Duration::from_secs(20),
            )
        })
    };

    // The twin shows the policy, enough to draw a form.
    let (_, twin) = hub.get(&format!("/api/v1/nodes/{node}"), &viewer);
    assert_eq!(
        twin["policy"]["actions"]["echo"]["args"][0]["type"], "string",
        "{}",
        twin["policy"]
    );

    // A UI's stream hears the command start and end (no polling).
    let mut live = stream(hub.addr, &viewer).await;
    assert_eq!(next_json(&mut live).await["type"], "snapshot");
    let (status, r) = run(
        operator.as_str(),
        action("echo", json!({"msg": "hello there"})),
    );
    assert_eq!(status, 202, "{r}");
    let done = until_done(&r);
    assert_eq!(
        (done["status"].as_str(), command_output(&done).as_str()),
        (Some("ok"), "hello there\n")
    );
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let msg = next_json(&mut live).await;
        if msg["type"] == "command" && msg["command"]["id"] == r["id"] {
            heard.push(msg["command"]["status"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(heard, ["running", "ok"]);
    drop(live);

    // A fast command read back at once is never `running` with no output
    // (the hub holds its end until the store has it).
    // 150 of them is 300 frames from the agent, past its burst: they are
    // paced, never dropped.
    for i in 0..150 {
        let (_, r) = run(
            &operator,
            action("echo", json!({"msg": format!("quick {i}")})),
        );
        let path = format!("/api/v1/commands/{}/output", r["id"].as_str().unwrap());
        let auth = format!("Bearer {operator}");
        let (status, feed) = tokio::task::block_in_place(|| {
            http(hub.addr, "GET", &path, &[("Authorization", &auth)], "").unwrap()
        });
        assert_eq!(status, 200);
        let events: Vec<Value> = feed
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let last = events.last().unwrap();
        if last["type"] == "result" {
            assert_eq!(last["command"]["status"], "ok", "{feed}");
            assert!(feed.contains(&format!("quick {i}\\n")), "{feed}");
        }
    }

    let done = until_done(&run(operator.as_str(), action("fail", json!({}))).1);
    assert_eq!(
        (done["status"].as_str(), done["exit_code"].as_i64()),
        (Some("failed"), Some(3)),
        "{done}"
    );
    assert_eq!(done["output"][0]["stream"], "stderr");

    // Acceptance 3: refused, with a clear error, audited, and nothing run.
    let refusals: Vec<(&str, Value, u16, &str)> = vec![
        (
            operator.as_str(),
            action("rm-everything", json!({})),
            400,
            "not an action in the agent's policy",
        ),
        (
            operator.as_str(),
            action(
                "touch",
                json!({"path": format!("{}/files/a;touch {}/pwned", dir.display(), dir.display())}),
            ),
            400,
            "allowed are",
        ),
        (
            operator.as_str(),
            action(
                "touch",
                json!({"path": format!("{}/files/../pwned", dir.display())}),
            ),
            400,
            "'..'",
        ),
        (
            operator.as_str(),
            action("touch", json!({"path": "/etc/pwned"})),
            400,
            "is not inside",
        ),
        (
            operator.as_str(),
            action("echo", json!({"msg": "x".repeat(33)})),
            400,
            "longer than 32",
        ),
        (
            operator.as_str(),
            action("echo", json!({"msg": "$(touch pwned)"})),
            400,
            "allowed are",
        ),
        (
            operator.as_str(),
            action("echo", json!({"msg": "hi", "extra": "1"})),
            400,
            "not an argument",
        ),
        (
            operator.as_str(),
            action("admin-only", json!({})),
            403,
            "admin role",
        ),
        (
            viewer.as_str(),
            action("echo", json!({"msg": "hi"})),
            403,
            "operator role",
        ),
        (
            viewer.as_str(),
            json!({"op": "lifecycle", "target": {"kind": "container", "name": "web"}, "verb": "restart"}),
            403,
            "operator role",
        ),
        (
            operator.as_str(),
            json!({"op": "lifecycle", "target": {"kind": "container", "name": "web;reboot"}, "verb": "stop"}),
            400,
            "not a valid container name",
        ),
        (
            operator.as_str(),
            json!({"op": "lifecycle", "target": {"kind": "agent"}, "verb": "stop"}),
            400,
            "does not allow stop",
        ),
        (
            operator.as_str(),
            json!({"op": "teleport"}),
            400,
            "unknown variant `teleport`",
        ),
    ];
    let mut expected_denials = 0;
    for (token, body, code, says) in &refusals {
        let (status, answer) = run(token, body.clone());
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, *code, "{body}: {answer}");
        assert!(
            message.contains(says),
            "{body}: {message:?} should say {says:?}"
        );
        expected_denials += 1;
    }
    let (status, answer) = tokio::task::block_in_place(|| {
        hub.post(
            "/api/v1/nodes/n_doesnotexist/commands",
            &operator,
            &action("echo", json!({"msg": "hi"})),
        )
    });
    assert_eq!(status, 404, "{answer}");
    expected_denials += 1;
    let (_, denied) = hub.get("/api/v1/audit?action=command.run&outcome=denied", &admin);
    assert_eq!(
        denied.as_array().unwrap().len(),
        expected_denials,
        "{denied}"
    );
    let files: Vec<_> = std::fs::read_dir(dir.join("files")).unwrap().collect();
    assert!(
        files.is_empty() && !dir.join("pwned").exists(),
        "a refused command ran"
    );

    // Acceptance 4: a timeout kills the whole process group; output past the cap is cut.
    let started = Instant::now();
    let done = until_done(&run(operator.as_str(), action("sleepy", json!({}))).1);
    assert_eq!(done["status"], "timed_out", "{done}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let done = until_done(&run(operator.as_str(), action("chatty", json!({}))).1);
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(done["truncated"], true);
    let text = command_output(&done);
    assert!(
        text.len() < 1200 && text.contains("[twinbay: output truncated at 1024 bytes"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !dir.join("survivor").exists(),
        "a process of the timed-out group survived"
    );

    // Cancel: the agent kills it at once; a second cancel finds it ended.
    let (_, long) = run(&operator, action("long", json!({})));
    let long_id = long["id"].as_str().unwrap().to_string();
    let cancelled_at = Instant::now();
    let auth = format!("Bearer {operator}");
    let cancel = || {
        http(
            hub.addr,
            "DELETE",
            &format!("/api/v1/commands/{long_id}"),
            &[("Authorization", &auth)],
            "",
        )
        .unwrap()
        .0
    };
    assert_eq!(tokio::task::block_in_place(cancel), 202);
    let done = until_done(&long);
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        cancelled_at.elapsed()
    );
    assert_eq!(tokio::task::block_in_place(cancel), 409);

    // The CLI: output here, the remote exit code as its own.
    let ctl = |args: &[&str]| {
        Command::new(BIN)
            .arg("ctl")
            .arg("--data-dir")
            .arg(&hub.dir)
            .args(args)
            .env("TWINBAY_TOKEN", &operator)
            .output()
            .unwrap()
    };
    let out = tokio::task::block_in_place(|| ctl(&["exec", &node, "echo", "msg=from the cli"]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from the cli\n");
    assert_eq!(out.status.code(), Some(0));
    let hostname = twin["host"]["hostname"].as_str().unwrap();
    let out = tokio::task::block_in_place(|| ctl(&["exec", hostname, "fail"]));
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(3), "no\n")
    );
    let out = tokio::task::block_in_place(|| ctl(&["exec", &node, "echo", "msg=a|b"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("allowed are") && err.lines().count() == 1,
        "{err}"
    );
    let out = tokio::task::block_in_place(|| ctl(&["version", &node, "agent"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("twinbay agent "),
        "{out:?}"
    );

    // `restart` on the agent: it answers, reconnects, and runs commands again.
    let connections = |hub: &Hub| {
        let (_, events) = hub.get(&format!("/api/v1/nodes/{node}/events?limit=500"), &admin);
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "agent.connected")
            .count()
    };
    let before = connections(&hub);
    let done = until_done(
        &run(
            &operator,
            json!({"op": "lifecycle", "target": {"kind": "agent"}, "verb": "restart"}),
        )
        .1,
    );
    assert_eq!(done["status"], "ok", "{done}");
    tokio::task::block_in_place(|| {
        wait_for("the agent to reconnect", Duration::from_secs(15), || {
            (connections(&hub) > before).then_some(())
        })
    });
    let (status, r) = tokio::task::block_in_place(|| {
        let body =
            json!({"op": "action", "name": "echo", "args": {"msg": "back"}, "wait_secs": 15});
        hub.post(&format!("/api/v1/nodes/{node}/commands"), &operator, &body)
    });
    assert_eq!(status, 202, "{r}");
    assert_eq!(command_output(&until_done(&r)), "back\n");

    // A command for a host whose agent is gone fails at once, and says so.
    agent.signal("-TERM");
    tokio::task::block_in_place(|| {
        wait_for(
            "the node to be disconnected",
            Duration::from_secs(10),
            || (hub.node(&admin, &node)?["connected"] == false).then_some(()),
        )
    });
    let asked = Instant::now();
    let (status, answer) = run(operator.as_str(), action("echo", json!({"msg": "hi"})));
    assert_eq!(status, 409, "{answer}");
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not connected"),
        "{answer}"
    );
}

/// Issue 13: an argument that reads as an option, and a path argument that
/// leaves its directory through a symlink only the agent can see. No Podman.
const ARGUMENT_POLICY: &str = r#"
actions:
  echo:
    argv: [echo, "{msg}"]
    args:
      - { name: msg, type: string, required: true }
  list:
    argv: [ls, "--", "{dir}"]
    args:
      - { name: dir, type: path, under: DIR/shared, required: true }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_cannot_become_options_or_follow_symlinks_out() {
    let dir = temp_dir("cmd-arguments");
    std::fs::create_dir_all(dir.join("shared/sub")).unwrap();
    std::fs::write(dir.join("shared/sub/inner-file"), "x").unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("shared/etclink")).unwrap();
    std::os::unix::fs::symlink("sub", dir.join("shared/inside")).unwrap();
    let shared = std::fs::canonicalize(dir.join("shared")).unwrap();
    let shared = shared.to_str().unwrap().to_string();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        ARGUMENT_POLICY.replace("DIR", dir.to_str().unwrap()),
    )
    .unwrap();
    let hub = Hub::start(&dir.join("hub"));
    let admin = hub.token("admin");
    let operator = hub.token("operator");
    let _agent = agent_with(
        Some(&hub.join()),
        &dir.join("agent"),
        &["--policy", policy.to_str().unwrap()],
    );
    let (node, _) = hub.wait_twin(
        &admin,
        "the node with its policy",
        Duration::from_secs(20),
        |t| t["policy"]["actions"]["list"].is_object(),
    );
    let run = |args: Value, name: &str| {
        tokio::task::block_in_place(|| {
            let body = json!({"op": "action", "name": name, "args": args});
            let (status, r) = hub.post(&format!("/api/v1/nodes/{node}/commands"), &operator, &body);
            if status != 202 {
                return (status, r);
            }
            let id = r["id"].as_str().unwrap();
            (
                status,
                hub.wait_command(&admin, id, Duration::from_secs(20)),
            )
        })
    };

    // Defect 6: `--version` made echo print its version. The hub refuses it.
    let (status, answer) = run(json!({"msg": "--version"}), "echo");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"]["message"],
        "argument \"msg\" \"--version\" starts with '-', which the program would read as an option"
    );

    // Defect 7: the hub cannot see the symlink; the agent resolves the path,
    // refuses, and nothing runs.
    for path in [format!("{shared}/etclink/"), format!("{shared}/etclink")] {
        let (status, done) = run(json!({"dir": path}), "list");
        assert_eq!(status, 202, "{done}");
        assert_eq!(done["status"], "refused", "{done}");
        assert_eq!(
            done["error"],
            format!("argument \"dir\" \"{path}\" leads outside {shared} through a symlink")
        );
        assert_eq!(command_output(&done), "", "nothing ran");
    }
    // Each end is audited just after it is shown (see the restart test).
    tokio::task::block_in_place(|| {
        wait_for("both refusals audited", Duration::from_secs(5), || {
            let (_, denied) = hub.get("/api/v1/audit?action=command.end&outcome=denied", &admin);
            (denied.as_array()?.len() == 2).then_some(())
        })
    });
    // A symlink that stays inside is fine; the program gets the real path.
    let (_, done) = run(json!({"dir": format!("{shared}/inside")}), "list");
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(command_output(&done), "inner-file\n");
}
