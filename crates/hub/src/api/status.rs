//! The hub's own vital signs, cheap to poll (unlike `/metrics`, whose size
//! grows with the fleet).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::auth::Auth;
use crate::HubState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HubStatus {
    /// The release installed by the hub's last update while its binary is
    /// that release's bytes, else the version it was built as.
    pub version: String,
    /// The version the running binary was built as.
    pub build_version: &'static str,
    /// When this hub process started (unix ms).
    pub started_ms: i64,
    pub pid: u32,
    /// `systemd`, `container` or `plain`.
    pub install: crate::lifecycle::InstallKind,
    /// Whether `POST /api/v1/hub/update` can replace the binary in place.
    pub update_possible: bool,
    /// Why not, when it cannot.
    pub update_refusal: Option<String>,
    /// This hub is an update's new binary on trial (its parent keeps it
    /// only if it serves in time).
    pub trial: bool,
    /// The data dir and the executable (admins only).
    pub data_dir: Option<String>,
    pub executable: Option<String>,
    /// Enrolled nodes.
    pub nodes: usize,
    /// Nodes whose agent is connected now.
    pub connected: usize,
    /// Open UI/API stream connections.
    pub ui_clients: i64,
    /// Frames applied from agents since the hub started.
    pub agent_frames: u64,
    /// Metric samples received from agents since the hub started.
    pub agent_samples: u64,
    /// Frames dropped because an agent exceeded its rate limit.
    pub agent_throttled_frames: u64,
    /// Frames answered with an error since the hub started.
    pub agent_bad_frames: u64,
    /// Agent connections refused at the handshake since the hub started.
    pub agent_refusals: u64,
    /// Stream clients that fell behind and were sent a fresh snapshot.
    pub ui_resyncs: u64,
    /// Stream clients dropped because they stopped taking messages.
    pub ui_dropped: u64,
    /// Timeline events dropped since the hub started because the writer
    /// fell behind (a reconnect storm bigger than the queue).
    pub timeline_dropped_events: u64,
    pub history_queued_batches: usize,
    pub history_dropped_batches: u64,
    /// Sample batches that found the writer's queue full and waited for
    /// room (their agent's link paused meanwhile) since the hub started.
    pub history_waited_batches: u64,
    /// History writes that failed since the hub started (their samples are lost).
    pub history_write_failures: u64,
    pub history_points_written: u64,
    /// Queue-to-commit time of the last history write.
    pub history_write_lag_ms: i64,
    pub database_bytes: u64,
    /// The audit trail no longer holds the head the hub recorded (its tail
    /// was cut or replaced): found at start or at an append since.
    pub audit_chain_broken: bool,
    /// What was found, when `audit_chain_broken`.
    pub audit_break: Option<String>,
    /// Client connections open now (agents, UI, API).
    pub connections_open: usize,
    /// Open connections that have not yet shown who is at the other end
    /// (these are capped; agents and UI streams leave the count once
    /// authenticated).
    pub connections_unproven: usize,
    /// Connections refused at accept since the hub started (over a limit).
    pub connections_refused: u64,
    /// Where the hub's memory goes: resident size, heap, the twin's bytes
    /// by part (estimated, walked at most every 60 s), agent sessions.
    pub memory: crate::memory::Memory,
    /// `sqlite` or `postgres`.
    pub store: &'static str,
    /// The hub replicas sharing this hub's store and bus (`--bus`); absent
    /// when the hub runs alone.
    pub replicas: Option<Replicas>,
}

/// The replicas as this one sees them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Replicas {
    /// This replica's id.
    pub this: String,
    /// Whether this replica holds the singleton lease (scheduler, alert
    /// notifications, rollouts).
    pub leader: bool,
    /// The replica holding the singleton lease at the last look (every 2 s).
    pub leading: Option<String>,
    /// The replicas whose leases were live at the last look (every 2 s).
    pub live: Vec<crate::replicas::wire::ReplicaInfo>,
    /// How many agent links each replica holds, from the owners bucket.
    pub links: std::collections::BTreeMap<String, u64>,
    /// Twin changes not published because the bus fell behind.
    pub dropped_messages: u64,
}

async fn replicas(hub: &HubState) -> Option<Replicas> {
    let r = hub.replicas.as_ref()?;
    let mut links = std::collections::BTreeMap::new();
    match r.owners().await {
        Ok(owners) => {
            for owner in owners.into_values() {
                *links.entry(owner).or_insert(0) += 1;
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read the agents' owners"),
    }
    Some(Replicas {
        this: r.id.clone(),
        leader: r.is_leader(),
        leading: r.leader_id(),
        live: r.live(),
        links,
        dropped_messages: r.dropped.load(Ordering::Relaxed),
    })
}

/// The hub's counters: fleet size, connected agents, ingest and write lag.
#[utoipa::path(
    get,
    path = "/api/v1/hub",
    tag = "hub",
    responses((status = 200, body = HubStatus), (status = 401, description = "Not authenticated"))
)]
pub async fn status(State(hub): State<Arc<HubState>>, Auth(who): Auth) -> Json<HubStatus> {
    let (mut nodes, mut connected) = (0, 0);
    hub.twin.for_each(|n| {
        nodes += 1;
        connected += usize::from(n.connected);
    });
    let m = &hub.metrics;
    let audit_break = hub.store.anchor().broken();
    let stats = &hub.history.stats;
    let connections = hub.connections.counts();
    let life = &hub.lifecycle;
    let refusal = life.update_refusal();
    let admin = who.role >= crate::store::Role::Admin;
    // The size walk reads every node (175 ms at 10,000 hosts; at most once
    // a minute, see `memory::WALK_EVERY`):
    // on an async worker it held up the tasks queued behind it, a container
    // start among them, while the other worker idled (bench/hub-scale).
    let memory = {
        let hub = hub.clone();
        tokio::task::spawn_blocking(move || {
            crate::memory::report(&hub.twin, &hub.memory, hub.sessions.len())
        })
        .await
        .unwrap_or_default()
    };
    Json(HubStatus {
        version: life.version.clone(),
        build_version: crate::VERSION,
        started_ms: life.started_ms,
        pid: life.pid,
        install: life.kind,
        update_possible: refusal.is_none(),
        update_refusal: refusal,
        trial: std::env::var_os(crate::lifecycle::TRIAL_ENV).is_some(),
        data_dir: admin.then(|| life.data_dir.display().to_string()),
        executable: crate::lifecycle::exe()
            .filter(|_| admin)
            .map(|p| p.display().to_string()),
        nodes,
        connected,
        ui_clients: m.ui_clients.get(),
        agent_frames: m.agent_frames.get(),
        agent_samples: m.agent_samples.get(),
        agent_throttled_frames: m.agent_throttled.get(),
        agent_bad_frames: m.agent_bad_frames.get(),
        agent_refusals: m.agent_refusals.get(),
        ui_resyncs: m.ui_resyncs.get(),
        ui_dropped: m.ui_dropped.get(),
        timeline_dropped_events: m.timeline_dropped.get(),
        history_queued_batches: hub.history.queued(),
        history_dropped_batches: stats.dropped_batches.load(Ordering::Relaxed),
        history_waited_batches: stats.waits.load(Ordering::Relaxed),
        history_write_failures: stats.write_failures.load(Ordering::Relaxed),
        history_points_written: stats.points_written.load(Ordering::Relaxed),
        history_write_lag_ms: stats.write_lag_ms.load(Ordering::Relaxed),
        database_bytes: hub.store.disk_bytes(),
        audit_chain_broken: audit_break.is_some(),
        audit_break,
        connections_open: connections.open,
        connections_unproven: connections.unproven,
        connections_refused: connections.refused.iter().sum(),
        memory,
        store: hub.store.backend(),
        replicas: replicas(&hub).await,
    })
}
