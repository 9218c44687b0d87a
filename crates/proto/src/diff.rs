//! Differences between two twins, and applying them.
//!
//! A diff is a list of [`Change`]s, each naming a collection and a key. Every
//! change states the end result (replace this item, remove that key), never a
//! delta, so applying the same diff twice gives the same state: diffs are
//! idempotent. The defining property, tested below for arbitrary states:
//! `apply(A, diff(A, B)) == B`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{
    Container, DiskHealth, HostInfo, Interface, Keyed, Mount, NodeState, Port, Process,
    SourceStatus, StateError, Unit,
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
        }
    }
}

/// An item together with the collection it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "collection", content = "value", rename_all = "snake_case")]
pub enum Item {
    Containers(Container),
    Units(Unit),
    Ports(Port),
    Sources(SourceStatus),
    Interfaces(Interface),
    Mounts(Mount),
    Processes(Process),
    DiskHealth(DiskHealth),
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
        }
    }
}

/// One change to a node's state. On the wire:
/// `{"op":"host","value":{…}}`,
/// `{"op":"upsert","collection":"containers","key":"abc","value":{…}}`,
/// `{"op":"remove","collection":"containers","key":"abc"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    out
}

fn diff_map<T: PartialEq + Clone>(
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
        }
    }
    let mut next = state.clone();
    for change in changes {
        match change {
            Change::Host { value } => next.host = value.clone(),
            Change::Upsert { key, item } => match item {
                Item::Containers(v) => drop(next.containers.insert(key.clone(), v.clone())),
                Item::Units(v) => drop(next.units.insert(key.clone(), v.clone())),
                Item::Ports(v) => drop(next.ports.insert(key.clone(), v.clone())),
                Item::Sources(v) => drop(next.sources.insert(key.clone(), v.clone())),
                Item::Interfaces(v) => drop(next.interfaces.insert(key.clone(), v.clone())),
                Item::Mounts(v) => drop(next.mounts.insert(key.clone(), v.clone())),
                Item::Processes(v) => drop(next.processes.insert(key.clone(), v.clone())),
                Item::DiskHealth(v) => drop(next.disk_health.insert(key.clone(), v.clone())),
            },
            Change::Remove { collection, key } => match collection {
                Collection::Containers => drop(next.containers.remove(key)),
                Collection::Units => drop(next.units.remove(key)),
                Collection::Ports => drop(next.ports.remove(key)),
                Collection::Sources => drop(next.sources.remove(key)),
                Collection::Interfaces => drop(next.interfaces.remove(key)),
                Collection::Mounts => drop(next.mounts.remove(key)),
                Collection::Processes => drop(next.processes.remove(key)),
                Collection::DiskHealth => drop(next.disk_health.remove(key)),
            },
        }
    }
    next.validate()?;
    *state = next;
    Ok(())
}

#[cfg(test)]
mod tests;
