//! Alert channels, rules and alerts (the hub's `alerts.rs` runs them).

mod redact;
pub mod seal;

pub use redact::redact;

use crate::StoreError;
use crate::audit::Record;
use seal::Sealer;

/// A channel. Its `Debug` hides the secret and the URL's credentials, so
/// no log line can carry them.
#[derive(Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ChannelRecord {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// As the API shows it: tokens, passwords and credentials are `***`.
    pub url: String,
    /// Set: bodies are signed (the secret itself is never shown).
    pub signed: bool,
    #[serde(skip)]
    pub secret: Option<String>,
    pub created_ms: i64,
    /// When a notification last arrived.
    pub last_sent_ms: Option<i64>,
    /// Why the last delivery given up failed (kept after later successes).
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    /// `HH:MM-HH:MM`, optionally with an IANA zone (default UTC):
    /// notifications falling inside wait for the end.
    pub quiet_hours: Option<String>,
}

impl std::fmt::Debug for ChannelRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &redact(&self.kind, &self.url))
            .field("signed", &self.signed)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("last_sent_ms", &self.last_sent_ms)
            .field("last_error", &self.last_error)
            .field("quiet_hours", &self.quiet_hours)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RuleRecord {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub for_ms: i64,
    pub above: Option<f64>,
    pub clear: Option<f64>,
    pub group: Option<String>,
    pub node_id: Option<String>,
    pub channels: Vec<i64>,
    pub enabled: bool,
    pub created_ms: i64,
    /// `disk_forecast`: fires when a mount is predicted to fill within this…
    pub within_ms: Option<i64>,
    /// …by a line through this much of its history.
    pub window_ms: Option<i64>,
    /// `file_changed`: the least risk that fires (default `high`).
    pub risk: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AlertRecord {
    pub id: i64,
    pub rule_id: i64,
    pub node_id: String,
    pub subject: String,
    /// `pending`, `firing` or `resolved`.
    pub state: String,
    pub summary: String,
    pub started_ms: i64,
    pub fired_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    #[serde(skip)]
    pub notified: bool,
    /// Acknowledged: not repeated until it resolves.
    pub acked_ms: Option<i64>,
    pub acked_by: Option<String>,
    pub ack_comment: Option<String>,
    /// A silence matches it now (set by the API; not stored).
    pub silenced: bool,
}

/// A silence: matching alerts are evaluated and listed but not sent
/// between `starts_ms` and `ends_ms`. Every matcher given must match.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SilenceRecord {
    pub id: i64,
    pub rule_id: Option<i64>,
    pub node_id: Option<String>,
    /// Host labels that must all match.
    pub labels: std::collections::BTreeMap<String, String>,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub comment: String,
    pub created_by: String,
    pub created_ms: i64,
}

impl SilenceRecord {
    /// Whether it silences an alert of `rule_id` on a host at `now`.
    pub fn matches(
        &self,
        rule_id: i64,
        node_id: &str,
        labels: &std::collections::BTreeMap<String, String>,
        now: i64,
    ) -> bool {
        (self.starts_ms..self.ends_ms).contains(&now)
            && self.rule_id.is_none_or(|r| r == rule_id)
            && self.node_id.as_deref().is_none_or(|n| n == node_id)
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

pub(crate) type ChannelRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
);
pub(crate) type RuleRow = (
    i64,
    String,
    String,
    i64,
    Option<f64>,
    Option<f64>,
    Option<String>,
    Option<String>,
    String,
    bool,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);
pub(crate) type AlertRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    bool,
    Option<i64>,
    Option<String>,
    Option<String>,
);
pub(crate) type SilenceRow = (
    i64,
    Option<i64>,
    Option<String>,
    String,
    i64,
    i64,
    String,
    String,
    i64,
);

pub(crate) fn silence(
    (id, rule_id, node_id, labels, starts_ms, ends_ms, comment, created_by, created_ms): SilenceRow,
) -> SilenceRecord {
    SilenceRecord {
        id,
        rule_id,
        node_id,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        starts_ms,
        ends_ms,
        comment,
        created_by,
        created_ms,
    }
}

pub(crate) fn channel(
    (
        id,
        name,
        kind,
        url,
        secret,
        created_ms,
        last_sent_ms,
        last_error,
        last_error_ms,
        quiet_hours,
    ): ChannelRow,
) -> ChannelRecord {
    ChannelRecord {
        id,
        name,
        kind,
        url,
        signed: secret.is_some(),
        secret,
        created_ms,
        last_sent_ms,
        last_error,
        last_error_ms,
        quiet_hours,
    }
}

pub(crate) fn rule(
    (
        id,
        name,
        kind,
        for_ms,
        above,
        clear,
        group,
        node_id,
        channels,
        enabled,
        created_ms,
        within_ms,
        window_ms,
        risk,
    ): RuleRow,
) -> RuleRecord {
    let channels = serde_json::from_str(&channels).unwrap_or_default();
    RuleRecord {
        id,
        name,
        kind,
        for_ms,
        above,
        clear,
        group,
        node_id,
        channels,
        enabled,
        created_ms,
        within_ms,
        window_ms,
        risk,
    }
}

pub(crate) fn alert(
    (
        id,
        rule_id,
        node_id,
        subject,
        state,
        summary,
        started_ms,
        fired_ms,
        resolved_ms,
        notified,
        acked_ms,
        acked_by,
        ack_comment,
    ): AlertRow,
) -> AlertRecord {
    AlertRecord {
        id,
        rule_id,
        node_id,
        subject,
        state,
        summary,
        started_ms,
        fired_ms,
        resolved_ms,
        notified,
        acked_ms,
        acked_by,
        ack_comment,
        silenced: false,
    }
}

/// A new channel.
pub struct NewChannel<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub url: &'a str,
    pub secret: Option<&'a str>,
    pub quiet_hours: Option<&'a str>,
}

/// A new silence.
pub struct NewSilence<'a> {
    pub rule_id: Option<i64>,
    pub node_id: Option<&'a str>,
    pub labels: &'a std::collections::BTreeMap<String, String>,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub comment: &'a str,
    pub created_by: &'a str,
}

/// A new rule.
pub struct NewRule<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub for_ms: i64,
    pub above: Option<f64>,
    pub clear: Option<f64>,
    pub group: Option<&'a str>,
    pub node_id: Option<&'a str>,
    pub channels: &'a [i64],
    pub within_ms: Option<i64>,
    pub window_ms: Option<i64>,
    pub risk: Option<&'a str>,
}

#[async_trait::async_trait]
pub trait AlertStore: Send + Sync {
    /// The channels, their URLs and secrets opened with `sealer`.
    async fn alert_channels(&self, sealer: &Sealer) -> Result<Vec<ChannelRecord>, StoreError>;

    /// Seals the URLs and secrets of channels stored before sealing (once,
    /// at start); the old text is overwritten in the file, not just freed
    /// (`secure_delete`), and the write-ahead log emptied. Returns how many
    /// channels it sealed.
    async fn seal_alert_channels(&self, sealer: &Sealer) -> Result<usize, StoreError>;

    /// Adds a channel, audited with `record` (its target set here).
    async fn add_alert_channel(
        &self,
        c: &NewChannel<'_>,
        sealer: &Sealer,
        record: Record,
    ) -> Result<i64, StoreError>;

    /// Removes a channel; false if there was none. Rules that name it keep
    /// the id, which no longer delivers anywhere.
    async fn remove_alert_channel(&self, id: i64, record: Record) -> Result<bool, StoreError>;

    /// Notes how the last delivery to a channel went.
    async fn note_alert_delivery(&self, id: i64, error: Option<&str>) -> Result<(), StoreError>;

    async fn alert_rules(&self) -> Result<Vec<RuleRecord>, StoreError>;

    async fn add_alert_rule(&self, r: &NewRule<'_>, record: Record) -> Result<i64, StoreError>;

    /// Removes a rule and its alerts; false if there was none.
    async fn remove_alert_rule(&self, id: i64, record: Record) -> Result<bool, StoreError>;

    /// Alerts, newest first: the active ones (pending, firing) with
    /// `active`, else up to `limit` of any state.
    async fn alerts(&self, active: bool, limit: u32) -> Result<Vec<AlertRecord>, StoreError>;

    /// Records a new or changed alert; returns its id.
    async fn put_alert(&self, a: &AlertRecord) -> Result<i64, StoreError>;

    /// Forgets a pending alert that recovered before it fired.
    async fn drop_alert(&self, id: i64) -> Result<(), StoreError>;

    /// Marks alerts' current notification as sent.
    async fn mark_alerts_notified(&self, ids: &[i64]) -> Result<(), StoreError>;

    /// Turns a rule on or off, or changes the channels it notifies; false
    /// if there is no such rule.
    async fn update_alert_rule(
        &self,
        id: i64,
        enabled: Option<bool>,
        channels: Option<&[i64]>,
        record: Record,
    ) -> Result<bool, StoreError>;

    /// Acknowledges an active alert, audited; `None` if there is no such
    /// alert, `Some(false)` if it is not active (resolved).
    async fn ack_alert(
        &self,
        id: i64,
        by: &str,
        comment: &str,
        record: Record,
    ) -> Result<Option<AlertRecord>, StoreError>;

    async fn alert_silences(&self) -> Result<Vec<SilenceRecord>, StoreError>;

    /// Adds a silence, audited.
    async fn add_alert_silence(
        &self,
        n: &NewSilence<'_>,
        record: Record,
    ) -> Result<i64, StoreError>;

    /// Ends a silence now (kept, for the record), audited; false if there
    /// is none.
    async fn expire_alert_silence(&self, id: i64, record: Record) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    /// Channels an older hub stored in plain text are sealed once; after
    /// that neither the URL's token nor the secret is anywhere in the
    /// database's files, and both read back as they were.
    #[tokio::test]
    async fn plain_channels_are_sealed_once_leaving_no_trace_in_the_files() {
        let dir = std::env::temp_dir().join(format!("twinbay-seal-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir).await.unwrap();
        let (url, secret) = (
            "https://hooks.example/T0ken-plain-5555",
            "plain-Secret-9876",
        );
        sqlx::query(
            "INSERT INTO alert_channels (name, kind, url, secret, created_ms) VALUES ('old', 'webhook', ?, ?, 0)",
        )
        .bind(url)
        .bind(secret)
        .execute(store.history_pool())
        .await
        .unwrap();
        // As an older hub leaves it: in the main file, not only the log.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(store.history_pool())
            .await
            .unwrap();
        let traces = || {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap_or_default();
                for needle in ["T0ken-plain-5555", secret] {
                    if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        found.push(format!("{needle} in {}", path.display()));
                    }
                }
            }
            found
        };
        assert!(!traces().is_empty(), "the test plants what it looks for");
        let sealer = Sealer::from_key(&[3; 32]);
        assert_eq!(store.seal_alert_channels(&sealer).await.unwrap(), 1);
        assert_eq!(store.seal_alert_channels(&sealer).await.unwrap(), 0, "once");
        assert_eq!(traces(), Vec::<String>::new());
        let c = &store.alert_channels(&sealer).await.unwrap()[0];
        assert_eq!((c.url.as_str(), c.secret.as_deref()), (url, Some(secret)));
        // Another key cannot read them: a clear error, not garbage.
        let other = store.alert_channels(&Sealer::from_key(&[4; 32])).await;
        assert!(matches!(other, Err(StoreError::Damaged(_))), "{other:?}");
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
