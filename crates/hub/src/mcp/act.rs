//! The act tools. `run_command` *is* the commands API: its arguments become
//! the API's request body and go through the same handler, so the hub's
//! role check, the token's host groups, the agent's policy and the audit
//! entry (`command.run`) are the REST API's own.

use std::time::Duration;

use axum::extract::{Path, State};
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{Json, tool, tool_router};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::decode::{RunCommandArgs, command_body};
use super::read::{CommandOut, allowed, command_out, resolve};
use super::{Caller, McpServer, tool_error};
use crate::api::auth::Auth;
use crate::api::body::{JsonBody, parse};
use crate::api::commands::RunCommand;
use crate::commands::Watch;

/// The longest `run_command` waits for a command's end.
const MAX_WAIT: u32 = 300;

#[tool_router(router = act_tools, vis = "pub(crate)")]
impl McpServer {
    /// Run a lifecycle verb (status, version, logs, start, stop, restart) on a
    /// container, unit or the agent, or an action of the host's policy.
    /// Exactly the commands API: the token's role and host groups and the
    /// host's own policy decide; every run is audited. Waits for the end
    /// (up to `timeout_secs`) and returns the output.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn run_command(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<RunCommandArgs>,
    ) -> Result<Json<CommandOut>, String> {
        allowed(&c.who, "POST", "/api/v1/nodes/{id}/commands")?;
        let timeout = a.timeout_secs.unwrap_or(60);
        if !(1..=MAX_WAIT).contains(&timeout) {
            return Err(format!(
                "bad request: timeout_secs must be between 1 and {MAX_WAIT}"
            ));
        }
        let node = resolve(&self.hub, &c.who, &a.node)?;
        // A bad shape reaches the API as a bad body, so it is refused and
        // audited there like any other.
        let body = command_body(&a)
            .map_err(|e| {
                crate::api::ApiError::BadRequest(e.trim_start_matches("bad request: ").into())
            })
            .and_then(|mut v| parse::<RunCommand>(&mut v))
            .map(JsonBody);
        let response = crate::api::commands::run(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Path(node),
            body,
        )
        .await
        .map_err(tool_error)?;
        let bytes = axum::body::to_bytes(response.into_body(), 1024 * 1024)
            .await
            .map_err(|_| "internal error: unreadable command record".to_string())?;
        let record: Value = serde_json::from_slice(&bytes)
            .map_err(|_| "internal error: unreadable command record".to_string())?;
        let id = record["id"].as_str().unwrap_or_default().to_string();
        if a.wait == Some(false) {
            return Ok(Json(command_out(record, &[])));
        }
        self.wait_for(&id, Duration::from_secs(timeout.into()))
            .await;
        let axum::Json(found) =
            crate::api::commands::get_one(State(self.hub.clone()), Auth(c.who.clone()), Path(id))
                .await
                .map_err(tool_error)?;
        Ok(Json(command_out(
            serde_json::to_value(&found.record).unwrap_or(record),
            &found.output,
        )))
    }
}

impl McpServer {
    /// Until command `id` ends or `timeout` passes.
    async fn wait_for(&self, id: &str, timeout: Duration) {
        let Some(mut rx) = self.hub.commands.watch(id).and_then(|w| w.rx) else {
            return;
        };
        let ended = async {
            loop {
                match rx.recv().await {
                    Ok(Watch::Done(_)) | Err(RecvError::Closed) => return,
                    Ok(Watch::Output(_)) | Err(RecvError::Lagged(_)) => {}
                }
            }
        };
        let _ = tokio::time::timeout(timeout, ended).await;
        // The end is stored (and audited) by a task of its own; give it a moment.
        for _ in 0..50 {
            match self.hub.commands.watch(id) {
                Some(w) if w.rx.is_none() => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => return,
            }
        }
    }
}
