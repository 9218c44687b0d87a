//! Offline administration (`twinbay ctl`): works on the data dir's store
//! directly, whether or not the hub is running (SQLite WAL lets both write;
//! a data dir whose hub runs on PostgreSQL remembers its URL).

use std::path::Path;
use std::time::Duration;

use twinbay_proto::join::JoinString;

use crate::HubError;
use crate::PUBLIC_URL_FILE;
use crate::audit::anchor::{self, HEAD_FILE};
use crate::audit::head::SignedHead;
use crate::audit::{ActorKind, Broken, Expected, Outcome, Record};
use crate::store::{DB_FILE, Role, STORE_URL_FILE, Store, settings};

async fn open_existing(data_dir: &Path) -> Result<Store, HubError> {
    if !data_dir.join(DB_FILE).exists() && !data_dir.join(STORE_URL_FILE).exists() {
        return Err(HubError::NotInitialized(data_dir.display().to_string()));
    }
    Ok(Store::open(data_dir).await?)
}

/// The public URL the hub of `data_dir` last started with: its own file,
/// else the store's setting (which replicas sharing a store overwrite in
/// turn, so it may name another replica).
async fn own_url(store: &Store, data_dir: &Path) -> Result<Option<String>, HubError> {
    if let Ok(url) = std::fs::read_to_string(data_dir.join(PUBLIC_URL_FILE))
        && !url.trim().is_empty()
    {
        return Ok(Some(url.trim().to_string()));
    }
    Ok(store.setting(settings::PUBLIC_URL).await?)
}

/// Where the hub of this data dir listens (its public URL) and its
/// certificate's fingerprint, for clients that talk to it (`ctl exec`).
pub async fn hub_address(data_dir: &Path) -> Result<(String, String), HubError> {
    let store = open_existing(data_dir).await?;
    let missing = || HubError::NotInitialized(data_dir.display().to_string());
    let url = own_url(&store, data_dir).await?.ok_or_else(missing)?;
    let fp = store
        .setting(settings::TLS_FINGERPRINT)
        .await?
        .ok_or_else(missing)?;
    store.close().await;
    Ok((url, fp))
}

/// Mints a one-time join token and returns the join string for it.
pub async fn create_join_string(
    data_dir: &Path,
    ttl: Duration,
    hub_url: Option<&str>,
) -> Result<String, HubError> {
    let store = open_existing(data_dir).await?;
    let url = match hub_url {
        Some(url) => url.to_string(),
        None => own_url(&store, data_dir)
            .await?
            .ok_or_else(|| HubError::NotInitialized(data_dir.display().to_string()))?,
    };
    let fp = store
        .setting(settings::TLS_FINGERPRINT)
        .await?
        .ok_or_else(|| HubError::NotInitialized(data_dir.display().to_string()))?;
    let update_keys = store
        .setting(settings::UPDATE_KEYS)
        .await?
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let more_hubs = store.setting(settings::HUB_URLS).await?.unwrap_or_default();
    let token = store.create_join_token(ttl).await?;
    store
        .audit(
            Record::new(
                ActorKind::Cli,
                &cli_user(),
                "join_token.create",
                Outcome::Ok,
            )
            .detail(&format!("valid for {}", humantime_secs(ttl))),
        )
        .await?;
    store.close().await;
    Ok(JoinString {
        more_hubs: other_hubs(&more_hubs, &url),
        hub: url,
        token,
        fp,
        update_keys,
    }
    .encode())
}

/// The replicas' URLs but `hub`'s (from `settings::HUB_URLS`, one a line).
pub fn other_hubs(urls: &str, hub: &str) -> Vec<String> {
    urls.lines()
        .map(str::trim)
        .filter(|u| !u.is_empty() && *u != hub)
        .map(String::from)
        .collect()
}

/// Mints an API token with `role`.
pub async fn create_api_token(
    data_dir: &Path,
    role: Role,
    name: &str,
    ttl: Option<Duration>,
    groups: Option<&[String]>,
    read_only: bool,
) -> Result<String, HubError> {
    let store = open_existing(data_dir).await?;
    let (id, token) = store
        .mint_scoped_api_token(role, name, ttl, groups, read_only)
        .await?;
    let mut expiry = ttl
        .map(|t| format!(", valid for {}", humantime_secs(t)))
        .unwrap_or_default();
    if let Some(groups) = groups {
        expiry.push_str(&format!(", hosts {}", groups.join(",")));
    }
    if read_only {
        expiry.push_str(", read-only");
    }
    store
        .audit(
            Record::new(ActorKind::Cli, &cli_user(), "api_token.create", Outcome::Ok)
                .target(&format!("token:{id}"))
                .detail(&format!("role {}{expiry}", role.as_str())),
        )
        .await?;
    store.close().await;
    Ok(token)
}

/// Revokes API token `id`.
pub async fn revoke_api_token(data_dir: &Path, id: i64) -> Result<(), HubError> {
    let store = open_existing(data_dir).await?;
    let revoked = store.revoke_api_token(id).await?;
    if revoked {
        store
            .audit(
                Record::new(ActorKind::Cli, &cli_user(), "api_token.revoke", Outcome::Ok)
                    .target(&format!("token:{id}")),
            )
            .await?;
    }
    store.close().await;
    match revoked {
        true => Ok(()),
        false => Err(HubError::NotFound(format!("no active API token {id}"))),
    }
}

/// The head `twinbay ctl audit verify` compares the chain with.
#[derive(Debug, Clone)]
pub enum ExpectHead {
    /// The head recorded in the data dir (`audit.head`), if there is one.
    Recorded,
    /// A hash the admin wrote down (`--expect-head`).
    Hash(Expected),
    /// A head exported by `GET /api/v1/audit/head` (`--head-file`); its
    /// signature is checked with the hub's audit key first.
    Signed(SignedHead),
}

/// Checks the audit trail's hash chain, and that it still holds the
/// expected head: `Ok` with the number of entries and the head (to write
/// down elsewhere), or the first broken entry.
pub async fn verify_audit(
    data_dir: &Path,
    expect: ExpectHead,
) -> Result<Result<(u64, Option<(i64, String)>), Broken>, HubError> {
    let store = open_existing(data_dir).await?;
    let expected = match expect {
        // Read before the chain: the file only ever names committed entries.
        ExpectHead::Recorded => store
            .anchor()
            .read()
            .map_err(|e| HubError::Config(format!("{HEAD_FILE} cannot be read: {e}")))?
            .map(|h| h.expected()),
        ExpectHead::Hash(expected) => Some(expected),
        ExpectHead::Signed(head) => Some(
            head.verify(&anchor::public_key(data_dir)?)
                .map_err(|e| HubError::Config(e.to_string()))?,
        ),
    };
    let result = store.audit_verify(expected).await?;
    store.close().await;
    Ok(result)
}

/// Who ran `twinbay ctl`, as the OS tells it.
fn cli_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

fn humantime_secs(d: Duration) -> String {
    format!("{} s", d.as_secs())
}
