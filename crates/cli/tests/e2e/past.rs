//! Issue 24: the twin's past, with a real agent and real Podman. Containers
//! are started, stopped, restarted and recreated with another image; at
//! moments in between the test records what `GET /nodes/{id}` said, then
//! asks `?at=` each moment, the change list between moments, the topology
//! then, and bad moments.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// A container that exits quickly (7) when stopped.
const LOOP: &str = "trap 'exit 7' TERM; while true; do sleep 0.1; done";

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman")
        .args(args)
        .output()
        .expect("podman is installed (scripts/podman-setup.sh)");
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The test's containers in a twin: name → (image, state).
fn mine(twin: &Value, prefix: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = twin["containers"]
        .as_object()
        .map(|m| m.values().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["image"].as_str().unwrap().to_string(),
                c["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A recorded moment: when, the test's containers then, the whole twin.
type Moment = (i64, Vec<(String, String, String)>, Value);

struct Removal(Vec<String>);

impl Drop for Removal {
    fn drop(&mut self) {
        for args in &self.0 {
            let args: Vec<&str> = args.split(' ').collect();
            let _ = Command::new("podman").args(&args).output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_past_of_a_host_reads_back_as_it_was() {
    let (dir, socket, _service) = podman_dir("past");
    let hub = Hub::start(&dir.join("hub"));
    let token = hub.token("viewer");
    let sock = socket.to_str().unwrap().to_string();
    let _agent = agent_with(
        Some(&hub.join()),
        &dir.join("agent"),
        &["--container-socket", &sock],
    );
    let (id, _) = tokio::task::block_in_place(|| {
        hub.wait_twin(
            &token,
            "the node, with containers watched",
            Duration::from_secs(20),
            |twin| twin["sources"]["containers"]["available"] == true,
        )
    });
    let prefix = format!("tb-past-{}-", std::process::id());
    let web = format!("{prefix}web");
    let newer = format!("localhost/twinbay-busybox:past-{}", std::process::id());
    podman(&["tag", IMAGE, &newer]);
    let _cleanup = Removal(vec![format!("rm -f -t 0 {web}"), format!("rmi {newer}")]);
    let twin_of = |hub: &Hub| {
        let (status, twin) = hub.get(&format!("/api/v1/nodes/{id}"), &token);
        assert_eq!(status, 200, "{twin}");
        twin
    };
    // Waits until the twin shows `want`, lets the recorder write it (every
    // second), and records the moment and what the twin said then.
    let mut moments: Vec<Moment> = Vec::new();
    let settle = |want: Vec<(&str, &str, &str)>, moments: &mut Vec<Moment>| {
        let want: Vec<(String, String, String)> = want
            .into_iter()
            .map(|(n, i, s)| (n.to_string(), i.to_string(), s.to_string()))
            .collect();
        tokio::task::block_in_place(|| {
            wait_for(
                &format!("the twin to show {want:?}"),
                Duration::from_secs(10),
                || (mine(&twin_of(&hub), &prefix) == want).then_some(()),
            );
            std::thread::sleep(Duration::from_millis(1500));
            let at = now_ms() as i64;
            let twin = twin_of(&hub);
            assert_eq!(mine(&twin, &prefix), want, "changed while settling");
            moments.push((at, want, twin));
            std::thread::sleep(Duration::from_millis(50));
        });
    };

    settle(vec![], &mut moments);
    podman(&["run", "-d", "--name", &web, IMAGE, "sh", "-c", LOOP]);
    settle(vec![(&web, IMAGE, "running")], &mut moments);
    podman(&["stop", "-t", "5", &web]);
    settle(vec![(&web, IMAGE, "exited")], &mut moments);
    podman(&["start", &web]);
    settle(vec![(&web, IMAGE, "running")], &mut moments);
    // Recreated with a newer image.
    podman(&["rm", "-f", "-t", "0", &web]);
    podman(&["run", "-d", "--name", &web, &newer, "sh", "-c", LOOP]);
    settle(vec![(&web, &newer, "running")], &mut moments);
    podman(&["rm", "-f", "-t", "0", &web]);
    settle(vec![], &mut moments);

    // Every moment reads back as the twin was then: the same containers,
    // host and shape.
    for (at, want, then) in &moments {
        let (status, past) = hub.get(&format!("/api/v1/nodes/{id}?at={at}"), &token);
        assert_eq!(status, 200, "{past}");
        assert_eq!(&mine(&past, &prefix), want, "at {at}");
        assert_eq!(past["at"], *at);
        assert!(past["recorded_at"].as_i64().unwrap() <= *at, "{past}");
        assert_eq!(past["id"], id.as_str());
        assert_eq!(past["hostname"], then["hostname"]);
        assert_eq!(past["host"], then["host"]);
        assert_eq!(past["connected"], true);
        for field in [
            "containers",
            "units",
            "ports",
            "mounts",
            "interfaces",
            "sources",
        ] {
            assert!(past.get(field).is_some(), "{field} in {past}");
        }
        // The same moment in RFC 3339.
        let rfc = chrono_like(*at);
        let (status, again) = hub.get(&format!("/api/v1/nodes/{id}?at={rfc}"), &token);
        assert_eq!(status, 200, "{again}");
        assert_eq!(&mine(&again, &prefix), want, "at {rfc}");
    }

    // What changed over the whole run names every transition of `web`.
    let (first, last) = (moments[0].0, moments[moments.len() - 1].0);
    let (status, changes) = hub.get(
        &format!("/api/v1/nodes/{id}/changes?from={first}&to={last}"),
        &token,
    );
    assert_eq!(status, 200, "{changes}");
    let subject = |changes: &Value| -> Value {
        changes["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subject"] == format!("container {web}").as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no container {web} in {changes}"))
    };
    let steps: Vec<String> = subject(&changes)["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["change"].as_str().unwrap().to_string())
        .collect();
    // Podman's transitional states (created, stopping) may or may not be
    // recorded between flushes, and a recreation may read as one step or
    // as removed, then created.
    let recreated = format!("image {IMAGE} → {newer}");
    let created_newer = format!("created (image {newer}");
    let created = format!("created (image {IMAGE}");
    type Step<'a> = (&'a str, Box<dyn Fn(&str) -> bool + 'a>);
    let expected: [Step; 5] = [
        (
            "created",
            Box::new(|s: &str| s.starts_with(created.as_str())),
        ),
        ("stopped", Box::new(|s: &str| s.contains("→ exited"))),
        ("started again", Box::new(|s: &str| s.contains("exited → "))),
        (
            "recreated with the newer image",
            Box::new(|s: &str| {
                s.contains(recreated.as_str()) || s.starts_with(created_newer.as_str())
            }),
        ),
        ("removed", Box::new(|s: &str| s == "removed")),
    ];
    let mut at = 0;
    for (what, matches) in &expected {
        let found = steps[at..]
            .iter()
            .position(|s| matches(s))
            .unwrap_or_else(|| panic!("no step {what:?} in order in {steps:?}"));
        at += found + 1;
    }
    // Between two moments: only what happened in between.
    let (status, one) = hub.get(
        &format!(
            "/api/v1/nodes/{id}/changes?from={}&to={}",
            moments[1].0, moments[2].0
        ),
        &token,
    );
    assert_eq!(status, 200, "{one}");
    let web_then = subject(&one);
    let steps = web_then["transitions"].as_array().unwrap();
    assert!(
        steps
            .last()
            .and_then(|t| t["change"].as_str())
            .is_some_and(|c| c.contains("→ exited")),
        "{one}"
    );
    assert!(
        web_then["summary"]
            .as_str()
            .unwrap()
            .contains("state running → exited"),
        "{one}"
    );
    // Fleet-wide, the same node and subject.
    let (status, fleet) = hub.get(&format!("/api/v1/changes?from={first}&to={last}"), &token);
    assert_eq!(status, 200, "{fleet}");
    let node = fleet["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{fleet}"));
    subject(node);

    // The topology then: the container is there while it ran, gone after.
    let container_in = |at: i64| {
        let (status, graph) = hub.get(&format!("/api/v1/topology?at={at}"), &token);
        assert_eq!(status, 200, "{graph}");
        graph["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "container" && n["label"] == web.as_str())
    };
    assert!(container_in(moments[1].0));
    assert!(!container_in(moments[5].0));

    // The CLI: `ctl host --at` in the 'YYYY-MM-DD HH:MM:SS' form (UTC),
    // `--json` as the API has it, and `ctl changes` as readable lines.
    let ctl = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["ctl", "--data-dir"])
            .arg(&hub.dir)
            .args(args)
            .env("TWINBAY_TOKEN", &token)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let stopped_at = moments[2].0;
    let utc_then = chrono_like(stopped_at).replace('T', " ").replace('Z', "");
    let (success, text, err) = ctl(&["host", &id, "--at", &utc_then]);
    assert!(success, "{err}");
    assert!(text.contains("as it was at"), "{text}");
    let web_line = text
        .lines()
        .find(|l| l.starts_with(web.as_str()))
        .unwrap_or_else(|| panic!("no {web} in {text}"));
    assert!(
        web_line.contains(IMAGE) && web_line.contains("exited (7)"),
        "{web_line}"
    );
    let (success, json, err) = ctl(&["host", &id, "--at", &stopped_at.to_string(), "--json"]);
    assert!(success, "{err}");
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(mine(&json, &prefix), moments[2].1);
    let (success, now_text, err) = ctl(&["host", &id]);
    assert!(success, "{err}");
    assert!(
        !now_text.contains(web.as_str()) && now_text.contains(" now, "),
        "{now_text}"
    );
    let (success, text, err) = ctl(&[
        "changes",
        "--from",
        &first.to_string(),
        "--to",
        &last.to_string(),
        "--host",
        &id,
    ]);
    assert!(success, "{err}");
    assert!(text.starts_with("What changed from "), "{text}");
    let at = text
        .find(&format!("  container {web}: "))
        .unwrap_or_else(|| panic!("no container {web} in {text}"));
    let web_part = &text[at..];
    assert!(
        web_part.contains("→ exited") && web_part.contains("  removed"),
        "{text}"
    );
    let (success, json, err) = ctl(&["changes", "--since", "1h", "--json"]);
    assert!(success, "{err}");
    let json: Value = serde_json::from_str(&json).unwrap();
    subject(
        json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{json}")),
    );
    let (success, _, err) = ctl(&["host", &id, "--at", "yesterday"]);
    assert!(
        !success && err.contains("--at: \"yesterday\" is not a time"),
        "{err}"
    );
    let (success, _, err) = ctl(&["changes", "--since", "1h", "--from", "2h ago"]);
    assert!(!success && err.contains("cannot be used with"), "{err}");

    // MCP: what_changed answers REST's list (as JSON and as lines), and
    // get_host `at` the host as it was; audited as reads.
    crate::mcp::sdk_present();
    let admin = hub.token("admin");
    let (_, rest) = hub.get(
        &format!("/api/v1/changes?from={first}&to={last}&node={id}"),
        &token,
    );
    let steps = crate::mcp::over_http(
        &hub,
        &token,
        &serde_json::json!([
            crate::mcp::call(
                "what_changed",
                serde_json::json!({"from": first.to_string(), "to": last.to_string(), "host": id})
            ),
            crate::mcp::call("get_host", serde_json::json!({"node": id, "at": utc_then})),
            crate::mcp::call("what_changed", serde_json::json!({"from": "yesterday"})),
            crate::mcp::call("get_host", serde_json::json!({"node": id, "at": "1000"})),
        ]),
    );
    let answer = crate::mcp::ok(&steps[0]);
    assert_eq!(answer["nodes"], rest["nodes"], "{answer}");
    assert_eq!(answer["truncated"], false);
    let readable = steps[0]["content"][1]["text"].as_str().unwrap_or_default();
    assert!(
        readable.contains(&format!("  container {web}: ")),
        "{readable}"
    );
    let then = &crate::mcp::ok(&steps[1])["host"];
    assert_eq!(mine(then, &prefix), moments[2].1);
    assert_eq!(then["at"], stopped_at);
    crate::mcp::refused(&steps[2], "bad request: from: ");
    crate::mcp::refused(&steps[3], "not found: ");
    wait_for(
        "the what_changed read audited",
        Duration::from_secs(5),
        || {
            crate::mcp::audited(&hub, &admin, "mcp.read", |e| {
                e["outcome"] == "ok" && crate::mcp::detail_has(e, "tool=what_changed")
            })
        },
    );

    // Bad moments: a clear 400; before the node's first record: a clear 404.
    for bad in ["yesterday", "2026-13-01T00:00:00Z", "99999999999999999999"] {
        let (status, body) = hub.get(&format!("/api/v1/nodes/{id}?at={bad}"), &token);
        assert_eq!(status, 400, "{bad}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("at: "), "{message}");
    }
    let (status, body) = hub.get("/api/v1/topology?at=soon", &token);
    assert_eq!(status, 400, "{body}");
    let (status, body) = hub.get(
        &format!("/api/v1/nodes/{id}/changes?from={last}&to={first}"),
        &token,
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = hub.get(&format!("/api/v1/nodes/{id}?at=1000"), &token);
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no recorded state"),
        "{body}"
    );
}

/// `ms` as RFC 3339 in UTC, with milliseconds.
fn chrono_like(ms: i64) -> String {
    let out = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}.{:03}", ms / 1000, ms % 1000),
            "+%Y-%m-%dT%H:%M:%S.%3NZ",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
