//! Watched configuration files, at the hub.
//!
//! The agents report each file in their twin's `files` collection (path,
//! hash, state). [`Files::seen`] hands every reported entry to one tracker
//! task ([`track`]) that keeps the versions (`store/files.rs`): a new hash
//! or state is a new version. Content travels only when the hub lacks it:
//! the tracker asks the agent (`need_files`), the agent answers with
//! `file_chunk` frames that [`Files::receive`] assembles, and the tracker
//! stores the text once (content-addressed; a plain hash is verified, so an
//! agent cannot plant content under another host's version). Once a
//! version's content is in (or at once, for files whose content does not
//! travel), the tracker rates the change (`risk.rs`) and puts a
//! `file.changed`, `file.created` or `file.deleted` event on the timeline,
//! with `file.drift` when running services still use the version before;
//! it checks those again every few seconds and says `file.drift_resolved`.

mod compose;
pub mod diff;
mod kv;
mod nginx;
pub mod risk;
mod unit;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use twinbay_proto::message::{FileChunk, HubMessage, NeededFile};
use twinbay_proto::model::{FileKind, FileState, WatchedFile};

use crate::store::{FileVersion, NewFileVersion, now_ms};
use crate::timeline::Event;
use crate::{HubState, lock};

/// Retention: of each file, at least the newest [`KEEP_VERSIONS`] versions,
/// and every version younger than [`KEEP_DAYS`] days.
pub const KEEP_VERSIONS: i64 = 100;
pub const KEEP_DAYS: i64 = 90;
/// How often versions with drift are checked against the twin again.
const DRIFT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How often retention runs.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Versions being assembled at once, hub-wide.
const IN_FLIGHT: usize = 256;
/// Reports and arrived contents waiting for the tracker.
const QUEUE: usize = 16_384;

/// The way in: reported files and arriving content.
pub struct Files {
    partial: Mutex<HashMap<(String, String), Partial>>,
    tx: mpsc::Sender<Job>,
    /// Newest versions whose drift is not resolved yet: (node, path) → version id.
    drifting: Mutex<HashMap<(String, String), i64>>,
}

struct Partial {
    path: String,
    total: u64,
    data: String,
}

#[derive(Debug)]
pub enum Job {
    Seen {
        node_id: String,
        file: WatchedFile,
    },
    Content {
        node_id: String,
        path: String,
        sha256: String,
        text: String,
    },
    /// Rate the newest versions of these paths again (a unit of theirs
    /// needs a daemon-reload).
    Recheck {
        node_id: String,
        paths: Vec<String>,
    },
}

impl Files {
    pub fn new() -> (Files, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let files = Files {
            partial: Mutex::new(HashMap::new()),
            tx,
            drifting: Mutex::new(HashMap::new()),
        };
        (files, rx)
    }

    /// An agent reported `file` (in a full sync or a diff).
    pub fn seen(&self, node_id: &str, file: &WatchedFile) {
        let job = Job::Seen {
            node_id: node_id.to_string(),
            file: file.clone(),
        };
        if self.tx.try_send(job).is_err() {
            tracing::warn!(
                node_id,
                path = file.path,
                "file tracker is behind; a file report was dropped (the next full sync brings it)"
            );
        }
    }

    /// `node_id`'s agent reported `unit` needing a daemon-reload: its files'
    /// newest versions are rated again, for drift.
    pub fn unit_needs_reload(&self, node_id: &str, unit: &twinbay_proto::model::Unit) {
        let paths: Vec<String> = unit
            .fragment_path
            .iter()
            .map(|p| p.to_string())
            .chain(unit.drop_in_paths.iter().cloned())
            .collect();
        if paths.is_empty() {
            return;
        }
        let job = Job::Recheck {
            node_id: node_id.to_string(),
            paths,
        };
        if self.tx.try_send(job).is_err() {
            tracing::warn!(
                node_id,
                "file tracker is behind; a drift recheck was dropped"
            );
        }
    }

    /// A chunk of a version's content from `node_id`'s agent. Chunks out of
    /// order or of a version not started are dropped (the tracker asks again
    /// when the agent next reports the file).
    pub fn receive(&self, node_id: &str, chunk: FileChunk) {
        let Some((path, sha256, text)) = self.assemble(node_id, chunk) else {
            return;
        };
        let job = Job::Content {
            node_id: node_id.to_string(),
            path,
            sha256,
            text,
        };
        if self.tx.try_send(job).is_err() {
            tracing::warn!(
                node_id,
                "file tracker is behind; a file's content was dropped"
            );
        }
    }

    fn assemble(&self, node_id: &str, chunk: FileChunk) -> Option<(String, String, String)> {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        let key = (node_id.to_string(), chunk.sha256.clone());
        if chunk.offset == 0 {
            if partial.len() >= IN_FLIGHT && !partial.contains_key(&key) {
                return None;
            }
            partial.insert(
                key.clone(),
                Partial {
                    path: chunk.path.clone(),
                    total: chunk.total,
                    data: String::with_capacity(chunk.total.min(1 << 20) as usize),
                },
            );
        }
        let p = partial.get_mut(&key)?;
        if p.data.len() as u64 != chunk.offset || p.total != chunk.total || p.path != chunk.path {
            partial.remove(&key);
            return None;
        }
        p.data.push_str(&chunk.data);
        if p.data.len() as u64 >= p.total {
            let done = partial.remove(&key)?;
            return Some((done.path, key.1, done.data));
        }
        None
    }
}

/// The tracker: runs until `stop`, one job at a time.
pub async fn track(hub: Arc<HubState>, mut jobs: mpsc::Receiver<Job>, stop: CancellationToken) {
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    let mut drift = tokio::time::interval(DRIFT_EVERY);
    // Drift found before a restart is still drift: pick it up again.
    match hub.store.drifting_file_versions().await {
        Ok(versions) => {
            let mut drifting = lock(&hub.files.drifting);
            for v in versions {
                drifting.insert((v.node_id, v.path), v.id);
            }
        }
        Err(e) => tracing::warn!(error = %crate::report(&e), "loading drifting files failed"),
    }
    loop {
        let job = tokio::select! {
            _ = stop.cancelled() => return,
            _ = drift.tick() => {
                if let Err(e) = recheck_drift(&hub).await {
                    tracing::warn!(error = %crate::report(&e), "checking drift failed");
                }
                continue;
            }
            _ = prune.tick() => {
                let cutoff = now_ms().saturating_sub(KEEP_DAYS * 86_400_000);
                match hub.store.prune_file_versions(KEEP_VERSIONS, cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(versions = n, "pruned watched files' history"),
                    Err(e) => tracing::warn!(error = %crate::report(&e), "pruning watched files' history failed"),
                }
                continue;
            }
            job = jobs.recv() => match job {
                Some(job) => job,
                None => return,
            },
        };
        let result = match job {
            Job::Seen { node_id, file } => seen(&hub, &node_id, &file).await,
            Job::Content {
                node_id,
                path,
                sha256,
                text,
            } => content(&hub, &node_id, &path, &sha256, &text).await,
            Job::Recheck { node_id, paths } => recheck_paths(&hub, &node_id, &paths).await,
        };
        if let Err(e) = result {
            tracing::error!(error = %crate::report(&e), "recording a watched file failed");
        }
    }
}

/// The wire name of a unit enum (`present`, `too_large`, `compose`, …): what
/// the store keeps, so the database and the protocol say the same.
fn wire<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

async fn seen(
    hub: &HubState,
    node_id: &str,
    file: &WatchedFile,
) -> Result<(), crate::store::StoreError> {
    let state = wire(&file.state);
    let latest = hub.store.latest_file_version(node_id, &file.path).await?;
    if let Some(l) = &latest
        && l.sha256 == file.sha256
        && l.state == state
    {
        // Known. Content still missing (a link that dropped mid-way)? Ask again.
        if l.risk.is_none() && file.ships_content() {
            request(hub, node_id, file);
        }
        return Ok(());
    }
    let change = match (&latest, file.state) {
        (None, _) => "first_seen",
        (Some(_), FileState::Missing) => "deleted",
        (Some(_), FileState::Unreadable) => "unreadable",
        (Some(l), FileState::Present) if l.state != "present" => "created",
        (Some(_), FileState::Present) => "changed",
    };
    let prev = latest.as_ref().and_then(|l| l.sha256.as_deref());
    let id = hub
        .store
        .insert_file_version(&NewFileVersion {
            node_id,
            path: &file.path,
            ts_ms: now_ms(),
            sha256: file.sha256.as_deref(),
            prev_sha256: prev,
            change,
            state: &state,
            kind: &wire(&file.kind),
            content: &wire(&file.content),
            keyed: file.keyed,
            size: file.size.map(|s| s as i64),
            mode: file.mode.map(i64::from),
            images: compose_images(hub, node_id, file),
        })
        .await?;
    let sha = file.sha256.as_deref().unwrap_or_default();
    if file.ships_content() && !hub.store.has_file_content(node_id, sha, file.keyed).await? {
        request(hub, node_id, file);
        return Ok(());
    }
    let version = hub.store.latest_file_version(node_id, &file.path).await?;
    match version {
        Some(v) if v.id == id => assess(hub, &v).await,
        _ => Ok(()),
    }
}

/// For a compose file: the image id each of its services' containers runs
/// now (`{"web": "sha256:…"}`), matched by the compose labels naming this file.
fn compose_images(hub: &HubState, node_id: &str, file: &WatchedFile) -> Option<serde_json::Value> {
    if file.kind != twinbay_proto::model::FileKind::Compose {
        return None;
    }
    let images = hub.twin.read(node_id, |n| {
        let mut out = serde_json::Map::new();
        for c in n.state.containers.values() {
            let names_file = c
                .labels
                .get("com.docker.compose.project.config_files")
                .is_some_and(|files| {
                    let dir = c.labels.get("com.docker.compose.project.working_dir");
                    files.split(',').any(|f| {
                        let f = f.trim();
                        f == file.path
                            || dir.is_some_and(|d| {
                                format!("{}/{f}", d.trim_end_matches('/')) == file.path
                            })
                    })
                });
            if let (true, Some(service), Some(id)) = (names_file, &c.compose_service, &c.image_id) {
                out.insert(service.to_string(), json!(id));
            }
        }
        out
    })?;
    (!images.is_empty()).then_some(serde_json::Value::Object(images))
}

fn request(hub: &HubState, node_id: &str, file: &WatchedFile) {
    let Some(sha256) = file.sha256.clone() else {
        return;
    };
    let msg = HubMessage::NeedFiles {
        files: vec![NeededFile {
            path: file.path.clone(),
            sha256,
        }],
    };
    if !hub.commands.send(node_id, msg) {
        tracing::debug!(
            node_id,
            path = file.path,
            "could not ask for a file's content now"
        );
    }
}

async fn content(
    hub: &HubState,
    node_id: &str,
    path: &str,
    sha256: &str,
    text: &str,
) -> Result<(), crate::store::StoreError> {
    // Only content the hub asked for: a version it recorded and still lacks.
    let Some(version) = hub.store.file_version_by_sha(node_id, path, sha256).await? else {
        tracing::debug!(
            node_id,
            path,
            "content for a version the hub never saw; dropped"
        );
        return Ok(());
    };
    if !hub
        .store
        .put_file_content(node_id, sha256, version.keyed, text)
        .await?
    {
        tracing::warn!(
            node_id,
            path,
            "an agent sent content that does not match its hash, or is binary; dropped"
        );
        return Ok(());
    }
    for v in hub.store.unassessed_file_versions(node_id, sha256).await? {
        assess(hub, &v).await?;
    }
    Ok(())
}

/// Rates version `v` against the one before and puts it on the timeline.
async fn assess(hub: &HubState, v: &FileVersion) -> Result<(), crate::store::StoreError> {
    let verdict = rate_stored(hub, v).await?;
    let assessment = serde_json::to_value(&verdict).unwrap_or_default();
    let risk = verdict.risk.as_str();
    hub.store
        .set_file_assessment(v.id, risk, &verdict.summary, &assessment)
        .await?;
    let kind = match v.change.as_str() {
        "first_seen" => return Ok(()),
        "created" => "file.created",
        "deleted" => "file.deleted",
        "unreadable" => "file.unreadable",
        _ => "file.changed",
    };
    let mut events = vec![Event {
        node_id: v.node_id.clone(),
        ts: v.ts_ms,
        kind: kind.into(),
        target: v.path.clone(),
        detail: json!({
            "path": v.path,
            "sha256": v.sha256,
            "prev_sha256": v.prev_sha256,
            "risk": risk,
            "summary": verdict.summary,
            "affected": verdict.affected,
        }),
    }];
    if !verdict.drift.is_empty() {
        events.push(drift_event(v, "file.drift", &verdict.drift));
        lock(&hub.files.drifting).insert((v.node_id.clone(), v.path.clone()), v.id);
    }
    hub.twin.emit(events);
    Ok(())
}

fn drift_event(v: &FileVersion, kind: &str, drift: &[risk::Drift]) -> Event {
    Event {
        node_id: v.node_id.clone(),
        ts: now_ms(),
        kind: kind.into(),
        target: v.path.clone(),
        detail: json!({"path": v.path, "sha256": v.sha256, "drift": drift}),
    }
}

/// Versions with drift: rated again against the twin as it is now (see
/// [`refresh_drift`]).
async fn recheck_drift(hub: &HubState) -> Result<(), crate::store::StoreError> {
    let drifting: Vec<((String, String), i64)> = lock(&hub.files.drifting)
        .iter()
        .map(|(k, id)| (k.clone(), *id))
        .collect();
    for ((node_id, path), id) in drifting {
        let latest = hub.store.latest_file_version(&node_id, &path).await?;
        match latest.filter(|v| v.id == id) {
            Some(v) => refresh_drift(hub, &v).await?,
            // A newer version replaced it; its own rating tracks drift.
            None => drop(lock(&hub.files.drifting).remove(&(node_id, path))),
        }
    }
    Ok(())
}

/// The newest versions of `paths` on `node_id`, rated again: a unit of
/// theirs now says it needs a daemon-reload (systemd does not signal that,
/// so it can arrive after the version was rated).
async fn recheck_paths(
    hub: &HubState,
    node_id: &str,
    paths: &[String],
) -> Result<(), crate::store::StoreError> {
    for path in paths {
        if let Some(v) = hub.store.latest_file_version(node_id, path).await? {
            refresh_drift(hub, &v).await?;
        }
    }
    Ok(())
}

/// Rates `v` again against the twin as it is now and records a change of
/// its drift: new or different drift goes on the timeline as `file.drift`;
/// drift gone (containers recreated, daemon-reload done, unit restarted) as
/// `file.drift_resolved`. A version not rated yet is left to its rating.
async fn refresh_drift(hub: &HubState, v: &FileVersion) -> Result<(), crate::store::StoreError> {
    if v.risk.is_none() || v.change == "first_seen" {
        return Ok(());
    }
    let verdict = rate_stored(hub, v).await?;
    let mut assessment = v.assessment.clone().unwrap_or_else(|| json!({}));
    let was: Vec<risk::Drift> = assessment
        .get("drift")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_default();
    let key = (v.node_id.clone(), v.path.clone());
    if verdict.drift == was {
        if !was.is_empty() {
            lock(&hub.files.drifting).insert(key, v.id);
        }
        return Ok(());
    }
    assessment["drift"] = json!(verdict.drift);
    hub.store
        .set_file_assessment(
            v.id,
            v.risk.as_deref().unwrap_or("low"),
            &v.summary,
            &assessment,
        )
        .await?;
    let event = if verdict.drift.is_empty() {
        lock(&hub.files.drifting).remove(&key);
        let mut event = drift_event(v, "file.drift_resolved", &[]);
        event.detail["was"] = json!(was);
        event
    } else {
        lock(&hub.files.drifting).insert(key, v.id);
        drift_event(v, "file.drift", &verdict.drift)
    };
    hub.twin.emit(vec![event]);
    Ok(())
}

/// [`rate`] on version `v` with both versions' content and the old mode
/// read from the store.
async fn rate_stored(
    hub: &HubState,
    v: &FileVersion,
) -> Result<risk::Assessment, crate::store::StoreError> {
    let text_of = async |sha: Option<&str>| match sha {
        Some(sha) => hub.store.file_content(&v.node_id, sha, v.keyed).await,
        None => Ok(None),
    };
    let old = text_of(v.prev_sha256.as_deref()).await?;
    let new = text_of(v.sha256.as_deref()).await?;
    let old_mode = match v.prev_sha256.as_deref() {
        Some(sha) => hub
            .store
            .file_version_by_sha(&v.node_id, &v.path, sha)
            .await?
            .and_then(|p| p.mode)
            .and_then(|m| u32::try_from(m).ok()),
        None => None,
    };
    Ok(rate(hub, v, old.as_deref(), new.as_deref(), old_mode))
}

/// The rule engine's verdict on version `v` (`risk.rs`), against the twin as it is now.
fn rate(
    hub: &HubState,
    v: &FileVersion,
    old: Option<&str>,
    new: Option<&str>,
    old_mode: Option<u32>,
) -> risk::Assessment {
    if v.change == "first_seen" {
        // Nothing to compare with: the hub's first look is no change.
        return risk::Assessment {
            risk: risk::Risk::Low,
            findings: Vec::new(),
            summary: "first seen".into(),
            affected: Vec::new(),
            drift: Vec::new(),
        };
    }
    let kind: FileKind = serde_json::from_value(json!(v.kind)).unwrap_or_default();
    let old = v.prev_sha256.as_deref().map(|sha| risk::FileVersion {
        text: old,
        mode: old_mode,
        sha256: Some(sha),
    });
    let new = v.sha256.as_deref().map(|sha| risk::FileVersion {
        text: new,
        mode: v.mode.and_then(|m| u32::try_from(m).ok()),
        sha256: Some(sha),
    });
    let empty = twinbay_proto::model::NodeState::default();
    hub.twin
        .read(&v.node_id, |n| {
            risk::assess(kind, &v.path, old.as_ref(), new.as_ref(), &n.state, v.ts_ms)
        })
        .unwrap_or_else(|| risk::assess(kind, &v.path, old.as_ref(), new.as_ref(), &empty, v.ts_ms))
}
