//! Schedules on real agents: a minute's slot on every host of a group,
//! each with its own run and command; an offline host and a forbidden
//! overlap as visible skips; a hub stopped past slots catching up once.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const POLICY: &str = r#"
actions:
  hello:
    argv: [echo, "scheduled hello"]
  long:
    argv: [sleep, "100"]
    timeout: 2m
"#;

const MINUTE: i64 = 60_000;

/// An agent with `--label role=sched` and the policy above.
fn labelled_agent(hub: &Hub, dir: &Path, name: &str) -> Proc {
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let state = dir.join(name);
    std::fs::create_dir_all(&state).unwrap();
    agent_logged(
        &hub.join(),
        &state,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--label",
            "role=sched",
            "--label",
            &format!("name={name}"),
        ],
    )
}

/// The node id of the connected host labelled `name=NAME`.
fn node_named(hub: &Hub, token: &str, name: &str) -> String {
    wait_for(
        &format!("{name} connected with its policy"),
        Duration::from_secs(30),
        || {
            hub.nodes(token).into_iter().find_map(|n| {
                let id = n["id"].as_str()?.to_string();
                let (_, twin) = hub.get(&format!("/api/v1/nodes/{id}"), token);
                (n["connected"] == true
                    && twin["host"]["labels"]["name"] == name
                    && twin["policy"]["actions"]["hello"].is_object())
                .then_some(id)
            })
        },
    )
}

fn runs(hub: &Hub, token: &str, id: i64) -> Vec<Value> {
    let (status, runs) = hub.get(&format!("/api/v1/schedules/{id}/runs"), token);
    assert_eq!(status, 200, "{runs}");
    runs.as_array().unwrap().clone()
}

/// Waits for a `schedule.missed` event on `node` that `pred` accepts.
fn missed_event(hub: &Hub, token: &str, node: &str, pred: impl Fn(&Value) -> bool) -> Value {
    tokio::task::block_in_place(|| {
        wait_for("a schedule.missed event", Duration::from_secs(10), || {
            let (status, ev) = hub.get(&format!("/api/v1/nodes/{node}/events?limit=200"), token);
            assert_eq!(status, 200, "{ev}");
            ev.as_array()?
                .iter()
                .find(|e| e["kind"] == "schedule.missed" && pred(e))
                .cloned()
        })
    })
}

fn create(hub: &Hub, token: &str, body: Value) -> Value {
    let (status, s) = hub.post("/api/v1/schedules", token, &body);
    assert_eq!(status, 201, "{s}");
    s
}

fn ctl_remote(hub: &Hub, token: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["ctl", "--data-dir"])
        .arg(&hub.dir)
        .args(["schedules"])
        .args(args)
        .env("TWINBAY_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctl schedules {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_schedule_runs_on_every_host_of_its_group() {
    let dir = temp_dir("sched-group");
    let hub = Hub::start(&dir.join("hub"));
    let admin = hub.token("admin");
    let operator = hub.token("operator");
    let viewer = hub.token("viewer");
    let _a = labelled_agent(&hub, &dir, "a");
    let _b = labelled_agent(&hub, &dir, "b");
    let c = labelled_agent(&hub, &dir, "c");
    let (a, b, c_id) = tokio::task::block_in_place(|| {
        (
            node_named(&hub, &admin, "a"),
            node_named(&hub, &admin, "b"),
            node_named(&hub, &admin, "c"),
        )
    });
    // The third host goes away: its run is a visible skip.
    drop(c);
    tokio::task::block_in_place(|| {
        wait_for("c to be offline", Duration::from_secs(10), || {
            hub.node(&admin, &c_id).filter(|n| n["connected"] == false)
        })
    });

    // A pattern that never fires, and a zone that does not exist, are refused.
    let body = |cron: &str, tz: &str| {
        json!({"name": "hello", "cron": cron, "timezone": tz,
            "target": {"group": "role=sched"},
            "command": {"op": "action", "name": "hello"}})
    };
    let (status, err) = hub.post("/api/v1/schedules", &operator, &body("0 0 30 2 *", "UTC"));
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("never fires"),
        "{err}"
    );
    let (status, err) = hub.post(
        "/api/v1/schedules",
        &operator,
        &body("* * * * *", "Mars/Base"),
    );
    assert_eq!(status, 400, "{err}");
    let (status, _) = hub.post("/api/v1/schedules", &viewer, &body("* * * * *", "UTC"));
    assert_eq!(status, 403);

    let s = create(&hub, &operator, body("* * * * *", "Europe/Berlin"));
    let id = s["id"].as_i64().unwrap();
    let slot = s["next_run_ms"].as_i64().unwrap();
    let now = now_ms() as i64;
    assert_eq!(slot % MINUTE, 0, "{s}");
    assert!(slot > now && slot <= now + MINUTE, "{s}");
    // The preview agrees.
    let (status, p) = hub.post(
        "/api/v1/schedules/preview",
        &viewer,
        &json!({"cron": "* * * * *", "timezone": "Europe/Berlin"}),
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["next_runs_ms"].as_array().unwrap().len(), 5);

    // The slot comes: one run per host, each with its own command.
    let done = tokio::task::block_in_place(|| {
        wait_for("the slot's runs", Duration::from_secs(90), || {
            let r: Vec<Value> = runs(&hub, &viewer, id)
                .into_iter()
                .filter(|r| r["slot_ms"] == slot)
                .collect();
            (r.len() == 3 && r.iter().all(|r| r["status"] != "running")).then_some(r)
        })
    });
    let on = |node: &str| done.iter().find(|r| r["node_id"] == node).unwrap().clone();
    let (ra, rb, rc) = (on(&a), on(&b), on(&c_id));
    for r in [&ra, &rb] {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["trigger"], "slot", "{r}");
        let cmd = hub.wait_command(
            &admin,
            r["command_id"].as_str().unwrap(),
            Duration::from_secs(10),
        );
        assert_eq!(cmd["actor"], "scheduler", "{cmd}");
        assert_eq!(cmd["node_id"], r["node_id"], "{cmd}");
        assert!(command_output(&cmd).contains("scheduled hello"), "{cmd}");
    }
    assert_ne!(ra["command_id"], rb["command_id"]);
    assert_eq!(rc["status"], "skipped", "{rc}");
    assert!(rc["reason"].as_str().unwrap().contains("offline"), "{rc}");
    missed_event(&hub, &admin, &c_id, |e| e["detail"]["schedule_id"] == id);
    // The schedule moved on and says when it ran.
    let (_, s) = hub.get(&format!("/api/v1/schedules/{id}"), &viewer);
    assert_eq!(s["last_run_ms"], slot, "{s}");
    assert_eq!(s["last_outcome"], "skipped", "the worst host's: {s}");
    assert!(s["next_run_ms"].as_i64().unwrap() > slot, "{s}");
    // Every scheduled command is in the audit trail, by the scheduler.
    let (_, trail) = hub.get("/api/v1/audit?action=command.run&limit=100", &admin);
    let by_scheduler = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "scheduler")
        .count();
    assert!(by_scheduler >= 2, "{trail}");
    let (_, trail) = hub.get("/api/v1/audit?action=schedule.&limit=100", &admin);
    assert!(
        trail
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "schedule.create"),
        "{trail}"
    );
    // The CLI shows the same.
    let table = ctl_remote(&hub, &operator, &["runs", &id.to_string()]);
    assert!(
        table.contains(ra["command_id"].as_str().unwrap()),
        "{table}"
    );
    assert!(table.contains("offline"), "{table}");
    let table = ctl_remote(&hub, &operator, &["list"]);
    assert!(table.contains("group role=sched"), "{table}");
    // Disabled, it has no next run; removed, it is gone.
    let mut edit = body("* * * * *", "Europe/Berlin");
    edit["enabled"] = json!(false);
    let (status, s) = hub.send("PUT", &format!("/api/v1/schedules/{id}"), &operator, &edit);
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["next_run_ms"], Value::Null, "{s}");
    let out = ctl_remote(&hub, &operator, &["rm", &id.to_string()]);
    assert!(out.contains("removed"), "{out}");
    let (status, _) = hub.get(&format!("/api/v1/schedules/{id}"), &viewer);
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_forbid_skips_a_slot_while_the_last_run_still_runs() {
    let dir = temp_dir("sched-overlap");
    let hub = Hub::start(&dir.join("hub"));
    let admin = hub.token("admin");
    let operator = hub.token("operator");
    let _a = labelled_agent(&hub, &dir, "a");
    let a = tokio::task::block_in_place(|| node_named(&hub, &admin, "a"));
    // Not right before a minute: the run by hand must start before the slot.
    tokio::task::block_in_place(|| {
        wait_for(
            "a time well before the next minute",
            Duration::from_secs(15),
            || ((now_ms() as i64 % MINUTE) < 50_000).then_some(()),
        )
    });
    let s = create(
        &hub,
        &operator,
        json!({"name": "long", "cron": "* * * * *", "timezone": "UTC",
            "target": {"node": a}, "overlap": "forbid",
            "command": {"op": "action", "name": "long"}}),
    );
    let id = s["id"].as_i64().unwrap();
    let slot = s["next_run_ms"].as_i64().unwrap();
    // Run now: the long action starts (and runs past the next slot).
    let (status, started) = hub.post(
        &format!("/api/v1/schedules/{id}/run"),
        &operator,
        &json!({}),
    );
    assert_eq!(status, 202, "{started}");
    assert_eq!(started[0]["status"], "dispatched", "{started}");
    let first = started[0]["command_id"].as_str().unwrap().to_string();
    let skipped = tokio::task::block_in_place(|| {
        wait_for("the slot's skip", Duration::from_secs(90), || {
            runs(&hub, &admin, id)
                .into_iter()
                .find(|r| r["slot_ms"] == slot)
        })
    });
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    assert_eq!(skipped["trigger"], "slot", "{skipped}");
    let reason = skipped["reason"].as_str().unwrap();
    assert!(
        reason.contains("still running") && reason.contains(&first),
        "{reason}"
    );
    missed_event(&hub, &admin, &a, |e| e["detail"]["reason"] == reason);
    // The first run is still going; its run says so.
    let first_run = runs(&hub, &admin, id)
        .into_iter()
        .find(|r| r["command_id"] == first.as_str())
        .unwrap();
    assert_eq!(first_run["status"], "running", "{first_run}");
    assert_eq!(first_run["trigger"], "manual", "{first_run}");
    let (status, _) = hub.send(
        "DELETE",
        &format!("/api/v1/commands/{first}"),
        &operator,
        &json!({}),
    );
    assert_eq!(status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_stopped_past_slots_catches_up_exactly_once() {
    let dir = temp_dir("sched-restart");
    let hub_dir = dir.join("hub");
    let hub = Hub::start(&hub_dir);
    let port = hub.addr.port();
    let admin = hub.token("admin");
    let _a = labelled_agent(&hub, &dir, "a");
    let a = tokio::task::block_in_place(|| node_named(&hub, &admin, "a"));
    // Start early in a minute, so that the hub is down for two slots in
    // under two minutes.
    tokio::task::block_in_place(|| {
        wait_for(
            "the first half of a minute",
            Duration::from_secs(35),
            || ((now_ms() as i64 % MINUTE) < 25_000).then_some(()),
        )
    });
    let s = create(
        &hub,
        &admin,
        json!({"name": "hello", "cron": "* * * * *", "timezone": "America/New_York",
            "target": {"node": a}, "command": {"op": "action", "name": "hello"}}),
    );
    let id = s["id"].as_i64().unwrap();
    let first = s["next_run_ms"].as_i64().unwrap();
    hub.proc.signal("-TERM");
    let Hub { proc, .. } = hub;
    tokio::task::block_in_place(|| proc.wait_exit(Duration::from_secs(15)));
    // Down past two slots.
    let back_at = first + MINUTE + 2_000;
    tokio::time::sleep(Duration::from_millis(
        (back_at - now_ms() as i64).max(0) as u64
    ))
    .await;
    let hub = Hub::start_on(&hub_dir, port);
    let catch_up = tokio::task::block_in_place(|| {
        wait_for("the catch-up run", Duration::from_secs(60), || {
            runs(&hub, &admin, id)
                .into_iter()
                .find(|r| r["trigger"] == "catch_up" && r["status"] != "running")
        })
    });
    assert_eq!(
        catch_up["slot_ms"],
        first + MINUTE,
        "the latest slot: {catch_up}"
    );
    assert_eq!(catch_up["status"], "ok", "{catch_up}");
    let all = runs(&hub, &admin, id);
    let missed: Vec<&Value> = all.iter().filter(|r| r["status"] == "missed").collect();
    assert_eq!(missed.len(), 1, "{all:?}");
    assert_eq!(missed[0]["slot_ms"], first, "{all:?}");
    let e = missed_event(&hub, &admin, &a, |e| e["detail"]["schedule_id"] == id);
    assert!(
        e["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("hub was not running"),
        "{e}"
    );
    // Nothing else ran for those slots, and the next is a plain one.
    let late = all
        .iter()
        .filter(|r| r["slot_ms"].as_i64() <= Some(first + MINUTE) && r["status"] != "missed")
        .count();
    assert_eq!(late, 1, "exactly one catch-up: {all:?}");
    let (_, s) = hub.get(&format!("/api/v1/schedules/{id}"), &admin);
    assert_eq!(s["next_run_ms"], first + 2 * MINUTE, "{s}");
}

#[test]
fn a_caller_limited_to_a_group_schedules_only_inside_it() {
    let dir = temp_dir("sched-scoped");
    let hub = Hub::start(&dir.join("hub"));
    let admin = hub.token("admin");
    let scoped = hub.ctl(&[
        "api-token",
        "create",
        "--role",
        "operator",
        "--group",
        "role=a",
    ]);
    let body = |group: &str| {
        json!({"name": group, "cron": "0 3 * * *", "timezone": "UTC",
            "target": {"group": group}, "command": {"op": "action", "name": "hello"}})
    };
    let (status, err) = hub.post("/api/v1/schedules", &scoped, &body("role=b"));
    assert_eq!(status, 403, "{err}");
    let mine = create(&hub, &scoped, body("role=a"));
    let theirs = create(&hub, &admin, body("role=b"));
    let (_, list) = hub.get("/api/v1/schedules", &scoped);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["role=a"]);
    assert_eq!(mine["role"], "operator", "{mine}");
    for path in ["", "/runs"] {
        let (status, _) = hub.get(
            &format!("/api/v1/schedules/{}{path}", theirs["id"]),
            &scoped,
        );
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = hub.send(
        "DELETE",
        &format!("/api/v1/schedules/{}", theirs["id"]),
        &scoped,
        &json!({}),
    );
    assert_eq!(status, 404);
    // The CLI adds and runs one; with no host in the group, the run says so.
    let out = ctl_remote(
        &hub,
        &scoped,
        &[
            "add",
            "cli",
            "--cron",
            "0 3 * * *",
            "--timezone",
            "Europe/Berlin",
            "--group",
            "role=a",
            "--action",
            "hello",
            "--arg",
            "who=world",
        ],
    );
    assert!(out.contains("added; next run"), "{out}");
    let (_, list) = hub.get("/api/v1/schedules", &scoped);
    let cli = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "cli")
        .unwrap()
        .clone();
    assert_eq!(cli["command"]["args"]["who"], "world", "{cli}");
    let out = ctl_remote(&hub, &scoped, &["run", &cli["id"].to_string()]);
    assert!(
        out.contains("skipped no host matches group role=a"),
        "{out}"
    );
    // A bad command body is refused with the reason.
    let mut bad = body("role=a");
    bad["command"] = json!({"op": "lifecycle", "target": {"kind": "container", "name": "web"}, "verb": "logs", "follow": true});
    let (status, err) = hub.post("/api/v1/schedules", &scoped, &bad);
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("follow"),
        "{err}"
    );
}
