//! Where artifacts live: an object store behind one small trait.
//!
//! [`LocalDir`] keeps each object as a file under `<data dir>/backups/objects`.
//! A new object is written to a temporary file, flushed to disk (`fsync`),
//! then linked into place, which fails if the key exists (a conditional
//! create: an artifact is never overwritten), and the directory is synced.
//! Reads stream from the file in chunks; nothing holds an object in memory.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use axum::body::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// Bytes read per chunk of a streamed read.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{0:?} is not a valid object key")]
    BadKey(String),
    #[error("object {0:?} does not exist")]
    NotFound(String),
    #[error("object {0:?} exists already")]
    Exists(String),
    #[error("range {start}-{end} is outside the object ({size} bytes)")]
    Range { start: u64, end: u64, size: u64 },
    #[error("object store: {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ObjectError {
    let what = what.into();
    move |source| ObjectError::Io { what, source }
}

pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// An object being written; dropped without [`finish`](ObjectWriter::finish)
/// it leaves nothing behind.
pub trait ObjectWriter: Send {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, Result<(), ObjectError>>;
    /// Makes the object durable and visible under its key.
    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<(), ObjectError>>;
    /// Throws away what was written.
    fn abort(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Storage for artifacts. Keys are relative paths of `[a-z0-9._-]` parts.
pub trait Objects: Send + Sync {
    fn create<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, ObjectError>>;
    /// The object's size.
    fn size<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, ObjectError>>;
    /// Bytes `start..end` (end exclusive) of the object, streamed.
    fn read<'a>(
        &'a self,
        key: &'a str,
        start: u64,
        end: u64,
    ) -> BoxFuture<'a, Result<ByteStream, ObjectError>>;
    /// Removes the object; a missing one is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), ObjectError>>;
    /// One line for logs and the status page.
    fn describe(&self) -> String;
}

/// Checks a key: 1-255 bytes, parts of `[A-Za-z0-9._-]` not starting with `.`.
pub fn check_key(key: &str) -> Result<(), ObjectError> {
    let ok = (1..=255).contains(&key.len())
        && key.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(ObjectError::BadKey(key.chars().take(80).collect()))
    }
}

/// Objects as files in a directory.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// Uses (and creates, owner-only) `root`, with its `.tmp` directory.
    pub fn open(root: &Path) -> Result<LocalDir, ObjectError> {
        use std::os::unix::fs::DirBuilderExt;
        let tmp = root.join(".tmp");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&tmp)
            .map_err(io(format!("creating {}", tmp.display())))?;
        // Leftovers of writes a crash interrupted.
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(LocalDir {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf, ObjectError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

struct LocalWriter {
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    dest: PathBuf,
    key: String,
}

impl ObjectWriter for LocalWriter {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, Result<(), ObjectError>> {
        Box::pin(async move {
            let file = self.file.as_mut().expect("open until finished");
            file.write_all(chunk)
                .await
                .map_err(io(format!("writing {}", self.tmp.display())))
        })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<(), ObjectError>> {
        Box::pin(async move {
            let mut file = self.file.take().expect("open until finished");
            let tmp = self.tmp.clone();
            file.flush()
                .await
                .map_err(io(format!("writing {}", tmp.display())))?;
            file.sync_all()
                .await
                .map_err(io(format!("syncing {}", tmp.display())))?;
            drop(file);
            let (dest, key) = (self.dest.clone(), self.key.clone());
            let linked = tokio::task::spawn_blocking(move || -> Result<(), ObjectError> {
                let parent = dest.parent().expect("keys are relative to the root");
                std::fs::create_dir_all(parent)
                    .map_err(io(format!("creating {}", parent.display())))?;
                // A hard link fails if the key exists: never an overwrite.
                match std::fs::hard_link(&tmp, &dest) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(ObjectError::Exists(key));
                    }
                    Err(e) => return Err(io(format!("linking {}", dest.display()))(e)),
                }
                std::fs::File::open(parent)
                    .and_then(|d| d.sync_all())
                    .map_err(io(format!("syncing {}", parent.display())))
            })
            .await
            .unwrap_or_else(|e| {
                Err(ObjectError::Io {
                    what: "finishing an object".into(),
                    source: std::io::Error::other(e),
                })
            });
            let _ = tokio::fs::remove_file(&self.tmp).await;
            linked
        })
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            drop(self.file.take());
            let _ = tokio::fs::remove_file(&self.tmp).await;
        })
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Objects for LocalDir {
    fn create<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, ObjectError>> {
        Box::pin(async move {
            let dest = self.path(key)?;
            if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
                return Err(ObjectError::Exists(key.to_string()));
            }
            let tmp = self
                .root
                .join(".tmp")
                .join(crate::credentials::new_token("part-"));
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .await
                .map_err(io(format!("creating {}", tmp.display())))?;
            Ok(Box::new(LocalWriter {
                file: Some(file),
                tmp,
                dest,
                key: key.to_string(),
            }) as Box<dyn ObjectWriter>)
        })
    }

    fn size<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, ObjectError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            match tokio::fs::metadata(&path).await {
                Ok(m) => Ok(m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(ObjectError::NotFound(key.to_string()))
                }
                Err(e) => Err(io(format!("reading {}", path.display()))(e)),
            }
        })
    }

    fn read<'a>(
        &'a self,
        key: &'a str,
        start: u64,
        end: u64,
    ) -> BoxFuture<'a, Result<ByteStream, ObjectError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            let mut file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ObjectError::NotFound(key.to_string()));
                }
                Err(e) => return Err(io(format!("opening {}", path.display()))(e)),
            };
            let size = file
                .metadata()
                .await
                .map_err(io(format!("reading {}", path.display())))?
                .len();
            if start > end || end > size {
                return Err(ObjectError::Range { start, end, size });
            }
            file.seek(SeekFrom::Start(start))
                .await
                .map_err(io(format!("reading {}", path.display())))?;
            let stream = crate::fsutil::read_stream(file, end - start, READ_CHUNK);
            Ok(Box::pin(stream) as ByteStream)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), ObjectError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(format!("removing {}", path.display()))(e)),
            }
        })
    }

    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("twinbay-objects-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    async fn read_all(store: &LocalDir, key: &str, start: u64, end: u64) -> Vec<u8> {
        let mut s = store.read(key, start, end).await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn writes_reads_ranges_and_deletes() {
        let root = dir("rw");
        let store = LocalDir::open(&root).unwrap();
        let data: Vec<u8> = (0..(READ_CHUNK * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut w = store.create("n1/job/a.zst").await.unwrap();
        for part in data.chunks(100_000) {
            w.write(part).await.unwrap();
        }
        // Not visible before it is finished.
        assert!(matches!(
            store.size("n1/job/a.zst").await,
            Err(ObjectError::NotFound(_))
        ));
        w.finish().await.unwrap();
        assert_eq!(store.size("n1/job/a.zst").await.unwrap(), data.len() as u64);
        let len = data.len() as u64;
        assert_eq!(read_all(&store, "n1/job/a.zst", 0, len).await, data);
        assert_eq!(
            read_all(&store, "n1/job/a.zst", 10, 300_000).await,
            &data[10..300_000]
        );
        assert!(matches!(
            store.read("n1/job/a.zst", 0, len + 1).await,
            Err(ObjectError::Range { .. })
        ));
        // Never overwritten.
        assert!(matches!(
            store.create("n1/job/a.zst").await,
            Err(ObjectError::Exists(_))
        ));
        store.delete("n1/job/a.zst").await.unwrap();
        store.delete("n1/job/a.zst").await.unwrap();
        assert!(
            std::fs::read_dir(root.join(".tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[tokio::test]
    async fn an_aborted_or_dropped_write_leaves_nothing() {
        let root = dir("abort");
        let store = LocalDir::open(&root).unwrap();
        let mut w = store.create("x").await.unwrap();
        w.write(b"partial").await.unwrap();
        w.abort().await;
        let mut w = store.create("x").await.unwrap();
        w.write(b"partial").await.unwrap();
        drop(w);
        assert!(
            std::fs::read_dir(root.join(".tmp"))
                .unwrap()
                .next()
                .is_none()
        );
        assert!(!root.join("x").exists());
    }

    #[test]
    fn keys_stay_inside() {
        for bad in [
            "", "../x", "a/../b", "/abs", "a//b", ".hidden", "a/.tmp/x", "a b",
        ] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        check_key("node-1/nightly/20261203T030000Z-abc.tar.zst").unwrap();
    }
}
