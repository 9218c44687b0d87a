//! The twin of one node: what it is, what runs there and how it is doing.
//!
//! Collections are maps keyed by each item's natural key ([`Keyed::key`]), so
//! diffs can name an item by collection and key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::text::Str;

/// A container's labels: a sorted `Vec` of shared strings (a map on the
/// wire). Most containers carry a handful, and a hub holds hundreds of
/// thousands of containers: a B-tree leaf is 384 bytes even for two.
pub type Labels = litemap::LiteMap<Str, Str>;

/// Writes [`Labels`] as a JSON object, also when empty (`LiteMap`'s own
/// writes an empty map as `[]`).
fn write_labels<S: serde::Serializer>(labels: &Labels, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(labels.iter())
}

/// Reads [`Labels`] into a `Vec` of exactly their number (a JSON map gives
/// no size hint, and a grown `Vec` keeps up to twice its entries); a key
/// given twice keeps its last value, as a map would.
fn read_labels<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
    struct Entries;
    impl<'de> serde::de::Visitor<'de> for Entries {
        type Value = Vec<(Str, Str)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of labels")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    let mut entries = d.deserialize_map(Entries)?;
    // Stable: of equal keys, the last given ends up last, and dedup keeps
    // the first of a run, so reverse first.
    entries.reverse();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|a, b| a.0 == b.0);
    entries.shrink_to_fit();
    Ok(Labels::from_sorted_store_unchecked(entries))
}

/// The state an agent reports, apart from the numeric samples that travel in
/// [`crate::message::AgentMessage::Metrics`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeState {
    pub host: HostInfo,
    /// Boxed: a B-tree leaf holds 11 entries, and a partly filled leaf of
    /// 300-byte containers wastes kilobytes per host on a hub of thousands.
    #[serde(default)]
    pub containers: BTreeMap<String, Box<Container>>,
    /// Boxed, as containers are.
    #[serde(default)]
    pub units: BTreeMap<String, Box<Unit>>,
    #[serde(default)]
    pub ports: BTreeMap<String, Port>,
    /// Sources (collectors) by name; an unavailable one says why.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceStatus>,
    /// Network interfaces by name (their rates travel in samples).
    #[serde(default)]
    pub interfaces: BTreeMap<String, Interface>,
    /// Mounted filesystems by path (their usage travels in samples).
    #[serde(default)]
    pub mounts: BTreeMap<String, Mount>,
    /// The top processes by CPU and by memory, by pid.
    #[serde(default)]
    pub processes: BTreeMap<String, Process>,
    /// SMART health of each disk, by device path.
    #[serde(default)]
    pub disk_health: BTreeMap<String, DiskHealth>,
    /// Watched configuration files, by absolute path (protocol 2).
    #[serde(default)]
    pub files: BTreeMap<String, WatchedFile>,
    /// Reverse-proxy routes served on this host, by [`Route::key`] (protocol 3).
    #[serde(default)]
    pub routes: BTreeMap<String, Route>,
}

/// One route of a reverse proxy on this host (`routes` source): requests for
/// `host` + `path` go to `upstream`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Route {
    pub provider: ProxyProvider,
    /// Which proxy: `host` for one running on the host itself, else the
    /// container's name.
    pub instance: String,
    /// The public name (`immich.example.org`); empty for a catch-all.
    #[serde(default)]
    pub host: String,
    /// The path prefix matched (`/` for everything).
    #[serde(default)]
    pub path: String,
    /// Where requests go, as the configuration writes it
    /// (`http://127.0.0.1:2283`, `immich:2283`, `$upstream`, …).
    pub upstream: String,
    /// Served over TLS.
    #[serde(default)]
    pub tls: bool,
    /// What `upstream` is on this host.
    #[serde(default)]
    pub target: RouteTarget,
}

/// The reverse proxies twinbay reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProxyProvider {
    #[default]
    Nginx,
    Caddy,
    Traefik,
}

/// What a route's upstream resolves to on the proxy's host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RouteTarget {
    /// A container of this host (by name or compose service on the proxy's
    /// network, by its address, or by a host port it publishes); `id` is
    /// the key in the twin's `containers`.
    Container { id: String, name: String },
    /// A port listening on this host that no container publishes (the
    /// key in the twin's `ports`).
    Port { key: String },
    /// Somewhere else: another host, the internet.
    External,
    /// Not resolved (a variable with no value, nothing listening there).
    #[default]
    Unknown,
}

/// A configuration file the agent watches (`files` source). Its content
/// travels separately ([`crate::message::AgentMessage::FileChunk`]), only
/// when the hub asks for it ([`crate::message::HubMessage::NeedFiles`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchedFile {
    /// Absolute path.
    pub path: String,
    pub state: FileState,
    /// Identifies this version: the hex SHA-256 of the file's bytes or, when
    /// [`WatchedFile::keyed`], an HMAC-SHA-256 with the agent's own key (a
    /// file with secrets: a plain hash of a small file can be guessed).
    /// `None` when the file is missing or unreadable.
    #[serde(default)]
    pub sha256: Option<String>,
    /// `sha256` is keyed (see there): only this agent's other versions compare.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keyed: bool,
    #[serde(default)]
    pub size: Option<u64>,
    /// Last modification, unix milliseconds.
    #[serde(default)]
    pub mtime_ms: Option<i64>,
    /// Permission bits (`0o644` is 420).
    #[serde(default)]
    pub mode: Option<u32>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
    #[serde(default)]
    pub kind: FileKind,
    /// Whether the content can travel to the hub, and if not why.
    #[serde(default)]
    pub content: FileContent,
    /// Secret values replaced by a marker in the content that travels.
    #[serde(default)]
    pub redacted: u32,
    /// Why it is watched: `watch` (asked for), `compose` (a running
    /// container's compose file), `unit` (a reported unit's file).
    #[serde(default)]
    pub origin: String,
    /// Why it could not be read, for `unreadable`.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    #[default]
    Present,
    /// Watched but not there (yet, or any more).
    Missing,
    Unreadable,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Compose,
    SystemdUnit,
    Nginx,
    Caddy,
    Env,
    Yaml,
    #[default]
    Other,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FileContent {
    /// Text that travels (with secret values redacted).
    #[default]
    Shipped,
    /// A secret by its name (`.env`, `*.key`, …): hashed only, keyed.
    Secret,
    /// Larger than the agent's cap: hashed only.
    TooLarge,
    /// Not text: hashed only.
    Binary,
    /// Missing or unreadable: nothing to send.
    None,
}

impl WatchedFile {
    /// Whether the hub may ask for this version's content.
    pub fn ships_content(&self) -> bool {
        self.state == FileState::Present
            && self.content == FileContent::Shipped
            && self.sha256.is_some()
    }
}

/// What `smartctl` says about one disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskHealth {
    pub device: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub serial: String,
    /// The overall SMART self-assessment; absent when it could not be read.
    #[serde(default)]
    pub passed: Option<bool>,
    #[serde(default)]
    pub temp_c: Option<i64>,
    #[serde(default)]
    pub power_on_hours: Option<u64>,
    /// NVMe: percentage of rated endurance used.
    #[serde(default)]
    pub wear_pct: Option<u64>,
    /// ATA attribute 5 (reallocated sectors) or NVMe media errors.
    #[serde(default)]
    pub bad_blocks: Option<u64>,
    /// Why the disk could not be read (e.g. permission denied).
    #[serde(default)]
    pub error: Option<String>,
}

/// Who the node is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostInfo {
    pub hostname: String,
    /// Pretty OS name, e.g. "Debian GNU/Linux 12 (bookworm)".
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub os: Str,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kernel: Str,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub arch: Str,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agent_version: Str,
    /// Boot time, unix seconds.
    #[serde(default)]
    pub boot_time: i64,
    #[serde(default)]
    pub cpu_cores: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Container {
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: Str,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub image: Str,
    /// created, running, paused, restarting, exited, dead
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: Str,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub health: Option<Str>,
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub restart_count: u32,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    #[serde(serialize_with = "write_labels", deserialize_with = "read_labels")]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub labels: Labels,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub compose_project: Option<Str>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub compose_service: Option<Str>,
    /// RFC 3339, as the engine reports it.
    #[serde(default)]
    pub created: Option<String>,
    /// RFC 3339; when it last started.
    #[serde(default)]
    pub started_at: Option<String>,
    /// The image it runs, by id (`sha256:…`): what a tag like `:latest`
    /// meant when it was created. Shared: every container of one image
    /// names the same id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub image_id: Option<Str>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Unit {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: Str,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub description: Str,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub load_state: Str,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub active_state: Str,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub sub_state: Str,
    /// When the unit entered its active state, unix seconds.
    #[serde(default)]
    pub since: Option<i64>,
    /// A user unit (`systemctl --user`) rather than a system one.
    #[serde(default)]
    pub user: bool,
    /// Services: the main process.
    #[serde(default)]
    pub main_pid: Option<u32>,
    /// Services, where systemd accounts it: memory in use, bytes.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Services, where systemd accounts it: CPU time used, nanoseconds.
    #[serde(default)]
    pub cpu_nsec: Option<u64>,
    /// The unit file (systemd's `FragmentPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub fragment_path: Option<Str>,
    /// Its drop-ins (`DropInPaths`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_in_paths: Vec<String>,
    /// systemd says the unit's files changed since they were loaded
    /// (`NeedDaemonReload`): what runs is not what the files say.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub need_daemon_reload: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Port {
    /// tcp, tcp6, udp, udp6
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub protocol: Str,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub address: Str,
    pub port: u16,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub process: Option<Str>,
    #[serde(default)]
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceStatus {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: Str,
    pub available: bool,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub reason: Option<Str>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: Option<String>,
    /// Operationally up (`operstate` is `up`).
    #[serde(default)]
    pub up: bool,
    /// Link speed in Mbit/s, where the driver reports one.
    #[serde(default)]
    pub speed_mbps: Option<u32>,
    /// `full` or `half`, where reported.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub duplex: Option<Str>,
    #[serde(default)]
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Mount {
    pub path: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub device: Str,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub fs_type: Str,
    /// Why usage cannot be read (e.g. permission denied), if it cannot.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Process {
    pub pid: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: Str,
    /// CPU over the last interval, percent of one core.
    #[serde(default)]
    pub cpu_pct: f32,
    /// Resident memory, bytes.
    #[serde(default)]
    pub rss: u64,
    #[serde(default)]
    pub uid: Option<u32>,
}

/// Usage and I/O of one mounted filesystem.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskSample {
    pub mount: String,
    pub total: u64,
    pub used: u64,
    /// Bytes per second over the last interval, for the mount's device.
    #[serde(default)]
    pub read_bps: f64,
    #[serde(default)]
    pub write_bps: f64,
}

/// Throughput and error counters of one interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetSample {
    pub iface: String,
    /// Bytes per second over the last interval.
    pub rx_bps: f64,
    pub tx_bps: f64,
    /// Counters since the interface appeared.
    #[serde(default)]
    pub rx_errors: u64,
    #[serde(default)]
    pub tx_errors: u64,
    #[serde(default)]
    pub rx_drops: u64,
    #[serde(default)]
    pub tx_drops: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TempSample {
    /// `chip/label`, e.g. `coretemp/Package id 0`.
    pub sensor: String,
    pub celsius: f32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuSample {
    pub index: u32,
    #[serde(default)]
    pub name: String,
    pub util_pct: f32,
    pub mem_used: u64,
    pub mem_total: u64,
    #[serde(default)]
    pub temp_c: Option<f32>,
    #[serde(default)]
    pub power_w: Option<f32>,
}

/// CPU and memory of one running container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerSample {
    pub id: String,
    /// Percent of one core over the last interval.
    pub cpu_pct: f32,
    pub mem_bytes: u64,
    /// The container's memory limit (0 when unlimited).
    #[serde(default)]
    pub mem_limit: u64,
}

/// Round-trip time to a configured target; `ms` is absent when unreachable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatencySample {
    pub target: String,
    #[serde(default)]
    pub ms: Option<f32>,
}

/// One numeric sample of the host's resources. Everything after
/// `uptime_secs` is optional on the wire (absent when empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sample {
    /// When the agent took the sample, unix milliseconds.
    pub ts_ms: i64,
    /// CPU busy over the last interval, percent of all cores (0–100).
    pub cpu_pct: f32,
    pub load1: f32,
    pub load5: f32,
    pub load15: f32,
    pub mem_total: u64,
    pub mem_used: u64,
    pub mem_available: u64,
    pub swap_total: u64,
    pub swap_used: u64,
    pub uptime_secs: u64,
    /// Per-core busy percent, in core order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cores: Vec<f32>,
    /// Mean current CPU frequency, MHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_mhz: Option<f32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskSample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<NetSample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub temps: Vec<TempSample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuSample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency: Vec<LatencySample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerSample>,
}

impl Sample {
    /// Checks that every number is finite and not negative. JSON numbers past
    /// `f32::MAX` decode to infinity, which JSON cannot carry back out.
    pub fn validate(&self) -> Result<(), String> {
        let mut floats = vec![
            ("cpu_pct", f64::from(self.cpu_pct)),
            ("load1", f64::from(self.load1)),
            ("load5", f64::from(self.load5)),
            ("load15", f64::from(self.load15)),
        ];
        floats.extend(self.cores.iter().map(|c| ("cores", f64::from(*c))));
        floats.extend(self.cpu_mhz.map(|m| ("cpu_mhz", f64::from(m))));
        for d in &self.disks {
            floats.extend([
                ("disks.read_bps", d.read_bps),
                ("disks.write_bps", d.write_bps),
            ]);
        }
        for n in &self.nets {
            floats.extend([("nets.rx_bps", n.rx_bps), ("nets.tx_bps", n.tx_bps)]);
        }
        for g in &self.gpus {
            floats.push(("gpus.util_pct", f64::from(g.util_pct)));
            floats.extend(g.power_w.map(|p| ("gpus.power_w", f64::from(p))));
        }
        floats.extend(
            self.latency
                .iter()
                .filter_map(|l| l.ms)
                .map(|ms| ("latency.ms", f64::from(ms))),
        );
        floats.extend(
            self.containers
                .iter()
                .map(|c| ("containers.cpu_pct", f64::from(c.cpu_pct))),
        );
        for (name, value) in floats {
            if !value.is_finite() || value < 0.0 {
                return Err(format!("{name} must be a finite number ≥ 0, not {value}"));
            }
        }
        // Temperatures may be below zero, but must be numbers.
        let temps = self.temps.iter().map(|t| t.celsius);
        let gpu_temps = self.gpus.iter().filter_map(|g| g.temp_c);
        if let Some(bad) = temps.chain(gpu_temps).find(|t| !t.is_finite()) {
            return Err(format!("temperatures must be finite, not {bad}"));
        }
        Ok(())
    }
}

/// An item that lives in a keyed collection of [`NodeState`].
pub trait Keyed {
    fn key(&self) -> String;
}

impl<T: Keyed> Keyed for Box<T> {
    fn key(&self) -> String {
        T::key(self)
    }
}

impl Keyed for Container {
    fn key(&self) -> String {
        self.id.clone()
    }
}

impl Keyed for Route {
    /// `provider/instance/host/path`: one route per matcher of one proxy.
    fn key(&self) -> String {
        let provider = match self.provider {
            ProxyProvider::Nginx => "nginx",
            ProxyProvider::Caddy => "caddy",
            ProxyProvider::Traefik => "traefik",
        };
        format!("{provider}/{}/{}{}", self.instance, self.host, self.path)
    }
}

impl Keyed for Unit {
    fn key(&self) -> String {
        match self.user {
            true => format!("user:{}", self.name),
            false => self.name.to_string(),
        }
    }
}

impl Keyed for Port {
    fn key(&self) -> String {
        format!("{}/{}:{}", self.protocol, self.address, self.port)
    }
}

impl Keyed for SourceStatus {
    fn key(&self) -> String {
        self.name.to_string()
    }
}

impl Keyed for Interface {
    fn key(&self) -> String {
        self.name.clone()
    }
}

impl Keyed for Mount {
    fn key(&self) -> String {
        self.path.clone()
    }
}

impl Keyed for WatchedFile {
    fn key(&self) -> String {
        self.path.clone()
    }
}

impl Keyed for DiskHealth {
    fn key(&self) -> String {
        self.device.clone()
    }
}

impl Keyed for Process {
    fn key(&self) -> String {
        self.pid.to_string()
    }
}

/// Why a reported state is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("{collection} entry {key:?} does not match its item's key {expected:?}")]
    KeyMismatch {
        collection: &'static str,
        key: String,
        expected: String,
    },
    #[error("not a finite number ≥ 0: {0}")]
    BadNumber(String),
    #[error("{collection} has {len} entries, more than the limit of {limit}")]
    TooMany {
        collection: &'static str,
        len: usize,
        limit: usize,
    },
}

/// The most items one collection may hold.
pub const MAX_COLLECTION_LEN: usize = 50_000;

impl NodeState {
    /// Checks that every collection is keyed by its items' keys and within limits.
    pub fn validate(&self) -> Result<(), StateError> {
        check_collection("containers", &self.containers)?;
        check_collection("units", &self.units)?;
        check_collection("ports", &self.ports)?;
        check_collection("sources", &self.sources)?;
        check_collection("interfaces", &self.interfaces)?;
        check_collection("mounts", &self.mounts)?;
        check_collection("processes", &self.processes)?;
        check_collection("disk_health", &self.disk_health)?;
        check_collection("files", &self.files)?;
        check_collection("routes", &self.routes)?;
        self.check_numbers()
    }

    /// Checks that every float is finite (JSON cannot carry the others back out).
    pub fn check_numbers(&self) -> Result<(), StateError> {
        match self
            .processes
            .values()
            .find(|p| !p.cpu_pct.is_finite() || p.cpu_pct < 0.0)
        {
            Some(p) => Err(StateError::BadNumber(format!(
                "process {} cpu_pct {}",
                p.pid, p.cpu_pct
            ))),
            None => Ok(()),
        }
    }
}

fn check_collection<T: Keyed>(
    collection: &'static str,
    map: &BTreeMap<String, T>,
) -> Result<(), StateError> {
    if map.len() > MAX_COLLECTION_LEN {
        return Err(StateError::TooMany {
            collection,
            len: map.len(),
            limit: MAX_COLLECTION_LEN,
        });
    }
    for (key, item) in map {
        let expected = item.key();
        if *key != expected {
            return Err(StateError::KeyMismatch {
                collection,
                key: key.clone(),
                expected,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_sorted_exact_and_last_value_wins() {
        let c: Container =
            serde_json::from_str(r#"{"id":"c","name":"n","labels":{"b":"1","a":"2","b":"3"}}"#)
                .unwrap();
        let labels: Vec<(&str, &str)> = c
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(labels, [("a", "2"), ("b", "3")]);
        assert_eq!(c.labels.get("b").map(Str::as_str), Some("3"));
        // On the wire they are a map again.
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["labels"], serde_json::json!({"a": "2", "b": "3"}));
        let none: Container = serde_json::from_str(r#"{"id":"c","name":"n"}"#).unwrap();
        assert!(none.labels.is_empty());
        let back = serde_json::to_value(&none).unwrap();
        assert_eq!(back["labels"], serde_json::json!({}));
        assert!(serde_json::from_str::<Container>(r#"{"id":"c","labels":["a"]}"#).is_err());
    }
}
