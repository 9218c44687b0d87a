//! People: listing, creating, changing and removing accounts, and their sessions.

use serde::Serialize;

use super::StoreError;
use super::auth::Role;

/// An account as listed (never its password hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: i64,
    /// Host groups the user is limited to; every host when absent.
    pub groups: Option<Vec<String>>,
}

/// Why an account change was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no such user")]
    NotFound,
    #[error("a user with that name exists")]
    Taken,
    #[error("the last admin cannot be removed or demoted")]
    LastAdmin,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for UserError {
    fn from(e: sqlx::Error) -> Self {
        UserError::Store(e.into())
    }
}

#[async_trait::async_trait]
pub trait UserStore: Send + Sync {
    async fn users(&self) -> Result<Vec<UserInfo>, StoreError>;

    async fn user(&self, id: i64) -> Result<Option<UserInfo>, StoreError>;

    /// A new account; `Taken` if the name is in use.
    async fn add_user(&self, username: &str, password: &str, role: Role) -> Result<i64, UserError>;

    /// Limits a user to host `groups` (`None`: every host).
    async fn set_groups(&self, id: i64, groups: Option<&[String]>) -> Result<(), UserError>;

    /// Changes a role; never leaves the hub without an admin.
    async fn set_role(&self, id: i64, role: Role) -> Result<(), UserError>;

    /// Sets a new password and ends every session of the user but `keep`.
    async fn set_password(
        &self,
        id: i64,
        password: &str,
        keep: Option<&str>,
    ) -> Result<(), UserError>;

    /// Removes an account (its sessions go with it); never the last admin.
    async fn remove_user(&self, id: i64) -> Result<(), UserError>;

    /// Ends every session of a user (sign out everywhere); returns how many.
    async fn end_sessions(&self, user_id: i64) -> Result<u64, StoreError>;

    /// Forgets sessions past their end (called now and then).
    async fn purge_sessions(&self) -> Result<(), StoreError>;
}
