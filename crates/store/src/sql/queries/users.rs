//! `users`: the queries (compiled once per backend, see `store/sql.rs`).

use super::*;
use crate::auth::{hash_in_background, join_groups, parse_groups};
use crate::users::*;
use crate::*;

async fn admins(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = query_as("SELECT COUNT(*) FROM users WHERE role = 'admin'")
        .fetch_one(&mut *conn)
        .await?;
    Ok(n)
}

#[async_trait::async_trait]
impl crate::UserStore for Sql<Db> {
    async fn users(&self) -> Result<Vec<UserInfo>, StoreError> {
        let rows: Vec<(i64, String, String, i64, Option<String>)> =
            query_as("SELECT id, username, role, created_at, groups FROM users ORDER BY username")
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

    async fn user(&self, id: i64) -> Result<Option<UserInfo>, StoreError> {
        Ok(self.users().await?.into_iter().find(|u| u.id == id))
    }

    async fn add_user(&self, username: &str, password: &str, role: Role) -> Result<i64, UserError> {
        match self.create_user(username, password, role).await {
            Ok(id) => Ok(id),
            Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                Err(UserError::Taken)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn set_groups(&self, id: i64, groups: Option<&[String]>) -> Result<(), UserError> {
        let mut tx = self.write_tx().await?;
        let changed = query("UPDATE users SET groups = ? WHERE id = ?")
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

    async fn set_role(&self, id: i64, role: Role) -> Result<(), UserError> {
        let mut tx = self.write_tx().await?;
        let current: Option<(String,)> = query_as("SELECT role FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((current,)) = current else {
            return Err(UserError::NotFound);
        };
        if current == "admin" && role != Role::Admin && admins(&mut tx).await? <= 1 {
            return Err(UserError::LastAdmin);
        }
        query("UPDATE users SET role = ? WHERE id = ?")
            .bind(role.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.access_changed();
        Ok(())
    }

    async fn set_password(
        &self,
        id: i64,
        password: &str,
        keep: Option<&str>,
    ) -> Result<(), UserError> {
        let hash = hash_in_background(password.to_string()).await;
        let mut tx = self.write_tx().await?;
        let changed = query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if changed.rows_affected() == 0 {
            return Err(UserError::NotFound);
        }
        let keep = keep.map(crate::credentials::token_hash).unwrap_or_default();
        query("DELETE FROM sessions WHERE user_id = ? AND token_hash != ?")
            .bind(id)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.access_changed();
        Ok(())
    }

    async fn remove_user(&self, id: i64) -> Result<(), UserError> {
        let mut tx = self.write_tx().await?;
        let current: Option<(String,)> = query_as("SELECT role FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((current,)) = current else {
            return Err(UserError::NotFound);
        };
        if current == "admin" && admins(&mut tx).await? <= 1 {
            return Err(UserError::LastAdmin);
        }
        query("DELETE FROM sessions WHERE user_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.access_changed();
        Ok(())
    }

    async fn end_sessions(&self, user_id: i64) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let n = query("DELETE FROM sessions WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        self.access_changed();
        Ok(n)
    }

    async fn purge_sessions(&self) -> Result<(), StoreError> {
        query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
