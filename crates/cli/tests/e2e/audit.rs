//! The audit trail and sign-in throttling, against the real hub.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

fn sign_in(hub: &Hub, password: &str) -> (u16, String) {
    let body = format!(r#"{{"username":"admin","password":"{password}"}}"#);
    http(
        hub.addr,
        "POST",
        "/api/v1/session",
        &[
            ("Content-Type", "application/json"),
            ("User-Agent", "e2e-brute-force"),
        ],
        &body,
    )
    .unwrap()
}

fn verify(dir: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(["ctl", "--data-dir"])
        .arg(dir)
        .args(["audit", "verify"])
        .output()
        .unwrap()
}

#[test]
fn brute_force_locks_the_account_and_every_attempt_is_audited() {
    let dir = temp_dir("brute-force");
    let hub = Hub::start(&dir);
    let admin = hub.token("admin");
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(sign_in(&hub, "wrong-password").0);
    }
    // Five tries, then locked out (429) without trying the password at all.
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // The right password is refused while the lockout lasts.
    let (status, body) = sign_in(&hub, ADMIN_PASSWORD);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("try again later"), "{body}");

    let (status, entries) = hub.get("/api/v1/audit?action=session.sign_in&limit=1000", &admin);
    assert_eq!(status, 200, "{entries}");
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 21, "{entries:?}");
    assert!(entries.iter().all(|e| e["outcome"] == "denied"
        && e["target"] == "admin"
        && e["user_agent"] == "e2e-brute-force"
        && e["address"] == "127.0.0.1"));
    let locked = entries
        .iter()
        .filter(|e| e["detail"] == "locked out after failed sign-ins")
        .count();
    assert_eq!(locked, 16);
    // A viewer may not read the trail.
    let viewer = hub.token("viewer");
    assert_eq!(hub.get("/api/v1/audit", &viewer).0, 403);
}

#[tokio::test]
async fn a_tampered_audit_row_is_named_by_verify() {
    let dir = temp_dir("audit-tamper");
    let hub = Hub::start(&dir);
    // Some history: token creations (ctl), an enrollment, sign-ins.
    let _agent = agent(Some(&hub.join()), &dir.join("agent"));
    let token = hub.token("viewer");
    hub.wait_connected(&token, 1, Duration::from_secs(20));
    assert_eq!(sign_in(&hub, ADMIN_PASSWORD).0, 200);
    assert_eq!(sign_in(&hub, "nope").0, 401);

    let out = verify(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("audit trail intact: 5 entries"),
        "{stdout}"
    );
    drop(hub);

    let url = format!("sqlite://{}", dir.join("twinbay.db").display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    // The hub's own connections cannot rewrite history...
    let refused = sqlx::query("UPDATE audit SET outcome = 'ok' WHERE id = 5")
        .execute(&db)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    // ...someone with the file can, and verify names the row.
    sqlx::query("DROP TRIGGER audit_append_only_update")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET outcome = 'ok' WHERE id = 5")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let out = verify(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("entry #5 was changed"), "{stderr}");
}
