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
use crate::alerts::channels;
use crate::alerts::eval::Kind;
use crate::audit::{Outcome, Record};
use crate::store::{AlertRecord, ChannelRecord, NewChannel, NewRule, RuleRecord, SilenceRecord};

/// The longest `for` a rule may have.
const MAX_FOR: Duration = Duration::from_secs(7 * 86_400);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannelBody {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Default: from the URL's scheme (`ntfy://` → ntfy, `http(s)://` →
    /// webhook, `smtp://` → email, …).
    #[serde(default)]
    pub kind: Option<ChannelKind>,
    /// The service's http(s) URL or a shoutrrr URL (`ntfy://`,
    /// `gotify://`, `discord://`, `slack://`, `telegram://`, `smtp://`);
    /// see docs/alerts.md. Never shown again with its secrets.
    #[schema(max_length = 2000)]
    pub url: String,
    /// webhook: signs each body, `X-Twinbay-Signature:
    /// sha256=HMAC(secret, body)`; ntfy: the access token.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub secret: Option<String>,
    /// `HH:MM-HH:MM` (may wrap midnight), then optionally an IANA zone
    /// (`22:00-07:00 Europe/Berlin`; default UTC): notifications falling
    /// inside are sent when they end.
    #[serde(default)]
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]( [A-Za-z0-9_/+-]{1,64})?$")]
    pub quiet_hours: Option<String>,
}

/// Where notifications go.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// POSTs Alertmanager's webhook JSON.
    Webhook,
    Ntfy,
    Gotify,
    Discord,
    Slack,
    Telegram,
    /// SMTP (`smtp://`, `smtps://`).
    Email,
}

impl ChannelKind {
    fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Ntfy => "ntfy",
            ChannelKind::Gotify => "gotify",
            ChannelKind::Discord => "discord",
            ChannelKind::Slack => "slack",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Email => "email",
        }
    }
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
    /// For `disk_forecast`: fire when a mount is predicted to fill within
    /// this long (`12h`, `2d`; default 24h)…
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{1,6}(s|m|h|d)$")]
    pub within: Option<String>,
    /// …by a straight line through this much of its recent use (default
    /// 6h; at least 10 s, at most 7 days).
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{1,6}(s|m|h|d)$")]
    pub window: Option<String>,
    /// For `file_changed`: the least risk that fires (default `high`).
    #[serde(default)]
    pub risk: Option<crate::files::risk::Risk>,
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
    let kind = match c.kind {
        Some(k) => k.as_str(),
        None => channels::target::kind_of_scheme(&c.url).ok_or_else(|| {
            bad("url: give the kind, or a URL whose scheme names it (ntfy://, smtp://, https://, …)".into())
        })?,
    };
    if c.secret
        .as_ref()
        .is_some_and(|s| s.is_empty() || s.len() > 200 || s.chars().any(char::is_control))
    {
        return Err(bad("secret: 1 to 200 characters".into()));
    }
    if c.secret.is_some() && !matches!(kind, "webhook" | "ntfy") {
        return Err(bad(format!(
            "secret: a {kind} channel takes its credentials in the url"
        )));
    }
    channels::parse(kind, &c.url, c.secret.as_deref()).map_err(bad)?;
    if let Some(q) = &c.quiet_hours {
        channels::parse_quiet(q).map_err(bad)?;
    }
    let record =
        Record::by(&who, "alert_channel.create", Outcome::Ok).detail(&format!("{kind} {}", c.name));
    let new = NewChannel {
        name: &c.name,
        kind,
        url: &c.url,
        secret: c.secret.as_deref(),
        quiet_hours: c.quiet_hours.as_deref(),
    };
    let id = hub
        .store
        .add_alert_channel(&new, hub.alerts.sealer(), record)
        .await?;
    hub.alerts.reload(&hub.store).await?;
    hub.tell_replicas(crate::replicas::wire::Changed::Alerts);
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
    let mut list = hub.store.alert_channels(hub.alerts.sealer()).await?;
    for c in &mut list {
        c.url = channels::redact(&c.kind, &c.url);
    }
    Ok(Json(list))
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
    hub.tell_replicas(crate::replicas::wire::Changed::Alerts);
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
        .alert_channels(hub.alerts.sealer())
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no channel {id}")))?;
    let result = channels::send_test(&channel).await;
    hub.store
        .note_alert_delivery(id, result.as_ref().err().map(String::as_str))
        .await?;
    let (outcome, detail) = match &result {
        Ok(()) => (Outcome::Ok, String::new()),
        Err(e) => (Outcome::Failed, e.clone()),
    };
    hub.store
        .audit(
            Record::by(&who, "alert_channel.test", outcome)
                .target(&format!("alert_channel:{id}"))
                .detail(&detail),
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
    if r.kind.is_event() && for_ms > 0 {
        return Err(bad(format!(
            "kind {}: fires as it happens, takes no `for`",
            r.kind.as_str()
        )));
    }
    let span = |text: &Option<String>, what: &str, min: Duration, max: Duration| match text {
        None => Ok(None),
        Some(_) if r.kind != Kind::DiskForecast => {
            Err(bad(format!("{what}: only for kind disk_forecast")))
        }
        Some(t) => {
            let d = humantime::parse_duration(t)
                .map_err(|e| bad(format!("{what} {t:?}: {e} (e.g. 6h, 2d)")))?;
            if d < min || d > max {
                return Err(bad(format!(
                    "{what} {t:?}: from {} to {}",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                )));
            }
            Ok(Some(d.as_millis() as i64))
        }
    };
    let within_ms = span(
        &r.within,
        "within",
        Duration::from_secs(1),
        Duration::from_secs(365 * 86_400),
    )?;
    let window_ms = span(
        &r.window,
        "window",
        Duration::from_secs(10),
        Duration::from_secs(7 * 86_400),
    )?;
    if r.risk.is_some() && r.kind != Kind::FileChanged {
        return Err(bad("risk: only for kind file_changed".into()));
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
    let known = hub.store.alert_channels(hub.alerts.sealer()).await?;
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
        within_ms,
        window_ms,
        risk: r.risk.map(|r| r.as_str()),
    };
    let id = hub.store.add_alert_rule(&new, record).await?;
    hub.alerts.reload(&hub.store).await?;
    hub.tell_replicas(crate::replicas::wire::Changed::Alerts);
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
    hub.tell_replicas(crate::replicas::wire::Changed::Alerts);
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
    let now = crate::store::now_ms();
    let silences: Vec<SilenceRecord> = hub
        .store
        .alert_silences()
        .await?
        .into_iter()
        .filter(|s| (s.starts_ms..s.ends_ms).contains(&now))
        .collect();
    if !silences.is_empty() {
        for a in alerts.iter_mut().filter(|a| a.state != "resolved") {
            let labels = hub
                .twin
                .read(&a.node_id, |n| n.state.host.labels.clone())
                .unwrap_or_default();
            a.silenced = silences
                .iter()
                .any(|s| s.matches(a.rule_id, &a.node_id, &labels, now));
        }
    }
    Ok(Json(alerts))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRuleBody {
    /// Off: not evaluated (its active alerts let go).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Channel ids to notify (replaces the list).
    #[serde(default)]
    pub channels: Option<Vec<i64>>,
}

/// Turns a rule on or off, or changes where it notifies.
#[utoipa::path(patch, path = "/api/v1/alerts/rules/{id}", tag = "alerts", request_body = UpdateRuleBody,
    params(("id" = i64, Path, description = "Rule id")),
    responses((status = 204), (status = 400, description = "Invalid change"),
        (status = 401, description = "Not authenticated"), (status = 403, description = "Needs admin"),
        (status = 404, description = "No such rule, or a channel it names does not exist")))]
pub async fn update_rule(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<i64>,
    body: Result<JsonBody<UpdateRuleBody>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let JsonBody(u) = body?;
    if u.enabled.is_none() && u.channels.is_none() {
        // Nothing to change: say whether the rule exists.
        return match hub.store.alert_rules().await?.iter().any(|r| r.id == id) {
            true => Ok(StatusCode::NO_CONTENT),
            false => Err(ApiError::NotFound(format!("no rule {id}"))),
        };
    }
    if let Some(channels) = &u.channels {
        if channels.len() > 50 {
            return Err(bad("channels: at most 50".into()));
        }
        let known = hub.store.alert_channels(hub.alerts.sealer()).await?;
        if let Some(missing) = channels.iter().find(|c| !known.iter().any(|k| k.id == **c)) {
            return Err(ApiError::NotFound(format!(
                "channel {missing}: no such channel"
            )));
        }
    }
    let detail = match u.enabled {
        Some(true) => "enabled",
        Some(false) => "disabled",
        None => "channels",
    };
    let record = Record::by(&who, "alert_rule.update", Outcome::Ok).detail(detail);
    if !hub
        .store
        .update_alert_rule(id, u.enabled, u.channels.as_deref(), record)
        .await?
    {
        return Err(ApiError::NotFound(format!("no rule {id}")));
    }
    hub.alerts.reload(&hub.store).await?;
    hub.tell_replicas(crate::replicas::wire::Changed::Alerts);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Why, or who is on it.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub comment: String,
}

/// Acknowledges an active alert: it is not sent again until it resolves
/// (its resolution still is).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", tag = "alerts", request_body = AckBody,
    params(("id" = i64, Path, description = "Alert id")),
    responses((status = 200, body = AlertRecord), (status = 400, description = "Invalid comment"),
        (status = 401, description = "Not authenticated"), (status = 403, description = "Needs operator"),
        (status = 404, description = "No such alert"), (status = 409, description = "Already resolved")))]
pub async fn ack(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<i64>,
    body: Result<JsonBody<AckBody>, ApiError>,
) -> Result<Json<AlertRecord>, ApiError> {
    let JsonBody(a) = body?;
    if a.comment.chars().count() > 500 {
        return Err(bad("comment: at most 500 characters".into()));
    }
    let by = Record::by(&who, "alert.ack", Outcome::Ok);
    let actor = by.actor.clone();
    let record = by.detail(&a.comment);
    // Only alerts of hosts the caller may see.
    let visible = |node: &str| {
        who.groups.is_none() || hub.twin.check(node, |n| who.sees(&n.state.host.labels))
    };
    let alerts = hub.store.alerts(true, 0).await?;
    let Some(current) = alerts.iter().find(|x| x.id == id) else {
        let all = hub.store.alerts(false, 1000).await?;
        return match all.iter().find(|x| x.id == id) {
            Some(x) if visible(&x.node_id) => Err(ApiError::Conflict(format!(
                "alert {id} is already resolved"
            ))),
            _ => Err(ApiError::NotFound(format!("no alert {id}"))),
        };
    };
    if !visible(&current.node_id) {
        return Err(ApiError::NotFound(format!("no alert {id}")));
    }
    let Some(acked) = hub.store.ack_alert(id, &actor, &a.comment, record).await? else {
        return Err(ApiError::NotFound(format!("no alert {id}")));
    };
    if acked.acked_ms.is_none() {
        return Err(ApiError::Conflict(format!(
            "alert {id} is already resolved"
        )));
    }
    hub.alerts.acked(&acked);
    let event = serde_json::json!({"type": "alert", "id": acked.node_id, "alert": acked});
    let _ = hub.twin.stream().send(event.to_string().into());
    Ok(Json(acked))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilenceBody {
    /// Only this rule's alerts.
    #[serde(default)]
    pub rule_id: Option<i64>,
    /// Only this host's (node id): a maintenance window.
    #[serde(default)]
    pub node: Option<String>,
    /// Only hosts with all these labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// When it starts (ms since the epoch; default now).
    #[serde(default)]
    pub starts_ms: Option<i64>,
    /// How long it lasts (`30m`, `2h`, up to 90 days).
    #[schema(pattern = r"^[0-9]{1,6}(s|m|h|d)$")]
    pub duration: String,
    #[schema(min_length = 1, max_length = 500)]
    pub comment: String,
}

/// The longest silence.
const MAX_SILENCE: Duration = Duration::from_secs(90 * 86_400);

/// Adds a silence: matching alerts are still evaluated and listed, not
/// sent.
#[utoipa::path(post, path = "/api/v1/alerts/silences", tag = "alerts", request_body = NewSilenceBody,
    responses((status = 201, body = Created), (status = 400, description = "Invalid silence"),
        (status = 401, description = "Not authenticated"), (status = 403, description = "Needs operator"),
        (status = 404, description = "The rule or host it names does not exist")))]
pub async fn add_silence(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    body: Result<JsonBody<NewSilenceBody>, ApiError>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let JsonBody(s) = body?;
    let comment = s.comment.trim();
    if comment.is_empty() || comment.chars().count() > 500 {
        return Err(bad("comment: 1 to 500 characters (say why)".into()));
    }
    if s.rule_id.is_none() && s.node.is_none() && s.labels.is_empty() {
        return Err(bad(
            "a silence needs a matcher: rule_id, node or labels".into()
        ));
    }
    if s.labels.len() > 20
        || s.labels
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > 100 || v.len() > 200)
    {
        return Err(bad("labels: up to 20, keys 1 to 100 characters".into()));
    }
    let digits = s.duration.trim_end_matches(['s', 'm', 'h', 'd']);
    if digits.is_empty()
        || digits.len() > 6
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || s.duration.len() != digits.len() + 1
    {
        return Err(bad(format!(
            "duration {:?}: a number and s, m, h or d (e.g. 30m, 2h)",
            s.duration
        )));
    }
    let lasts = humantime::parse_duration(&s.duration)
        .map_err(|e| bad(format!("duration {:?}: {e} (e.g. 30m, 2h)", s.duration)))?;
    if lasts.is_zero() || lasts > MAX_SILENCE {
        return Err(bad(format!(
            "duration {:?}: more than 0, at most 90 days",
            s.duration
        )));
    }
    let now = crate::store::now_ms();
    let starts_ms = s.starts_ms.unwrap_or(now);
    if !(0..=now + MAX_SILENCE.as_millis() as i64).contains(&starts_ms) {
        return Err(bad("starts_ms: from now to 90 days ahead".into()));
    }
    if let Some(rule) = s.rule_id
        && !hub.store.alert_rules().await?.iter().any(|r| r.id == rule)
    {
        return Err(ApiError::NotFound(format!("rule {rule}: no such rule")));
    }
    if let Some(node) = &s.node
        && !hub.twin.check(node, |n| who.sees(&n.state.host.labels))
    {
        return Err(ApiError::NotFound(format!("node {node:?}: no such host")));
    }
    let by = Record::by(&who, "alert_silence.create", Outcome::Ok);
    let actor = by.actor.clone();
    let record = by.detail(comment);
    let new = crate::store::NewSilence {
        rule_id: s.rule_id,
        node_id: s.node.as_deref(),
        labels: &s.labels,
        starts_ms,
        ends_ms: starts_ms + lasts.as_millis() as i64,
        comment,
        created_by: &actor,
    };
    let id = hub.store.add_alert_silence(&new, record).await?;
    hub.alerts.reload(&hub.store).await?;
    hub.tell_replicas(crate::replicas::wire::Changed::Alerts);
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// The silences, newest first (ended ones too).
#[utoipa::path(get, path = "/api/v1/alerts/silences", tag = "alerts",
    responses((status = 200, body = [SilenceRecord]), (status = 401, description = "Not authenticated")))]
pub async fn silences(
    State(hub): State<Arc<HubState>>,
    _auth: Auth,
) -> Result<Json<Vec<SilenceRecord>>, ApiError> {
    Ok(Json(hub.store.alert_silences().await?))
}

/// Ends a silence now (it stays listed).
#[utoipa::path(delete, path = "/api/v1/alerts/silences/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "Silence id")),
    responses((status = 204), (status = 401, description = "Not authenticated"),
        (status = 403, description = "Needs operator"), (status = 404, description = "No such silence")))]
pub async fn expire_silence(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let record = Record::by(&who, "alert_silence.expire", Outcome::Ok);
    if !hub.store.expire_alert_silence(id, record).await? {
        return Err(ApiError::NotFound(format!("no silence {id}")));
    }
    hub.alerts.reload(&hub.store).await?;
    hub.tell_replicas(crate::replicas::wire::Changed::Alerts);
    Ok(StatusCode::NO_CONTENT)
}
