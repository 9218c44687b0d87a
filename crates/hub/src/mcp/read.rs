//! The read tools. Each answers what the REST API answers the same token:
//! hosts outside its host groups are "not found", routes its role may not
//! read are "forbidden" (the REST access table decides, see [`allowed`]).
//! Host reads come from the in-memory twin; history, events, files and
//! commands from the REST handlers themselves. Every answer is capped and
//! says when it cut.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use rmcp::handler::server::tool::{Extension, schema_for_output};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{Json, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Caller, McpServer, tool_error};
use crate::HubState;
use crate::api::ApiError;
use crate::api::access::{Access, rule};
use crate::api::auth::Auth;
use crate::store::Principal;
use crate::twin::NodeSummary;

/// A host's twin larger than this loses its processes, then its ports,
/// files and routes, until it fits.
pub const MAX_HOST_BYTES: usize = 256 * 1024;
/// `list_hosts` stops adding hosts past this many bytes (the answer goes
/// out twice: as text and as structured content).
pub const MAX_LIST_BYTES: usize = 200 * 1024;
/// Command output and file diffs: at most this much text.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Points per series in `query_metrics`.
pub const MAX_POINTS: u32 = 500;
pub const MAX_SERIES: usize = 16;
/// Graph elements in `get_topology`.
pub const MAX_GRAPH_NODES: usize = 500;
pub const MAX_GRAPH_EDGES: usize = 1000;
/// A raw-resolution metrics query covers at most this long.
const MAX_RAW_RANGE_MS: i64 = 86_400_000;

/// Whether the REST access table lets `who` call `method path`: a tool
/// that serves a route's data needs what the route needs (a read-only
/// token's writes are refused as the REST API refuses them).
pub(super) fn allowed(who: &Principal, method: &str, path: &str) -> Result<(), String> {
    let method: http::Method = method.parse().map_err(|_| "internal error".to_string())?;
    let refused = crate::api::access::refuses_write(who, &method, path);
    match rule(&method, path) {
        Some(Access::Public) => Ok(()),
        Some(Access::Role(needed)) if who.role >= needed => {
            refused.map_or(Ok(()), |e| Err(tool_error(e)))
        }
        Some(Access::Role(needed)) => Err(format!(
            "forbidden: this needs the {} role",
            needed.as_str()
        )),
        None => Err("forbidden: no access rule for this".into()),
    }
}

/// The node id for `node` (an id or a hostname) among the hosts `who`
/// sees; anything else is "not found".
pub(super) fn resolve(hub: &HubState, who: &Principal, node: &str) -> Result<String, String> {
    let node = node.trim();
    if hub.twin.check(node, |n| who.sees(&n.state.host.labels)) {
        return Ok(node.to_string());
    }
    let mut found = Vec::new();
    hub.twin.for_each(|n| {
        if n.state.host.hostname.eq_ignore_ascii_case(node) && who.sees(&n.state.host.labels) {
            found.push(n.id.clone());
        }
    });
    let shown: String = node.chars().take(100).collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!("not found: no node {shown:?}")),
        many => Err(format!(
            "bad request: {} hosts are called {shown:?}; use an id: {}",
            many.len(),
            many.join(", ")
        )),
    }
}

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A read's structured answer and its JSON text, made once. rmcp's `Json`
/// wrapper copies the value, then prints it again for the text content;
/// the big reads (`get_host`, `list_hosts`) build the text while they
/// measure it against their caps and hand both over as they are.
pub(super) struct Answer {
    pub value: Value,
    /// `value` as JSON (the same bytes `value.to_string()` gives).
    pub text: String,
    /// The same answer as lines to read, a second text content after the JSON.
    pub readable: Option<String>,
}

impl Answer {
    /// The tool result: `structuredContent` and the same JSON as text.
    pub fn result(self) -> CallToolResult {
        let mut content = vec![ContentBlock::text(self.text)];
        content.extend(self.readable.map(ContentBlock::text));
        let mut result = CallToolResult::success(content);
        result.structured_content = Some(self.value);
        result
    }
}

/// `text` cut to at most `max` bytes (keeping its end when `tail`).
pub(super) fn cut(text: &mut String, max: usize, tail: bool) -> bool {
    if text.len() <= max {
        return false;
    }
    if tail {
        let mut start = text.len() - max;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text.drain(..start);
    } else {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    true
}

fn limit(asked: Option<u32>, default: u32, max: u32) -> Result<usize, String> {
    crate::api::limit(asked, default, max)
        .map(|n| n as usize)
        .map_err(tool_error)
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    Connected,
    Disconnected,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListHostsArgs {
    /// Only hosts whose hostname or id contains this (any case).
    pub name: Option<String>,
    /// Only hosts with this label, `key=value`.
    pub label: Option<String>,
    /// Only connected or only disconnected hosts.
    pub state: Option<HostState>,
    /// At most this many (default 100, at most 1000; fewer past 200 KiB).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HostRow {
    pub id: String,
    pub hostname: String,
    pub connected: bool,
    /// Last time the hub heard from the agent, unix ms.
    pub last_seen: Option<i64>,
    pub agent_version: String,
    pub simulated: bool,
    pub os: String,
    pub labels: BTreeMap<String, String>,
    pub containers: usize,
    pub units: usize,
    pub ports: usize,
    /// The latest sample, in brief (`get_host` and `query_metrics` have the rest).
    pub resources: Option<Brief>,
}

/// A host's latest numbers, in a line.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Brief {
    /// When it was taken, unix ms.
    pub ts_ms: i64,
    pub cpu_pct: f32,
    pub load1: f32,
    pub mem_used: u64,
    pub mem_total: u64,
    pub uptime_secs: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HostList {
    pub hosts: Vec<HostRow>,
    /// Hosts that matched, before the limit.
    pub matched: usize,
    /// Whether `hosts` holds fewer than matched.
    pub truncated: bool,
}

impl HostList {
    /// The answer for `hosts`, given their JSON texts joined by commas.
    pub(super) fn answer(hosts: Vec<Value>, rows: String, matched: usize) -> Answer {
        let truncated = matched > hosts.len();
        // Fields in the order `Value` prints them (by name).
        let text = format!(r#"{{"hosts":[{rows}],"matched":{matched},"truncated":{truncated}}}"#);
        let value = serde_json::json!({"hosts": hosts, "matched": matched, "truncated": truncated});
        Answer {
            value,
            text,
            readable: None,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetHostArgs {
    /// Node id (`n_…`) or hostname.
    pub node: String,
    /// Include the top processes (default true).
    pub include_processes: Option<bool>,
    /// Include listening ports (default true).
    pub include_ports: Option<bool>,
    /// The host as it was at this moment (from the state journal) instead
    /// of now: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (UTC), unix ms, or a span
    /// back (`2h`, `30m ago`). The past has no processes or latest sample.
    pub at: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatChangedArgs {
    /// From this moment: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (UTC), unix ms,
    /// or a span back from now (`2h`, `30m ago`).
    pub from: String,
    /// Up to this moment (same forms; default now). At most 7 days after `from`.
    pub to: Option<String>,
    /// Only this host (node id or hostname); default every host the token sees.
    pub host: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WhatChangedOut {
    /// The range, unix ms.
    pub from: i64,
    pub to: i64,
    /// Per host with changes: `{node_id, hostname, since, subjects: [{subject,
    /// collection, name, summary, transitions: [{ts, change}]}]}`.
    pub nodes: Vec<Value>,
    /// Whether hosts were left out to stay under the size cap.
    pub truncated: bool,
}

/// A moment as an assistant writes it (see [`crate::journal::parse_moment`]),
/// not in the future.
fn moment(name: &str, s: &str) -> Result<i64, String> {
    let now = crate::store::now_ms();
    let t =
        crate::journal::parse_moment(s, now).map_err(|e| format!("bad request: {name}: {e}"))?;
    if t > now + 60_000 {
        return Err(format!(
            "bad request: {name}: {} UTC is in the future",
            crate::api::past::utc(t)
        ));
    }
    Ok(t)
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HostOut {
    /// The host's twin, as `GET /api/v1/nodes/{id}` answers it.
    pub host: Value,
    /// Parts left out (asked for, or to stay under the size cap).
    pub omitted: Vec<String>,
    /// Whether parts were left out to stay under the size cap.
    pub truncated: bool,
}

impl HostOut {
    /// The answer, given `host`'s JSON text.
    pub(super) fn answer(self, host_text: String) -> Answer {
        let HostOut {
            host,
            omitted,
            truncated,
        } = self;
        let omitted = Value::from(omitted);
        // Fields in the order `Value` prints them (by name).
        let text = format!(r#"{{"host":{host_text},"omitted":{omitted},"truncated":{truncated}}}"#);
        let value = serde_json::json!({"host": host, "omitted": omitted, "truncated": truncated});
        Answer {
            value,
            text,
            readable: None,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetCommandArgs {
    /// Command id (`cmd_…`), as `run_command` answers.
    pub id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CommandOut {
    /// The command's record: status, exit code, who ran it, when.
    pub command: Value,
    /// Its output, stdout and stderr in the order they came.
    pub output: String,
    /// Whether `output` lost its beginning to the size cap (or the hub's).
    pub truncated: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListEventsArgs {
    /// Only this host (node id or hostname).
    pub node: Option<String>,
    /// Only events whose kind starts with this (`container.`, `unit.failed`, `agent.`).
    pub kind: Option<String>,
    /// Only events at or after this time, unix ms.
    pub since: Option<i64>,
    /// Only events before this time, unix ms (for paging back).
    pub before: Option<i64>,
    /// At most this many, newest first (default 50, at most 500).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EventList {
    /// Newest first: `{node_id, ts, kind, target, detail}`.
    pub events: Vec<Value>,
    /// Whether more matched than were returned.
    pub truncated: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryMetricsArgs {
    /// Node id or hostname.
    pub node: String,
    /// Series names (`cpu`, `mem_used`, `load1`, `disk:/`, `net_rx:eth0`, …; default cpu and mem_used).
    pub series: Option<Vec<String>>,
    /// Start, unix ms (default: `minutes` before `to`).
    pub from: Option<i64>,
    /// End, unix ms (default now).
    pub to: Option<i64>,
    /// With no `from`: this many minutes back (default 60).
    #[schemars(range(min = 1))]
    pub minutes: Option<u32>,
    /// `raw`, `1m`, `15m`, `1h` or `auto` (default): the finest that fits `max_points`.
    pub resolution: Option<String>,
    /// Points per series (default 120, at most 500).
    #[schemars(range(min = 1, max = 500))]
    pub max_points: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Summary {
    pub min: Option<f64>,
    pub avg: Option<f64>,
    pub max: Option<f64>,
    pub last: Option<f64>,
    /// Points in the range (before any thinning).
    pub points: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SeriesOut {
    pub name: String,
    pub summary: Summary,
    /// `[ts_ms, min, avg, max]`, oldest first.
    pub points: Vec<[f64; 4]>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MetricsOut {
    pub node: String,
    /// The resolution that answered: `raw`, `1m`, `15m` or `1h`.
    pub resolution: String,
    pub from: i64,
    pub to: i64,
    pub series: Vec<SeriesOut>,
    /// Whether points were thinned to `max_points`.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertsShow {
    Active,
    All,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListAlertsArgs {
    /// `active` (pending and firing; the default) or `all`.
    pub show: Option<AlertsShow>,
    /// At most this many, newest first (default 100, at most 500).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AlertList {
    pub alerts: Vec<Value>,
    /// Whether there may be more than were returned.
    pub truncated: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopologyArgs {
    /// Only elements of this host (node id or hostname) and what links to them.
    pub node: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TopologyOut {
    /// Internet, gateways, hosts, containers, units, ports, routes.
    pub nodes: Vec<Value>,
    pub edges: Vec<Value>,
    /// Whether elements were left out to stay under the caps.
    pub truncated: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpactArgs {
    /// An element's id, as in `get_topology` (`host:NODE`, `container:NODE:ID`, …).
    pub id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ImpactOut {
    /// What depends on the element: elements, routes, public names.
    pub impact: Value,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileHistoryArgs {
    /// Node id or hostname.
    pub node: String,
    /// The watched file's absolute path.
    pub path: String,
    /// At most this many versions, newest first (default 20, at most 200).
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FileHistoryOut {
    /// Versions, newest first: hash, time, risk, why.
    pub versions: Vec<Value>,
    pub truncated: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileDiffArgs {
    /// Node id or hostname.
    pub node: String,
    /// The watched file's absolute path.
    pub path: String,
    /// The older version's sha256 or a prefix of 7+ digits (default: the one before `to`).
    pub from: Option<String>,
    /// The newer version's sha256 or prefix (default: the newest).
    pub to: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FileDiffOut {
    pub path: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// A unified diff; secret values appear as `«redacted:…»`.
    pub diff: String,
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FindKind {
    Host,
    Container,
    Unit,
    Port,
    Route,
    File,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindArgs {
    /// Text to look for (any case): a name, an image, a port number, a domain, a path.
    #[schemars(length(min = 1, max = 200))]
    pub query: String,
    /// Only these kinds (default all).
    pub kinds: Option<Vec<FindKind>>,
    /// Only this host (node id or hostname).
    pub node: Option<String>,
    /// At most this many (default 50, at most 500).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Found {
    pub node: String,
    pub hostname: String,
    pub kind: FindKind,
    /// The element's name: container or unit name, `tcp/443`, a route's host and path, a file's path.
    pub name: String,
    /// A short description: image and state, unit state, process, upstream, file state.
    pub detail: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FindOut {
    pub results: Vec<Found>,
    /// Whether more matched than were returned.
    pub truncated: bool,
}

#[tool_router(router = read_tools, vis = "pub(crate)")]
impl McpServer {
    /// The fleet: every host the token may see, with its counts and latest sample.
    #[tool(
        annotations(read_only_hint = true, open_world_hint = false),
        output_schema = schema_for_output::<HostList>()
    )]
    async fn list_hosts(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<ListHostsArgs>,
    ) -> Result<CallToolResult, String> {
        allowed(&c.who, "GET", "/api/v1/nodes")?;
        let max = limit(a.limit, 100, 1000)?;
        let name = a.name.as_deref().map(str::to_lowercase);
        let label = match a.label.as_deref() {
            Some(l) => Some(
                l.split_once('=')
                    .ok_or("bad request: label must be key=value")?,
            ),
            None => None,
        };
        // Each row is printed once: into the text answer, whose length is
        // what the byte cap counts.
        let mut hosts = Vec::new();
        let mut rows = Vec::new();
        let mut matched = 0;
        let mut bytes = 0;
        self.hub.twin.for_each(|n| {
            let labels = &n.state.host.labels;
            let keep = c.who.sees(labels)
                && name.as_ref().is_none_or(|s| {
                    n.state.host.hostname.to_lowercase().contains(s) || n.id.contains(s)
                })
                && label.is_none_or(|(k, v)| labels.get(k).is_some_and(|l| l == v))
                && a.state
                    .is_none_or(|s| (s == HostState::Connected) == n.connected);
            if !keep {
                return;
            }
            matched += 1;
            if hosts.len() < max && bytes < MAX_LIST_BYTES {
                let s = NodeSummary::of(n);
                let row = HostRow {
                    id: s.id,
                    hostname: s.hostname,
                    connected: s.connected,
                    last_seen: s.last_seen,
                    agent_version: s.agent_version,
                    simulated: s.simulated,
                    os: s.os,
                    labels: labels.clone(),
                    containers: s.containers,
                    units: s.units,
                    ports: s.ports,
                    resources: s.resources.as_ref().map(|r| Brief {
                        ts_ms: r.ts_ms,
                        cpu_pct: r.cpu_pct,
                        load1: r.load1,
                        mem_used: r.mem_used,
                        mem_total: r.mem_total,
                        uptime_secs: r.uptime_secs,
                    }),
                };
                let row = to_value(&row);
                if !rows.is_empty() {
                    rows.push(b',');
                }
                let before = rows.len();
                // Writing JSON into memory cannot fail.
                let _ = serde_json::to_writer(&mut rows, &row);
                bytes += rows.len() - before;
                hosts.push(row);
            }
        });
        let rows = String::from_utf8(rows).unwrap_or_default();
        Ok(HostList::answer(hosts, rows, matched).result())
    }

    /// One host's whole twin: host facts, containers, units, ports, processes,
    /// mounts, interfaces, disks, watched files, routes, latest sample, policy.
    #[tool(
        annotations(read_only_hint = true, open_world_hint = false),
        output_schema = schema_for_output::<HostOut>()
    )]
    async fn get_host(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<GetHostArgs>,
    ) -> Result<CallToolResult, String> {
        let (processes, ports) = (
            a.include_processes.unwrap_or(true),
            a.include_ports.unwrap_or(true),
        );
        let Some(at) = a.at.as_deref() else {
            return host_out(&self.hub, &c.who, &a.node, processes, ports).map(Answer::result);
        };
        allowed(&c.who, "GET", "/api/v1/nodes/{id}")?;
        let id = resolve(&self.hub, &c.who, &a.node)?;
        let at = moment("at", at)?;
        let then = crate::api::past::node_at(&self.hub, &id, at)
            .await
            .map_err(tool_error)?;
        Ok(capped(to_value(&then), processes, ports).result())
    }

    /// What changed between two moments, per host and subject, each with
    /// every step: `container web: recreated, image nginx:1.25 → nginx:1.27`,
    /// `port tcp/0.0.0.0:8443: opened by nginx`, `unit backup.service:
    /// active → failed`, `file /etc/nginx/nginx.conf: version changed`.
    /// The first question after an outage: ask from a while before it.
    #[tool(
        annotations(read_only_hint = true, open_world_hint = false),
        output_schema = schema_for_output::<WhatChangedOut>()
    )]
    async fn what_changed(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<WhatChangedArgs>,
    ) -> Result<CallToolResult, String> {
        allowed(&c.who, "GET", "/api/v1/changes")?;
        let node = match a.host.as_deref() {
            Some(h) => Some(resolve(&self.hub, &c.who, h)?),
            None => None,
        };
        let from = moment("from", &a.from)?;
        let to = match a.to.as_deref() {
            Some(to) => Some(moment("to", to)?.to_string()),
            None => None,
        };
        let axum::Json(mut list) = crate::api::past::fleet_changes(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Query(crate::api::past::FleetRange {
                from: from.to_string(),
                to,
                node,
            }),
        )
        .await
        .map_err(tool_error)?;
        Ok(changes_out(&mut list).result())
    }

    /// A command's record and output (the end of it, when long).
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_command(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<GetCommandArgs>,
    ) -> Result<Json<CommandOut>, String> {
        allowed(&c.who, "GET", "/api/v1/commands/{id}")?;
        let axum::Json(found) = crate::api::commands::get_one(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Path(a.id.chars().take(100).collect()),
        )
        .await
        .map_err(tool_error)?;
        Ok(Json(command_out(to_value(&found.record), &found.output)))
    }

    /// The event timeline, newest first: containers started and died, units
    /// failed, ports opened and closed, agents connected and disconnected.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn list_events(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<ListEventsArgs>,
    ) -> Result<Json<EventList>, String> {
        allowed(&c.who, "GET", "/api/v1/events")?;
        let max = limit(a.limit, 50, 500)?;
        let node = match a.node.as_deref() {
            Some(n) => Some(resolve(&self.hub, &c.who, n)?),
            None => None,
        };
        // Filters apply after the page is read: read a few pages' worth.
        let page = match a.kind.is_some() || c.who.groups.is_some() {
            true => 2000,
            false => max as i64 + 1,
        };
        let events = self
            .hub
            .store
            .events(node.as_deref(), a.before.unwrap_or(i64::MAX), page)
            .await
            .map_err(|e| tool_error(ApiError::Internal(e)))?;
        let mut kept: Vec<Value> = events
            .iter()
            .filter(|e| a.since.is_none_or(|s| e.ts >= s))
            .filter(|e| a.kind.as_deref().is_none_or(|k| e.kind.starts_with(k)))
            .filter(|e| {
                self.hub
                    .twin
                    .check(&e.node_id, |n| c.who.sees(&n.state.host.labels))
            })
            .take(max + 1)
            .map(to_value)
            .collect();
        let truncated = kept.len() > max;
        kept.truncate(max);
        Ok(Json(EventList {
            events: kept,
            truncated,
        }))
    }

    /// A host's metric history over a time range: a summary (min, avg, max,
    /// last) per series and at most `max_points` points.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn query_metrics(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<QueryMetricsArgs>,
    ) -> Result<Json<MetricsOut>, String> {
        allowed(&c.who, "GET", "/api/v1/nodes/{id}/metrics")?;
        let id = resolve(&self.hub, &c.who, &a.node)?;
        let max_points = a.max_points.unwrap_or(120);
        if !(1..=MAX_POINTS).contains(&max_points) {
            return Err(format!(
                "bad request: max_points must be between 1 and {MAX_POINTS}"
            ));
        }
        let series = a
            .series
            .unwrap_or_else(|| vec!["cpu".into(), "mem_used".into()]);
        if series.is_empty() || series.len() > MAX_SERIES {
            return Err(format!(
                "bad request: name between 1 and {MAX_SERIES} series"
            ));
        }
        if series.iter().any(|s| s.contains(',') || s.len() > 200) {
            return Err("bad request: a series name has no commas and at most 200 bytes".into());
        }
        let to = a.to.unwrap_or_else(crate::store::now_ms);
        let minutes = i64::from(a.minutes.unwrap_or(60).max(1));
        let from = a
            .from
            .unwrap_or_else(|| to.saturating_sub(minutes.saturating_mul(60_000)));
        if a.resolution.as_deref() == Some("raw") && to.saturating_sub(from) > MAX_RAW_RANGE_MS {
            return Err(
                "bad request: raw points cover at most a day; use resolution auto, 1m, 15m or 1h"
                    .into(),
            );
        }
        let axum::Json(range) = crate::api::history::range(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Path(id),
            Query(crate::api::history::RangeQuery {
                series: Some(series.join(",")),
                from: Some(from),
                to: Some(to),
                resolution: a.resolution,
                max_points: Some(u64::from(max_points)),
            }),
        )
        .await
        .map_err(tool_error)?;
        let mut truncated = false;
        let series = range
            .series
            .into_iter()
            .map(|s| {
                let (points, thinned) = thin(s.points.clone(), max_points as usize);
                truncated |= thinned;
                SeriesOut {
                    name: s.name,
                    summary: summarize(&s.points),
                    points,
                }
            })
            .collect();
        Ok(Json(MetricsOut {
            node: range.node,
            resolution: range.resolution,
            from: range.from,
            to: range.to,
            series,
            truncated,
        }))
    }

    /// Alerts of the hosts the token may see, newest first.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn list_alerts(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<ListAlertsArgs>,
    ) -> Result<Json<AlertList>, String> {
        allowed(&c.who, "GET", "/api/v1/alerts")?;
        let max = limit(a.limit, 100, 500)?;
        let show = match a.show {
            Some(AlertsShow::All) => crate::api::alerts::Show::All,
            _ => crate::api::alerts::Show::Active,
        };
        let axum::Json(alerts) = crate::api::alerts::list(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Query(crate::api::alerts::AlertsQuery {
                show: Some(show),
                limit: Some(max as u32 + 1),
            }),
        )
        .await
        .map_err(tool_error)?;
        let mut alerts: Vec<Value> = alerts.iter().map(to_value).collect();
        let truncated = alerts.len() > max;
        alerts.truncate(max);
        Ok(Json(AlertList { alerts, truncated }))
    }

    /// The fleet as a graph: internet → gateway → proxy → route → container
    /// or port → host, with units; edges carry load where known.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_topology(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<TopologyArgs>,
    ) -> Result<Json<TopologyOut>, String> {
        allowed(&c.who, "GET", "/api/v1/topology")?;
        let node = match a.node.as_deref() {
            Some(n) => Some(resolve(&self.hub, &c.who, n)?),
            None => None,
        };
        let graph = crate::api::topology::graph(&self.hub, &c.who);
        let graph = to_value(&graph);
        let mut nodes: Vec<Value> = graph["nodes"].as_array().cloned().unwrap_or_default();
        let mut edges: Vec<Value> = graph["edges"].as_array().cloned().unwrap_or_default();
        if let Some(node) = node {
            // The host's own elements, and whatever links to them.
            let own: std::collections::HashSet<String> = nodes
                .iter()
                .filter(|n| n["node_id"].as_str() == Some(node.as_str()))
                .filter_map(|n| n["id"].as_str().map(String::from))
                .collect();
            let end = |e: &Value, k: &str| e[k].as_str().unwrap_or_default().to_string();
            edges.retain(|e| own.contains(&end(e, "from")) || own.contains(&end(e, "to")));
            let keep: std::collections::HashSet<String> = edges
                .iter()
                .flat_map(|e| [end(e, "from"), end(e, "to")])
                .chain(own)
                .collect();
            nodes.retain(|n| keep.contains(n["id"].as_str().unwrap_or_default()));
        }
        let truncated = nodes.len() > MAX_GRAPH_NODES || edges.len() > MAX_GRAPH_EDGES;
        nodes.truncate(MAX_GRAPH_NODES);
        edges.truncate(MAX_GRAPH_EDGES);
        Ok(Json(TopologyOut {
            nodes,
            edges,
            truncated,
        }))
    }

    /// What stops working if one element of the topology goes down.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn impact(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<ImpactArgs>,
    ) -> Result<Json<ImpactOut>, String> {
        allowed(&c.who, "GET", "/api/v1/topology/impact")?;
        let axum::Json(impact) = crate::api::topology::impact(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Query(crate::api::topology::ImpactQuery {
                id: a.id.chars().take(300).collect(),
            }),
        )
        .await
        .map_err(tool_error)?;
        Ok(Json(ImpactOut {
            impact: to_value(&impact),
        }))
    }

    /// A watched file's versions, newest first: hash, time, risk and why.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn file_history(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<FileHistoryArgs>,
    ) -> Result<Json<FileHistoryOut>, String> {
        allowed(&c.who, "GET", "/api/v1/nodes/{id}/files/history")?;
        let id = resolve(&self.hub, &c.who, &a.node)?;
        let max = limit(a.limit, 20, 200)?;
        let axum::Json(versions) = crate::api::files::history(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Path(id),
            Query(crate::api::files::HistoryQuery {
                path: a.path,
                limit: Some(max as u32 + 1),
            }),
        )
        .await
        .map_err(tool_error)?;
        let mut versions: Vec<Value> = versions.iter().map(to_value).collect();
        let truncated = versions.len() > max;
        versions.truncate(max);
        Ok(Json(FileHistoryOut {
            versions,
            truncated,
        }))
    }

    /// What changed between two versions of a watched file (a unified diff;
    /// needs the operator role, as the REST route does).
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn file_diff(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<FileDiffArgs>,
    ) -> Result<Json<FileDiffOut>, String> {
        allowed(&c.who, "GET", "/api/v1/nodes/{id}/files/diff")?;
        let id = resolve(&self.hub, &c.who, &a.node)?;
        let axum::Json(diff) = crate::api::files::diff(
            State(self.hub.clone()),
            Auth(c.who.clone()),
            Path(id),
            Query(crate::api::files::DiffQuery {
                path: a.path,
                from: a.from,
                to: a.to,
            }),
        )
        .await
        .map_err(tool_error)?;
        let mut text = diff.diff;
        let truncated = cut(&mut text, MAX_TEXT_BYTES, false);
        Ok(Json(FileDiffOut {
            path: diff.path,
            from: diff.from,
            to: diff.to,
            diff: text,
            truncated,
        }))
    }

    /// Search the fleet: hosts, containers (name, image), units, listening
    /// ports (number, process), proxy routes (domain, upstream), watched files.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn find(
        &self,
        Extension(c): Extension<Caller>,
        Parameters(a): Parameters<FindArgs>,
    ) -> Result<Json<FindOut>, String> {
        allowed(&c.who, "GET", "/api/v1/nodes/{id}")?;
        let max = limit(a.limit, 50, 500)?;
        let query = a.query.trim().to_lowercase();
        if query.is_empty() || query.len() > 200 {
            return Err("bad request: query must have 1 to 200 bytes".into());
        }
        let node = match a.node.as_deref() {
            Some(n) => Some(resolve(&self.hub, &c.who, n)?),
            None => None,
        };
        let kinds = a.kinds.unwrap_or_default();
        let want = |k: FindKind| kinds.is_empty() || kinds.contains(&k);
        let hit = |fields: &[&str]| fields.iter().any(|f| f.to_lowercase().contains(&query));
        let mut results = Vec::new();
        let mut truncated = false;
        self.hub.twin.for_each(|n| {
            if truncated
                || !c.who.sees(&n.state.host.labels)
                || node.as_ref().is_some_and(|id| *id != n.id)
            {
                return;
            }
            let s = &n.state;
            let mut push = |kind: FindKind, name: String, detail: String| {
                if results.len() >= max {
                    truncated = true;
                    return;
                }
                results.push(Found {
                    node: n.id.clone(),
                    hostname: s.host.hostname.clone(),
                    kind,
                    name,
                    detail,
                });
            };
            if want(FindKind::Host) && hit(&[&s.host.hostname, &n.id, &s.host.os]) {
                push(
                    FindKind::Host,
                    s.host.hostname.clone(),
                    s.host.os.to_string(),
                );
            }
            if want(FindKind::Container) {
                for ct in s.containers.values() {
                    if hit(&[&ct.name, &ct.image]) {
                        push(
                            FindKind::Container,
                            ct.name.to_string(),
                            format!("{} ({})", ct.image, ct.state),
                        );
                    }
                }
            }
            if want(FindKind::Unit) {
                for u in s.units.values() {
                    if hit(&[&u.name, &u.description]) {
                        push(
                            FindKind::Unit,
                            u.name.to_string(),
                            format!("{} ({}/{})", u.description, u.active_state, u.sub_state),
                        );
                    }
                }
            }
            if want(FindKind::Port) {
                for p in s.ports.values() {
                    let number = p.port.to_string();
                    let process = p.process.clone().unwrap_or_default();
                    if hit(&[&number, &process]) {
                        push(
                            FindKind::Port,
                            format!("{}/{}", p.protocol, p.port),
                            format!("{}:{} {process}", p.address, p.port),
                        );
                    }
                }
            }
            if want(FindKind::Route) {
                for r in s.routes.values() {
                    if hit(&[&r.host, &r.path, &r.upstream]) {
                        push(
                            FindKind::Route,
                            format!("{}{}", r.host, r.path),
                            format!("→ {} ({})", r.upstream, r.instance),
                        );
                    }
                }
            }
            if want(FindKind::File) {
                for f in s.files.values() {
                    if hit(&[&f.path]) {
                        push(
                            FindKind::File,
                            f.path.clone(),
                            to_value(&f.state).to_string(),
                        );
                    }
                }
            }
        });
        Ok(Json(FindOut { results, truncated }))
    }
}

/// A change list as `what_changed` answers it: the structured list (hosts
/// dropped from the end past [`MAX_LIST_BYTES`], saying so), its JSON as
/// the first text content and the same list as lines to read as the second.
pub(super) fn changes_out(list: &mut crate::api::past::FleetChanges) -> Answer {
    let mut truncated = false;
    let mut nodes: Vec<Value> = list.nodes.iter().map(to_value).collect();
    let mut size: usize = nodes.iter().map(|n| n.to_string().len()).sum();
    while size > MAX_LIST_BYTES {
        let Some(last) = nodes.pop() else { break };
        size -= last.to_string().len();
        list.nodes.pop();
        truncated = true;
    }
    let value = to_value(&WhatChangedOut {
        from: list.from,
        to: list.to,
        nodes,
        truncated,
    });
    let mut readable = list.text();
    if truncated {
        readable.push_str("\n(more hosts changed: ask for one host or a shorter range)\n");
    }
    Answer {
        text: value.to_string(),
        value,
        readable: Some(readable),
    }
}

/// A host's twin as `get_host` (and the `twinbay://hosts/{id}` resource)
/// answers it: scoped, capped, saying what it left out. The twin is
/// printed once (again only when the cap cuts a part): that text is both
/// what the cap measures and the answer's text.
pub(super) fn host_out(
    hub: &HubState,
    who: &Principal,
    node: &str,
    processes: bool,
    ports: bool,
) -> Result<Answer, String> {
    allowed(who, "GET", "/api/v1/nodes/{id}")?;
    let id = resolve(hub, who, node)?;
    let view = hub
        .twin
        .view(&id)
        .ok_or_else(|| format!("not found: no node {id:?}"))?;
    Ok(capped(to_value(&view), processes, ports))
}

/// A host's twin (now or then) with the parts not asked for left out, and
/// more until it fits [`MAX_HOST_BYTES`].
fn capped(mut host: Value, processes: bool, ports: bool) -> Answer {
    let mut omitted = Vec::new();
    if !processes {
        host["processes"] = Value::Object(Default::default());
        omitted.push("processes".to_string());
    }
    if !ports {
        host["ports"] = Value::Object(Default::default());
        omitted.push("ports".to_string());
    }
    let mut truncated = false;
    let mut text = host.to_string();
    for part in [
        "processes",
        "ports",
        "files",
        "routes",
        "units",
        "containers",
    ] {
        if text.len() <= MAX_HOST_BYTES {
            break;
        }
        if !omitted.iter().any(|o| o == part) {
            host[part] = Value::Object(Default::default());
            omitted.push(part.to_string());
            truncated = true;
            text = host.to_string();
        }
    }
    HostOut {
        host,
        omitted,
        truncated,
    }
    .answer(text)
}

/// A command's record and output pieces as one capped answer.
pub(super) fn command_out(command: Value, output: &[crate::store::Output]) -> CommandOut {
    let mut text: String = output.iter().map(|o| o.data.as_str()).collect();
    let mut truncated = command["truncated"].as_bool().unwrap_or(false);
    truncated |= cut(&mut text, MAX_TEXT_BYTES, true);
    CommandOut {
        command,
        output: text,
        truncated,
    }
}

/// At most `max` points, evenly spaced (the last one kept).
pub fn thin(points: Vec<[f64; 4]>, max: usize) -> (Vec<[f64; 4]>, bool) {
    if points.len() <= max || max == 0 {
        return (points, false);
    }
    let n = points.len();
    let kept = (0..max)
        .map(|i| points[(i * (n - 1)) / (max - 1).max(1)])
        .collect();
    (kept, true)
}

pub fn summarize(points: &[[f64; 4]]) -> Summary {
    let fold = |f: fn(f64, f64) -> f64, i: usize| points.iter().map(|p| p[i]).reduce(f);
    let avg = match points.len() {
        0 => None,
        n => Some(points.iter().map(|p| p[2]).sum::<f64>() / n as f64),
    };
    Summary {
        min: fold(f64::min, 1),
        avg,
        max: fold(f64::max, 3),
        last: points.last().map(|p| p[2]),
        points: points.len(),
    }
}
