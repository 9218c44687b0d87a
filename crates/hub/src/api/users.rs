//! Accounts: admins manage everyone; each user changes their own password.

use std::sync::Arc;

use super::body::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::auth::{Auth, session_cookie};
use crate::HubState;
use crate::audit::{Outcome, Record};
use crate::store::{Principal, PrincipalKind, Role, UserError, UserInfo};

/// Shortest password accepted.
const MIN_PASSWORD: usize = 12;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$")]
    pub username: String,
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
    pub role: Role,
    /// Host groups (`key=value` label selectors) the user is limited to;
    /// every host when absent.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UserChange {
    #[serde(default)]
    pub role: Option<Role>,
    /// A new password; ends the user's sessions.
    #[serde(default)]
    #[schema(min_length = 12, max_length = 1024)]
    pub password: Option<String>,
    /// New host groups; an empty list lifts the limit.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PasswordChange {
    pub current: String,
    #[schema(min_length = 12, max_length = 1024)]
    pub new: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Created {
    pub id: i64,
}

fn check_username(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    match ok {
        true => Ok(()),
        false => Err(ApiError::BadRequest(
            "username: 1 to 64 of a-z, A-Z, 0-9, . _ - @".into(),
        )),
    }
}

fn check_password(password: &str) -> Result<(), ApiError> {
    match password.chars().count() {
        n if n < MIN_PASSWORD => Err(ApiError::BadRequest(format!(
            "password: at least {MIN_PASSWORD} characters"
        ))),
        n if n > 1024 => Err(ApiError::BadRequest(
            "password: at most 1024 characters".into(),
        )),
        _ => Ok(()),
    }
}

/// Checks `key=value` selectors; an empty list means every host.
pub(super) fn check_groups(groups: Option<Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(groups) = groups else {
        return Ok(None);
    };
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
    };
    for g in &groups {
        match g.split_once('=') {
            Some((k, v)) if ok(k) && ok(v) => {}
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "groups: {g:?} is not a label selector like group=web"
                )));
            }
        }
    }
    Ok((!groups.is_empty()).then_some(groups))
}

/// A caller hands out at most what it has: no role above its own, and, when
/// it is limited to host groups, only some of those same groups (a subset of
/// its selectors sees a subset of its hosts).
pub(super) fn check_grant(
    who: &Principal,
    role: Role,
    groups: Option<&[String]>,
) -> Result<(), ApiError> {
    if role > who.role {
        return Err(ApiError::Forbidden(format!(
            "cannot grant the {} role: it is above your own",
            role.as_str()
        )));
    }
    if !covers(who, groups) {
        let mine = who.groups.as_deref().unwrap_or_default().join(",");
        return Err(ApiError::Forbidden(format!(
            "you are limited to the host groups {mine}: what you grant must be limited to some of them"
        )));
    }
    Ok(())
}

/// Whether `who`'s host scope covers `groups` (`None`: every host). Callers
/// limited to groups manage only accounts and tokens inside their scope.
pub(super) fn covers(who: &Principal, groups: Option<&[String]>) -> bool {
    match (&who.groups, groups) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(mine), Some(theirs)) => theirs.iter().all(|g| mine.contains(g)),
    }
}

/// The account, if it exists and the caller's scope covers it (an account
/// outside it is as good as absent).
async fn managed_user(hub: &HubState, who: &Principal, id: i64) -> Result<UserInfo, ApiError> {
    hub.store
        .user(id)
        .await?
        .filter(|u| covers(who, u.groups.as_deref()))
        .ok_or_else(|| ApiError::NotFound("no such user".into()))
}

fn user_error(e: UserError) -> ApiError {
    match e {
        UserError::NotFound => ApiError::NotFound("no such user".into()),
        UserError::Taken => ApiError::Conflict("a user with that name exists".into()),
        UserError::LastAdmin => {
            ApiError::Conflict("the last admin cannot be removed or demoted".into())
        }
        UserError::Store(e) => ApiError::Internal(e),
    }
}

async fn audit(
    hub: &HubState,
    p: &Principal,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), ApiError> {
    hub.store
        .audit(
            Record::by(p, action, Outcome::Ok)
                .target(target)
                .detail(detail),
        )
        .await?;
    Ok(())
}

/// Every account (for a caller limited to host groups: those inside its scope).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<UserInfo>), (status = 401), (status = 403)))]
pub async fn list(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    let mut users = hub.store.users().await?;
    users.retain(|u| covers(&who, u.groups.as_deref()));
    Ok(Json(users))
}

/// Creates an account.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = Created), (status = 400), (status = 401), (status = 403), (status = 409)))]
pub async fn create(
    State(hub): State<Arc<HubState>>,
    Auth(principal): Auth,
    body: Result<JsonBody<NewUser>, ApiError>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let JsonBody(new) = body?;
    check_username(&new.username)?;
    check_password(&new.password)?;
    let groups = check_groups(new.groups)?;
    check_grant(&principal, new.role, groups.as_deref())?;
    let id = hub
        .store
        .add_user(&new.username, &new.password, new.role)
        .await
        .map_err(user_error)?;
    if groups.is_some() {
        hub.store
            .set_groups(id, groups.as_deref())
            .await
            .map_err(user_error)?;
    }
    audit(
        &hub,
        &principal,
        "user.create",
        &new.username,
        &format!("role {}", new.role.as_str()),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// Changes an account's role or password.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserChange,
    params(("id" = i64, Path, description = "User id")),
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn update(
    State(hub): State<Arc<HubState>>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    body: Result<JsonBody<UserChange>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let JsonBody(change) = body?;
    let user = managed_user(&hub, &principal, id).await?;
    if let Some(password) = &change.password {
        check_password(password)?;
    }
    let new_groups = change.groups.map(|g| check_groups(Some(g))).transpose()?;
    check_grant(
        &principal,
        change.role.unwrap_or(user.role),
        new_groups.clone().unwrap_or(user.groups.clone()).as_deref(),
    )?;
    if let Some(groups) = new_groups {
        hub.store
            .set_groups(id, groups.as_deref())
            .await
            .map_err(user_error)?;
        let shown = groups
            .map(|g| g.join(","))
            .unwrap_or_else(|| "every host".into());
        audit(&hub, &principal, "user.groups", &user.username, &shown).await?;
    }
    if let Some(role) = change.role {
        hub.store.set_role(id, role).await.map_err(user_error)?;
        audit(
            &hub,
            &principal,
            "user.role",
            &user.username,
            &format!("role {}", role.as_str()),
        )
        .await?;
    }
    if let Some(password) = &change.password {
        hub.store
            .set_password(id, password, None)
            .await
            .map_err(user_error)?;
        audit(
            &hub,
            &principal,
            "user.password",
            &user.username,
            "set by an admin; sessions ended",
        )
        .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Removes an account and its sessions.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn remove(
    State(hub): State<Arc<HubState>>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let user = managed_user(&hub, &principal, id).await?;
    hub.store.remove_user(id).await.map_err(user_error)?;
    audit(&hub, &principal, "user.remove", &user.username, "").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the signed-in user's own password; their other sessions end.
#[utoipa::path(put, path = "/api/v1/session/password", tag = "session", request_body = PasswordChange,
    responses((status = 204), (status = 400), (status = 401), (status = 403, description = "Not a user (an API token), or the current password is wrong")))]
pub async fn change_password(
    State(hub): State<Arc<HubState>>,
    Auth(principal): Auth,
    headers: HeaderMap,
    body: Result<JsonBody<PasswordChange>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let JsonBody(change) = body?;
    let PrincipalKind::User { id, username } = &principal.kind else {
        return Err(ApiError::Forbidden("API tokens have no password".into()));
    };
    check_password(&change.new)?;
    if hub
        .store
        .check_password(username, &change.current)
        .await?
        .is_none()
    {
        hub.store
            .audit(
                Record::by(&principal, "user.password", Outcome::Denied)
                    .target(username)
                    .detail("wrong current password"),
            )
            .await?;
        return Err(ApiError::Forbidden("the current password is wrong".into()));
    }
    hub.store
        .set_password(*id, &change.new, session_cookie(&headers))
        .await
        .map_err(user_error)?;
    audit(
        &hub,
        &principal,
        "user.password",
        username,
        "changed by the user; other sessions ended",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Signs the user out everywhere: every session of theirs ends.
#[utoipa::path(delete, path = "/api/v1/sessions", tag = "session",
    responses((status = 204), (status = 401), (status = 403, description = "Not a user (an API token)")))]
pub async fn sign_out_everywhere(
    State(hub): State<Arc<HubState>>,
    Auth(principal): Auth,
) -> Result<StatusCode, ApiError> {
    let PrincipalKind::User { id, username } = &principal.kind else {
        return Err(ApiError::Forbidden("API tokens have no sessions".into()));
    };
    let ended = hub.store.end_sessions(*id).await?;
    audit(
        &hub,
        &principal,
        "session.sign_out_everywhere",
        username,
        &format!("{ended} sessions ended"),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
