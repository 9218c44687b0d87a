//! Watched files at the hub, driven by a hand-written agent: versions,
//! content asked for only when missing, planted content refused, history
//! and changes through the API.

use std::time::Duration;

use sha2::{Digest, Sha256};
use twinbay_proto::diff::{Change, Item};
use twinbay_proto::message::{AgentMessage, FileChunk, HubMessage, NeededFile};
use twinbay_proto::model::{FileContent, FileKind, FileState, NodeState, WatchedFile};

use crate::harness::*;

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn file(path: &str, text: Option<&str>) -> WatchedFile {
    WatchedFile {
        path: path.into(),
        state: if text.is_some() {
            FileState::Present
        } else {
            FileState::Missing
        },
        sha256: text.map(sha),
        size: text.map(|t| t.len() as u64),
        kind: FileKind::Compose,
        content: if text.is_some() {
            FileContent::Shipped
        } else {
            FileContent::None
        },
        origin: "watch".into(),
        ..Default::default()
    }
}

/// The next `need_files`, skipping acks.
async fn needed(raw: &mut RawAgent) -> Vec<NeededFile> {
    loop {
        match raw.recv().await {
            HubMessage::NeedFiles { files } => return files,
            HubMessage::Ack { .. } => continue,
            other => panic!("expected need_files, got {other:?}"),
        }
    }
}

async fn send_content(raw: &mut RawAgent, path: &str, sha256: &str, text: &str) {
    raw.send(&AgentMessage::FileChunk(FileChunk {
        path: path.into(),
        sha256: sha256.into(),
        offset: 0,
        total: text.len() as u64,
        data: text.into(),
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_content_on_demand_and_history() {
    let dir = temp_dir("files-hub");
    let hub = Hub::start(&dir);
    let viewer = hub.token("viewer");
    let (mut raw, node) = RawAgent::enroll(&hub.join()).await;
    let path = "/srv/app/compose.yaml";
    let v1 = "services:\n  web:\n    image: nginx:1.25\n";
    let mut state = NodeState::default();
    state.host.hostname = "files-host".into();
    state.files.insert(path.into(), file(path, Some(v1)));
    // A container of this compose file, so each version records its image.
    let web = twinbay_proto::model::Container {
        id: "c1".into(),
        name: "app-web-1".into(),
        image: "nginx:latest".into(),
        state: "running".into(),
        compose_service: Some("web".into()),
        labels: [
            ("com.docker.compose.service", "web"),
            ("com.docker.compose.project.working_dir", "/srv/app"),
            ("com.docker.compose.project.config_files", "compose.yaml"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect(),
        image_id: Some(format!("sha256:{}", "ab".repeat(32)).into()),
        ..Default::default()
    };
    state.containers.insert("c1".into(), web.into());
    raw.send(&AgentMessage::SyncFull {
        seq: 1,
        state: Box::new(state),
    })
    .await;

    // The hub lacks v1: it asks, and only for that.
    let asked = needed(&mut raw).await;
    assert_eq!(
        asked,
        [NeededFile {
            path: path.into(),
            sha256: sha(v1)
        }]
    );
    // Content that is not what the hash says is refused (no planting).
    send_content(&mut raw, path, &sha(v1), "services: {}\n").await;
    // The real content, in two chunks.
    let (a, b) = v1.split_at(10);
    for (offset, data) in [(0, a), (a.len(), b)] {
        raw.send(&AgentMessage::FileChunk(FileChunk {
            path: path.into(),
            sha256: sha(v1),
            offset: offset as u64,
            total: v1.len() as u64,
            data: data.into(),
        }))
        .await;
    }
    let files_path = format!("/api/v1/nodes/{node}/files");
    let history_path = format!("/api/v1/nodes/{node}/files/history?path={path}");
    let first = tokio::task::block_in_place(|| {
        wait_for("v1 recorded and rated", Duration::from_secs(10), || {
            let (_, h) = hub.get(&history_path, &viewer);
            let h = h.as_array()?.clone();
            (h.len() == 1 && h[0]["risk"].is_string()).then_some(h)
        })
    });
    assert_eq!(first[0]["sha256"], sha(v1));
    assert_eq!(first[0]["change"], "first_seen");
    // What `:latest` meant then.
    assert_eq!(
        first[0]["images"]["web"],
        format!("sha256:{}", "ab".repeat(32))
    );

    // A new version: a diff; the hub asks for it, records it, rates it.
    let v2 = "services:\n  web:\n    image: nginx:1.27\n";
    raw.send(&AgentMessage::SyncDiff {
        seq: 2,
        changes: vec![Change::upsert(Item::Files(file(path, Some(v2))))],
    })
    .await;
    let asked = needed(&mut raw).await;
    assert_eq!(asked[0].sha256, sha(v2));
    send_content(&mut raw, path, &sha(v2), v2).await;
    // Then the file is deleted: no content to ask for.
    raw.send(&AgentMessage::SyncDiff {
        seq: 3,
        changes: vec![Change::upsert(Item::Files(file(path, None)))],
    })
    .await;
    let history = tokio::task::block_in_place(|| {
        wait_for("three versions, all rated", Duration::from_secs(10), || {
            let (_, h) = hub.get(&history_path, &viewer);
            let h = h.as_array()?.clone();
            (h.len() == 3 && h.iter().all(|v| v["risk"].is_string())).then_some(h)
        })
    });
    // Newest first, each with the hash before it.
    let changes: Vec<&str> = history
        .iter()
        .map(|v| v["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["deleted", "changed", "first_seen"]);
    assert_eq!(history[0]["sha256"], serde_json::Value::Null);
    assert_eq!(history[1]["sha256"], sha(v2));
    assert_eq!(history[1]["prev_sha256"], sha(v1));
    assert!(history[1]["ts_ms"].as_i64().unwrap() > 0);

    // The list: the file as reported now (missing, no hash).
    let (status, files) = hub.get(&files_path, &viewer);
    assert_eq!(status, 200);
    assert_eq!(files[0]["path"], path);
    assert_eq!(files[0]["sha256"], serde_json::Value::Null);
    assert_eq!(files[0]["state"], "missing");

    // The fleet's changes: two (the first sighting is not a change).
    let (_, fleet) = hub.get("/api/v1/files/changes", &viewer);
    assert_eq!(fleet.as_array().unwrap().len(), 2, "{fleet}");
    let (status, _) = hub.get("/api/v1/files/changes?risk=severe", &viewer);
    assert_eq!(status, 400);

    // The diff between v1 and v2 (operator), by full hash and by prefix.
    let operator = hub.token("operator");
    let diff_path = format!(
        "/api/v1/nodes/{node}/files/diff?path={path}&from={}&to={}",
        sha(v1),
        &sha(v2)[..8]
    );
    let (status, d) = hub.get(&diff_path, &operator);
    assert_eq!(status, 200, "{d}");
    let text = d["diff"].as_str().unwrap();
    assert!(
        text.contains("-    image: nginx:1.25\n+    image: nginx:1.27"),
        "{text}"
    );
    assert!(
        text.starts_with(&format!("--- {path}@{}", &sha(v1)[..12])),
        "{text}"
    );
    assert_eq!(d["to"], sha(v2));
    // Viewers see history, not content.
    assert_eq!(hub.get(&diff_path, &viewer).0, 403);
    // Default: the newest (the deletion) against the one before it.
    let (_, d) = hub.get(
        &format!("/api/v1/nodes/{node}/files/diff?path={path}"),
        &operator,
    );
    assert_eq!(d["to"], serde_json::Value::Null);
    assert!(d["diff"].as_str().unwrap().contains("+++ /dev/null"), "{d}");
    for bad in ["from=12", "from=zzzzzzzz", "to=0000000"] {
        let (status, _) = hub.get(
            &format!("/api/v1/nodes/{node}/files/diff?path={path}&{bad}"),
            &operator,
        );
        assert!(status == 400 || status == 404, "{bad}: {status}");
    }
    let cli_diff = tokio::task::block_in_place(|| {
        let out = std::process::Command::new(BIN)
            .args(["ctl", "--data-dir"])
            .arg(&hub.dir)
            .args([
                "files",
                "diff",
                &node,
                path,
                "--from",
                &sha(v1)[..7],
                "--to",
                &sha(v2),
            ])
            .env("TWINBAY_TOKEN", &operator)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    });
    assert!(cli_diff.contains("+    image: nginx:1.27"), "{cli_diff}");
    assert!(!cli_diff.contains('\u{1b}'), "no colour into a pipe");

    // The CLI shows the same.
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(["ctl", "--data-dir"])
            .arg(&hub.dir)
            .args(args)
            .env("TWINBAY_TOKEN", &viewer)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = tokio::task::block_in_place(|| ctl(&["files", "files-host"]));
    assert!(listed.lines().nth(1).unwrap().ends_with(path), "{listed}");
    assert!(listed.contains("missing"), "{listed}");
    let versions = tokio::task::block_in_place(|| ctl(&["files", "history", &node, path]));
    let rows: Vec<&str> = versions.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{versions}");
    assert!(
        rows[1].contains(&sha(v2)[..12]) && rows[1].contains("changed"),
        "{versions}"
    );

    // The timeline says so too.
    let (_, events) = hub.get(&format!("/api/v1/nodes/{node}/events"), &viewer);
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str().filter(|k| k.starts_with("file.")))
        .collect();
    assert_eq!(kinds, ["file.deleted", "file.changed"]);

    // A reconnecting agent with the same file costs no resend: re-create v1
    // (content the hub has) and nothing is asked.
    raw.send(&AgentMessage::SyncDiff {
        seq: 4,
        changes: vec![Change::upsert(Item::Files(file(path, Some(v1))))],
    })
    .await;
    tokio::task::block_in_place(|| {
        wait_for("v1 again, rated at once", Duration::from_secs(10), || {
            let (_, h) = hub.get(&history_path, &viewer);
            let h = h.as_array()?.clone();
            (h.len() == 4 && h[0]["risk"].is_string()).then_some(())
        })
    });
    assert_eq!(
        history_of(&hub, &history_path, &viewer)[0]["change"],
        "created"
    );
    match tokio::time::timeout(Duration::from_millis(500), raw.recv()).await {
        Err(_) | Ok(HubMessage::Ack { .. }) => {}
        Ok(other) => panic!("nothing should be asked, got {other:?}"),
    }
}

fn history_of(hub: &Hub, path: &str, token: &str) -> Vec<serde_json::Value> {
    tokio::task::block_in_place(|| hub.get(path, token).1.as_array().unwrap().clone())
}
