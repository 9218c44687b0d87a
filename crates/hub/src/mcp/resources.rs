//! Resources: the twin of each host the caller may see
//! (`twinbay://hosts/{id}`, as `get_host` answers it) and the fleet's recent
//! events (`twinbay://events/recent`). Same scoping, caps and audit as the
//! tools. A host's twin can be subscribed to ([`super::watch`]).

use rmcp::ErrorData;
use rmcp::model::{Resource, ResourceContents, ResourceTemplate};
use serde_json::Value;

use super::Caller;
use super::read::{allowed, host_out, resolve};
use crate::HubState;

pub const HOST_PREFIX: &str = "twinbay://hosts/";
pub const RECENT_EVENTS: &str = "twinbay://events/recent";
/// Hosts listed as resources (the template reaches every one).
const MAX_LISTED: usize = 200;
/// Events in `twinbay://events/recent`.
const RECENT: usize = 100;

pub fn list(hub: &HubState, caller: &Caller) -> Vec<Resource> {
    let mut out = vec![
        Resource::new(RECENT_EVENTS, "recent events")
            .with_description("The fleet's last 100 events, newest first")
            .with_mime_type("application/json"),
    ];
    hub.twin.for_each(|n| {
        if out.len() <= MAX_LISTED && caller.who.sees(&n.state.host.labels) {
            out.push(
                Resource::new(
                    format!("{HOST_PREFIX}{}", n.id),
                    n.state.host.hostname.clone(),
                )
                .with_description("The host's whole twin")
                .with_mime_type("application/json"),
            );
        }
    });
    out
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("{HOST_PREFIX}{{id}}"), "host")
            .with_description("A host's whole twin, by node id or hostname")
            .with_mime_type("application/json"),
    ]
}

/// The node a host resource names, among those `caller` sees (for a
/// subscription), or why not.
pub fn host_of(hub: &HubState, caller: &Caller, uri: &str) -> Result<String, ErrorData> {
    let not_found =
        |e: String| ErrorData::resource_not_found(e, Some(serde_json::json!({"uri": uri})));
    let Some(node) = uri.strip_prefix(HOST_PREFIX) else {
        return Err(not_found(format!(
            "only {HOST_PREFIX}{{id}} can be subscribed to, not {:?}",
            uri.chars().take(200).collect::<String>()
        )));
    };
    allowed(&caller.who, "GET", "/api/v1/nodes/{id}")
        .map_err(|e| ErrorData::invalid_request(e, None))?;
    resolve(hub, &caller.who, node).map_err(not_found)
}

/// The contents of `uri`, or why not.
pub async fn read(
    hub: &HubState,
    caller: &Caller,
    uri: &str,
) -> Result<ResourceContents, ErrorData> {
    let json =
        |v: &Value| ResourceContents::text(v.to_string(), uri).with_mime_type("application/json");
    if let Some(node) = uri.strip_prefix(HOST_PREFIX) {
        let host = host_out(hub, &caller.who, node, true, true)
            .map_err(|e| ErrorData::resource_not_found(e, Some(serde_json::json!({"uri": uri}))))?;
        return Ok(ResourceContents::text(host.text, uri).with_mime_type("application/json"));
    }
    if uri == RECENT_EVENTS {
        allowed(&caller.who, "GET", "/api/v1/events")
            .map_err(|e| ErrorData::invalid_request(e, None))?;
        let events = hub
            .store
            .events(None, i64::MAX, 2000)
            .await
            .map_err(|_| ErrorData::internal_error("internal error", None))?;
        let events: Vec<Value> = events
            .iter()
            .filter(|e| {
                hub.twin
                    .check(&e.node_id, |n| caller.who.sees(&n.state.host.labels))
            })
            .take(RECENT)
            .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
            .collect();
        return Ok(json(&serde_json::json!({ "events": events })));
    }
    Err(ErrorData::resource_not_found(
        format!(
            "no resource {:?}",
            uri.chars().take(200).collect::<String>()
        ),
        None,
    ))
}
