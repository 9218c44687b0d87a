//! The internet gateway: what the router in front of the fleet says about
//! the way out — the public address, whether the upstream is up, the link's
//! rates — polled by the hub (`--gateway SPEC`, see [`Spec`]).
//!
//! One task per configured gateway polls its provider every interval, each
//! poll under a deadline. A poll that fails leaves the status saying so
//! (`upstream: unknown`, `error` set, no current `public_ip`); the last
//! address seen stays in `last_public_ip`. Changes become timeline events on
//! the pseudo node [`NODE_ID`] (`gateway.public_ip_changed`,
//! `gateway.upstream_down`, `gateway.upstream_up`, `gateway.unreachable`,
//! `gateway.reachable`), with the gateway's spec as the event's target, and
//! the latest values are `twinbay_gateway_*` gauges on `/metrics`.

mod fritzbox;
mod http;
mod probe;
pub mod upnp;
pub mod xml;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::timeline::Event;
use crate::twin::Twin;

/// The node id of gateway events in the timeline (no agent has it: node ids
/// are never empty and never start with `_`).
pub const NODE_ID: &str = "_gateway";

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Config(String),
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed XML: {0}")]
    BadXml(String),
    #[error("{0}")]
    Fault(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One `--gateway` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `upnp`: find the IGD by SSDP; `upnp:URL`: its description URL.
    Upnp(Option<String>),
    /// `fritzbox://USER@HOST`: a FRITZ!Box's UPnP IGD interface.
    FritzBox { user: String, host: String },
    /// `unifi://HOST`.
    Unifi { host: String },
    /// `probe:HOST:PORT`: TCP reachability of HOST:PORT.
    Probe { host: String, port: u16 },
}

impl Spec {
    pub fn provider(&self) -> &'static str {
        match self {
            Spec::Upnp(_) => "upnp",
            Spec::FritzBox { .. } => "fritzbox",
            Spec::Unifi { .. } => "unifi",
            Spec::Probe { .. } => "probe",
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Upnp(None) => write!(f, "upnp"),
            Spec::Upnp(Some(url)) => write!(f, "upnp:{url}"),
            Spec::FritzBox { user, host } => write!(f, "fritzbox://{user}@{host}"),
            Spec::Unifi { host } => write!(f, "unifi://{host}"),
            Spec::Probe { host, port } => write!(f, "probe:{host}:{port}"),
        }
    }
}

const SPEC_FORMS: &str =
    "upnp, upnp:http://ROUTER:PORT/desc.xml, fritzbox://USER@HOST, unifi://HOST or probe:HOST:PORT";

fn host_ok(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

impl FromStr for Spec {
    type Err = String;

    fn from_str(s: &str) -> Result<Spec, String> {
        let s = s.trim();
        let bad = |why: &str| format!("gateway {s:?}: {why} (the forms are {SPEC_FORMS})");
        if s == "upnp" {
            return Ok(Spec::Upnp(None));
        }
        if let Some(url) = s.strip_prefix("upnp:") {
            let uri: ::http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                return Err(bad("the description URL must be http://HOST[:PORT]/PATH"));
            }
            return Ok(Spec::Upnp(Some(url.to_string())));
        }
        if let Some(rest) = s.strip_prefix("fritzbox://") {
            let (user, host) = rest.split_once('@').ok_or_else(|| bad("no USER@"))?;
            if user.is_empty() || !host_ok(host) {
                return Err(bad("USER and HOST must not be empty"));
            }
            if let Some((user, _password)) = user.split_once(':') {
                return Err(format!(
                    "gateway fritzbox://{user}:…@{host}: put no password in the spec: \
                     use --gateway-password-file or TWINBAY_GATEWAY_PASSWORD"
                ));
            }
            return Ok(Spec::FritzBox {
                user: user.into(),
                host: host.into(),
            });
        }
        if let Some(host) = s.strip_prefix("unifi://") {
            if let Some((_, host)) = host.rsplit_once('@') {
                return Err(format!(
                    "gateway unifi://…@{host}: put no credentials in the spec: \
                     use --gateway-password-file or TWINBAY_GATEWAY_PASSWORD"
                ));
            }
            if !host_ok(host) {
                return Err(bad("not a host name"));
            }
            return Ok(Spec::Unifi { host: host.into() });
        }
        if let Some(rest) = s.strip_prefix("probe:") {
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("no :PORT"))?;
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port must be 1 to 65535"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if !host_ok(host) {
                return Err(bad("not a host name or address"));
            }
            return Ok(Spec::Probe {
                host: host.into(),
                port,
            });
        }
        Err(bad("unknown kind"))
    }
}

/// A secret (a router's password): never printed.
#[derive(Clone, Default)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub specs: Vec<Spec>,
    /// Time between polls.
    pub interval: Duration,
    /// Deadline of one poll.
    pub timeout: Duration,
    /// For providers that sign in (from a file or `TWINBAY_GATEWAY_PASSWORD`).
    pub password: Option<Secret>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            specs: Vec::new(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            password: None,
        }
    }
}

impl GatewayConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.interval.is_zero() || self.timeout.is_zero() {
            return Err("gateway interval and timeout must be positive".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Upstream {
    Up,
    Down,
    #[default]
    Unknown,
}

/// The WAN link, as the router reports it (bits per second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Link {
    pub max_up_bps: Option<u64>,
    pub max_down_bps: Option<u64>,
    /// Measured between the last two polls.
    pub up_bps: Option<u64>,
    pub down_bps: Option<u64>,
}

/// What one successful poll found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub public_ip: Option<String>,
    pub upstream: Upstream,
    pub link: Option<Link>,
    pub uptime_secs: Option<u64>,
    /// The router's name, if it gives one.
    pub device: Option<String>,
    /// Why the upstream is down, when the provider knows.
    pub reason: Option<String>,
}

impl Reading {
    fn with_reason(mut self, reason: String) -> Reading {
        self.reason = Some(reason);
        self
    }
}

/// One gateway's status, as `GET /api/v1/gateway` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GatewayStatus {
    /// `upnp`, `fritzbox`, `unifi` or `probe`; null when none is configured.
    pub provider: Option<String>,
    /// The `--gateway` spec.
    pub spec: Option<String>,
    /// The router's name, if it gives one.
    pub device: Option<String>,
    /// The public address as of the last poll; null when that poll failed
    /// or the provider cannot tell.
    pub public_ip: Option<String>,
    /// The last public address any poll saw (may be out of date).
    pub last_public_ip: Option<String>,
    pub upstream: Upstream,
    pub link: Option<Link>,
    /// How long the WAN connection has been up.
    pub uptime_secs: Option<u64>,
    /// When a poll last succeeded.
    pub last_updated_ms: Option<i64>,
    /// When the last poll ended.
    pub last_attempt_ms: Option<i64>,
    /// Why the last poll failed, or why the upstream is down.
    pub error: Option<String>,
}

impl GatewayStatus {
    fn new(spec: &Spec) -> GatewayStatus {
        GatewayStatus {
            provider: Some(spec.provider().into()),
            spec: Some(spec.to_string()),
            ..GatewayStatus::default()
        }
    }
}

/// The next status after a poll, and the events the change is worth.
/// `last_known` is the upstream state (up or down) last seen, carried
/// across failed polls so that up → unreachable → up is not an event.
pub fn apply(
    old: &GatewayStatus,
    last_known: &mut Option<Upstream>,
    result: Result<Reading, String>,
    now_ms: i64,
) -> (GatewayStatus, Vec<Event>) {
    let target = old.spec.clone().unwrap_or_default();
    let event = |kind: &str, detail: serde_json::Value| Event {
        node_id: NODE_ID.into(),
        ts: now_ms,
        kind: kind.into(),
        target: target.clone(),
        detail,
    };
    let mut events = Vec::new();
    let was_reachable = old.last_attempt_ms.is_none() || old.last_updated_ms == old.last_attempt_ms;
    let new = match result {
        Ok(reading) => {
            if !was_reachable {
                events.push(event("gateway.reachable", json!({})));
            }
            if let (Some(before), Some(now)) = (&old.last_public_ip, &reading.public_ip)
                && before != now
            {
                events.push(event(
                    "gateway.public_ip_changed",
                    json!({"old": before, "new": now}),
                ));
            }
            if reading.upstream != Upstream::Unknown {
                match (*last_known, reading.upstream) {
                    (Some(Upstream::Up) | None, Upstream::Down) => events.push(event(
                        "gateway.upstream_down",
                        json!({"reason": reading.reason}),
                    )),
                    (Some(Upstream::Down), Upstream::Up) => {
                        events.push(event("gateway.upstream_up", json!({})))
                    }
                    _ => {}
                }
                *last_known = Some(reading.upstream);
            }
            GatewayStatus {
                provider: old.provider.clone(),
                spec: old.spec.clone(),
                device: reading.device.or(old.device.clone()),
                last_public_ip: reading.public_ip.clone().or(old.last_public_ip.clone()),
                public_ip: reading.public_ip,
                upstream: reading.upstream,
                link: reading.link,
                uptime_secs: reading.uptime_secs,
                last_updated_ms: Some(now_ms),
                last_attempt_ms: Some(now_ms),
                error: reading.reason,
            }
        }
        Err(error) => {
            if was_reachable {
                events.push(event("gateway.unreachable", json!({"error": error})));
            }
            GatewayStatus {
                provider: old.provider.clone(),
                spec: old.spec.clone(),
                device: old.device.clone(),
                public_ip: None,
                last_public_ip: old.last_public_ip.clone(),
                upstream: Upstream::Unknown,
                link: None,
                uptime_secs: None,
                last_updated_ms: old.last_updated_ms,
                last_attempt_ms: Some(now_ms),
                error: Some(error),
            }
        }
    };
    (new, events)
}

type Labels = Vec<(String, String)>;

/// The `twinbay_gateway_*` gauges, labelled by provider and spec.
#[derive(Clone, Default)]
pub struct Gauges {
    pub up: Family<Labels, Gauge>,
    pub reachable: Family<Labels, Gauge>,
    pub uptime: Family<Labels, Gauge>,
    pub max_up: Family<Labels, Gauge>,
    pub max_down: Family<Labels, Gauge>,
    pub up_bps: Family<Labels, Gauge>,
    pub down_bps: Family<Labels, Gauge>,
}

impl Gauges {
    /// (name without `twinbay_`, help, family) for the registry.
    pub fn families(&self) -> [(&'static str, &'static str, Family<Labels, Gauge>); 7] {
        [
            (
                "gateway_up",
                "1 if the gateway reports its upstream connected, 0 if down or unknown",
                self.up.clone(),
            ),
            (
                "gateway_reachable",
                "1 if the last poll of the gateway succeeded",
                self.reachable.clone(),
            ),
            (
                "gateway_uptime_seconds",
                "How long the gateway's WAN connection has been up",
                self.uptime.clone(),
            ),
            (
                "gateway_link_max_up_bps",
                "The WAN link's upstream capacity, bits per second",
                self.max_up.clone(),
            ),
            (
                "gateway_link_max_down_bps",
                "The WAN link's downstream capacity, bits per second",
                self.max_down.clone(),
            ),
            (
                "gateway_link_up_bps",
                "Sent over the WAN link between the last two polls, bits per second",
                self.up_bps.clone(),
            ),
            (
                "gateway_link_down_bps",
                "Received over the WAN link between the last two polls, bits per second",
                self.down_bps.clone(),
            ),
        ]
    }

    fn record(&self, status: &GatewayStatus) {
        let labels: Labels = vec![
            (
                "provider".into(),
                status.provider.clone().unwrap_or_default(),
            ),
            ("gateway".into(), status.spec.clone().unwrap_or_default()),
        ];
        self.up
            .get_or_create(&labels)
            .set(i64::from(status.upstream == Upstream::Up));
        self.reachable
            .get_or_create(&labels)
            .set(i64::from(status.last_updated_ms == status.last_attempt_ms));
        let set = |family: &Family<Labels, Gauge>, value: Option<u64>| match value {
            Some(v) => {
                family
                    .get_or_create(&labels)
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            }
            None => {
                family.remove(&labels);
            }
        };
        let link = status.link.unwrap_or_default();
        set(&self.uptime, status.uptime_secs);
        set(&self.max_up, link.max_up_bps);
        set(&self.max_down, link.max_down_bps);
        set(&self.up_bps, link.up_bps);
        set(&self.down_bps, link.down_bps);
    }
}

/// Every configured gateway's status, shared with the API.
#[derive(Clone, Default)]
pub struct Gateways {
    status: Arc<RwLock<Vec<GatewayStatus>>>,
    pub gauges: Gauges,
}

impl Gateways {
    pub fn new(config: &GatewayConfig) -> Gateways {
        Gateways {
            status: Arc::new(RwLock::new(
                config.specs.iter().map(GatewayStatus::new).collect(),
            )),
            gauges: Gauges::default(),
        }
    }

    pub fn statuses(&self) -> Vec<GatewayStatus> {
        self.status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, i: usize, status: GatewayStatus) {
        self.gauges.record(&status);
        if let Some(slot) = self
            .status
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(i)
        {
            *slot = status;
        }
    }
}

/// A gateway's provider with the state it keeps between polls.
enum Provider {
    Upnp(Box<upnp::Upnp>),
    Probe { host: String, port: u16 },
    Unsupported(String),
}

impl Provider {
    fn new(spec: &Spec) -> Provider {
        match spec {
            Spec::Upnp(None) => Provider::Upnp(Box::new(upnp::Upnp::new(upnp::Source::Discover))),
            Spec::Upnp(Some(url)) => match url.parse() {
                Ok(url) => {
                    Provider::Upnp(Box::new(upnp::Upnp::new(upnp::Source::Description(url))))
                }
                Err(_) => Provider::Unsupported(format!("{url:?} is not a URL")),
            },
            Spec::FritzBox { host, .. } => match fritzbox::description_url(host) {
                Ok(url) => {
                    Provider::Upnp(Box::new(upnp::Upnp::new(upnp::Source::Description(url))))
                }
                Err(e) => Provider::Unsupported(e.to_string()),
            },
            Spec::Unifi { .. } => Provider::Unsupported(
                "the UniFi provider is not built yet; use upnp or probe:HOST:PORT meanwhile".into(),
            ),
            Spec::Probe { host, port } => Provider::Probe {
                host: host.clone(),
                port: *port,
            },
        }
    }

    async fn poll(&mut self, timeout: Duration) -> Result<Reading, GatewayError> {
        match self {
            Provider::Upnp(upnp) => upnp.poll().await,
            Provider::Probe { host, port } => probe::poll(host, *port, timeout / 2).await,
            Provider::Unsupported(why) => Err(GatewayError::Unsupported(why.clone())),
        }
    }
}

/// Starts one poller per configured gateway; they stop when `stop` fires.
pub fn spawn(
    gateways: Gateways,
    twin: Arc<Twin>,
    config: &GatewayConfig,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    config
        .specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            tokio::spawn(poll_loop(
                i,
                spec.clone(),
                gateways.clone(),
                twin.clone(),
                config.interval,
                config.timeout,
                stop.clone(),
            ))
        })
        .collect()
}

async fn poll_loop(
    i: usize,
    spec: Spec,
    gateways: Gateways,
    twin: Arc<Twin>,
    interval: Duration,
    timeout: Duration,
    stop: CancellationToken,
) {
    let mut provider = Provider::new(&spec);
    let mut status = GatewayStatus::new(&spec);
    let mut last_known = None;
    loop {
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = tokio::time::timeout(timeout, provider.poll(timeout)) => r,
        };
        let result = match result {
            Ok(Ok(reading)) => Ok(reading),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(GatewayError::Timeout(timeout).to_string()),
        };
        if let Err(e) = &result {
            tracing::debug!(gateway = %spec, error = %e, "gateway poll failed");
        }
        let (next, events) = apply(&status, &mut last_known, result, crate::store::now_ms());
        for e in &events {
            tracing::info!(gateway = %spec, kind = e.kind, detail = %e.detail, "gateway");
        }
        twin.emit(events);
        gateways.set(i, next.clone());
        status = next;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests;
