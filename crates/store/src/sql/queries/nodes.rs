//! `nodes`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::audit::{ActorKind, Outcome, Record};
use crate::credentials::{new_token, token_hash};
use crate::nodes::*;
use crate::*;
use std::time::Duration;
use twinbay_proto::model::NodeState;

#[async_trait::async_trait]
impl crate::NodeStore for Sql<Db> {
    async fn create_join_token(&self, ttl: Duration) -> Result<String, StoreError> {
        let token = new_token("");
        let now = now_ms();
        query("INSERT INTO join_tokens (token_hash, created_at, expires_at) VALUES (?, ?, ?)")
            .bind(token_hash(&token))
            .bind(now)
            .bind(crate::deadline_ms(now, ttl))
            .execute(&self.pool)
            .await?;
        Ok(token)
    }

    async fn enroll(
        &self,
        token: &str,
        public_key: &str,
        simulated: bool,
    ) -> Result<String, EnrollError> {
        let mut tx = self.write_tx().await?;
        /// id, expires_at, used_at, node_id, simulated
        type TokenRow = (i64, i64, Option<i64>, Option<String>, bool);
        let row: Option<TokenRow> = query_as(
            "SELECT id, expires_at, used_at, node_id, simulated FROM join_tokens WHERE token_hash = ?",
        )
        .bind(token_hash(token))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((token_id, expires_at, used_at, used_by, fleet)) = row else {
            return Err(EnrollError::Unknown);
        };
        let existing: Option<(String, Option<i64>)> =
            query_as("SELECT id, join_token_id FROM nodes WHERE public_key = ?")
                .bind(public_key)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((node, by_token)) = &existing
            && (by_token == &Some(token_id) || used_by.as_ref() == Some(node))
        {
            return Ok(node.clone());
        }
        let now = now_ms();
        let fleet_member = used_at.is_some() && fleet && simulated && existing.is_none();
        if used_at.is_some() && !fleet_member {
            return Err(EnrollError::Used);
        }
        if expires_at <= now {
            return Err(EnrollError::Expired);
        }
        if fleet_member {
            let (enrolled,): (i64,) =
                query_as("SELECT COUNT(*) FROM nodes WHERE join_token_id = ?")
                    .bind(token_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if enrolled >= MAX_SIMULATED_PER_TOKEN {
                return Err(EnrollError::Used);
            }
        }
        let node_id = match existing {
            Some((id, _)) => id,
            None => {
                let id = format!("n_{}", &token_hash(&new_token(""))[..12]);
                query(
                    "INSERT INTO nodes (id, public_key, enrolled_at, simulated, join_token_id) VALUES (?, ?, ?, ?, ?)",
                )
                .bind(&id)
                .bind(public_key)
                .bind(now)
                .bind(simulated)
                .bind(token_id)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        let what = if simulated {
            "simulated agent"
        } else {
            "agent"
        };
        super::audit::append_in(
            &mut tx,
            &Record::new(ActorKind::Agent, &node_id, "node.enroll", Outcome::Ok)
                .target(&node_id)
                .detail(&format!("{what} enrolled with join token #{token_id}")),
        )
        .await?;
        if !fleet_member {
            let spent = query(
                "UPDATE join_tokens SET used_at = ?, node_id = ?, simulated = ? WHERE id = ? AND used_at IS NULL",
            )
            .bind(now)
            .bind(&node_id)
            .bind(simulated)
            .bind(token_id)
            .execute(&mut *tx)
            .await?;
            if spent.rows_affected() != 1 {
                return Err(EnrollError::Used);
            }
        }
        tx.commit().await?;
        Ok(node_id)
    }

    async fn add_agentless_node(&self, node_id: &str, key: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        query(
            "INSERT INTO nodes (id, public_key, enrolled_at, simulated) VALUES (?, ?, ?, FALSE)
             ON CONFLICT(id) DO NOTHING",
        )
        .bind(node_id)
        .bind(key)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn node_key(&self, node_id: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = query_as("SELECT public_key FROM nodes WHERE id = ?")
            .bind(node_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.0))
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        type Row = (
            String,
            String,
            String,
            String,
            Option<i64>,
            bool,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = query_as(
            "SELECT id, public_key, hostname, agent_version, last_seen, simulated, state, resources FROM nodes ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(
                |(id, public_key, hostname, agent_version, last_seen, simulated, state, resources)| {
                    let mut state: NodeState = match state {
                        Some(json) => serde_json::from_str(&json)
                            .map_err(|e| StoreError::Damaged(format!("state of node {id}: {e}")))?,
                        None => NodeState::default(),
                    };
                    if state.host.hostname.is_empty() {
                        state.host.hostname = hostname;
                    }
                    let resources = resources.and_then(|json| match serde_json::from_str(&json) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(node = id, error = %e, "dropping unreadable stored resources");
                        None
                    }
                });
                    Ok(NodeRecord {
                        id,
                        public_key,
                        agent_version,
                        last_seen,
                        simulated,
                        state,
                        resources,
                    })
                },
            )
            .collect()
    }

    async fn save_nodes(
        &self,
        writes: &[NodeWrite],
        journal: &[crate::journal::Row],
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        super::journal::insert_in(&mut tx, journal).await?;
        for w in writes {
            let query = match &w.state {
                Some(state) => query(
                    "UPDATE nodes SET hostname = ?, agent_version = ?, last_seen = ?, resources = ?, state = ? WHERE id = ?",
                )
                .bind(agent_text(&w.hostname))
                .bind(agent_text(&w.agent_version))
                .bind(w.last_seen)
                .bind(&w.resources)
                .bind(state),
                None => query(
                    "UPDATE nodes SET hostname = ?, agent_version = ?, last_seen = ?, resources = ? WHERE id = ?",
                )
                .bind(agent_text(&w.hostname))
                .bind(agent_text(&w.agent_version))
                .bind(w.last_seen)
                .bind(&w.resources),
            };
            query.bind(&w.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
