//! notify (inotify) wiring: watches directories, never files (a watch on a
//! file goes silent after a rename-over save such as `sed -i` or vim's), and
//! collects the paths events name until the source takes them.
//!
//! Only events that can change a file count: create, modify (data, metadata,
//! name), remove, and close-after-write. Opens, reads and read-only closes —
//! including the agent's own reads — are ignored.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher as _};
use tokio::sync::Notify;

/// More pending paths than this and the source rescans everything instead.
const MAX_PENDING: usize = 4096;

/// Paths named by events since the source last looked.
#[derive(Debug, Default)]
pub struct Pending {
    inner: Mutex<Inner>,
    /// Woken on every relevant event.
    pub notify: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    paths: HashSet<PathBuf>,
    rescan: bool,
    /// Counts events, so the source can tell when they have stopped coming.
    seq: u64,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn seq(&self) -> u64 {
        self.lock().seq
    }

    /// The paths gathered so far, and whether everything needs a rescan.
    pub fn take(&self) -> (Vec<PathBuf>, bool) {
        let mut inner = self.lock();
        let rescan = std::mem::take(&mut inner.rescan);
        (inner.paths.drain().collect(), rescan)
    }

    fn add(&self, paths: Vec<PathBuf>, rescan: bool) {
        {
            let mut inner = self.lock();
            inner.seq += 1;
            inner.rescan |= rescan;
            if !inner.rescan {
                inner.paths.extend(paths);
                if inner.paths.len() > MAX_PENDING {
                    inner.rescan = true;
                }
            }
            if inner.rescan {
                inner.paths.clear();
                inner.paths.shrink_to(64);
            }
        }
        self.notify.notify_one();
    }

    /// Handles one notify event.
    pub fn on_event(&self, event: notify::Result<notify::Event>) {
        match event {
            Ok(e) if e.need_rescan() => self.add(Vec::new(), true),
            Ok(e) if counts(&e.kind) => self.add(e.paths, false),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "file watch error; rescanning");
                self.add(Vec::new(), true)
            }
        }
    }
}

/// Whether an event can mean a changed file.
pub fn counts(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Any | EventKind::Other => true,
    }
}

/// The watched directories.
pub struct Watches {
    watcher: notify::RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
    /// Directories not watched because of inotify's limit (`max_user_watches`).
    pub over_limit: usize,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches")
            .field("dirs", &self.dirs.len())
            .field("over_limit", &self.over_limit)
            .finish()
    }
}

impl Watches {
    pub fn new(pending: Arc<Pending>) -> notify::Result<Watches> {
        let watcher = notify::recommended_watcher(move |e| pending.on_event(e))?;
        Ok(Watches {
            watcher,
            dirs: BTreeSet::new(),
            over_limit: 0,
        })
    }

    /// Watches exactly `want` (each directory on its own, not recursively).
    pub fn set(&mut self, want: &BTreeSet<PathBuf>) {
        let gone: Vec<PathBuf> = self.dirs.difference(want).cloned().collect();
        for dir in gone {
            let _ = self.watcher.unwatch(&dir);
            self.dirs.remove(&dir);
        }
        self.over_limit = 0;
        for dir in want.difference(&self.dirs.clone()) {
            match self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.dirs.insert(dir.clone());
                }
                Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                    self.over_limit += 1;
                }
                Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "cannot watch"),
            }
        }
    }

    pub fn is_watched(&self, dir: &Path) -> bool {
        self.dirs.contains(dir)
    }

    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, ModifyKind, RemoveKind};

    use super::*;

    #[test]
    fn own_reads_do_not_count() {
        assert!(!counts(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!counts(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!counts(&EventKind::Access(AccessKind::Read)));
        assert!(counts(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(counts(&EventKind::Create(CreateKind::File)));
        assert!(counts(&EventKind::Modify(ModifyKind::Any)));
        assert!(counts(&EventKind::Remove(RemoveKind::File)));
    }

    #[test]
    fn too_many_pending_paths_become_one_rescan() {
        let p = Pending::default();
        for i in 0..=MAX_PENDING {
            p.add(vec![PathBuf::from(format!("/x/{i}"))], false);
        }
        let (paths, rescan) = p.take();
        assert!(rescan && paths.is_empty());
        p.add(vec!["/a".into(), "/a".into()], false);
        assert_eq!(p.take(), (vec![PathBuf::from("/a")], false));
    }
}
