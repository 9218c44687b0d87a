//! Issue 20: the MCP server, driven by the official Python SDK (PyPI `mcp`
//! 2.x, `mcp_client.py`) over streamable HTTP and through `twinbay mcp` on
//! stdio, against a hub with a real agent, real Podman and simulated hosts.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const IMAGE: &str = "localhost/twinbay-busybox:latest";
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/mcp_client.py");

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

fn sdk_present() {
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

fn over_http(hub: &Hub, token: &str, plan: &Value) -> Vec<Value> {
    let url = format!("http://{}/mcp", hub.addr);
    let v = python(&["http", &url, token, &plan.to_string()]);
    assert_eq!(v["server"]["name"], "twinbay", "{v}");
    v["steps"].as_array().unwrap().clone()
}

fn over_stdio(hub: &Hub, token: &str, plan: &Value) -> Vec<Value> {
    let url = hub.url();
    let dir = hub.dir.to_str().unwrap();
    let v = python(&[
        "stdio",
        token,
        &plan.to_string(),
        BIN,
        "mcp",
        "--hub",
        &url,
        "--data-dir",
        dir,
    ]);
    v["steps"].as_array().unwrap().clone()
}

fn call(tool: &str, args: Value) -> Value {
    json!({"call": tool, "args": args})
}

/// A tool's structured answer; panics on a tool error.
fn ok(step: &Value) -> &Value {
    assert_eq!(step["isError"], false, "{step}");
    let s = &step["structuredContent"];
    assert!(s.is_object(), "no structured content: {step}");
    s
}

/// A tool error's text.
fn tool_error(step: &Value) -> String {
    assert_eq!(step["isError"], true, "expected a tool error: {step}");
    step["content"][0]["text"].as_str().unwrap().to_string()
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
    assert!(
        Command::new("podman")
            .args(["image", "exists", IMAGE])
            .status()
            .is_ok_and(|s| s.success()),
        "run scripts/podman-setup.sh first"
    );
    let dir = temp_dir("mcp");
    let socket = dir.join("podman.sock");
    let _service = podman_service(&socket);
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
        "run_command",
    ] {
        assert!(names.contains(tool), "{tool} missing from {names:?}");
    }
    for t in tools {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert_eq!(t["outputSchema"]["type"], "object", "{t}");
        let read_only = t["name"] != "run_command";
        assert_eq!(t["annotations"]["readOnlyHint"], read_only, "{t}");
        if !read_only {
            assert_eq!(t["annotations"]["destructiveHint"], true, "{t}");
            assert_eq!(t["annotations"]["idempotentHint"], false, "{t}");
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
    assert_eq!(
        host["containers"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        rest_twin["containers"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );
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
    assert!(tool_error(&steps[6]).starts_with("bad request: raw points cover at most a day"));
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
    let (in_rest, in_mcp) = (alert_ids(&rest_all), alert_ids(&ok(&steps[7])["alerts"]));
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
    assert!(tool_error(&steps[12]).starts_with("not found"));
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
    assert!(tool_error(&steps[16]).starts_with("forbidden: this needs the operator role"));

    // A viewer cannot restart: a tool error, and nothing runs.
    let commands_before = hub.get(&format!("/api/v1/nodes/{node}/commands"), &admin).1;
    let restart = call(
        "run_command",
        json!({"node": node, "verb": "restart", "target": format!("container:{name}")}),
    );
    let steps = over_http(&hub, &viewer, &json!([restart]));
    assert!(
        tool_error(&steps[0]).starts_with("forbidden"),
        "{}",
        steps[0]
    );
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
    assert!(tool_error(&steps[1]).starts_with("not found"));
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
    let (_, audit) = hub.get("/api/v1/audit?action=mcp.run_command", &admin);
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["outcome"] == "ok")
        .unwrap_or_else(|| panic!("no mcp.run_command entry: {audit}"));
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
    let (_, denied) = hub.get("/api/v1/audit?action=mcp.run_command", &admin);
    assert!(
        denied
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["outcome"] == "denied"),
        "{denied}"
    );
    // The command went the commands API's way: its own entries too.
    let (_, runs) = hub.get("/api/v1/audit?action=command.run", &admin);
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains(&id))
    );
    // Reads are audited as mcp.read (written beside the answer), the
    // refused ones too.
    wait_for("mcp.read entries", Duration::from_secs(5), || {
        let (_, reads) = hub.get("/api/v1/audit?action=mcp.read&limit=1000", &admin);
        let reads = reads.as_array()?.clone();
        let has = |part: &str, outcome: &str| {
            reads
                .iter()
                .any(|e| e["outcome"] == outcome && e["detail"].as_str().unwrap().contains(part))
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
    assert!(
        tool_error(&steps[1]).starts_with("bad request"),
        "{}",
        steps[1]
    );
    assert!(
        tool_error(&steps[2]).starts_with("bad request"),
        "{}",
        steps[2]
    );
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
    assert!(tool_error(&steps[1]).starts_with("not found"));
    assert!(tool_error(&steps[2]).starts_with("not found"));
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
    assert!(tool_error(&steps[0]).starts_with("forbidden"));
    let (_, audit) = hub.get("/api/v1/audit?action=mcp.run_command", &admin);
    assert!(audit.as_array().unwrap().iter().any(|e| {
        e["user_agent"]
            .as_str()
            .is_some_and(|u| u.starts_with("twinbay-mcp/"))
    }));
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
