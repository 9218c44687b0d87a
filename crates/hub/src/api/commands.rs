//! Commands: run one on a host, watch its output live, cancel it, and read
//! a host's history. The rules (who may run what) are the agent's policy,
//! checked here first so a refusal is quick and audited, and again by the
//! agent, which has the last word.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use super::body::JsonBody;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;
use twinbay_proto::command::{Command, Op, Refusal, Status};

use super::ApiError;
use super::auth::Auth;
use super::nodes::require_node;
use crate::HubState;
use crate::audit::{Outcome, Record};
use crate::commands::{Watch, Watched};
use crate::store::{CommandRecord, Output, Principal, PrincipalKind, Role, now_ms};

/// Longest a caller may wait for a disconnected agent.
const MAX_WAIT_SECS: u32 = 300;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RunCommand {
    #[serde(flatten)]
    pub op: Op,
    /// Answer with the live output (NDJSON) instead of the record; the
    /// command is cancelled if the client goes away before it ends.
    #[serde(default)]
    pub stream: bool,
    /// If the agent is not connected, wait this long for it (0–300 s).
    #[serde(default)]
    #[schema(maximum = 300)]
    pub wait_secs: u32,
}

/// A command with its stored output.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CommandWithOutput {
    #[serde(flatten)]
    pub record: CommandRecord,
    pub output: Vec<Output>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    /// At most this many, newest first (default 50, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

fn actor(who: &Principal) -> (String, &'static str) {
    match &who.kind {
        PrincipalKind::User { .. } => (who.name(), "user"),
        PrincipalKind::Token { .. } => (who.name(), "token"),
    }
}

/// Records a refused command and returns the error the caller gets.
async fn refuse(
    hub: &HubState,
    who: &Principal,
    node_id: &str,
    what: &str,
    err: ApiError,
) -> ApiError {
    let outcome = match err {
        ApiError::Conflict(_) => Outcome::Failed,
        _ => Outcome::Denied,
    };
    let record = Record::by(who, "command.run", outcome)
        .target(&format!("node:{node_id}"))
        .detail(&format!("{what}: {err}"));
    if let Err(e) = hub.store.audit(record).await {
        return ApiError::Internal(e);
    }
    err
}

/// Runs a lifecycle verb or an action on a host.
#[utoipa::path(
    post,
    path = "/api/v1/nodes/{id}/commands",
    tag = "commands",
    params(("id" = String, Path, description = "Node id")),
    request_body = RunCommand,
    responses(
        (status = 202, body = CommandRecord, description = "Sent to the agent"),
        (status = 200, content_type = "application/x-ndjson", description = "With `stream`: the live output, one JSON object per line"),
        (status = 400, description = "A bad target, an argument that breaks its schema, or an action not in the agent's policy"),
        (status = 403, description = "The caller's role is too low"),
        (status = 404, description = "No such node"),
        (status = 409, description = "The agent is not connected"),
    )
)]
pub async fn run(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(node_id): Path<String>,
    body: Result<JsonBody<RunCommand>, ApiError>,
) -> Result<Response, ApiError> {
    let node_id = node_id.chars().take(100).collect::<String>();
    let JsonBody(req) = match body {
        Ok(b) => b,
        Err(e) => {
            let err = e;
            return Err(refuse(&hub, &who, &node_id, "bad request", err).await);
        }
    };
    let summary = req.op.summary().chars().take(300).collect::<String>();
    if let Err(e) = require_node(&hub, &node_id, &who) {
        return Err(refuse(&hub, &who, &node_id, &summary, e).await);
    }
    let err = |e: ApiError| refuse(&hub, &who, &node_id, &summary, e);
    if let Err(e) = req.op.check_shape() {
        return Err(err(ApiError::BadRequest(e.to_string())).await);
    }
    if let Op::Restore { backup_id, .. } = &req.op
        && let Err(e) = super::backups::restorable(&hub, &who, backup_id).await
    {
        return Err(err(e).await);
    }
    if matches!(req.op, Op::Lifecycle { follow: true, .. }) && !req.stream {
        return Err(err(ApiError::BadRequest(
            "follow needs \"stream\": true (the command ends when the client goes)".into(),
        ))
        .await);
    }
    if req.wait_secs > MAX_WAIT_SECS {
        return Err(err(ApiError::BadRequest(format!(
            "wait_secs must be at most {MAX_WAIT_SECS}"
        )))
        .await);
    }
    // Wait for the agent if asked; then its policy decides.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(req.wait_secs.into());
    let policy = loop {
        let (connected, policy, last_seen, simulated) = hub
            .twin
            .read(&node_id, |n| {
                (n.connected, n.policy.clone(), n.last_seen, n.simulated)
            })
            .ok_or_else(|| ApiError::NotFound(format!("no node {node_id:?}")))?;
        if connected && crate::commands::reachable(&hub, &node_id) {
            match policy {
                Some(p) => break p,
                None => {
                    let why = if simulated {
                        "this is a simulated agent; it runs no commands"
                    } else {
                        "this agent runs no commands (it is older than commands, or has none)"
                    };
                    return Err(err(ApiError::Conflict(why.into())).await);
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let since = last_seen
                .map(|t| format!(" (last seen {} s ago)", (now_ms() - t).max(0) / 1000))
                .unwrap_or_default();
            return Err(err(ApiError::Conflict(format!(
                "the agent of node {node_id} is not connected{since}"
            )))
            .await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let role = who.role;
    if let Err(refusal) = req.op.authorize(&policy, role) {
        let e = match refusal {
            Refusal::Role(_) => ApiError::Forbidden(refusal.to_string()),
            _ => ApiError::BadRequest(refusal.to_string()),
        };
        return Err(err(e).await);
    }
    let role_needed = req.op.min_role(&policy).unwrap_or(Role::Operator);
    let (actor_name, actor_kind) = actor(&who);
    let record = CommandRecord {
        id: crate::credentials::new_token("cmd_")
            .chars()
            .take(24)
            .collect(),
        node_id: node_id.clone(),
        op: req.op.clone(),
        summary: summary.clone(),
        actor: actor_name.clone(),
        actor_kind: actor_kind.into(),
        role_needed,
        status: Status::Running,
        exit_code: None,
        error: None,
        started_ms: now_ms(),
        ended_ms: None,
        duration_ms: None,
        truncated: false,
    };
    hub.store.insert_command(&record).await?;
    hub.store
        .audit(
            Record::by(&who, "command.run", Outcome::Ok)
                .target(&format!("node:{node_id}"))
                .detail(&format!("{} {summary}", record.id)),
        )
        .await?;
    // Subscribe before the agent can answer, so a watcher misses nothing.
    let cmd = Command {
        id: record.id.clone(),
        role,
        actor: actor_name,
        op: req.op,
    };
    let id = record.id.clone();
    if let Err(e) = crate::commands::dispatch(&hub, record.clone(), cmd).await {
        let mut failed = record;
        failed.end(Status::Failed, None, Some(e.to_string()), now_ms());
        hub.store.finish_command(&failed, &[]).await?;
        return Err(ApiError::Conflict(e.to_string()));
    }
    if !req.stream {
        return Ok((StatusCode::ACCEPTED, Json(record)).into_response());
    }
    let watched = current(&hub, &id).await?.unwrap_or(Watched {
        record,
        output: Vec::new(),
        rx: None,
    });
    Ok(ndjson(hub.clone(), id, watched, true))
}

/// The live output of a command (NDJSON): the record, output so far, then
/// what follows, and the final record.
#[utoipa::path(
    get,
    path = "/api/v1/commands/{id}/output",
    tag = "commands",
    params(("id" = String, Path, description = "Command id")),
    responses(
        (status = 200, content_type = "application/x-ndjson", description = "`{\"type\":\"command\"…}`, then `{\"type\":\"output\",\"stream\",\"data\"}` lines, then `{\"type\":\"result\"…}`"),
        (status = 403), (status = 404),
    )
)]
pub async fn output(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let watched = readable(&hub, &who, &id).await?;
    Ok(ndjson(hub.clone(), id, watched, false))
}

/// A command and its stored output.
#[utoipa::path(
    get,
    path = "/api/v1/commands/{id}",
    tag = "commands",
    params(("id" = String, Path, description = "Command id")),
    responses((status = 200, body = CommandWithOutput), (status = 403), (status = 404))
)]
pub async fn get_one(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<CommandWithOutput>, ApiError> {
    let Watched { record, output, .. } = readable(&hub, &who, &id).await?;
    Ok(Json(CommandWithOutput { record, output }))
}

/// Cancels a running command: the agent kills its process group or stops following.
#[utoipa::path(
    delete,
    path = "/api/v1/commands/{id}",
    tag = "commands",
    params(("id" = String, Path, description = "Command id")),
    responses((status = 202, body = CommandRecord), (status = 403), (status = 404), (status = 409, description = "It has ended"))
)]
pub async fn cancel(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CommandRecord>), ApiError> {
    let record = readable(&hub, &who, &id).await?.record;
    let outcome = if hub.commands.cancel(&id) {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    hub.store
        .audit(
            Record::by(&who, "command.cancel", outcome)
                .target(&format!("node:{}", record.node_id))
                .detail(&format!("{} {}", record.id, record.summary)),
        )
        .await?;
    if outcome == Outcome::Failed {
        return Err(ApiError::Conflict(format!(
            "command {id} has ended ({})",
            record.status
        )));
    }
    Ok((StatusCode::ACCEPTED, Json(record)))
}

/// A host's commands, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/nodes/{id}/commands",
    tag = "commands",
    params(("id" = String, Path, description = "Node id"), HistoryQuery),
    responses((status = 200, body = Vec<CommandRecord>), (status = 404))
)]
pub async fn history(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Vec<CommandRecord>>, ApiError> {
    require_node(&hub, &id, &who)?;
    let limit = super::limit(q.limit, 50, 500)?;
    let mut list = hub.store.node_commands(&id, limit).await?;
    // A running command's stored row says `running`; the live one may know more.
    for c in list.iter_mut().filter(|c| c.status == Status::Running) {
        if let Some(live) = hub.commands.running_record(&c.id) {
            *c = live;
        }
    }
    Ok(Json(list))
}

/// The command, if the caller may see its node and has the role it needed
/// (a viewer does not read the logs an operator fetched).
async fn readable(hub: &HubState, who: &Principal, id: &str) -> Result<Watched, ApiError> {
    let missing = || {
        ApiError::NotFound(format!(
            "no command {:?}",
            id.chars().take(64).collect::<String>()
        ))
    };
    let watched = current(hub, id).await?.ok_or_else(missing)?;
    require_node(hub, &watched.record.node_id, who).map_err(|_| missing())?;
    if who.role < watched.record.role_needed {
        return Err(ApiError::Forbidden(format!(
            "this command's output needs the {} role",
            watched.record.role_needed.as_str()
        )));
    }
    Ok(watched)
}

/// The command as it is now: the hub's own copy first (it holds a command
/// until the store has its end), else the store's.
async fn current(hub: &HubState, id: &str) -> Result<Option<Watched>, ApiError> {
    if let Some(w) = hub.commands.watch(id) {
        return Ok(Some(w));
    }
    let stored = hub.store.command(id).await?;
    Ok(stored.map(|(record, output)| Watched {
        record,
        output,
        rx: None,
    }))
}

fn line(value: &serde_json::Value) -> String {
    let mut s = value.to_string();
    s.push('\n');
    s
}

fn ndjson_response(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Cancels its command when dropped while armed: the client that started
/// a streamed command went away.
struct CancelOnDrop {
    hub: Arc<HubState>,
    id: String,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed && self.hub.commands.cancel(&self.id) {
            tracing::info!(id = self.id, "the client went away; cancelling its command");
        }
    }
}

struct Feed {
    first: Option<String>,
    rx: Option<broadcast::Receiver<Watch>>,
    guard: CancelOnDrop,
}

fn output_line(out: &Output) -> String {
    line(&json!({"type": "output", "stream": out.stream, "data": out.data}))
}

/// A command's feed as an NDJSON body: the record, the output so far, then
/// (while it runs) what follows and the final record.
fn ndjson(hub: Arc<HubState>, id: String, watched: Watched, cancel_on_drop: bool) -> Response {
    let guard = CancelOnDrop {
        hub,
        id,
        armed: cancel_on_drop && watched.rx.is_some(),
    };
    let mut first = line(&json!({"type": "command", "command": watched.record}));
    for out in &watched.output {
        first.push_str(&output_line(out));
    }
    if watched.rx.is_none() {
        first.push_str(&line(&json!({"type": "result", "command": watched.record})));
    }
    let rx = watched.rx;
    let feed = Feed {
        first: Some(first),
        rx,
        guard,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        if let Some(first) = feed.first.take() {
            return Some((Ok::<_, Infallible>(Bytes::from(first)), feed));
        }
        let rx = feed.rx.as_mut()?;
        let text = match rx.recv().await {
            Ok(Watch::Output(out)) => output_line(&out),
            Ok(Watch::Done(record)) => {
                feed.guard.armed = false;
                feed.rx = None;
                line(&json!({"type": "result", "command": record}))
            }
            Err(broadcast::error::RecvError::Lagged(n)) => line(&json!({
                "type": "output", "stream": "stderr",
                "data": format!("[twinbay: {n} pieces of output skipped: this client fell behind]\n")
            })),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(Bytes::from(text)), feed))
    });
    ndjson_response(Body::from_stream(stream.boxed()))
}
