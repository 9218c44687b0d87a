//! One simulated host: a believable twin that changes over time (pure logic).
//!
//! [`SimHost::new`] invents a host (cores, mounts, interfaces, 5–40
//! containers, units, listening ports) from a random generator;
//! [`SimHost::step`] moves it on by one interval: metrics drift, and with
//! the configured churn a container restarts, a port opens or closes, or a
//! unit fails and recovers. Container starts carry their wall-clock time in
//! `started_at` (milliseconds), which is how the hub-scale benchmark
//! measures latency from a change in the simulator to a UI client.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use fastrand::Rng;
use twinbay_proto::model::{
    Container, ContainerSample, DiskSample, HostInfo, Interface, Keyed, Mount, NetSample,
    NodeState, Port, Process, Sample, SourceStatus, TempSample, Unit,
};

const ROLES: &[&str] = &[
    "web", "db", "cache", "build", "nas", "media", "k8s", "edge", "mon", "git", "backup", "dev",
];
const SITES: &[&str] = &[
    "lab",
    "rack-a",
    "rack-b",
    "office",
    "cloud-fra",
    "cloud-ams",
];
const OSES: &[(&str, &str)] = &[
    ("Debian GNU/Linux 12 (bookworm)", "6.1.0-27-amd64"),
    ("Ubuntu 24.04.1 LTS", "6.8.0-49-generic"),
    ("Fedora Linux 41 (Server Edition)", "6.11.8-300.fc41.x86_64"),
    (
        "Rocky Linux 9.4 (Blue Onyx)",
        "5.14.0-427.13.1.el9_4.x86_64",
    ),
    ("Proxmox VE 8.2", "6.8.12-4-pve"),
];
/// Spreads an image's index over an id's 64 hex digits.
const IMAGE_ID_SEED: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
/// (image, service, container port)
const IMAGES: &[(&str, &str, u16)] = &[
    ("docker.io/library/nginx:1.27", "nginx", 80),
    ("docker.io/library/postgres:16", "postgres", 5432),
    ("docker.io/library/redis:7.4", "redis", 6379),
    ("docker.io/grafana/grafana:11.3.0", "grafana", 3000),
    ("docker.io/prom/prometheus:v2.55.1", "prometheus", 9090),
    ("docker.io/library/traefik:v3.2", "traefik", 443),
    ("docker.io/jellyfin/jellyfin:10.10", "jellyfin", 8096),
    (
        "ghcr.io/home-assistant/home-assistant:2024.11",
        "homeassistant",
        8123,
    ),
    ("docker.io/pihole/pihole:2024.07.0", "pihole", 53),
    ("docker.io/vaultwarden/server:1.32.5", "vaultwarden", 80),
    ("docker.io/library/nextcloud:30", "nextcloud", 80),
    ("docker.io/gitea/gitea:1.22", "gitea", 3000),
    ("quay.io/minio/minio:RELEASE.2024-11-07", "minio", 9000),
    ("docker.io/library/eclipse-mosquitto:2.0", "mosquitto", 1883),
    ("docker.io/nodered/node-red:4.0", "node-red", 1880),
    ("docker.io/louislam/uptime-kuma:1.23", "uptime-kuma", 3001),
    ("docker.io/library/mariadb:11.4", "mariadb", 3306),
    ("docker.io/library/rabbitmq:4.0", "rabbitmq", 5672),
];
const PROJECTS: &[&str] = &["media", "monitoring", "home", "web", "infra", "dev"];
const UNITS: &[(&str, &str)] = &[
    ("sshd.service", "OpenSSH server daemon"),
    (
        "cron.service",
        "Regular background program processing daemon",
    ),
    ("systemd-journald.service", "Journal Service"),
    ("systemd-networkd.service", "Network Configuration"),
    ("systemd-resolved.service", "Network Name Resolution"),
    ("chrony.service", "chrony, an NTP client/server"),
    ("podman.service", "Podman API Service"),
    ("nginx.service", "A high performance web server"),
    (
        "unattended-upgrades.service",
        "Unattended Upgrades Shutdown",
    ),
    ("smartd.service", "Self Monitoring and Reporting Technology"),
    ("zfs-zed.service", "ZFS Event Daemon (zed)"),
    ("wg-quick@wg0.service", "WireGuard via wg-quick(8) for wg0"),
    ("restic-backup.service", "Nightly restic backup"),
    ("apt-daily.timer", "Daily apt download activities"),
    ("logrotate.timer", "Daily rotation of log files"),
    ("fstrim.timer", "Discard unused blocks once a week"),
    ("restic-backup.timer", "Nightly restic backup"),
];
const PROCESSES: &[&str] = &[
    "postgres",
    "java",
    "node",
    "python3",
    "jellyfin",
    "nginx",
    "redis-server",
    "prometheus",
    "grafana",
    "dockerd",
    "conmon",
    "sshd",
    "systemd-journal",
    "qemu-system-x86",
];

/// A simulated host and the drifting numbers behind its samples.
#[derive(Debug)]
pub struct SimHost {
    pub state: NodeState,
    rng: Rng,
    base_cpu: f32,
    cpu: f32,
    mem_total: u64,
    mem_used: u64,
    disk: Vec<(String, u64, u64)>,
    nets: Vec<(String, f64)>,
    /// Containers stopped by churn, started again on the next step.
    restarting: Vec<String>,
    /// Units failed by churn, recovered on the next step.
    failed: Vec<String>,
    booted_ms: i64,
}

/// What one step changed, besides the numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Churn {
    pub containers: usize,
    pub ports: usize,
    pub units: usize,
}

impl SimHost {
    /// Invents host number `index` of a simulated fleet.
    pub fn new(index: usize, seed: u64, now_ms: i64) -> SimHost {
        let mut rng = Rng::with_seed(seed);
        let role = ROLES[rng.usize(..ROLES.len())];
        let site = SITES[rng.usize(..SITES.len())];
        let (os, kernel) = OSES[rng.usize(..OSES.len())];
        let cores = [2u32, 4, 4, 8, 8, 16, 32, 64][rng.usize(..8)];
        let mem_total = (u64::from(cores) * [2u64, 4, 8][rng.usize(..3)]) << 30;
        let booted_ms = now_ms - rng.i64(3_600_000..90 * 86_400_000);
        let mut state = NodeState {
            host: HostInfo {
                hostname: format!("{role}-{index:05}"),
                os: os.into(),
                kernel: kernel.into(),
                arch: if rng.u8(..10) == 0 {
                    "aarch64"
                } else {
                    "x86_64"
                }
                .into(),
                agent_version: crate::VERSION.into(),
                boot_time: booted_ms / 1000,
                cpu_cores: cores,
                labels: BTreeMap::from([
                    ("site".into(), site.into()),
                    ("role".into(), role.into()),
                    ("twinbay.simulated".into(), "true".into()),
                ]),
            },
            ..NodeState::default()
        };
        let mut add_source = |name: &str, reason: Option<&str>| {
            let s = SourceStatus {
                name: name.into(),
                available: reason.is_none(),
                reason: reason.map(Into::into),
            };
            state.sources.insert(s.key(), s);
        };
        add_source("host", None);
        add_source("containers", None);
        add_source("units", None);
        add_source("ports", None);
        add_source("gpu", Some("NVML not found: no NVIDIA driver on this host"));
        add_source("smart", Some("smartctl needs root to read disks"));

        let mut disk = vec![("/".to_string(), 64u64 << 30, 0u64)];
        disk.push(("/boot".into(), 1 << 30, 0));
        if rng.bool() {
            disk.push(("/srv".into(), rng.u64(1..16) << 40, 0));
        }
        for (path, total, used) in &mut disk {
            *used = (*total as f64 * (0.1 + rng.f64() * 0.75)) as u64;
            let m = Mount {
                path: path.clone(),
                device: format!("/dev/nvme0n1p{}", 1 + state.mounts.len()).into(),
                fs_type: if path == "/boot" { "vfat" } else { "ext4" }.into(),
                error: None,
            };
            state.mounts.insert(m.key(), m);
        }
        let uplink = if rng.bool() { "eth0" } else { "enp3s0" };
        let mut nets = vec![(uplink.to_string(), 1.0 + rng.f64() * 40.0)];
        nets.push(("podman0".into(), rng.f64() * 5.0));
        for (name, _) in &nets {
            let i = Interface {
                name: name.clone(),
                mac: Some(mac(&mut rng)),
                up: true,
                speed_mbps: (name != "podman0").then_some([1000, 2500, 10000][rng.usize(..3)]),
                duplex: (name != "podman0").then(|| "full".into()),
                mtu: Some(1500),
            };
            state.interfaces.insert(i.key(), i);
        }

        let mut host = SimHost {
            state,
            rng,
            base_cpu: 0.0,
            cpu: 0.0,
            mem_total,
            mem_used: 0,
            disk,
            nets,
            restarting: Vec::new(),
            failed: Vec::new(),
            booted_ms,
        };
        host.base_cpu = 2.0 + host.rng.f32() * 40.0;
        host.cpu = host.base_cpu;
        host.mem_used = (mem_total as f64 * (0.2 + host.rng.f64() * 0.5)) as u64;
        host.add_port("tcp", "0.0.0.0", 22, "sshd");
        host.add_port("tcp", "[::]", 22, "sshd");
        host.add_port("udp", "127.0.0.53", 53, "systemd-resolve");
        for n in 0..host.rng.usize(5..=40) {
            host.add_container(n, now_ms);
        }
        let units = host.rng.usize(8..=UNITS.len());
        for &(name, description) in UNITS.iter().take(units) {
            let u = Unit {
                name: name.into(),
                description: description.into(),
                load_state: "loaded".into(),
                active_state: "active".into(),
                sub_state: if name.ends_with(".timer") {
                    "waiting"
                } else {
                    "running"
                }
                .into(),
                since: Some(booted_ms * 1000),
                user: false,
                main_pid: name
                    .ends_with(".service")
                    .then(|| host.rng.u32(200..60_000)),
                memory_bytes: Some(host.rng.u64(2 << 20..400 << 20)),
                cpu_nsec: Some(host.rng.u64(1..1 << 40)),
                fragment_path: Some(format!("/usr/lib/systemd/system/{name}").into()),
                ..Unit::default()
            };
            host.state.units.insert(u.key(), u.into());
        }
        host.refresh_processes();
        host
    }

    fn add_port(&mut self, protocol: &str, address: &str, port: u16, process: &str) {
        let p = Port {
            protocol: protocol.into(),
            address: address.into(),
            port,
            process: Some(process.into()),
            pid: Some(self.rng.u32(200..60_000)),
        };
        self.state.ports.insert(p.key(), p);
    }

    fn add_container(&mut self, n: usize, now_ms: i64) {
        let which = self.rng.usize(..IMAGES.len());
        let (image, service, inner) = IMAGES[which];
        let project = PROJECTS[self.rng.usize(..PROJECTS.len())];
        let id: String = (0..64)
            .map(|_| char::from_digit(self.rng.u32(..16), 16).unwrap_or('0'))
            .collect();
        let running = self.rng.u8(..20) != 0;
        let published = 8000 + (n as u16) * 7 + self.rng.u16(..7);
        let c = Container {
            id: id.clone(),
            name: format!("{project}-{service}-{n}").into(),
            image: image.into(),
            state: if running { "running" } else { "exited" }.into(),
            health: (service == "postgres" || service == "nextcloud").then(|| "healthy".into()),
            exit_code: (!running).then_some([0, 1, 137][self.rng.usize(..3)]),
            restart_count: self.rng.u32(..3),
            ports: vec![format!("0.0.0.0:{published}->{inner}/tcp")],
            labels: [
                ("com.docker.compose.project".into(), project.into()),
                ("com.docker.compose.service".into(), service.into()),
            ]
            .into_iter()
            .collect(),
            compose_project: Some(project.into()),
            compose_service: Some(service.into()),
            created: Some(rfc3339(self.booted_ms)),
            started_at: Some(rfc3339(now_ms - self.rng.i64(60_000..86_400_000))),
            // One id per image, as on real hosts (and across them).
            image_id: Some(
                format!(
                    "sha256:{:064x}",
                    (which as u128 + 1).wrapping_mul(IMAGE_ID_SEED)
                )
                .into(),
            ),
        };
        if running {
            self.add_port("tcp", "0.0.0.0", published, "conmon");
        }
        self.state.containers.insert(id, Box::new(c));
    }

    fn refresh_processes(&mut self) {
        self.state.processes.clear();
        for (i, name) in PROCESSES.iter().take(6).enumerate() {
            let p = Process {
                pid: 1000 + i as u32 * 97,
                name: (*name).into(),
                cpu_pct: (self.cpu / (i as f32 + 1.5) * 10.0).round() / 10.0,
                rss: (self.mem_used / 16) >> i,
                uid: Some(if i % 2 == 0 { 0 } else { 1000 }),
            };
            self.state.processes.insert(p.key(), p);
        }
    }

    /// Moves the host on by one interval ending at `now_ms`: `churn` is the
    /// chance of one state change (container restart, port, unit) this step.
    /// Returns what changed and the step's sample.
    pub fn step(&mut self, now_ms: i64, interval: Duration, churn: f64) -> (Churn, Sample) {
        let mut changed = Churn::default();
        // Finish last step's restarts and recoveries first.
        for id in std::mem::take(&mut self.restarting) {
            if let Some(c) = self.state.containers.get_mut(&id) {
                c.state = "running".into();
                c.exit_code = None;
                c.restart_count += 1;
                c.started_at = Some(rfc3339(now_ms));
                changed.containers += 1;
            }
        }
        for name in std::mem::take(&mut self.failed) {
            if let Some(u) = self.state.units.get_mut(&name) {
                u.active_state = "active".into();
                u.sub_state = "running".into();
                u.since = Some(now_ms * 1000);
                changed.units += 1;
            }
        }
        if self.rng.f64() < churn {
            match self.rng.u8(..10) {
                0..=5 => self.stop_a_container(&mut changed),
                6..=7 => self.flip_a_port(&mut changed),
                _ => self.fail_a_unit(now_ms, &mut changed),
            }
        }
        self.cpu = (self.cpu + (self.rng.f32() - 0.5) * 8.0 + (self.base_cpu - self.cpu) * 0.2)
            .clamp(0.5, 100.0);
        let drift = (self.rng.f64() - 0.5) * 0.02 * self.mem_total as f64;
        self.mem_used = (self.mem_used as f64 + drift)
            .clamp(0.1 * self.mem_total as f64, 0.95 * self.mem_total as f64)
            as u64;
        self.refresh_processes();
        (changed, self.sample(now_ms, interval))
    }

    fn stop_a_container(&mut self, changed: &mut Churn) {
        let running: Vec<&String> = self
            .state
            .containers
            .iter()
            .filter(|(_, c)| c.state == "running")
            .map(|(id, _)| id)
            .collect();
        if running.is_empty() {
            return;
        }
        let id = running[self.rng.usize(..running.len())].clone();
        if let Some(c) = self.state.containers.get_mut(&id) {
            c.state = "exited".into();
            c.exit_code = Some(if self.rng.u8(..4) == 0 { 137 } else { 0 });
            changed.containers += 1;
            self.restarting.push(id);
        }
    }

    fn flip_a_port(&mut self, changed: &mut Churn) {
        let port = 30_000 + self.rng.u16(..20);
        let key = format!("tcp/0.0.0.0:{port}");
        if self.state.ports.remove(&key).is_none() {
            self.add_port("tcp", "0.0.0.0", port, "python3");
        }
        changed.ports += 1;
    }

    fn fail_a_unit(&mut self, now_ms: i64, changed: &mut Churn) {
        let services: Vec<&String> = self
            .state
            .units
            .keys()
            .filter(|k| k.ends_with(".service"))
            .collect();
        if services.is_empty() {
            return;
        }
        let name = services[self.rng.usize(..services.len())].clone();
        if let Some(u) = self.state.units.get_mut(&name) {
            u.active_state = "failed".into();
            u.sub_state = "failed".into();
            u.since = Some(now_ms * 1000);
            changed.units += 1;
            self.failed.push(name);
        }
    }

    fn sample(&mut self, now_ms: i64, interval: Duration) -> Sample {
        let rng = &mut self.rng;
        let cores = self.state.host.cpu_cores as usize;
        let cpu = self.cpu;
        let secs = interval.as_secs_f64().max(1.0);
        for (_, total, used) in &mut self.disk {
            *used = (*used + rng.u64(..(1 << 20))).min(*total);
        }
        Sample {
            ts_ms: now_ms,
            cpu_pct: round1(cpu),
            load1: round1(cpu / 100.0 * cores as f32 * (0.8 + rng.f32() * 0.4)),
            load5: round1(cpu / 100.0 * cores as f32),
            load15: round1(self.base_cpu / 100.0 * cores as f32),
            mem_total: self.mem_total,
            mem_used: self.mem_used,
            mem_available: self.mem_total - self.mem_used,
            swap_total: 2 << 30,
            swap_used: self.mem_used / 64,
            uptime_secs: ((now_ms - self.booted_ms) / 1000).max(0) as u64,
            cores: (0..cores)
                .map(|_| round1((cpu * (0.5 + rng.f32())).min(100.0)))
                .collect(),
            cpu_mhz: Some(2400.0 + rng.f32() * 1200.0),
            disks: self
                .disk
                .iter()
                .map(|(mount, total, used)| DiskSample {
                    mount: mount.clone(),
                    total: *total,
                    used: *used,
                    read_bps: (rng.f64() * 4e6 / secs).round(),
                    write_bps: (rng.f64() * 8e6 / secs).round(),
                })
                .collect(),
            nets: self
                .nets
                .iter()
                .map(|(iface, mbps)| NetSample {
                    iface: iface.clone(),
                    rx_bps: (mbps * 125_000.0 * (0.5 + rng.f64())).round(),
                    tx_bps: (mbps * 40_000.0 * (0.5 + rng.f64())).round(),
                    ..NetSample::default()
                })
                .collect(),
            temps: vec![TempSample {
                sensor: "coretemp/Package id 0".into(),
                celsius: round1(35.0 + cpu * 0.4 + rng.f32() * 3.0),
            }],
            containers: self
                .state
                .containers
                .values()
                .filter(|c| c.state == "running")
                .map(|c| ContainerSample {
                    id: c.id.clone(),
                    cpu_pct: round1(rng.f32() * cpu / 4.0),
                    mem_bytes: rng.u64(16 << 20..1 << 30),
                    mem_limit: 0,
                })
                .collect(),
            ..Sample::default()
        }
    }
}

fn round1(v: f32) -> f32 {
    (v * 10.0).round() / 10.0
}

fn mac(rng: &mut Rng) -> String {
    let bytes: Vec<String> = (0..6)
        .map(|i| format!("{:02x}", if i == 0 { 0x52 } else { rng.u8(..) }))
        .collect();
    bytes.join(":")
}

/// `2026-11-22T07:18:03.123Z`, as container runtimes report times.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    #[test]
    fn invents_a_believable_valid_host() {
        let host = SimHost::new(7, 42, NOW);
        let s = &host.state;
        assert!(s.host.hostname.ends_with("-00007"), "{}", s.host.hostname);
        assert!((5..=40).contains(&s.containers.len()));
        assert!(s.units.len() >= 8);
        assert!(s.ports.contains_key("tcp/0.0.0.0:22"));
        assert!(!s.mounts.is_empty() && !s.interfaces.is_empty());
        assert_eq!(s.host.labels["twinbay.simulated"], "true");
        s.validate().unwrap();
    }

    #[test]
    fn the_same_seed_invents_the_same_host() {
        let a = SimHost::new(1, 9, NOW);
        let b = SimHost::new(1, 9, NOW);
        assert_eq!(a.state, b.state);
        assert_ne!(a.state, SimHost::new(1, 10, NOW).state);
    }

    #[test]
    fn samples_drift_and_stay_valid() {
        let mut host = SimHost::new(0, 3, NOW);
        let mut cpus = Vec::new();
        for i in 1..=50 {
            let (_, sample) = host.step(NOW + i * 5000, Duration::from_secs(5), 0.0);
            sample.validate().unwrap();
            assert_eq!(sample.ts_ms, NOW + i * 5000);
            assert_eq!(sample.cores.len(), host.state.host.cpu_cores as usize);
            assert!(sample.mem_used < sample.mem_total);
            cpus.push(sample.cpu_pct);
        }
        cpus.dedup();
        assert!(cpus.len() > 10, "cpu should drift: {cpus:?}");
    }

    #[test]
    fn churn_restarts_containers_and_stamps_the_start() {
        let mut host = SimHost::new(0, 5, NOW);
        let mut stops = 0;
        let mut starts = 0;
        for i in 1..=200 {
            let now = NOW + i * 5000;
            let before = host.state.clone();
            let (churn, _) = host.step(now, Duration::from_secs(5), 1.0);
            for (id, c) in &host.state.containers {
                let was = &before.containers[id];
                if was.state == "running" && c.state == "exited" {
                    stops += 1;
                }
                if was.state == "exited" && c.state == "running" {
                    starts += 1;
                    assert_eq!(c.started_at.as_deref(), Some(rfc3339(now).as_str()));
                }
            }
            assert!(churn.containers + churn.ports + churn.units >= 1 || before == host.state);
            host.state.validate().unwrap();
        }
        assert!(stops > 50 && starts > 50, "stops {stops}, starts {starts}");
    }

    #[test]
    fn without_churn_only_processes_change() {
        let mut host = SimHost::new(0, 8, NOW);
        let before = host.state.clone();
        for i in 1..=20 {
            let (churn, _) = host.step(NOW + i * 5000, Duration::from_secs(5), 0.0);
            assert_eq!(churn, Churn::default());
        }
        assert_eq!(before.containers, host.state.containers);
        assert_eq!(before.units, host.state.units);
        assert_eq!(before.ports, host.state.ports);
    }

    #[test]
    fn formats_times_like_container_runtimes() {
        assert_eq!(rfc3339(1_790_000_000_123), "2026-09-21T14:13:20.123Z");
    }
}
