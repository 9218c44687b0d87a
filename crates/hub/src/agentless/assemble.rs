//! Pure: the latest outcome of each registry command → the node's twin and
//! a metric sample. Rates (CPU, network) come from two readings, so the
//! [`Assembler`] keeps the previous counters.

use std::collections::{BTreeMap, HashMap};

use twinbay_collect::{df, procfs};
use twinbay_proto::model::{
    DiskSample, Interface, Mount, NetSample, NodeState, Sample, SourceStatus,
};

use super::registry::{self, Parsed, Part};

/// How one command went on its latest run.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok(Parsed),
    /// It ran (or could not) and failed: the reason.
    Failed(String),
    /// None of its programs is on the host.
    Absent(String),
}

/// A command's latest outcome and when it was taken (unix ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    pub outcome: Outcome,
    pub at_ms: i64,
}

/// Latest outcomes by registry command name (`files` for the watched files).
pub type Results = BTreeMap<&'static str, Taken>;

#[derive(Debug, Default)]
pub struct Assembler {
    prev_stat: Option<(i64, procfs::Stat)>,
    prev_net: Option<(i64, HashMap<String, procfs::NetCounters>)>,
}

fn ok<'a>(r: &'a Results, name: &str) -> Option<(&'a Parsed, i64)> {
    match r.get(name) {
        Some(Taken {
            outcome: Outcome::Ok(p),
            at_ms,
        }) => Some((p, *at_ms)),
        _ => None,
    }
}

impl Assembler {
    /// The twin after this run, starting from `last` (parts whose commands
    /// failed keep what they had, marked unavailable) and the sample, when
    /// CPU, memory and load were all read this run.
    pub fn build(
        &mut self,
        results: &Results,
        last: &NodeState,
        now_ms: i64,
    ) -> (NodeState, Option<Sample>) {
        let mut state = last.clone();
        let mut host = last.host.clone();
        if let Some((Parsed::Uname(u), _)) = ok(results, "uname") {
            host.hostname = u.hostname.clone();
            host.kernel = u.kernel.as_str().into();
            host.arch = u.arch.as_str().into();
        }
        if let Some((Parsed::Os(os), _)) = ok(results, "os-release") {
            host.os = os.as_str().into();
        } else if host.os.is_empty() {
            host.os = "Linux".into();
        }
        host.agent_version = Default::default();

        // CPU, from two readings of /proc/stat taken at different runs.
        let mut cpu = None;
        if let Some((Parsed::Stat(stat), at)) = ok(results, "stat") {
            host.boot_time = stat.boot_time;
            host.cpu_cores = stat.cores.max(1);
            match &self.prev_stat {
                Some((prev_at, _)) if *prev_at == at => {}
                prev => {
                    cpu = Some(procfs::cpu_usage(prev.as_ref().map(|(_, p)| p), stat));
                    self.prev_stat = Some((at, stat.clone()));
                }
            }
        }
        state.host = host;

        // Disks.
        let mut disks = Vec::new();
        if let Some((Parsed::Df(rows), _)) = ok(results, "df") {
            let rows: Vec<&df::DfRow> = rows.iter().filter(|r| !df::is_pseudo(r)).collect();
            state.mounts = rows
                .iter()
                .map(|r| {
                    (
                        r.mount.clone(),
                        Mount {
                            path: r.mount.clone(),
                            device: r.device.as_str().into(),
                            fs_type: Default::default(),
                            error: None,
                        },
                    )
                })
                .collect();
            disks = rows
                .iter()
                .map(|r| DiskSample {
                    mount: r.mount.clone(),
                    total: r.total,
                    used: r.used,
                    ..Default::default()
                })
                .collect();
        }

        // Interfaces and their rates.
        let mut nets = Vec::new();
        let addrs = match ok(results, "ip-addr") {
            Some((Parsed::Addrs(a), _)) => Some(a),
            _ => None,
        };
        if let Some((Parsed::Counters(counters), at)) = ok(results, "net-counters") {
            let counters: HashMap<String, procfs::NetCounters> = counters
                .iter()
                .filter(|(n, _)| procfs::is_interesting(n))
                .cloned()
                .collect();
            let fresh = self.prev_net.as_ref().is_none_or(|(p, _)| *p != at);
            if fresh {
                let prev = self.prev_net.take();
                let secs = prev.as_ref().map_or(0.0, |(p, _)| (at - p) as f64 / 1000.0);
                let mut names: Vec<&String> = counters.keys().collect();
                names.sort();
                for name in names {
                    let now = counters[name];
                    let before = prev.as_ref().and_then(|(_, m)| m.get(name));
                    let rate =
                        |cur: u64, old: Option<u64>| match old.and_then(|o| cur.checked_sub(o)) {
                            Some(d) if secs > 0.0 => d as f64 / secs,
                            _ => 0.0,
                        };
                    nets.push(NetSample {
                        iface: name.clone(),
                        rx_bps: rate(now.rx_bytes, before.map(|b| b.rx_bytes)),
                        tx_bps: rate(now.tx_bytes, before.map(|b| b.tx_bytes)),
                        rx_errors: now.rx_errors,
                        tx_errors: now.tx_errors,
                        rx_drops: now.rx_drops,
                        tx_drops: now.tx_drops,
                    });
                }
                if addrs.is_none() {
                    // /proc/net/dev only (BusyBox): a link that moved bytes is up.
                    state.interfaces = counters
                        .iter()
                        .map(|(name, c)| {
                            let moved =
                                prev.as_ref()
                                    .and_then(|(_, m)| m.get(name))
                                    .is_some_and(|p| {
                                        p.rx_bytes != c.rx_bytes || p.tx_bytes != c.tx_bytes
                                    });
                            let iface = Interface {
                                name: name.clone(),
                                up: moved,
                                ..Default::default()
                            };
                            (name.clone(), iface)
                        })
                        .collect();
                }
                self.prev_net = Some((at, counters));
            }
        }
        if let Some(addrs) = addrs {
            state.interfaces = addrs
                .iter()
                .filter(|a| procfs::is_interesting(&a.interface.name))
                .map(|a| (a.interface.name.clone(), a.interface.clone()))
                .collect();
        }

        // Listening ports: each protocol kept from before when its command failed.
        for (name, prefix) in [("tcp-listeners", "tcp"), ("udp-listeners", "udp")] {
            if let Some((Parsed::Ports(ports), _)) = ok(results, name) {
                state.ports.retain(|_, p| !p.protocol.starts_with(prefix));
                for p in ports {
                    state
                        .ports
                        .insert(twinbay_proto::model::Keyed::key(p), p.clone());
                }
            }
        }
        match results.get("units").map(|t| &t.outcome) {
            Some(Outcome::Ok(Parsed::Units(units))) => {
                state.units = units
                    .iter()
                    .map(|u| (u.name.to_string(), Box::new(u.clone())))
                    .collect();
            }
            Some(Outcome::Absent(_)) => state.units.clear(),
            _ => {}
        }
        match results.get("containers").map(|t| &t.outcome) {
            Some(Outcome::Ok(Parsed::Containers(list))) => {
                state.containers = list
                    .iter()
                    .map(|c| (c.id.clone(), Box::new(c.clone())))
                    .collect();
            }
            Some(Outcome::Absent(_)) => state.containers.clear(),
            _ => {}
        }
        if let Some((Parsed::Files(files), _)) = ok(results, "files") {
            state.files = files.iter().map(|f| (f.path.clone(), f.clone())).collect();
        }
        // An agent's processes, routes… do not come from here.
        state.processes.clear();
        state.sources = sources(results);

        let sample = match (cpu, ok(results, "meminfo"), ok(results, "loadavg")) {
            (
                Some((cpu_pct, cores)),
                Some((Parsed::Mem(mem), _)),
                Some((Parsed::Load(load), _)),
            ) => {
                let uptime = match ok(results, "uptime") {
                    Some((Parsed::Uptime(u), _)) => *u,
                    _ => 0,
                };
                Some(Sample {
                    disks,
                    nets,
                    ..procfs::host_sample(now_ms, (cpu_pct, cores), *load, mem, uptime)
                })
            }
            _ => None,
        };
        (state, sample)
    }
}

/// One source per part: available when every command feeding it answered.
pub fn sources(results: &Results) -> BTreeMap<String, SourceStatus> {
    let mut by_part: BTreeMap<Part, Vec<String>> = BTreeMap::new();
    let mut seen: BTreeMap<Part, bool> = BTreeMap::new();
    let commands = registry::commands()
        .iter()
        .map(|c| (c.name, c.part, c.optional))
        .chain(std::iter::once(("files", Part::Files, true)));
    for (name, part, optional) in commands {
        let Some(taken) = results.get(name) else {
            continue;
        };
        seen.insert(part, true);
        let why = match &taken.outcome {
            Outcome::Ok(_) => continue,
            Outcome::Failed(reason) => reason.clone(),
            Outcome::Absent(reason) if optional && part != Part::Host && part != Part::Net => {
                format!("not on this host: {reason}")
            }
            Outcome::Absent(_) => continue,
        };
        by_part.entry(part).or_default().push(why);
    }
    seen.into_keys()
        .map(|part| {
            let reasons = by_part.remove(&part).unwrap_or_default();
            let name = part.source().to_string();
            let status = SourceStatus {
                name: name.as_str().into(),
                available: reasons.is_empty(),
                reason: (!reasons.is_empty()).then(|| reasons.join("; ").into()),
            };
            (name, status)
        })
        .collect()
}

/// Every source of `state` marked unavailable for `reason` (the host could
/// not be reached): the rest of the twin stays as it was last seen.
pub fn unreachable(state: &NodeState, reason: &str) -> NodeState {
    let mut state = state.clone();
    for s in state.sources.values_mut() {
        s.available = false;
        s.reason = Some(reason.into());
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(outcome: Outcome, at_ms: i64) -> Taken {
        Taken { outcome, at_ms }
    }

    fn parse(name: &str, text: &str) -> Outcome {
        let c = registry::commands()
            .iter()
            .find(|c| c.name == name)
            .unwrap();
        match (c.variants[0].parse)(text) {
            Ok(p) => Outcome::Ok(p),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    #[test]
    fn cpu_and_net_rates_come_from_two_runs() {
        let mut a = Assembler::default();
        let mut r = Results::new();
        let stat = |busy: u64, idle: u64| {
            format!(
                "cpu  {busy} 0 0 {idle} 0 0 0 0\ncpu0 {busy} 0 0 {idle} 0 0 0 0\nbtime 1700000000\n"
            )
        };
        let dev = |rx: u64| {
            format!(
                "Inter-| Receive | Transmit\n face |bytes\n  eth0: {rx} 0 0 0 0 0 0 0 {rx} 0 0 0 0 0 0 0\n"
            )
        };
        r.insert("stat", taken(parse("stat", &stat(100, 900)), 1_000));
        r.insert(
            "meminfo",
            taken(
                parse("meminfo", "MemTotal: 100 kB\nMemAvailable: 25 kB\n"),
                1_000,
            ),
        );
        r.insert(
            "loadavg",
            taken(parse("loadavg", "0.5 0.4 0.3 1/1 1"), 1_000),
        );
        r.insert(
            "net-counters",
            taken(
                Outcome::Ok(Parsed::Counters(procfs::net_dev(&dev(1000)).unwrap())),
                1_000,
            ),
        );
        let (state, sample) = a.build(&r, &NodeState::default(), 1_000);
        let first = sample.unwrap();
        assert_eq!(first.cpu_pct, 0.0, "no rate from one reading");
        assert_eq!(first.mem_used, 75 * 1024);
        assert_eq!(state.host.cpu_cores, 1);
        assert!(
            state.sources.values().all(|s| s.available),
            "{:?}",
            state.sources
        );

        r.insert("stat", taken(parse("stat", &stat(150, 1_050)), 31_000));
        r.insert(
            "net-counters",
            taken(
                Outcome::Ok(Parsed::Counters(procfs::net_dev(&dev(31_000)).unwrap())),
                31_000,
            ),
        );
        let (state, sample) = a.build(&r, &state, 31_000);
        let second = sample.unwrap();
        assert_eq!(second.cpu_pct, 25.0);
        assert_eq!(second.cores, [25.0]);
        assert_eq!(second.nets[0].rx_bps, 1000.0);
        assert!(state.interfaces["eth0"].up, "bytes moved");

        // The same reading again (a cached result) gives no CPU figure.
        let (_, sample) = a.build(&r, &state, 45_000);
        assert!(sample.is_none());
    }

    #[test]
    fn failures_keep_the_last_part_and_say_why() {
        let mut last = NodeState::default();
        last.ports.insert(
            "tcp/0.0.0.0:22".into(),
            twinbay_proto::model::Port {
                protocol: "tcp".into(),
                address: "0.0.0.0".into(),
                port: 22,
                ..Default::default()
            },
        );
        let mut r = Results::new();
        r.insert(
            "tcp-listeners",
            taken(Outcome::Failed("ss -Htlnp: exit 1: nope".into()), 1),
        );
        r.insert("udp-listeners", taken(parse("udp-listeners", ""), 1));
        r.insert(
            "containers",
            taken(Outcome::Absent("no podman, docker".into()), 1),
        );
        let (state, _) = Assembler::default().build(&r, &last, 1);
        assert!(
            state.ports.contains_key("tcp/0.0.0.0:22"),
            "kept while ss fails"
        );
        assert_eq!(
            state.sources["ports"].reason.as_deref(),
            Some("ss -Htlnp: exit 1: nope")
        );
        assert!(!state.sources["containers"].available);
        assert_eq!(
            state.sources["containers"].reason.as_deref(),
            Some("not on this host: no podman, docker")
        );

        let down = unreachable(&state, "host unreachable: connection refused");
        assert!(
            down.sources.values().all(|s| !s.available
                && s.reason.as_deref() == Some("host unreachable: connection refused"))
        );
        assert_eq!(down.ports, state.ports);
    }
}
