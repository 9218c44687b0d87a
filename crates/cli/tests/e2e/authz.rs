//! Every API route × every kind of caller, with the exact status each gets.

use std::time::Duration;

use serde_json::Value;
use twinbay_hub::api::access::{Access, RULES};
use twinbay_hub::store::Role;

use crate::harness::*;

const PUBLIC: Option<Role> = None;
const VIEWER: Option<Role> = Some(Role::Viewer);
const OPERATOR: Option<Role> = Some(Role::Operator);
const ADMIN: Option<Role> = Some(Role::Admin);

/// The spec: a concrete request for each route, who may make it, and what
/// an allowed caller gets. (method, path, body, least role, status)
const REQUESTS: &[(&str, &str, &str, Option<Role>, u16)] = &[
    ("POST", "/api/v1/session", "{}", PUBLIC, 400),
    ("GET", "/api/v1/session", "", VIEWER, 200),
    ("DELETE", "/api/v1/session", "", VIEWER, 204),
    ("GET", "/api/v1/nodes", "", VIEWER, 200),
    ("GET", "/api/v1/nodes/n_missing", "", VIEWER, 404),
    ("GET", "/api/v1/nodes/n_missing/metrics", "", VIEWER, 404),
    ("GET", "/api/v1/nodes/n_missing/series", "", VIEWER, 404),
    ("GET", "/api/v1/nodes/n_missing/events", "", VIEWER, 404),
    (
        "GET",
        "/api/v1/nodes/n_missing/collections",
        "",
        VIEWER,
        404,
    ),
    ("GET", "/api/v1/events", "", VIEWER, 200),
    (
        "GET",
        "/api/v1/nodes/n_missing/changes?from=0&to=1000",
        "",
        VIEWER,
        404,
    ),
    ("GET", "/api/v1/changes?from=0&to=1000", "", VIEWER, 200),
    ("GET", "/api/v1/nodes/n_missing/files", "", VIEWER, 404),
    (
        "GET",
        "/api/v1/nodes/n_missing/files/history?path=/etc/x",
        "",
        VIEWER,
        404,
    ),
    ("GET", "/api/v1/files/changes", "", VIEWER, 200),
    (
        "GET",
        "/api/v1/nodes/n_missing/files/diff?path=/etc/x",
        "",
        OPERATOR,
        404,
    ),
    // Not a WebSocket handshake: refused after authorization.
    ("GET", "/api/v1/stream", "", VIEWER, 400),
    ("GET", "/api/v1/hub", "", VIEWER, 200),
    ("GET", "/api/v1/hub/logs?lines=5", "", ADMIN, 200),
    // Bad bodies: the hub under test neither updates nor restarts.
    ("POST", "/api/v1/hub/update", "{}", ADMIN, 400),
    ("POST", "/api/v1/hub/restart", r#"{"bogus":1}"#, ADMIN, 400),
    ("GET", "/api/v1/gateway", "", VIEWER, 200),
    ("GET", "/api/v1/routes", "", VIEWER, 200),
    ("GET", "/api/v1/topology", "", VIEWER, 200),
    (
        "GET",
        "/api/v1/topology/impact?id=host:nope",
        "",
        VIEWER,
        404,
    ),
    ("GET", "/api/v1/layout", "", VIEWER, 200),
    // Not the version stored: refused after authorization.
    (
        "PUT",
        "/api/v1/layout",
        r#"{"version":99,"sites":[]}"#,
        ADMIN,
        409,
    ),
    ("GET", "/api/v1/alerts", "", VIEWER, 200),
    ("GET", "/api/v1/alerts/rules", "", VIEWER, 200),
    (
        "POST",
        "/api/v1/alerts/rules",
        r#"{"name":"x","kind":"host_down","channels":[999999]}"#,
        ADMIN,
        404,
    ),
    ("DELETE", "/api/v1/alerts/rules/999999", "", ADMIN, 404),
    (
        "PATCH",
        "/api/v1/alerts/rules/999999",
        r#"{"enabled":false}"#,
        ADMIN,
        404,
    ),
    (
        "POST",
        "/api/v1/alerts/999999/ack",
        r#"{"comment":"x"}"#,
        OPERATOR,
        404,
    ),
    ("GET", "/api/v1/alerts/silences", "", VIEWER, 200),
    (
        "POST",
        "/api/v1/alerts/silences",
        r#"{"rule_id":999999,"duration":"1h","comment":"x"}"#,
        OPERATOR,
        404,
    ),
    (
        "DELETE",
        "/api/v1/alerts/silences/999999",
        "",
        OPERATOR,
        404,
    ),
    ("GET", "/api/v1/alerts/channels", "", ADMIN, 200),
    (
        "POST",
        "/api/v1/alerts/channels",
        r#"{"name":"x","kind":"webhook","url":"ftp://x"}"#,
        ADMIN,
        400,
    ),
    ("DELETE", "/api/v1/alerts/channels/999999", "", ADMIN, 404),
    (
        "POST",
        "/api/v1/alerts/channels/999999/test",
        "",
        ADMIN,
        404,
    ),
    ("GET", "/api/v1/openapi.json", "", VIEWER, 200),
    ("GET", "/api/v1/schedules", "", VIEWER, 200),
    // A pattern that never fires is refused before anything else.
    (
        "POST",
        "/api/v1/schedules",
        r#"{"name":"x","cron":"0 0 30 2 *","timezone":"UTC","target":{"group":"a=b"},"command":{"op":"action","name":"x"}}"#,
        OPERATOR,
        400,
    ),
    ("GET", "/api/v1/schedules/999999", "", VIEWER, 404),
    (
        "PUT",
        "/api/v1/schedules/999999",
        r#"{"name":"x","cron":"0 0 30 2 *","timezone":"UTC","target":{"group":"a=b"},"command":{"op":"action","name":"x"}}"#,
        OPERATOR,
        400,
    ),
    ("DELETE", "/api/v1/schedules/999999", "", OPERATOR, 404),
    ("POST", "/api/v1/schedules/999999/run", "", OPERATOR, 404),
    ("GET", "/api/v1/schedules/999999/runs", "", VIEWER, 404),
    (
        "POST",
        "/api/v1/schedules/preview",
        r#"{"cron":"*/5 * * * *","timezone":"Europe/Berlin"}"#,
        VIEWER,
        200,
    ),
    // A command's own role is checked inside, after the node is found.
    (
        "POST",
        "/api/v1/nodes/n_missing/commands",
        r#"{"op":"lifecycle","target":{"kind":"agent"},"verb":"status"}"#,
        VIEWER,
        404,
    ),
    ("GET", "/api/v1/nodes/n_missing/commands", "", VIEWER, 404),
    ("GET", "/api/v1/commands/cmd_missing", "", VIEWER, 404),
    (
        "GET",
        "/api/v1/commands/cmd_missing/output",
        "",
        VIEWER,
        404,
    ),
    ("DELETE", "/api/v1/commands/cmd_missing", "", OPERATOR, 404),
    ("GET", "/api/v1/audit", "", ADMIN, 200),
    ("GET", "/api/v1/audit/head", "", ADMIN, 200),
    ("GET", "/api/v1/tokens", "", ADMIN, 200),
    ("POST", "/api/v1/tokens", r#"{"role":"viewer"}"#, ADMIN, 201),
    ("DELETE", "/api/v1/tokens/999999", "", ADMIN, 404),
    ("GET", "/api/v1/users", "", ADMIN, 200),
    ("POST", "/api/v1/users", "{}", ADMIN, 400),
    ("PATCH", "/api/v1/users/999999", "{}", ADMIN, 404),
    ("DELETE", "/api/v1/users/999999", "", ADMIN, 404),
    // Every caller here is an API token, and tokens have no password or sessions.
    (
        "PUT",
        "/api/v1/session/password",
        r#"{"current":"a","new":"b"}"#,
        VIEWER,
        403,
    ),
    ("DELETE", "/api/v1/sessions", "", VIEWER, 403),
    // Agents authenticate inside the protocol; this is no WebSocket handshake.
    ("GET", "/api/v1/agent/connect", "", PUBLIC, 400),
    ("GET", "/api/v1/agent/backups/cmd_missing", "", PUBLIC, 400),
    ("GET", "/api/v1/agent/restores/cmd_missing", "", PUBLIC, 400),
    ("GET", "/api/v1/agent/releases/cmd_missing", "", PUBLIC, 400),
    ("GET", "/api/v1/backups", "", VIEWER, 200),
    (
        "GET",
        "/api/v1/backups/bk_missing/download",
        "",
        OPERATOR,
        404,
    ),
    (
        "POST",
        "/api/v1/backups/bk_missing/verify",
        "",
        OPERATOR,
        404,
    ),
    ("POST", "/api/v1/backups/prune", "{}", OPERATOR, 200),
    // No signature header: refused after the role check.
    ("POST", "/api/v1/releases?version=1.0.0", "", ADMIN, 400),
    ("GET", "/api/v1/releases", "", VIEWER, 200),
    ("GET", "/api/v1/releases/1.0.0/x86_64", "", OPERATOR, 404),
    // No such release: refused after the role check.
    (
        "POST",
        "/api/v1/rollouts",
        r#"{"version":"1.0.0"}"#,
        ADMIN,
        404,
    ),
    ("GET", "/api/v1/rollouts", "", VIEWER, 200),
    ("GET", "/api/v1/rollouts/ro_missing", "", VIEWER, 404),
    (
        "POST",
        "/api/v1/rollouts/ro_missing/pause",
        "{}",
        ADMIN,
        404,
    ),
    (
        "POST",
        "/api/v1/rollouts/ro_missing/resume",
        "{}",
        ADMIN,
        404,
    ),
    (
        "POST",
        "/api/v1/rollouts/ro_missing/abort",
        "{}",
        ADMIN,
        404,
    ),
    ("GET", "/api/v1/ssh/identity", "", ADMIN, 200),
    // Not a target: refused after the role check, before any connection.
    (
        "POST",
        "/api/v1/ssh/hosts",
        r#"{"target":"nohost"}"#,
        ADMIN,
        400,
    ),
    ("GET", "/api/v1/ssh/hosts", "", VIEWER, 200),
    ("GET", "/api/v1/ssh/hosts/ssh-missing", "", VIEWER, 404),
    ("DELETE", "/api/v1/ssh/hosts/ssh-missing", "", ADMIN, 404),
    (
        "POST",
        "/api/v1/ssh/hosts/ssh-missing/check",
        "{}",
        ADMIN,
        404,
    ),
];

/// What a caller limited to host groups gets instead, where that differs:
/// it may not hand out a token wider than itself, nor sign the whole trail's head.
const SCOPED: &[(&str, &str, u16)] = &[
    ("POST", "/api/v1/tokens", 403),
    ("GET", "/api/v1/audit/head", 403),
];

/// The template a concrete path was made from.
fn template(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| match (i > 0).then(|| parts[i - 1]) {
            Some("releases") if i > 1 && parts[i - 2] == "agent" => "{id}",
            Some("releases") if !p.is_empty() => "{version}",
            _ if i > 2 && parts[i - 2] == "releases" && parts[i - 3] != "agent" => "{arch}",
            Some(
                "nodes" | "tokens" | "users" | "commands" | "rules" | "channels" | "silences"
                | "restores" | "rollouts",
            ) if !p.is_empty() => "{id}",
            Some("hosts") if parts[i - 2] == "ssh" && !p.is_empty() => "{id}",
            Some("schedules") if !p.is_empty() && *p != "preview" => "{id}",
            Some("alerts") if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => "{id}",
            Some("backups") if !p.is_empty() && *p != "prune" => "{id}",
            _ => p,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_has_a_rule_and_every_caller_gets_the_exact_status() {
    let dir = temp_dir("authz");
    let hub = Hub::start(&dir);
    let viewer = hub.token("viewer");
    let operator = hub.token("operator");
    let admin = hub.token("admin");
    let mint = |body: &str| -> (i64, String) {
        let auth = format!("Bearer {admin}");
        let (status, text) = http(
            hub.addr,
            "POST",
            "/api/v1/tokens",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .unwrap();
        assert_eq!(status, 201, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        (
            v["id"].as_i64().unwrap(),
            v["token"].as_str().unwrap().to_string(),
        )
    };
    // The API gives a token at least a minute; the host's CLI may give less.
    let expired = hub.ctl(&["api-token", "create", "--role", "admin", "--ttl", "1s"]);
    let (revoked_id, revoked) = mint(r#"{"role":"admin","name":"to revoke"}"#);
    let auth = format!("Bearer {admin}");
    let (status, _) = http(
        hub.addr,
        "DELETE",
        &format!("/api/v1/tokens/{revoked_id}"),
        &[("Authorization", &auth)],
        "",
    )
    .unwrap();
    assert_eq!(status, 204);
    std::thread::sleep(Duration::from_millis(1100));

    // Every route the hub describes has a rule and a request here.
    let (_, openapi) = hub.get("/api/v1/openapi.json", &admin);
    let mut described = Vec::new();
    for (path, item) in openapi["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            described.push((method.to_uppercase(), path.clone()));
        }
    }
    described.push(("GET".into(), "/api/v1/openapi.json".into()));
    for (method, path) in &described {
        assert!(
            RULES.iter().any(|(m, p, _)| m == method && p == path),
            "{method} {path} has no authorization rule in api/access.rs"
        );
        assert!(
            REQUESTS
                .iter()
                .any(|(m, p, ..)| m == method && template(p) == *path),
            "{method} {path} is not walked by this test"
        );
    }
    assert_eq!(
        described.len(),
        RULES.len(),
        "a rule for a route that does not exist"
    );

    let scoped = |role: &str| {
        hub.ctl(&[
            "api-token",
            "create",
            "--role",
            role,
            "--group",
            "site=nowhere",
        ])
    };
    let (scoped_viewer, scoped_operator, scoped_admin) =
        (scoped("viewer"), scoped("operator"), scoped("admin"));
    // (who, token, role, limited to host groups)
    let callers: [(&str, Option<&str>, Option<Role>, bool); 9] = [
        ("nobody", None, None, false),
        ("expired token", Some(&expired), None, false),
        ("revoked token", Some(&revoked), None, false),
        ("viewer", Some(&viewer), Some(Role::Viewer), false),
        ("operator", Some(&operator), Some(Role::Operator), false),
        ("admin", Some(&admin), Some(Role::Admin), false),
        (
            "scoped viewer",
            Some(&scoped_viewer),
            Some(Role::Viewer),
            true,
        ),
        (
            "scoped operator",
            Some(&scoped_operator),
            Some(Role::Operator),
            true,
        ),
        ("scoped admin", Some(&scoped_admin), Some(Role::Admin), true),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, needs, allowed) in REQUESTS {
        let rule = RULES
            .iter()
            .find(|(m, p, _)| m == method && *p == template(path))
            .map(|r| r.2)
            .unwrap_or_else(|| panic!("{method} {path}: no rule"));
        let spec = match needs {
            None => Access::Public,
            Some(role) => Access::Role(*role),
        };
        if rule != spec {
            wrong.push(format!(
                "{method} {path}: the hub's rule is {rule:?}, the spec says {spec:?}"
            ));
        }
        for (who, token, role, limited) in &callers {
            let scoped_status = SCOPED
                .iter()
                .find(|(m, p, _)| m == method && p == path)
                .map(|s| s.2)
                .filter(|_| *limited);
            let expected = match (needs, role) {
                (None, _) => *allowed,
                (Some(_), None) => 401,
                (Some(needed), Some(role)) if role < needed => 403,
                (Some(_), Some(_)) => scoped_status.unwrap_or(*allowed),
            };
            let auth = token.map(|t| format!("Bearer {t}"));
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(auth) = &auth {
                headers.push(("Authorization", auth));
            }
            let (status, text) = http(hub.addr, method, path, &headers, body).unwrap();
            if status != expected {
                wrong.push(format!(
                    "{who:>13} {method} {path}: {status}, not {expected} ({text})"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
