use std::time::Duration;

use serde::Serialize;

use super::StoreError;
use crate::credentials::hash_password;

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

#[async_trait::async_trait]
pub trait AuthStore: Send + Sync {
    async fn user_count(&self) -> Result<i64, StoreError>;

    async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<i64, StoreError>;

    /// Checks a username and password; `None` for a wrong one or an unknown user.
    async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Principal>, StoreError>;

    /// Starts a session for `user_id`; returns the cookie value.
    async fn create_session(&self, user_id: i64, ttl: Duration) -> Result<String, StoreError>;

    /// The user a session cookie belongs to, unless the session has ended
    /// (past its end, or unused for [`SESSION_IDLE`]).
    async fn session_principal(&self, token: &str) -> Result<Option<Principal>, StoreError>;

    async fn delete_session(&self, token: &str) -> Result<(), StoreError>;

    /// Mints an API token with `role`; returns the token, shown only this once.
    async fn create_api_token(&self, role: Role, name: &str) -> Result<String, StoreError>;

    /// Mints an API token with `role`, expiring after `ttl` if given;
    /// returns its id and the token (shown only this once).
    async fn mint_api_token(
        &self,
        role: Role,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<(i64, String), StoreError>;

    /// [`Store::mint_api_token`], limited to host `groups` if given, and
    /// to reads when `read_only`.
    async fn mint_scoped_api_token(
        &self,
        role: Role,
        name: &str,
        ttl: Option<Duration>,
        groups: Option<&[String]>,
        read_only: bool,
    ) -> Result<(i64, String), StoreError>;

    /// Every API token, newest first (never the secret).
    async fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>, StoreError>;

    /// Revokes token `id`; `false` if there is no such (unrevoked) token.
    async fn revoke_api_token(&self, id: i64) -> Result<bool, StoreError>;

    async fn api_token_principal(&self, token: &str) -> Result<Option<Principal>, StoreError>;
}

/// A valid argon2id hash of a random string, used to spend the same time on unknown users.
pub(crate) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Pz2J3vZ8Cq2bq0w6y0a8mX7h2o1nV3cQvYk0m0ZtK8A";

pub(super) async fn hash_in_background(password: String) -> String {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .expect("hashing a password does not panic")
}
