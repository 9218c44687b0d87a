//! The MCP server: AI assistants read the twin and act through the same
//! guarded, audited path as people.
//!
//! Mounted at `/mcp` on the hub's listener (streamable HTTP, rmcp). Every
//! request passes [`auth::guard`] first: the Host must be one of the hub's
//! names and `Authorization: Bearer <API token>` one of its tokens, else
//! 403 / 401 before rmcp sees it. Each tool then answers as the REST API
//! would for that token (its role, its host groups): the read tools call
//! the REST handlers or read the in-memory twin with the same scoping, and
//! `run_command` *is* the commands API's handler. Every tool call is
//! audited ([`audit`]); every answer is capped and says when it cut.
//!
//! Tools by concern: [`read`] (hosts, events, metrics, alerts, topology,
//! files, commands, search), [`act`] (commands) and [`ops`] (alerts,
//! schedules, backups: the hub's own work). `--mcp read-only` leaves the act
//! tools out altogether; a read-only API token is not shown them and is
//! refused them (as the REST API refuses its writes).

mod act;
mod audit;
pub mod auth;
pub mod decode;
mod limit;
mod ops;
mod prompts;
mod read;
mod resources;
#[cfg(test)]
mod tests;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::response::IntoResponse;
use rmcp::handler::server::prompt::PromptContext;
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsResult, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, ResourceUpdatedNotificationParam,
    SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::HubState;
use crate::api::ApiError;
use crate::store::Principal;

/// Largest JSON-RPC body the server reads (a tool's arguments are small).
pub const MAX_BODY: usize = 64 * 1024;

/// What `twinbay hub --mcp` serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Read and act tools (act tools still need the token's role and the
    /// agent's policy).
    #[default]
    On,
    /// Only the read tools are registered.
    ReadOnly,
    /// No `/mcp` at all (404).
    Off,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "on" => Ok(Mode::On),
            "read-only" => Ok(Mode::ReadOnly),
            "off" => Ok(Mode::Off),
            other => Err(format!("{other:?}: use on, read-only or off")),
        }
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::On => "on",
            Mode::ReadOnly => "read-only",
            Mode::Off => "off",
        }
    }
}

/// The `/mcp` service: the guard in front of rmcp's streamable HTTP server.
pub fn service(hub: Arc<HubState>) -> Router {
    let mode = hub.mcp;
    if mode == Mode::Off {
        return Router::new().fallback(|| async {
            ApiError::NotFound("the MCP server is off (start the hub with --mcp on)".into())
                .into_response()
        });
    }
    // The guard checks Host against the hub's own names (public URL,
    // --allowed-host, hostname, addresses, localhost), so rmcp's
    // loopback-only list is switched off rather than duplicated.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_max_request_body_bytes(MAX_BODY)
        .with_cancellation_token(hub.shutdown.child_token());
    let tools = Arc::new(McpServer::tool_set(mode));
    let prompts = Arc::new(McpServer::prompts());
    let limiter = Arc::new(limit::Limiter::default());
    let audits = Arc::new(audit::Queue::start(hub.clone()));
    let state = hub.clone();
    let guard_limiter = limiter.clone();
    let mcp = StreamableHttpService::new(
        move || {
            Ok(McpServer {
                hub: state.clone(),
                tools: tools.clone(),
                prompts: prompts.clone(),
                limiter: limiter.clone(),
                audits: audits.clone(),
                watches: Arc::default(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .fallback_service(mcp)
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                auth::guard(hub.clone(), guard_limiter.clone(), request, next)
            },
        ))
}

/// One MCP session's server; cheap to make (the tool set is shared).
#[derive(Clone)]
pub struct McpServer {
    hub: Arc<HubState>,
    tools: Arc<ToolRouter<McpServer>>,
    prompts: Arc<PromptRouter<McpServer>>,
    /// Tool calls per caller, shared by every session.
    limiter: Arc<limit::Limiter>,
    /// Read audit entries on their way to the store.
    audits: Arc<audit::Queue>,
    /// This session's resource subscriptions.
    watches: Arc<watch::Watches>,
}

impl McpServer {
    /// The tools `mode` registers.
    pub fn tool_set(mode: Mode) -> ToolRouter<McpServer> {
        let mut tools = McpServer::read_tools();
        tools.merge(McpServer::ops_read_tools());
        if mode == Mode::On {
            tools.merge(McpServer::act_set());
        }
        tools
    }

    /// A resource request's turn under the caller's rate limit.
    fn turn(&self, caller: &Caller, now: Instant) -> Result<(), ErrorData> {
        self.limiter.take(&caller.actor(), now).map_err(|wait| {
            ErrorData::invalid_request(
                format!(
                    "too many requests: try again in {} ms",
                    wait.as_millis().max(1)
                ),
                None,
            )
        })
    }

    /// A resource read or subscription in the audit trail, as `mcp.read`.
    async fn audit_resource<T>(
        &self,
        caller: &Caller,
        what: &str,
        uri: &str,
        result: &Result<T, ErrorData>,
        started: Instant,
    ) {
        let outcome = match result {
            Ok(_) => crate::audit::Outcome::Ok,
            Err(_) => crate::audit::Outcome::Failed,
        };
        let uri: String = uri.chars().take(200).collect();
        let client = match caller.client.is_empty() {
            true => "-",
            false => &caller.client,
        };
        let mut detail = format!(
            "{what}={uri} client={client} duration_ms={:.2}",
            started.elapsed().as_secs_f64() * 1000.0
        );
        if let Err(e) = result {
            detail.push_str(&format!(" error={}", e.message));
        }
        let entry = crate::audit::Record::by(&caller.who, "mcp.read", outcome)
            .client(&caller.address, &caller.user_agent)
            .detail(&detail);
        self.audits.push(&self.hub, entry).await;
    }

    /// The tools that change something ([`audit::ACTS`]).
    pub(crate) fn act_set() -> ToolRouter<McpServer> {
        let mut tools = McpServer::act_tools();
        tools.merge(McpServer::ops_act_tools());
        tools
    }
}

/// The caller of one tool call, as the guard found it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: Principal,
    /// The client's address (through trusted proxies).
    pub address: String,
    pub user_agent: String,
    /// `name/version` from MCP's client info.
    pub client: String,
}

impl Caller {
    /// Who, as the audit trail names it (`token:7`, `alice`): the rate
    /// limit's key.
    fn actor(&self) -> String {
        crate::audit::Record::by(&self.who, "", crate::audit::Outcome::Ok).actor
    }

    fn of(context: &RequestContext<RoleServer>) -> Option<Caller> {
        let parts = context.extensions.get::<http::request::Parts>()?;
        let who = parts.extensions.get::<Principal>()?.clone();
        let address = parts
            .extensions
            .get::<crate::api::client::Client>()
            .map(|c| c.addr.to_string())
            .unwrap_or_default();
        let user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let client = context
            .client_info()
            .map(|c| format!("{}/{}", c.name, c.version))
            .unwrap_or_default();
        Some(Caller {
            who,
            address,
            user_agent,
            client,
        })
    }
}

/// A tool's failure as the assistant reads it: `not found: no node "x"`.
pub(crate) fn tool_error(e: ApiError) -> String {
    let kind = match &e {
        ApiError::Unauthorized(_) => "unauthorized",
        ApiError::Forbidden(_) => "forbidden",
        ApiError::NotFound(_) => "not found",
        ApiError::BadRequest(_) | ApiError::UnsupportedMediaType(_) => "bad request",
        ApiError::Conflict(_) => "conflict",
        ApiError::PayloadTooLarge(_) => "too large",
        ApiError::TooManyRequests(..) => "too many requests",
        ApiError::Internal(err) => {
            tracing::error!(error = %crate::report(err), "an MCP tool failed");
            "internal error"
        }
        ApiError::MethodNotAllowed(..) | ApiError::Other(..) => "error",
    };
    format!("{kind}: {e}")
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
        .with_server_info(Implementation::new("twinbay", crate::VERSION))
        .with_instructions(
            "twinbay's live twin of every machine. Start with list_hosts, then get_host \
                 (set include_processes/include_ports to false to keep it short), list_events \
                 for what changed, query_metrics for history, find to search the fleet, \
                 list_alerts, list_schedules and list_backups for the hub's own work. \
                 run_command, run_schedule_now, acknowledge_alert and silence_alert go \
                 through the hub's role check (and the host's own policy); a read-only \
                 token has none of them. Every call is audited."
                .to_string(),
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = self.tools.list_all();
        // A read-only token is shown only what it may call.
        if Caller::of(&context).is_none_or(|c| c.who.read_only) {
            tools.retain(|t| !audit::ACTS.contains(&t.name.as_ref()));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(self.prompts.list_all()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let prompt = PromptContext::new(self, request.name, request.arguments, context);
        self.prompts.get_prompt(prompt).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = Caller::of(&context)
            .ok_or_else(|| ErrorData::invalid_request("no authenticated caller", None))?;
        Ok(ListResourcesResult::with_all_items(resources::list(
            &self.hub, &caller,
        )))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = Caller::of(&context)
            .ok_or_else(|| ErrorData::invalid_request("no authenticated caller", None))?;
        let started = Instant::now();
        self.turn(&caller, started)?;
        let result = resources::read(&self.hub, &caller, &request.uri).await;
        self.audit_resource(&caller, "resource", &request.uri, &result, started)
            .await;
        Ok(ReadResourceResult::new(vec![result?]).into())
    }

    /// `resources/subscribe` (the 2025 revisions): notifications go to the
    /// session's stream until `resources/unsubscribe` or the session's end.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let caller = Caller::of(&context)
            .ok_or_else(|| ErrorData::invalid_request("no authenticated caller", None))?;
        let started = Instant::now();
        self.turn(&caller, started)?;
        let uri = request.uri;
        let result = resources::host_of(&self.hub, &caller, &uri).and_then(|node| {
            let stop = self
                .watches
                .start(&uri, &self.hub.shutdown)
                .ok_or_else(|| {
                    ErrorData::invalid_request(
                        format!("at most {} subscriptions a session", watch::MAX_WATCHED),
                        None,
                    )
                })?;
            let peer = context.peer.clone();
            let hosts = HashMap::from([(node, uri.clone())]);
            tokio::spawn(watch::run(self.hub.clone(), hosts, stop, move |uri| {
                let peer = peer.clone();
                async move {
                    peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                        .await
                        .is_ok()
                }
            }));
            Ok(())
        });
        self.audit_resource(&caller, "subscribe", &uri, &result, started)
            .await;
        result
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.watches.stop(&request.uri);
        Ok(())
    }

    /// `subscriptions/listen` (2026-07-28): host resources only, at most
    /// [`watch::MAX_WATCHED`] of them.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let uris: Vec<String> = requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter(|uri| uri.starts_with(resources::HOST_PREFIX))
            .take(watch::MAX_WATCHED)
            .cloned()
            .collect();
        let mut accepted = SubscriptionFilter::default();
        accepted.resource_subscriptions = (!uris.is_empty()).then_some(uris);
        Some(accepted)
    }

    /// One listen stream: the accepted hosts the caller sees, until the
    /// stream ends. (A host it does not see is acknowledged, never notified.)
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let request = context.request_context();
        let caller = Caller::of(request)
            .ok_or_else(|| ErrorData::invalid_request("no authenticated caller", None))?;
        let started = Instant::now();
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        let hosts: HashMap<String, String> = uris
            .iter()
            .filter_map(|uri| {
                let node = resources::host_of(&self.hub, &caller, uri).ok()?;
                Some((node, uri.clone()))
            })
            .collect();
        let stop = request.ct.child_token();
        let ok: Result<(), ErrorData> = Ok(());
        self.audit_resource(&caller, "listen", &uris.join(","), &ok, started)
            .await;
        let sink = context.sink().clone();
        watch::run(self.hub.clone(), hosts, stop, move |uri| {
            let sink = sink.clone();
            async move { sink.notify_resource_updated(uri).await.is_ok() }
        })
        .await;
        Ok(())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.get(name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(caller) = Caller::of(&context) else {
            // Only reachable through the guard; a transport without one has no caller.
            return Err(ErrorData::invalid_request("no authenticated caller", None));
        };
        let started = Instant::now();
        let tool = request.name.to_string();
        let arguments = request.arguments.clone();
        context.extensions.insert(caller.clone());
        let refused = caller.who.read_only && audit::ACTS.contains(&tool.as_str());
        let result = match self.limiter.take(&caller.actor(), started) {
            // Refused whatever its arguments, audited as denied.
            Ok(()) if refused => Ok(CallToolResult::error(vec![ContentBlock::text(
                "forbidden: this API token is read-only: it may not change anything \
                 (its tools are the read tools that tools/list shows it)",
            )])
            .into()),
            Ok(()) => {
                self.tools
                    .call(ToolCallContext::new(self, request, context))
                    .await
            }
            Err(wait) => Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "too many requests: at most {} calls a second per token; try again in {} ms",
                limit::PER_SECOND,
                wait.as_millis().max(1)
            ))])
            .into()),
        };
        let entry = audit::entry(
            &caller,
            &tool,
            arguments.as_ref(),
            &result,
            started.elapsed(),
            self.tools.has_route(&tool),
        );
        // An act's entry is written before the answer. A read's is queued
        // and written beside it ([`audit::Queue`]): the store's one writer
        // may be busy with a large fleet's history, and a read must not wait
        // for that (measured: p99 of 10 s at 1,000 hosts).
        if audit::ACTS.contains(&tool.as_str()) {
            audit::write(&self.hub, entry).await;
        } else {
            self.audits.push(&self.hub, entry).await;
        }
        result
    }
}
