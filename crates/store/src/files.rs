//! Watched files: versions, and their content stored once
//! (`migrations/0009_files.sql`).

use serde::Serialize;

use super::StoreError;

/// One version of a watched file, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FileVersion {
    pub id: i64,
    pub node_id: String,
    pub path: String,
    /// When the hub saw it, unix milliseconds.
    pub ts_ms: i64,
    /// `None` when the file was missing or unreadable.
    pub sha256: Option<String>,
    /// The version before, if any.
    pub prev_sha256: Option<String>,
    /// `first_seen` (the hub's first look), `changed`, `created`, `deleted`, `unreadable`.
    pub change: String,
    /// `present`, `missing` or `unreadable`.
    pub state: String,
    /// `compose`, `systemd_unit`, `nginx`, `caddy`, `env`, `yaml`, `other`.
    pub kind: String,
    /// Whether the content travelled: `shipped`, `secret`, `too_large`, `binary`, `none`.
    pub content: String,
    pub keyed: bool,
    pub size: Option<i64>,
    pub mode: Option<i64>,
    /// `low`, `medium`, `high`, `critical`; `None` until the content arrived.
    pub risk: Option<String>,
    pub summary: String,
    /// Findings (each rule that fired), affected services and drift.
    #[schema(value_type = Object)]
    pub assessment: Option<serde_json::Value>,
    /// Compose files: the image id each service's container ran when this
    /// version was seen.
    #[schema(value_type = Object)]
    pub images: Option<serde_json::Value>,
}

/// A version to record.
#[derive(Debug, Clone)]
pub struct NewFileVersion<'a> {
    pub node_id: &'a str,
    pub path: &'a str,
    pub ts_ms: i64,
    pub sha256: Option<&'a str>,
    pub prev_sha256: Option<&'a str>,
    pub change: &'a str,
    pub state: &'a str,
    pub kind: &'a str,
    pub content: &'a str,
    pub keyed: bool,
    pub size: Option<i64>,
    pub mode: Option<i64>,
    pub images: Option<serde_json::Value>,
}

/// A `file_versions` row as stored (JSON columns as text).
#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    id: i64,
    node_id: String,
    path: String,
    ts_ms: i64,
    sha256: Option<String>,
    prev_sha256: Option<String>,
    change: String,
    state: String,
    kind: String,
    content: String,
    keyed: bool,
    size: Option<i64>,
    mode: Option<i64>,
    risk: Option<String>,
    summary: String,
    assessment: Option<String>,
    images: Option<String>,
}

pub(crate) fn version(r: Row) -> FileVersion {
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    FileVersion {
        id: r.id,
        node_id: r.node_id,
        path: r.path,
        ts_ms: r.ts_ms,
        sha256: r.sha256,
        prev_sha256: r.prev_sha256,
        change: r.change,
        state: r.state,
        kind: r.kind,
        content: r.content,
        keyed: r.keyed,
        size: r.size,
        mode: r.mode,
        risk: r.risk,
        summary: r.summary,
        assessment: json(r.assessment),
        images: json(r.images),
    }
}

/// Which content rows may answer for a version: a plain hash fleet-wide,
/// a keyed one only on its own node.
pub(crate) fn owner(node_id: &str, keyed: bool) -> &str {
    if keyed { node_id } else { "" }
}

#[async_trait::async_trait]
pub trait FileStore: Send + Sync {
    /// The newest version of `path` on `node_id`.
    async fn latest_file_version(
        &self,
        node_id: &str,
        path: &str,
    ) -> Result<Option<FileVersion>, StoreError>;

    async fn insert_file_version(&self, v: &NewFileVersion<'_>) -> Result<i64, StoreError>;

    /// Records how risky version `id` is, and why.
    async fn set_file_assessment(
        &self,
        id: i64,
        risk: &str,
        summary: &str,
        assessment: &serde_json::Value,
    ) -> Result<(), StoreError>;

    /// Versions of `path` on `node_id`, newest first.
    async fn file_versions(
        &self,
        node_id: &str,
        path: &str,
        limit: i64,
    ) -> Result<Vec<FileVersion>, StoreError>;

    /// The version `sha256` of `path` on `node_id` (its newest row).
    async fn file_version_by_sha(
        &self,
        node_id: &str,
        path: &str,
        sha256: &str,
    ) -> Result<Option<FileVersion>, StoreError>;

    /// Changes across the fleet since `since_ms`, newest first; versions
    /// still waiting for their content are left out.
    async fn file_changes(
        &self,
        since_ms: i64,
        risks: &[&str],
        limit: i64,
    ) -> Result<Vec<FileVersion>, StoreError>;

    /// Versions of `node_id` with this hash that wait for their content.
    async fn unassessed_file_versions(
        &self,
        node_id: &str,
        sha256: &str,
    ) -> Result<Vec<FileVersion>, StoreError>;

    /// Whether the hub holds the content of this version.
    async fn has_file_content(
        &self,
        node_id: &str,
        sha256: &str,
        keyed: bool,
    ) -> Result<bool, StoreError>;

    /// Stores a version's content. A plain hash must be the hash of the
    /// text (else `false`, nothing stored): an agent cannot plant content
    /// under another host's version. A keyed one is its node's alone. Text
    /// with a NUL byte is binary, and refused the same way.
    async fn put_file_content(
        &self,
        node_id: &str,
        sha256: &str,
        keyed: bool,
        text: &str,
    ) -> Result<bool, StoreError>;

    /// The content of a version, if the hub has it.
    async fn file_content(
        &self,
        node_id: &str,
        sha256: &str,
        keyed: bool,
    ) -> Result<Option<String>, StoreError>;

    /// The newest version of every path of `node_id`.
    async fn latest_file_versions(&self, node_id: &str) -> Result<Vec<FileVersion>, StoreError>;

    /// The newest versions (of any node and path) whose assessment still
    /// names drift: what the tracker rechecks, also after a hub restart.
    async fn drifting_file_versions(&self) -> Result<Vec<FileVersion>, StoreError>;

    /// Forgets versions past retention: of each file, versions beyond the
    /// newest `keep` that are also older than `cutoff_ms`; then content no
    /// version refers to. Returns how many versions went.
    async fn prune_file_versions(&self, keep: i64, cutoff_ms: i64) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{Fixture, store_test_suite};

    store_test_suite!(
        content_is_stored_once_verified_and_pruned_with_its_versions,
        drifting_versions_are_the_newest_ones_still_naming_drift,
    );
    use sha2::{Digest, Sha256};

    fn v<'a>(path: &'a str, sha: &'a str, ts_ms: i64) -> NewFileVersion<'a> {
        NewFileVersion {
            node_id: "n1",
            path,
            ts_ms,
            sha256: Some(sha),
            prev_sha256: None,
            change: "changed",
            state: "present",
            kind: "other",
            content: "shipped",
            keyed: false,
            size: None,
            mode: None,
            images: None,
        }
    }

    async fn content_is_stored_once_verified_and_pruned_with_its_versions(f: &Fixture) {
        let store = f.store.clone();
        let texts: Vec<String> = (0..5).map(|i| format!("version {i}\n")).collect();
        let shas: Vec<String> = texts
            .iter()
            .map(|t| hex::encode(Sha256::digest(t.as_bytes())))
            .collect();
        for (i, (text, sha)) in texts.iter().zip(&shas).enumerate() {
            store
                .insert_file_version(&v("/etc/a", sha, i as i64 * 1000))
                .await
                .unwrap();
            assert!(
                store
                    .put_file_content("n1", sha, false, text)
                    .await
                    .unwrap()
            );
        }
        // Planted: a plain hash that is not the text's.
        assert!(
            !store
                .put_file_content("n2", &shas[0], false, "evil")
                .await
                .unwrap()
        );
        // Shared: another node finds the verified content of a plain hash.
        assert!(store.has_file_content("n2", &shas[1], false).await.unwrap());
        // Keyed content is its node's alone.
        store
            .put_file_content("n1", "k1", true, "secret-ish")
            .await
            .unwrap();
        assert!(!store.has_file_content("n2", "k1", true).await.unwrap());

        // Keep 2, but only what is older than 3 s goes: versions 0, 1 and 2.
        assert_eq!(store.prune_file_versions(2, 3000).await.unwrap(), 3);
        let left = store.file_versions("n1", "/etc/a", 10).await.unwrap();
        assert_eq!(left.len(), 2);
        assert!(!store.has_file_content("n1", &shas[0], false).await.unwrap());
        assert_eq!(
            store
                .file_content("n1", &shas[4], false)
                .await
                .unwrap()
                .as_deref(),
            Some("version 4\n")
        );
    }

    async fn drifting_versions_are_the_newest_ones_still_naming_drift(f: &Fixture) {
        let store = f.store.clone();
        let drift = serde_json::json!({"drift": [{"kind": "container", "name": "web"}]});
        let none = serde_json::json!({"drift": []});
        // /a: drift, then a newer version without: not drifting.
        let a1 = store.insert_file_version(&v("/a", "a1", 1)).await.unwrap();
        store
            .set_file_assessment(a1, "high", "x", &drift)
            .await
            .unwrap();
        let a2 = store.insert_file_version(&v("/a", "a2", 2)).await.unwrap();
        store
            .set_file_assessment(a2, "low", "x", &none)
            .await
            .unwrap();
        // /b: its newest version drifts.
        let b1 = store.insert_file_version(&v("/b", "b1", 3)).await.unwrap();
        store
            .set_file_assessment(b1, "high", "x", &drift)
            .await
            .unwrap();
        // /c: not assessed yet.
        store.insert_file_version(&v("/c", "c1", 4)).await.unwrap();
        let drifting = store.drifting_file_versions().await.unwrap();
        let ids: Vec<i64> = drifting.iter().map(|v| v.id).collect();
        assert_eq!(ids, vec![b1]);
    }
}
