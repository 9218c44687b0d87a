//! People: listing, creating, changing and removing accounts, and their sessions.

use serde::Serialize;

use super::auth::{Role, hash_in_background, join_groups, parse_groups};
use super::{Store, StoreError, now_ms};

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

impl Store {
    pub async fn users(&self) -> Result<Vec<UserInfo>, StoreError> {
        let rows: Vec<(i64, String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT id, username, role, created_at, groups FROM users ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, username, role, created_at, groups)| {
                Some(UserInfo {
                    id,
                    username,
                    role: Role::parse(&role)?,
                    created_at,
                    groups: parse_groups(groups),
                })
            })
            .collect())
    }

    pub async fn user(&self, id: i64) -> Result<Option<UserInfo>, StoreError> {
        Ok(self.users().await?.into_iter().find(|u| u.id == id))
    }

    /// A new account; `Taken` if the name is in use.
    pub async fn add_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<i64, UserError> {
        match self.create_user(username, password, role).await {
            Ok(id) => Ok(id),
            Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                Err(UserError::Taken)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Limits a user to host `groups` (`None`: every host).
    pub async fn set_groups(&self, id: i64, groups: Option<&[String]>) -> Result<(), UserError> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query("UPDATE users SET groups = ? WHERE id = ?")
            .bind(join_groups(groups))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if changed.rows_affected() == 0 {
            return Err(UserError::NotFound);
        }
        tx.commit().await?;
        self.access_changed();
        Ok(())
    }

    /// Changes a role; never leaves the hub without an admin.
    pub async fn set_role(&self, id: i64, role: Role) -> Result<(), UserError> {
        let mut tx = self.write_tx().await?;
        let current: Option<(String,)> = sqlx::query_as("SELECT role FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((current,)) = current else {
            return Err(UserError::NotFound);
        };
        if current == "admin" && role != Role::Admin && admins(&mut tx).await? <= 1 {
            return Err(UserError::LastAdmin);
        }
        sqlx::query("UPDATE users SET role = ? WHERE id = ?")
            .bind(role.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.access_changed();
        Ok(())
    }

    /// Sets a new password and ends every session of the user but `keep`.
    pub async fn set_password(
        &self,
        id: i64,
        password: &str,
        keep: Option<&str>,
    ) -> Result<(), UserError> {
        let hash = hash_in_background(password.to_string()).await;
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if changed.rows_affected() == 0 {
            return Err(UserError::NotFound);
        }
        let keep = keep.map(crate::credentials::token_hash).unwrap_or_default();
        sqlx::query("DELETE FROM sessions WHERE user_id = ? AND token_hash != ?")
            .bind(id)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.access_changed();
        Ok(())
    }

    /// Removes an account (its sessions go with it); never the last admin.
    pub async fn remove_user(&self, id: i64) -> Result<(), UserError> {
        let mut tx = self.write_tx().await?;
        let current: Option<(String,)> = sqlx::query_as("SELECT role FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((current,)) = current else {
            return Err(UserError::NotFound);
        };
        if current == "admin" && admins(&mut tx).await? <= 1 {
            return Err(UserError::LastAdmin);
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.access_changed();
        Ok(())
    }

    /// Ends every session of a user (sign out everywhere); returns how many.
    pub async fn end_sessions(&self, user_id: i64) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        self.access_changed();
        Ok(n)
    }

    /// Forgets sessions past their end (called now and then).
    pub async fn purge_sessions(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn admins(conn: &mut sqlx::SqliteConnection) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE role = 'admin'")
        .fetch_one(&mut *conn)
        .await?;
    Ok(n)
}
