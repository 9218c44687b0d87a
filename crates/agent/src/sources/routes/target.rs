//! What a route's upstream is on this host, from the twin alone (pure).
//!
//! `host:port` resolves, in order, to:
//! 1. a container named `host`, or whose compose service is `host`
//!    (a running one first) → [`RouteTarget::Container`];
//! 2. when `host` is this host (loopback, `0.0.0.0`, `localhost`, the
//!    hostname, an address something here listens on): a container that
//!    publishes `port` → that container; else a listening port in the
//!    twin's `ports` → [`RouteTarget::Port`]; else nothing is there →
//!    [`RouteTarget::Unknown`];
//! 3. any other name or address → [`RouteTarget::External`].
//!
//! A placeholder (`$var`, `{…}`) is [`RouteTarget::Unknown`]. The twin does
//! not carry container addresses, so an upstream written as a container's
//! bridge IP resolves as external (noted in docs/routes.md).

use std::net::IpAddr;

use twinbay_proto::model::{Container, NodeState, RouteTarget};

/// Resolves `dial` (`host:port`, as a proxy dials it) against the twin.
pub fn resolve(dial: Option<&str>, state: &NodeState) -> RouteTarget {
    // A unix socket (Caddy's `unix//run/app.sock`): no host, no port.
    let Some((host, port)) = dial.filter(|d| !d.starts_with("unix")).and_then(split) else {
        return RouteTarget::Unknown;
    };
    if host.is_empty() || host.contains(['$', '{', '}']) {
        return RouteTarget::Unknown;
    }
    if let Some(c) = by_name(host, state) {
        return container(c);
    }
    if !is_local(host, state) {
        return RouteTarget::External;
    }
    let Some(port) = port else {
        return RouteTarget::Unknown;
    };
    if let Some(c) = best(
        state
            .containers
            .values()
            .map(|c| &**c)
            .filter(|c| publishes(c, port)),
    ) {
        return container(c);
    }
    state
        .ports
        .iter()
        .filter(|(_, p)| p.port == port && p.protocol.starts_with("tcp"))
        .map(|(key, _)| RouteTarget::Port { key: key.clone() })
        .next()
        .unwrap_or(RouteTarget::Unknown)
}

/// `host:port`, `[v6]:port`, `host` → host and port.
pub fn split(dial: &str) -> Option<(&str, Option<u16>)> {
    let dial = dial.trim();
    if let Some(rest) = dial.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host, port));
    }
    match dial.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((host, _)) if host.contains(':') => Some((dial, None)),
        Some((host, port)) => Some((host, port.parse().ok())),
        None => Some((dial, None)),
    }
}

fn container(c: &Container) -> RouteTarget {
    RouteTarget::Container {
        id: c.id.clone(),
        name: c.name.to_string(),
    }
}

/// A running one first, then any (stable: the first by id).
fn best<'a>(mut candidates: impl Iterator<Item = &'a Container>) -> Option<&'a Container> {
    let mut first = None;
    for c in candidates.by_ref() {
        if c.state == "running" {
            return Some(c);
        }
        first.get_or_insert(c);
    }
    first
}

fn by_name<'a>(host: &str, state: &'a NodeState) -> Option<&'a Container> {
    let host = host.to_ascii_lowercase();
    best(state.containers.values().map(|c| &**c).filter(|c| {
        c.name.eq_ignore_ascii_case(&host)
            || c.compose_service
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(&host))
    }))
}

/// Whether `host` names this host.
fn is_local(host: &str, state: &NodeState) -> bool {
    if host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || (!state.host.hostname.is_empty() && host.eq_ignore_ascii_case(&state.host.hostname))
    {
        return true;
    }
    let Ok(ip) = host.parse::<IpAddr>() else {
        return false;
    };
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    let ip = ip.to_string();
    state.ports.values().any(|p| p.address == ip)
        || state.containers.values().flat_map(|c| &c.ports).any(|p| {
            p.split_once("->")
                .is_some_and(|(h, _)| split(h).is_some_and(|(a, _)| a == ip))
        })
}

/// Whether the container publishes host port `port` (its `ports` read
/// `0.0.0.0:8080->80/tcp`).
fn publishes(c: &Container, port: u16) -> bool {
    c.ports.iter().any(|p| {
        p.split_once("->")
            .and_then(|(host, inside)| {
                (!inside.ends_with("/udp")).then_some(())?;
                split(host)?.1
            })
            .is_some_and(|p| p == port)
    })
}

#[cfg(test)]
mod tests {
    use twinbay_proto::model::Port;

    use super::*;

    fn twin() -> NodeState {
        let mut s = NodeState::default();
        s.host.hostname = "box".into();
        let web = Container {
            id: "c1".into(),
            name: "web".into(),
            state: "running".into(),
            ports: vec!["127.0.0.1:8080->80/tcp".into()],
            compose_service: Some("frontend".into()),
            ..Default::default()
        };
        let old = Container {
            id: "c0".into(),
            name: "old".into(),
            state: "exited".into(),
            compose_service: Some("frontend".into()),
            ..Default::default()
        };
        s.containers.insert("c1".into(), web.into());
        s.containers.insert("c0".into(), old.into());
        for (addr, port) in [("0.0.0.0", 9000), ("192.168.1.5", 22)] {
            let p = Port {
                protocol: "tcp".into(),
                address: addr.into(),
                port,
                ..Default::default()
            };
            s.ports.insert(format!("tcp/{addr}:{port}"), p);
        }
        s
    }

    fn c(id: &str, name: &str) -> RouteTarget {
        RouteTarget::Container {
            id: id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn resolves_by_name_service_published_port_and_listening_port() {
        let s = twin();
        assert_eq!(resolve(Some("web:80"), &s), c("c1", "web"));
        assert_eq!(resolve(Some("frontend:80"), &s), c("c1", "web"));
        assert_eq!(resolve(Some("127.0.0.1:8080"), &s), c("c1", "web"));
        assert_eq!(resolve(Some("localhost:8080"), &s), c("c1", "web"));
        assert_eq!(resolve(Some("[::1]:8080"), &s), c("c1", "web"));
        assert_eq!(resolve(Some("box:8080"), &s), c("c1", "web"));
        let port = RouteTarget::Port {
            key: "tcp/0.0.0.0:9000".into(),
        };
        assert_eq!(resolve(Some("127.0.0.1:9000"), &s), port);
        assert_eq!(resolve(Some("192.168.1.5:9000"), &s), port);
        assert_eq!(resolve(Some("127.0.0.1:1"), &s), RouteTarget::Unknown);
        assert_eq!(resolve(Some("10.1.2.3:80"), &s), RouteTarget::External);
        assert_eq!(resolve(Some("example.org:443"), &s), RouteTarget::External);
        assert_eq!(resolve(Some("$backend:80"), &s), RouteTarget::Unknown);
        assert_eq!(resolve(None, &s), RouteTarget::Unknown);
        assert_eq!(resolve(Some(""), &s), RouteTarget::Unknown);
        assert_eq!(resolve(Some("unix//run/a.sock"), &s), RouteTarget::Unknown);
    }

    #[test]
    fn a_stopped_container_no_longer_publishes() {
        let mut s = twin();
        // Engines drop a stopped container's port bindings.
        s.containers.get_mut("c1").unwrap().ports.clear();
        assert_eq!(resolve(Some("127.0.0.1:8080"), &s), RouteTarget::Unknown);
    }

    #[test]
    fn split_handles_v6_and_missing_ports() {
        assert_eq!(split("a:1"), Some(("a", Some(1))));
        assert_eq!(split("[::1]:2"), Some(("::1", Some(2))));
        assert_eq!(split("::1"), Some(("::1", None)));
        assert_eq!(split("a"), Some(("a", None)));
        assert_eq!(split("a:x"), Some(("a", None)));
    }
}
