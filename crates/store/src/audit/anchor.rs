//! The head kept outside the database.
//!
//! `DATA_DIR/audit.head` names the trail's newest entry
//! (`{"version":1,"id","hash","check"}`, padded to [`RECORD_LEN`] bytes).
//! Every append moves it on, after its transaction commits, but only along
//! the chain: if the chain no longer holds the recorded head, its tail was
//! cut or replaced, and the file keeps the old head as evidence.
//!
//! The record is overwritten in place: one fixed-size write inside one disk
//! sector (tens of µs in a debug build, against about 1 ms for the append;
//! `benches/audit.rs`). A temp file and rename cost 1-2 ms more here (ext4
//! flushes the new file's data when it replaces another), more than doubling
//! the cost of an append. `check` (the start of a SHA-256 over id and hash)
//! catches a record read while another process writes it, or torn by a
//! crash; a reader retries, then reports it. At start the hub compares the
//! file with the chain; a break is logged at ERROR, recorded in the trail
//! (`audit.break`, failed), and shown in `GET /api/v1/hub` and `/metrics`
//! (`twinbay_audit_chain_broken 1`) for as long as the hub runs. The hub still
//! starts: a security tool should be loud, not absent.
//!
//! `DATA_DIR/audit.key` (0600, base64 ed25519 secret) signs the heads the API
//! exports ([`super::head`]).
//!
//! Someone who can write the whole data dir can rewrite this file too; the
//! signed head an admin keeps elsewhere is what catches them.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};

use super::head::Head;

/// The recorded head, in the data dir.
pub const HEAD_FILE: &str = "audit.head";
/// The key that signs exported heads, in the data dir.
pub const KEY_FILE: &str = "audit.key";

/// The length of `audit.head`: one record, padded with spaces, ending in a
/// newline. Less than a disk sector, so a write lands whole or not at all.
pub const RECORD_LEN: usize = 256;

/// What `audit.head` holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recorded {
    version: u32,
    id: i64,
    hash: String,
    /// The first 16 hex digits of SHA-256 over `{id} {hash}`.
    check: String,
}

impl Recorded {
    fn new(head: &Head) -> Recorded {
        Recorded {
            version: 1,
            id: head.id,
            hash: head.hash.clone(),
            check: check(head.id, &head.hash),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut record = serde_json::to_vec(self).expect("a record serializes");
        // An id of 19 digits and a hash of 64 still leave room.
        debug_assert!(record.len() < RECORD_LEN);
        record.resize(RECORD_LEN - 1, b' ');
        record.push(b'\n');
        record
    }

    fn decode(bytes: &[u8]) -> Result<Head, String> {
        let r: Recorded = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if r.version != 1 {
            return Err(format!("unknown version {}", r.version));
        }
        if r.check != check(r.id, &r.hash) {
            return Err("its check does not match its id and hash".into());
        }
        Ok(Head {
            id: r.id,
            hash: r.hash,
        })
    }
}

fn check(id: i64, hash: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{id} {hash}").as_bytes());
    hex::encode(&digest[..8])
}

/// `DATA_DIR/audit.head`, and whether the trail was found cut.
#[derive(Debug)]
pub struct Anchor {
    path: PathBuf,
    /// What this process last wrote: while the chain's head is still that,
    /// appending needs no look at the file.
    written: Mutex<Option<Head>>,
    /// What is wrong with the trail, once found.
    broken: Mutex<Option<String>>,
    /// 1 once the trail was found cut (`twinbay_audit_chain_broken`).
    gauge: Gauge,
}

impl Anchor {
    pub fn new(data_dir: &Path) -> Anchor {
        Anchor {
            path: data_dir.join(HEAD_FILE),
            written: Mutex::new(None),
            broken: Mutex::new(None),
            gauge: Gauge::default(),
        }
    }

    /// The recorded head; `None` if no head was recorded yet.
    pub fn read(&self) -> Result<Option<Head>, String> {
        let mut tries = 0;
        loop {
            let bytes = match std::fs::read(&self.path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.to_string()),
            };
            match Recorded::decode(&bytes) {
                Ok(head) => return Ok(Some(head)),
                // Perhaps read while another process wrote it: look again.
                Err(_) if tries < 3 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes `head` as the recorded one. A failure is logged, not returned:
    /// the entry is committed by now, and the next append writes again.
    pub fn record(&self, head: &Head) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        match self.write(head) {
            Ok(()) => *written = Some(head.clone()),
            Err(e) => {
                *written = None;
                tracing::warn!(path = %self.path.display(), error = %e, "could not record the audit head");
            }
        }
    }

    /// Overwrites the record in place. Not synced, like the database's own
    /// commits (WAL, synchronous=NORMAL): a head that outlived a power loss
    /// the database's last commits did not would be reported as a cut.
    fn write(&self, head: &Head) -> std::io::Result<()> {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)?;
        f.write_all_at(&Recorded::new(head).encode(), 0)?;
        if f.metadata()?.len() != RECORD_LEN as u64 {
            f.set_len(RECORD_LEN as u64)?;
        }
        Ok(())
    }

    /// Whether this process last recorded exactly `head`.
    pub(crate) fn wrote(&self, head: &Head) -> bool {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            == Some(head)
    }

    /// Marks the trail broken; logs at ERROR the first time.
    pub fn flag(&self, detail: &str) {
        let mut broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        if broken.is_none() {
            tracing::error!(
                detail,
                "the audit trail is broken: it does not hold the head recorded in {HEAD_FILE}"
            );
            *broken = Some(detail.to_string());
            self.gauge.set(1);
        }
    }

    /// What is wrong with the trail, if it was found cut since the hub started.
    pub fn broken(&self) -> Option<String> {
        self.broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The gauge for `/metrics`: 1 once the trail was found cut.
    pub fn gauge(&self) -> Gauge {
        self.gauge.clone()
    }
}

/// Whether the chain still holds `recorded`, given the hash the chain has at
/// `recorded.id` (`None`: no such entry) and the chain's head: `None` if it
/// does, else what is wrong, in one line for the log and the trail.
pub fn judge(recorded: &Head, at_id: Option<&str>, last: &Head) -> Option<String> {
    if recorded.id == 0 && recorded.hash == super::GENESIS {
        return None;
    }
    let ends = match last.id {
        0 => "the trail has no entries".to_string(),
        id => format!("the trail ends at #{id} sha256:{}", last.hash),
    };
    let expected = format!("recorded head #{} sha256:{}", recorded.id, recorded.hash);
    match at_id {
        Some(hash) if hash == recorded.hash => None,
        Some(hash) => Some(format!(
            "{expected} is not in the trail (entry #{} is sha256:{hash}; {ends}): its tail was replaced",
            recorded.id
        )),
        None => Some(format!(
            "{expected} is not in the trail ({ends}): its tail was cut"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(id: i64, byte: &str) -> Head {
        Head {
            id,
            hash: byte.repeat(32),
        }
    }

    #[test]
    fn a_chain_that_holds_the_recorded_head_is_fine() {
        // The chain is at the head, or grew past it.
        assert_eq!(
            judge(&head(5, "aa"), Some(&"aa".repeat(32)), &head(5, "aa")),
            None
        );
        assert_eq!(
            judge(&head(5, "aa"), Some(&"aa".repeat(32)), &head(9, "bb")),
            None
        );
        assert_eq!(judge(&Head::empty(), None, &Head::empty()), None);
    }

    #[test]
    fn a_cut_tail_is_named() {
        let detail = judge(&head(12, "aa"), None, &head(9, "bb")).unwrap();
        assert_eq!(
            detail,
            format!(
                "recorded head #12 sha256:{} is not in the trail (the trail ends at #9 sha256:{}): its tail was cut",
                "aa".repeat(32),
                "bb".repeat(32)
            )
        );
        let emptied = judge(&head(3, "aa"), None, &Head::empty()).unwrap();
        assert!(emptied.contains("the trail has no entries"), "{emptied}");
    }

    #[test]
    fn a_replaced_tail_is_named() {
        let detail = judge(&head(12, "aa"), Some(&"cc".repeat(32)), &head(14, "dd")).unwrap();
        assert!(
            detail.contains(&format!("entry #12 is sha256:{}", "cc".repeat(32))),
            "{detail}"
        );
        assert!(detail.ends_with("its tail was replaced"), "{detail}");
    }

    #[test]
    fn the_recorded_head_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("twinbay-anchor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let anchor = Anchor::new(&dir);
        assert_eq!(anchor.read(), Ok(None));
        anchor.record(&head(4, "ab"));
        assert_eq!(anchor.read(), Ok(Some(head(4, "ab"))));
        assert!(anchor.wrote(&head(4, "ab")));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(HEAD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temp file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::write(dir.join(HEAD_FILE), "{").unwrap();
        assert!(anchor.read().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
