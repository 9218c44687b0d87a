//! Hosts over SSH (`ssh.rs` does the work): the hub's public key, adding a
//! host (host key confirmed and pinned, then an agent installed as a job
//! whose steps the host's record shows), reading and removing hosts.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::ApiError;
use super::auth::Auth;
use super::body::JsonBody;
use crate::HubState;
use crate::audit::{Outcome, Record};
use crate::ssh::hosts::{Install, SshHost, Step, StepState};
use crate::ssh::identity::{self, PublicIdentity};
use crate::ssh::{SshError, Target, install, pool};
use crate::store::{Principal, now_ms};

/// How long the first contact may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSshHost {
    /// `ssh://USER@HOST[:PORT]`.
    #[schema(min_length = 1, max_length = 300)]
    pub target: String,
    /// The host key's fingerprint (`SHA256:…`) the admin confirmed. Without
    /// it the add stops with 409 naming the fingerprint the host showed.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Record the host for collection over SSH; install nothing.
    #[serde(default)]
    pub agentless: bool,
    /// How often an agentless host is read, in seconds (at least 2; default 30).
    #[serde(default)]
    #[schema(minimum = 2, maximum = 86400)]
    pub interval_secs: Option<u64>,
    /// A system unit through sudo instead of a user unit: not supported yet.
    #[serde(default)]
    pub system_unit: Option<bool>,
    /// The host's own OpenSSH private key (unencrypted) instead of the
    /// hub's key; kept 0600 in the data dir, never returned.
    #[serde(default)]
    pub private_key: Option<String>,
}

fn ssh_error(e: SshError) -> ApiError {
    match e {
        SshError::InvalidTarget(m) => ApiError::BadRequest(m),
        SshError::Identity(m) => ApiError::BadRequest(format!("private_key: {m}")),
        SshError::UnknownHost(m) => ApiError::NotFound(format!("no SSH host {m}")),
        e @ (SshError::UnknownHostKey { .. }
        | SshError::HostKeyMismatch { .. }
        | SshError::HostKeyChanged { .. }) => ApiError::Conflict(e.to_string()),
        e => ApiError::Other(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// The hub's SSH public key, for the hosts' `authorized_keys`.
#[utoipa::path(
    get,
    path = "/api/v1/ssh/identity",
    tag = "ssh",
    responses((status = 200, body = PublicIdentity), (status = 401), (status = 403))
)]
pub async fn get_identity(
    State(hub): State<Arc<HubState>>,
    Auth(_who): Auth,
) -> Json<PublicIdentity> {
    Json(identity::public(hub.ssh.pool.identity()))
}

fn visible(hub: &HubState, who: &Principal, host: &SshHost) -> bool {
    who.groups.is_none()
        || host
            .node_id
            .as_deref()
            .is_some_and(|n| super::nodes::require_node(hub, n, who).is_ok())
}

/// Every host added over SSH, with its install progress and security state
/// (a caller limited to host groups: those whose agent it sees).
#[utoipa::path(
    get,
    path = "/api/v1/ssh/hosts",
    tag = "ssh",
    responses((status = 200, body = Vec<SshHost>), (status = 401))
)]
pub async fn list(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
) -> Result<Json<Vec<SshHost>>, ApiError> {
    let mut hosts = hub.store.ssh_hosts().await?;
    hosts.retain(|h| visible(&hub, &who, h));
    Ok(Json(hosts))
}

/// One host added over SSH: its install's steps as they go, and its
/// security state (`host_key_changed` when it showed another key).
#[utoipa::path(
    get,
    path = "/api/v1/ssh/hosts/{id}",
    tag = "ssh",
    params(("id" = String, Path, description = "SSH host id")),
    responses((status = 200, body = SshHost), (status = 401), (status = 404))
)]
pub async fn get_one(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Json<SshHost>, ApiError> {
    match hub.ssh.host(&hub.store, &id).await? {
        Some(h) if visible(&hub, &who, &h) => Ok(Json(h)),
        _ => Err(ApiError::NotFound(format!("no SSH host {id}"))),
    }
}

/// Adds a host: connects, checks the host key against `fingerprint` and
/// pins it, then (unless `agentless`) installs an agent as a job. Answers
/// 202 with the host; follow its `install` with `GET /api/v1/ssh/hosts/{id}`.
#[utoipa::path(
    post,
    path = "/api/v1/ssh/hosts",
    tag = "ssh",
    request_body = NewSshHost,
    responses(
        (status = 202, body = SshHost),
        (status = 400), (status = 401), (status = 403),
        (status = 409, description = "Unknown host key (the message names its fingerprint), a key other than the one given, or a host added already"),
        (status = 502, description = "The host could not be reached or refused the key")
    )
)]
pub async fn add(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    body: Result<JsonBody<NewSshHost>, ApiError>,
) -> Result<(StatusCode, Json<SshHost>), ApiError> {
    let JsonBody(new) = body?;
    let target = Target::parse(&new.target).map_err(ApiError::BadRequest)?;
    if let Some(s) = new.interval_secs
        && !(crate::ssh::watch::MIN_INTERVAL_SECS..=86_400).contains(&s)
    {
        return Err(ApiError::BadRequest(
            "interval_secs: between 2 and 86400 seconds".into(),
        ));
    }
    if new.system_unit == Some(true) {
        return Err(ApiError::BadRequest(
            "system_unit: a system unit through sudo is not supported yet; leave it out for a user unit".into(),
        ));
    }
    if let Some(fp) = &new.fingerprint
        && !fp.starts_with("SHA256:")
    {
        return Err(ApiError::BadRequest(format!(
            "fingerprint: {fp:?} is not SHA256:… (as `ssh-keygen -lf` prints it)"
        )));
    }
    let shown = target.to_string();
    if hub
        .store
        .ssh_hosts()
        .await?
        .iter()
        .any(|h| h.target == shown)
    {
        return Err(ApiError::Conflict(format!("{shown} is added already")));
    }
    let own_key = match &new.private_key {
        Some(pem) => Some(Arc::new(identity::parse_private(pem).map_err(ssh_error)?)),
        None => None,
    };
    let key = own_key
        .clone()
        .unwrap_or_else(|| hub.ssh.pool.identity().clone());
    let contact = pool::connect(&target, &key, new.fingerprint.as_deref(), CONNECT_TIMEOUT).await;
    let fingerprint = match contact {
        Ok((handle, fp)) => {
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            fp
        }
        Err(e) => {
            if matches!(e, SshError::HostKeyMismatch { .. }) {
                hub.store
                    .audit(
                        Record::by(&who, "ssh_host.add", Outcome::Denied)
                            .target(&shown)
                            .detail(&e.to_string()),
                    )
                    .await?;
            }
            return Err(ssh_error(e));
        }
    };
    let id = {
        let mut b = [0u8; 5];
        getrandom::fill(&mut b)
            .map_err(|e| ApiError::Other(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        format!("ssh-{}", hex::encode(b))
    };
    if let Some(pem) = &new.private_key {
        identity::store_host_key(&hub.ssh.data_dir, &id, pem).map_err(ssh_error)?;
    }
    let now = now_ms();
    let host = SshHost {
        id: id.clone(),
        target: shown.clone(),
        fingerprint: fingerprint.clone(),
        agentless: new.agentless,
        interval_secs: new.interval_secs,
        own_key: own_key.is_some(),
        node_id: None,
        security: None,
        install: (!new.agentless).then(|| Install {
            steps: vec![Step {
                name: "connect".into(),
                state: StepState::Done,
                detail: format!(
                    "host key {fingerprint} pinned; signed in as {} with key {}",
                    target.user,
                    key.fingerprint(russh::keys::HashAlg::Sha256)
                ),
                started_ms: now,
                ended_ms: Some(now),
            }],
            ..Install::new()
        }),
        created_ms: now,
    };
    hub.store.save_ssh_host(&host).await?;
    hub.ssh
        .pool
        .register(&id, hub.ssh.entry(&host).map_err(ssh_error)?);
    hub.store
        .audit(
            Record::by(&who, "ssh_host.add", Outcome::Ok)
                .target(&format!("ssh:{id}"))
                .detail(&format!(
                    "{shown}, host key {fingerprint}{}{}",
                    if new.agentless {
                        ", agentless"
                    } else {
                        ", installing an agent"
                    },
                    if own_key.is_some() { ", own key" } else { "" }
                )),
        )
        .await?;
    if new.agentless {
        crate::ssh::watch::begin(&hub, &host).await?;
    } else {
        tokio::spawn(install::run(hub.clone(), id, who, hub.shutdown.clone()));
    }
    Ok((StatusCode::ACCEPTED, Json(host)))
}

/// Forgets a host: its pinned key, its own key if any, its connection.
/// Refused while its install runs. The agent, if any, stays enrolled.
#[utoipa::path(
    delete,
    path = "/api/v1/ssh/hosts/{id}",
    tag = "ssh",
    params(("id" = String, Path, description = "SSH host id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409))
)]
pub async fn remove(
    State(hub): State<Arc<HubState>>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let Some(host) = hub.ssh.host(&hub.store, &id).await? else {
        return Err(ApiError::NotFound(format!("no SSH host {id}")));
    };
    if host
        .install
        .as_ref()
        .is_some_and(|i| i.state == StepState::Running)
    {
        return Err(ApiError::Conflict(format!("{id}: its install is running")));
    }
    crate::ssh::watch::end(&hub, &id).await;
    hub.ssh.pool.disconnect(&id).await;
    hub.ssh.pool.remove(&id);
    hub.store.remove_ssh_host(&id).await?;
    hub.tell_replicas(crate::replicas::wire::Changed::SshHosts);
    let _ = std::fs::remove_file(identity::host_key_path(&hub.ssh.data_dir, &id));
    hub.store
        .audit(
            Record::by(&who, "ssh_host.remove", Outcome::Ok)
                .target(&format!("ssh:{id}"))
                .detail(&host.target),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a check of a host's connection found.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = SshCheck)]
pub struct Checked {
    /// Connected, host key matching the pin, key accepted, `true` ran.
    pub ok: bool,
    /// Milliseconds from connect to the command's end.
    pub duration_ms: u64,
}

/// Connects to the host afresh (dropping its pooled connection) and runs
/// `true`: the host key is checked against the pin, so a changed key is
/// found here (409, and the host's security state, timeline and audit).
#[utoipa::path(
    post,
    path = "/api/v1/ssh/hosts/{id}/check",
    tag = "ssh",
    params(("id" = String, Path, description = "SSH host id")),
    responses(
        (status = 200, body = Checked), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "The host key changed: refused"),
        (status = 502, description = "The host could not be reached or refused the key")
    )
)]
pub async fn check(
    State(hub): State<Arc<HubState>>,
    Auth(_who): Auth,
    Path(id): Path<String>,
) -> Result<Json<Checked>, ApiError> {
    if hub.ssh.host(&hub.store, &id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no SSH host {id}")));
    }
    hub.ssh.pool.disconnect(&id).await;
    let out = hub
        .ssh
        .pool
        .exec(&id, &["true".to_string()], CONNECT_TIMEOUT, 1024)
        .await;
    match out {
        Ok(out) => Ok(Json(Checked {
            ok: out.success(),
            duration_ms: out.duration.as_millis() as u64,
        })),
        Err(e @ SshError::HostKeyChanged { .. }) => {
            // Recorded before answering, so the caller sees the state at once.
            let (pinned, seen) = match &e {
                SshError::HostKeyChanged { pinned, seen } => (pinned.clone(), seen.clone()),
                _ => unreachable!(),
            };
            if let Some(host) = hub.ssh.host(&hub.store, &id).await? {
                crate::ssh::raise_key_change(
                    &hub,
                    &crate::ssh::KeyChanged {
                        host_id: id.clone(),
                        target: host.target,
                        pinned,
                        seen,
                    },
                )
                .await?;
            }
            Err(ssh_error(e))
        }
        Err(e) => Err(ssh_error(e)),
    }
}
