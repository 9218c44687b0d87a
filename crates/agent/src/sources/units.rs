//! systemd units over D-Bus: the system bus and, where present, the user's.
//!
//! The Manager lists the units once; after `Subscribe`, systemd signals
//! `UnitNew`/`UnitRemoved` and `PropertiesChanged` on each unit, and the
//! source re-reads just that unit. A glob filter keeps hosts with hundreds
//! of units to what matters; failed units always come through.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use twinbay_proto::Str;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use twinbay_proto::model::{Keyed, NodeState, SourceStatus, Unit};
use zbus::{Connection, MatchRule, MessageStream};
use zbus::{OwnedObjectPath, OwnedVariant as OwnedValue};

use super::files::UnitFiles;
use crate::backoff::{Backoff, random_unit};

/// One row of `ListUnits`.
type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;
    fn list_units(&self) -> zbus::Result<Vec<UnitRow>>;
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    /// A `daemon-reload` began (`true`) or ended (`false`).
    #[zbus(signal)]
    fn reloading(&self, active: bool) -> zbus::Result<()>;
    #[zbus(signal)]
    fn unit_new(&self, id: String, unit: OwnedObjectPath) -> zbus::Result<()>;
    #[zbus(signal)]
    fn unit_removed(&self, id: String, unit: OwnedObjectPath) -> zbus::Result<()>;
}

const UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
const UNIT_PATHS: &str = "/org/freedesktop/systemd1/unit";

/// Which units travel: those matching any pattern, and every failed one.
#[derive(Debug, Clone)]
pub struct UnitFilter {
    patterns: Vec<glob::Pattern>,
}

impl UnitFilter {
    /// Comma-separated globs, e.g. `*.service,*.timer`.
    pub fn parse(spec: &str) -> Result<UnitFilter, String> {
        let patterns = spec
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| glob::Pattern::new(p).map_err(|e| format!("bad unit pattern {p:?}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(UnitFilter { patterns })
    }

    pub fn wants(&self, unit: &Unit) -> bool {
        unit.active_state == "failed" || self.patterns.iter().any(|p| p.matches(&unit.name))
    }
}

/// A unit from its `org.freedesktop.systemd1.Unit` properties (`GetAll`).
pub fn from_properties(props: &HashMap<String, OwnedValue>, user: bool) -> Option<Unit> {
    let text = |k: &str| {
        props
            .get(k)
            .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
    };
    let since = props
        .get("ActiveEnterTimestamp")
        .and_then(|v| u64::try_from(v).ok())
        .filter(|us| *us > 0)
        .map(|us| (us / 1_000_000) as i64);
    Some(Unit {
        name: text("Id")?.into(),
        description: text("Description").unwrap_or_default().into(),
        load_state: text("LoadState").unwrap_or_default().into(),
        active_state: text("ActiveState").unwrap_or_default().into(),
        sub_state: text("SubState").unwrap_or_default().into(),
        since,
        user,
        // The unit's files, watched by the files source.
        fragment_path: text("FragmentPath")
            .filter(|p| !p.is_empty())
            .map(Str::from),
        drop_in_paths: props
            .get("DropInPaths")
            .and_then(|v| Vec::<String>::try_from(v.try_clone().ok()?).ok())
            .unwrap_or_default(),
        need_daemon_reload: props
            .get("NeedDaemonReload")
            .and_then(|v| bool::try_from(v).ok())
            .unwrap_or(false),
        ..Default::default()
    })
}

/// Adds a service's main PID, memory and CPU (`org.freedesktop.systemd1.Service`
/// properties); systemd reports `u64::MAX` for what it does not account.
pub fn add_service_properties(unit: &mut Unit, props: &HashMap<String, OwnedValue>) {
    let number = |k: &str| {
        props
            .get(k)
            .and_then(|v| u64::try_from(v).ok())
            .filter(|n| *n != u64::MAX)
    };
    unit.main_pid = props
        .get("MainPID")
        .and_then(|v| u32::try_from(v).ok())
        .filter(|p| *p != 0);
    unit.memory_bytes = number("MemoryCurrent");
    unit.cpu_nsec = number("CPUUsageNSec");
}

/// Which bus a source watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    System,
    User,
}

impl Bus {
    fn source_name(self) -> &'static str {
        match self {
            Bus::System => "units",
            Bus::User => "user-units",
        }
    }

    pub(crate) async fn connect(self) -> zbus::Result<Connection> {
        match self {
            Bus::System => Connection::system().await,
            Bus::User => Connection::session().await,
        }
    }
}

/// Watches one bus until `cancel`.
pub async fn run(
    bus: Bus,
    filter: UnitFilter,
    state: Arc<watch::Sender<NodeState>>,
    mut unit_files: watch::Receiver<UnitFiles>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        let reason =
            match session(bus, &filter, &state, &mut unit_files, &cancel, &mut backoff).await {
                Ok(()) => return,
                Err(e) => e,
            };
        tracing::debug!(?bus, reason, "unit source unavailable");
        let user = bus == Bus::User;
        state.send_if_modified(|s| {
            let before = s.units.len();
            s.units.retain(|_, u| u.user != user);
            let status = SourceStatus {
                name: bus.source_name().into(),
                available: false,
                reason: Some(reason.as_str().into()),
            };
            let changed =
                before != s.units.len() || s.sources.get(bus.source_name()) != Some(&status);
            s.sources.insert(bus.source_name().into(), status);
            changed
        });
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay(random_unit())) => {}
        }
    }
}

async fn session(
    bus: Bus,
    filter: &UnitFilter,
    state: &watch::Sender<NodeState>,
    files: &mut watch::Receiver<UnitFiles>,
    cancel: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), String> {
    fn err(what: &'static str) -> impl Fn(zbus::Error) -> String {
        move |e| format!("{what}: {e}")
    }
    let conn = bus.connect().await.map_err(err("no bus"))?;
    let manager = ManagerProxy::new(&conn)
        .await
        .map_err(err("no systemd manager"))?;
    // Listen before listing, so nothing between the two is missed.
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("org.freedesktop.DBus.Properties")
        .member("PropertiesChanged")
        .path_namespace(UNIT_PATHS)
        .build()
        .map_err(err("match rule"))?;
    let mut changed = MessageStream::for_match_rule(rule, &conn, std::num::NonZeroUsize::new(256))
        .await
        .map_err(err("subscribing"))?;
    let mut new_units = manager
        .receive_unit_new()
        .await
        .map_err(err("subscribing"))?;
    let mut removed_units = manager
        .receive_unit_removed()
        .await
        .map_err(err("subscribing"))?;
    let mut reloading = manager
        .receive_reloading()
        .await
        .map_err(err("subscribing"))?;
    manager.subscribe().await.map_err(err("Subscribe"))?;
    let user = bus == Bus::User;
    // systemd does not signal that a unit's files changed on disk
    // (`NeedDaemonReload` is computed when read): the files source sees it
    // and says so (only then: never a walk of every watched file), so a new
    // version of a unit's file makes this source read the unit again.
    let mut unit_files = files.borrow_and_update().clone();
    let mut units = BTreeMap::new();
    for row in manager.list_units().await.map_err(err("ListUnits"))? {
        if let Some(u) = read_unit(&conn, &row.6, user)
            .await
            .filter(|u| filter.wants(u))
        {
            units.insert(u.key(), Box::new(u));
        }
    }
    state.send_if_modified(|s| {
        let mine: BTreeMap<String, Box<Unit>> = s
            .units
            .iter()
            .filter(|(_, u)| u.user == user)
            .map(|(k, u)| (k.clone(), u.clone()))
            .collect();
        let status = SourceStatus {
            name: bus.source_name().into(),
            available: true,
            reason: None,
        };
        let changed = mine != units || s.sources.get(bus.source_name()) != Some(&status);
        s.units.retain(|_, u| u.user != user);
        s.units.extend(units);
        s.sources.insert(bus.source_name().into(), status);
        changed
    });
    backoff.reset();
    tracing::info!(?bus, "watching systemd units");

    loop {
        let paths: Vec<OwnedObjectPath> = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            msg = changed.next() => match msg {
                Some(Ok(msg)) => match msg.header().path() {
                    Some(p) => vec![p.clone().into()],
                    None => continue,
                },
                _ => return Err("the bus connection ended".into()),
            },
            signal = new_units.next() => match signal.and_then(|s| s.args().ok().map(|a| a.unit.clone())) {
                Some(path) => vec![path],
                None => return Err("the bus connection ended".into()),
            },
            signal = removed_units.next() => {
                let Some(args) = signal.as_ref().and_then(|s| s.args().ok()) else {
                    return Err("the bus connection ended".into());
                };
                let key = if user { format!("user:{}", args.id) } else { args.id.clone() };
                state.send_if_modified(|s| s.units.remove(&key).is_some());
                continue;
            }
            signal = reloading.next() => {
                let Some(signal) = signal else {
                    return Err("the bus connection ended".into());
                };
                if signal.args().is_ok_and(|a| a.active) {
                    continue;
                }
                // Reloaded: the units that needed it say so no longer.
                let names = units_where(&state.borrow(), user, |u| u.need_daemon_reload);
                tracing::debug!(?bus, units = names.len(), "daemon-reload done; reading units again");
                unit_paths(&manager, names).await
            }
            Ok(()) = files.changed() => {
                let now = files.borrow_and_update().clone();
                if now == unit_files {
                    continue;
                }
                let changed: Vec<String> = now
                    .iter()
                    .filter(|(path, sha)| unit_files.get(*path) != Some(*sha))
                    .map(|(path, _)| path.clone())
                    .chain(unit_files.keys().filter(|p| !now.contains_key(*p)).cloned())
                    .collect();
                unit_files = now;
                let names = units_where(&state.borrow(), user, |u| {
                    changed.iter().any(|p| {
                        u.fragment_path.as_deref() == Some(p) || u.drop_in_paths.contains(p)
                    })
                });
                unit_paths(&manager, names).await
            }
        };
        for path in paths {
            let unit = read_unit(&conn, &path, user).await;
            state.send_if_modified(|s| match unit {
                Some(u) if filter.wants(&u) => {
                    s.units.insert(u.key(), Box::new(u.clone())).as_deref() != Some(&u)
                }
                // Gone, or no longer wanted (a failed unit that recovered outside the filter).
                Some(u) => s.units.remove(&u.key()).is_some(),
                None => false,
            });
        }
    }
}

/// The names of this bus's units in the twin for which `wanted` holds.
fn units_where(state: &NodeState, user: bool, wanted: impl Fn(&Unit) -> bool) -> Vec<String> {
    state
        .units
        .values()
        .filter(|u| u.user == user && wanted(u))
        .map(|u| u.name.to_string())
        .collect()
}

/// The object paths of units by name (those systemd no longer has are left out).
async fn unit_paths(manager: &ManagerProxy<'_>, names: Vec<String>) -> Vec<OwnedObjectPath> {
    let mut paths = Vec::with_capacity(names.len());
    for name in names {
        if let Ok(path) = manager.get_unit(&name).await {
            paths.push(path);
        }
    }
    paths
}

/// Reads one unit's properties; `None` if it vanished meanwhile.
pub(crate) async fn read_unit(
    conn: &Connection,
    path: &OwnedObjectPath,
    user: bool,
) -> Option<Unit> {
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination("org.freedesktop.systemd1")
        .path(path.clone())
        .build()
        .await
        .ok()?;
    let iface = zbus::names::InterfaceName::try_from(UNIT_IFACE).ok()?;
    let all = props.get_all(iface).await.ok()?;
    let mut unit = from_properties(&all, user)?;
    if unit.name.ends_with(".service") {
        let service =
            zbus::names::InterfaceName::try_from("org.freedesktop.systemd1.Service").ok()?;
        // Optional: older systemd or a unit without accounting has less.
        if let Ok(extra) = props.get_all(service).await {
            add_service_properties(&mut unit, &extra);
        }
    }
    Some(unit)
}

#[cfg(test)]
mod tests {
    use zbus::Variant as Value;

    use super::*;

    fn props(pairs: &[(&str, Value<'_>)]) -> HashMap<String, OwnedValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.try_to_owned().unwrap()))
            .collect()
    }

    #[test]
    fn reads_unit_properties() {
        let p = props(&[
            ("Id", Value::from("nginx.service")),
            ("Description", Value::from("A high performance web server")),
            ("LoadState", Value::from("loaded")),
            ("ActiveState", Value::from("active")),
            ("SubState", Value::from("running")),
            (
                "ActiveEnterTimestamp",
                Value::from(1_732_000_000_123_456u64),
            ),
        ]);
        let u = from_properties(&p, false).unwrap();
        assert_eq!(u.fragment_path, None);
        assert!(u.drop_in_paths.is_empty() && !u.need_daemon_reload);
        assert_eq!(u.name, "nginx.service");
        assert_eq!(u.sub_state, "running");
        assert_eq!(u.since, Some(1_732_000_000));
        assert_eq!(u.key(), "nginx.service");
        let user = from_properties(&p, true).unwrap();
        assert_eq!(user.key(), "user:nginx.service");
        // Never active: a zero timestamp means "no time".
        let idle = props(&[
            ("Id", Value::from("x.service")),
            ("ActiveEnterTimestamp", Value::from(0u64)),
        ]);
        assert_eq!(from_properties(&idle, false).unwrap().since, None);
        assert_eq!(from_properties(&HashMap::new(), false), None);
    }

    #[test]
    fn reads_the_unit_files_and_whether_they_need_a_reload() {
        let p = props(&[
            ("Id", Value::from("web.service")),
            (
                "FragmentPath",
                Value::from("/etc/systemd/system/web.service"),
            ),
            (
                "DropInPaths",
                Value::from(vec![
                    "/etc/systemd/system/web.service.d/a.conf",
                    "/run/systemd/system/web.service.d/b.conf",
                ]),
            ),
            ("NeedDaemonReload", Value::from(true)),
        ]);
        let u = from_properties(&p, false).unwrap();
        assert_eq!(
            u.fragment_path.as_deref(),
            Some("/etc/systemd/system/web.service")
        );
        assert_eq!(u.drop_in_paths.len(), 2);
        assert!(u.need_daemon_reload);
        let none = props(&[
            ("Id", Value::from("x.service")),
            ("FragmentPath", Value::from("")),
        ]);
        assert_eq!(from_properties(&none, false).unwrap().fragment_path, None);
    }

    #[test]
    fn reads_service_accounting_where_systemd_has_it() {
        let mut unit = Unit::default();
        let accounted = props(&[
            ("MainPID", Value::from(812u32)),
            ("MemoryCurrent", Value::from(52_428_800u64)),
            ("CPUUsageNSec", Value::from(u64::MAX)),
        ]);
        add_service_properties(&mut unit, &accounted);
        assert_eq!(unit.main_pid, Some(812));
        assert_eq!(unit.memory_bytes, Some(52_428_800));
        assert_eq!(unit.cpu_nsec, None, "u64::MAX means not accounted");
        add_service_properties(&mut unit, &props(&[("MainPID", Value::from(0u32))]));
        assert_eq!(unit.main_pid, None, "a stopped service has no main process");
    }

    #[test]
    fn the_filter_keeps_matches_and_every_failure() {
        let f = UnitFilter::parse("*.service, backup-*.timer").unwrap();
        let unit = |name: &str, active: &str| Unit {
            name: name.into(),
            active_state: active.into(),
            ..Default::default()
        };
        assert!(f.wants(&unit("sshd.service", "active")));
        assert!(f.wants(&unit("backup-nightly.timer", "active")));
        assert!(!f.wants(&unit("dev-sda1.device", "active")));
        assert!(
            f.wants(&unit("dev-sda1.device", "failed")),
            "failed units always travel"
        );
        assert!(UnitFilter::parse("[").is_err());
    }
}
