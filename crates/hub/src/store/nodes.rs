use std::time::Duration;

use twinbay_proto::model::{NodeState, Sample};

use super::{Store, StoreError, now_ms};
use crate::audit::{ActorKind, Outcome, Record};
use crate::credentials::{new_token, token_hash};

/// Most simulated agents one join token may enroll.
pub const MAX_SIMULATED_PER_TOKEN: i64 = 100_000;

/// A node as stored: identity, pinned key and last known twin.
#[derive(Debug, Clone)]
pub struct NodeRecord {
    pub id: String,
    pub public_key: String,
    pub agent_version: String,
    pub last_seen: Option<i64>,
    pub simulated: bool,
    pub state: NodeState,
    pub resources: Option<Sample>,
}

/// What the recorder writes for a node whose twin changed.
#[derive(Debug, Clone)]
pub struct NodeWrite {
    pub id: String,
    pub hostname: String,
    pub agent_version: String,
    pub last_seen: i64,
    /// The whole state as JSON; `None` when only liveness changed.
    pub state: Option<String>,
    pub resources: Option<String>,
    /// With `state`: when it last changed (unix ms) and the state itself,
    /// for the journal (`journal.rs`).
    pub journal: Option<(i64, NodeState)>,
}

/// Why a join token cannot enroll an agent.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("unknown join token")]
    Unknown,
    #[error("join token was already used")]
    Used,
    #[error("join token expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EnrollError {
    fn from(e: sqlx::Error) -> Self {
        EnrollError::Store(e.into())
    }
}

impl Store {
    /// Mints a one-time join token valid for `ttl`; only its hash is kept.
    pub async fn create_join_token(&self, ttl: Duration) -> Result<String, StoreError> {
        let token = new_token("");
        let now = now_ms();
        sqlx::query(
            "INSERT INTO join_tokens (token_hash, created_at, expires_at) VALUES (?, ?, ?)",
        )
        .bind(token_hash(&token))
        .bind(now)
        .bind(super::deadline_ms(now, ttl))
        .execute(&self.pool)
        .await?;
        Ok(token)
    }

    /// Spends `token` to enroll the agent holding `public_key`, pinning the
    /// key, and returns the node id. Repeating a successful enrollment with
    /// the same token and key returns the same node (the agent may have
    /// crashed before it heard the answer); anyone else gets [`EnrollError::Used`].
    ///
    /// A token first spent by a simulated agent becomes that simulated
    /// fleet's: until it expires it enrolls more simulated agents (up to
    /// [`MAX_SIMULATED_PER_TOKEN`]), and never a real one.
    pub async fn enroll(
        &self,
        token: &str,
        public_key: &str,
        simulated: bool,
    ) -> Result<String, EnrollError> {
        let mut tx = self.write_tx().await?;
        /// id, expires_at, used_at, node_id, simulated
        type TokenRow = (i64, i64, Option<i64>, Option<String>, bool);
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT id, expires_at, used_at, node_id, simulated FROM join_tokens WHERE token_hash = ?",
        )
        .bind(token_hash(token))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((token_id, expires_at, used_at, used_by, fleet)) = row else {
            return Err(EnrollError::Unknown);
        };
        let existing: Option<(String, Option<i64>)> =
            sqlx::query_as("SELECT id, join_token_id FROM nodes WHERE public_key = ?")
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
                sqlx::query_as("SELECT COUNT(*) FROM nodes WHERE join_token_id = ?")
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
                sqlx::query(
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
            let spent = sqlx::query(
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

    /// Records a node the hub reads itself (an agentless host over SSH):
    /// `key` stands in for an agent's public key. Nothing if it exists.
    pub async fn add_agentless_node(&self, node_id: &str, key: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO nodes (id, public_key, enrolled_at, simulated) VALUES (?, ?, ?, 0)
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

    /// The key pinned for `node_id`, if the node exists.
    pub async fn node_key(&self, node_id: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT public_key FROM nodes WHERE id = ?")
            .bind(node_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.0))
    }

    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
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
        let rows: Vec<Row> = sqlx::query_as(
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

    /// Writes the latest twins of several nodes, and their journal rows,
    /// in one transaction.
    pub async fn save_nodes(
        &self,
        writes: &[NodeWrite],
        journal: &[crate::journal::Row],
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        super::journal::insert_in(&mut tx, journal).await?;
        for w in writes {
            let query = match &w.state {
                Some(state) => sqlx::query(
                    "UPDATE nodes SET hostname = ?, agent_version = ?, last_seen = ?, resources = ?, state = ? WHERE id = ?",
                )
                .bind(&w.hostname)
                .bind(&w.agent_version)
                .bind(w.last_seen)
                .bind(&w.resources)
                .bind(state),
                None => sqlx::query(
                    "UPDATE nodes SET hostname = ?, agent_version = ?, last_seen = ?, resources = ? WHERE id = ?",
                )
                .bind(&w.hostname)
                .bind(&w.agent_version)
                .bind(w.last_seen)
                .bind(&w.resources),
            };
            query.bind(&w.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
