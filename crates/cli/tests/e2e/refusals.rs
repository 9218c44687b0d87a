//! Acceptance 3: bad agents, bad frames and bad credentials are refused with a
//! clear error, and the hub stays up.

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use twinbay_proto::join::JoinString;
use twinbay_proto::message::{AgentMessage, ErrorCode, HubMessage};

use crate::harness::*;

fn stderr_of(proc: Proc) -> (bool, String) {
    let out = proc.wait_exit(Duration::from_secs(15));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn assert_refused(proc: Proc, needle: &str) {
    let (ok, stderr) = stderr_of(proc);
    assert!(!ok, "the agent should exit with an error");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains(needle),
        "expected {needle:?} in {stderr}"
    );
}

#[test]
fn agents_with_spent_expired_or_wrongly_pinned_joins_are_refused() {
    let dir = temp_dir("refuse-agents");
    let hub = Hub::start(&dir.join("hub"));

    // A join token works once.
    let join = hub.join();
    let first = agent(Some(&join), &dir.join("first"));
    let token = hub.token("viewer");
    wait_for("the first agent", Duration::from_secs(5), || {
        hub.nodes(&token)
            .into_iter()
            .find(|n| n["connected"] == true)
    });
    assert_refused(
        agent(Some(&join), &dir.join("second")),
        "join token was already used",
    );

    // An expired one never does.
    let expired = hub.ctl(&["join-token", "create", "--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(1200));
    assert_refused(
        agent(Some(&expired), &dir.join("third")),
        "join token expired",
    );

    // An agent refuses a hub whose certificate is not the pinned one.
    let mut wrong = JoinString::parse(&hub.join()).unwrap();
    wrong.fp = format!("sha256:{}", "0".repeat(64));
    assert_refused(
        agent(Some(&wrong.encode()), &dir.join("fourth")),
        "not the pinned",
    );

    assert_eq!(hub.nodes(&token).len(), 1, "no refused agent became a node");
    drop(first);
    assert_eq!(http(hub.addr, "GET", "/healthz", &[], "").unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_the_pinned_one_is_refused() {
    let dir = temp_dir("refuse-key");
    let hub = Hub::start(&dir.join("hub"));
    let (_enrolled, id) = RawAgent::enroll(&hub.join()).await;

    // Someone else claims that node id with their own (validly signed) key.
    let (mut impostor, nonce) = RawAgent::connect(&hub.join(), new_key()).await;
    let hello = impostor.hello(&nonce, Some(&id), None);
    impostor.send(&hello).await;
    match impostor.recv().await {
        HubMessage::Error {
            code,
            message,
            fatal,
        } => {
            assert_eq!(code, ErrorCode::AuthFailed);
            assert!(
                message.contains("does not match the key pinned"),
                "{message}"
            );
            assert!(fatal);
        }
        other => panic!("{other:?}"),
    }

    // A signature over the wrong nonce proves nothing.
    let (mut replay, _nonce) = RawAgent::connect(&hub.join(), new_key()).await;
    let hello = replay.hello("some-other-nonce", None, None);
    replay.send(&hello).await;
    match replay.recv().await {
        HubMessage::Error { code, .. } => assert_eq!(code, ErrorCode::AuthFailed),
        other => panic!("{other:?}"),
    }
    assert_eq!(http(hub.addr, "GET", "/healthz", &[], "").unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_clear_errors_and_the_session_survives() {
    let dir = temp_dir("refuse-frames");
    let hub = Hub::start(&dir.join("hub"));
    let (mut raw, id) = RawAgent::enroll(&hub.join()).await;

    let expect_error = async |raw: &mut RawAgent, frame: String, want: ErrorCode, says: &str| {
        raw.send_text(frame).await;
        match raw.recv().await {
            HubMessage::Error {
                code,
                message,
                fatal,
            } => {
                assert_eq!(code, want, "{message}");
                assert!(
                    message.contains(says),
                    "{message:?} should mention {says:?}"
                );
                assert!(!fatal);
            }
            other => panic!("{other:?}"),
        }
    };
    expect_error(
        &mut raw,
        "{not json".into(),
        ErrorCode::BadFrame,
        "not valid JSON",
    )
    .await;
    expect_error(
        &mut raw,
        r#"{"type":"teleport"}"#.into(),
        ErrorCode::UnknownType,
        "teleport",
    )
    .await;
    expect_error(
        &mut raw,
        r#"{"type":"sync_full","seq":"one"}"#.into(),
        ErrorCode::BadFrame,
        "sync_full",
    )
    .await;
    let big = format!(
        r#"{{"type":"heartbeat","pad":"{}"}}"#,
        "x".repeat(1_200_000)
    );
    expect_error(&mut raw, big, ErrorCode::FrameTooLarge, "over the limit").await;
    // A diff before any full sync, and one with a gap, ask for a resync.
    let diff = |seq| {
        serde_json::to_string(&AgentMessage::SyncDiff {
            seq,
            changes: vec![],
        })
        .unwrap()
    };
    expect_error(&mut raw, diff(5), ErrorCode::ResyncRequired, "no full sync").await;
    raw.send(&AgentMessage::SyncFull {
        seq: 1,
        state: Box::default(),
    })
    .await;
    assert_eq!(raw.recv().await, HubMessage::Ack { seq: 1 });
    expect_error(
        &mut raw,
        diff(3),
        ErrorCode::ResyncRequired,
        "expected 2, got 3",
    )
    .await;

    // After all that, the same session still works.
    raw.send_text(diff(2)).await;
    assert_eq!(raw.recv().await, HubMessage::Ack { seq: 2 });
    let token = hub.token("viewer");
    assert_eq!(hub.node(&token, &id).unwrap()["connected"], true);

    // A frame far over the limit ends the connection, not the hub.
    // (The hub may hang up while we are still writing it.)
    let sent = raw
        .ws
        .send(Message::text("x".repeat(3 * 1024 * 1024)))
        .await;
    let mut closed = sent.is_err();
    for _ in 0..5 {
        if closed {
            break;
        }
        if raw.try_recv().await.is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed, "the hub should hang up on a 3 MiB frame");
    assert_eq!(http(hub.addr, "GET", "/healthz", &[], "").unwrap().0, 200);
}

#[test]
fn api_calls_need_a_valid_token_or_session() {
    let dir = temp_dir("refuse-api");
    let hub = Hub::start(&dir.join("hub"));
    for path in [
        "/api/v1/nodes",
        "/api/v1/nodes/n_x",
        "/api/v1/openapi.json",
        "/api/v1/session",
        "/api/v1/stream",
    ] {
        let (status, body) = http(hub.addr, "GET", path, &[], "").unwrap();
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("\"unauthorized\""), "{path}: {body}");
        let (status, _) = http(
            hub.addr,
            "GET",
            path,
            &[("Authorization", "Bearer tbk_wrong")],
            "",
        )
        .unwrap();
        assert_eq!(status, 401, "{path} with a wrong token");
    }
    let (status, _) = http(
        hub.addr,
        "GET",
        "/api/v1/nodes",
        &[("Authorization", "Basic YWRtaW46YWRtaW4=")],
        "",
    )
    .unwrap();
    assert_eq!(status, 401);
    let token = hub.token("viewer");
    assert_eq!(hub.get("/api/v1/nodes/n_nope", &token).0, 404);

    // Sign-in: a wrong password is a generic 401; the right one gives a cookie that works.
    let json = |pw: &str| format!(r#"{{"username":"admin","password":"{pw}"}}"#);
    let ct = [("Content-Type", "application/json")];
    let (status, body) = http(hub.addr, "POST", "/api/v1/session", &ct, &json("nope")).unwrap();
    assert_eq!(status, 401);
    assert!(body.contains("invalid username or password"));
    let (status, _) = http(hub.addr, "POST", "/api/v1/session", &ct, "{broken").unwrap();
    assert_eq!(status, 400);
    assert_eq!(http(hub.addr, "GET", "/healthz", &[], "").unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_its_frame_rate_is_told_and_throttled_but_stays_connected() {
    let dir = temp_dir("throttle");
    let hub = Hub::start(&dir.join("hub"));
    let token = hub.token("viewer");
    let (mut agent, _id) = RawAgent::enroll(&hub.join()).await;
    // A flood of heartbeats, far past the burst the hub allows.
    for _ in 0..400 {
        agent.send(&AgentMessage::Heartbeat { ts_ms: 1 }).await;
    }
    let mut told = 0;
    while let Ok(Ok(Some(msg))) =
        tokio::time::timeout(Duration::from_millis(500), agent.try_recv()).await
    {
        match msg {
            HubMessage::Error {
                code: ErrorCode::RateLimited,
                message,
                fatal,
            } => {
                assert!(!fatal);
                assert!(message.contains("slow down"), "{message}");
                told += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(told, 1, "told once, not once per dropped frame");
    let status = hub.status(&token);
    assert!(
        status["agent_throttled_frames"].as_u64().unwrap() >= 150,
        "{status}"
    );
    // The session lives on: after a pause the agent is heard again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    agent.send(&AgentMessage::Heartbeat { ts_ms: 2 }).await;
    assert_eq!(hub.status(&token)["connected"], 1);
}
