//! Who may call what: one table for every API route, enforced in one place.
//!
//! [`authorize`] runs after routing, finds the route's rule by method and
//! path template, authenticates the caller and checks the role. A route
//! without a rule is refused (deny by default), and a test walks the
//! OpenAPI description against this table, so adding a route without a rule
//! fails before it ships.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::auth::authenticate;
use crate::HubState;
use crate::store::{Principal, Role};

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (it authenticates by other means, or is how one signs in).
    Public,
    /// A session or token with at least this role.
    Role(Role),
}

use Access::Public;
const VIEWER: Access = Access::Role(Role::Viewer);
const OPERATOR: Access = Access::Role(Role::Operator);
const ADMIN: Access = Access::Role(Role::Admin);

/// (method, path template, access) for every API route.
pub const RULES: &[(&str, &str, Access)] = &[
    ("POST", "/api/v1/session", Public),
    ("GET", "/api/v1/session", VIEWER),
    ("DELETE", "/api/v1/session", VIEWER),
    ("GET", "/api/v1/nodes", VIEWER),
    ("GET", "/api/v1/nodes/{id}", VIEWER),
    ("GET", "/api/v1/nodes/{id}/changes", VIEWER),
    ("GET", "/api/v1/changes", VIEWER),
    ("GET", "/api/v1/nodes/{id}/metrics", VIEWER),
    ("GET", "/api/v1/nodes/{id}/series", VIEWER),
    ("GET", "/api/v1/nodes/{id}/events", VIEWER),
    ("GET", "/api/v1/nodes/{id}/collections", VIEWER),
    ("GET", "/api/v1/events", VIEWER),
    ("GET", "/api/v1/nodes/{id}/files", VIEWER),
    ("GET", "/api/v1/nodes/{id}/files/history", VIEWER),
    // Content can hold secrets that redaction missed.
    ("GET", "/api/v1/nodes/{id}/files/diff", OPERATOR),
    ("GET", "/api/v1/files/changes", VIEWER),
    ("GET", "/api/v1/stream", VIEWER),
    ("GET", "/api/v1/hub", VIEWER),
    // The hub's own lifecycle: its log and its binary.
    ("GET", "/api/v1/hub/logs", ADMIN),
    ("POST", "/api/v1/hub/update", ADMIN),
    ("POST", "/api/v1/hub/restart", ADMIN),
    ("GET", "/api/v1/gateway", VIEWER),
    ("GET", "/api/v1/topology", VIEWER),
    ("GET", "/api/v1/topology/impact", VIEWER),
    ("GET", "/api/v1/layout", VIEWER),
    ("PUT", "/api/v1/layout", ADMIN),
    ("GET", "/api/v1/alerts", VIEWER),
    ("GET", "/api/v1/alerts/rules", VIEWER),
    ("POST", "/api/v1/alerts/rules", ADMIN),
    ("DELETE", "/api/v1/alerts/rules/{id}", ADMIN),
    ("PATCH", "/api/v1/alerts/rules/{id}", ADMIN),
    ("POST", "/api/v1/alerts/{id}/ack", OPERATOR),
    ("GET", "/api/v1/alerts/silences", VIEWER),
    ("POST", "/api/v1/alerts/silences", OPERATOR),
    ("DELETE", "/api/v1/alerts/silences/{id}", OPERATOR),
    // Channel URLs can carry tokens and name internal addresses.
    ("GET", "/api/v1/alerts/channels", ADMIN),
    ("POST", "/api/v1/alerts/channels", ADMIN),
    ("DELETE", "/api/v1/alerts/channels/{id}", ADMIN),
    ("POST", "/api/v1/alerts/channels/{id}/test", ADMIN),
    ("GET", "/api/v1/routes", VIEWER),
    // Schedules: reading is limited to targets the caller sees (inside);
    // a run's command is checked against the agent's policy with the role
    // of who saved the schedule.
    ("GET", "/api/v1/schedules", VIEWER),
    ("POST", "/api/v1/schedules", OPERATOR),
    ("GET", "/api/v1/schedules/{id}", VIEWER),
    ("PUT", "/api/v1/schedules/{id}", OPERATOR),
    ("DELETE", "/api/v1/schedules/{id}", OPERATOR),
    ("POST", "/api/v1/schedules/{id}/run", OPERATOR),
    ("GET", "/api/v1/schedules/{id}/runs", VIEWER),
    ("POST", "/api/v1/schedules/preview", VIEWER),
    ("GET", "/api/v1/openapi.json", VIEWER),
    // Commands: the verb's or action's own role is checked inside, against
    // the agent's policy; reading output needs the role the command needed.
    ("POST", "/api/v1/nodes/{id}/commands", VIEWER),
    ("GET", "/api/v1/nodes/{id}/commands", VIEWER),
    ("GET", "/api/v1/commands/{id}", VIEWER),
    ("GET", "/api/v1/commands/{id}/output", VIEWER),
    ("DELETE", "/api/v1/commands/{id}", OPERATOR),
    ("GET", "/api/v1/audit", ADMIN),
    ("GET", "/api/v1/audit/head", ADMIN),
    ("GET", "/api/v1/tokens", ADMIN),
    ("POST", "/api/v1/tokens", ADMIN),
    ("DELETE", "/api/v1/tokens/{id}", ADMIN),
    ("GET", "/api/v1/users", ADMIN),
    ("POST", "/api/v1/users", ADMIN),
    ("PATCH", "/api/v1/users/{id}", ADMIN),
    ("DELETE", "/api/v1/users/{id}", ADMIN),
    // A user's own password and sessions (API tokens are refused inside).
    ("PUT", "/api/v1/session/password", VIEWER),
    ("DELETE", "/api/v1/sessions", VIEWER),
    // Agents prove who they are inside the protocol (challenge and signature).
    ("GET", "/api/v1/agent/connect", Public),
    ("GET", "/api/v1/agent/backups/{id}", Public),
    ("GET", "/api/v1/agent/restores/{id}", Public),
    ("GET", "/api/v1/agent/releases/{id}", Public),
    // Backups: run one through the commands API (`op: backup`); a viewer
    // lists what their groups see; artifacts hold host data: operator.
    ("GET", "/api/v1/backups", VIEWER),
    ("GET", "/api/v1/backups/{id}/download", OPERATOR),
    ("POST", "/api/v1/backups/{id}/verify", OPERATOR),
    ("POST", "/api/v1/backups/prune", OPERATOR),
    // Releases: publishing changes what the fleet may run: admin.
    ("POST", "/api/v1/releases", ADMIN),
    ("GET", "/api/v1/releases", VIEWER),
    ("GET", "/api/v1/releases/{version}/{arch}", OPERATOR),
    // Rollouts update many hosts at once: admin; a viewer limited to host
    // groups reads only its hosts' rows (inside).
    ("POST", "/api/v1/rollouts", ADMIN),
    ("GET", "/api/v1/rollouts", VIEWER),
    ("GET", "/api/v1/rollouts/{id}", VIEWER),
    ("POST", "/api/v1/rollouts/{id}/pause", ADMIN),
    ("POST", "/api/v1/rollouts/{id}/resume", ADMIN),
    ("POST", "/api/v1/rollouts/{id}/abort", ADMIN),
    // Hosts over SSH: adding one logs in to it and installs an agent.
    ("GET", "/api/v1/ssh/identity", ADMIN),
    ("POST", "/api/v1/ssh/hosts", ADMIN),
    ("GET", "/api/v1/ssh/hosts", VIEWER),
    ("GET", "/api/v1/ssh/hosts/{id}", VIEWER),
    ("DELETE", "/api/v1/ssh/hosts/{id}", ADMIN),
    ("POST", "/api/v1/ssh/hosts/{id}/check", ADMIN),
];

/// Routes that change nothing although their method is not GET: a
/// read-only token may call them.
const READS_BY_POST: &[(&str, &str)] = &[("POST", "/api/v1/schedules/preview")];

/// The refusal of a read-only token's write (`None`: the request may go
/// on). A read-only API token reads what its role and host groups allow and
/// changes nothing: every method but GET, HEAD and OPTIONS is refused, here
/// for the REST API and through `mcp::read::allowed` for MCP's tools.
pub fn refuses_write(who: &Principal, method: &Method, path: &str) -> Option<ApiError> {
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || READS_BY_POST.contains(&(method.as_str(), path));
    (who.read_only && !reads).then(|| {
        ApiError::Forbidden("this API token is read-only: it may not change anything".into())
    })
}

/// The rule for a request, if the table has one (HEAD is GET).
pub fn rule(method: &Method, path: &str) -> Option<Access> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    RULES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, access)| *access)
}

/// The methods the table has for a path template (with HEAD beside GET).
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = RULES
        .iter()
        .filter(|(_, p, _)| *p == path)
        .map(|(m, _, _)| *m)
        .collect();
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    methods
}

/// The middleware: authenticate and check the role the table asks for; the
/// handler finds the caller in the request's extensions.
pub async fn authorize(State(hub): State<Arc<HubState>>, request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let Some(access) = rule(request.method(), &path) else {
        let allowed = allowed_methods(&path);
        if !allowed.is_empty() {
            return ApiError::MethodNotAllowed(
                format!("{} is not allowed here", request.method()),
                allowed.join(", "),
            )
            .into_response();
        }
        tracing::warn!(method = %request.method(), path, "route has no authorization rule; refused");
        return ApiError::Forbidden("this route has no authorization rule".into()).into_response();
    };
    let Access::Role(needed) = access else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let principal = match authenticate(&hub, &mut parts).await {
        Ok(p) => p,
        Err(e) => {
            // Counted, not logged above debug: anyone can send these.
            if matches!(e, ApiError::Unauthorized(_)) {
                hub.metrics.api_unauthorized.inc();
            }
            tracing::debug!(path, error = %e, "request refused");
            return e.into_response();
        }
    };
    if principal.role < needed {
        return ApiError::Forbidden(format!("this needs the {} role", needed.as_str()))
            .into_response();
    }
    if let Some(refused) = refuses_write(&principal, &parts.method, &path) {
        return refused.into_response();
    }
    parts.extensions.insert(principal);
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PrincipalKind;

    fn token(read_only: bool) -> Principal {
        Principal {
            kind: PrincipalKind::Token { id: 1 },
            role: Role::Admin,
            groups: None,
            read_only,
        }
    }

    #[test]
    fn a_read_only_token_reads_and_writes_nothing_whatever_its_role() {
        let (ro, rw) = (token(true), token(false));
        for (method, path) in RULES
            .iter()
            .map(|(m, p, _)| (m.parse::<Method>().unwrap(), *p))
        {
            assert!(refuses_write(&rw, &method, path).is_none());
            let refused = refuses_write(&ro, &method, path).is_some();
            let write = method != Method::GET && path != "/api/v1/schedules/preview";
            assert_eq!(refused, write, "{method} {path}");
        }
        assert!(refuses_write(&ro, &Method::HEAD, "/api/v1/nodes").is_none());
        let e = refuses_write(&ro, &Method::POST, "/api/v1/nodes/{id}/commands").unwrap();
        assert!(e.to_string().contains("read-only"), "{e}");
    }
}
