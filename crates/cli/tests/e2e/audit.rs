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

/// `ctl audit verify` with extra arguments: (success, stdout, stderr).
fn verify_with(dir: &std::path::Path, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["ctl", "--data-dir"])
        .arg(dir)
        .args(["audit", "verify"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn a_cut_tail_fails_verify_against_the_old_head_and_the_restarted_hub_reports_it() {
    let dir = temp_dir("audit-cut");
    let hub = Hub::start(&dir);
    let admin = hub.token("admin");
    let viewer = hub.token("viewer");
    for password in [ADMIN_PASSWORD, "nope", ADMIN_PASSWORD, "nope"] {
        sign_in(&hub, password);
    }

    // The admin exports the signed head and keeps it outside the data dir.
    let (status, head) = hub.get("/api/v1/audit/head", &admin);
    assert_eq!(status, 200, "{head}");
    assert_eq!(hub.get("/api/v1/audit/head", &viewer).0, 403);
    let (id, hash) = (head["id"].as_i64().unwrap(), head["hash"].as_str().unwrap());
    assert_eq!(id, 6, "{head}");
    assert_eq!(head["count"], 6);
    assert_eq!(head["algorithm"], "ed25519");
    assert!(head["ts_ms"].as_i64().unwrap() > 0);
    let (_, newest) = hub.get("/api/v1/audit?limit=1", &admin);
    assert_eq!(newest[0]["hash"], hash, "{newest}");
    let head_file = dir.with_extension("head.json");
    std::fs::write(&head_file, head.to_string()).unwrap();
    let head_file = head_file.to_str().unwrap();
    let expect = format!("sha256:{hash}");

    // While the trail holds it, both forms verify.
    let (ok, stdout, stderr) = verify_with(&dir, &["--expect-head", &expect]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("audit trail intact and holds the expected head: 6 entries"),
        "{stdout}"
    );
    let (ok, _, stderr) = verify_with(&dir, &["--head-file", head_file]);
    assert!(ok, "{stderr}");
    // A saved head edited to point at an older entry is refused.
    let mut forged = head.clone();
    forged["id"] = 5.into();
    forged["count"] = 5.into();
    forged["hash"] = newest[0]["prev_hash"].clone();
    let forged_file = dir.with_extension("forged.json");
    std::fs::write(&forged_file, forged.to_string()).unwrap();
    let (ok, _, stderr) = verify_with(&dir, &["--head-file", forged_file.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("signature does not match"), "{stderr}");
    drop(hub);

    // Someone with the file deletes the two newest entries.
    let url = format!("sqlite://{}", dir.join("twinbay.db").display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TRIGGER audit_append_only_delete")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit WHERE id > 4")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;

    // What remains is a valid chain; the head the hub recorded, the one the
    // admin wrote down and the signed one all show the cut.
    let (ok, stdout, stderr) = verify_with(&dir, &[]);
    assert!(!ok, "a cut tail verified: {stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "#6 sha256:{hash} is not in the chain (it ends at #4 "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("audit.head"), "{stderr}");
    let (ok, _, stderr) = verify_with(&dir, &["--expect-head", &expect]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "audit trail broken: the expected head {expect} is not in the chain (it ends at #4 "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("its tail was cut or replaced"), "{stderr}");
    let (ok, _, stderr) = verify_with(&dir, &["--head-file", head_file]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("#6 {expect} is not in the chain")),
        "{stderr}"
    );

    // The hub starts, loudly: the break is in the trail, its status and /metrics.
    let hub = Hub::start(&dir);
    let status = hub.status(&admin);
    assert_eq!(status["audit_chain_broken"], true, "{status}");
    let detail = status["audit_break"].as_str().unwrap();
    assert!(
        detail.contains(&format!("recorded head #6 {expect} is not in the trail")),
        "{detail}"
    );
    let (_, metrics) = http(hub.addr, "GET", "/metrics", &[], "").unwrap();
    assert!(
        metrics.lines().any(|l| l == "twinbay_audit_chain_broken 1"),
        "{metrics}"
    );
    let (_, breaks) = hub.get("/api/v1/audit?action=audit.break", &admin);
    let breaks = breaks.as_array().unwrap();
    assert_eq!(breaks.len(), 1, "{breaks:?}");
    assert_eq!(breaks[0]["id"], 5);
    assert_eq!(breaks[0]["actor_kind"], "hub");
    assert_eq!(breaks[0]["outcome"], "failed");
    assert_eq!(breaks[0]["detail"], detail);

    let Hub { proc, .. } = hub;
    proc.signal("-TERM");
    let log = String::from_utf8_lossy(&proc.wait_exit(Duration::from_secs(10)).stderr).to_string();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("the audit trail is broken")),
        "{log}"
    );
    // The trail now holds the break; the old head stays missing for good.
    let (ok, stdout, stderr) = verify_with(&dir, &[]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("audit trail intact: 5 entries"),
        "{stdout}"
    );
    assert!(!verify_with(&dir, &["--expect-head", &expect]).0);
}
