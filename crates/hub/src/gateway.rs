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

pub mod digest;
mod fritzbox;
mod http;
mod probe;
pub mod tls;
pub mod tr064;
pub mod unifi;
pub mod upnp;
pub mod xml;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::replicas::Replicas;
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
    #[error("TLS: {0}")]
    Tls(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed XML: {0}")]
    BadXml(String),
    #[error("malformed JSON: {0}")]
    BadJson(String),
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
    /// `fritzbox://USER@HOST[:PORT][?tls][&fingerprint=…|&insecure-tls]`:
    /// a FRITZ!Box's TR-064 interface when a password is configured, else
    /// its password-less UPnP IGD interface.
    FritzBox {
        user: String,
        host: Endpoint,
        options: Options,
    },
    /// `unifi://[USER@]HOST[:PORT][?site=NAME][&fingerprint=…|&insecure-tls]`:
    /// a UniFi OS console with an API key, or with USER a controller login.
    Unifi {
        user: Option<String>,
        host: Endpoint,
        options: Options,
    },
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
            Spec::FritzBox {
                user,
                host,
                options,
            } => write!(f, "fritzbox://{user}@{host}{options}"),
            Spec::Unifi {
                user: Some(user),
                host,
                options,
            } => write!(f, "unifi://{user}@{host}{options}"),
            Spec::Unifi {
                user: None,
                host,
                options,
            } => write!(f, "unifi://{host}{options}"),
            Spec::Probe { host, port } => write!(f, "probe:{host}:{port}"),
        }
    }
}

const SPEC_FORMS: &str = "upnp, upnp:http://ROUTER:PORT/desc.xml, fritzbox://USER@HOST[:PORT][?tls], \
     unifi://[USER@]HOST[:PORT][?site=NAME] or probe:HOST:PORT";

/// A router's host and, if given, port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// A name or an address (IPv6 without brackets).
    pub host: String,
    pub port: Option<u16>,
}

impl Endpoint {
    /// `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` or a bare IPv6 address.
    fn parse(s: &str) -> Result<Endpoint, String> {
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| "the port must be 1 to 65535".to_string())
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or("an unclosed [")?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(port(after.strip_prefix(':').ok_or("text after ]")?)?),
                ),
            }
        } else if s.matches(':').count() == 1 {
            let (host, p) = s.split_once(':').unwrap_or((s, ""));
            (host, Some(port(p)?))
        } else {
            (s, None)
        };
        if !host_ok(host) || host.contains(['[', ']']) {
            return Err("not a host name or address".into());
        }
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }

    /// `scheme://HOST:PORT` with `default` when no port was given.
    fn base(&self, scheme: &str, default: u16) -> Result<::http::Uri, GatewayError> {
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        format!("{scheme}://{host}:{}", self.port.unwrap_or(default))
            .parse()
            .map_err(|_| GatewayError::Config(format!("{:?} is not a host name", self.host)))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.host.contains(':'), self.port) {
            (true, Some(p)) => write!(f, "[{}]:{p}", self.host),
            (false, Some(p)) => write!(f, "{}:{p}", self.host),
            (_, None) => write!(f, "{}", self.host),
        }
    }
}

/// The `?…` options of a `fritzbox://` or `unifi://` spec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// `tls`: TR-064 over HTTPS (:49443).
    pub tls: bool,
    /// `site=NAME`: the UniFi site (default `default`).
    pub site: Option<String>,
    /// `fingerprint=sha256:…` or `insecure-tls`.
    pub check: Option<tls::TlsMode>,
}

impl Options {
    fn parse(query: &str, unifi: bool) -> Result<Options, String> {
        let mut out = Options::default();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            match (key, unifi) {
                ("tls", false) if value.is_empty() => out.tls = true,
                ("site", true) => {
                    if value.is_empty()
                        || value.len() > 64
                        || !value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                    {
                        return Err("site= takes a site name (letters, digits, - and _)".into());
                    }
                    out.site = Some(value.to_string());
                }
                ("fingerprint", _) if out.check.is_none() => {
                    out.check = Some(tls::TlsMode::Pinned(tls::normalize_fingerprint(value)?));
                }
                ("insecure-tls", _) if value.is_empty() && out.check.is_none() => {
                    out.check = Some(tls::TlsMode::Insecure);
                }
                ("fingerprint" | "insecure-tls", _) => {
                    return Err("give one of fingerprint= and insecure-tls, once".into());
                }
                _ => {
                    let shown: String = key.chars().take(20).collect();
                    return Err(format!("unknown option {shown:?}"));
                }
            }
        }
        Ok(out)
    }

    fn tls_mode(&self) -> tls::TlsMode {
        self.check.clone().unwrap_or(tls::TlsMode::System)
    }
}

impl fmt::Display for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.tls {
            parts.push("tls".to_string());
        }
        if let Some(site) = &self.site {
            parts.push(format!("site={site}"));
        }
        if let Some(check) = &self.check {
            parts.push(check.to_string());
        }
        match parts.is_empty() {
            true => Ok(()),
            false => write!(f, "?{}", parts.join("&")),
        }
    }
}

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
        for (prefix, unifi) in [("fritzbox://", false), ("unifi://", true)] {
            let Some(rest) = s.strip_prefix(prefix) else {
                continue;
            };
            let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (user, host) = match rest.rsplit_once('@') {
                Some((user, host)) => (Some(user), host),
                None => (None, rest),
            };
            if let Some((user, _password)) = user.and_then(|u| u.split_once(':')) {
                return Err(format!(
                    "gateway {prefix}{user}:…@{host}: put no password in the spec: \
                     use --gateway-password-file or TWINBAY_GATEWAY_PASSWORD"
                ));
            }
            let user = match user {
                Some(u) if u.is_empty() || u.len() > 64 || u.contains(char::is_whitespace) => {
                    return Err(bad("USER must be a user name"));
                }
                Some(u) => Some(u.to_string()),
                None if !unifi => return Err(bad("no USER@")),
                None => None,
            };
            let host = Endpoint::parse(host).map_err(|e| bad(&e))?;
            let options = Options::parse(query, unifi).map_err(|e| bad(&e))?;
            return Ok(match user {
                Some(user) if !unifi => Spec::FritzBox {
                    user,
                    host,
                    options,
                },
                user => Spec::Unifi {
                    user,
                    host,
                    options,
                },
            });
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
        if self.password.is_none()
            && let Some(spec) = self.specs.iter().find(|s| matches!(s, Spec::Unifi { .. }))
        {
            return Err(format!(
                "gateway {spec}: UniFi needs the API key (or USER's password) in \
                 --gateway-password-file or TWINBAY_GATEWAY_PASSWORD"
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Upstream {
    Up,
    Down,
    #[default]
    Unknown,
}

/// The WAN link, as the router reports it (bits per second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// The round trip to the internet the router measures (UniFi).
    pub latency_ms: Option<f64>,
    /// The DSL line (FRITZ!Box TR-064).
    pub dsl: Option<Dsl>,
}

/// A DSL line as the modem reports it (bits per second).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dsl {
    /// `Up`, `Down`, `Initializing`, … as the modem says.
    pub status: String,
    /// The rates the line synchronised at.
    pub up_sync_bps: Option<u64>,
    pub down_sync_bps: Option<u64>,
    /// The most the line could carry.
    pub up_attainable_bps: Option<u64>,
    pub down_attainable_bps: Option<u64>,
}

impl Reading {
    fn with_reason(mut self, reason: String) -> Reading {
        self.reason = Some(reason);
        self
    }
}

/// One gateway's status, as `GET /api/v1/gateway` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// The round trip to the internet the router measures (UniFi).
    pub latency_ms: Option<f64>,
    /// The DSL line (FRITZ!Box with a password).
    pub dsl: Option<Dsl>,
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
                latency_ms: reading.latency_ms,
                dsl: reading.dsl,
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
                latency_ms: None,
                dsl: None,
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

    /// The statuses another replica (the one polling) found: each taken
    /// where this hub has the same gateway at the same place.
    pub fn adopt(&self, statuses: Vec<GatewayStatus>) {
        let ours = self.statuses();
        for (i, status) in statuses.into_iter().enumerate() {
            if ours.get(i).is_some_and(|o| o.spec == status.spec) {
                self.set(i, status);
            }
        }
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
    Tr064(Box<tr064::Tr064>),
    Unifi(Box<unifi::Unifi>),
    Probe { host: String, port: u16 },
    Unsupported(String),
}

impl Provider {
    fn new(spec: &Spec, password: Option<&Secret>) -> Provider {
        match Provider::build(spec, password) {
            Ok(p) => p,
            Err(e) => Provider::Unsupported(e.to_string()),
        }
    }

    fn build(spec: &Spec, password: Option<&Secret>) -> Result<Provider, GatewayError> {
        Ok(match (spec, password) {
            (
                Spec::FritzBox {
                    user,
                    host,
                    options,
                },
                Some(password),
            ) => {
                let https = options.tls || options.check.is_some();
                let (base, tls) = match https {
                    true => (
                        host.base("https", 49443)?,
                        Some(tls::client_config(&options.tls_mode())),
                    ),
                    false => (host.base("http", 49000)?, None),
                };
                Provider::Tr064(Box::new(tr064::Tr064::new(
                    base,
                    user.clone(),
                    password.clone(),
                    tls,
                )))
            }
            (Spec::FritzBox { host, .. }, None) => {
                let url = fritzbox::description_url(&host.base("http", 49000)?)?;
                Provider::Upnp(Box::new(upnp::Upnp::new(upnp::Source::Description(url))))
            }
            (Spec::Unifi { .. }, None) => {
                return Err(GatewayError::Config(
                    "unifi:// needs the API key (unifi://HOST) or USER's password \
                     (unifi://USER@HOST) in --gateway-password-file or TWINBAY_GATEWAY_PASSWORD"
                        .into(),
                ));
            }
            (
                Spec::Unifi {
                    user,
                    host,
                    options,
                },
                Some(password),
            ) => {
                let (auth, port) = match user {
                    None => (unifi::Auth::ApiKey(password.clone()), 443),
                    Some(user) => (
                        unifi::Auth::Login {
                            user: user.clone(),
                            password: password.clone(),
                        },
                        8443,
                    ),
                };
                Provider::Unifi(Box::new(unifi::Unifi::new(
                    host.base("https", port)?,
                    options.site.clone().unwrap_or_else(|| "default".into()),
                    auth,
                    tls::client_config(&options.tls_mode()),
                )))
            }
            (spec, _) => Provider::plain(spec),
        })
    }

    fn plain(spec: &Spec) -> Provider {
        match spec {
            Spec::Upnp(None) => Provider::Upnp(Box::new(upnp::Upnp::new(upnp::Source::Discover))),
            Spec::Upnp(Some(url)) => match url.parse() {
                Ok(url) => {
                    Provider::Upnp(Box::new(upnp::Upnp::new(upnp::Source::Description(url))))
                }
                Err(_) => Provider::Unsupported(format!("{url:?} is not a URL")),
            },
            Spec::FritzBox { .. } | Spec::Unifi { .. } => {
                Provider::Unsupported("handled by Provider::build".into())
            }
            Spec::Probe { host, port } => Provider::Probe {
                host: host.clone(),
                port: *port,
            },
        }
    }

    async fn poll(&mut self, timeout: Duration) -> Result<Reading, GatewayError> {
        match self {
            Provider::Upnp(upnp) => upnp.poll().await,
            Provider::Tr064(tr064) => tr064.poll().await,
            Provider::Unifi(unifi) => unifi.poll().await,
            Provider::Probe { host, port } => probe::poll(host, *port, timeout / 2).await,
            Provider::Unsupported(why) => Err(GatewayError::Unsupported(why.clone())),
        }
    }
}

/// Starts one poller per configured gateway; they stop when `stop` fires.
///
/// Among replicas, only the leader polls (the events are stored once) and
/// shares what it finds; the others show that.
pub fn spawn(
    gateways: Gateways,
    twin: Arc<Twin>,
    config: &GatewayConfig,
    replicas: Option<Arc<Replicas>>,
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
                Provider::new(spec, config.password.as_ref()),
                Sinks {
                    gateways: gateways.clone(),
                    twin: twin.clone(),
                    replicas: replicas.clone(),
                },
                (config.interval, config.timeout),
                stop.clone(),
            ))
        })
        .collect()
}

/// Where a poller's findings go.
struct Sinks {
    /// Shown by the API and `/metrics`.
    gateways: Gateways,
    /// The events, for the timeline and the UI.
    twin: Arc<Twin>,
    /// The other replicas, if any: only the leader polls, and shares.
    replicas: Option<Arc<Replicas>>,
}

async fn poll_loop(
    i: usize,
    spec: Spec,
    mut provider: Provider,
    Sinks {
        gateways,
        twin,
        replicas,
    }: Sinks,
    (interval, timeout): (Duration, Duration),
    stop: CancellationToken,
) {
    let mut status = GatewayStatus::new(&spec);
    let mut last_known = None;
    loop {
        if let Some(replicas) = replicas.as_ref().filter(|r| !r.is_leader()) {
            let mut leadership = replicas.leadership();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = leadership.wait_for(|leads| *leads) => {}
            }
            // Go on from what the last leader found, so its state is not
            // news again.
            if let Some(shared) = gateways.statuses().into_iter().nth(i) {
                last_known = (shared.upstream != Upstream::Unknown).then_some(shared.upstream);
                status = shared;
            }
        }
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
        if let Some(replicas) = &replicas {
            replicas.share_gateways(&gateways.statuses());
        }
        status = next;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod provider_tests;
#[cfg(test)]
mod tests;
