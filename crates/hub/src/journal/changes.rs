//! What changed on a node between two moments, as a readable list grouped
//! by subject (`container web`, `port tcp/0.0.0.0:8443`, `unit backup.service`,
//! `file /etc/nginx/nginx.conf`, `host`), derived from the journal's steps.
//!
//! Containers are grouped by name, not id, so a recreated container reads
//! as one subject (`recreated, image nginx:1.25 → nginx:1.27`). Fields that
//! move on their own (a unit's memory and CPU time, a disk's temperature, a
//! file's mtime) are not changes worth a line; a step that only moved them
//! is left out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Entry;
use twinbay_proto::diff::{Change, Collection, Item, apply, diff};
use twinbay_proto::model::NodeState;

/// One subject's changes in the range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubjectChanges {
    /// `container web`, `unit nginx.service`, `port tcp/0.0.0.0:8443`, `host`, …
    pub subject: String,
    /// `host`, `containers`, `units`, `ports`, `files`, `routes`, …
    pub collection: String,
    /// The key (a container's name).
    pub name: String,
    /// From the first moment to the last: `image nginx:1.25 → nginx:1.27, state running → exited`.
    pub summary: String,
    /// Every step, oldest first.
    pub transitions: Vec<Transition>,
}

/// One recorded step of a subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transition {
    /// Unix ms.
    pub ts: i64,
    /// `created (image nginx:1.25, running)`, `state running → exited`, `opened`, …
    pub change: String,
}

/// A subject: its collection (`None`: the host) and name.
type Key = (Option<Collection>, String);

#[derive(Debug)]
struct Open {
    first: Option<Value>,
    last: Option<Value>,
    transitions: Vec<Transition>,
}

/// The changes from `state` through each `(ts, entry)` step, grouped by
/// subject (host first, then by collection and name).
pub fn describe(
    mut state: NodeState,
    steps: impl IntoIterator<Item = (i64, Entry)>,
) -> Vec<SubjectChanges> {
    let mut open: BTreeMap<(usize, String), (Key, Open)> = BTreeMap::new();
    for (ts, entry) in steps {
        let changes = match entry {
            Entry::Diff { changes } => match super::expand(&state, changes) {
                Ok(changes) => changes,
                // Damaged: reconstruction reports it on its own.
                Err(_) => continue,
            },
            // A checkpoint is the whole state then: what differs from ours.
            Entry::Checkpoint { state: then } => diff(&state, &then),
        };
        let touched = touched(&state, &changes);
        let before: Vec<Option<Value>> = touched.iter().map(|k| lookup(&state, k)).collect();
        if apply(&mut state, &changes).is_err() {
            // Journal steps were applied once already; a refusal means a
            // damaged entry, which reconstruction reports on its own.
            continue;
        }
        for (key, before) in touched.into_iter().zip(before) {
            let after = lookup(&state, &key);
            let Some(change) = transition(key.0, before.as_ref(), after.as_ref()) else {
                continue;
            };
            let order = key.0.map_or(0, |c| c as usize + 1);
            let entry = open.entry((order, key.1.clone())).or_insert_with(|| {
                (
                    key.clone(),
                    Open {
                        first: before.clone(),
                        last: None,
                        transitions: Vec::new(),
                    },
                )
            });
            entry.1.last = after;
            entry.1.transitions.push(Transition { ts, change });
        }
    }
    open.into_values()
        .map(|((collection, name), o)| {
            let summary = transition(collection, o.first.as_ref(), o.last.as_ref())
                .unwrap_or_else(|| format!("changed {}× and back", o.transitions.len()));
            let summary = match o.transitions.len() {
                n if n > 1 && !summary.starts_with("changed") => {
                    format!("{summary} ({n} steps)")
                }
                _ => summary,
            };
            SubjectChanges {
                subject: subject_name(collection, &name),
                collection: collection.map_or("host", |c| c.as_str()).to_string(),
                name,
                summary,
                transitions: o.transitions,
            }
        })
        .collect()
}

fn subject_name(collection: Option<Collection>, name: &str) -> String {
    let kind = match collection {
        None => return "host".into(),
        Some(Collection::Containers) => "container",
        Some(Collection::Units) => "unit",
        Some(Collection::Ports) => "port",
        Some(Collection::Sources) => "source",
        Some(Collection::Interfaces) => "interface",
        Some(Collection::Mounts) => "mount",
        Some(Collection::Processes) => "process",
        Some(Collection::DiskHealth) => "disk",
        Some(Collection::Files) => "file",
        Some(Collection::Routes) => "route",
    };
    format!("{kind} {name}")
}

/// The subjects `changes` touch (containers by name, before and after).
fn touched(state: &NodeState, changes: &[Change]) -> Vec<Key> {
    let mut out: Vec<Key> = Vec::new();
    let mut add = |k: Key| {
        if !out.contains(&k) {
            out.push(k);
        }
    };
    for change in changes {
        match change {
            Change::Host { .. } => add((None, "host".into())),
            Change::Upsert {
                item: Item::Containers(c),
                key,
            } => {
                if let Some(old) = state.containers.get(key) {
                    add((Some(Collection::Containers), old.name.to_string()));
                }
                add((Some(Collection::Containers), c.name.to_string()));
            }
            Change::Remove {
                collection: Collection::Containers,
                key,
            } => {
                if let Some(old) = state.containers.get(key) {
                    add((Some(Collection::Containers), old.name.to_string()));
                }
            }
            Change::Upsert { item, key } => add((Some(item.collection()), key.clone())),
            Change::Remove { collection, key } => add((Some(*collection), key.clone())),
        }
    }
    out
}

/// The subject's item in `state`, as JSON.
fn lookup(state: &NodeState, (collection, name): &Key) -> Option<Value> {
    fn json<T: Serialize>(v: Option<&T>) -> Option<Value> {
        v.map(|v| serde_json::to_value(v).expect("state items serialize"))
    }
    let Some(collection) = collection else {
        return json(Some(&state.host));
    };
    match collection {
        Collection::Containers => json(state.containers.values().find(|c| &c.name == name)),
        Collection::Units => json(state.units.get(name)),
        Collection::Ports => json(state.ports.get(name)),
        Collection::Sources => json(state.sources.get(name)),
        Collection::Interfaces => json(state.interfaces.get(name)),
        Collection::Mounts => json(state.mounts.get(name)),
        Collection::Processes => json(state.processes.get(name)),
        Collection::DiskHealth => json(state.disk_health.get(name)),
        Collection::Files => json(state.files.get(name)),
        Collection::Routes => json(state.routes.get(name)),
    }
}

/// Fields that move on their own: not a change worth a line.
fn noisy(collection: Option<Collection>, field: &str) -> bool {
    match collection {
        Some(Collection::Units) => {
            matches!(field, "memory_bytes" | "cpu_nsec" | "main_pid" | "since")
        }
        Some(Collection::DiskHealth) => matches!(field, "temp_c" | "power_on_hours"),
        Some(Collection::Files) => matches!(field, "mtime_ms" | "size"),
        Some(Collection::Containers) => matches!(field, "created" | "image_id"),
        Some(Collection::Ports) => field == "pid",
        _ => false,
    }
}

/// One step of a subject in words; `None` when nothing worth a line changed.
fn transition(
    collection: Option<Collection>,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Option<String> {
    let (Some(before), Some(after)) = (before, after) else {
        return match (before, after) {
            (None, Some(a)) => Some(appeared(collection, a)),
            (Some(_), None) => Some(
                match collection {
                    Some(Collection::Containers) => "removed",
                    Some(Collection::Ports) => "closed",
                    Some(Collection::Files) => "no longer watched",
                    _ => "gone",
                }
                .into(),
            ),
            _ => None,
        };
    };
    let empty = serde_json::Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut parts = Vec::new();
    let container = collection == Some(Collection::Containers);
    if container && b.get("id") != a.get("id") {
        parts.push("recreated".to_string());
    }
    let mut fields: Vec<&String> = b.keys().chain(a.keys()).collect();
    fields.sort();
    fields.dedup();
    for field in fields {
        let (old, new) = (b.get(field), a.get(field));
        if old == new || noisy(collection, field) {
            continue;
        }
        match (collection, field.as_str()) {
            (Some(Collection::Containers), "id") => {}
            (Some(Collection::Containers), "started_at") => {
                let same_state = b.get("state") == a.get("state");
                if same_state && b.get("id") == a.get("id") {
                    parts.push("restarted".into());
                }
            }
            (None, "boot_time") => parts.push("rebooted".into()),
            (Some(Collection::Files), "sha256") => parts.push(format!(
                "version changed ({} → {})",
                render(old, true),
                render(new, true)
            )),
            _ => parts.push(format!(
                "{field} {} → {}",
                render(old, false),
                render(new, false)
            )),
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn appeared(collection: Option<Collection>, a: &Value) -> String {
    let text = |f: &str| a.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    match collection {
        Some(Collection::Containers) => {
            format!("created (image {}, {})", text("image"), text("state"))
        }
        Some(Collection::Ports) => match text("process") {
            p if p.is_empty() => "opened".into(),
            p => format!("opened by {p}"),
        },
        Some(Collection::Units) => {
            let states = [text("active_state"), text("sub_state")];
            let states: Vec<&str> = states
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            format!("appeared ({})", states.join("/"))
        }
        Some(Collection::Files) => "now watched".into(),
        Some(Collection::Routes) => format!("added (→ {})", text("upstream")),
        _ => "appeared".into(),
    }
}

/// A field's value in a line: strings bare, `none` for null, a hash cut to
/// 12 characters, anything else as compact JSON of at most 80 characters.
fn render(v: Option<&Value>, hash: bool) -> String {
    let s = match v {
        None | Some(Value::Null) => return "none".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let cut = if hash { 12 } else { 80 };
    match s.char_indices().nth(cut) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}
