//! Alerts: rules evaluated against the live twin, each alert's life
//! ([`machine`]), grouped notifications to channels ([`channels`]).
//!
//! The engine evaluates every rule on every node once a second, in memory
//! (the twin, never the database), and stores each alert's changes so a hub
//! restart neither loses a firing alert nor notifies it twice. Against
//! storms: notifications are grouped per rule and host — the first waits
//! `group_wait` for others to join, later firing ones wait until
//! `group_interval` after the group's last notification; a host that is
//! down inhibits its other alerts (they are tracked, not sent); an alert
//! still firing after `repeat_interval` is sent again, unless it was
//! acknowledged; silences (matchers on rule, host and host labels, for a
//! time) keep matching alerts from being sent while they are still
//! evaluated and listed — a silence on one host is a maintenance window.

pub mod batch;
pub mod channels;
pub mod eval;
pub mod events;
pub mod forecast;
pub mod machine;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use twinbay_store::alerts::seal;

use self::batch::FLEET_BATCH;
pub use self::batch::{Batch, Ready, merge_fleet};
use self::eval::{Check, Kind};
use self::events::{HOLD_MS, Happening};
use self::machine::{Alert, State, Transition};
use crate::store::{AlertRecord, ChannelRecord, RuleRecord, SilenceRecord, StoreError, now_ms};
use crate::{HubState, lock};

/// How often rules are evaluated.
const EVAL_EVERY: Duration = Duration::from_secs(1);

/// Grouping and repeats (`twinbay hub --alert-group-wait …`).
#[derive(Debug, Clone)]
pub struct AlertConfig {
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
        }
    }
}

/// (rule, node, subject): one alert.
type Key = (i64, String, String);

/// The engine's memory: rules and channels as stored, active alerts.
pub struct Alerts {
    inner: Mutex<Inner>,
    gauge: AlertGauge,
    /// CPU time spent evaluating rules (`twinbay_alert_evaluation_seconds_total`).
    eval_seconds: EvalSeconds,
    /// Seals channel secrets at rest ([`seal`]).
    sealer: seal::Sealer,
}

#[derive(Default)]
struct Inner {
    rules: Vec<RuleRecord>,
    channels: HashMap<i64, ChannelRecord>,
    active: HashMap<Key, Active>,
    groups: HashMap<(i64, String), Group>,
    silences: Vec<SilenceRecord>,
    /// Each (node, mount)'s recent use, for `disk_forecast` rules.
    trends: HashMap<(String, String), forecast::Trend>,
    /// When each (node, mount)'s trend was last looked up in the metric
    /// history (`i64::MAX` once found there).
    seeded: HashMap<(String, String), i64>,
    /// Each node as the last round saw it ([`Print`]): a round evaluates
    /// only the nodes that changed since, and all of them every [`FULL_EVERY_MS`].
    seen: HashMap<String, Print>,
    /// When the last full round ran (0: the next one is full).
    full_ms: i64,
}

/// What tells that a node may find something new: connected or not, the
/// last applied change, the latest sample.
type Print = (bool, Option<u64>, Option<i64>);

/// How often every rule runs on every node, changed or not: what depends on
/// the time alone (a crash loop's window ending) is seen within this.
const FULL_EVERY_MS: i64 = 30_000;

struct Active {
    record: AlertRecord,
    alert: Alert,
    /// When the firing notification last went out (repeats count from it).
    sent_ms: Option<i64>,
}

/// One rule's notifications for one host, waiting to go out together.
#[derive(Default)]
struct Group {
    queued: Vec<AlertRecord>,
    first_queued_ms: Option<i64>,
    last_sent_ms: Option<i64>,
}

impl Alerts {
    /// The engine of the hub with data directory `data_dir` (its sealing
    /// key is there, made on first start).
    pub fn open(data_dir: &std::path::Path) -> Result<Alerts, crate::HubError> {
        Ok(Alerts {
            inner: Mutex::default(),
            gauge: AlertGauge::default(),
            eval_seconds: EvalSeconds::default(),
            sealer: seal::Sealer::load_or_create(data_dir)?,
        })
    }

    /// What seals and opens channel secrets.
    pub fn sealer(&self) -> &seal::Sealer {
        &self.sealer
    }

    /// Reads rules and channels again (after the API changed them).
    pub async fn reload(&self, store: &crate::store::Store) -> Result<(), StoreError> {
        let rules = store.alert_rules().await?;
        let channels = store.alert_channels(&self.sealer).await?;
        let silences = store.alert_silences().await?;
        let mut inner = lock(&self.inner);
        inner.rules = rules;
        inner.silences = silences;
        inner.channels = channels.into_iter().map(|c| (c.id, c)).collect();
        let ids: Vec<i64> = inner.rules.iter().map(|r| r.id).collect();
        inner.active.retain(|k, _| ids.contains(&k.0));
        // New or changed rules: the next round looks at every node.
        inner.full_ms = 0;
        sync_gauge(&self.gauge, &inner);
        Ok(())
    }
}

impl Alerts {
    /// Notes an acknowledgement on the active alert (no more repeats).
    pub fn acked(&self, record: &AlertRecord) {
        let mut inner = lock(&self.inner);
        let key = (
            record.rule_id,
            record.node_id.clone(),
            record.subject.clone(),
        );
        if let Some(a) = inner.active.get_mut(&key) {
            a.record.acked_ms = record.acked_ms;
            a.record.acked_by = record.acked_by.clone();
            a.record.ack_comment = record.ack_comment.clone();
        }
    }

    /// The `twinbay_alerts{alertname, node, subject, alertstate}` gauge
    /// (1 per pending or firing alert, as Prometheus' `ALERTS`).
    pub fn gauge(&self) -> AlertGauge {
        self.gauge.clone()
    }

    /// The CPU seconds spent evaluating rules: the engine's own cost, apart
    /// from what alerts that change then cost (storing, notifying) and the
    /// history reads that start forecasts (SQLite's, on its own threads).
    pub fn eval_seconds(&self) -> EvalSeconds {
        self.eval_seconds.clone()
    }
}

/// The counter behind [`Alerts::eval_seconds`].
pub type EvalSeconds =
    prometheus_client::metrics::counter::Counter<f64, std::sync::atomic::AtomicU64>;

/// The family behind [`Alerts::gauge`].
pub type AlertGauge = prometheus_client::metrics::family::Family<
    Vec<(String, String)>,
    prometheus_client::metrics::gauge::Gauge,
>;

/// Rebuilds the gauge from the active alerts.
fn sync_gauge(gauge: &AlertGauge, inner: &Inner) {
    gauge.clear();
    for ((rule_id, node, subject), a) in &inner.active {
        let Some(rule) = inner.rules.iter().find(|r| r.id == *rule_id) else {
            continue;
        };
        gauge
            .get_or_create(&vec![
                ("alertname".to_string(), rule.name.clone()),
                ("node".to_string(), node.clone()),
                ("subject".to_string(), subject.clone()),
                ("alertstate".to_string(), a.alert.state.as_str().to_string()),
            ])
            .set(1);
    }
}

fn check_of(rule: &RuleRecord, now_ms: i64) -> Option<Check> {
    let kind: Kind = serde_json::from_value(serde_json::json!(rule.kind)).ok()?;
    Some(Check {
        kind,
        above: rule.above,
        clear: rule.clear,
        now_ms,
        within_ms: rule.within_ms.unwrap_or(eval::FORECAST_WITHIN_MS),
        window_ms: rule.window_ms.unwrap_or(eval::FORECAST_WINDOW_MS),
    })
}

/// Loads what is stored, then evaluates every [`EVAL_EVERY`] and on every
/// happening from `inbox`, until `stop`.
pub async fn run(
    hub: Arc<HubState>,
    config: AlertConfig,
    mut inbox: tokio::sync::mpsc::Receiver<Happening>,
    stop: CancellationToken,
) {
    // Among replicas, one evaluates and notifies; its state is the store's
    // (read here), so the next leader neither forgets nor re-sends.
    if !hub.lead(&stop).await {
        return;
    }
    if let Err(e) = load(&hub).await {
        tracing::error!(error = %crate::report(&e), "loading alerts failed; alerting is off");
        return;
    }
    let mut tick = tokio::time::interval(EVAL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !hub.leads() {
            // Another replica took over; lead again from the store's state.
            if !hub.lead(&stop).await {
                return;
            }
            if let Err(e) = load(&hub).await {
                tracing::warn!(error = %crate::report(&e), "reloading alerts failed");
            }
        }
        let changes = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                seed_trends(&hub, now_ms()).await;
                round(&hub).await
            }
            Some(h) = inbox.recv() => happened(&hub, &h, now_ms()),
        };
        if !changes.is_empty() {
            sync_gauge(&hub.alerts.gauge, &lock(&hub.alerts.inner));
        }
        for (record, transition, notify) in changes {
            if let Err(e) = record_change(&hub, record, transition, notify).await {
                tracing::warn!(error = %crate::report(&e), "recording an alert failed");
            }
        }
        let now = now_ms();
        for (channels, batch) in due(&hub, &config, now) {
            for channel in channels {
                let hub = hub.clone();
                let batch = batch.clone();
                // In the channel's quiet hours: sent when they end (a
                // restart meanwhile sends unsent firing alerts at start).
                let quiet = channels::quiet_wait(channel.quiet_hours.as_deref(), now);
                let stop = stop.clone();
                tokio::spawn(async move {
                    if let Some(wait) = quiet {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                    deliver(&hub, &channel, &batch).await
                });
            }
        }
    }
}

/// One round of the rules over the fleet, on a blocking thread: a full
/// round (every [`FULL_EVERY_MS`]) walks every node, and on an async
/// worker it would hold up the links' tasks queued behind it.
async fn round(hub: &Arc<HubState>) -> Vec<Change> {
    let hub2 = hub.clone();
    let round = tokio::task::spawn_blocking(move || {
        // CPU time, not wall time: on a busy hub the round may wait for a
        // core, which costs nothing.
        let started = thread_cpu_secs();
        let changes = evaluate(&hub2, now_ms());
        (changes, (thread_cpu_secs() - started).max(0.0))
    });
    match round.await {
        Ok((changes, cpu)) => {
            hub.alerts.eval_seconds.inc_by(cpu);
            changes
        }
        Err(e) => {
            tracing::error!(error = %e, "an alert round failed");
            Vec::new()
        }
    }
}

/// The CPU time this thread has used, in seconds.
fn thread_cpu_secs() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Mounts whose trend is read from the metric history in one round, at most.
const SEED_PER_ROUND: usize = 256;
/// How soon a mount whose history had nothing yet is looked up again.
const SEED_RETRY_MS: i64 = 10_000;

/// Gives each mount the engine has too few points of since it started its
/// recent use from the metric history, so a hub restart (or a rule added
/// later) does not wait a whole forecast window. Reads the 1-minute rollups
/// when the window is long enough that the trend keeps a point a minute or
/// fewer. A mount whose history is empty yet (a new host; samples still
/// queued for the writer) is looked up again after [`SEED_RETRY_MS`] until
/// its live points suffice.
async fn seed_trends(hub: &HubState, now: i64) {
    let (window, wanted) = {
        let mut guard = lock(&hub.alerts.inner);
        let inner = &mut *guard;
        let Some(window) = inner
            .rules
            .iter()
            .filter(|r| r.enabled)
            .filter_map(|r| check_of(r, now))
            .filter(|c| c.kind == Kind::DiskForecast)
            .map(|c| c.window_ms)
            .max()
        else {
            return;
        };
        let mut wanted = Vec::new();
        hub.twin.for_each_sliced(|node| {
            let (Some(r), true) = (&node.resources, node.connected) else {
                return;
            };
            for d in r.disks.iter().filter(|d| d.total > 0) {
                if wanted.len() >= SEED_PER_ROUND {
                    return;
                }
                let key = (node.id.clone(), d.mount.clone());
                let enough = inner
                    .trends
                    .get(&key)
                    .is_some_and(|t| t.points.len() >= forecast::MIN_POINTS);
                let tried = inner.seeded.entry(key).or_insert(i64::MIN);
                if !enough && now.saturating_sub(*tried) >= SEED_RETRY_MS {
                    *tried = now;
                    wanted.push((node.id.clone(), d.mount.clone(), d.total as f64));
                }
            }
        });
        (window, wanted)
    };
    let tier = (window / forecast::MAX_POINTS as i64 >= 60_000).then_some(crate::history::TIERS[0]);
    for (node, mount, total) in wanted {
        let name = format!("disk_used{{{mount}}}");
        let stored = match hub
            .store
            .series_points(&node, &name, tier, now - window, now)
            .await
        {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(error = %crate::report(&e), node, mount, "reading a mount's history for its forecast failed");
                continue;
            }
        };
        let mut inner = lock(&hub.alerts.inner);
        if !stored.is_empty() {
            inner.seeded.insert((node.clone(), mount.clone()), i64::MAX);
        }
        inner.trends.entry((node, mount)).or_default().seed(
            stored.iter().map(|b| (b[0] as i64, b[2])),
            total,
            window,
        );
    }
}

async fn load(hub: &HubState) -> Result<(), StoreError> {
    let sealed = hub.store.seal_alert_channels(&hub.alerts.sealer).await?;
    if sealed > 0 {
        tracing::info!(
            sealed,
            "sealed the secrets of channels stored before sealing"
        );
    }
    hub.alerts.reload(&hub.store).await?;
    let stored = hub.store.alerts(true, 0).await?;
    let mut inner = lock(&hub.alerts.inner);
    for record in stored {
        let Some(state) = State::parse(&record.state) else {
            continue;
        };
        let alert = Alert {
            state,
            started_ms: record.started_ms,
            fired_ms: record.fired_ms,
            resolved_ms: record.resolved_ms,
        };
        let key = (
            record.rule_id,
            record.node_id.clone(),
            record.subject.clone(),
        );
        // Fired but not yet notified when the hub stopped: notify now.
        if state == State::Firing && !record.notified {
            queue(&mut inner.groups, &record, now_ms());
        }
        let sent_ms = record.notified.then_some(record.fired_ms.unwrap_or(0));
        inner.active.insert(
            key,
            Active {
                record,
                alert,
                sent_ms,
            },
        );
    }
    Ok(())
}

/// An alert's change to store, and whether it is worth a notification.
type Change = (AlertRecord, Transition, bool);

/// Whether `rule` covers the host `node_id` with `labels`.
fn covers(
    rule: &RuleRecord,
    node_id: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    rule.node_id.as_deref().is_none_or(|n| n == node_id)
        && rule.group.as_ref().is_none_or(|group| {
            group
                .split_once('=')
                .is_some_and(|(k, v)| labels.get(k).is_some_and(|l| l == v))
        })
}

fn kind_of(rule: &RuleRecord) -> Option<Kind> {
    serde_json::from_value(serde_json::json!(rule.kind)).ok()
}

/// One round: every rule on every node it covers that changed since the
/// last round (every node every [`FULL_EVERY_MS`]), and the hub's own (the
/// audit trail). An unchanged node's active alerts hold as they did, so
/// pending ones still fire on time. Returns the alerts that changed, to be stored.
fn evaluate(hub: &HubState, now: i64) -> Vec<Change> {
    let mut guard = lock(&hub.alerts.inner);
    let inner = &mut *guard;
    let full = now - inner.full_ms >= FULL_EVERY_MS;
    if full {
        inner.full_ms = now;
        // Rebuilt below: nodes that are gone drop out.
        inner.seen.clear();
    }
    let rules: Vec<(RuleRecord, Check)> = inner
        .rules
        .iter()
        .filter(|r| r.enabled)
        .filter_map(|r| Some((r.clone(), check_of(r, now)?)))
        .filter(|(_, c)| !c.kind.is_event())
        .collect();
    let window = rules
        .iter()
        .filter(|(_, c)| c.kind == Kind::DiskForecast)
        .map(|(_, c)| c.window_ms)
        .max();
    // (key, holds, summary, worth a notification)
    let mut findings: Vec<(Key, bool, String, bool)> = Vec::new();
    let (active, trends, seen) = (&inner.active, &mut inner.trends, &mut inner.seen);
    let mut offline = std::collections::HashSet::new();
    let mut unchanged = std::collections::HashSet::new();
    hub.twin.for_each_sliced(|node| {
        if !node.connected {
            offline.insert(node.id.clone());
        }
        let print = (
            node.connected,
            node.seq,
            node.resources.as_ref().map(|r| r.ts_ms),
        );
        match seen.get_mut(&node.id) {
            Some(last) if *last == print => {
                unchanged.insert(node.id.clone());
                return;
            }
            Some(last) => *last = print,
            None => {
                seen.insert(node.id.clone(), print);
            }
        }
        // Forecasts need each mount's history, taken at the hub's time.
        if let (Some(window), Some(r), true) = (window, &node.resources, node.connected) {
            for d in r.disks.iter().filter(|d| d.total > 0) {
                trends
                    .entry((node.id.clone(), d.mount.clone()))
                    .or_default()
                    .push(now, d.used as f64, d.total as f64, window);
            }
        }
        for (rule, check) in &rules {
            if check.kind == Kind::AuditBroken || !covers(rule, &node.id, &node.state.host.labels) {
                continue;
            }
            let found = match check.kind {
                Kind::DiskForecast => eval::forecast(check, node, |mount| {
                    trends
                        .get(&(node.id.clone(), mount.to_string()))
                        .map(|t| t.within(check.window_ms, now))
                }),
                _ => eval::evaluate(check, node, |subject: &str| {
                    active.contains_key(&(rule.id, node.id.clone(), subject.to_string()))
                }),
            };
            // A subject that is fine and has no alert changes nothing:
            // not kept (a fleet's every container would be, each round).
            for f in found {
                let key = (rule.id, node.id.clone(), f.subject);
                if f.holds || active.contains_key(&key) {
                    findings.push((key, f.holds, f.summary, true));
                }
            }
        }
    });
    match window {
        Some(w) => trends.retain(|_, t| t.points.back().is_some_and(|(ts, _)| now - ts <= w)),
        None => {
            trends.clear();
            inner.seeded.clear();
        }
    }
    // The hub's own: the audit trail holds its recorded head, or not.
    let broken = hub.store.anchor().broken();
    for (rule, _) in rules.iter().filter(|(_, c)| c.kind == Kind::AuditBroken) {
        let summary = match &broken {
            Some(why) => format!("the audit trail does not verify: {why}"),
            None => "the audit trail verifies".to_string(),
        };
        findings.push((
            (rule.id, String::new(), "audit trail".into()),
            broken.is_some(),
            summary,
            true,
        ));
    }
    // Active alerts whose subject is gone (a container removed) let go;
    // event alerts let go (silently) after their hold. An offline host's
    // alerts stay as they were (its last known state is not news; its
    // host-down alert holds back their notifications) instead of
    // resolving and firing again around every dropped connection.
    let events: std::collections::HashSet<i64> = inner
        .rules
        .iter()
        .filter(|r| r.enabled && kind_of(r).is_some_and(Kind::is_event))
        .map(|r| r.id)
        .collect();
    let enabled: std::collections::HashSet<i64> = rules.iter().map(|(r, _)| r.id).collect();
    // An unchanged node finds what it found: its active alerts hold still.
    let still: Vec<(Key, bool, String, bool)> = inner
        .active
        .iter()
        .filter(|(k, a)| {
            unchanged.contains(&k.1)
                && enabled.contains(&k.0)
                && !events.contains(&k.0)
                && a.alert.state != State::Resolved
        })
        .map(|(k, a)| (k.clone(), true, a.record.summary.clone(), true))
        .collect();
    findings.extend(still);
    let found: std::collections::HashSet<&Key> = findings.iter().map(|(k, ..)| k).collect();
    let vanished: Vec<(Key, bool, String, bool)> = inner
        .active
        .iter()
        .filter(|(k, a)| match events.contains(&k.0) {
            true => now - a.record.fired_ms.unwrap_or(a.record.started_ms) >= HOLD_MS,
            false => {
                let held = offline.contains(&k.1) && enabled.contains(&k.0);
                !found.contains(k) && !held
            }
        })
        .map(|(k, a)| {
            let event = events.contains(&k.0);
            (k.clone(), false, a.record.summary.clone(), !event)
        })
        .collect();
    findings.extend(vanished);

    // Every rule, enabled or not: a disabled rule's alerts resolve (or
    // drop) through the vanished ones above.
    let for_ms: HashMap<i64, i64> = inner.rules.iter().map(|r| (r.id, r.for_ms)).collect();
    let mut changed = Vec::new();
    for (key, holds, summary, notify) in findings {
        let Some(for_ms) = for_ms.get(&key.0).copied() else {
            inner.active.remove(&key);
            continue;
        };
        let current = inner.active.get(&key).map(|a| &a.alert);
        let (next, transition) = machine::step(current, holds, for_ms, now);
        // None: still firing (repeats are queued by `due`) or still fine.
        if let Some(transition) = transition {
            let record = advance(inner, key, next, transition, summary, now);
            changed.push((record, transition, notify));
        }
    }
    changed
}

/// What a happening does to the event rules it concerns: fires their
/// alert for its subject, or resolves it (it went right again).
fn happened(hub: &HubState, h: &Happening, now: i64) -> Vec<Change> {
    let (hostname, labels) = hub
        .twin
        .read(&h.node_id, |n| {
            (n.state.host.hostname.clone(), n.state.host.labels.clone())
        })
        .unwrap_or_default();
    let mut guard = lock(&hub.alerts.inner);
    let inner = &mut *guard;
    let rules: Vec<i64> = inner
        .rules
        .iter()
        .filter(|r| r.enabled && covers(r, &h.node_id, &labels))
        .filter(|r| {
            let risk = r
                .risk
                .as_ref()
                .and_then(|r| serde_json::from_value(serde_json::json!(r)).ok());
            kind_of(r).is_some_and(|k| h.concerns(k, risk))
        })
        .map(|r| r.id)
        .collect();
    let mut changed = Vec::new();
    for rule in rules {
        let key = (rule, h.node_id.clone(), h.subject.clone());
        let current = inner.active.get(&key).map(|a| &a.alert);
        let (next, transition) = machine::step(current, h.failed, 0, now);
        if let Some(transition) = transition {
            let summary = format!("{} on {hostname}", h.what);
            let record = advance(inner, key, next, transition, summary, now);
            changed.push((record, transition, true));
        }
    }
    changed
}

/// Applies a transition to the alert `key`: its record as it now is, kept
/// among the active ones while pending or firing.
fn advance(
    inner: &mut Inner,
    key: Key,
    next: Option<Alert>,
    transition: Transition,
    summary: String,
    now: i64,
) -> AlertRecord {
    let mut record = match inner.active.remove(&key) {
        Some(a) => a.record,
        None => AlertRecord {
            id: 0,
            rule_id: key.0,
            node_id: key.1.clone(),
            subject: key.2.clone(),
            state: String::new(),
            summary: String::new(),
            started_ms: now,
            fired_ms: None,
            resolved_ms: None,
            notified: false,
            acked_ms: None,
            acked_by: None,
            ack_comment: None,
            silenced: false,
        },
    };
    record.summary = summary;
    if let Some(next) = &next {
        record.state = next.state.as_str().into();
        record.fired_ms = next.fired_ms;
        record.resolved_ms = next.resolved_ms;
    }
    record.notified = false;
    match transition {
        // Pending or firing: active until it resolves or drops.
        Transition::Began | Transition::Fired => {
            inner.active.insert(
                key,
                Active {
                    record: record.clone(),
                    alert: next.expect("an active alert"),
                    sent_ms: None,
                },
            );
        }
        Transition::Dropped | Transition::Resolved => {}
    }
    record
}

/// Stores a change; queues the notification it is worth (none when
/// `notify` is false: it counts as sent).
async fn record_change(
    hub: &HubState,
    mut record: AlertRecord,
    transition: Transition,
    notify: bool,
) -> Result<(), StoreError> {
    if transition == Transition::Dropped {
        if record.id != 0 {
            hub.store.drop_alert(record.id).await?;
            // Gone from the lists: tell them (state `dropped`).
            record.state = "dropped".into();
            let _ = hub.twin.stream().send(alert_event(&record));
        }
        return Ok(());
    }
    record.notified = !notify;
    let id = hub.store.put_alert(&record).await?;
    record.id = id;
    let mut inner = lock(&hub.alerts.inner);
    let key = (
        record.rule_id,
        record.node_id.clone(),
        record.subject.clone(),
    );
    if let Some(a) = inner.active.get_mut(&key) {
        a.record.id = id;
    }
    match transition {
        Transition::Fired | Transition::Resolved if notify => {
            queue(&mut inner.groups, &record, now_ms())
        }
        _ => {}
    }
    let _ = hub.twin.stream().send(alert_event(&record));
    Ok(())
}

fn queue(groups: &mut HashMap<(i64, String), Group>, record: &AlertRecord, now: i64) {
    let g = groups
        .entry((record.rule_id, record.node_id.clone()))
        .or_default();
    g.first_queued_ms.get_or_insert(now);
    g.queued.retain(|r| r.subject != record.subject);
    g.queued.push(record.clone());
}

/// The stream message for an alert's change: `{"type":"alert","id":NODE,
/// "alert":{…}}` with the alert as `GET /api/v1/alerts` lists it, its
/// `state` also `dropped` (pending, it recovered before it fired).
fn alert_event(record: &AlertRecord) -> axum::extract::ws::Utf8Bytes {
    serde_json::json!({"type": "alert", "id": record.node_id, "alert": record})
        .to_string()
        .into()
}

/// Groups whose wait is over, with the channels they go to. Inhibited ones
/// (the host is down and this is not the host-down rule) are dropped
/// unsent. Firing alerts due for a repeat join their group.
fn due(hub: &HubState, config: &AlertConfig, now: i64) -> Vec<(Vec<ChannelRecord>, Batch)> {
    let wait = config.group_wait.as_millis() as i64;
    let interval = config.group_interval.as_millis() as i64;
    let repeat = config.repeat_interval.as_millis() as i64;
    let mut inner = lock(&hub.alerts.inner);
    let Inner {
        rules,
        channels,
        active,
        groups,
        silences,
        ..
    } = &mut *inner;
    let host_down: Vec<i64> = rules
        .iter()
        .filter(|r| r.kind == Kind::HostDown.as_str())
        .map(|r| r.id)
        .collect();
    let down = |node: &str, active: &HashMap<Key, Active>| {
        host_down.iter().any(|r| {
            active
                .get(&(*r, node.to_string(), String::new()))
                .is_some_and(|a| a.alert.state == State::Firing)
        })
    };
    for a in active.values_mut() {
        if a.alert.state == State::Firing
            && a.record.acked_ms.is_none()
            && a.sent_ms.is_some_and(|s| now - s >= repeat)
        {
            a.sent_ms = Some(now);
            let g = groups
                .entry((a.record.rule_id, a.record.node_id.clone()))
                .or_default();
            g.first_queued_ms.get_or_insert(now - wait);
            g.queued.retain(|r| r.subject != a.record.subject);
            g.queued.push(a.record.clone());
        }
    }
    let mut out = Vec::new();
    for ((rule_id, node_id), g) in groups.iter_mut() {
        let Some(first) = g.first_queued_ms else {
            continue;
        };
        let firing = g.queued.iter().any(|r| r.state == "firing");
        let ready = now - first >= wait
            && (!firing || g.last_sent_ms.is_none_or(|last| now - last >= interval));
        if !ready {
            continue;
        }
        let mut batch: Vec<AlertRecord> = std::mem::take(&mut g.queued);
        g.first_queued_ms = None;
        g.last_sent_ms = Some(now);
        for r in &batch {
            if let Some(a) = active.get_mut(&(r.rule_id, r.node_id.clone(), r.subject.clone())) {
                a.sent_ms.get_or_insert(now);
            }
        }
        let Some(rule) = rules.iter().find(|r| r.id == *rule_id) else {
            continue;
        };
        if !host_down.contains(rule_id) && down(node_id, active) {
            tracing::debug!(rule = rule.name, node_id, "inhibited: the host is down");
            continue;
        }
        // The hub's own alerts (the audit trail) have no host.
        let (hostname, labels) = hub
            .twin
            .read(node_id, |n| {
                (n.state.host.hostname.clone(), n.state.host.labels.clone())
            })
            .unwrap_or_else(|| ("hub".into(), Default::default()));
        // Silenced: evaluated, listed, not sent. Acknowledged: its
        // resolution is still sent, repeats are not.
        batch.retain(|r| {
            let silenced = silences
                .iter()
                .any(|s| s.matches(r.rule_id, node_id, &labels, now));
            let acked = r.state == "firing"
                && active
                    .get(&(r.rule_id, r.node_id.clone(), r.subject.clone()))
                    .is_some_and(|a| a.record.acked_ms.is_some());
            if silenced || acked {
                tracing::debug!(rule = rule.name, node_id, silenced, acked, "not sent");
            }
            !silenced && !acked
        });
        if batch.is_empty() {
            continue;
        }
        let targets: Vec<ChannelRecord> = rule
            .channels
            .iter()
            .filter_map(|c| channels.get(c).cloned())
            .collect();
        out.push((
            targets,
            Batch {
                rule: rule.clone(),
                node_id: node_id.clone(),
                hosts: [(node_id.clone(), hostname.clone())].into(),
                hostname,
                alerts: batch,
            },
        ));
    }
    groups.retain(|_, g| {
        g.first_queued_ms.is_some() || g.last_sent_ms.is_some_and(|l| now - l < interval)
    });
    merge_fleet(out, FLEET_BATCH)
}

/// Delivery attempts before a batch is given up (1 s, 2 s, 4 s, 8 s apart).
const ATTEMPTS: u32 = 5;

/// Sends a batch to one channel, retrying with backoff; notes the outcome
/// on the channel, and audits a delivery given up.
async fn deliver(hub: &HubState, channel: &ChannelRecord, batch: &Batch) {
    let mut delay = Duration::from_secs(1);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        match channels::send(channel, batch).await {
            Ok(()) => {
                let ids: Vec<i64> = batch.alerts.iter().map(|a| a.id).collect();
                let noted = async {
                    hub.store.note_alert_delivery(channel.id, None).await?;
                    hub.store.mark_alerts_notified(&ids).await
                };
                if let Err(e) = noted.await {
                    tracing::warn!(error = %crate::report(&e), "noting a delivery failed");
                }
                return;
            }
            Err(e) => {
                last = e;
                tracing::info!(
                    channel = channel.name,
                    attempt,
                    error = last,
                    "alert delivery failed"
                );
            }
        }
    }
    let record = crate::audit::Record::new(
        crate::audit::ActorKind::Hub,
        "alerts",
        "alert_channel.deliver",
        crate::audit::Outcome::Failed,
    )
    .target(&format!("alert_channel:{}", channel.id))
    .detail(&format!(
        "{} on {}: gave up after {ATTEMPTS} attempts: {last}",
        batch.rule.name, batch.node_id
    ));
    let noted = async {
        hub.store
            .note_alert_delivery(channel.id, Some(&last))
            .await?;
        hub.store.audit(record).await.map(|_| ())
    };
    if let Err(e) = noted.await {
        tracing::warn!(error = %crate::report(&e), "noting a failed delivery failed");
    }
}
