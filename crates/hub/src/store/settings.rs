use super::{Store, StoreError};

/// The URL agents should dial, written by the hub at start for `ctl` to read.
pub const PUBLIC_URL: &str = "public_url";
/// The pin of the hub's TLS certificate, written by the hub at start.
pub const TLS_FINGERPRINT: &str = "tls_fingerprint";
/// The trusted update keys (one per line), written by the hub at start:
/// join strings carry them to agents.
pub const UPDATE_KEYS: &str = "update_keys";

impl Store {
    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.0))
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
