//! Alert channels and rules (admins), and the alerts themselves (anyone,
//! limited to the hosts they may see). See `alerts.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::ApiError;
use super::auth::Auth;
use super::body::JsonBody;
use crate::HubState;
use crate::alerts::eval::Kind;
use crate::alerts::webhook;
use crate::audit::{Outcome, Record};
use crate::store::{AlertRecord, ChannelRecord, NewChannel, NewRule, RuleRecord};

/// The longest `for` a rule may have.
const MAX_FOR: Duration = Duration::from_secs(7 * 86_400);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannelBody {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    pub kind: ChannelKind,
    /// Where to POST (http://).
    #[schema(max_length = 2000)]
    pub url: String,
    /// Signs each body: `X-Twinbay-Signature: sha256=HMAC(secret, body)`.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub secret: Option<String>,
}

/// Where notifications go (more kinds to come).
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// POSTs Alertmanager's webhook JSON.
    Webhook,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRuleBody {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    pub kind: Kind,
    /// How long the condition must hold before the alert fires (`10s`,
    /// `5m`, up to 7 days; default 0: at once).
    #[serde(default, rename = "for")]
    #[schema(pattern = r"^[0-9]{1,6}(ms|s|m|h)$")]
    pub for_: Option<String>,
    /// Channel ids to notify.
    #[serde(default)]
    pub channels: Vec<i64>,
    /// For `cpu`, `memory`, `disk`: fire above this percent (default 90).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100)]
    pub above: Option<f64>,
    /// …and clear only at or below this one (default: `above`).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100)]
    pub clear: Option<f64>,
    /// Only hosts of this group (`key=value`).
    #[serde(default)]
    #[schema(pattern = "^[^=]+=.+$")]
    pub group: Option<String>,
    /// Only this host (node id).
    #[serde(default)]
    pub node: Option<String>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Created {
    pub id: i64,
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    match name.trim().is_empty() || name.chars().count() > 100 {
        true => Err(bad("name: 1 to 100 characters".into())),
        false => Ok(()),
    }
}

/// Adds a channel.
#[utoipa::path(post, path = "/api/v1/alerts/channels", tag = "alerts", request_body = NewChannelBody,
    responses((status = 201, body = Created), (status = 400, description = "Invalid channel"),
        (status = 401, description = "Not authenticated"), (status = 403, description = "Needs admin")))]
pub async fn add_channel(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    body: Result<JsonBody<NewChannelBody>, ApiError>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let JsonBody(c) = body?;
    check_name(&c.name)?;
    if c.url.len() > 2000 {
        return Err(bad("url: at most 2000 characters".into()));
    }
    webhook::check_url(&c.url).map_err(bad)?;
    if c.secret
        .as_ref()
        .is_some_and(|s| s.is_empty() || s.len() > 200)
    {
        return Err(bad("secret: 1 to 200 characters".into()));
    }
    let record = Record::by(&who, "alert_channel.create", Outcome::Ok)
        .detail(&format!("webhook {}", c.name));
    let new = NewChannel {
        name: &c.name,
        kind: match c.kind {
            ChannelKind::Webhook => "webhook",
        },
        url: &c.url,
        secret: c.secret.as_deref(),
    };
    let id = hub.store.add_alert_channel(&new, record).await?;
    hub.alerts.reload(&hub.store).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// The channels (secrets never shown), with how their last delivery went.
#[utoipa::path(get, path = "/api/v1/alerts/channels", tag = "alerts",
    responses((status = 200, body = [ChannelRecord]), (status = 401, description = "Not authenticated"),
        (status = 403, description = "Needs admin")))]
pub async fn channels(
    State(hub): State<Arc<HubState>>,
    _auth: Auth,
) -> Result<Json<Vec<ChannelRecord>>, ApiError> {
    Ok(Json(hub.store.alert_channels().await?))
}

/// Removes a channel.
#[utoipa::path(delete, path = "/api/v1/alerts/channels/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "Channel id")),
    responses((status = 204), (status = 401, description = "Not authenticated"),
        (status = 403, description = "Needs admin"), (status = 404, description = "No such channel")))]
pub async fn remove_channel(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let record = Record::by(&who, "alert_channel.delete", Outcome::Ok);
    if !hub.store.remove_alert_channel(id, record).await? {
        return Err(ApiError::NotFound(format!("no channel {id}")));
    }
    hub.alerts.reload(&hub.store).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test message to a channel now; 502 with the reason if it did
/// not arrive.
#[utoipa::path(post, path = "/api/v1/alerts/channels/{id}/test", tag = "alerts",
    params(("id" = i64, Path, description = "Channel id")),
    responses((status = 204), (status = 401, description = "Not authenticated"),
        (status = 403, description = "Needs admin"), (status = 404, description = "No such channel"),
        (status = 502, description = "The channel did not take it")))]
pub async fn test_channel(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let channel = hub
        .store
        .alert_channels()
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no channel {id}")))?;
    let body = serde_json::json!({
        "version": "4",
        "receiver": channel.name,
        "status": "firing",
        "commonLabels": {"alertname": "twinbay test"},
        "alerts": [{"status": "firing", "labels": {"alertname": "twinbay test"},
            "annotations": {"summary": "a test message from twinbay"}}],
    });
    let result = webhook::post(&channel, body.to_string().into_bytes()).await;
    hub.store
        .note_alert_delivery(id, result.as_ref().err().map(String::as_str))
        .await?;
    let outcome = if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    hub.store
        .audit(
            Record::by(&who, "alert_channel.test", outcome).target(&format!("alert_channel:{id}")),
        )
        .await?;
    result.map_err(|e| ApiError::Other(StatusCode::BAD_GATEWAY, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a rule.
#[utoipa::path(post, path = "/api/v1/alerts/rules", tag = "alerts", request_body = NewRuleBody,
    responses((status = 201, body = Created), (status = 400, description = "Invalid rule"),
        (status = 401, description = "Not authenticated"), (status = 403, description = "Needs admin"),
        (status = 404, description = "A channel or host it names does not exist")))]
pub async fn add_rule(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    body: Result<JsonBody<NewRuleBody>, ApiError>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let JsonBody(r) = body?;
    check_name(&r.name)?;
    let for_ms = match &r.for_ {
        None => 0,
        Some(text) => {
            let d = humantime::parse_duration(text)
                .map_err(|e| bad(format!("for {text:?}: {e} (e.g. 30s, 5m)")))?;
            if d > MAX_FOR {
                return Err(bad(format!("for {text:?}: at most 7 days")));
            }
            d.as_millis() as i64
        }
    };
    let percent = |v: Option<f64>, what: &str| match v {
        Some(v) if !(0.0..=100.0).contains(&v) => Err(bad(format!("{what}: a percent, 0 to 100"))),
        _ => Ok(()),
    };
    percent(r.above, "above")?;
    percent(r.clear, "clear")?;
    // A threshold rule without one fires above 90 %.
    let above = match r.kind.has_threshold() {
        true => Some(r.above.unwrap_or(90.0)),
        false => r.above,
    };
    if !r.kind.has_threshold() && (r.above.is_some() || r.clear.is_some()) {
        return Err(bad(format!("kind {}: takes no threshold", r.kind.as_str())));
    }
    if let (Some(above), Some(clear)) = (above, r.clear)
        && clear > above
    {
        return Err(bad("clear: at most `above`".into()));
    }
    if let Some(g) = &r.group
        && !g
            .split_once('=')
            .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())
    {
        return Err(bad(format!("group {g:?}: key=value")));
    }
    if let Some(node) = &r.node
        && !hub.twin.check(node, |_| true)
    {
        return Err(ApiError::NotFound(format!("node {node:?}: no such host")));
    }
    let known = hub.store.alert_channels().await?;
    if let Some(missing) = r
        .channels
        .iter()
        .find(|c| !known.iter().any(|k| k.id == **c))
    {
        return Err(ApiError::NotFound(format!(
            "channel {missing}: no such channel"
        )));
    }
    let record = Record::by(&who, "alert_rule.create", Outcome::Ok).detail(&format!(
        "{} {}",
        r.kind.as_str(),
        r.name
    ));
    let new = NewRule {
        name: &r.name,
        kind: r.kind.as_str(),
        for_ms,
        above,
        clear: r.clear,
        group: r.group.as_deref(),
        node_id: r.node.as_deref(),
        channels: &r.channels,
    };
    let id = hub.store.add_alert_rule(&new, record).await?;
    hub.alerts.reload(&hub.store).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// The rules.
#[utoipa::path(get, path = "/api/v1/alerts/rules", tag = "alerts",
    responses((status = 200, body = [RuleRecord]), (status = 401, description = "Not authenticated")))]
pub async fn rules(
    State(hub): State<Arc<HubState>>,
    _auth: Auth,
) -> Result<Json<Vec<RuleRecord>>, ApiError> {
    Ok(Json(hub.store.alert_rules().await?))
}

/// Removes a rule and its alerts.
#[utoipa::path(delete, path = "/api/v1/alerts/rules/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "Rule id")),
    responses((status = 204), (status = 401, description = "Not authenticated"),
        (status = 403, description = "Needs admin"), (status = 404, description = "No such rule")))]
pub async fn remove_rule(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let record = Record::by(&who, "alert_rule.delete", Outcome::Ok);
    if !hub.store.remove_alert_rule(id, record).await? {
        return Err(ApiError::NotFound(format!("no rule {id}")));
    }
    hub.alerts.reload(&hub.store).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// `active` (pending and firing; the default) or `all` (the newest
    /// alerts of any state).
    #[serde(default)]
    pub show: Option<Show>,
    /// With `all`: how many (1 to 1000, default 200).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Show {
    Active,
    All,
}

/// The alerts of the hosts the caller may see, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertsQuery),
    responses((status = 200, body = [AlertRecord]), (status = 400, description = "Bad query"),
        (status = 401, description = "Not authenticated")))]
pub async fn list(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Query(q): Query<AlertsQuery>,
) -> Result<Json<Vec<AlertRecord>>, ApiError> {
    let limit = super::limit(q.limit, 200, 1000)?;
    let active = !matches!(q.show, Some(Show::All));
    let mut alerts = hub.store.alerts(active, limit).await?;
    if who.groups.is_some() {
        alerts.retain(|a| {
            hub.twin
                .check(&a.node_id, |n| who.sees(&n.state.host.labels))
        });
    }
    Ok(Json(alerts))
}
