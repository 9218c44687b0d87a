//! The files source against real inotify: each way editors and tools save a
//! file gives exactly one new version in the twin.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use twinbay_proto::model::{FileContent, FileState, NodeState, WatchedFile};

use super::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("twinbay-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn key() -> FileKey {
    FileKey::from_bytes([9; 32])
}

/// The source running on a twin of its own, and every distinct version of
/// each file it published, in order (as the link would see them).
struct Source {
    state: Arc<watch::Sender<NodeState>>,
    versions: Arc<Mutex<BTreeMap<String, Vec<Option<WatchedFile>>>>>,
    /// What the units source hears.
    unit_files: watch::Receiver<UnitFiles>,
    cancel: CancellationToken,
}

impl Source {
    fn start(config: FilesConfig) -> Source {
        let (tx, mut rx) = watch::channel(NodeState::default());
        let state = Arc::new(tx);
        let cancel = CancellationToken::new();
        let versions: Arc<Mutex<BTreeMap<String, Vec<Option<WatchedFile>>>>> = Default::default();
        let seen = versions.clone();
        let paths: Vec<String> = config.watch.clone();
        let stop = cancel.clone();
        tokio::spawn(async move {
            loop {
                {
                    let s = rx.borrow_and_update();
                    let mut seen = seen.lock().unwrap();
                    let mut keys: Vec<String> = s.files.keys().cloned().collect();
                    keys.extend(paths.iter().cloned());
                    keys.extend(seen.keys().cloned());
                    for k in keys {
                        let now = s.files.get(&k).cloned();
                        let list = seen.entry(k).or_default();
                        if list.last() != Some(&now) {
                            list.push(now);
                        }
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = rx.changed() => if r.is_err() { return },
                }
            }
        });
        let (unit_tx, unit_files) = watch::channel(UnitFiles::new());
        let signals = Signals {
            unit_files: unit_tx,
            generation: Default::default(),
        };
        tokio::spawn(run(config, key(), state.clone(), signals, cancel.clone()));
        Source {
            state,
            versions,
            unit_files,
            cancel,
        }
    }

    fn file(&self, path: &Path) -> Option<WatchedFile> {
        self.state
            .borrow()
            .files
            .get(path.to_str().unwrap())
            .cloned()
    }

    fn count(&self, path: &Path) -> usize {
        self.versions
            .lock()
            .unwrap()
            .get(path.to_str().unwrap())
            .map_or(0, Vec::len)
    }

    async fn wait(&self, what: &str, mut ok: impl FnMut(&NodeState) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ok(&self.state.borrow()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Does `action`, waits for the file to match `expect`, then checks that
    /// exactly one new version was published (waiting a little for more).
    async fn one_version(
        &self,
        what: &str,
        path: &Path,
        action: impl FnOnce(),
        expect: impl Fn(Option<&WatchedFile>) -> bool,
    ) {
        let before = self.count(path);
        action();
        let key = path.to_str().unwrap().to_string();
        self.wait(what, |s| expect(s.files.get(&key))).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let versions = self.versions.lock().unwrap()[&key].clone();
        assert_eq!(
            versions.len() - before,
            1,
            "{what}: expected one new version, saw {:#?}",
            &versions[before..]
        );
        assert!(expect(versions.last().unwrap().as_ref()), "{what}");
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn has(content: &'static str) -> impl Fn(Option<&WatchedFile>) -> bool {
    move |f| {
        f.is_some_and(|f| {
            f.state == FileState::Present
                && f.sha256.as_deref() == Some(sha(content.as_bytes()).as_str())
        })
    }
}

fn config(watch: &[&Path]) -> FilesConfig {
    FilesConfig {
        watch: watch
            .iter()
            .map(|p| p.to_str().unwrap().to_string())
            .collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_of_saving_gives_one_version() {
    let d = tmp("saves");
    let conf = d.join("app.conf");
    let later = d.join("later/sub/new.conf");
    std::fs::write(&conf, "v1\n").unwrap();
    let src = Source::start(config(&[&conf, &later]));
    src.wait("the first reading", |s| s.files.len() == 2).await;
    assert!(has("v1\n")(src.file(&conf).as_ref()));
    let f = src.file(&conf).unwrap();
    assert_eq!(
        (f.origin.as_str(), f.content, f.size),
        ("watch", FileContent::Shipped, Some(3))
    );
    assert_eq!(src.file(&later).unwrap().state, FileState::Missing);
    let status = src.state.borrow().sources[SOURCE].clone();
    assert_eq!(status.reason.as_deref(), Some("2 files watched"));

    src.one_version(
        "write in place",
        &conf,
        || std::fs::write(&conf, "v2\n").unwrap(),
        has("v2\n"),
    )
    .await;
    src.one_version(
        "write a temp file, rename it over",
        &conf,
        || {
            let tmp = d.join(".app.conf.tmp");
            std::fs::write(&tmp, "v3\n").unwrap();
            std::fs::rename(&tmp, &conf).unwrap();
        },
        has("v3\n"),
    )
    .await;
    src.one_version(
        "rename to a backup, write anew (vim, backupcopy=no)",
        &conf,
        || {
            std::fs::rename(&conf, d.join("app.conf~")).unwrap();
            std::fs::write(&conf, "v4\n").unwrap();
        },
        has("v4\n"),
    )
    .await;
    src.one_version(
        "sed -i",
        &conf,
        || {
            let ok = Command::new("sed")
                .args(["-i", "s/v4/v5/"])
                .arg(&conf)
                .status()
                .unwrap();
            assert!(ok.success());
        },
        has("v5\n"),
    )
    .await;
    src.one_version(
        "delete",
        &conf,
        || std::fs::remove_file(&conf).unwrap(),
        |f| f.is_some_and(|f| f.state == FileState::Missing && f.sha256.is_none()),
    )
    .await;
    src.one_version(
        "re-create",
        &conf,
        || std::fs::write(&conf, "v6\n").unwrap(),
        has("v6\n"),
    )
    .await;
    src.one_version(
        "a missing file (and its directories) appears",
        &later,
        || {
            std::fs::create_dir_all(later.parent().unwrap()).unwrap();
            std::fs::write(&later, "new\n").unwrap();
        },
        has("new\n"),
    )
    .await;
    src.one_version(
        "chmod",
        &conf,
        || {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap()
        },
        |f| f.is_some_and(|f| f.mode == Some(0o600)),
    )
    .await;
    drop(src);
    std::fs::remove_dir_all(&d).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_directory_follows_its_files() {
    let d = tmp("dir");
    std::fs::write(d.join("a.conf"), "a\n").unwrap();
    std::fs::write(d.join("db.env"), "PASSWORD=x\n").unwrap();
    let src = Source::start(config(&[&d]));
    src.wait("the directory's files", |s| s.files.len() == 2)
        .await;
    let env = src.file(&d.join("db.env")).unwrap();
    assert_eq!(env.content, FileContent::Secret);
    assert!(env.keyed);
    assert_eq!(env.sha256, Some(key().hmac_hex(b"PASSWORD=x\n")));

    let b = d.join("sub/b.yaml");
    std::fs::create_dir(d.join("sub")).unwrap();
    src.one_version(
        "a new file in a new subdirectory",
        &b,
        || std::fs::write(&b, "k: v\n").unwrap(),
        has("k: v\n"),
    )
    .await;
    src.one_version(
        "a found file deleted",
        &b,
        || std::fs::remove_file(&b).unwrap(),
        |f| f.is_none(),
    )
    .await;
    let status = src.state.borrow().sources[SOURCE].clone();
    assert_eq!(status.reason.as_deref(), Some("2 files watched"));
    drop(src);
    std::fs::remove_dir_all(&d).unwrap();
}

/// The units source hears of a unit file's new version from the files
/// source, and of nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_files_new_version_is_signalled_and_nothing_else() {
    let d = tmp("unitsig");
    let unit = d.join("web.service");
    let other = d.join("other.conf");
    std::fs::write(&unit, "[Service]\nExecStart=/bin/true\n").unwrap();
    std::fs::write(&other, "a\n").unwrap();
    let mut src = Source::start(config(&[&other]));
    src.state.send_modify(|s| {
        let u = twinbay_proto::model::Unit {
            name: "web.service".into(),
            fragment_path: Some(unit.to_str().unwrap().into()),
            ..Default::default()
        };
        s.units.insert(u.name.to_string(), u.into());
    });
    let path = unit.to_str().unwrap().to_string();
    let hash_of = |text: &str| Some(Some(sha(text.as_bytes())));
    let deadline = Instant::now() + Duration::from_secs(5);
    while src.unit_files.borrow_and_update().get(&path).cloned()
        != hash_of("[Service]\nExecStart=/bin/true\n")
    {
        assert!(
            Instant::now() < deadline,
            "the unit file's hash is signalled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(src.unit_files.borrow().len(), 1, "only unit files");

    // Another watched file changes: no signal.
    src.one_version(
        "a watched file that is not a unit's",
        &other,
        || std::fs::write(&other, "b\n").unwrap(),
        has("b\n"),
    )
    .await;
    assert!(!src.unit_files.has_changed().unwrap());

    std::fs::write(&unit, "[Service]\nExecStart=/bin/false\n").unwrap();
    tokio::time::timeout(Duration::from_secs(5), src.unit_files.changed())
        .await
        .expect("a new version of the unit file is signalled")
        .unwrap();
    assert_eq!(
        src.unit_files.borrow().get(&path).cloned(),
        hash_of("[Service]\nExecStart=/bin/false\n")
    );
    drop(src);
    std::fs::remove_dir_all(&d).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_unreadable_files_are_reported_not_fatal() {
    let d = tmp("limits");
    let big = d.join("big.log");
    let data = vec![b'x'; 50 * 1024 * 1024];
    std::fs::write(&big, &data).unwrap();
    let plain = d.join("plain.conf");
    std::fs::write(&plain, "ok\n").unwrap();
    // A path through a regular file fails with ENOTDIR, even for root.
    let through_file = plain.join("inner.conf");
    let locked = d.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::write(locked.join("x.conf"), "x\n").unwrap();
    let locked_file = locked.join("x.conf");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let src = Source::start(config(&[&big, &plain, &through_file, &locked_file]));
    src.wait("all four", |s| s.files.len() == 4).await;
    let f = src.file(&big).unwrap();
    assert_eq!(f.content, FileContent::TooLarge);
    assert_eq!(f.size, Some(data.len() as u64));
    assert_eq!(f.sha256, Some(sha(&data)));
    assert!(!f.ships_content());
    drop(data);

    let f = src.file(&through_file).unwrap();
    assert_eq!(f.state, FileState::Unreadable);
    assert!(
        f.error.as_deref().unwrap().contains("Not a directory"),
        "{f:?}"
    );
    let f = src.file(&locked_file).unwrap();
    if rustix::process::geteuid().is_root() {
        // Root reads through a directory without permissions: nothing to check.
        assert_eq!(f.state, FileState::Present);
    } else {
        assert_eq!(f.state, FileState::Unreadable);
        assert!(
            f.error.as_deref().unwrap().contains("Permission denied"),
            "{f:?}"
        );
    }
    // The source carries on.
    src.one_version(
        "after the failures",
        &plain,
        || std::fs::write(&plain, "ok2\n").unwrap(),
        has("ok2\n"),
    )
    .await;
    drop(src);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ten_thousand_files_hit_the_cap_and_say_so() {
    let d = tmp("cap");
    for i in 0..10_000 {
        std::fs::write(d.join(format!("f{i:05}.conf")), "x").unwrap();
    }
    let cfg = config(&[&d]);
    let mut engine = Engine::new(cfg, key(), Arc::new(Pending::default()));
    let update = engine.reconcile(false);
    assert_eq!(update.upserts.len(), DEFAULT_MAX_FILES);
    assert_eq!(
        update.status.unwrap().reason.as_deref(),
        Some("2000 files watched; cap reached: 8000 more not watched")
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn nothing_to_watch_costs_no_inotify_instance() {
    let mut engine = Engine::new(FilesConfig::default(), key(), Arc::new(Pending::default()));
    let update = engine.reconcile(false);
    assert!(update.upserts.is_empty());
    assert!(engine.watches.is_none());
    assert_eq!(
        update.status.unwrap().reason.as_deref(),
        Some("no files watched")
    );
}

#[test]
fn discovers_compose_and_unit_files() {
    use twinbay_proto::model::{Container, Unit};
    let mut s = NodeState::default();
    let mut labels = BTreeMap::new();
    labels.insert(
        "com.docker.compose.project.config_files".to_string(),
        "compose.yaml, ./override.yml,/abs/other.yaml".to_string(),
    );
    labels.insert(
        "com.docker.compose.project.working_dir".to_string(),
        "/srv/app".to_string(),
    );
    let running = Container {
        id: "c1".into(),
        state: "running".into(),
        labels: labels.iter().map(|(k, v)| (k.into(), v.into())).collect(),
        ..Default::default()
    };
    let stopped = Container {
        id: "c2".into(),
        state: "exited".into(),
        labels: [(
            "com.docker.compose.project.config_files".into(),
            "/srv/old/compose.yaml".into(),
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    s.containers.insert("c1".into(), running.into());
    s.containers.insert("c2".into(), stopped.into());
    s.units.insert(
        "web.service".into(),
        Unit {
            name: "web.service".into(),
            fragment_path: Some("/etc/systemd/system/web.service".into()),
            drop_in_paths: vec!["/etc/systemd/system/web.service.d/env.conf".into()],
            ..Default::default()
        }
        .into(),
    );
    s.units.insert(
        "masked.service".into(),
        Unit {
            name: "masked.service".into(),
            fragment_path: Some("/dev/null".into()),
            ..Default::default()
        }
        .into(),
    );
    let found: Vec<(String, Origin)> = discover(&s)
        .into_iter()
        .map(|(p, o)| (p.to_str().unwrap().to_string(), o))
        .collect();
    assert_eq!(
        found,
        vec![
            ("/abs/other.yaml".into(), Origin::Compose),
            ("/etc/systemd/system/web.service".into(), Origin::Unit),
            (
                "/etc/systemd/system/web.service.d/env.conf".into(),
                Origin::Unit
            ),
            ("/srv/app/compose.yaml".into(), Origin::Compose),
            ("/srv/app/override.yml".into(), Origin::Compose),
        ]
    );
}

#[test]
fn chunks_split_on_character_boundaries() {
    let text = "aé€😀".repeat(1000);
    let parts = chunks(&text, 7);
    assert!(parts.iter().all(|(_, p)| p.len() <= 7 && !p.is_empty()));
    let joined: String = parts.iter().map(|(_, p)| *p).collect();
    assert_eq!(joined, text);
    let mut at = 0;
    for (offset, p) in &parts {
        assert_eq!(*offset, at);
        at += p.len();
    }
    assert_eq!(chunks("", 10), vec![(0, "")]);
}

#[test]
fn content_is_read_only_for_the_current_version() {
    let d = tmp("content");
    let f = d.join("app.conf");
    std::fs::write(&f, "user=a\npassword=b\n").unwrap();
    let s = scan::scan(&f, Origin::Watch, DEFAULT_CONTENT_CAP, &key(), false);
    let sha = s.file.sha256.clone().unwrap();
    let text = read_content(&s.file, &sha, DEFAULT_CONTENT_CAP, &key()).unwrap();
    assert_eq!(text, format!("user=a\npassword={}\n", key().marker("b")));
    std::fs::write(&f, "user=a\npassword=c\n").unwrap();
    assert_eq!(
        read_content(&s.file, &sha, DEFAULT_CONTENT_CAP, &key()),
        None
    );
    std::fs::remove_dir_all(&d).unwrap();
}
