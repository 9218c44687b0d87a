//! What an outside security probe found (issue 13), each kept fixed with the
//! real hub: scoped callers cannot escape their scope, cookies only work
//! from the hub's own names and pages, the client behind a trusted proxy is
//! the one locked out and audited, and bad input gets the documented error.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::harness::*;

fn call(hub: &Hub, method: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, text) = http(
        hub.addr,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn sign_in(hub: &Hub, extra: &[(&str, &str)], username: &str, password: &str) -> u16 {
    let body = json!({ "username": username, "password": password }).to_string();
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend_from_slice(extra);
    http(hub.addr, "POST", "/api/v1/session", &headers, &body)
        .unwrap()
        .0
}

#[test]
fn a_caller_limited_to_host_groups_cannot_widen_its_scope() {
    let dir = temp_dir("scope");
    let hub = Hub::start(&dir);
    let admin = hub.token("admin");
    let scoped = hub.ctl(&[
        "api-token",
        "create",
        "--role",
        "admin",
        "--group",
        "site=nowhere",
    ]);
    // Something only the unlimited admin did, about no host of the scope.
    let (status, created) = call(
        &hub,
        "POST",
        "/api/v1/tokens",
        &admin,
        r#"{"role":"viewer","name":"theirs"}"#,
    );
    assert_eq!(status, 201, "{created}");

    // No unlimited token or user, no other groups; within the scope, yes.
    for body in [
        json!({"role": "admin"}),
        json!({"role": "viewer", "groups": []}),
        json!({"role": "viewer", "groups": ["site=elsewhere"]}),
        json!({"role": "viewer", "groups": ["site=nowhere", "site=elsewhere"]}),
    ] {
        let (status, v) = call(&hub, "POST", "/api/v1/tokens", &scoped, &body.to_string());
        assert_eq!(status, 403, "{body}: {v}");
        assert_eq!(v["error"]["code"], "forbidden");
    }
    let (status, v) = call(
        &hub,
        "POST",
        "/api/v1/tokens",
        &scoped,
        r#"{"role":"operator","groups":["site=nowhere"]}"#,
    );
    assert_eq!(status, 201, "{v}");
    let user = |groups: Value| {
        json!({"username": "mallory", "password": "a long enough password", "role": "admin", "groups": groups})
            .to_string()
    };
    assert_eq!(
        call(&hub, "POST", "/api/v1/users", &scoped, &user(Value::Null)).0,
        403
    );
    let (status, v) = call(
        &hub,
        "POST",
        "/api/v1/users",
        &scoped,
        &user(json!(["site=nowhere"])),
    );
    assert_eq!(status, 201, "{v}");
    let mallory = v["id"].as_i64().unwrap();
    // Nor can it lift its own users' limit, or touch the unlimited admin.
    let (status, _) = call(
        &hub,
        "PATCH",
        &format!("/api/v1/users/{mallory}"),
        &scoped,
        r#"{"groups":[]}"#,
    );
    assert_eq!(status, 403);
    let (_, users) = call(&hub, "GET", "/api/v1/users", &admin, "");
    let root = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "admin")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, _) = call(
        &hub,
        "PATCH",
        &format!("/api/v1/users/{root}"),
        &scoped,
        r#"{"password":"taken over by mallory"}"#,
    );
    assert_eq!(status, 404);
    assert_eq!(
        call(
            &hub,
            "DELETE",
            &format!("/api/v1/users/{root}"),
            &scoped,
            ""
        )
        .0,
        404
    );
    let theirs = created["id"].as_i64().unwrap();
    assert_eq!(
        call(
            &hub,
            "DELETE",
            &format!("/api/v1/tokens/{theirs}"),
            &scoped,
            ""
        )
        .0,
        404
    );
    // It lists only accounts and tokens inside its scope.
    let (_, users) = call(&hub, "GET", "/api/v1/users", &scoped, "");
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mallory"]);
    let (_, tokens) = call(&hub, "GET", "/api/v1/tokens", &scoped, "");
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["groups"] == json!(["site=nowhere"])),
        "{tokens}"
    );

    // The audit trail: its own doings, not the unlimited admin's.
    let (status, entries) = call(&hub, "GET", "/api/v1/audit?limit=1000", &scoped, "");
    assert_eq!(status, 200);
    let entries = entries.as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries.iter().all(|e| e["actor"] != "cli"
            && !e["target"]
                .as_str()
                .unwrap()
                .contains(&format!("token:{theirs}"))),
        "a scoped caller read others' entries: {entries:?}"
    );
    let (_, all) = call(&hub, "GET", "/api/v1/audit?limit=1000", &admin, "");
    assert!(all.as_array().unwrap().len() > entries.len());
    // /metrics shows every host: refused to a scoped token, even on loopback.
    assert_eq!(call(&hub, "GET", "/metrics", &scoped, "").0, 403);
}

#[test]
fn token_lifetimes_are_checked() {
    let dir = temp_dir("ttl");
    let hub = Hub::start(&dir);
    let admin = hub.token("admin");
    for ttl in [
        "9223372036854776",
        "18446744073709551615",
        "0",
        "59",
        "315360001",
    ] {
        let body = format!(r#"{{"role":"viewer","ttl_secs":{ttl}}}"#);
        let (status, v) = call(&hub, "POST", "/api/v1/tokens", &admin, &body);
        assert_eq!(status, 400, "ttl {ttl}: {v}");
        assert_eq!(v["error"]["code"], "bad_request");
    }
    let (status, v) = call(
        &hub,
        "POST",
        "/api/v1/tokens",
        &admin,
        r#"{"role":"viewer","ttl_secs":315360000}"#,
    );
    assert_eq!(status, 201, "{v}");
    let (_, tokens) = call(&hub, "GET", "/api/v1/tokens", &admin, "");
    let expires = tokens[0]["expires_at"].as_i64().unwrap();
    assert!(
        expires > now_ms() as i64 + 9 * 365 * 24 * 3600 * 1000,
        "{expires}"
    );
}

#[test]
fn errors_are_the_documented_json_with_the_right_status() {
    let dir = temp_dir("errors");
    let hub = Hub::start(&dir);
    let admin = hub.token("admin");
    let auth = format!("Bearer {admin}");
    let check = |method: &str,
                 path: &str,
                 headers: &[(&str, &str)],
                 body: &str,
                 status: u16,
                 code: &str| {
        let mut all = vec![("Authorization", auth.as_str())];
        all.extend_from_slice(headers);
        let (got, text) = http(hub.addr, method, path, &all, body).unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
        assert_eq!(v["error"]["code"], code, "{method} {path}: {text}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    };
    let json_type = [("Content-Type", "application/json")];
    check(
        "POST",
        "/api/v1/tokens",
        &[("Content-Type", "text/plain")],
        r#"{"role":"viewer"}"#,
        415,
        "unsupported_media_type",
    );
    check(
        "POST",
        "/api/v1/tokens",
        &[],
        r#"{"role":"viewer"}"#,
        415,
        "unsupported_media_type",
    );
    let big = format!(r#"{{"role":"viewer","name":"{}"}}"#, "x".repeat(70_000));
    check(
        "POST",
        "/api/v1/tokens",
        &json_type,
        &big,
        413,
        "payload_too_large",
    );
    check(
        "POST",
        "/api/v1/tokens",
        &json_type,
        "{not json",
        400,
        "bad_request",
    );
    check(
        "POST",
        "/api/v1/tokens",
        &json_type,
        r#"{"role":"root"}"#,
        400,
        "bad_request",
    );
    check("PUT", "/api/v1/nodes", &[], "", 405, "method_not_allowed");
    check(
        "GET",
        "/api/v1/audit?limit=5000",
        &[],
        "",
        400,
        "bad_request",
    );
    check("GET", "/api/v1/audit?limit=0", &[], "", 400, "bad_request");
    check(
        "GET",
        "/api/v1/events?limit=abc",
        &[],
        "",
        400,
        "bad_request",
    );
    check(
        "GET",
        "/api/v1/events?limit=1001",
        &[],
        "",
        400,
        "bad_request",
    );
    check(
        "GET",
        "/api/v1/nodes/x/commands?limit=501",
        &[],
        "",
        404,
        "not_found",
    );
    check(
        "GET",
        "/api/v1/users/abc",
        &[],
        "",
        405,
        "method_not_allowed",
    );
    check("DELETE", "/api/v1/users/abc", &[], "", 400, "bad_request");
    check("GET", "/api/v1/stream", &[], "", 400, "bad_request");
    let (_, text) = http(
        hub.addr,
        "PUT",
        "/api/v1/nodes",
        &[("Authorization", &auth)],
        "",
    )
    .unwrap();
    assert!(text.contains("not allowed"), "{text}");
    // Unauthenticated requests are counted, not logged as errors.
    for _ in 0..3 {
        assert_eq!(
            http(hub.addr, "GET", "/api/v1/nodes", &[], "").unwrap().0,
            401
        );
    }
    let (_, metrics) = http(hub.addr, "GET", "/metrics", &[], "").unwrap();
    let count: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("twinbay_api_unauthorized_requests_total "))
        .unwrap_or_else(|| panic!("no unauthorized counter in\n{metrics}"))
        .parse()
        .unwrap();
    assert!(count >= 3.0, "{count}");
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_client_is_locked_out_not_everyone() {
    let dir = temp_dir("proxy");
    let hub = Hub::start_with(&dir, free_port(), &["--trusted-proxy", "127.0.0.1"]);
    let attacker = [("X-Forwarded-For", "203.0.113.9")];
    for _ in 0..25 {
        let status = sign_in(&hub, &attacker, "admin", "wrong password, wrong");
        assert!(status == 401 || status == 429, "{status}");
    }
    assert_eq!(sign_in(&hub, &attacker, "admin", ADMIN_PASSWORD), 429);
    // Another client behind the same proxy signs in (after the pace).
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        sign_in(
            &hub,
            &[("X-Forwarded-For", "198.51.100.7")],
            "admin",
            ADMIN_PASSWORD
        ),
        200
    );
    // The audit trail names the real clients.
    let admin = hub.token("admin");
    let (_, entries) = call(
        &hub,
        "GET",
        "/api/v1/audit?action=session.sign_in&limit=1000",
        &admin,
        "",
    );
    let addresses: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap())
        .collect();
    assert!(
        addresses.contains(&"203.0.113.9") && addresses.contains(&"198.51.100.7"),
        "{addresses:?}"
    );
    assert!(!addresses.contains(&"127.0.0.1"), "{addresses:?}");
    // A forged header from an untrusted peer changes nothing: without the
    // flag, the peer is the client.
    // /metrics: a proxied request is not a local scraper.
    let (status, _) = http(
        hub.addr,
        "GET",
        "/metrics",
        &[("X-Forwarded-For", "203.0.113.9")],
        "",
    )
    .unwrap();
    assert_eq!(status, 401);
    assert_eq!(http(hub.addr, "GET", "/metrics", &[], "").unwrap().0, 200);
}

#[test]
fn without_a_trusted_proxy_forwarded_headers_are_ignored() {
    let dir = temp_dir("noproxy");
    let hub = Hub::start(&dir);
    let forged = [("X-Forwarded-For", "203.0.113.9")];
    assert_eq!(
        sign_in(&hub, &forged, "admin", "wrong password, wrong"),
        401
    );
    let admin = hub.token("admin");
    let (_, entries) = call(
        &hub,
        "GET",
        "/api/v1/audit?action=session.sign_in",
        &admin,
        "",
    );
    assert_eq!(entries[0]["address"], "127.0.0.1", "{entries}");
    assert_eq!(
        http(hub.addr, "GET", "/metrics", &forged, "").unwrap().0,
        200
    );
}

#[test]
fn cookies_work_only_for_the_hubs_names_and_what_clients_send_is_escaped() {
    let dir = temp_dir("hosts");
    let hub = Hub::start_with(&dir, free_port(), &["--allowed-host", "hub.example.org"]);
    // A DNS-rebinding page asks with its own name: no session for it.
    assert_eq!(
        sign_in(&hub, &[("Host", "evil.example")], "admin", ADMIN_PASSWORD),
        403
    );
    assert_eq!(
        sign_in(
            &hub,
            &[("Host", "hub.example.org:7780")],
            "admin",
            ADMIN_PASSWORD
        ),
        200
    );
    let cookie = sign_in_cookie(hub.addr, "admin", ADMIN_PASSWORD);
    let get = |host: &str| {
        http(
            hub.addr,
            "GET",
            "/api/v1/nodes",
            &[("Cookie", &cookie), ("Host", host)],
            "",
        )
        .unwrap()
        .0
    };
    assert_eq!(get("evil.example"), 403);
    assert_eq!(get("hub.example.org"), 200);
    assert_eq!(get(&hub.addr.to_string()), 200);
    assert_eq!(get("localhost"), 200);
    // /metrics on loopback from a foreign name is no local scrape.
    assert_eq!(
        http(hub.addr, "GET", "/metrics", &[("Host", "evil.example")], "")
            .unwrap()
            .0,
        401
    );

    // Control characters and bidi overrides are stored escaped.
    let ua = "Mozilla/5.0 Gr\u{f6}\u{df}e";
    let body = json!({"username": "eve\n\u{1b}[2J\u{202e}", "password": "x"}).to_string();
    let (status, _) = http(
        hub.addr,
        "POST",
        "/api/v1/session",
        &[("Content-Type", "application/json"), ("User-Agent", ua)],
        &body,
    )
    .unwrap();
    assert_eq!(status, 401);
    let admin = hub.token("admin");
    let (_, entries) = call(
        &hub,
        "GET",
        "/api/v1/audit?action=session.sign_in",
        &admin,
        "",
    );
    let e = &entries[0];
    assert_eq!(e["actor"], "eve\\u{a}\\u{1b}[2J\\u{202e}", "{e}");
    assert!(
        e["user_agent"]
            .as_str()
            .unwrap()
            .starts_with("Mozilla/5.0 Gr"),
        "{e}"
    );
    assert_ne!(e["user_agent"], "", "{e}");
    // Accounts cannot be made with such names at all.
    let (status, _) = call(
        &hub,
        "POST",
        "/api/v1/users",
        &admin,
        &json!({"username": "eve\u{202e}", "password": "a long enough password", "role": "viewer"})
            .to_string(),
    );
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_websocket_upgrade_needs_the_hubs_own_origin() {
    let dir = temp_dir("wsorigin");
    let hub = Hub::start(&dir);
    let addr = hub.addr;
    let cookie = tokio::task::spawn_blocking(move || sign_in_cookie(addr, "admin", ADMIN_PASSWORD))
        .await
        .unwrap();
    let upgrade = |origin: Option<String>| {
        let mut request = stream_request(addr).header("Cookie", cookie.clone());
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        tokio_tungstenite::connect_async(request.body(()).unwrap())
    };
    for origin in [Some("https://evil.example".to_string()), None] {
        match upgrade(origin.clone()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 403, "{origin:?}")
            }
            Ok(_) => panic!("a cookie upgrade from {origin:?} was accepted"),
            Err(e) => panic!("{origin:?}: {e}"),
        }
    }
    let (mut ws, _) = upgrade(Some(format!("http://{addr}"))).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("snapshot"));
}

#[test]
fn the_join_string_can_come_from_a_file() {
    let dir = temp_dir("joinfile");
    let hub = Hub::start(&dir);
    let admin = hub.token("admin");
    let file = dir.join("join");
    std::fs::write(&file, format!("{}\n", hub.join())).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["agent", "--join-file"])
        .arg(dir.join("missing"))
        .args(["--state-dir"])
        .arg(dir.join("a0"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the join file") && err.lines().count() == 1,
        "{err}"
    );
    let _agent = agent_with(
        None,
        &dir.join("a1"),
        &["--join-file", file.to_str().unwrap()],
    );
    hub.wait_connected(&admin, 1, Duration::from_secs(20));
}
