//! Accounts, sessions and CSRF, as a browser and an admin would meet them.

use crate::harness::*;

fn call(
    hub: &Hub,
    method: &str,
    path: &str,
    cookie: &str,
    origin: Option<&str>,
    body: &str,
) -> (u16, String) {
    let same = format!("http://{}", hub.addr);
    let mut headers = vec![("Cookie", cookie), ("Content-Type", "application/json")];
    headers.push(("Origin", origin.unwrap_or(&same)));
    http(hub.addr, method, path, &headers, body).unwrap()
}

#[test]
fn a_cross_site_form_post_with_a_valid_session_is_refused() {
    let dir = temp_dir("csrf");
    let hub = Hub::start(&dir);
    let admin = sign_in_cookie(hub.addr, "admin", ADMIN_PASSWORD);
    let form = "username=mallory&password=mallory-password-1&role=admin";
    let (status, body) = http(
        hub.addr,
        "POST",
        "/api/v1/users",
        &[
            ("Cookie", &admin),
            ("Origin", "https://evil.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form,
    )
    .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("cross-site"), "{body}");
    // No Origin at all is refused too; the same request from our page works.
    let (status, _) = http(
        hub.addr,
        "POST",
        "/api/v1/users",
        &[("Cookie", &admin), ("Content-Type", "application/json")],
        r#"{"username":"mallory","password":"mallory-password-1","role":"admin"}"#,
    )
    .unwrap();
    assert_eq!(status, 403);
    let (_, users) = call(&hub, "GET", "/api/v1/users", &admin, None, "");
    assert!(!users.contains("mallory"), "{users}");
}

#[test]
fn users_are_managed_and_passwords_end_other_sessions() {
    let dir = temp_dir("people");
    let hub = Hub::start(&dir);
    let admin = sign_in_cookie(hub.addr, "admin", ADMIN_PASSWORD);
    let (status, body) = call(
        &hub,
        "POST",
        "/api/v1/users",
        &admin,
        None,
        r#"{"username":"olivia","password":"olivia-password-1","role":"operator"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let (status, _) = call(
        &hub,
        "POST",
        "/api/v1/users",
        &admin,
        None,
        r#"{"username":"olivia","password":"another-password-2","role":"viewer"}"#,
    );
    assert_eq!(status, 409);
    let (status, _) = call(
        &hub,
        "POST",
        "/api/v1/users",
        &admin,
        None,
        r#"{"username":"short","password":"short","role":"viewer"}"#,
    );
    assert_eq!(status, 400);

    // Two sessions; changing the password on one ends the other.
    let laptop = sign_in_cookie(hub.addr, "olivia", "olivia-password-1");
    let phone = sign_in_cookie(hub.addr, "olivia", "olivia-password-1");
    let (status, who) = call(&hub, "GET", "/api/v1/session", &phone, None, "");
    assert_eq!(status, 200);
    assert!(who.contains(r#""role":"operator""#), "{who}");
    let (status, _) = call(
        &hub,
        "PUT",
        "/api/v1/session/password",
        &laptop,
        None,
        r#"{"current":"wrong-password-0","new":"olivia-password-2"}"#,
    );
    assert_eq!(status, 403);
    let (status, body) = call(
        &hub,
        "PUT",
        "/api/v1/session/password",
        &laptop,
        None,
        r#"{"current":"olivia-password-1","new":"olivia-password-2"}"#,
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        call(&hub, "GET", "/api/v1/session", &phone, None, "").0,
        401
    );
    assert_eq!(
        call(&hub, "GET", "/api/v1/session", &laptop, None, "").0,
        200
    );
    // An operator manages nobody.
    assert_eq!(call(&hub, "GET", "/api/v1/users", &laptop, None, "").0, 403);

    // Sign out everywhere.
    let (status, _) = call(&hub, "DELETE", "/api/v1/sessions", &laptop, None, "");
    assert_eq!(status, 204);
    assert_eq!(
        call(&hub, "GET", "/api/v1/session", &laptop, None, "").0,
        401
    );

    // The last admin stays an admin.
    let (_, me) = call(&hub, "GET", "/api/v1/users", &admin, None, "");
    let users: serde_json::Value = serde_json::from_str(&me).unwrap();
    let admin_id = users
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
        &format!("/api/v1/users/{admin_id}"),
        &admin,
        None,
        r#"{"role":"viewer"}"#,
    );
    assert_eq!(status, 409);

    let token = hub.token("admin");
    let (_, trail) = hub.get("/api/v1/audit?target=olivia", &token);
    let actions: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "user.create",
        "user.password",
        "session.sign_out_everywhere",
    ] {
        assert!(actions.contains(&expected), "{expected} not in {actions:?}");
    }
}

#[test]
fn api_tokens_expire_and_are_revoked_from_the_command_line() {
    let dir = temp_dir("ctl-tokens");
    let hub = Hub::start(&dir);
    let admin = hub.token("admin");
    let scripted = hub.ctl(&[
        "api-token",
        "create",
        "--role",
        "viewer",
        "--name",
        "backup-script",
    ]);
    let brief = hub.ctl(&["api-token", "create", "--role", "viewer", "--ttl", "1s"]);
    assert_eq!(hub.get("/api/v1/nodes", &scripted).0, 200);
    assert_eq!(hub.get("/api/v1/nodes", &brief).0, 200);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(hub.get("/api/v1/nodes", &brief).0, 401, "expired");

    let (_, tokens) = hub.get("/api/v1/tokens", &admin);
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "backup-script")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert!(
        hub.ctl(&["api-token", "revoke", &id.to_string()])
            .contains("revoked")
    );
    assert_eq!(hub.get("/api/v1/nodes", &scripted).0, 401, "revoked");

    let out = std::process::Command::new(BIN)
        .args(["ctl", "--data-dir"])
        .arg(&dir)
        .args(["api-token", "revoke", "99999"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no active API token 99999"), "{stderr}");
    let (_, trail) = hub.get("/api/v1/audit?action=api_token.", &admin);
    let actions: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "api_token.revoke").count(),
        1
    );
}
