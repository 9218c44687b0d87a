//! Reading one path into a [`WatchedFile`]: stat, hash (streamed), and for
//! small text files the redaction count (the text is dropped unless asked
//! for, to be sent).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use hmac::Mac;
use sha2::{Digest, Sha256};
use twinbay_proto::model::{FileContent, FileState, WatchedFile};

use super::Origin;
use super::kind::classify;
use super::secrets::{FileKey, is_secret_name, redact};

/// Enough of a file's identity to skip re-hashing it on a periodic rescan
/// when nothing about it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    /// Nanoseconds since the epoch (wrapping: only equality matters).
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m
                .mtime()
                .wrapping_mul(1_000_000_000)
                .wrapping_add(m.mtime_nsec()),
            ctime_ns: m
                .ctime()
                .wrapping_mul(1_000_000_000)
                .wrapping_add(m.ctime_nsec()),
        }
    }

    /// The stamp of `path` now, without opening it.
    pub fn read(path: &Path) -> Option<Stamp> {
        std::fs::metadata(path).ok().map(|m| Stamp::of(&m))
    }
}

/// One reading of a path.
#[derive(Debug)]
pub struct Scanned {
    pub file: WatchedFile,
    pub stamp: Option<Stamp>,
    /// The redacted text, when asked for and the content ships.
    pub text: Option<String>,
}

const BUF: usize = 64 * 1024;

/// Reads `path` as it is now. Never fails: a missing path is
/// [`FileState::Missing`], any other error [`FileState::Unreadable`].
pub fn scan(
    path: &Path,
    origin: Origin,
    content_cap: u64,
    key: &FileKey,
    want_text: bool,
) -> Scanned {
    let mut file = WatchedFile {
        path: path.to_string_lossy().into_owned(),
        kind: classify(path, origin),
        origin: origin.as_str().to_string(),
        content: FileContent::None,
        ..Default::default()
    };
    let fail = |mut file: WatchedFile, e: io::Error| {
        file.content = FileContent::None;
        file.keyed = false;
        file.redacted = 0;
        if e.kind() == io::ErrorKind::NotFound {
            file.state = FileState::Missing;
        } else {
            file.state = FileState::Unreadable;
            file.error = Some(e.to_string());
        }
        Scanned {
            file,
            stamp: None,
            text: None,
        }
    };
    // Never open a FIFO or device (it could block, or be endless).
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return fail(file, io::Error::other("not a regular file")),
        Ok(_) => {}
        Err(e) => return fail(file, e),
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path);
    let mut f = match opened {
        Ok(f) => f,
        Err(e) => return fail(file, e),
    };
    let meta = match f.metadata() {
        Ok(m) => m,
        Err(e) => return fail(file, e),
    };
    if !meta.is_file() {
        return fail(file, io::Error::other("not a regular file"));
    }
    file.mode = Some(meta.mode() & 0o7777);
    file.uid = Some(meta.uid());
    file.gid = Some(meta.gid());
    file.mtime_ms = Some(meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000);
    let stamp = Some(Stamp::of(&meta));
    let secret = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(is_secret_name);

    let result = if secret {
        file.content = FileContent::Secret;
        file.keyed = true;
        let mut mac = key.mac();
        stream(&mut f, &[], |b| mac.update(b))
            .map(|n| (n, hex::encode(mac.finalize().into_bytes()), None))
    } else if meta.len() > content_cap {
        file.content = FileContent::TooLarge;
        let mut h = Sha256::new();
        stream(&mut f, &[], |b| h.update(b)).map(|n| (n, hex::encode(h.finalize()), None))
    } else {
        read_small(&mut f, content_cap, key, want_text, &mut file)
    };
    match result {
        Ok((size, sha, text)) => {
            file.size = Some(size);
            file.sha256 = Some(sha);
            Scanned { file, stamp, text }
        }
        Err(e) => fail(file, e),
    }
}

/// Hashes what is left of `f` (after `head`, already read) in fixed chunks.
fn stream(f: &mut File, head: &[u8], mut update: impl FnMut(&[u8])) -> io::Result<u64> {
    update(head);
    let mut n = head.len() as u64;
    let mut buf = vec![0u8; BUF];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => {
                update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A file within the cap: read whole (briefly), classified as text or
/// binary, redacted to count secret values.
fn read_small(
    f: &mut File,
    cap: u64,
    key: &FileKey,
    want_text: bool,
    file: &mut WatchedFile,
) -> io::Result<(u64, String, Option<String>)> {
    let mut bytes = Vec::new();
    f.by_ref().take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        // It grew past the cap while we read: hash the rest too.
        file.content = FileContent::TooLarge;
        let mut h = Sha256::new();
        let n = stream(f, &bytes, |b| h.update(b))?;
        return Ok((n, hex::encode(h.finalize()), None));
    }
    let n = bytes.len() as u64;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) if !t.contains('\0') => t,
        _ => {
            file.content = FileContent::Binary;
            return Ok((n, hex::encode(Sha256::digest(&bytes)), None));
        }
    };
    file.content = FileContent::Shipped;
    let (redacted, count) = redact(text, key);
    file.redacted = count;
    let sha = if count > 0 {
        file.keyed = true;
        key.hmac_hex(&bytes)
    } else {
        hex::encode(Sha256::digest(&bytes))
    };
    Ok((n, sha, want_text.then_some(redacted)))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use twinbay_proto::model::FileKind;

    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("twinbay-scan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn key() -> FileKey {
        FileKey::from_bytes([1; 32])
    }

    #[test]
    fn reads_text_binary_secret_large_missing() {
        let d = dir("kinds");
        let conf = d.join("app.yaml");
        std::fs::write(&conf, "port: 80\n").unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).unwrap();
        let s = scan(&conf, Origin::Watch, 1024, &key(), true);
        assert_eq!(s.file.state, FileState::Present);
        assert_eq!(s.file.content, FileContent::Shipped);
        assert_eq!(s.file.kind, FileKind::Yaml);
        assert_eq!(s.file.size, Some(9));
        assert_eq!(s.file.mode, Some(0o640));
        assert!(!s.file.keyed);
        assert_eq!(
            s.file.sha256.as_deref(),
            Some(hex::encode(Sha256::digest(b"port: 80\n")).as_str())
        );
        assert_eq!(s.text.as_deref(), Some("port: 80\n"));
        assert!(s.file.ships_content());
        assert!(
            scan(&conf, Origin::Watch, 1024, &key(), false)
                .text
                .is_none()
        );

        let with_secret = d.join("db.conf");
        std::fs::write(&with_secret, "user=app\npassword=hunter2\n").unwrap();
        let s = scan(&with_secret, Origin::Watch, 1024, &key(), true);
        assert_eq!(s.file.redacted, 1);
        assert!(s.file.keyed);
        assert_eq!(
            s.file.sha256.as_deref(),
            Some(key().hmac_hex(b"user=app\npassword=hunter2\n").as_str())
        );
        assert!(!s.text.unwrap().contains("hunter2"));

        let env = d.join(".env");
        std::fs::write(&env, "A=1\n").unwrap();
        let s = scan(&env, Origin::Watch, 1024, &key(), true);
        assert_eq!(s.file.content, FileContent::Secret);
        assert!(s.file.keyed && s.text.is_none() && !s.file.ships_content());
        assert_eq!(
            s.file.sha256.as_deref(),
            Some(key().hmac_hex(b"A=1\n").as_str())
        );

        let bin = d.join("blob");
        std::fs::write(&bin, b"ab\0cd").unwrap();
        let s = scan(&bin, Origin::Watch, 1024, &key(), true);
        assert_eq!(s.file.content, FileContent::Binary);
        assert!(s.text.is_none());
        std::fs::write(&bin, [0xff, 0xfe, b'a']).unwrap();
        assert_eq!(
            scan(&bin, Origin::Watch, 1024, &key(), true).file.content,
            FileContent::Binary
        );

        let big = d.join("big.conf");
        std::fs::write(&big, vec![b'x'; 2000]).unwrap();
        let s = scan(&big, Origin::Watch, 1024, &key(), true);
        assert_eq!(s.file.content, FileContent::TooLarge);
        assert_eq!(s.file.size, Some(2000));
        assert_eq!(
            s.file.sha256.as_deref(),
            Some(hex::encode(Sha256::digest(vec![b'x'; 2000])).as_str())
        );

        let s = scan(&d.join("nope"), Origin::Unit, 1024, &key(), true);
        assert_eq!(s.file.state, FileState::Missing);
        assert_eq!(s.file.content, FileContent::None);
        assert_eq!(s.file.origin, "unit");
        assert!(s.file.sha256.is_none());

        let s = scan(&d, Origin::Watch, 1024, &key(), true);
        assert_eq!(s.file.state, FileState::Unreadable);
        assert_eq!(s.file.error.as_deref(), Some("not a regular file"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
