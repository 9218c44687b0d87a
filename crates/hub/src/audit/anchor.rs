//! The audit trail's checks at start, and the hub's audit key: the head
//! kept outside the database is [`twinbay_store::audit::anchor`].
//!
//! `DATA_DIR/audit.key` (0600, base64 ed25519 secret) signs the heads the API
//! exports ([`super::head`]).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{SigningKey, VerifyingKey};

pub use twinbay_store::audit::anchor::*;

use super::{ActorKind, Outcome, Record};
use crate::HubError;
use crate::store::Store;

/// At hub start, before anything is appended: compares the recorded head
/// with the chain. A break is logged at ERROR, recorded in the trail as
/// `audit.break` (failed) and flagged; then the file names the chain's head
/// again, so the next break is caught too.
pub async fn check_at_start(store: &Store) -> Result<(), HubError> {
    let anchor = store.anchor();
    let last = store.audit_head().await?;
    let problem = match anchor.read() {
        Err(e) => Some(format!(
            "the recorded head in {HEAD_FILE} cannot be read: {e}"
        )),
        Ok(None) => {
            if last.id > 0 {
                tracing::warn!(
                    head = last.id,
                    "no audit head was recorded in {HEAD_FILE} (first start of this version, or the file was removed); recording it from now on"
                );
            }
            None
        }
        Ok(Some(recorded)) => {
            let at = store.audit_hash_at(recorded.id).await?;
            judge(&recorded, at.as_deref(), &last)
        }
    };
    if let Some(detail) = problem {
        anchor.flag(&detail);
        store
            .audit(
                Record::new(ActorKind::Hub, "hub", "audit.break", Outcome::Failed).detail(&detail),
            )
            .await?;
    }
    anchor.record(&store.audit_head().await?);
    Ok(())
}

/// The hub's audit key, made on first start.
pub fn load_or_create_key(data_dir: &Path) -> Result<SigningKey, HubError> {
    let path = data_dir.join(KEY_FILE);
    match read_key(&path)? {
        Some(key) => Ok(key),
        None => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret)
                .map_err(|e| HubError::io(&path, std::io::Error::other(e.to_string())))?;
            crate::fsutil::write_private(&path, STANDARD.encode(secret).as_bytes())?;
            tracing::info!(path = %path.display(), "created the audit key that signs exported heads");
            Ok(SigningKey::from_bytes(&secret))
        }
    }
}

/// The public half of the hub's audit key, to check a saved head with.
pub fn public_key(data_dir: &Path) -> Result<VerifyingKey, HubError> {
    let path = data_dir.join(KEY_FILE);
    match read_key(&path)? {
        Some(key) => Ok(key.verifying_key()),
        None => Err(HubError::NotFound(format!(
            "{} does not exist: no hub has run with this data dir since heads are signed",
            path.display()
        ))),
    }
}

fn read_key(path: &Path) -> Result<Option<SigningKey>, HubError> {
    match std::fs::read_to_string(path) {
        Ok(text) => STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(|b| Some(SigningKey::from_bytes(&b)))
            .ok_or_else(|| {
                HubError::Config(format!(
                    "{}: not a base64 ed25519 secret key",
                    path.display()
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(HubError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn the_audit_key_is_made_once_and_private() {
        let dir = std::env::temp_dir().join(format!("twinbay-audit-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(public_key(&dir).is_err());
        let key = load_or_create_key(&dir).unwrap();
        assert_eq!(load_or_create_key(&dir).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(public_key(&dir).unwrap(), key.verifying_key());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("twinbay-anchor-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sign_in() -> Record {
        Record::new(ActorKind::User, "admin", "session.sign_in", Outcome::Ok)
    }

    /// What someone with the database file does: drop the trigger, delete
    /// the newest rows.
    async fn cut_after(dir: &Path, id: i64) {
        let url = format!("sqlite://{}", dir.join(crate::store::DB_FILE).display());
        let db = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("DROP TRIGGER IF EXISTS audit_append_only_delete")
            .execute(&db)
            .await
            .unwrap();
        sqlx::query("DELETE FROM audit WHERE id > ?")
            .bind(id)
            .execute(&db)
            .await
            .unwrap();
        db.close().await;
    }

    #[tokio::test]
    async fn every_append_moves_the_recorded_head_whoever_appends() {
        let dir = tempdir("moves");
        let hub = Store::open(&dir).await.unwrap();
        for _ in 0..3 {
            hub.audit(sign_in()).await.unwrap();
        }
        let head = hub.audit_head().await.unwrap();
        assert_eq!(head.id, 3);
        assert_eq!(hub.anchor().read(), Ok(Some(head)));
        // Another process (`twinbay ctl`) appends, then the hub again.
        let ctl = Store::open(&dir).await.unwrap();
        ctl.audit(sign_in()).await.unwrap();
        assert_eq!(ctl.anchor().read().unwrap().unwrap().id, 4);
        hub.audit(sign_in()).await.unwrap();
        assert_eq!(
            hub.anchor().read(),
            Ok(Some(hub.audit_head().await.unwrap()))
        );
        assert_eq!(hub.anchor().broken(), None);
        assert_eq!(hub.anchor().gauge().get(), 0);
    }

    #[tokio::test]
    async fn a_tail_cut_while_the_hub_runs_is_flagged_and_the_old_head_kept() {
        let dir = tempdir("cut-live");
        let store = Store::open(&dir).await.unwrap();
        for _ in 0..5 {
            store.audit(sign_in()).await.unwrap();
        }
        let old = store.audit_head().await.unwrap();
        cut_after(&dir, 3).await;
        // The next append refills #4 but does not move the file on.
        store.audit(sign_in()).await.unwrap();
        assert_eq!(store.anchor().read(), Ok(Some(old.clone())));
        let broken = store.anchor().broken().expect("flagged");
        assert!(
            broken.contains(&format!("#5 sha256:{}", old.hash)),
            "{broken}"
        );
        assert_eq!(store.anchor().gauge().get(), 1);
        // Appends keep the evidence until it is recorded in the trail.
        store.audit(sign_in()).await.unwrap();
        store.audit(sign_in()).await.unwrap();
        assert_eq!(store.anchor().read(), Ok(Some(old)));
    }

    #[tokio::test]
    async fn a_start_after_a_cut_records_the_break_in_the_trail() {
        let dir = tempdir("cut-start");
        let store = Store::open(&dir).await.unwrap();
        check_at_start(&store).await.unwrap();
        for _ in 0..5 {
            store.audit(sign_in()).await.unwrap();
        }
        let old = store.audit_head().await.unwrap();
        store.close().await;
        cut_after(&dir, 3).await;

        let store = Store::open(&dir).await.unwrap();
        check_at_start(&store).await.unwrap();
        let detail = store.anchor().broken().expect("flagged at start");
        assert!(
            detail.starts_with(&format!(
                "recorded head #5 sha256:{} is not in the trail (the trail ends at #3 sha256:",
                old.hash
            )),
            "{detail}"
        );
        assert_eq!(store.anchor().gauge().get(), 1);
        let entry = store
            .audit_search(
                &crate::store::AuditQuery {
                    action: Some("audit.break".into()),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(entry.len(), 1);
        assert_eq!(
            (
                entry[0].id,
                entry[0].actor_kind.as_str(),
                entry[0].outcome.as_str()
            ),
            (4, "hub", "failed")
        );
        assert_eq!(entry[0].detail, detail);
        // The file names the chain's head again, so the next cut is caught too.
        assert_eq!(
            store.anchor().read(),
            Ok(Some(store.audit_head().await.unwrap()))
        );
        // The chain itself is valid; only the old head shows the cut.
        assert!(store.audit_verify(None).await.unwrap().is_ok());
        assert!(matches!(
            store.audit_verify(Some(old.expected())).await.unwrap(),
            Err(crate::audit::Broken::Cut { .. })
        ));
        store.close().await;

        // A start after that is quiet: the break is in the trail, not repeated.
        let store = Store::open(&dir).await.unwrap();
        check_at_start(&store).await.unwrap();
        assert_eq!(store.anchor().broken(), None);
        assert_eq!(store.audit_head().await.unwrap().id, 4);
    }
}
