//! Watched configuration files: what `--watch` (and the policy's `watch:`)
//! names, the compose files of running containers and the unit files of
//! reported units, each as a [`WatchedFile`] in the twin's `files`.
//!
//! [`plan`] decides which files and directories to watch, [`watch`] runs
//! inotify on the directories (so rename-over saves are seen), [`scan`]
//! reads one file into a `WatchedFile` (streamed hash; content counted for
//! secrets and dropped), [`secrets`] keeps secrets on the host, [`kind`]
//! names the kind of file. Events are debounced (one save, one version); a
//! slow rescan catches what inotify misses. Content travels only when the
//! hub asks ([`read_content`], called by the link on `need_files`).
//!
//! With nothing to watch the source holds no inotify instance and costs a
//! glance at the container and unit lists when they change.

pub mod kind;
pub mod plan;
pub mod scan;
pub mod secrets;
pub mod watch;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch as channel;
use tokio_util::sync::CancellationToken;
use twinbay_proto::model::{FileState, NodeState, SourceStatus, WatchedFile};

pub use secrets::FileKey;

use self::plan::Spec;
use self::scan::Stamp;
use self::watch::{Pending, Watches};

pub const SOURCE: &str = "files";
pub const DEFAULT_MAX_FILES: usize = 2_000;
pub const DEFAULT_CONTENT_CAP: u64 = 1024 * 1024;
pub const DEFAULT_RESCAN: Duration = Duration::from_secs(600);
/// Events closer together than this are one change.
pub const DEBOUNCE: Duration = Duration::from_millis(30);
/// A file written without pause is read at least this often.
const MAX_DEBOUNCE: Duration = Duration::from_secs(1);

/// Why a file is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    Watch,
    Compose,
    Unit,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Watch => "watch",
            Origin::Compose => "compose",
            Origin::Unit => "unit",
        }
    }
}

/// What the files source watches, and its limits.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Paths, directories or globs (`--watch`, policy `watch.paths`).
    pub watch: Vec<String>,
    /// Globs on the full path of files not to watch (policy `watch.exclude`).
    pub exclude: Vec<String>,
    pub max_files: usize,
    /// Larger files are hashed only (`content: too_large`).
    pub content_cap: u64,
    pub rescan: Duration,
    pub debounce: Duration,
    /// Watch the compose files of running containers and the unit files of
    /// reported units.
    pub discover: bool,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            watch: Vec::new(),
            exclude: Vec::new(),
            max_files: DEFAULT_MAX_FILES,
            content_cap: DEFAULT_CONTENT_CAP,
            rescan: DEFAULT_RESCAN,
            debounce: DEBOUNCE,
            discover: true,
        }
    }
}

/// The compose and unit files the twin's containers and units name.
pub fn discover(state: &NodeState) -> BTreeMap<PathBuf, Origin> {
    let mut out = BTreeMap::new();
    for c in state.containers.values().filter(|c| c.state == "running") {
        let Some(files) = c.labels.get("com.docker.compose.project.config_files") else {
            continue;
        };
        let workdir = c.labels.get("com.docker.compose.project.working_dir");
        for f in files.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let path = match workdir {
                Some(w) if !f.starts_with('/') => Path::new(w).join(f),
                _ => PathBuf::from(f),
            };
            if path.is_absolute() {
                out.insert(normalize(&path), Origin::Compose);
            }
        }
    }
    for u in state.units.values() {
        let fragment = u.fragment_path.iter().map(|p| p.as_str());
        let paths = fragment.chain(u.drop_in_paths.iter().map(String::as_str));
        for p in paths.filter(|p| p.starts_with('/') && *p != "/dev/null") {
            out.entry(PathBuf::from(p)).or_insert(Origin::Unit);
        }
    }
    out
}

/// `a/./b/../c` → `a/c`, without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    origin: Origin,
    named: bool,
    stamp: Option<Stamp>,
}

/// What one step changed, to apply to the twin.
#[derive(Debug, Default)]
pub struct Update {
    pub upserts: Vec<WatchedFile>,
    pub removes: Vec<String>,
    pub status: Option<SourceStatus>,
}

impl Update {
    /// Applies to the twin; says whether anything changed.
    pub fn apply(self, s: &mut NodeState) -> bool {
        let mut changed = false;
        for f in self.upserts {
            if s.files.get(&f.path) != Some(&f) {
                s.files.insert(f.path.clone(), f);
                changed = true;
            }
        }
        for p in self.removes {
            changed |= s.files.remove(&p).is_some();
        }
        if let Some(status) = self.status
            && s.sources.get(SOURCE) != Some(&status)
        {
            s.sources.insert(SOURCE.into(), status);
            changed = true;
        }
        changed
    }
}

/// The source's state between steps (blocking I/O: run it off the runtime).
#[derive(Debug)]
pub struct Engine {
    config: FilesConfig,
    key: FileKey,
    specs: Vec<Spec>,
    excludes: Vec<glob::Pattern>,
    /// Bad specs and excludes, reported in the status.
    problems: Vec<String>,
    discovered: BTreeMap<PathBuf, Origin>,
    /// One per watched file (a B-tree: a hash map of 2,000 held 4,096 slots).
    entries: BTreeMap<Box<Path>, Entry>,
    named: HashSet<PathBuf>,
    pending: Arc<Pending>,
    watches: Option<Watches>,
    watch_error: Option<String>,
    over_cap: usize,
    truncated: bool,
}

impl Engine {
    pub fn new(config: FilesConfig, key: FileKey, pending: Arc<Pending>) -> Engine {
        let mut problems = Vec::new();
        let specs = config
            .watch
            .iter()
            .filter_map(|s| Spec::parse(s).map_err(|e| problems.push(e)).ok())
            .collect();
        let excludes = config
            .exclude
            .iter()
            .filter_map(|s| {
                glob::Pattern::new(s)
                    .map_err(|e| problems.push(format!("exclude {s:?}: {e}")))
                    .ok()
            })
            .collect();
        Engine {
            config,
            key,
            specs,
            excludes,
            problems,
            discovered: BTreeMap::new(),
            entries: BTreeMap::new(),
            named: HashSet::new(),
            pending,
            watches: None,
            watch_error: None,
            over_cap: 0,
            truncated: false,
        }
    }

    /// Sets the discovered files; says whether they changed.
    pub fn set_discovered(&mut self, discovered: BTreeMap<PathBuf, Origin>) -> bool {
        if !self.config.discover || discovered == self.discovered {
            return false;
        }
        self.discovered = discovered;
        true
    }

    /// Re-plans: new files are read, gone ones dropped, watches follow.
    /// With `rescan_all`, every file is looked at again (re-read if its
    /// inode, size or times changed).
    pub fn reconcile(&mut self, rescan_all: bool) -> Update {
        let plan = plan::plan(
            &self.specs,
            &self.excludes,
            &self.discovered,
            self.config.max_files,
        );
        self.over_cap = plan.over_cap;
        self.truncated = plan.truncated;
        let mut update = Update::default();
        let gone: Vec<PathBuf> = self
            .entries
            .keys()
            .filter(|p| !plan.files.contains_key(&***p))
            .map(|p| p.to_path_buf())
            .collect();
        for p in gone {
            self.entries.remove(p.as_path());
            update.removes.push(p.to_string_lossy().into_owned());
        }
        self.named.clear();
        for (path, (origin, named)) in plan.files {
            if named {
                self.named.insert(path.clone());
            }
            let need_read = match self.entries.get_mut(path.as_path()) {
                Some(e) if e.origin == origin && e.named == named => {
                    // Missing and unreadable ones (no stamp) are looked at
                    // again: they may have appeared without an event we saw.
                    (rescan_all || e.stamp.is_none())
                        && (e.stamp.is_none() || Stamp::read(&path) != e.stamp)
                }
                Some(e) => {
                    e.origin = origin;
                    e.named = named;
                    true
                }
                None => {
                    let entry = Entry {
                        origin,
                        named,
                        stamp: None,
                    };
                    self.entries.insert(path.clone().into_boxed_path(), entry);
                    true
                }
            };
            if need_read {
                self.read(&path, &mut update);
            }
        }
        self.set_watches(&plan.dirs);
        update.status = Some(self.status());
        update
    }

    fn set_watches(&mut self, dirs: &std::collections::BTreeSet<PathBuf>) {
        if dirs.is_empty() {
            // Nothing to watch: no inotify instance at all.
            self.watches = None;
            return;
        }
        if self.watches.is_none() {
            match Watches::new(self.pending.clone()) {
                Ok(w) => {
                    self.watches = Some(w);
                    self.watch_error = None;
                }
                Err(e) => self.watch_error = Some(e.to_string()),
            }
        }
        if let Some(w) = &mut self.watches {
            w.set(dirs);
        }
    }

    /// Reads one planned file into the update (a named file that vanished
    /// stays as missing; a found one leaves).
    fn read(&mut self, path: &Path, update: &mut Update) {
        let Some(entry) = self.entries.get_mut(path) else {
            return;
        };
        let s = scan::scan(
            path,
            entry.origin,
            self.config.content_cap,
            &self.key,
            false,
        );
        entry.stamp = s.stamp;
        if s.file.state == FileState::Missing && !entry.named {
            self.entries.remove(path);
            update.removes.push(s.file.path);
            return;
        }
        update.upserts.push(s.file);
    }

    /// Events named these paths (or asked for a rescan).
    pub fn on_events(&mut self, paths: Vec<PathBuf>, rescan_all: bool) -> Update {
        if rescan_all {
            return self.reconcile(true);
        }
        let mut update = Update::default();
        let mut replan = false;
        for p in paths {
            if self.entries.contains_key(p.as_path()) {
                self.read(&p, &mut update);
                // A found file that went away may be back under its own name
                // at the next plan; nothing else to do.
            } else if plan::concerns(&self.specs, &self.named, &p) {
                replan = true;
            }
        }
        if replan {
            let more = self.reconcile(false);
            update.upserts.extend(more.upserts);
            update.removes.extend(more.removes);
        }
        update.status = Some(self.status());
        update
    }

    pub fn status(&self) -> SourceStatus {
        let n = self.entries.len();
        let mut parts = vec![match n {
            0 => "no files watched".to_string(),
            1 => "1 file watched".to_string(),
            n => format!("{n} files watched"),
        }];
        if self.over_cap > 0 {
            parts.push(format!("cap reached: {} more not watched", self.over_cap));
        }
        if self.truncated {
            parts.push(format!(
                "stopped looking after {} directory entries",
                plan::WALK_BUDGET
            ));
        }
        if let Some(w) = &self.watches
            && w.over_limit > 0
        {
            parts.push(format!(
                "inotify watch limit reached: {} directories on rescans only",
                w.over_limit
            ));
        }
        if let Some(e) = &self.watch_error {
            parts.push(format!("inotify unavailable ({e}): rescans only"));
        }
        parts.extend(self.problems.iter().cloned());
        SourceStatus {
            name: SOURCE.into(),
            available: true,
            reason: Some(parts.join("; ").into()),
        }
    }
}

/// The current redacted content of a watched file, if its version is still
/// `sha256` and its content may travel. The caller checks that `path` is in
/// the watched set: this reads what it is given.
pub fn read_content(
    file: &WatchedFile,
    sha256: &str,
    content_cap: u64,
    key: &FileKey,
) -> Option<String> {
    let origin = match file.origin.as_str() {
        "compose" => Origin::Compose,
        "unit" => Origin::Unit,
        _ => Origin::Watch,
    };
    let s = scan::scan(Path::new(&file.path), origin, content_cap, key, true);
    (s.file.ships_content() && s.file.sha256.as_deref() == Some(sha256))
        .then_some(s.text)
        .flatten()
}

/// Splits text into pieces of at most `max` bytes on character boundaries.
pub fn chunks(text: &str, max: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + max).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        out.push((at, &text[at..end]));
        at = end;
    }
    if out.is_empty() {
        out.push((0, ""));
    }
    out
}

/// The hash of every watched unit file (origin `unit`), by path: the units
/// source reads a unit again when one of its files changes.
pub type UnitFiles = BTreeMap<String, Option<String>>;

fn unit_file_hashes(state: &NodeState) -> UnitFiles {
    state
        .files
        .values()
        .filter(|f| f.origin == Origin::Unit.as_str())
        .map(|f| (f.path.clone(), f.sha256.clone()))
        .collect()
}

/// Counts the files source's changes to the twin's files (the link
/// compares the files only when it moved).
#[derive(Debug, Default)]
pub struct FilesGeneration(std::sync::atomic::AtomicU64);

impl FilesGeneration {
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn bump(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Who else hears of the files source's changes.
#[derive(Debug)]
pub struct Signals {
    /// The units source: the hashes of the units' files.
    pub unit_files: channel::Sender<UnitFiles>,
    /// The link: bumped with each change to the twin's files, while the
    /// twin is locked for it.
    pub generation: Arc<FilesGeneration>,
}

/// Where the files source reports to: the twin, and the others.
struct Out<'a> {
    state: &'a channel::Sender<NodeState>,
    signals: &'a Signals,
}

/// Runs the files source until `cancel`.
pub async fn run(
    config: FilesConfig,
    key: FileKey,
    state: Arc<channel::Sender<NodeState>>,
    signals: Signals,
    cancel: CancellationToken,
) {
    let out = Out {
        state: &state,
        signals: &signals,
    };
    let mut rx = state.subscribe();
    let pending = Arc::new(Pending::default());
    let debounce = config.debounce;
    let rescan_every = config.rescan.max(Duration::from_secs(1));
    let mut engine = Engine::new(config, key, pending.clone());
    engine.set_discovered(discover(&rx.borrow_and_update()));
    let Some(mut engine) = step(engine, &out, |e| e.reconcile(false)).await else {
        return;
    };
    let mut rescan =
        tokio::time::interval_at(tokio::time::Instant::now() + rescan_every, rescan_every);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                let found = discover(&rx.borrow_and_update());
                if !engine.set_discovered(found) {
                    continue;
                }
                step(engine, &out, |e| e.reconcile(false)).await
            }
            _ = pending.notify.notified() => {
                // Let the save finish: wait until events pause.
                let started = tokio::time::Instant::now();
                loop {
                    let seq = pending.seq();
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(debounce) => {}
                    }
                    if pending.seq() == seq || started.elapsed() >= MAX_DEBOUNCE {
                        break;
                    }
                }
                let (paths, all) = pending.take();
                step(engine, &out, move |e| e.on_events(paths, all)).await
            }
            _ = rescan.tick() => step(engine, &out, |e| e.reconcile(true)).await,
        };
        match next {
            Some(e) => engine = e,
            None => return,
        }
    }
}

/// Runs one engine step off the async threads and applies its update.
async fn step(
    mut engine: Engine,
    out: &Out<'_>,
    f: impl FnOnce(&mut Engine) -> Update + Send + 'static,
) -> Option<Engine> {
    let (engine, update) = tokio::task::spawn_blocking(move || {
        let update = f(&mut engine);
        (engine, update)
    })
    .await
    .ok()?;
    let units_touched = !update.removes.is_empty()
        || update
            .upserts
            .iter()
            .any(|f| f.origin == Origin::Unit.as_str());
    out.state.send_if_modified(|s| {
        let changed = update.apply(s);
        if changed {
            out.signals.generation.bump();
        }
        changed
    });
    if units_touched {
        let now = unit_file_hashes(&out.state.borrow());
        out.signals.unit_files.send_if_modified(|m| {
            let changed = *m != now;
            *m = now;
            changed
        });
    }
    Some(engine)
}
