//! Hub replicas (`--bus nats://HOST:PORT`): several hubs on one PostgreSQL
//! store share one twin over NATS.
//!
//! - Each agent's link is held by the replica it dialed. The owners bucket
//!   (JetStream KV) records which one, by revision-checked writes; an agent
//!   that dials another replica moves there, and the old link is closed.
//! - The replica holding a link publishes the node's changes on the node's
//!   subject (the agent's frames as they came, and connects/disconnects);
//!   every other replica applies them to its twin as a mirror (shown, not
//!   stored or alerted on twice: `Twin::connect_mirror`).
//! - Replicas keep a lease each in the leases bucket (entries expire after
//!   [`LEASE_TTL`]); a replica whose lease lapses has died, and its nodes
//!   show disconnected until their agents dial another. One more lease,
//!   [`wire::LEADER_KEY`], picks the replica that runs the singleton work
//!   (scheduler, alert notifications, gateway polls, retention, rollouts).
//!
//! `wire.rs` holds the names and bodies; this file the tasks.

pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::bytes::Bytes;
use tokio_util::sync::CancellationToken;
use twinbay_proto::command::Policy;
use twinbay_proto::message::AgentMessage;

use crate::twin::Twin;
use wire::{Connected, Kind, Names, ReplicaInfo};

/// How long a replica's lease (and the leader's) lives without a refresh.
pub const LEASE_TTL: Duration = Duration::from_secs(6);
/// How often leases are refreshed and the others' looked at.
pub const LEASE_EVERY: Duration = Duration::from_secs(2);
/// Twin messages waiting to be published; beyond, they are dropped and the
/// mirrors catch up with a full sync when they notice the gap.
const OUTBOX: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("bus {0}: {1}")]
    Connect(String, String),
    #[error("bus: {0}")]
    Bus(String),
}

fn bus_error(e: impl std::fmt::Display) -> ReplicaError {
    ReplicaError::Bus(e.to_string())
}

struct Outgoing {
    subject: String,
    kind: Kind,
    body: Bytes,
}

/// This replica's side of the bus.
pub struct Replicas {
    /// This replica's id (random at each start).
    pub id: String,
    names: Names,
    client: async_nats::Client,
    leases: kv::Store,
    owners: kv::Store,
    outbox: mpsc::Sender<Outgoing>,
    outbox_rx: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    leader: tokio::sync::watch::Sender<bool>,
    /// The replicas whose leases were live at the last look.
    live: Mutex<BTreeMap<String, ReplicaInfo>>,
    /// Nodes mirrored from another replica: which one, and the mirror's
    /// connection id in the twin.
    mirrors: Mutex<HashMap<String, (String, u64)>>,
    started_ms: i64,
    public_url: Mutex<String>,
    /// Where the leader keeps the replicas' URLs for join strings.
    store: Mutex<Option<crate::store::Store>>,
    /// Twin messages dropped because the outbox was full.
    pub dropped: std::sync::atomic::AtomicU64,
    /// The replica holding the singleton lease at the last look.
    leader_id: Mutex<Option<String>>,
    /// Whether this replica wrote the URLs since it last became leader.
    urls_written: std::sync::atomic::AtomicBool,
}

impl Replicas {
    /// Connects to the NATS server at `url` and opens the cluster's buckets.
    pub async fn connect(url: &str, cluster: &str) -> Result<Arc<Replicas>, ReplicaError> {
        let server = url.strip_prefix("nats://").unwrap_or(url);
        let client = async_nats::ConnectOptions::new()
            .name("twinbay-hub")
            .connection_timeout(Duration::from_secs(5))
            .connect(server)
            .await
            .map_err(|e| ReplicaError::Connect(url.to_string(), e.to_string()))?;
        let version = client.server_info().version;
        if !recent_enough(&version) {
            return Err(ReplicaError::Connect(
                url.to_string(),
                format!(
                    "NATS server {version} is too old: hub replicas need 2.10 or newer, with JetStream (-js)"
                ),
            ));
        }
        let js = async_nats::jetstream::new(client.clone());
        let names = Names::new(cluster);
        let leases = js
            .create_or_update_key_value(kv::Config {
                bucket: names.leases_bucket(),
                history: 1,
                max_age: LEASE_TTL,
                ..Default::default()
            })
            .await
            .map_err(|e| ReplicaError::Connect(url.to_string(), e.to_string()))?;
        let owners = js
            .create_or_update_key_value(kv::Config {
                bucket: names.owners_bucket(),
                history: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| ReplicaError::Connect(url.to_string(), e.to_string()))?;
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX);
        Ok(Arc::new(Replicas {
            id: format!("r{}", new_id()),
            names,
            client,
            leases,
            owners,
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
            leader: tokio::sync::watch::Sender::new(false),
            live: Mutex::new(BTreeMap::new()),
            mirrors: Mutex::new(HashMap::new()),
            started_ms: crate::store::now_ms(),
            public_url: Mutex::new(String::new()),
            store: Mutex::new(None),
            dropped: 0.into(),
            urls_written: false.into(),
            leader_id: Mutex::new(None),
        }))
    }

    /// This replica's public URL (empty before [`Replicas::run`]).
    pub fn public_url(&self) -> String {
        lock(&self.public_url).clone()
    }

    /// Whether this replica holds the singleton lease now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Fires when this replica gains or loses the singleton lease.
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<bool> {
        self.leader.subscribe()
    }

    /// The replicas alive at the last look (this one included).
    pub fn live(&self) -> Vec<ReplicaInfo> {
        lock(&self.live).values().cloned().collect()
    }

    /// Which replica holds each agent's link, from the owners bucket.
    pub async fn owners(&self) -> Result<BTreeMap<String, String>, ReplicaError> {
        let mut keys = self.owners.keys().await.map_err(bus_error)?;
        let mut out = BTreeMap::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(bus_error)?;
            if let Some(value) = self.owners.get(key.as_str()).await.map_err(bus_error)? {
                out.insert(key, String::from_utf8_lossy(&value).into_owned());
            }
        }
        Ok(out)
    }

    /// The replica holding `node`'s link, if another one.
    pub fn owner_of(&self, node: &str) -> Option<String> {
        lock(&self.mirrors)
            .get(node)
            .map(|(owner, _)| owner.clone())
    }

    fn send(&self, node: &str, kind: Kind, body: Bytes) {
        let out = Outgoing {
            subject: self.names.twin(node),
            kind,
            body,
        };
        if self.outbox.try_send(out).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// An agent connected here: tell the others, and record the link as ours.
    pub fn connected(
        self: &Arc<Self>,
        node: &str,
        agent_version: &str,
        policy: Option<&Policy>,
        simulated: bool,
        public_key: &str,
        agentless: Option<crate::twin::Agentless>,
    ) {
        let body = Connected {
            agent_version: agent_version.to_string(),
            policy: policy.cloned(),
            simulated,
            public_key: public_key.to_string(),
            agentless,
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        self.send(node, Kind::Connected, body.into());
        let (me, node) = (self.clone(), node.to_string());
        tokio::spawn(async move {
            if let Err(e) = me.claim(&node).await {
                tracing::warn!(node, error = %e, "could not record the agent's replica");
            }
        });
    }

    /// A frame of an agent connected here (a full sync, a diff, samples).
    pub fn frame(&self, node: &str, frame: &[u8]) {
        self.send(node, Kind::Frame, Bytes::copy_from_slice(frame));
    }

    /// An agent left this replica.
    pub fn disconnected(self: &Arc<Self>, node: &str) {
        self.send(node, Kind::Disconnected, Bytes::new());
        let (me, node) = (self.clone(), node.to_string());
        tokio::spawn(async move {
            if let Ok(Some(entry)) = me.owners.entry(node.as_str()).await
                && entry.operation == kv::Operation::Put
                && entry.value == me.id.as_bytes()
            {
                let _ = me
                    .owners
                    .delete_expect_revision(node.as_str(), Some(entry.revision))
                    .await;
            }
        });
    }

    /// Records `node`'s link as this replica's: created if no one holds it,
    /// else taken over with a revision check (the agent chose this replica;
    /// the old holder closes its link when it hears of the new one).
    async fn claim(&self, node: &str) -> Result<(), ReplicaError> {
        let me = Bytes::from(self.id.clone());
        for _ in 0..5 {
            let entry = self.owners.entry(node).await.map_err(bus_error)?;
            let written = match entry {
                Some(e) if e.operation == kv::Operation::Put && e.value == me => return Ok(()),
                Some(e) => self
                    .owners
                    .update(node, me.clone(), e.revision)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                None => self
                    .owners
                    .create(node, me.clone())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            };
            if written.is_ok() {
                return Ok(());
            }
        }
        Err(ReplicaError::Bus("the owner record kept changing".into()))
    }

    /// Starts the tasks: the publisher, the mirror, leases and sync answers.
    pub async fn run(
        self: &Arc<Self>,
        hub: Arc<crate::HubState>,
        public_url: &str,
        stop: CancellationToken,
    ) -> Result<(), ReplicaError> {
        let twin = hub.twin.clone();
        *lock(&self.public_url) = public_url.to_string();
        *lock(&self.store) = Some(hub.store.clone());
        let commands = self
            .client
            .subscribe(self.names.commands(&self.id))
            .await
            .map_err(bus_error)?;
        let changes = self
            .client
            .subscribe(self.names.changed())
            .await
            .map_err(bus_error)?;
        tokio::spawn(hear_changes(
            self.clone(),
            hub.clone(),
            changes,
            stop.clone(),
        ));
        let gateways = self
            .client
            .subscribe(self.names.gateways())
            .await
            .map_err(bus_error)?;
        tokio::spawn(hear_gateways(
            self.clone(),
            hub.clone(),
            gateways,
            stop.clone(),
        ));
        let cancels = self
            .client
            .subscribe(self.names.cancels(&self.id))
            .await
            .map_err(bus_error)?;
        tokio::spawn(serve_cancels(hub.clone(), cancels, stop.clone()));
        let me = self.clone();
        hub.commands.on_remote_cancel(move |owner, id| {
            me.publish_soon(
                me.names.cancels(owner),
                Bytes::from(id.to_string()),
                "could not pass a cancel to the replica running the command",
            );
        });
        tokio::spawn(serve_commands(self.clone(), hub, commands, stop.clone()));
        let outbox = lock(&self.outbox_rx).take();
        if let Some(outbox) = outbox {
            tokio::spawn(publish(self.clone(), outbox, stop.clone()));
        }
        let twins = self
            .client
            .subscribe(self.names.twin_all())
            .await
            .map_err(bus_error)?;
        tokio::spawn(mirror(self.clone(), twin.clone(), twins, stop.clone()));
        let syncs = self
            .client
            .subscribe(self.names.sync())
            .await
            .map_err(bus_error)?;
        tokio::spawn(answer_syncs(
            self.clone(),
            twin.clone(),
            syncs,
            stop.clone(),
        ));
        // Catch up with the nodes the others hold.
        self.request_sync(None).await;
        self.refresh_leases(&twin).await;
        tokio::spawn(keep_leases(self.clone(), twin, stop));
        Ok(())
    }

    /// Sends a command (stored and audited already) to the replica that
    /// holds its agent's link, and relays its output and end to this
    /// replica's watchers.
    pub async fn dispatch(
        &self,
        commands: &crate::commands::Commands,
        owner: &str,
        record: crate::store::CommandRecord,
        cmd: twinbay_proto::command::Command,
    ) -> Result<(), String> {
        let id = record.id.clone();
        // Listening before the command leaves: no output is missed.
        let news = self
            .client
            .subscribe(self.names.command_news(&id))
            .await
            .map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(&wire::ForwardedCommand {
            record: record.clone(),
            cmd,
        })
        .map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(
            FORWARD_TIMEOUT,
            self.client.request(self.names.commands(owner), body.into()),
        )
        .await
        .map_err(|_| format!("replica {owner} did not answer"))?
        .map_err(|e| format!("replica {owner}: {e}"))?;
        let answer: wire::Forwarded =
            serde_json::from_slice(&answer.payload).map_err(|e| e.to_string())?;
        if let Some(error) = answer.error {
            return Err(error);
        }
        let remote = commands.register_remote(record, owner);
        tokio::spawn(relay_news(remote, id, news));
        Ok(())
    }

    /// Headers naming this replica as the publisher (see [`sender`]).
    fn signed(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(wire::REPLICA, self.id.as_str());
        headers
    }

    /// Shares the gateways' statuses (this replica leads, so polls them).
    pub fn share_gateways(&self, statuses: &[crate::gateway::GatewayStatus]) {
        let body = match serde_json::to_vec(statuses) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                tracing::warn!(error = %e, "could not encode the gateways' statuses");
                return;
            }
        };
        self.publish_soon(
            self.names.gateways(),
            body,
            "could not share the gateways' statuses",
        );
    }

    /// Tells the other replicas that `what` changed in the store.
    pub fn tell(&self, what: wire::Changed) {
        self.publish_soon(
            self.names.changed(),
            Bytes::from_static(what.as_str().as_bytes()),
            "could not tell the other replicas of a change",
        );
    }

    /// Publishes `body` on `subject` as this replica, without waiting; a
    /// failure is logged as `failed`.
    fn publish_soon(&self, subject: String, body: Bytes, failed: &'static str) {
        let client = self.client.clone();
        let headers = self.signed();
        tokio::spawn(async move {
            if let Err(e) = client.publish_with_headers(subject, headers, body).await {
                tracing::warn!(error = %e, "{failed}");
            }
        });
    }

    /// The replica holding the singleton lease at the last look.
    pub fn leader_id(&self) -> Option<String> {
        lock(&self.leader_id).clone()
    }

    /// The leading replica's URL, if known.
    pub fn leader_url(&self) -> Option<String> {
        let leader = lock(&self.leader_id).clone()?;
        lock(&self.live).get(&leader).map(|r| r.public_url.clone())
    }

    async fn request_sync(&self, node: Option<&str>) {
        let headers = self.signed();
        let body = Bytes::from(node.unwrap_or("").to_string());
        if let Err(e) = self
            .client
            .publish_with_headers(self.names.sync(), headers, body)
            .await
        {
            tracing::warn!(error = %e, "could not ask the other replicas for their nodes");
        }
    }

    /// Refreshes this replica's lease and the leader's, and lets go of the
    /// nodes of replicas whose leases lapsed.
    async fn refresh_leases(&self, twin: &Twin) {
        let agents = twin.owned_links().len() as u64;
        let info = ReplicaInfo {
            id: self.id.clone(),
            public_url: lock(&self.public_url).clone(),
            agents,
            started_ms: self.started_ms,
        };
        let body = Bytes::from(serde_json::to_vec(&info).unwrap_or_default());
        if let Err(e) = self.leases.put(wire::replica_key(&self.id), body).await {
            tracing::warn!(error = %e, "could not refresh this replica's lease");
        }
        self.refresh_leader().await;
        let live = match self.read_live().await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the replicas' leases");
                return;
            }
        };
        let gone: Vec<(String, u64)> = lock(&self.mirrors)
            .iter()
            .filter(|(_, (owner, _))| !live.contains_key(owner))
            .map(|(node, (_, conn))| (node.clone(), *conn))
            .collect();
        for (node, conn) in gone {
            tracing::info!(node, "the replica holding this agent's link is gone");
            lock(&self.mirrors).remove(&node);
            twin.disconnect(&node, conn);
        }
        let urls: Vec<String> = {
            let mut urls: Vec<String> = live.values().map(|r| r.public_url.clone()).collect();
            urls.sort();
            urls.dedup();
            urls
        };
        let mut known: Vec<String> = lock(&self.live)
            .values()
            .map(|r| r.public_url.clone())
            .collect();
        known.sort();
        known.dedup();
        *lock(&self.live) = live;
        // The leader keeps the URLs join strings list (`ctl` reads them).
        let store = lock(&self.store).clone();
        let stale = known != urls
            || !self
                .urls_written
                .swap(true, std::sync::atomic::Ordering::Relaxed);
        if self.is_leader()
            && stale
            && let Some(store) = store
            && let Err(e) = store
                .set_setting(crate::store::settings::HUB_URLS, &urls.join("\n"))
                .await
        {
            tracing::warn!(error = %crate::report(&e), "could not record the replicas' URLs");
        }
    }

    async fn read_live(&self) -> Result<BTreeMap<String, ReplicaInfo>, ReplicaError> {
        let mut keys = self.leases.keys().await.map_err(bus_error)?;
        let mut live = BTreeMap::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(bus_error)?;
            if !key.starts_with("replica.") {
                continue;
            }
            if let Some(value) = self.leases.get(key.as_str()).await.map_err(bus_error)?
                && let Ok(info) = serde_json::from_slice::<ReplicaInfo>(&value)
            {
                live.insert(info.id.clone(), info);
            }
        }
        Ok(live)
    }

    /// Takes the singleton lease if it is free, or keeps it if held.
    async fn refresh_leader(&self) {
        let me = Bytes::from(self.id.clone());
        let entry = self.leases.entry(wire::LEADER_KEY).await;
        if let Ok(Some(e)) = &entry {
            *lock(&self.leader_id) = (e.operation == kv::Operation::Put)
                .then(|| String::from_utf8_lossy(&e.value).into_owned());
        }
        let held = match entry {
            Ok(Some(e)) if e.operation == kv::Operation::Put && e.value == me => self
                .leases
                .update(wire::LEADER_KEY, me.clone(), e.revision)
                .await
                .is_ok(),
            Ok(Some(e)) if e.operation == kv::Operation::Put => false,
            Ok(_) => self.leases.create(wire::LEADER_KEY, me).await.is_ok(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the singleton lease");
                false
            }
        };
        self.leader.send_if_modified(|leader| {
            let changed = *leader != held;
            if changed {
                tracing::info!(replica = self.id, leader = held, "singleton lease");
                self.urls_written
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
            *leader = held;
            changed
        });
    }

    /// Gives up this replica's leases at shutdown, so the others take over
    /// at once rather than when they lapse.
    pub async fn release(&self) {
        if self.is_leader() {
            let _ = self.leases.delete(wire::LEADER_KEY).await;
        }
        let _ = self.leases.delete(wire::replica_key(&self.id)).await;
        let _ = self.client.flush().await;
    }
}

/// Whether a NATS server of `version` has what replicas use (KV as the
/// client library speaks it: 2.10 and newer).
fn recent_enough(version: &str) -> bool {
    let mut parts = version.trim_start_matches('v').split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts
        .next()
        .and_then(|p| p.split('-').next()?.parse().ok())
        .unwrap_or(0);
    (major, minor) >= (2, 10)
}

#[cfg(test)]
#[test]
fn servers_before_2_10_are_refused() {
    assert!(!recent_enough("2.9.10"));
    assert!(recent_enough("2.10.0"));
    assert!(recent_enough("v2.15.1"));
    assert!(recent_enough("3.0.0-beta"));
    assert!(!recent_enough("garbage"));
}

/// A short random id of `[0-9a-f]`, fit for a subject or bucket name.
pub fn new_id() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the OS has a random source");
    hex::encode(bytes)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The next message, or `None` once `stop` fires or the subscription ends.
async fn next(
    subscription: &mut async_nats::Subscriber,
    stop: &CancellationToken,
) -> Option<async_nats::Message> {
    tokio::select! {
        _ = stop.cancelled() => None,
        m = subscription.next() => m,
    }
}

/// The replica that published `message`.
fn sender(message: &async_nats::Message) -> Option<String> {
    let replica = message.headers.as_ref()?.get(wire::REPLICA)?;
    Some(replica.as_str().to_string())
}

/// Publishes the outbox in order (so a node's messages stay in order).
async fn publish(
    replicas: Arc<Replicas>,
    mut outbox: mpsc::Receiver<Outgoing>,
    stop: CancellationToken,
) {
    loop {
        let out = tokio::select! {
            _ = stop.cancelled() => break,
            out = outbox.recv() => match out { Some(out) => out, None => break },
        };
        let mut headers = replicas.signed();
        headers.insert(wire::KIND, out.kind.as_str());
        if let Err(e) = replicas
            .client
            .publish_with_headers(out.subject, headers, out.body)
            .await
        {
            tracing::warn!(error = %e, "could not publish a twin change");
        }
    }
}

/// Applies the other replicas' twin changes to this twin.
async fn mirror(
    replicas: Arc<Replicas>,
    twin: Arc<Twin>,
    mut messages: async_nats::Subscriber,
    stop: CancellationToken,
) {
    while let Some(message) = next(&mut messages, &stop).await {
        let Some(headers) = &message.headers else {
            continue;
        };
        let (Some(from), Some(kind)) = (
            headers.get(wire::REPLICA).map(|v| v.as_str().to_string()),
            headers
                .get(wire::KIND)
                .and_then(|v| Kind::parse(v.as_str())),
        ) else {
            continue;
        };
        let Some(node) = wire::node_of(message.subject.as_str()) else {
            continue;
        };
        if from == replicas.id {
            continue;
        }
        if let Some(node) = apply(&replicas, &twin, node, &from, kind, &message.payload) {
            replicas.request_sync(Some(&node)).await;
        }
    }
}

/// Applies one message; returns the node when this mirror lost track of it
/// (a gap, or frames of a link it never heard of) and needs a full sync.
fn apply(
    replicas: &Replicas,
    twin: &Twin,
    node: &str,
    from: &str,
    kind: Kind,
    payload: &[u8],
) -> Option<String> {
    match kind {
        Kind::Connected => {
            let Ok(c) = serde_json::from_slice::<Connected>(payload) else {
                tracing::warn!(node, from, "a replica sent a connect that does not parse");
                return None;
            };
            twin.ensure_node(node, c.simulated, &c.public_key);
            let conn = twin.connect_mirror(node, from, &c.agent_version, c.policy);
            if c.agentless.is_some() {
                twin.set_agentless(node, c.agentless);
            }
            lock(&replicas.mirrors).insert(node.to_string(), (from.to_string(), conn));
            None
        }
        Kind::Disconnected => {
            let mut mirrors = lock(&replicas.mirrors);
            if let Some((owner, conn)) = mirrors.get(node).cloned()
                && owner == from
            {
                mirrors.remove(node);
                drop(mirrors);
                twin.disconnect(node, conn);
            }
            None
        }
        Kind::Frame => {
            let link = lock(&replicas.mirrors).get(node).cloned();
            let Some((owner, conn)) = link.filter(|(owner, _)| owner == from) else {
                return Some(node.to_string());
            };
            let _ = owner;
            let applied = match serde_json::from_slice::<AgentMessage>(payload) {
                Ok(AgentMessage::SyncFull { seq, state }) => {
                    twin.apply_full(node, conn, seq, *state)
                }
                Ok(AgentMessage::SyncDiff { seq, changes }) => {
                    twin.apply_diff(node, conn, seq, &changes)
                }
                Ok(AgentMessage::Metrics { samples }) => {
                    twin.record_samples(node, &samples);
                    Ok(())
                }
                Ok(_) => Ok(()),
                Err(e) => {
                    tracing::warn!(node, from, error = %e, "a replica sent a frame that does not parse");
                    Ok(())
                }
            };
            applied.err().map(|e| {
                tracing::debug!(node, error = %e, "mirror out of step; asking for a full sync");
                node.to_string()
            })
        }
    }
}

/// Looks again at what another replica changed in the store.
async fn hear_changes(
    replicas: Arc<Replicas>,
    hub: Arc<crate::HubState>,
    mut changes: async_nats::Subscriber,
    stop: CancellationToken,
) {
    while let Some(message) = next(&mut changes, &stop).await {
        if sender(&message).as_deref() == Some(replicas.id.as_str()) {
            continue;
        }
        match wire::Changed::parse(&message.payload) {
            Some(wire::Changed::Schedules) => hub.schedules.changed(),
            Some(wire::Changed::SshHosts) if hub.leads() => crate::ssh::watch::sync(&hub).await,
            Some(wire::Changed::Alerts) => {
                if let Err(e) = hub.alerts.reload(&hub.store).await {
                    tracing::warn!(error = %crate::report(&e), "could not read the alert rules again");
                }
            }
            // Not leading: the leader reads the hosts.
            Some(wire::Changed::SshHosts) | None => {}
        }
    }
}

/// Shows the gateways' statuses the leading replica polled.
async fn hear_gateways(
    replicas: Arc<Replicas>,
    hub: Arc<crate::HubState>,
    mut statuses: async_nats::Subscriber,
    stop: CancellationToken,
) {
    while let Some(message) = next(&mut statuses, &stop).await {
        if sender(&message).as_deref() == Some(replicas.id.as_str()) {
            continue;
        }
        match serde_json::from_slice(&message.payload) {
            Ok(list) => hub.gateways.adopt(list),
            Err(e) => {
                tracing::warn!(error = %e, "a replica sent gateway statuses that do not parse")
            }
        }
    }
}

/// Cancels, on this replica's agents, the forwarded commands another
/// replica was asked to cancel (it checked who asked, and audited it).
async fn serve_cancels(
    hub: Arc<crate::HubState>,
    mut cancels: async_nats::Subscriber,
    stop: CancellationToken,
) {
    while let Some(message) = next(&mut cancels, &stop).await {
        match std::str::from_utf8(&message.payload) {
            Ok(id) => {
                hub.commands.cancel(id);
            }
            Err(_) => tracing::warn!("a replica sent a cancel that is not an id"),
        }
    }
}

/// How long the replica holding an agent's link has to take a command.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the commands other replicas forward to this one's agents, and
/// publishes each one's output and end for the replica that asked.
async fn serve_commands(
    replicas: Arc<Replicas>,
    hub: Arc<crate::HubState>,
    mut requests: async_nats::Subscriber,
    stop: CancellationToken,
) {
    while let Some(request) = next(&mut requests, &stop).await {
        let Some(reply) = request.reply.clone() else {
            continue;
        };
        let answer = match serde_json::from_slice::<wire::ForwardedCommand>(&request.payload) {
            Err(e) => wire::Forwarded {
                error: Some(format!("a forwarded command that does not parse: {e}")),
            },
            Ok(f) => {
                let id = f.record.id.clone();
                match hub.commands.dispatch(f.record, f.cmd) {
                    Err(e) => wire::Forwarded {
                        error: Some(e.to_string()),
                    },
                    Ok(()) => {
                        if let Some(watched) = hub.commands.watch(&id) {
                            tokio::spawn(publish_news(replicas.clone(), id, watched));
                        }
                        wire::Forwarded { error: None }
                    }
                }
            }
        };
        let body = serde_json::to_vec(&answer).unwrap_or_default();
        if let Err(e) = replicas.client.publish(reply, body.into()).await {
            tracing::warn!(error = %e, "could not answer a forwarded command");
        }
    }
}

/// Publishes a forwarded command's output and end as they come.
async fn publish_news(replicas: Arc<Replicas>, id: String, watched: crate::commands::Watched) {
    let subject = replicas.names.command_news(&id);
    let send = |news: wire::CommandNews| {
        let subject = subject.clone();
        let client = replicas.client.clone();
        async move {
            let body = serde_json::to_vec(&news).unwrap_or_default();
            if let Err(e) = client.publish(subject, body.into()).await {
                tracing::warn!(error = %e, "could not publish a forwarded command's output");
            }
        }
    };
    for out in watched.output {
        send(wire::CommandNews::Output(out)).await;
    }
    let Some(mut rx) = watched.rx else {
        send(wire::CommandNews::Done(Box::new(watched.record))).await;
        return;
    };
    loop {
        match rx.recv().await {
            Ok(crate::commands::Watch::Output(out)) => send(wire::CommandNews::Output(out)).await,
            Ok(crate::commands::Watch::Done(record)) => {
                send(wire::CommandNews::Done(record)).await;
                break;
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    id,
                    skipped = n,
                    "a forwarded command's watchers missed output"
                );
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// Hands a forwarded command's news to this replica's watchers.
async fn relay_news(remote: crate::commands::Remote, id: String, mut news: async_nats::Subscriber) {
    while let Some(message) = news.next().await {
        match serde_json::from_slice::<wire::CommandNews>(&message.payload) {
            Ok(wire::CommandNews::Output(out)) => remote.output(&id, out),
            Ok(wire::CommandNews::Done(record)) => {
                remote.end(*record);
                break;
            }
            Err(e) => tracing::warn!(id, error = %e, "news of a forwarded command does not parse"),
        }
    }
}

/// Publishes this replica's nodes again for a replica that asks.
async fn answer_syncs(
    replicas: Arc<Replicas>,
    twin: Arc<Twin>,
    mut requests: async_nats::Subscriber,
    stop: CancellationToken,
) {
    while let Some(request) = next(&mut requests, &stop).await {
        if sender(&request).as_deref() == Some(replicas.id.as_str()) {
            continue;
        }
        let only = String::from_utf8_lossy(&request.payload).into_owned();
        for (node, version, policy, seq, state) in twin.owned_links() {
            if !only.is_empty() && node != only {
                continue;
            }
            let (simulated, public_key, agentless) = twin
                .read(&node, |n| {
                    (
                        n.simulated,
                        n.public_key.clone(),
                        n.agentless.as_deref().cloned(),
                    )
                })
                .unwrap_or_default();
            let connected = Connected {
                agent_version: version,
                policy,
                simulated,
                public_key,
                agentless,
            };
            let body = serde_json::to_vec(&connected).unwrap_or_default();
            replicas.send(&node, Kind::Connected, body.into());
            let full = AgentMessage::SyncFull {
                seq,
                state: Box::new(state),
            };
            let body = serde_json::to_vec(&full).unwrap_or_default();
            replicas.send(&node, Kind::Frame, body.into());
        }
    }
}

async fn keep_leases(replicas: Arc<Replicas>, twin: Arc<Twin>, stop: CancellationToken) {
    let mut every = tokio::time::interval(LEASE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => replicas.refresh_leases(&twin).await,
        }
    }
    replicas.release().await;
}
