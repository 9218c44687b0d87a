//! Traefik, through its API (`--api.insecure=true` or a published `api@internal`):
//! `GET /api/http/routers` and `/api/http/services`, paged (`per_page=100`,
//! `X-Next-Page`).
//!
//! Each router's rule gives its hosts (`Host(…)`) and path prefixes
//! (`PathPrefix(…)`, `Path(…)`); every host × path is one route. The rule is
//! not evaluated: `||`, `!` and regexp matchers are read as if every named
//! host and path matched. Routers of provider `internal` (the dashboard, the
//! API) are skipped. The router's service (`name@provider`, the router's
//! provider when the name has none) gives the upstream: its load balancer's
//! first server URL. TLS: the router has a `tls` section.

use serde_json::Value;
use twinbay_proto::model::{ProxyProvider, Route};

use super::{Found, http};

/// The most pages read from one listing.
const MAX_PAGES: usize = 100;

/// Reads routers and services from the API at `base` (`http://127.0.0.1:8080`).
pub async fn fetch(base: &str) -> Result<(Vec<Value>, Vec<Value>), String> {
    let base = base.trim_end_matches('/');
    let routers = list(&format!("{base}/api/http/routers")).await?;
    let services = list(&format!("{base}/api/http/services")).await?;
    Ok((routers, services))
}

async fn list(url: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut page = 1;
    for _ in 0..MAX_PAGES {
        let (value, headers) = http::get_json(&format!("{url}?page={page}&per_page=100"))
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let Value::Array(items) = value else {
            return Err(format!("{url}: not a list"));
        };
        out.extend(items);
        let next = headers
            .get("x-next-page")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        match next {
            Some(n) if n > page => page = n,
            _ => return Ok(out),
        }
    }
    Ok(out)
}

/// The routes the routers and services describe.
pub fn routes(routers: &[Value], services: &[Value], instance: &str) -> Result<Vec<Found>, String> {
    let mut out = Vec::new();
    for r in routers {
        let field = |k: &str| r.get(k).and_then(Value::as_str);
        let name = field("name").ok_or("a router has no name")?;
        let provider = field("provider").unwrap_or_default();
        if provider == "internal" || name.ends_with("@internal") {
            continue;
        }
        let rule = field("rule").unwrap_or_default();
        let service = field("service").unwrap_or_default();
        let service = match (service.contains('@'), provider.is_empty()) {
            (true, _) | (_, true) => service.to_string(),
            (false, false) => format!("{service}@{provider}"),
        };
        let server = services
            .iter()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(&service))
            .and_then(|s| s.get("loadBalancer")?.get("servers")?.as_array()?.first())
            .and_then(|s| s.get("url")?.as_str());
        let (upstream, dial) = match server {
            Some(url) => (url.to_string(), dial_of(url)),
            None => (service.clone(), None),
        };
        let (hosts, paths) = parse_rule(rule);
        let tls = r.get("tls").is_some_and(|t| !t.is_null());
        let hosts = if hosts.is_empty() {
            vec![String::new()]
        } else {
            hosts
        };
        let paths = if paths.is_empty() {
            vec!["/".to_string()]
        } else {
            paths
        };
        for host in &hosts {
            for path in &paths {
                out.push(Found {
                    route: Route {
                        provider: ProxyProvider::Traefik,
                        instance: instance.to_string(),
                        host: host.clone(),
                        path: path.clone(),
                        upstream: upstream.clone(),
                        tls,
                        target: Default::default(),
                    },
                    dial: dial.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// `http://10.0.0.2:80/x` → `10.0.0.2:80`.
fn dial_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let (_, port) = super::target::split(authority)?;
    Some(match (port, scheme) {
        (Some(_), _) => authority.to_string(),
        (None, "https") => format!("{authority}:443"),
        (None, _) => format!("{authority}:80"),
    })
}

/// The hosts and path prefixes a rule names, in order.
pub fn parse_rule(rule: &str) -> (Vec<String>, Vec<String>) {
    let mut hosts = Vec::new();
    let mut paths = Vec::new();
    let mut rest = rule;
    while let Some(open) = rest.find('(') {
        let name = rest[..open]
            .rsplit(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default();
        let after = &rest[open + 1..];
        let into = match name {
            "Host" => &mut hosts,
            "PathPrefix" | "Path" => &mut paths,
            // A group or another matcher: look inside / past it.
            _ => {
                rest = after;
                continue;
            }
        };
        let (args, len) = arguments(after);
        into.extend(args);
        rest = &after[len..];
    }
    hosts.dedup();
    paths.dedup();
    (hosts, paths)
}

/// The quoted arguments up to the closing `)`, and how far that is.
fn arguments(text: &str) -> (Vec<String>, usize) {
    let mut args = Vec::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            ')' => return (args, i + 1),
            '`' | '"' | '\'' => {
                let mut arg = String::new();
                for (_, ch) in chars.by_ref() {
                    if ch == c {
                        break;
                    }
                    arg.push(ch);
                }
                args.push(arg);
            }
            _ => {}
        }
    }
    (args, text.len())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rules_give_hosts_and_paths() {
        assert_eq!(
            parse_rule("Host(`a.example`, `b.example`) && PathPrefix(`/x`)"),
            (
                vec!["a.example".into(), "b.example".into()],
                vec!["/x".into()]
            )
        );
        assert_eq!(
            parse_rule("Host(\"a\") || (Host(`b`) && Path(`/p`))"),
            (vec!["a".into(), "b".into()], vec!["/p".into()])
        );
        assert_eq!(parse_rule("PathPrefix(`/`)"), (vec![], vec!["/".into()]));
        assert_eq!(
            parse_rule("Host(`unterminated"),
            (vec!["unterminated".into()], vec![])
        );
        assert_eq!(parse_rule(""), (vec![], vec![]));
    }

    #[test]
    fn routers_and_services_make_routes() {
        let routers = json!([
            {"name": "api@internal", "provider": "internal", "rule": "PathPrefix(`/api`)", "service": "api@internal"},
            {"name": "web@file", "provider": "file", "rule": "Host(`w.example`) && PathPrefix(`/app`)",
             "service": "whoami", "tls": {}},
            {"name": "other@docker", "provider": "docker", "rule": "Host(`o.example`)", "service": "gone@docker"}
        ]);
        let services = json!([
            {"name": "whoami@file", "provider": "file",
             "loadBalancer": {"servers": [{"url": "http://127.0.0.1:8081"}, {"url": "http://127.0.0.1:8082"}]}}
        ]);
        let found = routes(
            routers.as_array().unwrap(),
            services.as_array().unwrap(),
            "host",
        )
        .unwrap();
        assert_eq!(found.len(), 2);
        let web = &found[0];
        assert_eq!(web.route.host, "w.example");
        assert_eq!(web.route.path, "/app");
        assert!(web.route.tls);
        assert_eq!(web.route.upstream, "http://127.0.0.1:8081");
        assert_eq!(web.dial.as_deref(), Some("127.0.0.1:8081"));
        let other = &found[1];
        assert_eq!(other.route.upstream, "gone@docker");
        assert!(!other.route.tls && other.dial.is_none());
        assert_eq!(other.route.path, "/");
    }

    #[test]
    fn a_router_without_a_name_is_an_error() {
        assert!(routes(&[json!({"rule": "Host(`a`)"})], &[], "host").is_err());
        assert!(routes(&[json!(42)], &[], "host").is_err());
    }
}
