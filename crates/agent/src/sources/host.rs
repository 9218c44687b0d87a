//! Host identity and basic resources from procfs.
//!
//! Parsing is pure (`parse_*` take file contents) so recorded `/proc` files
//! test it; [`HostSource`] does the reading and keeps the previous CPU
//! counters to turn them into a percentage.

use std::fs;
use std::io;
use std::path::PathBuf;

use twinbay_proto::model::{HostInfo, Sample};

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
    let total: u64 = v.iter().sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total - idle,
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

/// Busy percentage between two readings of the counters.
pub fn cpu_percent(prev: CpuTimes, now: CpuTimes) -> f32 {
    let total = now.total.saturating_sub(prev.total);
    if total == 0 {
        return 0.0;
    }
    let busy = now.busy.saturating_sub(prev.busy).min(total);
    (busy as f64 * 100.0 / total as f64) as f32
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
    let (mut free, mut buffers, mut cached, mut reclaimable) = (0, 0, 0, 0);
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
        let bytes = kib * 1024;
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
        m.available = free + buffers + cached + reclaimable;
    }
    m.available = m.available.min(m.total);
    Some(m)
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
    let mut f = text.split_ascii_whitespace().map(|v| v.parse::<f32>().ok());
    Some([f.next()??, f.next()??, f.next()??])
}

pub fn parse_uptime(text: &str) -> Option<u64> {
    let secs: f64 = text.split_ascii_whitespace().next()?.parse().ok()?;
    Some(secs as u64)
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

/// One reading of the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub host: HostInfo,
    pub sample: Sample,
}

/// Reads procfs under `root` (`/` on a real host, a recorded tree in tests).
#[derive(Debug)]
pub struct HostSource {
    root: PathBuf,
    prev: Option<Stat>,
}

impl HostSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostSource {
            root: root.into(),
            prev: None,
        }
    }

    fn read(&self, rel: &str) -> io::Result<String> {
        fs::read_to_string(self.root.join(rel))
    }

    fn parsed<T>(&self, rel: &str, parse: impl FnOnce(&str) -> Option<T>) -> io::Result<T> {
        parse(&self.read(rel)?).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {rel}"))
        })
    }

    /// Identity and the basic resources; the other sources fill in the rest
    /// of the sample.
    pub fn sample(&mut self, now_ms: i64) -> io::Result<Reading> {
        let stat = self.parsed("proc/stat", parse_stat)?;
        let mut mem = self.parsed("proc/meminfo", parse_meminfo)?;
        if let Ok(arc) = self.parsed("proc/spl/kstat/zfs/arcstats", parse_arc_shrinkable) {
            mem.available = (mem.available + arc).min(mem.total);
        }
        let load = self.parsed("proc/loadavg", parse_loadavg)?;
        let uptime = self.parsed("proc/uptime", parse_uptime)?;
        let os = self
            .read("etc/os-release")
            .or_else(|_| self.read("usr/lib/os-release"))
            .map(|t| parse_os_release(&t))
            .unwrap_or_else(|_| "Linux".into());
        let (cpu_pct, cores) = match &self.prev {
            Some(prev) => (
                cpu_percent(prev.cpu, stat.cpu),
                prev.per_core
                    .iter()
                    .zip(&stat.per_core)
                    .map(|(p, n)| cpu_percent(*p, *n))
                    .collect(),
            ),
            None => (0.0, vec![0.0; stat.per_core.len()]),
        };
        let host = HostInfo {
            hostname: self.read("proc/sys/kernel/hostname")?.trim().to_string(),
            os,
            kernel: self.read("proc/sys/kernel/osrelease")?.trim().to_string(),
            arch: std::env::consts::ARCH.to_string(),
            agent_version: crate::VERSION.to_string(),
            boot_time: stat.boot_time,
            cpu_cores: stat.cores.max(1),
            labels: Default::default(),
        };
        let sample = Sample {
            ts_ms: now_ms,
            cpu_pct,
            load1: load[0],
            load5: load[1],
            load15: load[2],
            mem_total: mem.total,
            mem_used: mem.total - mem.available,
            mem_available: mem.available,
            swap_total: mem.swap_total,
            swap_used: mem.swap_total.saturating_sub(mem.swap_free),
            uptime_secs: uptime,
            cores,
            cpu_mhz: self.parsed("proc/cpuinfo", parse_cpuinfo_mhz).ok(),
            ..Default::default()
        };
        self.prev = Some(stat);
        Ok(Reading { host, sample })
    }
}

#[cfg(test)]
mod tests;
