//! Rules and what they find on one node. Pure: a rule and a node in, one
//! finding per subject (the host, a container, a unit, a mount, a route)
//! out; the engine turns findings into alerts with [`super::machine`].

use serde::{Deserialize, Serialize};

use super::machine::over;
use crate::twin::NodeTwin;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The agent is not connected (no heartbeat).
    HostDown,
    /// A unit is `failed`.
    UnitFailed,
    /// A container exited with a non-zero code, is unhealthy or restarting.
    ContainerDown,
    /// A reverse-proxy route's target is stopped or missing.
    RouteBroken,
    /// CPU busy percent above `above` (clears at or below `clear`).
    Cpu,
    /// Memory used percent.
    Memory,
    /// A mount's used percent.
    Disk,
    /// A mount predicted to fill within `within` by a line through the
    /// last `window` of its use (see [`super::forecast`]).
    DiskForecast,
    /// A watched config file changed at or above `risk` (default high).
    FileChanged,
    /// A backup did not make it to the hub.
    BackupFailed,
    /// A schedule's run was missed (the hub was down, the host offline).
    ScheduleMissed,
    /// A command ended failed, timed out or lost.
    CommandFailed,
    /// The audit trail does not hold its recorded head (cut or replaced).
    AuditBroken,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::HostDown => "host_down",
            Kind::UnitFailed => "unit_failed",
            Kind::ContainerDown => "container_down",
            Kind::RouteBroken => "route_broken",
            Kind::Cpu => "cpu",
            Kind::Memory => "memory",
            Kind::Disk => "disk",
            Kind::DiskForecast => "disk_forecast",
            Kind::FileChanged => "file_changed",
            Kind::BackupFailed => "backup_failed",
            Kind::ScheduleMissed => "schedule_missed",
            Kind::CommandFailed => "command_failed",
            Kind::AuditBroken => "audit_broken",
        }
    }

    /// Kinds raised by something happening (see [`super::events`]), not
    /// by a condition the twin holds: they fire at once and resolve by
    /// themselves after [`super::events::HOLD_MS`] or a later success.
    pub fn is_event(self) -> bool {
        matches!(
            self,
            Kind::FileChanged | Kind::BackupFailed | Kind::ScheduleMissed | Kind::CommandFailed
        )
    }

    /// Threshold kinds need `above`.
    pub fn has_threshold(self) -> bool {
        matches!(self, Kind::Cpu | Kind::Memory | Kind::Disk)
    }
}

/// The part of a rule evaluation needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub kind: Kind,
    pub above: Option<f64>,
    pub clear: Option<f64>,
    /// Now, for what depends on how long ago something happened.
    pub now_ms: i64,
    /// `disk_forecast`: the horizon and the history it fits.
    pub within_ms: i64,
    pub window_ms: i64,
}

/// `disk_forecast` defaults: fills within a day by the last six hours.
pub const FORECAST_WITHIN_MS: i64 = 24 * 3_600_000;
pub const FORECAST_WINDOW_MS: i64 = 6 * 3_600_000;

/// Restarts (by the restart policy) that make a crash loop…
pub const LOOP_RESTARTS: u32 = 3;
/// …while the last start is this recent.
pub const LOOP_WINDOW_MS: i64 = 10 * 60_000;

/// Unix ms of an engine's start time (`2026-12-03T04:05:06.123456789Z`,
/// or with `+00:00`); `None` if it is not one.
fn started_ms(text: &str) -> Option<i64> {
    let text = text
        .strip_suffix("+00:00")
        .map_or(text.to_string(), |t| format!("{t}Z"));
    let t = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

/// One subject of a rule on one node, and whether the condition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What it is about on the node (`""` for the host itself).
    pub subject: String,
    pub holds: bool,
    /// Said in a notification: "web exited with code 1", "CPU 96 %".
    pub summary: String,
}

/// What `check` finds on `node`. `active(subject)` says whether an alert of
/// this rule is active for the subject (for hysteresis). A disconnected
/// node only answers `host_down`: its last known state is not news.
pub fn evaluate(check: &Check, node: &NodeTwin, active: impl Fn(&str) -> bool) -> Vec<Finding> {
    let host = &node.state.host.hostname;
    let finding = |subject: &str, holds: bool, summary: String| Finding {
        subject: subject.into(),
        holds,
        summary,
    };
    if check.kind == Kind::HostDown {
        return vec![finding(
            "",
            !node.connected,
            format!("host {host} is not connected"),
        )];
    }
    if !node.connected {
        return Vec::new();
    }
    let threshold = |value: f64, subject: &str, what: &str| {
        let enter = check.above.unwrap_or(90.0);
        let clear = check.clear.unwrap_or(enter).min(enter);
        let holds = value.is_finite() && over(value, enter, clear, active(subject));
        finding(
            subject,
            holds,
            format!("{what} at {value:.0} % on {host} (above {enter:.0} %)"),
        )
    };
    let s = &node.state;
    match check.kind {
        Kind::HostDown => unreachable!("answered above"),
        // Forecasts need history ([`forecast`]); events arrive as they
        // happen; the audit trail is the hub's.
        Kind::DiskForecast
        | Kind::AuditBroken
        | Kind::FileChanged
        | Kind::BackupFailed
        | Kind::ScheduleMissed
        | Kind::CommandFailed => Vec::new(),
        Kind::UnitFailed => s
            .units
            .values()
            .map(|u| {
                finding(
                    &u.name,
                    u.active_state == "failed",
                    format!("unit {} failed on {host}", u.name),
                )
            })
            .collect(),
        Kind::ContainerDown => s
            .containers
            .values()
            .map(|c| {
                // Restarted by its policy again and again, the last time
                // recently: a crash loop, also while it runs between crashes,
                // and in the engine's passing states between a crash and the
                // next start (which may lack a start time): only running on,
                // paused or a clean exit ends it.
                let between_crashes = !matches!(
                    (c.state.as_str(), c.exit_code),
                    ("running" | "paused", _) | ("exited", Some(0))
                );
                let looping = c.restart_count >= LOOP_RESTARTS
                    && (between_crashes
                        || c.started_at
                            .as_deref()
                            .and_then(started_ms)
                            .is_some_and(|t| check.now_ms - t < LOOP_WINDOW_MS));
                let (holds, why) = match (c.state.as_str(), c.exit_code, c.health.as_deref()) {
                    _ if looping => (
                        true,
                        format!("is restarting in a loop ({} restarts)", c.restart_count),
                    ),
                    ("exited" | "dead", Some(code), _) if code != 0 => {
                        (true, format!("exited with code {code}"))
                    }
                    ("restarting", _, _) => (true, "is restarting".to_string()),
                    ("running", _, Some("unhealthy")) => (true, "is unhealthy".to_string()),
                    (state, _, _) => (false, state.to_string()),
                };
                finding(
                    &c.name,
                    holds,
                    format!("container {} {why} on {host}", c.name),
                )
            })
            .collect(),
        Kind::RouteBroken => s
            .routes
            .iter()
            .map(|(key, r)| {
                let state = crate::twin::routes::target_state(&r.target, s);
                let summary = format!(
                    "route {}{} → {} is {} on {host}",
                    r.host,
                    r.path,
                    r.upstream,
                    state.as_str()
                );
                finding(key, state.broken(), summary)
            })
            .collect(),
        Kind::Cpu => node
            .resources
            .iter()
            .map(|r| threshold(f64::from(r.cpu_pct), "", "CPU"))
            .collect(),
        Kind::Memory => node
            .resources
            .iter()
            .filter(|r| r.mem_total > 0)
            .map(|r| threshold(r.mem_used as f64 * 100.0 / r.mem_total as f64, "", "memory"))
            .collect(),
        Kind::Disk => node
            .resources
            .iter()
            .flat_map(|r| r.disks.iter())
            .filter(|d| d.total > 0)
            .map(|d| {
                threshold(
                    d.used as f64 * 100.0 / d.total as f64,
                    &d.mount,
                    &format!("disk {}", d.mount),
                )
            })
            .collect(),
    }
}

/// What a `disk_forecast` check finds on `node`, given each mount's trend.
pub fn forecast(
    check: &Check,
    node: &NodeTwin,
    trend: impl Fn(&str) -> Option<Vec<(i64, f64)>>,
) -> Vec<Finding> {
    if !node.connected {
        return Vec::new();
    }
    let host = &node.state.host.hostname;
    node.resources
        .iter()
        .flat_map(|r| r.disks.iter())
        .filter(|d| d.total > 0)
        .map(|d| {
            let points = trend(&d.mount).unwrap_or_default();
            let left = super::forecast::time_to_full(&points, d.total as f64, check.now_ms);
            let holds = left.is_some_and(|ms| ms <= check.within_ms);
            let summary = match left {
                Some(ms) => format!(
                    "disk {} on {host} is predicted to fill in {} ({:.0} % used)",
                    d.mount,
                    super::channels::human(ms),
                    d.used as f64 * 100.0 / d.total as f64
                ),
                None => format!("disk {} on {host} is not filling", d.mount),
            };
            Finding {
                subject: d.mount.clone(),
                holds,
                summary,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use twinbay_proto::model::{Container, DiskSample, Sample, Unit};

    use super::*;

    fn node(connected: bool) -> NodeTwin {
        let mut n = NodeTwin::for_tests("n1");
        n.connected = connected;
        n.state.host.hostname = "nas".into();
        n
    }

    fn check(kind: Kind, above: Option<f64>, clear: Option<f64>) -> Check {
        Check {
            kind,
            above,
            clear,
            now_ms: 1_800_000_000_000,
            within_ms: FORECAST_WITHIN_MS,
            window_ms: FORECAST_WINDOW_MS,
        }
    }

    #[test]
    fn a_container_restarted_again_and_again_is_a_crash_loop_while_it_runs() {
        let mut n = node(true);
        let now = 1_800_000_000_000;
        let at = |ms: i64| {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
            humantime::format_rfc3339_nanos(t).to_string()
        };
        assert_eq!(started_ms(&at(now)), Some(now));
        assert_eq!(
            started_ms(&at(now).replace('Z', "+00:00")),
            Some(now),
            "podman's offset form"
        );
        assert_eq!(started_ms("yesterday"), None);
        let c = |name: &str, restarts: u32, started: i64| Container {
            id: name.into(),
            name: name.into(),
            state: "running".into(),
            restart_count: restarts,
            started_at: Some(at(started)),
            ..Default::default()
        };
        for c in [
            c("looping", 5, now - 2_000),
            c("calmed", 5, now - LOOP_WINDOW_MS - 1),
            c("once", 1, now - 2_000),
        ] {
            n.state.containers.insert(c.id.clone(), c.into());
        }
        let f = evaluate(&check(Kind::ContainerDown, None, None), &n, |_| false);
        let holding: Vec<&Finding> = f.iter().filter(|f| f.holds).collect();
        assert_eq!(holding.len(), 1, "{f:?}");
        assert_eq!(
            holding[0].summary,
            "container looping is restarting in a loop (5 restarts) on nas"
        );
        // Between a crash and the next start the engine may report a
        // passing state without a start time: still the loop, not a
        // recovery. A clean exit or running on ends it.
        for (state, exit_code, holds) in [
            ("created", None, true),
            ("stopping", None, true),
            ("exited", None, true),
            ("exited", Some(0), false),
            ("running", None, false),
        ] {
            let mut m = node(true);
            let between = Container {
                id: "x".into(),
                name: "x".into(),
                state: state.into(),
                exit_code,
                restart_count: 6,
                started_at: None,
                ..Default::default()
            };
            m.state.containers.insert("x".into(), between.into());
            let f = evaluate(&check(Kind::ContainerDown, None, None), &m, |_| false);
            assert_eq!(f[0].holds, holds, "{state} {exit_code:?}: {f:?}");
            if holds {
                assert!(f[0].summary.contains("in a loop"), "{f:?}");
            }
        }
    }

    #[test]
    fn host_down_is_about_the_connection_only() {
        let f = evaluate(&check(Kind::HostDown, None, None), &node(false), |_| false);
        assert_eq!(f.len(), 1);
        assert!(f[0].holds && f[0].summary.contains("nas"));
        assert!(!evaluate(&check(Kind::HostDown, None, None), &node(true), |_| false)[0].holds);
        // The last known state of an offline host raises nothing else.
        let mut n = node(false);
        n.state.units.insert(
            "a.service".into(),
            Unit {
                name: "a.service".into(),
                active_state: "failed".into(),
                ..Default::default()
            }
            .into(),
        );
        assert!(evaluate(&check(Kind::UnitFailed, None, None), &n, |_| false).is_empty());
    }

    #[test]
    fn containers_down_only_when_something_is_wrong() {
        let mut n = node(true);
        let c = |name: &str, state: &str, code: Option<i64>, health: Option<&str>| Container {
            id: name.into(),
            name: name.into(),
            state: state.into(),
            exit_code: code,
            health: health.map(twinbay_proto::Str::from),
            ..Default::default()
        };
        for c in [
            c("crashed", "exited", Some(1), None),
            c("done", "exited", Some(0), None),
            c("sick", "running", None, Some("unhealthy")),
            c("loop", "restarting", None, None),
            c("fine", "running", None, Some("healthy")),
        ] {
            n.state.containers.insert(c.id.clone(), c.into());
        }
        let f = evaluate(&check(Kind::ContainerDown, None, None), &n, |_| false);
        let holding: Vec<&str> = f
            .iter()
            .filter(|f| f.holds)
            .map(|f| f.subject.as_str())
            .collect();
        assert_eq!(holding, vec!["crashed", "loop", "sick"]);
        assert!(
            f.iter()
                .any(|f| f.summary == "container crashed exited with code 1 on nas")
        );
    }

    #[test]
    fn thresholds_use_hysteresis_per_subject() {
        let mut n = node(true);
        n.resources = Some(Sample {
            cpu_pct: 85.0,
            disks: vec![
                DiskSample {
                    mount: "/".into(),
                    total: 100,
                    used: 95,
                    ..Default::default()
                },
                DiskSample {
                    mount: "/data".into(),
                    total: 100,
                    used: 85,
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        let cpu = check(Kind::Cpu, Some(90.0), Some(80.0));
        assert!(!evaluate(&cpu, &n, |_| false)[0].holds, "85 does not enter");
        assert!(evaluate(&cpu, &n, |_| true)[0].holds, "85 does not clear");
        let disk = check(Kind::Disk, Some(90.0), Some(80.0));
        let f = evaluate(&disk, &n, |m| m == "/data");
        assert_eq!(f.iter().filter(|f| f.holds).count(), 2, "{f:?}");
        let f = evaluate(&disk, &n, |_| false);
        assert_eq!(
            f.iter()
                .filter(|f| f.holds)
                .map(|f| f.subject.as_str())
                .collect::<Vec<_>>(),
            vec!["/"]
        );
    }

    #[test]
    fn a_forecast_fires_for_the_mount_that_fills_and_says_when() {
        let mut n = node(true);
        let now = 1_800_000_000_000;
        let disk = |mount: &str, used: u64| DiskSample {
            mount: mount.into(),
            total: 1000,
            used,
            ..Default::default()
        };
        n.resources = Some(Sample {
            disks: vec![disk("/data", 600), disk("/", 950)],
            ..Default::default()
        });
        // /data: 100 an hour for the last hour → full in 4 h; /: flat at 95 %.
        let trend = |mount: &str| {
            let rise = if mount == "/data" { 100.0 } else { 0.0 };
            let now_used = if mount == "/data" { 600.0 } else { 950.0 };
            Some(
                (0..=12)
                    .map(|i| {
                        let ago = (12 - i) * 300_000;
                        (now - ago, now_used - rise * ago as f64 / 3_600_000.0)
                    })
                    .collect(),
            )
        };
        let mut c = check(Kind::DiskForecast, None, None);
        c.within_ms = 6 * 3_600_000;
        let f = forecast(&c, &n, trend);
        let holding: Vec<&Finding> = f.iter().filter(|f| f.holds).collect();
        assert_eq!(holding.len(), 1, "{f:?}");
        let said = &holding[0].summary;
        assert!(
            said.starts_with("disk /data on nas is predicted to fill in ")
                && (said.contains(" 4 h ") || said.contains(" 3 h 59 min "))
                && said.ends_with("(60 % used)"),
            "{said}"
        );
        c.within_ms = 3 * 3_600_000;
        assert!(forecast(&c, &n, trend).iter().all(|f| !f.holds));
        // No history yet (a hub just started): nothing is judged.
        assert!(forecast(&c, &n, |_| None).iter().all(|f| !f.holds));
        assert!(forecast(&c, &node(false), trend).is_empty());
    }

    /// The cost of one evaluation round for 1,000 hosts (20 containers, 30
    /// units, 4 mounts each) and 10 rules: what the engine pays each second
    /// before its bookkeeping. Printed; bounded loosely (a debug build on a
    /// shared machine took ~45 ms a round, under 5 % of a core at 1 Hz).
    #[test]
    fn a_round_over_a_thousand_hosts_is_cheap() {
        let nodes: Vec<NodeTwin> = (0..1000)
            .map(|i| {
                let mut n = node(true);
                n.id = format!("n{i}");
                for c in 0..20 {
                    let c = Container {
                        id: format!("c{c}"),
                        name: format!("app-{c}").into(),
                        state: if c == 3 {
                            "exited".into()
                        } else {
                            "running".into()
                        },
                        exit_code: Some(if c == 3 { 1 } else { 0 }),
                        ..Default::default()
                    };
                    n.state.containers.insert(c.id.clone(), c.into());
                }
                for u in 0..30 {
                    let u = Unit {
                        name: format!("u{u}.service").into(),
                        active_state: "active".into(),
                        ..Default::default()
                    };
                    n.state.units.insert(u.name.to_string(), u.into());
                }
                n.resources = Some(Sample {
                    cpu_pct: 40.0,
                    mem_total: 100,
                    mem_used: 50,
                    disks: (0..4)
                        .map(|d| DiskSample {
                            mount: format!("/m{d}"),
                            total: 100,
                            used: 50,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                });
                n
            })
            .collect();
        let kinds = [
            Kind::HostDown,
            Kind::Disk,
            Kind::UnitFailed,
            Kind::ContainerDown,
            Kind::Cpu,
            Kind::Memory,
            Kind::RouteBroken,
            Kind::Disk,
            Kind::Cpu,
            Kind::ContainerDown,
        ];
        let checks: Vec<Check> = kinds
            .iter()
            .map(|k| check(*k, k.has_threshold().then_some(90.0), None))
            .collect();
        let round = || {
            let mut findings = 0;
            for n in &nodes {
                for c in &checks {
                    findings += evaluate(c, n, |_| false).len();
                }
            }
            findings
        };
        round();
        let start = std::time::Instant::now();
        let rounds = 5;
        let mut findings = 0;
        for _ in 0..rounds {
            findings = round();
        }
        let per_round = start.elapsed() / rounds;
        println!("1,000 hosts × 10 rules: {findings} findings, {per_round:?} per round");
        assert!(
            per_round < std::time::Duration::from_millis(500),
            "{per_round:?}"
        );
    }
}
