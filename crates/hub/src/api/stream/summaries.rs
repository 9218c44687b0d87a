//! The summary view's feed: every host in one line
//! (`twin/view/summary.rs`), kept current at a bounded rate and shared by
//! every client of `/api/v1/stream?view=summary`.
//!
//! The feed notes which hosts the twin's events are about; every [`TICK`]
//! it derives their summaries again and compares them with what it sent
//! (a host that sent samples alone only when its pulse is due, and then
//! only its numbers).
//! A changed shape (connected, counts, what fails) goes out at that tick;
//! a host whose numbers alone changed is sent as a short pulse, at most
//! once per [`pulse_every`]: every second in a small fleet, less often in
//! a large one, so that the whole stream carries at most
//! [`PULSES_PER_SEC`] pulses a second (10,000 hosts: one each per 10 s). One batch is serialized (and
//! compressed) once for all clients; a client limited to host groups gets
//! the part it may see. The work is done only while someone watches.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::shared::Snapshot;
use super::watch::peek;
use crate::HubState;
use crate::twin::Twin;
use crate::twin::view::summary::{HostSummary, Pulse};

/// How often changed hosts are looked at again.
pub const TICK: Duration = Duration::from_secs(1);
/// Pulses the feed sends a second at most, over the fleet.
pub const PULSES_PER_SEC: usize = 1000;

/// The least time between two pulses of one host, in a fleet of `hosts`.
pub fn pulse_every(hosts: usize) -> Duration {
    Duration::from_millis((hosts as u64 * 1000 / PULSES_PER_SEC as u64).clamp(1000, 30_000))
}
/// Batches a slow client may fall behind by before it gets a snapshot again.
const BUFFER: usize = 32;

/// One tick's news, for every client.
pub struct Batch {
    /// Hosts whose shape changed: their whole summary.
    pub full: Vec<(String, String)>,
    /// Hosts whose numbers alone changed: `{"id","last_seen","resources"}`.
    pub pulses: Vec<(String, String)>,
    /// The whole batch as a client that sees every host gets it.
    pub whole: Snapshot,
}

impl Batch {
    fn new(full: Vec<(String, String)>, pulses: Vec<(String, String)>) -> Batch {
        let json = message(
            false,
            full.iter().map(|x| &x.1),
            pulses.iter().map(|x| &x.1),
        );
        Batch {
            full,
            pulses,
            whole: Snapshot::new(json),
        }
    }

    /// The part of the batch about hosts `sees` admits; `None` if none.
    pub fn part(&self, sees: impl Fn(&str) -> bool) -> Option<Utf8Bytes> {
        let full: Vec<_> = self
            .full
            .iter()
            .filter(|x| sees(&x.0))
            .map(|x| &x.1)
            .collect();
        let pulses: Vec<_> = self
            .pulses
            .iter()
            .filter(|x| sees(&x.0))
            .map(|x| &x.1)
            .collect();
        (!full.is_empty() || !pulses.is_empty())
            .then(|| message(false, full.into_iter(), pulses.into_iter()))
    }
}

/// `{"type":"summaries","snapshot":S,"nodes":[…],"pulses":[…]}`.
fn message<'a>(
    snapshot: bool,
    full: impl Iterator<Item = &'a String>,
    pulses: impl Iterator<Item = &'a String>,
) -> Utf8Bytes {
    let mut out = String::from(r#"{"type":"summaries","snapshot":"#);
    out.push_str(if snapshot { "true" } else { "false" });
    out.push_str(r#","nodes":["#);
    join(&mut out, full);
    out.push_str(r#"],"pulses":["#);
    join(&mut out, pulses);
    out.push_str("]}");
    Utf8Bytes::from(out)
}

fn join<'a>(out: &mut String, items: impl Iterator<Item = &'a String>) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
}

#[derive(Serialize)]
struct PulseItem<'a> {
    id: &'a str,
    #[serde(flatten)]
    pulse: &'a Pulse,
}

/// What the feed last sent of one host.
#[derive(Debug)]
struct Known {
    sent: HostSummary,
    pulse_at: Instant,
}

/// What to send of a host now.
#[derive(Debug, PartialEq)]
enum Out {
    Nothing,
    /// Its numbers changed too soon after the last pulse: look again later.
    Later,
    Full,
    Pulse,
}

/// Decides what to send of `now` given what was sent (`known`), and
/// records it as sent.
fn plan(
    known: &mut HashMap<String, Known>,
    now: &HostSummary,
    at: Instant,
    every: Duration,
) -> Out {
    let Some(k) = known.get_mut(&now.id) else {
        known.insert(
            now.id.clone(),
            Known {
                sent: now.clone(),
                pulse_at: at,
            },
        );
        return Out::Full;
    };
    if k.sent.shape != now.shape {
        k.sent = now.clone();
        k.pulse_at = at;
        return Out::Full;
    }
    if k.sent.pulse == now.pulse {
        return Out::Nothing;
    }
    if at.duration_since(k.pulse_at) < every {
        return Out::Later;
    }
    k.sent.pulse = now.pulse.clone();
    k.pulse_at = at;
    Out::Pulse
}

#[derive(Default)]
struct Inner {
    /// Whether `known` is current (it is not kept while nobody watches).
    fresh: bool,
    known: HashMap<String, Known>,
    /// Hosts whose pulse waits for its turn.
    later: HashMap<String, Instant>,
    /// The snapshot of every host as `known` holds it now, once a client
    /// that sees every host asked for it (shared by all such clients until
    /// the next batch).
    everyone: Option<Arc<Snapshot>>,
}

pub struct Feed {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Batch>>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl Feed {
    pub fn new() -> Feed {
        Feed {
            inner: Mutex::default(),
            tx: broadcast::channel(BUFFER).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The summaries of the hosts `sees` admits (a `summaries` message with
    /// `"snapshot":true`) and a subscription to every later batch.
    pub fn subscribe(
        &self,
        twin: &Twin,
        sees: impl Fn(&HostSummary) -> bool,
    ) -> (Utf8Bytes, broadcast::Receiver<Arc<Batch>>) {
        let mut inner = self.lock();
        Self::refresh(&mut inner, twin);
        let rx = self.tx.subscribe();
        (snapshot_of(&inner, sees), rx)
    }

    /// [`Feed::subscribe`] for a client that sees every host: the snapshot
    /// is the one other such clients got since the last batch.
    pub fn subscribe_everyone(
        &self,
        twin: &Twin,
    ) -> (Arc<Snapshot>, broadcast::Receiver<Arc<Batch>>) {
        let mut inner = self.lock();
        Self::refresh(&mut inner, twin);
        let rx = self.tx.subscribe();
        let snapshot = match &inner.everyone {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(Snapshot::new(snapshot_of(&inner, |_| true)));
                inner.everyone = Some(s.clone());
                s
            }
        };
        (snapshot, rx)
    }

    /// Makes `known` current if it is not kept (nobody was watching).
    fn refresh(inner: &mut Inner, twin: &Twin) {
        if inner.fresh {
            return;
        }
        let at = Instant::now();
        let mut known = HashMap::new();
        // Each host's summary stands alone, and a host that changes during
        // the walk is in the next step's `changed`: no single moment needed.
        twin.for_each_sliced(|n| {
            plan(&mut known, &HostSummary::of(n), at, Duration::ZERO);
        });
        // Spread the hosts' turns over one pulse interval, as if their last
        // pulses had gone out in turn: from the same moment, every host of
        // the fleet fell due at once and the pulses came as one batch of
        // 10,000 every ten seconds instead of a thousand a second.
        let (hosts, every) = (known.len(), pulse_every(known.len()));
        for (i, k) in known.values_mut().enumerate() {
            let back = every.mul_f64(i as f64 / hosts as f64);
            k.pulse_at = at.checked_sub(back).unwrap_or(at);
        }
        inner.known = known;
        inner.later.clear();
        inner.everyone = None;
        inner.fresh = true;
    }

    /// Looks at the hosts in `changed` (every host with `all`) and those
    /// whose pulse is due, and sends what is news.
    ///
    /// Only a host whose shape may have changed is summarized whole; one
    /// that only sent samples waits for its pulse's turn, and then only its
    /// numbers are read. (Summarizing every host with news every tick cost
    /// 80 ms of a core each second at 10,000 hosts: all of them have a
    /// sample waiting for its pulse at any moment.)
    fn step(&self, twin: &Twin, changed: Changed, all: bool, at: Instant) {
        let mut inner = self.lock();
        if self.tx.receiver_count() == 0 {
            *inner = Inner::default();
            return;
        }
        if !inner.fresh {
            return;
        }
        let every = pulse_every(inner.known.len());
        let (mut shaped, mut pulsed) = (Vec::new(), HashSet::new());
        for (id, shape) in changed {
            match inner.known.get(&id) {
                Some(k) if shape == Change::Numbers => {
                    let due = k.pulse_at + every;
                    if due <= at {
                        pulsed.insert(id);
                    } else {
                        inner.later.entry(id).or_insert(due);
                    }
                }
                _ => shaped.push(id),
            }
        }
        inner.later.retain(|id, due| {
            if *due > at {
                return true;
            }
            pulsed.insert(id.clone());
            false
        });
        let now: Vec<HostSummary> = if all {
            let mut now = Vec::new();
            twin.for_each_sliced(|n| now.push(HostSummary::of(n)));
            now
        } else {
            shaped
                .iter()
                .filter_map(|id| twin.read(id, HostSummary::of))
                .collect()
        };
        let (mut full, mut pulses) = (Vec::new(), Vec::new());
        let pulse_item = |id: &str, pulse: &Pulse| {
            (
                id.to_string(),
                serde_json::to_string(&PulseItem { id, pulse }).expect("summaries serialize"),
            )
        };
        for s in &now {
            pulsed.remove(&s.id);
            match plan(&mut inner.known, s, at, every) {
                Out::Nothing => {}
                Out::Later => {
                    let due = inner.known.get(&s.id).map_or(at, |k| k.pulse_at + every);
                    inner.later.insert(s.id.clone(), due);
                }
                Out::Full => full.push((
                    s.id.clone(),
                    serde_json::to_string(s).expect("summaries serialize"),
                )),
                Out::Pulse => pulses.push(pulse_item(&s.id, &s.pulse)),
            }
        }
        if !all {
            for id in pulsed {
                let Some(pulse) = twin.read(&id, Pulse::of) else {
                    continue;
                };
                let Some(k) = inner.known.get_mut(&id) else {
                    continue;
                };
                if at.duration_since(k.pulse_at) < every {
                    // A shape went out since this pulse was due.
                    let due = k.pulse_at + every;
                    inner.later.insert(id, due);
                    continue;
                }
                if k.sent.pulse != pulse {
                    pulses.push(pulse_item(&id, &pulse));
                    k.sent.pulse = pulse;
                    k.pulse_at = at;
                }
            }
        }
        if !full.is_empty() || !pulses.is_empty() {
            inner.everyone = None;
            let _ = self.tx.send(Arc::new(Batch::new(full, pulses)));
        }
    }
}

/// What the twin's events since the last step said of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Anything but samples: its summary may have changed shape.
    Shape,
    /// Only samples: its numbers alone.
    Numbers,
}

/// The hosts the twin's events were about since the last step.
type Changed = HashMap<String, Change>;

/// Notes that `id` has news of `kind` (an event's `type`).
fn note(changed: &mut Changed, id: &str, kind: &str) {
    let change = if kind == "metrics" {
        Change::Numbers
    } else {
        Change::Shape
    };
    match changed.get_mut(id) {
        Some(c) => {
            if change == Change::Shape {
                *c = Change::Shape;
            }
        }
        None => {
            changed.insert(id.to_string(), change);
        }
    }
}

/// The `summaries` snapshot of the hosts in `inner` that `sees` admits.
fn snapshot_of(inner: &Inner, sees: impl Fn(&HostSummary) -> bool) -> Utf8Bytes {
    let items: Vec<String> = inner
        .known
        .values()
        .filter(|k| sees(&k.sent))
        .map(|k| serde_json::to_string(&k.sent).expect("summaries serialize"))
        .collect();
    message(true, items.iter(), std::iter::empty())
}

/// Notes the hosts the twin's events are about and steps the feed every
/// [`TICK`], until `shutdown`.
pub async fn run(hub: Arc<HubState>, shutdown: CancellationToken) {
    let mut events = hub.twin.stream().subscribe();
    let mut changed = Changed::new();
    let mut all = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => match event {
                Ok(text) => {
                    if let Some(p) = peek(text.as_str())
                        && let Some(id) = p.id
                    {
                        note(&mut changed, id, p.kind);
                    }
                }
                Err(RecvError::Lagged(_)) => all = true,
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                let hub = hub.clone();
                let ids = std::mem::take(&mut changed);
                let every = std::mem::take(&mut all);
                // Deriving summaries reads the twin: off the async workers.
                let step = tokio::task::spawn_blocking(move || {
                    hub.summaries.step(&hub.twin, ids, every, Instant::now());
                });
                let _ = step.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twin::NodeTwin;
    use twinbay_proto::model::{Container, Sample};

    fn summary(n: &NodeTwin) -> HostSummary {
        HostSummary::of(n)
    }

    #[test]
    fn shapes_go_at_once_and_numbers_at_a_bounded_rate() {
        const EVERY: Duration = Duration::from_secs(10);
        let plan = |k: &mut HashMap<String, Known>, s: &HostSummary, at| plan(k, s, at, EVERY);
        let t0 = Instant::now();
        let mut known = HashMap::new();
        let mut n = NodeTwin::for_tests("n1");
        assert_eq!(plan(&mut known, &summary(&n), t0), Out::Full, "new host");
        assert_eq!(plan(&mut known, &summary(&n), t0), Out::Nothing);

        let sample = |ts_ms, cpu_pct| Sample {
            ts_ms,
            cpu_pct,
            ..Sample::default()
        };
        n.resources = Some(sample(1, 10.0));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(plan(&mut known, &summary(&n), t1), Out::Later, "too soon");
        let t2 = t0 + EVERY;
        assert_eq!(plan(&mut known, &summary(&n), t2), Out::Pulse);
        assert_eq!(plan(&mut known, &summary(&n), t2), Out::Nothing, "sent");

        n.resources = Some(sample(2, 20.0));
        n.state.containers.insert(
            "c".into(),
            Container {
                id: "c".into(),
                state: "running".into(),
                ..Container::default()
            }
            .into(),
        );
        let t3 = t2 + Duration::from_millis(10);
        assert_eq!(
            plan(&mut known, &summary(&n), t3),
            Out::Full,
            "a shape waits for nothing"
        );
        assert_eq!(
            known["n1"].sent.pulse.resources.as_ref().unwrap().cpu_pct,
            20.0
        );
        n.connected = true;
        assert_eq!(plan(&mut known, &summary(&n), t3), Out::Full);
    }

    #[test]
    fn pulses_slow_down_as_the_fleet_grows() {
        assert_eq!(pulse_every(1), Duration::from_secs(1));
        assert_eq!(pulse_every(500), Duration::from_secs(1));
        assert_eq!(pulse_every(10_000), Duration::from_secs(10));
        assert_eq!(pulse_every(1_000_000), Duration::from_secs(30));
    }

    #[test]
    fn a_batch_parts_by_host_and_reads_as_json() {
        let b = Batch::new(
            vec![("a".into(), r#"{"id":"a"}"#.into())],
            vec![("b".into(), r#"{"id":"b"}"#.into())],
        );
        let v: serde_json::Value = serde_json::from_str(b.whole.text().as_str()).unwrap();
        assert_eq!(v["type"], "summaries");
        assert_eq!(v["snapshot"], false);
        assert_eq!(v["nodes"][0]["id"], "a");
        assert_eq!(v["pulses"][0]["id"], "b");
        let part = b.part(|id| id == "b").unwrap();
        let v: serde_json::Value = serde_json::from_str(part.as_str()).unwrap();
        assert_eq!(v["nodes"].as_array().unwrap().len(), 0);
        assert_eq!(v["pulses"].as_array().unwrap().len(), 1);
        assert!(b.part(|_| false).is_none());
        let back = miniz_oxide::inflate::decompress_to_vec_zlib(&b.whole.zipped()).unwrap();
        assert_eq!(back, b.whole.text().as_bytes());
    }

    #[test]
    fn samples_wait_for_their_pulse_and_go_without_further_news() {
        let twin = Twin::new(Vec::new());
        twin.ensure_node("n1", true, "key");
        let feed = Feed::new();
        let (_snapshot, mut rx) = feed.subscribe(&twin, |_| true);
        let every = pulse_every(1);
        let t0 = feed.lock().known["n1"].pulse_at;
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "one host: its turn is now"
        );
        let numbers = || Changed::from([("n1".to_string(), Change::Numbers)]);
        let sample = |cpu_pct| Sample {
            ts_ms: 1,
            cpu_pct,
            ..Sample::default()
        };

        twin.record_samples("n1", &[sample(10.0)]);
        feed.step(&twin, numbers(), false, t0 + every / 2);
        assert!(rx.try_recv().is_err(), "too soon after the snapshot");
        assert!(feed.lock().later.contains_key("n1"));

        // Due: it goes with no event since.
        feed.step(&twin, Changed::new(), false, t0 + every);
        let b = rx.try_recv().unwrap();
        assert!(b.full.is_empty());
        assert_eq!(b.pulses.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&b.pulses[0].1).unwrap();
        assert_eq!(v["id"], "n1");
        assert_eq!(v["resources"]["cpu_pct"], 10.0);
        assert!(feed.lock().later.is_empty());

        // A shape goes at once, whatever the pulse's turn.
        let t1 = t0 + every + Duration::from_millis(1);
        twin.record_samples("n1", &[sample(30.0)]);
        let _ = twin.connect("n1", "1.0.0", None);
        let mut news = numbers();
        note(&mut news, "n1", "status");
        assert_eq!(news["n1"], Change::Shape, "a shape outranks numbers");
        feed.step(&twin, news, false, t1);
        let b = rx.try_recv().unwrap();
        assert_eq!(b.full.len(), 1);
        assert!(b.pulses.is_empty());
    }

    #[test]
    fn a_steadily_sampling_fleet_pulses_each_host_once_per_turn() {
        const HOSTS: usize = 10_000;
        let twin = Twin::new(Vec::new());
        for i in 0..HOSTS {
            twin.ensure_node(&format!("n{i}"), true, "key");
        }
        let feed = Feed::new();
        let (_snapshot, mut rx) = feed.subscribe(&twin, |_| true);
        let t0 = feed
            .lock()
            .known
            .values()
            .map(|k| k.pulse_at)
            .max()
            .unwrap();
        let every = pulse_every(HOSTS);
        assert_eq!(every, Duration::from_secs(10));
        let mut pulses = HashMap::<String, usize>::new();
        // Every host samples every 5 s, a fifth of them each second.
        for second in 1..=60u64 {
            let mut news = Changed::new();
            for i in (0..HOSTS).filter(|i| *i as u64 % 5 == second % 5) {
                let id = format!("n{i}");
                twin.record_samples(
                    &id,
                    &[Sample {
                        ts_ms: second as i64 * 1000,
                        cpu_pct: second as f32,
                        ..Sample::default()
                    }],
                );
                note(&mut news, &id, "metrics");
            }
            feed.step(&twin, news, false, t0 + Duration::from_secs(second));
            let mut this_step = 0;
            while let Ok(b) = rx.try_recv() {
                this_step += b.pulses.len();
                for (id, _) in &b.pulses {
                    *pulses.entry(id.clone()).or_default() += 1;
                }
            }
            // Turns are spread: about a tenth of the fleet a second, never
            // the whole fleet at once (samples arrive a fifth a second, so
            // the first seconds take up to twice that).
            assert!(
                this_step <= HOSTS / 5,
                "{this_step} pulses at second {second}"
            );
        }
        // A sample every 5 s, a pulse at most every 10 s: every host's
        // numbers go once per turn, none is starved and none goes twice.
        assert_eq!(pulses.len(), HOSTS);
        let counts: HashSet<usize> = pulses.values().copied().collect();
        assert_eq!(counts, HashSet::from([6]));
    }

    #[test]
    fn the_feed_sends_only_while_watched() {
        let twin = Twin::new(Vec::new());
        twin.ensure_node("n1", true, "key");
        let feed = Feed::new();
        let at = Instant::now();
        let shape = |id: &str| Changed::from([(id.to_string(), Change::Shape)]);
        feed.step(&twin, shape("n1"), false, at);
        assert!(!feed.lock().fresh, "nobody watches: nothing kept");
        let (snapshot, mut rx) = feed.subscribe(&twin, |_| true);
        let v: serde_json::Value = serde_json::from_str(snapshot.as_str()).unwrap();
        assert_eq!(v["snapshot"], true);
        assert_eq!(v["nodes"][0]["id"], "n1");
        feed.step(&twin, shape("n1"), false, at);
        assert!(rx.try_recv().is_err(), "nothing changed");
        twin.ensure_node("n2", true, "key");
        feed.step(&twin, Changed::new(), true, at);
        let b = rx.try_recv().unwrap();
        assert_eq!(b.full.len(), 1);
        assert_eq!(b.full[0].0, "n2");
    }
}
