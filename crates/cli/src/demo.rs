//! `twinbay up --demo N`: the first few simulated hosts of the demo fleet run
//! a reverse proxy, so the UI has routes to show. Each is an invented host
//! ([`SimHost`], as `twinbay sim` makes them) on its own real link, with a
//! proxy and its routes added: most lead to running containers, one to a
//! stopped container, one to a port, one outside the host, and the simulator's
//! churn stops and restarts containers under them. One unit there waits for
//! a `daemon-reload` after a drop-in was added.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use twinbay_agent::buffer::SampleBuffer;
use twinbay_agent::identity::Identity;
use twinbay_agent::sim::agent_key;
use twinbay_agent::sim::host::SimHost;
use twinbay_proto::join::JoinString;
use twinbay_proto::model::{Container, Keyed, NodeState, Port, ProxyProvider, Route, RouteTarget};

/// How many of `n` demo hosts run a proxy: one in twenty, at least one, at most three.
pub fn proxies(n: usize) -> usize {
    (n / 20).clamp(1, 3).min(n)
}

/// Runs demo hosts `0..count` (the simulated fleet starts after them) until `cancel`.
pub async fn run(join: String, hubs: Vec<String>, count: usize, cancel: CancellationToken) {
    let Ok(join) = JoinString::parse(&join) else {
        tracing::error!("the demo join string does not parse");
        return;
    };
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..count {
        let key = agent_key(&join.token, index);
        let seed = u64::from_le_bytes(key.to_bytes()[8..16].try_into().expect("8 bytes"));
        let mut identity = Identity::simulated(key, &join);
        identity.override_hubs(hubs.clone());
        tasks.spawn(proxy_agent(index, seed, identity, cancel.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

async fn proxy_agent(index: usize, seed: u64, identity: Identity, cancel: CancellationToken) {
    let interval = Duration::from_secs(5);
    let mut host = SimHost::new(index, seed, twinbay_agent::now_ms());
    add_proxy(&mut host.state, index);
    let (state_tx, state_rx) = watch::channel(host.state.clone());
    let samples = Arc::new(SampleBuffer::new(12));
    let link = tokio::spawn(twinbay_agent::link::run(
        identity,
        state_rx,
        samples.clone(),
        None,
        None,
        cancel.clone(),
    ));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A state change about once a minute, as `twinbay sim`'s default.
    let churn = interval.as_secs_f64() / 60.0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                let (_, sample) = host.step(twinbay_agent::now_ms(), interval, churn);
                state_tx.send_if_modified(|state| {
                    if *state == host.state {
                        return false;
                    }
                    state.clone_from(&host.state);
                    true
                });
                samples.push(sample);
            }
        }
    }
    if let Ok(Err(e)) = link.await {
        tracing::warn!(agent = index, error = %twinbay_hub::report(&e), "demo proxy host stopped");
    }
}

/// Adds a reverse proxy to an invented host and routes through it.
pub fn add_proxy(state: &mut NodeState, index: usize) {
    let domain = ["home.example.net", "lab.example.net", "office.example.net"][index % 3];
    let (provider, instance, image) = [
        (
            ProxyProvider::Caddy,
            "edge-caddy-1",
            "docker.io/library/caddy:2.8",
        ),
        (
            ProxyProvider::Traefik,
            "edge-traefik-1",
            "docker.io/library/traefik:v3.2",
        ),
        (ProxyProvider::Nginx, "host", ""),
    ][index % 3];
    let route = |host: &str, path: &str, upstream: String, target: RouteTarget| Route {
        provider,
        instance: instance.into(),
        host: host.into(),
        path: path.into(),
        upstream,
        tls: true,
        target,
    };
    let mut routes = Vec::new();

    // The containers behind it: the first few running ones by name, one
    // public name per service.
    let mut running: Vec<Container> = state
        .containers
        .values()
        .filter(|c| c.state == "running")
        .map(|c| (**c).clone())
        .collect();
    running.sort_by(|a, b| a.name.cmp(&b.name));
    let mut names = BTreeSet::new();
    let mut picked = Vec::new();
    for c in running {
        let service = c.compose_service.clone().unwrap_or_else(|| c.name.clone());
        if names.insert(service.clone()) {
            picked.push((service, c));
        }
        if picked.len() == 5 {
            break;
        }
    }
    // The last one is down: its route is broken.
    let stopped = (picked.len() >= 2).then(|| picked.len() - 1);
    for (i, (service, c)) in picked.iter().enumerate() {
        if Some(i) == stopped
            && let Some(c) = state.containers.get_mut(&c.id)
        {
            c.state = "exited".into();
            c.exit_code = Some(1);
        }
        let inner = c
            .ports
            .first()
            .and_then(|p| p.rsplit_once("->"))
            .and_then(|(_, inner)| inner.split('/').next())
            .unwrap_or("80");
        let upstream = match provider {
            ProxyProvider::Nginx => format!("http://{}:{inner}", c.name),
            ProxyProvider::Caddy => format!("{}:{inner}", c.name),
            ProxyProvider::Traefik => format!("http://{}:{inner}", c.name),
        };
        routes.push(route(
            &format!("{service}.{domain}"),
            "/",
            upstream,
            RouteTarget::Container {
                id: c.id.clone(),
                name: c.name.to_string(),
            },
        ));
    }

    // The proxy itself: a container publishing 80 and 443, or nginx on the host.
    if instance == "host" {
        for port in [80, 443] {
            let p = Port {
                protocol: "tcp".into(),
                address: "0.0.0.0".into(),
                port,
                process: Some("nginx".into()),
                pid: Some(1200),
            };
            state.ports.insert(p.key(), p);
        }
    } else {
        let id = format!("{:064x}", u128::from(index as u64) << 64 | 0xed9e);
        let proxy = Container {
            id: id.clone(),
            name: instance.into(),
            image: image.into(),
            state: "running".into(),
            ports: vec!["0.0.0.0:80->80/tcp".into(), "0.0.0.0:443->443/tcp".into()],
            compose_project: Some("edge".into()),
            compose_service: Some(
                instance
                    .trim_start_matches("edge-")
                    .trim_end_matches("-1")
                    .into(),
            ),
            ..Container::default()
        };
        state.containers.insert(id, proxy.into());
    }

    // A service on a host port (no container), something elsewhere on the
    // network, and one the configuration leaves open.
    let metrics = Port {
        protocol: "tcp".into(),
        address: "127.0.0.1".into(),
        port: 9100,
        process: Some("node_exporter".into()),
        pid: Some(900),
    };
    routes.push(route(
        &format!("metrics.{domain}"),
        "/",
        "http://127.0.0.1:9100".into(),
        RouteTarget::Port { key: metrics.key() },
    ));
    state.ports.insert(metrics.key(), metrics);
    routes.push(route(
        &format!("nas.{domain}"),
        "/",
        "https://192.168.1.20:5001".into(),
        RouteTarget::External,
    ));
    routes.push(route(
        &format!("www.{domain}"),
        "/legacy",
        "$legacy_backend".into(),
        RouteTarget::Unknown,
    ));
    state.routes = routes.into_iter().map(|r| (r.key(), r)).collect();

    // Someone edited a unit's drop-in and did not reload systemd.
    if let Some(u) = state
        .units
        .values_mut()
        .find(|u| u.name.ends_with(".service"))
    {
        u.drop_in_paths = vec![format!("/etc/systemd/system/{}.d/override.conf", u.name)];
        u.need_daemon_reload = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_demo_proxy_has_every_kind_of_route_and_a_valid_twin() {
        for index in 0..3 {
            let mut host = SimHost::new(index, 7 + index as u64, 1_700_000_000_000);
            add_proxy(&mut host.state, index);
            let s = &host.state;
            host.state.validate().expect("a valid twin");
            let kinds: BTreeSet<&str> = s
                .routes
                .values()
                .map(|r| match &r.target {
                    RouteTarget::Container { id, .. } => match s.containers[id].state.as_str() {
                        "running" => "running",
                        _ => "stopped",
                    },
                    RouteTarget::Port { .. } => "port",
                    RouteTarget::External => "external",
                    RouteTarget::Unknown => "unknown",
                })
                .collect();
            assert_eq!(
                kinds,
                ["external", "port", "running", "stopped", "unknown"].into(),
                "host {index}"
            );
            assert!(s.units.values().any(|u| u.need_daemon_reload));
        }
        assert_eq!(proxies(1), 1);
        assert_eq!(proxies(40), 2);
        assert_eq!(proxies(500), 3);
    }
}
