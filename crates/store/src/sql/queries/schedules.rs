//! `schedules`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::audit::Record;
use crate::schedules::KEEP_RUNS;
use crate::schedules::*;
use crate::*;

macro_rules! schedules {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, cron, timezone, target, command, enabled, overlap, jitter_secs, grace_secs, \
             role, created_by, created_ms, updated_ms, next_run_ms, last_run_ms, schedule_error FROM schedules ",
            $rest
        )
    };
}

#[async_trait::async_trait]
impl crate::ScheduleStore for Sql<Db> {
    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        let rows: Vec<ScheduleRow> = query_as(schedules!("ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        let mut list = rows
            .into_iter()
            .map(schedule)
            .collect::<Result<Vec<_>, _>>()?;
        let latest: Vec<(i64, String)> = query_as(
            "SELECT r.schedule_id,
                CASE WHEN r.status = 'dispatched' THEN COALESCE(c.status, 'lost') ELSE r.status END
             FROM (SELECT schedule_id, MAX(slot_ms) AS slot FROM schedule_runs GROUP BY schedule_id) l
             JOIN schedule_runs r ON r.schedule_id = l.schedule_id AND r.slot_ms = l.slot
             LEFT JOIN commands c ON c.id = r.command_id
             ORDER BY r.id",
        )
        .fetch_all(&self.pool)
        .await?;
        // In run order: the outcome is the first bad host's (a join's own
        // order differs by backend and plan).
        for s in &mut list {
            s.last_outcome = outcome(
                latest
                    .iter()
                    .filter(|(id, _)| *id == s.id)
                    .map(|(_, st)| st.as_str()),
            );
        }
        Ok(list)
    }

    async fn schedule(&self, id: i64) -> Result<Option<ScheduleRecord>, StoreError> {
        Ok(self.schedules().await?.into_iter().find(|s| s.id == id))
    }

    async fn add_schedule(&self, s: &NewSchedule, record: Record) -> Result<i64, StoreError> {
        let now = now_ms();
        let insert = query_scalar(
            "INSERT INTO schedules (name, cron, timezone, target, command, enabled, overlap, jitter_secs,
                grace_secs, role, created_by, created_ms, updated_ms, next_run_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&s.name)
        .bind(&s.cron)
        .bind(&s.timezone)
        .bind(serde_json::to_string(&s.target).unwrap_or_default())
        .bind(s.command.to_string())
        .bind(s.enabled)
        .bind(&s.overlap)
        .bind(i64::from(s.jitter_secs))
        .bind(s.grace_secs.map(i64::from))
        .bind(s.role.as_str())
        .bind(&s.by)
        .bind(now)
        .bind(now)
        .bind(s.next_run_ms);
        self.insert_audited(insert, record, "schedule").await
    }

    async fn update_schedule(
        &self,
        id: i64,
        s: &NewSchedule,
        record: Record,
    ) -> Result<bool, StoreError> {
        let change = query(
            "UPDATE schedules SET name = ?, cron = ?, timezone = ?, target = ?, command = ?, enabled = ?,
                overlap = ?, jitter_secs = ?, grace_secs = ?, role = ?, updated_ms = ?, next_run_ms = ?,
                schedule_error = NULL
             WHERE id = ?",
        )
        .bind(&s.name)
        .bind(&s.cron)
        .bind(&s.timezone)
        .bind(serde_json::to_string(&s.target).unwrap_or_default())
        .bind(s.command.to_string())
        .bind(s.enabled)
        .bind(&s.overlap)
        .bind(i64::from(s.jitter_secs))
        .bind(s.grace_secs.map(i64::from))
        .bind(s.role.as_str())
        .bind(now_ms())
        .bind(s.next_run_ms)
        .bind(id);
        self.change_audited(change, record, "schedule", id).await
    }

    async fn remove_schedule(&self, id: i64, record: Record) -> Result<bool, StoreError> {
        let change = query("DELETE FROM schedules WHERE id = ?").bind(id);
        self.change_audited(change, record, "schedule", id).await
    }

    async fn note_schedule(
        &self,
        id: i64,
        updated_ms: i64,
        next_run_ms: Option<i64>,
        last_run_ms: Option<i64>,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let noted = query(
            "UPDATE schedules SET next_run_ms = ?, last_run_ms = COALESCE(?, last_run_ms),
                schedule_error = ? WHERE id = ? AND updated_ms = ?",
        )
        .bind(next_run_ms)
        .bind(last_run_ms)
        .bind(error)
        .bind(id)
        .bind(updated_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(noted)
    }

    async fn note_schedule_ran(&self, id: i64, at: i64) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        query("UPDATE schedules SET last_run_ms = ? WHERE id = ?")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_schedule_run(&self, r: &NewRun<'_>) -> Result<i64, StoreError> {
        let now = now_ms();
        let finished = (r.status != "dispatched").then_some(now);
        let mut tx = self.write_tx().await?;
        let id: i64 = query_scalar(
            "INSERT INTO schedule_runs (schedule_id, slot_ms, node_id, status, command_id, trigger,
                started_ms, finished_ms, reason)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(r.schedule_id)
        .bind(r.slot_ms)
        .bind(r.node_id)
        .bind(r.status)
        .bind(r.command_id)
        .bind(r.trigger)
        .bind(now)
        .bind(finished)
        .bind(r.reason)
        .fetch_one(&mut *tx)
        .await?;
        query(
            "DELETE FROM schedule_runs WHERE schedule_id = ?1 AND id <= (
                SELECT id FROM schedule_runs WHERE schedule_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )
        .bind(r.schedule_id)
        .bind(KEEP_RUNS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn schedule_runs(
        &self,
        schedule_id: i64,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let rows: Vec<RunRow> = query_as(
            "SELECT r.id, r.schedule_id, r.node_id, r.slot_ms, r.status, r.command_id, r.trigger,
                r.started_ms, r.finished_ms, r.reason, c.status, c.ended_ms, c.exit_code
             FROM schedule_runs r LEFT JOIN commands c ON c.id = r.command_id
             WHERE r.schedule_id = ? ORDER BY r.id DESC LIMIT ?",
        )
        .bind(schedule_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(run).collect())
    }

    async fn last_schedule_command(
        &self,
        schedule_id: i64,
        node_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(query_scalar(
            "SELECT command_id FROM schedule_runs
             WHERE schedule_id = ? AND node_id = ? AND status = 'dispatched'
             ORDER BY id DESC LIMIT 1",
        )
        .bind(schedule_id)
        .bind(node_id)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }
}
