//! How a sample becomes named series, and which resolution answers a query.
//!
//! Names follow Prometheus' look: `cpu`, `mem_used`, `disk_used{/srv}`,
//! `net_rx_bps{eth0}`, `temp{coretemp/Package id 0}`.

use std::time::Duration;

use twinbay_proto::model::Sample;

/// Every value in `sample` worth keeping history of, by series name.
pub fn flatten(sample: &Sample) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = vec![
        ("cpu".into(), f64::from(sample.cpu_pct)),
        ("load1".into(), f64::from(sample.load1)),
        ("load5".into(), f64::from(sample.load5)),
        ("load15".into(), f64::from(sample.load15)),
        ("mem_used".into(), sample.mem_used as f64),
        ("mem_total".into(), sample.mem_total as f64),
        ("mem_available".into(), sample.mem_available as f64),
        ("swap_used".into(), sample.swap_used as f64),
        ("swap_total".into(), sample.swap_total as f64),
    ];
    if let Some(mhz) = sample.cpu_mhz {
        out.push(("cpu_mhz".into(), f64::from(mhz)));
    }
    for (i, core) in sample.cores.iter().enumerate() {
        out.push((format!("cpu_core{{{i}}}"), f64::from(*core)));
    }
    for d in &sample.disks {
        let m = &d.mount;
        out.extend([
            (format!("disk_used{{{m}}}"), d.used as f64),
            (format!("disk_total{{{m}}}"), d.total as f64),
            (format!("disk_read_bps{{{m}}}"), d.read_bps),
            (format!("disk_write_bps{{{m}}}"), d.write_bps),
        ]);
    }
    for n in &sample.nets {
        let i = &n.iface;
        out.extend([
            (format!("net_rx_bps{{{i}}}"), n.rx_bps),
            (format!("net_tx_bps{{{i}}}"), n.tx_bps),
            (format!("net_rx_errors{{{i}}}"), n.rx_errors as f64),
            (format!("net_tx_errors{{{i}}}"), n.tx_errors as f64),
            (format!("net_rx_drops{{{i}}}"), n.rx_drops as f64),
            (format!("net_tx_drops{{{i}}}"), n.tx_drops as f64),
        ]);
    }
    for t in &sample.temps {
        out.push((format!("temp{{{}}}", t.sensor), f64::from(t.celsius)));
    }
    for g in &sample.gpus {
        let i = g.index;
        out.extend([
            (format!("gpu_util{{{i}}}"), f64::from(g.util_pct)),
            (format!("gpu_mem_used{{{i}}}"), g.mem_used as f64),
        ]);
        out.extend(g.temp_c.map(|t| (format!("gpu_temp{{{i}}}"), f64::from(t))));
        out.extend(
            g.power_w
                .map(|p| (format!("gpu_power{{{i}}}"), f64::from(p))),
        );
    }
    for l in &sample.latency {
        out.extend(l.ms.map(|ms| (format!("latency_ms{{{}}}", l.target), f64::from(ms))));
    }
    out
}

/// A resolution of history: raw points or one rollup tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Raw,
    /// Rollup buckets of this many seconds.
    Tier(u32),
}

/// The rollup tiers, finest first, in seconds.
pub const TIERS: [u32; 3] = [60, 900, 3600];

impl Resolution {
    pub fn parse(s: &str) -> Option<Resolution> {
        match s {
            "raw" => Some(Resolution::Raw),
            "1m" => Some(Resolution::Tier(60)),
            "15m" => Some(Resolution::Tier(900)),
            "1h" => Some(Resolution::Tier(3600)),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Resolution::Raw => "raw",
            Resolution::Tier(60) => "1m",
            Resolution::Tier(900) => "15m",
            Resolution::Tier(_) => "1h",
        }
    }

    /// Picks the finest resolution that still has data back to `from` and
    /// gives at most about `max_points` points over the range.
    pub fn auto(
        span: Duration,
        age_of_from: Duration,
        raw_step: Duration,
        retention: &Retention,
        max_points: u64,
    ) -> Resolution {
        let fits = |step: Duration| {
            span.as_secs_f64() / step.as_secs_f64().max(0.001) <= max_points as f64
        };
        if age_of_from <= retention.raw && fits(raw_step) {
            return Resolution::Raw;
        }
        for (tier, keep) in TIERS.iter().zip(retention.tiers) {
            if age_of_from <= keep && fits(Duration::from_secs(u64::from(*tier))) {
                return Resolution::Tier(*tier);
            }
        }
        Resolution::Tier(3600)
    }
}

/// How long each resolution is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw: Duration,
    /// For each of [`TIERS`].
    pub tiers: [Duration; 3],
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Retention {
            raw: Duration::from_secs(2 * DAY),
            tiers: [
                Duration::from_secs(14 * DAY),
                Duration::from_secs(90 * DAY),
                Duration::from_secs(400 * DAY),
            ],
        }
    }
}

impl Retention {
    /// Parses `raw=48h,1m=14d,15m=90d,1h=400d` (any subset; the rest default).
    pub fn parse(s: &str) -> Result<Retention, String> {
        let mut r = Retention::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (tier, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not TIER=DURATION"))?;
            let d = parse_duration(value)?;
            match tier {
                "raw" => r.raw = d,
                "1m" => r.tiers[0] = d,
                "15m" => r.tiers[1] = d,
                "1h" => r.tiers[2] = d,
                other => return Err(format!("unknown tier {other:?} (raw, 1m, 15m, 1h)")),
            }
        }
        Ok(r)
    }
}

/// `30s`, `15m`, `48h`, `14d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 48h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: use s, m, h or d")),
    };
    if secs == 0 {
        return Err(format!("{s:?} must be more than zero"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use twinbay_proto::model::{DiskSample, LatencySample, NetSample};

    use super::*;

    #[test]
    fn flattens_every_labelled_value() {
        let sample = Sample {
            cpu_pct: 12.5,
            mem_used: 100,
            cores: vec![10.0, 15.0],
            disks: vec![DiskSample {
                mount: "/srv".into(),
                total: 10,
                used: 4,
                ..Default::default()
            }],
            nets: vec![NetSample {
                iface: "eth0".into(),
                rx_bps: 1e6,
                ..Default::default()
            }],
            latency: vec![
                LatencySample {
                    target: "1.1.1.1:53".into(),
                    ms: Some(3.0),
                },
                LatencySample {
                    target: "down:80".into(),
                    ms: None,
                },
            ],
            ..Default::default()
        };
        let series = flatten(&sample);
        let get = |name: &str| series.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        assert_eq!(get("cpu"), Some(12.5));
        assert_eq!(get("mem_used"), Some(100.0));
        assert_eq!(get("cpu_core{1}"), Some(15.0));
        assert_eq!(get("disk_used{/srv}"), Some(4.0));
        assert_eq!(get("net_rx_bps{eth0}"), Some(1e6));
        assert_eq!(get("latency_ms{1.1.1.1:53}"), Some(3.0));
        assert_eq!(get("latency_ms{down:80}"), None, "no time, no point");
    }

    #[test]
    fn picks_the_finest_resolution_that_has_the_data() {
        let r = Retention::default();
        let step = Duration::from_secs(5);
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(
            Resolution::auto(h(1), h(1), step, &r, 1000),
            Resolution::Raw
        );
        assert_eq!(
            Resolution::auto(h(24), h(24), step, &r, 1500),
            Resolution::Tier(60)
        );
        assert_eq!(
            Resolution::auto(h(24 * 7), h(24 * 7), step, &r, 1500),
            Resolution::Tier(900)
        );
        assert_eq!(
            Resolution::auto(h(24 * 30), h(24 * 30), step, &r, 1500),
            Resolution::Tier(3600)
        );
        // A short range long ago: raw is gone, the 1m tier still has it.
        assert_eq!(
            Resolution::auto(h(1), h(24 * 5), step, &r, 1500),
            Resolution::Tier(60)
        );
    }

    #[test]
    fn parses_retention_settings() {
        let r = Retention::parse("raw=10s, 1h=30d").unwrap();
        assert_eq!(r.raw, Duration::from_secs(10));
        assert_eq!(r.tiers[2], Duration::from_secs(30 * 86400));
        assert_eq!(r.tiers[0], Retention::default().tiers[0]);
        assert!(Retention::parse("raw=0s").is_err());
        assert!(Retention::parse("5m=1h").is_err());
        assert!(Retention::parse("raw").is_err());
    }
}
