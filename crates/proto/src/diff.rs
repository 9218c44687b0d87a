//! Differences between two twins, and applying them.
//!
//! A diff is a list of [`Change`]s, each naming a collection and a key. Every
//! change states the end result (replace this item, remove that key), never a
//! delta, so applying the same diff twice gives the same state: diffs are
//! idempotent. The defining property, tested below for arbitrary states:
//! `apply(A, diff(A, B)) == B`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod de;

use crate::model::{
    Container, DiskHealth, HostInfo, Interface, Keyed, MAX_COLLECTION_LEN, Mount, NodeState, Port,
    Process, Route, SourceStatus, StateError, Unit, WatchedFile,
};

/// The keyed collections of a [`NodeState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    Containers,
    Units,
    Ports,
    Sources,
    Interfaces,
    Mounts,
    Processes,
    DiskHealth,
    Files,
    Routes,
}

impl Collection {
    pub fn as_str(self) -> &'static str {
        match self {
            Collection::Containers => "containers",
            Collection::Units => "units",
            Collection::Ports => "ports",
            Collection::Sources => "sources",
            Collection::Interfaces => "interfaces",
            Collection::Mounts => "mounts",
            Collection::Processes => "processes",
            Collection::DiskHealth => "disk_health",
            Collection::Files => "files",
            Collection::Routes => "routes",
        }
    }
}

/// An item together with the collection it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "collection", content = "value", rename_all = "snake_case")]
pub enum Item {
    Containers(Box<Container>),
    Units(Box<Unit>),
    Ports(Port),
    Sources(SourceStatus),
    Interfaces(Interface),
    Mounts(Mount),
    Processes(Process),
    DiskHealth(DiskHealth),
    Files(WatchedFile),
    Routes(Route),
}

impl Item {
    pub fn collection(&self) -> Collection {
        match self {
            Item::Containers(_) => Collection::Containers,
            Item::Units(_) => Collection::Units,
            Item::Ports(_) => Collection::Ports,
            Item::Sources(_) => Collection::Sources,
            Item::Interfaces(_) => Collection::Interfaces,
            Item::Mounts(_) => Collection::Mounts,
            Item::Processes(_) => Collection::Processes,
            Item::DiskHealth(_) => Collection::DiskHealth,
            Item::Files(_) => Collection::Files,
            Item::Routes(_) => Collection::Routes,
        }
    }

    pub fn key(&self) -> String {
        match self {
            Item::Containers(c) => c.key(),
            Item::Units(u) => u.key(),
            Item::Ports(p) => p.key(),
            Item::Sources(s) => s.key(),
            Item::Interfaces(i) => i.key(),
            Item::Mounts(m) => m.key(),
            Item::Processes(p) => p.key(),
            Item::DiskHealth(d) => d.key(),
            Item::Files(f) => f.key(),
            Item::Routes(r) => r.key(),
        }
    }
}

/// One change to a node's state. On the wire:
/// `{"op":"host","value":{…}}`,
/// `{"op":"upsert","collection":"containers","key":"abc","value":{…}}`,
/// `{"op":"remove","collection":"containers","key":"abc"}`.
///
/// Reading is by hand (`diff/de.rs`), without serde's buffering.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    Host {
        value: HostInfo,
    },
    Upsert {
        key: String,
        #[serde(flatten)]
        item: Item,
    },
    Remove {
        collection: Collection,
        key: String,
    },
}

impl Change {
    pub fn upsert(item: Item) -> Change {
        Change::Upsert {
            key: item.key(),
            item,
        }
    }
}

/// The changes that turn `from` into `to`.
pub fn diff(from: &NodeState, to: &NodeState) -> Vec<Change> {
    let mut out = Vec::new();
    if from.host != to.host {
        out.push(Change::Host {
            value: to.host.clone(),
        });
    }
    diff_map(
        &from.containers,
        &to.containers,
        Collection::Containers,
        Item::Containers,
        &mut out,
    );
    diff_map(
        &from.units,
        &to.units,
        Collection::Units,
        Item::Units,
        &mut out,
    );
    diff_map(
        &from.ports,
        &to.ports,
        Collection::Ports,
        Item::Ports,
        &mut out,
    );
    diff_map(
        &from.sources,
        &to.sources,
        Collection::Sources,
        Item::Sources,
        &mut out,
    );
    diff_map(
        &from.interfaces,
        &to.interfaces,
        Collection::Interfaces,
        Item::Interfaces,
        &mut out,
    );
    diff_map(
        &from.mounts,
        &to.mounts,
        Collection::Mounts,
        Item::Mounts,
        &mut out,
    );
    diff_map(
        &from.processes,
        &to.processes,
        Collection::Processes,
        Item::Processes,
        &mut out,
    );
    diff_map(
        &from.disk_health,
        &to.disk_health,
        Collection::DiskHealth,
        Item::DiskHealth,
        &mut out,
    );
    diff_map(
        &from.files,
        &to.files,
        Collection::Files,
        Item::Files,
        &mut out,
    );
    diff_map(
        &from.routes,
        &to.routes,
        Collection::Routes,
        Item::Routes,
        &mut out,
    );
    out
}

/// The changes that turn collection `from` into `to`: removals for keys
/// gone, upserts for keys new or changed.
pub fn diff_map<T: PartialEq + Clone>(
    from: &BTreeMap<String, T>,
    to: &BTreeMap<String, T>,
    collection: Collection,
    wrap: fn(T) -> Item,
    out: &mut Vec<Change>,
) {
    for key in from.keys().filter(|k| !to.contains_key(*k)) {
        out.push(Change::Remove {
            collection,
            key: key.clone(),
        });
    }
    for (key, item) in to {
        if from.get(key) != Some(item) {
            out.push(Change::Upsert {
                key: key.clone(),
                item: wrap(item.clone()),
            });
        }
    }
}

/// Applies `changes` to `state` in order. Fails, leaving `state` untouched,
/// if an upsert's key does not match its item or a collection would grow
/// past its limit.
pub fn apply(state: &mut NodeState, changes: &[Change]) -> Result<(), StateError> {
    // Everything that could make the result invalid is checked before the
    // first write, so the state changes in place (no copy of the node) and
    // a refused diff leaves it untouched.
    for change in changes {
        if let Change::Upsert { key, item } = change {
            let expected = item.key();
            if *key != expected {
                return Err(StateError::KeyMismatch {
                    collection: item.collection().as_str(),
                    key: key.clone(),
                    expected,
                });
            }
            if let Item::Processes(p) = item
                && (!p.cpu_pct.is_finite() || p.cpu_pct < 0.0)
            {
                return Err(StateError::BadNumber(format!(
                    "process {} cpu_pct {}",
                    p.pid, p.cpu_pct
                )));
            }
        }
    }
    if let Some(err) = too_many_after(state, changes) {
        return Err(err);
    }
    for change in changes {
        match change {
            Change::Host { value } => state.host = value.clone(),
            Change::Upsert { key, item } => match item {
                Item::Containers(v) => drop(state.containers.insert(key.clone(), v.clone())),
                Item::Units(v) => drop(state.units.insert(key.clone(), v.clone())),
                Item::Ports(v) => drop(state.ports.insert(key.clone(), v.clone())),
                Item::Sources(v) => drop(state.sources.insert(key.clone(), v.clone())),
                Item::Interfaces(v) => drop(state.interfaces.insert(key.clone(), v.clone())),
                Item::Mounts(v) => drop(state.mounts.insert(key.clone(), v.clone())),
                Item::Processes(v) => drop(state.processes.insert(key.clone(), v.clone())),
                Item::DiskHealth(v) => drop(state.disk_health.insert(key.clone(), v.clone())),
                Item::Files(v) => drop(state.files.insert(key.clone(), v.clone())),
                Item::Routes(v) => drop(state.routes.insert(key.clone(), v.clone())),
            },
            Change::Remove { collection, key } => match collection {
                Collection::Containers => drop(state.containers.remove(key)),
                Collection::Units => drop(state.units.remove(key)),
                Collection::Ports => drop(state.ports.remove(key)),
                Collection::Sources => drop(state.sources.remove(key)),
                Collection::Interfaces => drop(state.interfaces.remove(key)),
                Collection::Mounts => drop(state.mounts.remove(key)),
                Collection::Processes => drop(state.processes.remove(key)),
                Collection::DiskHealth => drop(state.disk_health.remove(key)),
                Collection::Files => drop(state.files.remove(key)),
                Collection::Routes => drop(state.routes.remove(key)),
            },
        }
    }
    Ok(())
}

/// A collection that would hold more than [`MAX_COLLECTION_LEN`] items after
/// `changes` (counting every upsert of a key not present yet as an addition,
/// which can only overestimate).
fn too_many_after(state: &NodeState, changes: &[Change]) -> Option<StateError> {
    let len = |c: Collection| match c {
        Collection::Containers => state.containers.len(),
        Collection::Units => state.units.len(),
        Collection::Ports => state.ports.len(),
        Collection::Sources => state.sources.len(),
        Collection::Interfaces => state.interfaces.len(),
        Collection::Mounts => state.mounts.len(),
        Collection::Processes => state.processes.len(),
        Collection::DiskHealth => state.disk_health.len(),
        Collection::Files => state.files.len(),
        Collection::Routes => state.routes.len(),
    };
    let present = |c: Collection, key: &str| match c {
        Collection::Containers => state.containers.contains_key(key),
        Collection::Units => state.units.contains_key(key),
        Collection::Ports => state.ports.contains_key(key),
        Collection::Sources => state.sources.contains_key(key),
        Collection::Interfaces => state.interfaces.contains_key(key),
        Collection::Mounts => state.mounts.contains_key(key),
        Collection::Processes => state.processes.contains_key(key),
        Collection::DiskHealth => state.disk_health.contains_key(key),
        Collection::Files => state.files.contains_key(key),
        Collection::Routes => state.routes.contains_key(key),
    };
    let mut added: Vec<(Collection, usize)> = Vec::new();
    for change in changes {
        if let Change::Upsert { key, item } = change {
            let c = item.collection();
            if present(c, key) {
                continue;
            }
            match added.iter_mut().find(|(a, _)| *a == c) {
                Some((_, n)) => *n += 1,
                None => added.push((c, 1)),
            }
        }
    }
    added.into_iter().find_map(|(c, n)| {
        let after = len(c) + n;
        (after > MAX_COLLECTION_LEN).then(|| StateError::TooMany {
            collection: c.as_str(),
            len: after,
            limit: MAX_COLLECTION_LEN,
        })
    })
}

#[cfg(test)]
mod tests;
