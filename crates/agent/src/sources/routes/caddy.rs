//! Caddy, through its admin API (`GET /config/`): the running configuration
//! as JSON, whatever wrote it (Caddyfile, JSON, API calls).
//!
//! [`routes`] walks `apps.http.servers.*.routes`, recursing into `subroute`
//! handlers (the Caddyfile adapter nests each site in one), carrying the
//! `host` and `path` matchers down to each `reverse_proxy` handler. A route
//! with several matcher sets gives one route per set; each host × path of a
//! set is one route.
//!
//! TLS: a route is TLS when its server has `tls_connection_policies`, or
//! when Caddy's automatic HTTPS covers it: it has a host matcher, the server
//! listens on some port other than the HTTP port (`apps.http.http_port`,
//! default 80), and `automatic_https` is neither disabled nor skips the host.

use serde_json::Value;
use twinbay_proto::model::{ProxyProvider, Route};

use super::Found;

const MAX_DEPTH: usize = 32;

/// The routes of a `/config/` answer; an unexpected shape is an error.
pub fn routes(config: &Value, instance: &str) -> Result<Vec<Found>, String> {
    let mut out = Vec::new();
    if config.is_null() {
        return Ok(out); // an empty Caddy
    }
    let Some(http) = config.get("apps").and_then(|a| a.get("http")) else {
        return Ok(out);
    };
    let http_port = match http.get("http_port") {
        None => 80,
        Some(p) => p.as_u64().ok_or("apps.http.http_port is not a number")?,
    };
    let Some(servers) = http.get("servers") else {
        return Ok(out);
    };
    let servers = servers
        .as_object()
        .ok_or("apps.http.servers is not an object")?;
    for (name, server) in servers {
        let ctx = Server::read(server, http_port).map_err(|e| format!("server {name}: {e}"))?;
        let Some(routes) = server.get("routes") else {
            continue;
        };
        let walk = Walk {
            server: &ctx,
            instance,
        };
        walk.routes(routes, &[], &[], 0, &mut out)
            .map_err(|e| format!("server {name}: {e}"))?;
    }
    Ok(out)
}

/// What decides TLS for one server.
struct Server {
    policies: bool,
    off_http_port: bool,
    auto_disabled: bool,
    skip: Vec<String>,
}

impl Server {
    fn read(server: &Value, http_port: u64) -> Result<Server, String> {
        let listen = match server.get("listen") {
            None => Vec::new(),
            Some(l) => strings(l).ok_or("listen is not a list of strings")?,
        };
        let off_http_port = listen.iter().any(|l| {
            let port = l.rsplit(':').next().unwrap_or_default();
            port.split('-').next().and_then(|p| p.parse::<u64>().ok()) != Some(http_port)
        });
        let auto = server.get("automatic_https");
        Ok(Server {
            policies: server
                .get("tls_connection_policies")
                .is_some_and(|p| !p.is_null()),
            off_http_port,
            auto_disabled: auto
                .and_then(|a| a.get("disable"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            skip: auto
                .and_then(|a| a.get("skip"))
                .and_then(strings)
                .unwrap_or_default(),
        })
    }

    fn tls(&self, host: &str) -> bool {
        self.policies
            || (!host.is_empty()
                && self.off_http_port
                && !self.auto_disabled
                && !self.skip.iter().any(|s| s == host))
    }
}

struct Walk<'a> {
    server: &'a Server,
    instance: &'a str,
}

impl Walk<'_> {
    fn routes(
        &self,
        routes: &Value,
        hosts: &[String],
        paths: &[String],
        depth: usize,
        out: &mut Vec<Found>,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("subroutes nested deeper than {MAX_DEPTH}"));
        }
        let routes = routes.as_array().ok_or("routes is not a list")?;
        for route in routes {
            // Each matcher set (they are OR-ed) narrows what the outer route matched.
            let sets: Vec<(Vec<String>, Vec<String>)> = match route.get("match") {
                None | Some(Value::Null) => vec![(hosts.to_vec(), paths.to_vec())],
                Some(m) => m
                    .as_array()
                    .ok_or("match is not a list")?
                    .iter()
                    .map(|set| {
                        let h = set.get("host").map(strings);
                        let p = set.get("path").map(strings);
                        match (h, p) {
                            (Some(None), _) | (_, Some(None)) => {
                                Err("a host or path matcher is not a list of strings")
                            }
                            (h, p) => Ok((
                                h.flatten().unwrap_or_else(|| hosts.to_vec()),
                                p.flatten().unwrap_or_else(|| paths.to_vec()),
                            )),
                        }
                    })
                    .collect::<Result<_, _>>()?,
            };
            let Some(handle) = route.get("handle") else {
                continue;
            };
            let handle = handle.as_array().ok_or("handle is not a list")?;
            for (hosts, paths) in &sets {
                for h in handle {
                    match h.get("handler").and_then(Value::as_str) {
                        Some("subroute") => {
                            if let Some(inner) = h.get("routes") {
                                self.routes(inner, hosts, paths, depth + 1, out)?;
                            }
                        }
                        Some("reverse_proxy") => self.proxy(h, hosts, paths, out)?,
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn proxy(
        &self,
        handler: &Value,
        hosts: &[String],
        paths: &[String],
        out: &mut Vec<Found>,
    ) -> Result<(), String> {
        let dials: Vec<String> = match handler.get("upstreams") {
            None | Some(Value::Null) => Vec::new(),
            Some(u) => u
                .as_array()
                .ok_or("upstreams is not a list")?
                .iter()
                .filter_map(|u| u.get("dial").and_then(Value::as_str).map(str::to_string))
                .collect(),
        };
        let upstream = match dials.is_empty() {
            // Dynamic upstreams (`dynamic_upstreams`): named by their source.
            true => "(dynamic)".to_string(),
            false => dials.join(", "),
        };
        let one = |v: &[String], default: &str| match v.is_empty() {
            true => vec![default.to_string()],
            false => v.to_vec(),
        };
        for host in one(hosts, "") {
            for path in one(paths, "/") {
                out.push(Found {
                    route: Route {
                        provider: ProxyProvider::Caddy,
                        instance: self.instance.to_string(),
                        tls: self.server.tls(&host),
                        host: host.clone(),
                        path,
                        upstream: upstream.clone(),
                        target: Default::default(),
                    },
                    dial: dials.first().cloned(),
                });
            }
        }
        Ok(())
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
#[path = "caddy_tests.rs"]
mod tests;
