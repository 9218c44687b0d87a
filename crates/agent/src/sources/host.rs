//! Host identity and basic resources from procfs.
//!
//! Parsing is pure (`parse_*` in `twinbay_collect::procfs`, shared with the
//! hub's agentless hosts) and tested there on recorded `/proc` files; [`HostSource`] does the reading and keeps the previous CPU
//! counters to turn them into a percentage.

use std::fs;
use std::io;
use std::path::PathBuf;

use twinbay_proto::model::{HostInfo, Sample};

pub use twinbay_collect::procfs::{
    CpuTimes, MemInfo, Stat, cpu_percent, cpu_usage, host_sample, parse_arc_shrinkable,
    parse_cpuinfo_mhz, parse_loadavg, parse_meminfo, parse_os_release, parse_stat, parse_uptime,
};

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
            mem.available = mem.available.saturating_add(arc).min(mem.total);
        }
        let load = self.parsed("proc/loadavg", parse_loadavg)?;
        let uptime = self.parsed("proc/uptime", parse_uptime)?;
        let os = self
            .read("etc/os-release")
            .or_else(|_| self.read("usr/lib/os-release"))
            .map(|t| parse_os_release(&t))
            .unwrap_or_else(|_| "Linux".into());
        let cpu = cpu_usage(self.prev.as_ref(), &stat);
        let host = HostInfo {
            hostname: self.read("proc/sys/kernel/hostname")?.trim().to_string(),
            os: os.into(),
            kernel: self.read("proc/sys/kernel/osrelease")?.trim().into(),
            arch: std::env::consts::ARCH.into(),
            agent_version: crate::VERSION.into(),
            boot_time: stat.boot_time,
            cpu_cores: stat.cores.max(1),
            labels: Default::default(),
        };
        let sample = Sample {
            cpu_mhz: self.parsed("proc/cpuinfo", parse_cpuinfo_mhz).ok(),
            ..host_sample(now_ms, cpu, load, &mem, uptime)
        };
        self.prev = Some(stat);
        Ok(Reading { host, sample })
    }
}

#[cfg(test)]
mod tests;
