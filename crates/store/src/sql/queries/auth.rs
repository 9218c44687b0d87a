//! `auth`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::auth::*;
use crate::credentials::{new_token, token_hash, verify_password};
use crate::*;
use std::time::Duration;

#[async_trait::async_trait]
impl crate::AuthStore for Sql<Db> {
    async fn user_count(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<i64, StoreError> {
        let hash = hash_in_background(password.to_string()).await;
        let id: i64 = query_scalar(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(username)
        .bind(hash)
        .bind(role.as_str())
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Principal>, StoreError> {
        let row: Option<(i64, String, String, Option<String>)> =
            query_as("SELECT id, password_hash, role, groups FROM users WHERE username = ?")
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
        // Verify against a dummy hash for unknown users too, so timing does not
        // tell which usernames exist.
        let (id, phc, role, groups) =
            row.unwrap_or((-1, DUMMY_HASH.to_string(), String::new(), None));
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
            .await
            .unwrap_or(false);
        Ok(match (ok && id >= 0, Role::parse(&role)) {
            (true, Some(role)) => Some(Principal {
                kind: PrincipalKind::User {
                    id,
                    username: username.to_string(),
                },
                role,
                groups: parse_groups(groups),
                read_only: false,
            }),
            _ => None,
        })
    }

    async fn create_session(&self, user_id: i64, ttl: Duration) -> Result<String, StoreError> {
        let token = new_token("");
        let now = now_ms();
        query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash(&token))
            .bind(user_id)
            .bind(now)
            .bind(crate::deadline_ms(now, ttl))
            .execute(&self.pool)
            .await?;
        Ok(token)
    }

    async fn session_principal(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let now = now_ms();
        let idle_since = now - crate::millis(SESSION_IDLE);
        let hash = token_hash(token);
        /// user id, username, role, created_at, last_used, groups
        type Row = (i64, String, String, i64, Option<i64>, Option<String>);
        let row: Option<Row> = query_as(
            "SELECT u.id, u.username, u.role, s.created_at, s.last_used, u.groups FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ? AND s.expires_at > ? AND COALESCE(s.last_used, s.created_at) > ?",
        )
        .bind(&hash)
        .bind(now)
        .bind(idle_since)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, username, role, created_at, last_used, groups)) = row else {
            return Ok(None);
        };
        // Minute precision is plenty, and spares a write on every request.
        if now - last_used.unwrap_or(created_at) > 60_000 {
            query("UPDATE sessions SET last_used = ? WHERE token_hash = ?")
                .bind(now)
                .bind(&hash)
                .execute(&self.pool)
                .await?;
        }
        Ok(Role::parse(&role).map(|role| Principal {
            kind: PrincipalKind::User { id, username },
            role,
            groups: parse_groups(groups),
            read_only: false,
        }))
    }

    async fn delete_session(&self, token: &str) -> Result<(), StoreError> {
        query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash(token))
            .execute(&self.pool)
            .await?;
        self.access_changed();
        Ok(())
    }

    async fn create_api_token(&self, role: Role, name: &str) -> Result<String, StoreError> {
        Ok(self.mint_api_token(role, name, None).await?.1)
    }

    async fn mint_api_token(
        &self,
        role: Role,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<(i64, String), StoreError> {
        self.mint_scoped_api_token(role, name, ttl, None, false)
            .await
    }

    async fn mint_scoped_api_token(
        &self,
        role: Role,
        name: &str,
        ttl: Option<Duration>,
        groups: Option<&[String]>,
        read_only: bool,
    ) -> Result<(i64, String), StoreError> {
        let token = new_token("tbk_");
        let now = now_ms();
        let expires = ttl.map(|t| crate::deadline_ms(now, t));
        let id: i64 = query_scalar(
            "INSERT INTO api_tokens (token_hash, name, role, created_at, expires_at, groups, read_only) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(token_hash(&token))
        .bind(name)
        .bind(role.as_str())
        .bind(now)
        .bind(expires)
        .bind(join_groups(groups))
        .bind(read_only)
        .fetch_one(&self.pool)
        .await?;
        Ok((id, token))
    }

    async fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>, StoreError> {
        type Row = (
            i64,
            String,
            String,
            i64,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<String>,
            bool,
        );
        let rows: Vec<Row> = query_as(
            "SELECT id, name, role, created_at, expires_at, last_used, revoked_at, groups, read_only FROM api_tokens ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(
                |(
                    id,
                    name,
                    role,
                    created_at,
                    expires_at,
                    last_used,
                    revoked_at,
                    groups,
                    read_only,
                )| {
                    Some(ApiTokenInfo {
                        id,
                        name,
                        role: Role::parse(&role)?,
                        created_at,
                        expires_at,
                        last_used,
                        revoked_at,
                        groups: parse_groups(groups),
                        read_only,
                    })
                },
            )
            .collect())
    }

    async fn revoke_api_token(&self, id: i64) -> Result<bool, StoreError> {
        let result =
            query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        self.access_changed();
        Ok(result.rows_affected() == 1)
    }

    async fn api_token_principal(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let now = now_ms();
        /// id, role, last_used, groups, read_only
        type Row = (i64, String, Option<i64>, Option<String>, bool);
        let row: Option<Row> = query_as(
            "SELECT id, role, last_used, groups, read_only FROM api_tokens
             WHERE token_hash = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(token_hash(token))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, role, last_used, groups, read_only)) = row else {
            return Ok(None);
        };
        // Minute precision is plenty, and spares a write on every request.
        // Written beside the request, not before it: the write waits for
        // the store's lock, which the recorder may hold for a large fleet's
        // history (up to the busy timeout), and the request has no need of it.
        if last_used.is_none_or(|t| now - t > 60_000) {
            let pool = self.pool.clone();
            tokio::spawn(async move {
                let update = query("UPDATE api_tokens SET last_used = ? WHERE id = ?")
                    .bind(now)
                    .bind(id)
                    .execute(&pool)
                    .await;
                if let Err(e) = update {
                    tracing::warn!(error = %e, token = id, "could not note a token's last use");
                }
            });
        }
        Ok(Role::parse(&role).map(|role| Principal {
            kind: PrincipalKind::Token { id },
            role,
            groups: parse_groups(groups),
            read_only,
        }))
    }
}
