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

/// The next frame of a stream that must close: its close code and reason.
async fn closed_with(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> (u16, String) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .expect("the stream closes within 5 s");
        match next {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                panic!("the stream ended without a close code")
            }
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_closes_when_its_session_ends_or_its_access_changes() {
    let dir = temp_dir("stream-access");
    let hub = Hub::start(&dir);
    let admin = hub.token("admin");
    let (status, sam) = hub.post(
        "/api/v1/users",
        &admin,
        &serde_json::json!({"username": "sam", "password": "sam-password-12", "role": "viewer"}),
    );
    assert_eq!(status, 201, "{sam}");
    let sam_id = sam["id"].as_i64().unwrap();
    let addr = hub.addr;
    let cookie_stream = || async move {
        let cookie =
            tokio::task::spawn_blocking(move || sign_in_cookie(addr, "sam", "sam-password-12"))
                .await
                .unwrap();
        let request = stream_request(addr)
            .header("Cookie", cookie)
            .header("Origin", format!("http://{addr}"))
            .body(())
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut ws = tokio_tungstenite::client_async(request, tcp)
            .await
            .unwrap()
            .0;
        assert_eq!(next_json(&mut ws).await["type"], "snapshot");
        ws
    };
    let patch = |body: &str| {
        let auth = format!("Bearer {admin}");
        let path = format!("/api/v1/users/{sam_id}");
        let body = body.to_string();
        async move {
            tokio::task::spawn_blocking(move || {
                let headers = [
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/json"),
                ];
                http(addr, "PATCH", &path, &headers, &body).unwrap().0
            })
            .await
            .unwrap()
        }
    };

    // A new role or new host groups: reconnect (for what it may see now).
    let mut ws = cookie_stream().await;
    assert_eq!(patch(r#"{"role":"operator"}"#).await, 204);
    assert_eq!(closed_with(&mut ws).await.0, 4002);
    let mut ws = cookie_stream().await;
    assert_eq!(patch(r#"{"groups":["site=lab"]}"#).await, 204);
    assert_eq!(closed_with(&mut ws).await.0, 4002);

    // Signed out everywhere (here by a new password from an admin): sign in again.
    let mut ws = cookie_stream().await;
    // Another user's change leaves this stream alone (else it would close with 4002 first).
    let (status, tim) = hub.post(
        "/api/v1/users",
        &admin,
        &serde_json::json!({"username": "tim", "password": "tim-password-123", "role": "viewer"}),
    );
    assert_eq!(status, 201);
    let tim_path = format!("/api/v1/users/{}", tim["id"]);
    let auth = format!("Bearer {admin}");
    let status = tokio::task::spawn_blocking(move || {
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        http(addr, "PATCH", &tim_path, &headers, r#"{"role":"operator"}"#)
            .unwrap()
            .0
    })
    .await
    .unwrap();
    assert_eq!(status, 204);
    assert_eq!(
        patch(r#"{"password":"sam-password-new"}"#).await,
        204,
        "the password is set"
    );
    let (code, reason) = closed_with(&mut ws).await;
    assert_eq!(code, 4001);
    assert_eq!(reason, "your session ended; sign in again");

    // An API token's stream ends when the token is revoked.
    let (_, created) = hub.post(
        "/api/v1/tokens",
        &admin,
        &serde_json::json!({"name": "dash", "role": "viewer"}),
    );
    let token = created["token"].as_str().unwrap().to_string();
    let mut ws = stream(addr, &token).await;
    assert_eq!(next_json(&mut ws).await["type"], "snapshot");
    let revoke = format!("/api/v1/tokens/{}", created["id"]);
    let auth = format!("Bearer {admin}");
    let status = tokio::task::spawn_blocking(move || {
        http(addr, "DELETE", &revoke, &[("Authorization", &auth)], "")
            .unwrap()
            .0
    })
    .await
    .unwrap();
    assert_eq!(status, 204);
    let (code, reason) = closed_with(&mut ws).await;
    assert_eq!(
        (code, reason.as_str()),
        (4001, "the API token was revoked or has expired")
    );
}
