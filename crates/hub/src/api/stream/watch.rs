//! What a client of the summary view watches, and which of the twin's
//! events it is sent: pure functions over the event text, so a fleet of
//! 10,000 hosts costs each client a glance at every event, not a parse.

use std::collections::HashSet;

use axum::extract::ws::Utf8Bytes;
use twinbay_proto::diff::{Change, Collection};

use crate::twin::view::FLEET_COLLECTIONS;

/// Hosts one client may watch in full at once (a page or two of them).
pub const MAX_NODES: usize = 64;

/// What a client asked for (`{"type":"watch"|"unwatch", …}`).
#[derive(Debug, PartialEq, Eq)]
pub enum Ask {
    /// `{"type":"watch","topology":true|false}`
    Topology(bool),
    /// `{"type":"watch"|"unwatch","node":ID}`
    Node(String, bool),
    /// `{"type":"watch"|"unwatch","collection":"containers"|"units"|"ports"|"routes"}`
    Collection(Collection, bool),
}

/// What a client's message asks; `None` for anything else (ignored).
pub fn ask(text: &str) -> Option<Ask> {
    #[derive(serde::Deserialize)]
    struct Raw {
        r#type: String,
        topology: Option<bool>,
        node: Option<String>,
        collection: Option<Collection>,
    }
    let raw: Raw = serde_json::from_str(text).ok()?;
    let on = match raw.r#type.as_str() {
        "watch" => true,
        "unwatch" => false,
        _ => return None,
    };
    if let Some(t) = raw.topology {
        return on.then_some(Ask::Topology(t));
    }
    if let Some(id) = raw.node {
        return Some(Ask::Node(id, on));
    }
    let c = raw.collection.filter(|c| FLEET_COLLECTIONS.contains(c))?;
    Some(Ask::Collection(c, on))
}

/// The lead of an event: its `type`, and the node it is about for the
/// per-node events (`diff`, `metrics`, `status`, `node`), which the twin
/// writes with `type` and the id first (twin/view.rs).
#[derive(Debug, PartialEq, Eq)]
pub struct Peek<'a> {
    pub kind: &'a str,
    pub id: Option<&'a str>,
}

/// `None` when `text` does not start with `{"type":"…"` (timeline events,
/// commands, rollouts and alerts lead with other keys).
pub fn peek(text: &str) -> Option<Peek<'_>> {
    let rest = text.strip_prefix(r#"{"type":""#)?;
    let (kind, rest) = rest.split_once('"')?;
    let id = match kind {
        "node" => rest.strip_prefix(r#","node":{"id":""#),
        "diff" | "metrics" | "status" => rest.strip_prefix(r#","id":""#),
        _ => None,
    }
    .and_then(|r| r.split_once('"'))
    .map(|(id, _)| id)
    // An escaped id would need a real parse; ids never have one.
    .filter(|id| !id.contains('\\'));
    Some(Peek { kind, id })
}

/// What one client watches besides the summaries.
#[derive(Debug, Default)]
pub struct Watching {
    pub nodes: HashSet<String>,
    pub collections: Vec<Collection>,
}

/// What to do with one event of the twin for a summary-view client.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// Send it as it is.
    Send,
    /// Not for this client.
    Drop,
    /// A diff of a host it does not watch: send only the changes to the
    /// collections it watches.
    Collections,
    /// A host it does not watch synced anew: send that host's part of the
    /// collections it watches.
    Resend(String),
}

impl Watching {
    /// Starts or stops watching; `false` when a node watch is refused
    /// (too many already).
    pub fn set(&mut self, ask: &Ask) -> bool {
        match ask {
            Ask::Topology(_) => true,
            Ask::Node(id, true) => {
                self.nodes.contains(id) || {
                    self.nodes.len() < MAX_NODES && self.nodes.insert(id.clone())
                }
            }
            Ask::Node(id, false) => {
                self.nodes.remove(id);
                true
            }
            Ask::Collection(c, on) => {
                self.collections.retain(|x| x != c);
                if *on {
                    self.collections.push(*c);
                }
                true
            }
        }
    }

    pub fn pass(&self, text: &str) -> Pass {
        let Some(peek) = peek(text) else {
            return Pass::Send;
        };
        let Some(id) = peek.id else {
            // Fleet-wide messages (and whole snapshots, which only the
            // full view gets) go to everyone.
            return match peek.kind {
                "snapshot" => Pass::Drop,
                _ => Pass::Send,
            };
        };
        if self.nodes.contains(id) {
            return Pass::Send;
        }
        if self.collections.is_empty() {
            return Pass::Drop;
        }
        match peek.kind {
            "diff" => Pass::Collections,
            // Its policy: what the lists offer to do on the host.
            "status" => Pass::Send,
            "node" => Pass::Resend(id.to_string()),
            _ => Pass::Drop,
        }
    }
}

/// `diff` (the twin's `diff` event) with only the changes to `keep`;
/// `None` when nothing is left.
pub fn diff_for(diff: &str, keep: &[Collection]) -> Option<Utf8Bytes> {
    #[derive(serde::Deserialize)]
    struct Diff {
        id: String,
        seq: u64,
        applied_ms: i64,
        changes: Vec<Change>,
    }
    let d: Diff = serde_json::from_str(diff).ok()?;
    let changes: Vec<Change> = d
        .changes
        .into_iter()
        .filter(|c| match c {
            Change::Host { .. } => false,
            Change::Upsert { item, .. } => keep.contains(&item.collection()),
            Change::Remove { collection, .. } => keep.contains(collection),
        })
        .collect();
    (!changes.is_empty())
        .then(|| crate::twin::view::diff_event_at(&d.id, d.seq, d.applied_ms, &changes))
}

#[cfg(test)]
mod tests {
    use twinbay_proto::diff::Item;
    use twinbay_proto::model::{Container, Process, Sample};

    use super::*;
    use crate::twin::NodeTwin;
    use crate::twin::view::{diff_event, metrics_event, node_event, status_event};

    #[test]
    fn asks_are_read_and_anything_else_ignored() {
        assert_eq!(
            ask(r#"{"type":"watch","topology":true}"#),
            Some(Ask::Topology(true))
        );
        assert_eq!(
            ask(r#"{"type":"watch","node":"n1"}"#),
            Some(Ask::Node("n1".into(), true))
        );
        assert_eq!(
            ask(r#"{"type":"unwatch","collection":"units"}"#),
            Some(Ask::Collection(Collection::Units, false))
        );
        assert_eq!(ask(r#"{"type":"watch","collection":"processes"}"#), None);
        assert_eq!(ask(r#"{"type":"watch","collection":"nope"}"#), None);
        assert_eq!(ask(r#"{"type":"hello"}"#), None);
        assert_eq!(ask("not json"), None);
    }

    #[test]
    fn the_twins_events_are_peeked_without_parsing() {
        let n = NodeTwin::for_tests("n1");
        for (text, kind) in [
            (diff_event("n1", 3, &[]), "diff"),
            (status_event(&n), "status"),
            (node_event(&n), "node"),
            (metrics_event("n1", &Sample::default()), "metrics"),
        ] {
            assert_eq!(
                peek(text.as_str()),
                Some(Peek {
                    kind,
                    id: Some("n1")
                }),
                "{text}"
            );
        }
        assert_eq!(peek(r#"{"event":{"node_id":"n1"},"type":"event"}"#), None);
    }

    #[test]
    fn a_client_gets_its_hosts_and_its_collections() {
        let mut w = Watching::default();
        let n2 = NodeTwin::for_tests("n2");
        let diff = diff_event("n2", 1, &[]);
        let metrics = metrics_event("n2", &Sample::default());
        assert_eq!(w.pass(diff.as_str()), Pass::Drop);
        assert_eq!(w.pass(metrics.as_str()), Pass::Drop);
        assert_eq!(w.pass(status_event(&n2).as_str()), Pass::Drop);
        assert_eq!(w.pass(r#"{"command":{},"type":"command"}"#), Pass::Send);

        w.set(&Ask::Collection(Collection::Containers, true));
        assert_eq!(w.pass(diff.as_str()), Pass::Collections);
        assert_eq!(w.pass(metrics.as_str()), Pass::Drop);
        assert_eq!(w.pass(status_event(&n2).as_str()), Pass::Send);
        assert_eq!(w.pass(node_event(&n2).as_str()), Pass::Resend("n2".into()));

        w.set(&Ask::Node("n2".into(), true));
        assert_eq!(w.pass(diff.as_str()), Pass::Send);
        assert_eq!(w.pass(metrics.as_str()), Pass::Send);
        w.set(&Ask::Node("n2".into(), false));
        w.set(&Ask::Collection(Collection::Containers, false));
        assert_eq!(w.pass(diff.as_str()), Pass::Drop);
    }

    #[test]
    fn node_watches_are_bounded() {
        let mut w = Watching::default();
        for i in 0..MAX_NODES {
            assert!(w.set(&Ask::Node(format!("n{i}"), true)));
        }
        assert!(!w.set(&Ask::Node("one-more".into(), true)));
        assert!(w.set(&Ask::Node("n0".into(), true)), "already watched");
    }

    #[test]
    fn a_diff_keeps_only_the_watched_collections() {
        let changes = [
            Change::upsert(Item::Containers(
                Container {
                    id: "c1".into(),
                    name: "web".into(),
                    ..Container::default()
                }
                .into(),
            )),
            Change::upsert(Item::Processes(Process::default())),
            Change::Remove {
                collection: Collection::Units,
                key: "x.service".into(),
            },
        ];
        let diff = diff_event("n1", 7, &changes);
        let kept = diff_for(diff.as_str(), &[Collection::Containers]).unwrap();
        let v: serde_json::Value = serde_json::from_str(kept.as_str()).unwrap();
        assert_eq!(v["type"], "diff");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["changes"].as_array().unwrap().len(), 1);
        assert_eq!(v["changes"][0]["value"]["name"], "web");
        assert!(diff_for(diff.as_str(), &[Collection::Ports]).is_none());
    }
}
