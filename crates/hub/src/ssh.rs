//! Hosts over SSH: the hub's SSH identity, pinned host keys, one pooled
//! connection per host, and adding a host by installing an agent on it.
//!
//! - `identity.rs`: the hub's ed25519 key pair in `DATA_DIR/ssh/` (and a
//!   host's own key, when one was given), never returned by the API.
//! - `target.rs`: `ssh://USER@HOST[:PORT]` and argv quoting (pure).
//! - `pool.rs`: connections, host-key checks against the pin, channels,
//!   backoff, idle close, counters. [`Pool::exec`] is how anything runs a
//!   command on a host.
//! - `hosts.rs`: what is kept and shown per host (`ssh_hosts` table).
//! - `install.rs`: the steps that bring up an agent on a host.
//!
//! A host key that no longer matches its pin is refused, never re-learned:
//! [`run`] marks the host (`security`), writes a timeline event
//! (`ssh.host_key_changed`) and an audit record.

pub mod identity;
pub mod install;
pub mod pool;
pub mod target;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use twinbay_store::ssh::hosts;

pub use pool::{ExecOutput, HostEntry, KeyChanged, Pool, PoolConfig, PoolStats};
pub use target::Target;

use crate::audit::{ActorKind, Outcome, Record};
use crate::store::{StoreError, now_ms};
use crate::{HubError, HubState};
use hosts::{Security, SshHost};

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{0}")]
    InvalidTarget(String),
    #[error("SSH key: {0}")]
    Identity(String),
    #[error("no SSH host {0}")]
    UnknownHost(String),
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("unknown host key {fingerprint} — confirm with --fingerprint")]
    UnknownHostKey { fingerprint: String },
    #[error("the host key is {seen}, not the {expected} given: refused")]
    HostKeyMismatch { expected: String, seen: String },
    #[error("the host key changed from the pinned {pinned} to {seen}: refused")]
    HostKeyChanged { pinned: String, seen: String },
    #[error(
        "{target} refused the key {fingerprint}: add its public key to the user's authorized_keys"
    )]
    Auth { target: String, fingerprint: String },
    #[error("no result within {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("{0}")]
    Channel(String),
    #[error("not connecting for {retry_in_ms} ms after a failure: {last}")]
    Backoff { retry_in_ms: u64, last: String },
}

/// The SSH side of the hub: its key, the pool, and host records' writes.
pub struct Ssh {
    pub pool: Pool,
    pub data_dir: PathBuf,
    /// The agentless hosts' collectors.
    pub collectors: watch::Collectors,
    /// Host records are read, changed and written whole under this.
    records: tokio::sync::Mutex<()>,
}

impl Ssh {
    /// Loads (or creates) the hub's SSH key. Host keys that change are sent
    /// to the returned receiver, for [`run`].
    pub fn open(
        data_dir: &std::path::Path,
    ) -> Result<(Ssh, mpsc::UnboundedReceiver<KeyChanged>), HubError> {
        let key =
            identity::load_or_create(data_dir).map_err(|e| HubError::Config(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        Ok((
            Ssh {
                pool: Pool::new(key, PoolConfig::default(), Some(tx)),
                data_dir: data_dir.to_path_buf(),
                collectors: watch::Collectors::default(),
                records: tokio::sync::Mutex::new(()),
            },
            rx,
        ))
    }

    /// The pool entry for `host`.
    pub fn entry(&self, host: &SshHost) -> Result<HostEntry, SshError> {
        Ok(HostEntry {
            target: Target::parse(&host.target).map_err(SshError::InvalidTarget)?,
            pinned: host.fingerprint.clone(),
            key: if host.own_key {
                identity::load_host_key(&self.data_dir, &host.id)?.map(Arc::new)
            } else {
                None
            },
        })
    }

    /// Puts every stored host in the pool. An install that was running
    /// when the hub stopped is marked failed (its task is gone).
    pub async fn load(&self, store: &crate::store::Store) -> Result<usize, StoreError> {
        let mut hosts = store.ssh_hosts().await?;
        for h in &mut hosts {
            if let Some(i) = h
                .install
                .as_mut()
                .filter(|i| i.state == hosts::StepState::Running)
            {
                let step = i.steps.last().map(|s| s.name.clone()).unwrap_or_default();
                i.state = hosts::StepState::Failed;
                i.error = Some(format!(
                    "{step} failed: the hub stopped during the install; what it had done on the host may remain"
                ));
                if let Some(s) = i
                    .steps
                    .last_mut()
                    .filter(|s| s.state == hosts::StepState::Running)
                {
                    s.state = hosts::StepState::Failed;
                }
                store.save_ssh_host(h).await?;
            }
        }
        for h in &hosts {
            match self.entry(h) {
                Ok(entry) => self.pool.register(&h.id, entry),
                Err(e) => tracing::warn!(host = h.id, error = %e, "an SSH host cannot be used"),
            }
        }
        Ok(hosts.len())
    }

    /// Host `id`'s record.
    pub async fn host(
        &self,
        store: &crate::store::Store,
        id: &str,
    ) -> Result<Option<SshHost>, StoreError> {
        Ok(store.ssh_hosts().await?.into_iter().find(|h| h.id == id))
    }

    /// Changes host `id`'s record with `f` and writes it; `None` when there
    /// is no such host.
    pub async fn update(
        &self,
        store: &crate::store::Store,
        id: &str,
        f: impl FnOnce(&mut SshHost),
    ) -> Result<Option<SshHost>, StoreError> {
        let _turn = self.records.lock().await;
        let Some(mut host) = self.host(store, id).await? else {
            return Ok(None);
        };
        f(&mut host);
        store.save_ssh_host(&host).await?;
        Ok(Some(host))
    }
}

/// The timeline's node for an SSH host: its agent's node once enrolled,
/// else `ssh:ID`.
pub fn timeline_node(host: &SshHost) -> String {
    host.node_id
        .clone()
        .unwrap_or_else(|| format!("ssh:{}", host.id))
}

/// Raises each changed host key (security state, timeline, audit) and
/// closes idle connections, until `stop` fires.
pub async fn run(
    hub: Arc<HubState>,
    mut key_changes: mpsc::UnboundedReceiver<KeyChanged>,
    stop: CancellationToken,
) {
    tokio::spawn(hub.ssh.pool.clone().run_reaper(stop.clone()));
    match hub.replicas.as_ref().map(|r| r.leadership()) {
        None => watch::sync(&hub).await,
        // Agentless hosts are read by the leading replica alone.
        Some(leadership) => {
            tokio::spawn(follow_the_lead(hub.clone(), leadership, stop.clone()));
        }
    }
    loop {
        let change = tokio::select! {
            () = stop.cancelled() => return,
            c = key_changes.recv() => match c { Some(c) => c, None => return },
        };
        if let Err(e) = raise_key_change(&hub, &change).await {
            tracing::error!(host = change.host_id, error = %crate::report(&e), "cannot record a changed host key");
        }
    }
}

/// Reads the agentless hosts while this replica leads, and stops when it
/// no longer does.
async fn follow_the_lead(
    hub: Arc<HubState>,
    mut leadership: tokio::sync::watch::Receiver<bool>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            led = leadership.wait_for(|leads| *leads) => if led.is_err() { return },
        }
        watch::sync(&hub).await;
        tokio::select! {
            () = stop.cancelled() => return,
            lost = leadership.wait_for(|leads| !*leads) => if lost.is_err() { return },
        }
        watch::end_all(&hub).await;
    }
}

/// Marks the host, and writes the timeline event and the audit record.
pub async fn raise_key_change(hub: &HubState, change: &KeyChanged) -> Result<(), StoreError> {
    let now = now_ms();
    let mut fresh = false;
    let host = hub
        .ssh
        .update(&hub.store, &change.host_id, |h| {
            if h.security.as_ref().map(|s| s.seen.as_str()) != Some(change.seen.as_str()) {
                fresh = true;
                h.security = Some(Security {
                    state: "host_key_changed".into(),
                    pinned: change.pinned.clone(),
                    seen: change.seen.clone(),
                    since_ms: now,
                });
            }
        })
        .await?;
    let Some(host) = host else { return Ok(()) };
    if !fresh {
        return Ok(());
    }
    tracing::warn!(
        host = host.id,
        target = host.target,
        pinned = change.pinned,
        seen = change.seen,
        "an SSH host key changed: refused"
    );
    hub.twin.emit(vec![crate::timeline::Event {
        node_id: timeline_node(&host),
        ts: now,
        kind: "ssh.host_key_changed".into(),
        target: host.target.clone(),
        detail: serde_json::json!({
            "ssh_host": host.id,
            "pinned": change.pinned,
            "seen": change.seen,
        }),
    }]);
    hub.store
        .audit(
            Record::new(
                ActorKind::Hub,
                "hub",
                "ssh.host_key_changed",
                Outcome::Denied,
            )
            .target(&format!("ssh:{}", host.id))
            .detail(&format!(
                "{}: pinned {}, seen {}",
                host.target, change.pinned, change.seen
            )),
        )
        .await?;
    Ok(())
}
