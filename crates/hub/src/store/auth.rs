use std::time::Duration;

use serde::Serialize;

use super::{Store, StoreError, now_ms};
use crate::credentials::{hash_password, new_token, token_hash, verify_password};

/// A session unused for this long has ended (it also ends at its fixed end).
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

/// What a person or token may do (the role commands are checked against too).
pub use twinbay_proto::command::Role;

/// An API token as listed: everything but the secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// Unix milliseconds, like the other times.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    /// Minute precision.
    pub last_used: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Host groups it is limited to; every host when absent.
    pub groups: Option<Vec<String>>,
    /// It reads and changes nothing: the API refuses its writes, MCP lists
    /// no act tools to it.
    pub read_only: bool,
}

/// Who is calling, as established by a session cookie or an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub role: Role,
    /// Host groups (`key=value` label selectors) the caller is limited to;
    /// `None` sees every host.
    pub groups: Option<Vec<String>>,
    /// A read-only API token: whatever its role, it changes nothing
    /// (`api::access::refuses_writes`). Never set for a person's session.
    pub read_only: bool,
}

impl Principal {
    /// The caller as the audit trail and records name it: the username, or
    /// `token:ID`.
    pub fn name(&self) -> String {
        match &self.kind {
            PrincipalKind::User { username, .. } => username.clone(),
            PrincipalKind::Token { id } => format!("token:{id}"),
        }
    }

    /// Whether the caller may see a host with these labels: one of its
    /// selectors must match.
    pub fn sees(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        match &self.groups {
            None => true,
            Some(selectors) => selectors.iter().any(|s| {
                s.split_once('=')
                    .is_some_and(|(k, v)| labels.get(k).is_some_and(|l| l == v))
            }),
        }
    }
}

/// `group=web,site=lab` from the database, or `None` (every host).
pub(super) fn parse_groups(text: Option<String>) -> Option<Vec<String>> {
    text.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    })
}

/// For the database: `None` (every host) stays NULL.
pub(super) fn join_groups(groups: Option<&[String]>) -> Option<String> {
    groups.map(|g| g.join(","))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    User { id: i64, username: String },
    Token { id: i64 },
}

impl Store {
    pub async fn user_count(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<i64, StoreError> {
        let hash = hash_in_background(password.to_string()).await;
        let result = sqlx::query(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(username)
        .bind(hash)
        .bind(role.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(result.last_insert_rowid())
    }

    /// Checks a username and password; `None` for a wrong one or an unknown user.
    pub async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Principal>, StoreError> {
        let row: Option<(i64, String, String, Option<String>)> =
            sqlx::query_as("SELECT id, password_hash, role, groups FROM users WHERE username = ?")
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

    /// Starts a session for `user_id`; returns the cookie value.
    pub async fn create_session(&self, user_id: i64, ttl: Duration) -> Result<String, StoreError> {
        let token = new_token("");
        let now = now_ms();
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash(&token))
            .bind(user_id)
            .bind(now)
            .bind(super::deadline_ms(now, ttl))
            .execute(&self.pool)
            .await?;
        Ok(token)
    }

    /// The user a session cookie belongs to, unless the session has ended
    /// (past its end, or unused for [`SESSION_IDLE`]).
    pub async fn session_principal(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let now = now_ms();
        let idle_since = now - super::millis(SESSION_IDLE);
        let hash = token_hash(token);
        /// user id, username, role, created_at, last_used, groups
        type Row = (i64, String, String, i64, Option<i64>, Option<String>);
        let row: Option<Row> = sqlx::query_as(
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
            sqlx::query("UPDATE sessions SET last_used = ? WHERE token_hash = ?")
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

    pub async fn delete_session(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash(token))
            .execute(&self.pool)
            .await?;
        self.access_changed();
        Ok(())
    }

    /// Mints an API token with `role`; returns the token, shown only this once.
    pub async fn create_api_token(&self, role: Role, name: &str) -> Result<String, StoreError> {
        Ok(self.mint_api_token(role, name, None).await?.1)
    }

    /// Mints an API token with `role`, expiring after `ttl` if given;
    /// returns its id and the token (shown only this once).
    pub async fn mint_api_token(
        &self,
        role: Role,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<(i64, String), StoreError> {
        self.mint_scoped_api_token(role, name, ttl, None, false)
            .await
    }

    /// [`Store::mint_api_token`], limited to host `groups` if given, and
    /// to reads when `read_only`.
    pub async fn mint_scoped_api_token(
        &self,
        role: Role,
        name: &str,
        ttl: Option<Duration>,
        groups: Option<&[String]>,
        read_only: bool,
    ) -> Result<(i64, String), StoreError> {
        let token = new_token("tbk_");
        let now = now_ms();
        let expires = ttl.map(|t| super::deadline_ms(now, t));
        let result = sqlx::query(
            "INSERT INTO api_tokens (token_hash, name, role, created_at, expires_at, groups, read_only) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(token_hash(&token))
        .bind(name)
        .bind(role.as_str())
        .bind(now)
        .bind(expires)
        .bind(join_groups(groups))
        .bind(read_only)
        .execute(&self.pool)
        .await?;
        Ok((result.last_insert_rowid(), token))
    }

    /// Every API token, newest first (never the secret).
    pub async fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>, StoreError> {
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
        let rows: Vec<Row> = sqlx::query_as(
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

    /// Revokes token `id`; `false` if there is no such (unrevoked) token.
    pub async fn revoke_api_token(&self, id: i64) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        self.access_changed();
        Ok(result.rows_affected() == 1)
    }

    pub async fn api_token_principal(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let now = now_ms();
        /// id, role, last_used, groups, read_only
        type Row = (i64, String, Option<i64>, Option<String>, bool);
        let row: Option<Row> = sqlx::query_as(
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
                let update = sqlx::query("UPDATE api_tokens SET last_used = ? WHERE id = ?")
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

/// A valid argon2id hash of a random string, used to spend the same time on unknown users.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Pz2J3vZ8Cq2bq0w6y0a8mX7h2o1nV3cQvYk0m0ZtK8A";

pub(super) async fn hash_in_background(password: String) -> String {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .expect("hashing a password does not panic")
}
