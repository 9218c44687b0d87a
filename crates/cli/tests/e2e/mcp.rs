//! Issue 20: the MCP server, driven by the official Python SDK (PyPI `mcp`
//! 2.x, `mcp_client.py`) over streamable HTTP and through `twinbay mcp` on
//! stdio, against a hub with a real agent, real Podman and simulated hosts.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/mcp_client.py");
/// The tools that change something.
const ACTS: [&str; 4] = [
    "run_command",
    "acknowledge_alert",
    "silence_alert",
    "run_schedule_now",
];

/// Removes the container when the test ends, passed or not.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub(crate) fn sdk_present() {
    let ok = Command::new("python3")
        .args(["-c", "import mcp"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "the MCP Python SDK is missing: pip install 'mcp>=2'");
}

/// Runs a plan with the Python SDK; its answer (`server`, `steps`).
fn python(args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(CLIENT)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "client output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(v.get("error").is_none(), "the client failed: {v}");
    v
}

pub(crate) fn over_http(hub: &Hub, token: &str, plan: &Value) -> Vec<Value> {
    let url = format!("http://{}/mcp", hub.addr);
    let v = python(&["http", &url, token, &plan.to_string()]);
    assert_eq!(v["server"]["name"], "twinbay", "{v}");
    v["steps"].as_array().unwrap().clone()
}

/// `twinbay mcp` for `hub` (TLS, pinned by the hub's data dir).
fn stdio_command(hub: &Hub) -> Vec<String> {
    let dir = hub.dir.to_str().unwrap().to_string();
    [BIN, "mcp", "--hub", &hub.url(), "--data-dir", &dir]
        .map(String::from)
        .to_vec()
}

fn over_stdio(hub: &Hub, token: &str, plan: &Value) -> Vec<Value> {
    let mut args = vec!["stdio".to_string(), token.to_string(), plan.to_string()];
    args.extend(stdio_command(hub));
    let v = python(&args.iter().map(String::as_str).collect::<Vec<_>>());
    v["steps"].as_array().unwrap().clone()
}

pub(crate) fn call(tool: &str, args: Value) -> Value {
    json!({"call": tool, "args": args})
}

/// A tool's structured answer; panics on a tool error. Its text content
/// is the same JSON (clients without structured output read that).
pub(crate) fn ok(step: &Value) -> &Value {
    assert_eq!(step["isError"], false, "{step}");
    let s = &step["structuredContent"];
    assert!(s.is_object(), "no structured content: {step}");
    let text = step["content"][0]["text"].as_str().unwrap_or_default();
    let same = serde_json::from_str::<Value>(text).is_ok_and(|t| &t == s);
    assert!(
        same,
        "the text content is not the structured content: {step}"
    );
    s
}

/// A tool error's text.
pub(crate) fn tool_error(step: &Value) -> String {
    assert_eq!(step["isError"], true, "expected a tool error: {step}");
    step["content"][0]["text"].as_str().unwrap().to_string()
}

/// Asserts `step` is a tool error that starts with `prefix`.
pub(crate) fn refused(step: &Value, prefix: &str) {
    let text = tool_error(step);
    assert!(text.starts_with(prefix), "expected {prefix:?}: {step}");
}

/// The newest of the last 1,000 `action` audit entries that `matches`.
pub(crate) fn audited(
    hub: &Hub,
    admin: &str,
    action: &str,
    matches: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let (_, entries) = hub.get(&format!("/api/v1/audit?action={action}&limit=1000"), admin);
    entries
        .as_array()
        .unwrap_or_else(|| panic!("the audit trail is not a list: {entries}"))
        .iter()
        .find(|e| matches(e))
        .cloned()
}

/// An audit entry's detail contains `part`.
pub(crate) fn detail_has(entry: &Value, part: &str) -> bool {
    entry["detail"].as_str().is_some_and(|d| d.contains(part))
}

fn ids(list: &[Value], key: &str) -> BTreeSet<String> {
    list.iter()
        .map(|v| v[key].as_str().unwrap().to_string())
        .collect()
}

fn container(twin: &Value, name: &str) -> Option<Value> {
    twin["containers"]
        .as_object()?
        .values()
        .find(|c| c["name"] == name)
        .cloned()
}

#[test]
fn an_assistant_reads_the_twin_and_restarts_a_container_through_the_same_guarded_path() {
    sdk_present();
    let (dir, socket, _service) = podman_dir("mcp");
    let hub = Hub::start(&dir.join("hub"));
    let admin = hub.token("admin");
    let operator = hub.token("operator");
    let viewer = hub.token("viewer");
    let name = format!("tb-mcp-{}", std::process::id());
    let _cleanup = Container(name.clone());
    podman(&[
        "run",
        "-d",
        "--name",
        &name,
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 1; done",
    ]);
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "actions:\n  count:\n    argv: [echo, \"{n}\", \"{loud}\"]\n    args:\n      \
         - { name: n, type: int, min: 1, max: 100, required: true }\n      \
         - { name: loud, type: bool, required: true }\n",
    )
    .unwrap();
    let _agent = agent_logged(
        &hub.join(),
        &dir.join("agent"),
        &[
            "--container-socket",
            socket.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    let (node, before) = hub.wait_twin(
        &admin,
        "the real node with its running container",
        Duration::from_secs(30),
        |t| t["policy"].is_object() && container(t, &name).is_some_and(|c| c["state"] == "running"),
    );
    let _sim = sim(&hub.join(), 12, &["--interval", "1s"], &dir.join("sim.log"));
    hub.wait_connected(&admin, 13, Duration::from_secs(30));

    // Tools: schemas and honest annotations.
    let steps = over_http(&hub, &operator, &json!([{"list_tools": true}]));
    let tools = steps[0]["tools"].as_array().unwrap();
    let names = ids(tools, "name");
    for tool in [
        "list_hosts",
        "get_host",
        "get_command",
        "list_events",
        "query_metrics",
        "list_alerts",
        "get_topology",
        "impact",
        "file_history",
        "file_diff",
        "find",
        "what_changed",
        "list_schedules",
        "list_backups",
        "run_command",
        "acknowledge_alert",
        "silence_alert",
        "run_schedule_now",
    ] {
        assert!(names.contains(tool), "{tool} missing from {names:?}");
    }
    for t in tools {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert_eq!(t["outputSchema"]["type"], "object", "{t}");
        let name = t["name"].as_str().unwrap();
        let read_only = !ACTS.contains(&name);
        assert_eq!(t["annotations"]["readOnlyHint"], read_only, "{t}");
        if !read_only {
            // Running something can break it; acknowledging or silencing
            // only adds to the hub's own records.
            let runs = name.starts_with("run_");
            assert_eq!(t["annotations"]["destructiveHint"], runs, "{t}");
            let idempotent = name == "acknowledge_alert";
            assert_eq!(t["annotations"]["idempotentHint"], idempotent, "{t}");
        }
    }

    // Reads answer what REST answers.
    let rest_nodes = hub.nodes(&viewer);
    let (_, rest_twin) = hub.get(&format!("/api/v1/nodes/{node}"), &viewer);
    let (_, rest_alerts) = hub.get("/api/v1/alerts", &viewer);
    let (_, rest_topology) = hub.get("/api/v1/topology", &viewer);
    let now = now_ms() as i64;
    let steps = over_http(
        &hub,
        &viewer,
        &json!([
            call("list_hosts", json!({})),
            call("get_host", json!({"node": node})),
            call(
                "get_host",
                json!({"node": node, "include_processes": false, "include_ports": false})
            ),
            call("list_events", json!({"node": node, "limit": 5})),
            call("query_metrics", json!({"node": node, "minutes": 10})),
            call(
                "query_metrics",
                json!({"node": node, "from": 0, "to": now, "max_points": 500})
            ),
            call(
                "query_metrics",
                json!({"node": node, "from": 0, "to": now, "resolution": "raw"})
            ),
            call("list_alerts", json!({})),
            call("get_topology", json!({})),
            call("find", json!({"query": name, "kinds": ["container"]})),
            call("file_history", json!({"node": node, "path": "/etc/none"})),
            call("list_hosts", json!({"limit": 2})),
            call("get_host", json!({"node": "n_nosuchnode"})),
            call("list_hosts", json!({"limit": "lots"})),
            call("list_hosts", json!({"colour": "red"})),
            call("no_such_tool", json!({})),
            call("file_diff", json!({"node": node, "path": "/etc/none"})),
            call("get_topology", json!({"node": node})),
        ]),
    );
    let hosts = ok(&steps[0]);
    assert_eq!(
        ids(hosts["hosts"].as_array().unwrap(), "id"),
        ids(&rest_nodes, "id")
    );
    assert_eq!(hosts["truncated"], false);
    let host = &ok(&steps[1])["host"];
    assert_eq!(host["id"], rest_twin["id"]);
    assert_eq!(host["hostname"], rest_twin["hostname"]);
    // This test's container, as REST has it (Podman is shared: other tests'
    // containers come and go between the two reads).
    let (mcp_c, rest_c) = (container(host, &name), container(&rest_twin, &name));
    let (mcp_c, rest_c) = (mcp_c.expect("MCP has it"), rest_c.expect("REST has it"));
    for field in ["id", "name", "image"] {
        assert_eq!(mcp_c[field], rest_c[field], "{field}");
    }
    let short = ok(&steps[2]);
    assert_eq!(short["host"]["processes"], json!({}));
    assert_eq!(short["host"]["ports"], json!({}));
    assert_eq!(short["omitted"], json!(["processes", "ports"]));
    let events = ok(&steps[3])["events"].as_array().unwrap().clone();
    assert!(!events.is_empty() && events.len() <= 5, "{events:?}");
    let (_, rest_events) = hub.get(&format!("/api/v1/nodes/{node}/events?limit=1000"), &viewer);
    for e in &events {
        assert!(
            rest_events.as_array().unwrap().contains(e),
            "{e} not in REST"
        );
    }
    let metrics = ok(&steps[4]);
    let series = ids(metrics["series"].as_array().unwrap(), "name");
    assert_eq!(series, ["cpu", "mem_used"].map(String::from).into());
    for s in metrics["series"].as_array().unwrap() {
        assert!(s["points"].as_array().unwrap().len() <= 120, "{s}");
        assert!(s["summary"]["points"].as_u64().unwrap() > 0, "{s}");
    }
    // A range of half a century: a coarse resolution and bounded points.
    let huge = ok(&steps[5]);
    assert_ne!(huge["resolution"], "raw", "{huge}");
    for s in huge["series"].as_array().unwrap() {
        assert!(s["points"].as_array().unwrap().len() <= 500);
    }
    refused(&steps[6], "bad request: raw points cover at most a day");
    // The default rules may raise an alert between the two reads: every
    // alert MCP names is one the REST API lists (all of them, resolved too).
    let _ = rest_alerts;
    let (_, rest_all) = hub.get("/api/v1/alerts?show=all", &viewer);
    let alert_ids = |list: &Value| -> BTreeSet<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].to_string())
            .collect()
    };
    // A pending alert whose condition clears is dropped, not resolved: only
    // those that fired must still be listed.
    let mut fired = ok(&steps[7])["alerts"].clone();
    fired
        .as_array_mut()
        .unwrap()
        .retain(|a| a["state"] != "pending");
    let (in_rest, in_mcp) = (alert_ids(&rest_all), alert_ids(&fired));
    assert!(in_mcp.is_subset(&in_rest), "{in_mcp:?} vs {in_rest:?}");
    // The graph is capped (500 elements) and says so.
    let topology = ok(&steps[8]);
    let rest_ids = ids(rest_topology["nodes"].as_array().unwrap(), "id");
    let mcp_ids = ids(topology["nodes"].as_array().unwrap(), "id");
    assert!(mcp_ids.is_subset(&rest_ids));
    assert_eq!(mcp_ids.len(), rest_ids.len().min(500));
    assert_eq!(topology["truncated"], rest_ids.len() > 500);
    let mine = ok(&steps[17]);
    let mine_ids = ids(mine["nodes"].as_array().unwrap(), "id");
    for n in rest_topology["nodes"].as_array().unwrap() {
        if n["node_id"] == node.as_str() {
            assert!(mine_ids.contains(n["id"].as_str().unwrap()), "{n}");
        }
    }
    assert_eq!(mine["truncated"], false);
    let found = ok(&steps[9])["results"].as_array().unwrap().clone();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0]["node"].as_str(), found[0]["kind"].as_str()),
        (Some(node.as_str()), Some("container"))
    );
    assert_eq!(ok(&steps[10])["versions"], json!([]));
    let two = ok(&steps[11]);
    assert_eq!(two["hosts"].as_array().unwrap().len(), 2);
    assert_eq!(
        (two["matched"].as_u64(), two["truncated"].as_bool()),
        (Some(13), Some(true))
    );
    refused(&steps[12], "not found");
    assert!(tool_error(&steps[13]).contains("invalid type"));
    assert!(tool_error(&steps[14]).contains("unknown field"));
    assert!(
        steps[15]["raised"]
            .as_str()
            .unwrap()
            .contains("tool not found"),
        "{}",
        steps[15]
    );
    // The diff route needs operator; so does the tool.
    refused(&steps[16], "forbidden: this needs the operator role");

    // A viewer cannot restart: a tool error, and nothing runs.
    let commands_before = hub.get(&format!("/api/v1/nodes/{node}/commands"), &admin).1;
    let restart = call(
        "run_command",
        json!({"node": node, "verb": "restart", "target": format!("container:{name}")}),
    );
    let steps = over_http(&hub, &viewer, &json!([restart]));
    refused(&steps[0], "forbidden");
    assert_eq!(
        hub.get(&format!("/api/v1/nodes/{node}/commands"), &admin).1,
        commands_before
    );

    // An operator restarts the real container; it restarts.
    let started = container(&before, &name).unwrap()["started_at"].clone();
    let steps = over_http(
        &hub,
        &operator,
        &json!([restart, call("get_command", json!({"id": "cmd_nosuch"}))]),
    );
    let done = ok(&steps[0]);
    assert_eq!(done["command"]["status"], "ok", "{done}");
    assert!(
        done["output"]
            .as_str()
            .unwrap()
            .contains(&format!("restarted {name}")),
        "{done}"
    );
    refused(&steps[1], "not found");
    let id = done["command"]["id"].as_str().unwrap().to_string();
    wait_for("the container's new start", Duration::from_secs(10), || {
        let (_, twin) = hub.get(&format!("/api/v1/nodes/{node}"), &admin);
        container(&twin, &name).filter(|c| c["started_at"] != started && c["state"] == "running")
    });
    // The audit trail names the token, the client and the arguments.
    let operator_id = hub
        .get("/api/v1/tokens", &admin)
        .1
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "operator")
        .unwrap()["id"]
        .to_string();
    let entry = audited(&hub, &admin, "mcp.run_command", |e| e["outcome"] == "ok")
        .expect("an ok mcp.run_command entry");
    assert_eq!(entry["actor"], format!("token:{operator_id}"), "{entry}");
    assert_eq!(entry["target"], format!("node:{node}"));
    assert_eq!(entry["address"], "127.0.0.1");
    let detail = entry["detail"].as_str().unwrap();
    for part in [
        "tool=run_command",
        "client=twinbay-e2e/9.9",
        "\"verb\":\"restart\"",
        name.as_str(),
    ] {
        assert!(detail.contains(part), "{part} not in {detail}");
    }
    assert!(
        audited(&hub, &admin, "mcp.run_command", |e| e["outcome"]
            == "denied")
        .is_some()
    );
    // The command went the commands API's way: its own entries too.
    assert!(audited(&hub, &admin, "command.run", |e| detail_has(e, &id)).is_some());
    // Reads are audited as mcp.read (written beside the answer), the
    // refused ones too.
    wait_for("mcp.read entries", Duration::from_secs(5), || {
        let has = |part: &str, outcome: &str| {
            audited(&hub, &admin, "mcp.read", |e| {
                e["outcome"] == outcome && detail_has(e, part)
            })
            .is_some()
        };
        (has("tool=query_metrics", "ok") && has("tool=file_diff", "denied")).then_some(())
    });

    // Typed arguments: JSON numbers and booleans, in MCP and in REST, checked
    // by the action's schema.
    let steps = over_http(
        &hub,
        &operator,
        &json!([
            call(
                "run_command",
                json!({"node": node, "action": "count", "args": {"n": 7, "loud": false}})
            ),
            call(
                "run_command",
                json!({"node": node, "action": "count", "args": {"n": 700, "loud": false}})
            ),
            call(
                "run_command",
                json!({"node": node, "action": "count", "args": {"n": [7]}})
            ),
        ]),
    );
    assert_eq!(ok(&steps[0])["output"], "7 false\n", "{}", steps[0]);
    refused(&steps[1], "bad request");
    refused(&steps[2], "bad request");
    let path = format!("/api/v1/nodes/{node}/commands");
    let (status, record) = hub.post(
        &path,
        &operator,
        &json!({"op": "action", "name": "count", "args": {"n": 30, "loud": true}}),
    );
    assert_eq!(status, 202, "{record}");
    let done = hub.wait_command(
        &operator,
        record["id"].as_str().unwrap(),
        Duration::from_secs(20),
    );
    assert_eq!(command_output(&done), "30 true\n", "{done}");
    let (status, body) = hub.post(
        &path,
        &operator,
        &json!({"op": "action", "name": "count", "args": {"n": 30.5, "loud": true}}),
    );
    assert_eq!(status, 400, "{body}");

    // A token limited to a host group: other hosts are not found.
    let twins: Vec<Value> = hub
        .nodes(&admin)
        .iter()
        .map(|n| {
            hub.get(
                &format!("/api/v1/nodes/{}", n["id"].as_str().unwrap()),
                &admin,
            )
            .1
        })
        .filter(|t| t["simulated"] == true)
        .collect();
    let site = twins[0]["host"]["labels"]["site"]
        .as_str()
        .unwrap()
        .to_string();
    let scoped = hub.ctl(&[
        "api-token",
        "create",
        "--role",
        "operator",
        "--group",
        &format!("site={site}"),
    ]);
    let inside: BTreeSet<String> = twins
        .iter()
        .filter(|t| t["host"]["labels"]["site"] == site.as_str())
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let steps = over_http(
        &hub,
        &scoped,
        &json!([
            call("list_hosts", json!({})),
            call("get_host", json!({"node": node})),
            restart,
            call("find", json!({"query": name})),
        ]),
    );
    assert_eq!(
        ids(ok(&steps[0])["hosts"].as_array().unwrap(), "id"),
        inside
    );
    refused(&steps[1], "not found");
    refused(&steps[2], "not found");
    assert_eq!(ok(&steps[3])["results"], json!([]));

    // The same through `twinbay mcp` on stdio (TLS, pinned by the data dir).
    let steps = over_stdio(
        &hub,
        &operator,
        &json!([
            {"list_tools": true},
            call("list_hosts", json!({"state": "connected"})),
            restart,
        ]),
    );
    assert!(ids(steps[0]["tools"].as_array().unwrap(), "name").contains("run_command"));
    assert_eq!(ok(&steps[1])["matched"], 13);
    assert_eq!(ok(&steps[2])["command"]["status"], "ok", "{}", steps[2]);
    let steps = over_stdio(&hub, &viewer, &json!([restart]));
    refused(&steps[0], "forbidden");
    assert!(audited(&hub, &admin, "mcp.run_command", from_stdio).is_some());
}

/// An audit entry of a call through `twinbay mcp`.
fn from_stdio(entry: &Value) -> bool {
    entry["user_agent"]
        .as_str()
        .is_some_and(|u| u.starts_with("twinbay-mcp/"))
}

#[test]
fn refusals_read_only_and_off() {
    sdk_present();
    let dir = temp_dir("mcp-refusals");
    let hub = Hub::start_with(&dir.join("hub"), free_port(), &["--mcp", "read-only"]);
    let operator = hub.token("operator");
    let _sim = sim(&hub.join(), 3, &["--interval", "1s"], &dir.join("sim.log"));
    hub.wait_connected(&operator, 3, Duration::from_secs(30));

    // Read-only: the act tools are not there at all.
    let steps = over_http(
        &hub,
        &operator,
        &json!([
            {"list_tools": true},
            call("run_command", json!({"node": "x", "verb": "status", "target": "agent"})),
            {"list_prompts": true},
            {"prompt": "diagnose_host", "args": {"node": "nas", "symptom": "Immich is slow"}},
        ]),
    );
    // Prompts name the tools that gather the context.
    assert_eq!(
        ids(steps[2]["prompts"].as_array().unwrap(), "name"),
        ["diagnose_host", "what_changed"].map(String::from).into()
    );
    let text = steps[3]["messages"][0]["content"]["text"].as_str().unwrap();
    assert!(
        text.contains("get_host with node=\"nas\"") && text.contains("Immich is slow"),
        "{text}"
    );
    let names = ids(steps[0]["tools"].as_array().unwrap(), "name");
    assert!(
        names.contains("get_host") && !names.contains("run_command"),
        "{names:?}"
    );
    assert!(
        steps[1]["raised"]
            .as_str()
            .unwrap()
            .contains("tool not found"),
        "{}",
        steps[1]
    );

    // Resources: each visible host's twin and the recent events.
    let some = hub.nodes(&operator)[0]["id"].as_str().unwrap().to_string();
    let steps = over_http(
        &hub,
        &operator,
        &json!([
            {"list_resources": true},
            {"read": format!("twinbay://hosts/{some}")},
            {"read": "twinbay://events/recent"},
            {"read": "twinbay://hosts/n_nosuchnode"},
        ]),
    );
    let uris = ids(steps[0]["resources"].as_array().unwrap(), "uri");
    assert_eq!(uris.len(), 4, "{uris:?}");
    assert!(
        uris.contains("twinbay://events/recent")
            && uris.contains(&format!("twinbay://hosts/{some}"))
    );
    let host: Value =
        serde_json::from_str(steps[1]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(host["host"]["id"], some.as_str());
    let events: Value =
        serde_json::from_str(steps[2]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert!(!events["events"].as_array().unwrap().is_empty(), "{events}");
    assert!(
        steps[3]["raised"].as_str().unwrap().contains("not found"),
        "{}",
        steps[3]
    );

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
    .to_string();
    let bearer = format!("Bearer {operator}");
    let accept = ("Accept", "application/json, text/event-stream");
    let json_type = ("Content-Type", "application/json");
    let post = |headers: &[(&str, &str)], body: &str| {
        http(hub.addr, "POST", "/mcp", headers, body).unwrap()
    };
    // No token, a wrong one, a malformed header: 401 before MCP.
    let (status, body) = post(&[accept, json_type], &init);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("API token"), "{body}");
    assert_eq!(
        post(
            &[accept, json_type, ("Authorization", "Bearer tbk_wrong")],
            &init
        )
        .0,
        401
    );
    assert_eq!(
        post(&[accept, json_type, ("Authorization", "Basic eDp5")], &init).0,
        401
    );
    // A session cookie is not a token here.
    let cookie = sign_in_cookie(hub.addr, "admin", ADMIN_PASSWORD);
    assert_eq!(
        post(&[accept, json_type, ("Cookie", &cookie)], &init).0,
        401
    );
    // A name that is not the hub's: 403 (DNS rebinding), also with a good token.
    let (status, body) = post(
        &[
            accept,
            json_type,
            ("Authorization", &bearer),
            ("Host", "evil.example:443"),
        ],
        &init,
    );
    assert_eq!(status, 403, "{body}");
    let (status, _) = post(
        &[
            accept,
            json_type,
            ("Authorization", &bearer),
            ("Origin", "https://evil.example"),
        ],
        &init,
    );
    assert_eq!(status, 403);
    // With everything right, the handshake answers.
    let (status, body) = post(&[accept, json_type, ("Authorization", &bearer)], &init);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"serverInfo\""), "{body}");
    // Malformed JSON-RPC: a JSON-RPC error, not a crash.
    let (status, body) = post(
        &[accept, json_type, ("Authorization", &bearer)],
        "{\"jsonrpc\": 2, ",
    );
    assert!((400..500).contains(&status), "{status} {body}");
    let (status, body) = post(
        &[accept, json_type, ("Authorization", &bearer)],
        "[1, 2, 3]",
    );
    assert!((400..500).contains(&status), "{status} {body}");
    // Oversized: refused before it is read.
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{{\"name\":\"find\",\"arguments\":{{\"query\":\"{}\"}}}}}}",
        "x".repeat(200_000)
    );
    let (status, _) = post(&[accept, json_type, ("Authorization", &bearer)], &big);
    assert_eq!(status, 413);
    // The hub is unaffected.
    assert_eq!(http(hub.addr, "GET", "/healthz", &[], "").unwrap().0, 200);
    assert_eq!(hub.nodes(&operator).len(), 3);
    let steps = over_http(&hub, &operator, &json!([call("list_hosts", json!({}))]));
    assert_eq!(ok(&steps[0])["matched"], 3);

    // `twinbay mcp` outlives a hub restart (the hub forgets its sessions):
    // it opens a new session the way the client opened the first.
    let mut relay = Command::new(BIN)
        .args(["mcp", "--hub", &format!("http://{}", hub.addr)])
        .env("TWINBAY_TOKEN", &operator)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = relay.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(relay.stdout.take().unwrap());
    let mut ask = |line: &str, answer: bool| -> Value {
        use std::io::{BufRead, Write};
        writeln!(stdin, "{line}").unwrap();
        if !answer {
            return Value::Null;
        }
        let mut text = String::new();
        stdout.read_line(&mut text).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
    };
    let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "list_hosts", "arguments": {}}})
    .to_string();
    assert!(ask(&init, true)["result"]["serverInfo"].is_object());
    ask(
        r#"{"jsonrpc": "2.0", "method": "notifications/initialized"}"#,
        false,
    );
    assert_eq!(
        ask(&list, true)["result"]["structuredContent"]["matched"],
        3
    );
    let port = hub.addr.port();
    let hub_dir = hub.dir.clone();
    drop(hub);
    let hub = Hub::start_with(&hub_dir, port, &["--mcp", "read-only"]);
    let again = ask(&list, true);
    assert_eq!(again["result"]["isError"], false, "{again}");
    drop(stdin);
    let _ = relay.wait();
    drop(hub);

    // Off: no /mcp at all.
    let off = Hub::start_with(&dir.join("off"), free_port(), &["--mcp", "off"]);
    let token = off.token("viewer");
    let (status, _) = http(
        off.addr,
        "POST",
        "/mcp",
        &[
            accept,
            json_type,
            ("Authorization", &format!("Bearer {token}")),
        ],
        &init,
    )
    .unwrap();
    assert_eq!(status, 404);
}

/// The id of the token with every host in `GET /api/v1/tokens` (by role
/// and read-only flag).
fn token_id(hub: &Hub, admin: &str, role: &str, read_only: bool) -> i64 {
    let (_, tokens) = hub.get("/api/v1/tokens", admin);
    tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == role && t["read_only"] == read_only && t["groups"].is_null())
        .unwrap_or_else(|| panic!("no {role} token (read-only {read_only}): {tokens}"))["id"]
        .as_i64()
        .unwrap()
}

/// A read-only token reads and changes nothing, in MCP and in REST; the
/// alert, schedule and backup tools answer what their REST routes answer,
/// under the same roles, host groups and audit.
#[test]
fn read_only_tokens_and_the_hubs_own_work() {
    sdk_present();
    let dir = temp_dir("mcp-work");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("notes.txt"), "the twin\n").unwrap();
    let hub = Hub::start(&dir.join("hub"));
    let admin = hub.token("admin");
    let operator = hub.token("operator");
    let viewer = hub.token("viewer");
    // Read-only tokens, made by the CLI and by the API (an admin's role, even).
    let ro_cli = hub.ctl(&["api-token", "create", "--role", "operator", "--read-only"]);
    let (status, made) = hub.post(
        "/api/v1/tokens",
        &admin,
        &json!({"name": "assistant", "role": "admin", "read_only": true}),
    );
    assert_eq!(status, 201, "{made}");
    let ro_api = made["token"].as_str().unwrap().to_string();
    let (_, tokens) = hub.get("/api/v1/tokens", &admin);
    let flagged = tokens
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["read_only"] == true)
        .count();
    assert_eq!(flagged, 2, "{tokens}");
    let scoped = hub.ctl(&[
        "api-token",
        "create",
        "--role",
        "operator",
        "--group",
        "site=elsewhere",
    ]);

    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "backup:\n  roots: [{}]\nactions:\n  hello:\n    argv: [echo, scheduled hello]\n",
            data.display()
        ),
    )
    .unwrap();
    let agent = agent_logged(
        &hub.join(),
        &dir.join("agent"),
        &["--policy", policy.to_str().unwrap()],
    );
    let (node, _) = hub.wait_twin(
        &admin,
        "the node with its policy",
        Duration::from_secs(30),
        |t| t["policy"]["backup"].is_object(),
    );

    // A backup, a schedule and a firing alert, made through REST.
    let (status, c) = hub.post(
        &format!("/api/v1/nodes/{node}/commands"),
        &operator,
        &json!({"op": "backup", "job": "notes", "source": {"kind": "dir", "path": data}}),
    );
    assert_eq!(status, 202, "{c}");
    let done = hub.wait_command(
        &operator,
        c["id"].as_str().unwrap(),
        Duration::from_secs(30),
    );
    assert_eq!(done["status"], "ok", "{done}");
    let (status, s) = hub.post(
        "/api/v1/schedules",
        &operator,
        &json!({"name": "hello", "cron": "0 3 * * *", "timezone": "UTC",
            "target": {"node": node}, "command": {"op": "action", "name": "hello"}}),
    );
    assert_eq!(status, 201, "{s}");
    let schedule = s["id"].as_i64().unwrap();
    let (status, rule) = hub.post(
        "/api/v1/alerts/rules",
        &admin,
        &json!({"name": "memory in use", "kind": "memory", "above": 1, "node": node}),
    );
    assert_eq!(status, 201, "{rule}");
    let rule_id = rule["id"].as_i64().unwrap();
    let alert = wait_for("the memory alert", Duration::from_secs(30), || {
        let (_, alerts) = hub.get("/api/v1/alerts", &viewer);
        alerts
            .as_array()?
            .iter()
            .find(|a| a["rule_id"] == rule_id && a["state"] == "firing")
            .cloned()
    });
    let alert_id = alert["id"].as_i64().unwrap();
    let commands = |hub: &Hub| {
        let (_, list) = hub.get(&format!("/api/v1/nodes/{node}/commands"), &admin);
        list.as_array().unwrap().len()
    };
    let ran_before = commands(&hub);

    // Read-only: no act tools listed, each refused anyway, and REST refuses
    // every write (even a status command) while reads answer.
    for ro in [&ro_cli, &ro_api] {
        let steps = over_http(
            &hub,
            ro,
            &json!([
                {"list_tools": true},
                call("run_command", json!({"node": node, "verb": "status", "target": "agent"})),
                call("acknowledge_alert", json!({"id": alert_id})),
                call("silence_alert", json!({"node": node, "duration": "1h", "comment": "x"})),
                call("run_schedule_now", json!({"id": schedule})),
                call("list_hosts", json!({})),
            ]),
        );
        let names = ids(steps[0]["tools"].as_array().unwrap(), "name");
        for act in ACTS {
            assert!(!names.contains(act), "{act} listed to a read-only token");
        }
        for read in [
            "list_hosts",
            "get_host",
            "list_alerts",
            "list_schedules",
            "list_backups",
        ] {
            assert!(names.contains(read), "{read} missing from {names:?}");
        }
        for step in &steps[1..5] {
            assert!(
                tool_error(step).starts_with("forbidden: this API token is read-only"),
                "{step}"
            );
        }
        assert_eq!(ok(&steps[5])["matched"], 1);
        assert_eq!(hub.get("/api/v1/nodes", ro).0, 200);
        assert_eq!(hub.get("/api/v1/backups", ro).0, 200);
        let (status, e) = hub.post(
            &format!("/api/v1/nodes/{node}/commands"),
            ro,
            &json!({"op": "lifecycle", "verb": "status", "target": {"kind": "agent"}}),
        );
        assert_eq!(status, 403, "{e}");
        assert!(e.to_string().contains("read-only"), "{e}");
        let ack = format!("/api/v1/alerts/{alert_id}/ack");
        assert_eq!(hub.post(&ack, ro, &json!({})).0, 403);
        let run = format!("/api/v1/schedules/{schedule}/run");
        assert_eq!(hub.post(&run, ro, &json!({})).0, 403);
        // A preview changes nothing: allowed.
        let (status, p) = hub.post(
            "/api/v1/schedules/preview",
            ro,
            &json!({"cron": "0 3 * * *", "timezone": "UTC"}),
        );
        assert_eq!(status, 200, "{p}");
    }
    // A read-only admin token cannot mint a writing one.
    let (status, _) = hub.post("/api/v1/tokens", &ro_api, &json!({"role": "admin"}));
    assert_eq!(status, 403);
    assert_eq!(
        commands(&hub),
        ran_before,
        "a read-only token ran something"
    );
    let (_, runs) = hub.get(&format!("/api/v1/schedules/{schedule}/runs"), &admin);
    assert_eq!(runs, json!([]));

    // The read tools answer what REST answers; a viewer may not act.
    let steps = over_http(
        &hub,
        &viewer,
        &json!([
            call("list_schedules", json!({})),
            call("list_backups", json!({})),
            call("list_backups", json!({"node": node, "job": "notes"})),
            call("list_backups", json!({"job": "nope"})),
            call("acknowledge_alert", json!({"id": alert_id})),
            call("run_schedule_now", json!({"id": schedule})),
            call("list_schedules", json!({"runs": 5})),
            call("list_backups", json!({"limit": 0})),
        ]),
    );
    let (_, rest_schedules) = hub.get("/api/v1/schedules", &viewer);
    assert_eq!(ok(&steps[0])["schedules"], rest_schedules);
    let (_, rest_backups) = hub.get("/api/v1/backups", &viewer);
    assert_eq!(rest_backups.as_array().unwrap().len(), 1, "{rest_backups}");
    assert_eq!(ok(&steps[1])["backups"], rest_backups);
    assert_eq!(ok(&steps[2])["backups"], rest_backups);
    assert_eq!(ok(&steps[3])["backups"], json!([]));
    refused(&steps[4], "forbidden: this needs the operator role");
    refused(&steps[5], "forbidden");
    refused(&steps[6], "bad request");
    refused(&steps[7], "bad request");

    // A token limited to other hosts sees none of it and touches none.
    let steps = over_http(
        &hub,
        &scoped,
        &json!([
            call("list_backups", json!({})),
            call("list_schedules", json!({})),
            call("acknowledge_alert", json!({"id": alert_id})),
            call("run_schedule_now", json!({"id": schedule})),
        ]),
    );
    assert_eq!(ok(&steps[0])["backups"], json!([]));
    assert_eq!(ok(&steps[1])["schedules"], json!([]));
    refused(&steps[2], "not found");
    refused(&steps[3], "not found");
    assert_eq!(commands(&hub), ran_before);

    // An operator acts; REST shows the same.
    let steps = over_http(
        &hub,
        &operator,
        &json!([
            call(
                "acknowledge_alert",
                json!({"id": alert_id, "comment": "on it"})
            ),
            call(
                "silence_alert",
                json!({"node": node, "rule_id": rule_id, "duration": "2h", "comment": "maintenance"})
            ),
            call("run_schedule_now", json!({"id": schedule})),
            call("acknowledge_alert", json!({"id": 999_999})),
            call(
                "silence_alert",
                json!({"node": node, "duration": "forever", "comment": "x"})
            ),
            call("run_schedule_now", json!({"id": 999_999})),
            call(
                "silence_alert",
                json!({"node": "n_nosuchnode", "duration": "1h", "comment": "x"})
            ),
        ]),
    );
    let operator_id = token_id(&hub, &admin, "operator", false);
    let acked = &ok(&steps[0])["alert"];
    assert_eq!(acked["acked_by"], format!("token:{operator_id}"), "{acked}");
    assert_eq!(acked["ack_comment"], "on it");
    let (_, rest_alerts) = hub.get("/api/v1/alerts?show=all", &viewer);
    let rest_alert = rest_alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == alert_id)
        .unwrap()
        .clone();
    assert_eq!(rest_alert["acked_ms"], acked["acked_ms"], "{rest_alert}");
    let silence = ok(&steps[1]);
    let (_, rest_silences) = hub.get("/api/v1/alerts/silences", &viewer);
    assert_eq!(rest_silences[0], silence["silence"], "{rest_silences}");
    assert_eq!(rest_silences[0]["id"], silence["id"]);
    let s = &silence["silence"];
    assert_eq!(
        s["ends_ms"].as_i64().unwrap() - s["starts_ms"].as_i64().unwrap(),
        2 * 3_600_000
    );
    assert_eq!(s["node_id"], node.as_str());
    let started = ok(&steps[2])["runs"].as_array().unwrap().clone();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["status"], "dispatched", "{started:?}");
    let command = started[0]["command_id"].as_str().unwrap();
    let ended = hub.wait_command(&operator, command, Duration::from_secs(20));
    assert_eq!(command_output(&ended), "scheduled hello\n", "{ended}");
    refused(&steps[3], "not found");
    refused(&steps[4], "bad request");
    refused(&steps[5], "not found");
    refused(&steps[6], "not found");
    // The schedule's runs, through MCP and REST, once the command ended.
    let (_, rest_runs) = hub.get(&format!("/api/v1/schedules/{schedule}/runs"), &viewer);
    let steps = over_http(
        &hub,
        &viewer,
        &json!([call("list_schedules", json!({"id": schedule, "runs": 5}))]),
    );
    let one = ok(&steps[0]);
    assert_eq!(one["runs"], rest_runs);
    assert_eq!(one["runs"][0]["command_id"], command);
    assert_eq!(one["schedules"][0]["id"], schedule);

    // Audited: MCP's entry names the token, the client and the target; the
    // route's own entries are there too; the refusals are denied entries.
    let entry = |action: &str, outcome: &str| -> Value {
        audited(&hub, &admin, action, |e| e["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {outcome} {action} entry"))
    };
    let ack = entry("mcp.acknowledge_alert", "ok");
    assert_eq!(ack["actor"], format!("token:{operator_id}"));
    assert_eq!(ack["target"], format!("alert:{alert_id}"));
    assert!(
        ack["detail"]
            .as_str()
            .unwrap()
            .contains("client=twinbay-e2e/9.9"),
        "{ack}"
    );
    let run = entry("mcp.run_schedule_now", "ok");
    assert_eq!(run["target"], format!("schedule:{schedule}"));
    let ro_id = token_id(&hub, &admin, "operator", true);
    let denied = audited(&hub, &admin, "mcp.run_schedule_now", |e| {
        e["outcome"] == "denied" && e["actor"] == format!("token:{ro_id}")
    });
    assert!(denied.is_some(), "no denied entry for token:{ro_id}");
    for action in ["alert.ack", "alert_silence.create", "schedule.run"] {
        assert_eq!(entry(action, "ok")["actor"], format!("token:{operator_id}"));
    }

    // A subscription to the host's twin hears of its change (the agent goes
    // away), over HTTP and through `twinbay mcp` on stdio (which relays the
    // hub's notifications); a host the token cannot see cannot be
    // subscribed to.
    let uri = format!("twinbay://hosts/{node}");
    let plan = json!([
        {"subscribe": "twinbay://hosts/n_nosuchnode", "wait": 0},
        {"subscribe": uri, "wait": 20},
    ])
    .to_string();
    let http = {
        let (url, token, plan) = (
            format!("http://{}/mcp", hub.addr),
            viewer.clone(),
            plan.clone(),
        );
        std::thread::spawn(move || python(&["http", &url, &token, &plan]))
    };
    let stdio = {
        let mut args = vec!["stdio".to_string(), viewer.clone(), plan];
        args.extend(stdio_command(&hub));
        std::thread::spawn(move || python(&args.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    wait_for("both subscriptions", Duration::from_secs(20), || {
        let subscribed = |how: fn(&Value) -> bool| {
            audited(&hub, &admin, "mcp.read", |e| {
                e["outcome"] == "ok" && detail_has(e, &format!("subscribe={uri}")) && how(e)
            })
            .is_some()
        };
        (subscribed(|e| !from_stdio(e)) && subscribed(from_stdio)).then_some(())
    });
    drop(agent);
    for listener in [http, stdio] {
        let heard = listener.join().unwrap();
        let steps = heard["steps"].as_array().unwrap();
        assert!(
            steps[0]["raised"].as_str().unwrap().contains("not found"),
            "{heard}"
        );
        assert_eq!(steps[1]["updated"], json!([uri]), "{heard}");
    }
    wait_for("the host to be down", Duration::from_secs(10), || {
        hub.node(&admin, &node).filter(|n| n["connected"] == false)
    });
}
