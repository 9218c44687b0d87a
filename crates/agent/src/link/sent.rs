//! What the hub has of this node: the state as last sent, with the watched
//! files kept only as fingerprints. The twin (the watch channel) holds the
//! files already; a second whole copy of 2,000 of them cost ~1 MiB.
//!
//! The files are compared only after the files source changed them
//! ([`FilesGeneration`]), so a round of host samples does not hash them all.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;

use twinbay_proto::diff::{Change, Collection, Item, apply, diff_map};
use twinbay_proto::model::{NodeState, WatchedFile};

use crate::sources::files::FilesGeneration;

#[derive(Debug)]
pub struct Sent {
    /// Everything but `files` (always empty here).
    state: NodeState,
    /// Path → fingerprint of the file as sent.
    files: BTreeMap<String, u64>,
    /// Keyed per run: a crafted file cannot aim at a fingerprint.
    keys: RandomState,
    generation: Option<Arc<FilesGeneration>>,
    /// The generation the files were last compared at.
    seen: Option<u64>,
}

impl Sent {
    /// `generation`: the files source's; without one, files are compared
    /// on every diff.
    pub fn new(generation: Option<Arc<FilesGeneration>>) -> Sent {
        Sent {
            state: NodeState::default(),
            files: BTreeMap::new(),
            keys: RandomState::new(),
            generation,
            seen: None,
        }
    }

    /// After a full sync of `now`.
    pub fn reset(&mut self, now: &NodeState) {
        self.seen = self.generation.as_ref().map(|g| g.get());
        let NodeState {
            host,
            containers,
            units,
            ports,
            sources,
            interfaces,
            mounts,
            processes,
            disk_health,
            files,
            routes,
        } = now;
        self.state = NodeState {
            host: host.clone(),
            containers: containers.clone(),
            units: units.clone(),
            ports: ports.clone(),
            sources: sources.clone(),
            interfaces: interfaces.clone(),
            mounts: mounts.clone(),
            processes: processes.clone(),
            disk_health: disk_health.clone(),
            files: BTreeMap::new(),
            routes: routes.clone(),
        };
        self.files = files
            .iter()
            .map(|(k, f)| (k.clone(), self.fingerprint(f)))
            .collect();
    }

    /// The changes that turn what was sent into `now`, in the order of
    /// [`twinbay_proto::diff::diff`] (the same list it gives).
    pub fn diff(&mut self, now: &NodeState) -> Vec<Change> {
        let mut out = Vec::new();
        let NodeState {
            host,
            containers,
            units,
            ports,
            sources,
            interfaces,
            mounts,
            processes,
            disk_health,
            files,
            routes,
        } = now;
        let generation = self.generation.as_ref().map(|g| g.get());
        let check_files = generation.is_none() || generation != self.seen;
        self.seen = generation;
        let from = &self.state;
        if from.host != *host {
            out.push(Change::Host {
                value: host.clone(),
            });
        }
        use Collection as C;
        diff_map(
            &from.containers,
            containers,
            C::Containers,
            Item::Containers,
            &mut out,
        );
        diff_map(&from.units, units, C::Units, Item::Units, &mut out);
        diff_map(&from.ports, ports, C::Ports, Item::Ports, &mut out);
        diff_map(&from.sources, sources, C::Sources, Item::Sources, &mut out);
        diff_map(
            &from.interfaces,
            interfaces,
            C::Interfaces,
            Item::Interfaces,
            &mut out,
        );
        diff_map(&from.mounts, mounts, C::Mounts, Item::Mounts, &mut out);
        diff_map(
            &from.processes,
            processes,
            C::Processes,
            Item::Processes,
            &mut out,
        );
        diff_map(
            &from.disk_health,
            disk_health,
            C::DiskHealth,
            Item::DiskHealth,
            &mut out,
        );
        if check_files {
            self.diff_files(files, &mut out);
        }
        diff_map(&from.routes, routes, C::Routes, Item::Routes, &mut out);
        out
    }

    fn diff_files(&self, now: &BTreeMap<String, WatchedFile>, out: &mut Vec<Change>) {
        for key in self.files.keys().filter(|k| !now.contains_key(*k)) {
            out.push(Change::Remove {
                collection: Collection::Files,
                key: key.clone(),
            });
        }
        for (key, file) in now {
            if self.files.get(key) != Some(&self.fingerprint(file)) {
                out.push(Change::Upsert {
                    key: key.clone(),
                    item: Item::Files(file.clone()),
                });
            }
        }
    }

    /// `changes` (from [`Sent::diff`]) went out. False if they cannot be
    /// applied (a diff the hub refuses as well): then [`Sent::reset`].
    pub fn sent(&mut self, changes: Vec<Change>) -> bool {
        let (files, rest): (Vec<Change>, Vec<Change>) = changes.into_iter().partition(|c| {
            matches!(
                c,
                Change::Upsert {
                    item: Item::Files(_),
                    ..
                } | Change::Remove {
                    collection: Collection::Files,
                    ..
                }
            )
        });
        if apply(&mut self.state, &rest).is_err() {
            return false;
        }
        for change in files {
            match change {
                Change::Upsert {
                    key,
                    item: Item::Files(f),
                } => {
                    let fingerprint = self.fingerprint(&f);
                    self.files.insert(key, fingerprint);
                }
                Change::Remove { key, .. } => drop(self.files.remove(&key)),
                _ => {}
            }
        }
        true
    }

    fn fingerprint(&self, f: &WatchedFile) -> u64 {
        // Every field: a new one does not compile until it is added here.
        let WatchedFile {
            path,
            state,
            sha256,
            keyed,
            size,
            mtime_ms,
            mode,
            uid,
            gid,
            kind,
            content,
            redacted,
            origin,
            error,
        } = f;
        let mut h = self.keys.build_hasher();
        path.hash(&mut h);
        std::mem::discriminant(state).hash(&mut h);
        sha256.hash(&mut h);
        keyed.hash(&mut h);
        size.hash(&mut h);
        mtime_ms.hash(&mut h);
        mode.hash(&mut h);
        uid.hash(&mut h);
        gid.hash(&mut h);
        std::mem::discriminant(kind).hash(&mut h);
        std::mem::discriminant(content).hash(&mut h);
        redacted.hash(&mut h);
        origin.hash(&mut h);
        error.hash(&mut h);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use twinbay_proto::diff::diff;
    use twinbay_proto::model::{
        Container, FileContent, FileKind, FileState, Keyed, Port, Process, Route, SourceStatus,
        Unit,
    };

    use super::*;

    fn file(path: &str, sha: u32) -> WatchedFile {
        WatchedFile {
            path: path.into(),
            sha256: Some(format!("{sha:064x}")),
            origin: "watch".into(),
            ..Default::default()
        }
    }

    fn state(seed: u32) -> NodeState {
        let mut s = NodeState::default();
        s.host.hostname = format!("h{}", seed % 2);
        for i in 0..5 {
            if (i + seed).is_multiple_of(3) {
                continue;
            }
            let c = Container {
                id: format!("c{i}"),
                name: format!("web-{}", (i * seed) % 4).into(),
                ..Default::default()
            };
            s.containers.insert(c.key(), c.into());
            let u = Unit {
                name: format!("u{i}.service").into(),
                active_state: ["active", "failed"][((i + seed) % 2) as usize].into(),
                ..Default::default()
            };
            s.units.insert(u.key(), u.into());
            let p = Process {
                pid: i,
                name: "p".into(),
                cpu_pct: ((i * seed) % 5) as f32,
                ..Default::default()
            };
            s.processes.insert(p.key(), p);
            let port = Port {
                protocol: "tcp".into(),
                port: 8000 + i as u16,
                ..Default::default()
            };
            s.ports.insert(port.key(), port);
            let st = SourceStatus {
                name: format!("s{i}").into(),
                available: (i + seed).is_multiple_of(2),
                reason: None,
            };
            s.sources.insert(st.key(), st);
            let r = Route {
                host: format!("r{i}.example.org"),
                upstream: format!("http://127.0.0.1:{}", 9000 + (i * seed) % 3),
                ..Default::default()
            };
            s.routes.insert(r.key(), r);
        }
        for i in 0..50 {
            if (i + seed).is_multiple_of(7) {
                continue;
            }
            let mut f = file(&format!("/etc/f{i}"), i * (1 + seed % 3));
            match (i + seed) % 11 {
                0 => f.state = FileState::Missing,
                1 => f.kind = FileKind::Nginx,
                2 => f.content = FileContent::Secret,
                3 => f.mode = Some(0o600 + seed),
                4 => f.error = Some(format!("e{seed}")),
                _ => {}
            }
            s.files.insert(f.key(), f);
        }
        s
    }

    #[test]
    fn gives_the_protocols_diff_and_remembers_what_went() {
        let generation = Arc::new(FilesGeneration::default());
        for (a, b) in [(0, 1), (1, 2), (2, 0), (3, 7), (5, 5), (4, 9)] {
            let (from, to) = (state(a), state(b));
            let mut sent = Sent::new(Some(generation.clone()));
            sent.reset(&from);
            generation.bump();
            let changes = sent.diff(&to);
            assert_eq!(changes, diff(&from, &to), "{a} → {b}");
            assert!(sent.sent(changes));
            generation.bump();
            assert_eq!(sent.diff(&to), [], "{a} → {b}: nothing more to send");
            // Without a generation, the files are compared every time.
            let mut plain = Sent::new(None);
            plain.reset(&from);
            let changes = plain.diff(&to);
            assert_eq!(changes, diff(&from, &to));
            assert!(plain.sent(changes));
            assert_eq!(plain.diff(&to), []);
        }
    }

    #[test]
    fn files_are_compared_only_after_the_files_source_changed_them() {
        let generation = Arc::new(FilesGeneration::default());
        let mut sent = Sent::new(Some(generation.clone()));
        let mut now = state(1);
        sent.reset(&now);
        now.files.insert("/etc/new".into(), file("/etc/new", 1));
        now.host.hostname = "renamed".into();
        // A host change alone: the files, untouched by their source, are skipped.
        let changes = sent.diff(&now);
        assert!(matches!(changes[..], [Change::Host { .. }]), "{changes:?}");
        assert!(sent.sent(changes));
        generation.bump();
        let changes = sent.diff(&now);
        assert_eq!(changes.len(), 1);
        assert!(matches!(&changes[0], Change::Upsert { key, .. } if key == "/etc/new"));
    }
}
