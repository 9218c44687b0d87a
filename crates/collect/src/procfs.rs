//! procfs files: `/proc/stat`, `/proc/meminfo`, `/proc/loadavg`,
//! `/proc/uptime`, `/proc/cpuinfo`, ZFS's `arcstats`, `/proc/net/dev`, and
//! `/etc/os-release`. The agent reads them itself; an agentless host prints
//! them with `cat`.
//!
//! The `parse_*` functions answer `None` for text they cannot use (the
//! agent's own sources); [`stat`], [`meminfo`], [`loadavg`], [`uptime`] and
//! [`net_dev`] say why, for a command's output.

use crate::{ParseError, excerpt};

/// Cumulative CPU time counters from the `cpu` line of `/proc/stat`, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// What `/proc/stat` says that we use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stat {
    pub cpu: CpuTimes,
    /// Per-core counters, in `cpuN` order.
    pub per_core: Vec<CpuTimes>,
    pub cores: u32,
    pub boot_time: i64,
}

/// Busy and total ticks from the fields of a `cpu…` line.
fn cpu_times<'a>(fields: impl Iterator<Item = &'a str>) -> Option<CpuTimes> {
    // user nice system idle iowait irq softirq steal [guest guest_nice];
    // guest time is already counted in user and nice.
    let v: Vec<u64> = fields.take(8).map(|f| f.parse().unwrap_or(0)).collect();
    if v.len() < 4 {
        return None;
    }
    let total = v.iter().fold(0u64, |a, b| a.saturating_add(*b));
    let idle = v[3].saturating_add(v.get(4).copied().unwrap_or(0));
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

pub fn parse_stat(text: &str) -> Option<Stat> {
    let mut stat = Stat::default();
    let mut seen_cpu = false;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        match fields.next() {
            Some("cpu") => {
                stat.cpu = cpu_times(fields)?;
                seen_cpu = true;
            }
            Some(name) if name.starts_with("cpu") => {
                stat.cores += 1;
                stat.per_core.push(cpu_times(fields).unwrap_or_default());
            }
            Some("btime") => stat.boot_time = fields.next()?.parse().ok()?,
            _ => {}
        }
    }
    seen_cpu.then_some(stat)
}

/// [`parse_stat`] for a command's output.
pub fn stat(text: &str) -> Result<Stat, ParseError> {
    parse_stat(text).ok_or_else(|| {
        ParseError::new(
            "/proc/stat",
            format!("no complete `cpu` line in {}", excerpt(text)),
        )
    })
}

/// Busy percentage between two readings of the counters.
pub fn cpu_percent(prev: CpuTimes, now: CpuTimes) -> f32 {
    let total = now.total.saturating_sub(prev.total);
    if total == 0 {
        return 0.0;
    }
    let busy = now.busy.saturating_sub(prev.busy).min(total);
    (busy as f64 * 100.0 / total as f64) as f32
}

/// CPU busy percent overall and per core between two readings of
/// `/proc/stat`; zeros without an earlier one.
pub fn cpu_usage(prev: Option<&Stat>, now: &Stat) -> (f32, Vec<f32>) {
    match prev {
        Some(prev) => (
            cpu_percent(prev.cpu, now.cpu),
            prev.per_core
                .iter()
                .zip(&now.per_core)
                .map(|(p, n)| cpu_percent(*p, *n))
                .collect(),
        ),
        None => (0.0, vec![0.0; now.per_core.len()]),
    }
}

/// The host part of a sample: CPU (overall, per core), load, memory and
/// uptime; the other sources fill in the rest.
pub fn host_sample(
    ts_ms: i64,
    (cpu_pct, cores): (f32, Vec<f32>),
    load: [f32; 3],
    mem: &MemInfo,
    uptime_secs: u64,
) -> twinbay_proto::model::Sample {
    twinbay_proto::model::Sample {
        ts_ms,
        cpu_pct,
        load1: load[0],
        load5: load[1],
        load15: load[2],
        mem_total: mem.total,
        mem_used: mem.total.saturating_sub(mem.available),
        mem_available: mem.available,
        swap_total: mem.swap_total,
        swap_used: mem.swap_total.saturating_sub(mem.swap_free),
        uptime_secs,
        cores,
        ..Default::default()
    }
}

/// Memory figures in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    pub total: u64,
    pub available: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let mut m = MemInfo::default();
    let (mut free, mut buffers, mut cached, mut reclaimable) = (0u64, 0u64, 0u64, 0u64);
    let mut have_available = false;
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let kib: u64 = match rest
            .split_ascii_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
        {
            Some(v) => v,
            None => continue,
        };
        let bytes = kib.saturating_mul(1024);
        match name {
            "MemTotal" => m.total = bytes,
            "MemAvailable" => {
                m.available = bytes;
                have_available = true;
            }
            "MemFree" => free = bytes,
            "Buffers" => buffers = bytes,
            "Cached" => cached = bytes,
            "SReclaimable" => reclaimable = bytes,
            "SwapTotal" => m.swap_total = bytes,
            "SwapFree" => m.swap_free = bytes,
            _ => {}
        }
    }
    if m.total == 0 {
        return None;
    }
    if !have_available {
        // Kernels before 3.14 have no MemAvailable: estimate it the way `free` did.
        m.available = free
            .saturating_add(buffers)
            .saturating_add(cached)
            .saturating_add(reclaimable);
    }
    m.available = m.available.min(m.total);
    Some(m)
}

/// [`parse_meminfo`] for a command's output.
pub fn meminfo(text: &str) -> Result<MemInfo, ParseError> {
    parse_meminfo(text).ok_or_else(|| {
        ParseError::new(
            "/proc/meminfo",
            format!("no MemTotal line in {}", excerpt(text)),
        )
    })
}

/// Mean of the `cpu MHz` lines of `/proc/cpuinfo` (x86 and some others).
pub fn parse_cpuinfo_mhz(text: &str) -> Option<f32> {
    let mhz: Vec<f32> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim() == "cpu MHz")
        .filter_map(|(_, v)| v.trim().parse().ok())
        .collect();
    (!mhz.is_empty()).then(|| mhz.iter().sum::<f32>() / mhz.len() as f32)
}

/// The part of the ZFS ARC the kernel can give back under pressure
/// (`size - c_min` from `/proc/spl/kstat/zfs/arcstats`), in bytes. The ARC is
/// cache, but Linux counts it as used; tools like htop add it back.
pub fn parse_arc_shrinkable(text: &str) -> Option<u64> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let mut f = l.split_ascii_whitespace();
            (f.next() == Some(name)).then(|| f.nth(1)?.parse::<u64>().ok())?
        })
    };
    Some(field("size")?.saturating_sub(field("c_min")?))
}

pub fn parse_loadavg(text: &str) -> Option<[f32; 3]> {
    let mut f = text
        .split_ascii_whitespace()
        .map(|v| v.parse::<f32>().ok().filter(|v| v.is_finite() && *v >= 0.0));
    Some([f.next()??, f.next()??, f.next()??])
}

/// [`parse_loadavg`] for a command's output.
pub fn loadavg(text: &str) -> Result<[f32; 3], ParseError> {
    parse_loadavg(text).ok_or_else(|| {
        ParseError::new(
            "/proc/loadavg",
            format!("expected three load averages, got {}", excerpt(text)),
        )
    })
}

pub fn parse_uptime(text: &str) -> Option<u64> {
    let secs: f64 = text.split_ascii_whitespace().next()?.parse().ok()?;
    Some(secs as u64)
}

/// [`parse_uptime`] for a command's output.
pub fn uptime(text: &str) -> Result<u64, ParseError> {
    parse_uptime(text).ok_or_else(|| {
        ParseError::new(
            "/proc/uptime",
            format!("expected seconds since boot, got {}", excerpt(text)),
        )
    })
}

/// `PRETTY_NAME` from os-release, else `NAME VERSION_ID`, else "Linux".
pub fn parse_os_release(text: &str) -> String {
    let mut pretty = None;
    let (mut name, mut version) = (None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value
            .trim()
            .trim_matches('"')
            .trim_matches('\'')
            .to_string();
        match key.trim() {
            "PRETTY_NAME" => pretty = Some(value),
            "NAME" => name = Some(value),
            "VERSION_ID" => version = Some(value),
            _ => {}
        }
    }
    pretty.unwrap_or_else(|| match (name, version) {
        (Some(n), Some(v)) => format!("{n} {v}"),
        (Some(n), None) => n,
        _ => "Linux".to_string(),
    })
}

/// The counters of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
}

pub fn parse_net_dev(text: &str) -> Vec<(String, NetCounters)> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let f: Vec<u64> = rest
                .split_ascii_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop …
            if f.len() < 12 {
                return None;
            }
            let counters = NetCounters {
                rx_bytes: f[0],
                rx_errors: f[2],
                rx_drops: f[3],
                tx_bytes: f[8],
                tx_errors: f[10],
                tx_drops: f[11],
            };
            Some((name.trim().to_string(), counters))
        })
        .collect()
}

/// [`parse_net_dev`] for a command's output: the header must be there, so
/// a truncated or foreign output is an error rather than "no interfaces".
pub fn net_dev(text: &str) -> Result<Vec<(String, NetCounters)>, ParseError> {
    if !text.contains("Receive") || !text.contains("Transmit") {
        return Err(ParseError::new(
            "/proc/net/dev",
            format!("no Receive/Transmit header in {}", excerpt(text)),
        ));
    }
    Ok(parse_net_dev(text))
}

/// Interfaces not worth a row: loopback and the host ends of container veths.
pub fn is_interesting(name: &str) -> bool {
    name != "lo" && !name.starts_with("veth")
}

#[cfg(test)]
mod tests;
