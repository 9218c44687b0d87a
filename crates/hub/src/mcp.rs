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
//! files, commands, search) and [`act`] (commands); `--mcp read-only`
//! leaves the act tools out altogether.

mod act;
mod audit;
pub mod auth;
pub mod decode;
mod limit;
mod prompts;
mod read;
mod resources;
#[cfg(test)]
mod tests;

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
    ReadResourceResponse, ReadResourceResult,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::HubState;
use crate::api::ApiError;
use crate::store::Principal;

/// Largest JSON-RPC body the server reads (a tool's arguments are small).
pub const MAX_BODY: usize = 64 * 1024;

/// Read audit entries written at once before reads wait for theirs.
const AUDITS_IN_FLIGHT: usize = 1024;

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
    let audits = Arc::new(tokio::sync::Semaphore::new(AUDITS_IN_FLIGHT));
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
    /// Read audit entries being written.
    audits: Arc<tokio::sync::Semaphore>,
}

impl McpServer {
    /// The tools `mode` registers.
    pub fn tool_set(mode: Mode) -> ToolRouter<McpServer> {
        let mut tools = McpServer::read_tools();
        if mode == Mode::On {
            tools.merge(McpServer::act_tools());
        }
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
                .build(),
        )
        .with_server_info(Implementation::new("twinbay", crate::VERSION))
        .with_instructions(
            "twinbay's live twin of every machine. Start with list_hosts, then get_host \
                 (set include_processes/include_ports to false to keep it short), list_events \
                 for what changed, query_metrics for history, find to search the fleet. \
                 run_command goes through the hub's role check and the host's own policy; \
                 every call is audited."
                .to_string(),
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.list_all()))
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
        if let Err(wait) = self.limiter.take(&caller.actor(), started) {
            return Err(ErrorData::invalid_request(
                format!(
                    "too many requests: try again in {} ms",
                    wait.as_millis().max(1)
                ),
                None,
            ));
        }
        let result = resources::read(&self.hub, &caller, &request.uri).await;
        let outcome = match &result {
            Ok(_) => crate::audit::Outcome::Ok,
            Err(_) => crate::audit::Outcome::Failed,
        };
        let uri: String = request.uri.chars().take(200).collect();
        let client = match caller.client.is_empty() {
            true => "-",
            false => &caller.client,
        };
        let mut detail = format!(
            "resource={uri} client={client} duration_ms={:.2}",
            started.elapsed().as_secs_f64() * 1000.0
        );
        if let Err(e) = &result {
            detail.push_str(&format!(" error={}", e.message));
        }
        let entry = crate::audit::Record::by(&caller.who, "mcp.read", outcome)
            .client(&caller.address, &caller.user_agent)
            .detail(&detail);
        audit::write(&self.hub, entry).await;
        Ok(ReadResourceResult::new(vec![result?]).into())
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
        let result = match self.limiter.take(&caller.actor(), started) {
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
        // An act's entry is written before the answer. A read's is written
        // beside it: the store's one writer may be busy with a large fleet's
        // history, and a read must not wait for that (measured: p99 of 10 s
        // at 1,000 hosts). Entries in flight are bounded; past that, reads
        // wait for theirs.
        if audit::ACTS.contains(&tool.as_str()) {
            audit::write(&self.hub, entry).await;
        } else {
            match self.audits.clone().acquire_owned().await {
                Ok(permit) => {
                    let hub = self.hub.clone();
                    tokio::spawn(async move {
                        audit::write(&hub, entry).await;
                        drop(permit);
                    });
                }
                Err(_) => audit::write(&self.hub, entry).await,
            }
        }
        result
    }
}
