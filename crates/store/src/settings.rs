use super::StoreError;

/// The URL agents should dial, written by the hub at start for `ctl` to read.
pub const PUBLIC_URL: &str = "public_url";
/// The pin of the hub's TLS certificate, written by the hub at start.
pub const TLS_FINGERPRINT: &str = "tls_fingerprint";
/// The trusted update keys (one per line), written by the hub at start:
/// join strings carry them to agents.
pub const UPDATE_KEYS: &str = "update_keys";
/// Every hub replica's URL, one a line, kept by the replica that leads:
/// join strings list them so agents can move when one is lost.
pub const HUB_URLS: &str = "hub_urls";
/// The id of the replicas sharing this store: it names their NATS subjects
/// and buckets, so clusters on one NATS server stay apart.
pub const CLUSTER_ID: &str = "cluster_id";

#[async_trait::async_trait]
pub trait SettingStore: Send + Sync {
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// The setting `key`, set to `value` first if it has none (once, even
    /// when replicas race).
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError>;
}
