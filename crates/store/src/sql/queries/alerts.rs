//! `alerts`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::alerts::seal::Sealer;
use crate::alerts::*;
use crate::audit::Record;
use crate::*;

macro_rules! channels {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, kind, url, secret, created_ms, last_ok_ms, last_error, last_error_ms, quiet_hours FROM alert_channels ",
            $rest
        )
    };
}

macro_rules! rules {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, kind, for_ms, above, clear, host_group, node_id, channels, enabled, created_ms, within_ms, window_ms, min_risk FROM alert_rules ",
            $rest
        )
    };
}

macro_rules! alerts {
    ($rest:literal) => {
        concat!(
            "SELECT id, rule_id, node_id, subject, state, summary, started_ms, fired_ms, resolved_ms, notified, acked_ms, acked_by, ack_comment FROM alerts ",
            $rest
        )
    };
}

#[async_trait::async_trait]
impl crate::AlertStore for Sql<Db> {
    async fn alert_channels(&self, sealer: &Sealer) -> Result<Vec<ChannelRecord>, StoreError> {
        let rows: Vec<ChannelRow> = query_as(channels!("ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        let damaged = |e: crate::alerts::seal::Unopenable| StoreError::Damaged(e.to_string());
        rows.into_iter()
            .map(|mut row| {
                row.3 = sealer.open(&row.3, "url").map_err(damaged)?;
                row.4 = match row.4 {
                    Some(s) => Some(sealer.open(&s, "secret").map_err(damaged)?),
                    None => None,
                };
                Ok(channel(row))
            })
            .collect()
    }

    async fn seal_alert_channels(&self, sealer: &Sealer) -> Result<usize, StoreError> {
        let mut tx = self.write_tx().await?;
        let rows: Vec<(i64, String, Option<String>)> =
            query_as("SELECT id, url, secret FROM alert_channels")
                .fetch_all(&mut *tx)
                .await?;
        let plain: Vec<_> = rows
            .into_iter()
            .filter(|(_, url, secret)| {
                !Sealer::is_sealed(url) || secret.as_deref().is_some_and(|s| !Sealer::is_sealed(s))
            })
            .collect();
        if plain.is_empty() {
            return Ok(0);
        }
        secure_delete(&mut tx).await?;
        for (id, url, secret) in &plain {
            let seal = |text: &str, what| match Sealer::is_sealed(text) {
                true => text.to_string(),
                false => sealer.seal(text, what),
            };
            query("UPDATE alert_channels SET url = ?, secret = ? WHERE id = ?")
                .bind(seal(url, "url"))
                .bind(secret.as_deref().map(|s| seal(s, "secret")))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        checkpoint(&self.pool).await?;
        Ok(plain.len())
    }

    async fn add_alert_channel(
        &self,
        c: &NewChannel<'_>,
        sealer: &Sealer,
        record: Record,
    ) -> Result<i64, StoreError> {
        let insert = query_scalar(
            "INSERT INTO alert_channels (name, kind, url, secret, quiet_hours, created_ms) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(c.name)
        .bind(c.kind)
        .bind(sealer.seal(c.url, "url"))
        .bind(c.secret.map(|s| sealer.seal(s, "secret")))
        .bind(c.quiet_hours)
        .bind(now_ms());
        self.insert_audited(insert, record, "alert_channel").await
    }

    async fn remove_alert_channel(&self, id: i64, record: Record) -> Result<bool, StoreError> {
        let change = query("DELETE FROM alert_channels WHERE id = ?").bind(id);
        self.change_audited(change, record, "alert_channel", id)
            .await
    }

    async fn note_alert_delivery(&self, id: i64, error: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let q = match error {
            None => query("UPDATE alert_channels SET last_ok_ms = ? WHERE id = ?")
                .bind(now_ms())
                .bind(id),
            Some(e) => {
                query("UPDATE alert_channels SET last_error = ?, last_error_ms = ? WHERE id = ?")
                    .bind(e)
                    .bind(now_ms())
                    .bind(id)
            }
        };
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn alert_rules(&self) -> Result<Vec<RuleRecord>, StoreError> {
        let rows: Vec<RuleRow> = query_as(rules!("ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(rule).collect())
    }

    async fn add_alert_rule(&self, r: &NewRule<'_>, record: Record) -> Result<i64, StoreError> {
        let insert = query_scalar(
            "INSERT INTO alert_rules (name, kind, for_ms, above, clear, host_group, node_id, channels, created_ms, within_ms, window_ms, min_risk)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(r.name)
        .bind(r.kind)
        .bind(r.for_ms)
        .bind(r.above)
        .bind(r.clear)
        .bind(r.group)
        .bind(r.node_id)
        .bind(serde_json::to_string(r.channels).unwrap_or_else(|_| "[]".into()))
        .bind(now_ms())
        .bind(r.within_ms)
        .bind(r.window_ms)
        .bind(r.risk);
        self.insert_audited(insert, record, "alert_rule").await
    }

    async fn remove_alert_rule(&self, id: i64, record: Record) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let gone = query("DELETE FROM alert_rules WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if gone {
            query("DELETE FROM alerts WHERE rule_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            super::audit::append_in(&mut tx, &record.target(&format!("alert_rule:{id}"))).await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    async fn alerts(&self, active: bool, limit: u32) -> Result<Vec<AlertRecord>, StoreError> {
        let rows: Vec<AlertRow> = match active {
            true => {
                query_as(alerts!("WHERE state != 'resolved' ORDER BY id DESC"))
                    .fetch_all(&self.pool)
                    .await?
            }
            false => {
                query_as(alerts!("ORDER BY id DESC LIMIT ?"))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows.into_iter().map(alert).collect())
    }

    async fn put_alert(&self, a: &AlertRecord) -> Result<i64, StoreError> {
        let mut tx = self.write_tx().await?;
        let id = if a.id == 0 {
            query_scalar(
                "INSERT INTO alerts (rule_id, node_id, subject, state, summary, started_ms, fired_ms, resolved_ms, notified)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(a.rule_id)
            .bind(&a.node_id)
            .bind(&a.subject)
            .bind(&a.state)
            .bind(&a.summary)
            .bind(a.started_ms)
            .bind(a.fired_ms)
            .bind(a.resolved_ms)
            .bind(a.notified)
            .fetch_one(&mut *tx)
            .await?
        } else {
            query(
                "UPDATE alerts SET state = ?, summary = ?, fired_ms = ?, resolved_ms = ?, notified = ? WHERE id = ?",
            )
            .bind(&a.state)
            .bind(&a.summary)
            .bind(a.fired_ms)
            .bind(a.resolved_ms)
            .bind(a.notified)
            .bind(a.id)
            .execute(&mut *tx)
            .await?;
            a.id
        };
        tx.commit().await?;
        Ok(id)
    }

    async fn drop_alert(&self, id: i64) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        query("DELETE FROM alerts WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn mark_alerts_notified(&self, ids: &[i64]) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for id in ids {
            query("UPDATE alerts SET notified = TRUE WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn update_alert_rule(
        &self,
        id: i64,
        enabled: Option<bool>,
        channels: Option<&[i64]>,
        record: Record,
    ) -> Result<bool, StoreError> {
        let channels = channels.map(|c| serde_json::to_string(c).unwrap_or_else(|_| "[]".into()));
        let change = query(
            "UPDATE alert_rules SET enabled = COALESCE(?, enabled), channels = COALESCE(?, channels) WHERE id = ?",
        )
        .bind(enabled)
        .bind(channels)
        .bind(id);
        self.change_audited(change, record, "alert_rule", id).await
    }

    async fn ack_alert(
        &self,
        id: i64,
        by: &str,
        comment: &str,
        record: Record,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let mut tx = self.write_tx().await?;
        let updated = query(
            "UPDATE alerts SET acked_ms = ?, acked_by = ?, ack_comment = ? WHERE id = ? AND state != 'resolved'",
        )
        .bind(now_ms())
        .bind(by)
        .bind(comment)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let row: Option<AlertRow> = query_as(alerts!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if updated {
            super::audit::append_in(&mut tx, &record.target(&format!("alert:{id}"))).await?;
        }
        tx.commit().await?;
        Ok(row.map(alert))
    }

    async fn alert_silences(&self) -> Result<Vec<SilenceRecord>, StoreError> {
        let rows: Vec<SilenceRow> = query_as(
            "SELECT id, rule_id, node_id, labels, starts_ms, ends_ms, comment, created_by, created_ms FROM alert_silences ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(silence).collect())
    }

    async fn add_alert_silence(
        &self,
        n: &NewSilence<'_>,
        record: Record,
    ) -> Result<i64, StoreError> {
        let insert = query_scalar(
            "INSERT INTO alert_silences (rule_id, node_id, labels, starts_ms, ends_ms, comment, created_by, created_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(n.rule_id)
        .bind(n.node_id)
        .bind(serde_json::to_string(n.labels).unwrap_or_else(|_| "{}".into()))
        .bind(n.starts_ms)
        .bind(n.ends_ms)
        .bind(n.comment)
        .bind(n.created_by)
        .bind(now_ms());
        self.insert_audited(insert, record, "alert_silence").await
    }

    async fn expire_alert_silence(&self, id: i64, record: Record) -> Result<bool, StoreError> {
        let now = now_ms();
        let change = query(
            "UPDATE alert_silences SET ends_ms = CASE WHEN ends_ms < ?1 THEN ends_ms ELSE ?1 END,
             starts_ms = CASE WHEN starts_ms < ?2 THEN starts_ms ELSE ?2 END WHERE id = ?3",
        )
        .bind(now)
        .bind(now)
        .bind(id);
        self.change_audited(change, record, "alert_silence", id)
            .await
    }
}
