//! What changed between two versions of (a part of) the graph, so a client
//! that holds the graph applies a few upserts and removals instead of
//! reading the whole graph again. Pure: unit- and property-tested.

use std::collections::HashMap;

use serde::Serialize;

use super::{EdgeKind, Graph, GraphEdge, GraphNode};

/// An edge's identity: the two ends and the kind (at most one edge of a
/// kind joins two elements).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct EdgeKey {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

impl EdgeKey {
    pub fn of(e: &GraphEdge) -> EdgeKey {
        EdgeKey {
            from: e.from.clone(),
            to: e.to.clone(),
            kind: e.kind,
        }
    }
}

/// Elements and edges that are new or changed (whole, as they are now),
/// and the ids and keys of those that are gone.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GraphDiff {
    pub upsert_nodes: Vec<GraphNode>,
    pub remove_nodes: Vec<String>,
    pub upsert_edges: Vec<GraphEdge>,
    pub remove_edges: Vec<EdgeKey>,
}

impl GraphDiff {
    pub fn is_empty(&self) -> bool {
        self.upsert_nodes.is_empty()
            && self.remove_nodes.is_empty()
            && self.upsert_edges.is_empty()
            && self.remove_edges.is_empty()
    }

    /// Adds `other`'s changes to these (they must be about other elements,
    /// as two hosts' parts are).
    pub fn extend(&mut self, other: &GraphDiff) {
        self.upsert_nodes.extend(other.upsert_nodes.iter().cloned());
        self.remove_nodes.extend(other.remove_nodes.iter().cloned());
        self.upsert_edges.extend(other.upsert_edges.iter().cloned());
        self.remove_edges.extend(other.remove_edges.iter().cloned());
    }
}

/// The changes that turn `old` into `new`.
pub fn diff(old: &Graph, new: &Graph) -> GraphDiff {
    let mut out = GraphDiff::default();
    let old_nodes: HashMap<&str, &GraphNode> =
        old.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut kept = HashMap::with_capacity(new.nodes.len());
    for n in &new.nodes {
        if old_nodes.get(n.id.as_str()) != Some(&n) {
            out.upsert_nodes.push(n.clone());
        }
        kept.insert(n.id.as_str(), ());
    }
    out.remove_nodes.extend(
        old.nodes
            .iter()
            .filter(|n| !kept.contains_key(n.id.as_str()))
            .map(|n| n.id.clone()),
    );
    let key = |e: &'_ GraphEdge| (e.from.clone(), e.to.clone(), e.kind);
    let old_edges: HashMap<_, &GraphEdge> = old.edges.iter().map(|e| (key(e), e)).collect();
    let mut kept = HashMap::with_capacity(new.edges.len());
    for e in &new.edges {
        let k = key(e);
        if old_edges.get(&k) != Some(&e) {
            out.upsert_edges.push(e.clone());
        }
        kept.insert(k, ());
    }
    out.remove_edges.extend(
        old.edges
            .iter()
            .filter(|e| !kept.contains_key(&key(e)))
            .map(EdgeKey::of),
    );
    out
}

/// Applies `d` to `graph` as a client does (upserts replace by id or key;
/// removals of what is not there are no-ops).
pub fn apply(graph: &mut Graph, d: &GraphDiff) {
    let gone: std::collections::HashSet<&str> = d.remove_nodes.iter().map(String::as_str).collect();
    let new_nodes: HashMap<&str, &GraphNode> =
        d.upsert_nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    graph.nodes.retain(|n| !gone.contains(n.id.as_str()));
    for n in &mut graph.nodes {
        if let Some(new) = new_nodes.get(n.id.as_str()) {
            *n = (*new).clone();
        }
    }
    let present: std::collections::HashSet<String> =
        graph.nodes.iter().map(|n| n.id.clone()).collect();
    graph.nodes.extend(
        d.upsert_nodes
            .iter()
            .filter(|n| !present.contains(&n.id))
            .cloned(),
    );
    let gone: std::collections::HashSet<&EdgeKey> = d.remove_edges.iter().collect();
    let new_edges: HashMap<EdgeKey, &GraphEdge> =
        d.upsert_edges.iter().map(|e| (EdgeKey::of(e), e)).collect();
    graph.edges.retain(|e| !gone.contains(&EdgeKey::of(e)));
    let mut present = std::collections::HashSet::new();
    for e in &mut graph.edges {
        let k = EdgeKey::of(e);
        if let Some(new) = new_edges.get(&k) {
            *e = (*new).clone();
        }
        present.insert(k);
    }
    graph.edges.extend(
        d.upsert_edges
            .iter()
            .filter(|e| !present.contains(&EdgeKey::of(e)))
            .cloned(),
    );
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::topology::{Health, NodeKind};

    fn node(id: &str, status: &str) -> GraphNode {
        GraphNode {
            id: id.into(),
            kind: NodeKind::Container,
            label: id.into(),
            health: Health::Ok,
            status: status.into(),
            node_id: Some("a".into()),
        }
    }

    fn edge(from: &str, to: &str, utilisation: Option<f64>) -> GraphEdge {
        GraphEdge {
            from: from.into(),
            to: to.into(),
            kind: EdgeKind::RunsOn,
            utilisation,
            bps: None,
        }
    }

    /// Order does not matter to a client: compare as sorted lists.
    fn canonical(mut g: Graph) -> Graph {
        g.nodes.sort_by(|a, b| a.id.cmp(&b.id));
        g.edges
            .sort_by(|a, b| (&a.from, &a.to, a.kind).cmp(&(&b.from, &b.to, b.kind)));
        g
    }

    #[test]
    fn names_only_what_changed() {
        let old = Graph {
            nodes: vec![node("c1", "running"), node("c2", "running"), node("h", "")],
            edges: vec![edge("c1", "h", None), edge("c2", "h", Some(0.1))],
        };
        let new = Graph {
            nodes: vec![node("c1", "exited"), node("h", ""), node("c3", "running")],
            edges: vec![edge("c1", "h", None), edge("c3", "h", None)],
        };
        let d = diff(&old, &new);
        assert_eq!(
            d.upsert_nodes
                .iter()
                .map(|n| n.id.as_str())
                .collect::<Vec<_>>(),
            ["c1", "c3"]
        );
        assert_eq!(d.remove_nodes, ["c2"]);
        assert_eq!(d.upsert_edges.len(), 1);
        assert_eq!(d.upsert_edges[0].from, "c3");
        assert_eq!(d.remove_edges, [EdgeKey::of(&edge("c2", "h", None))]);
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn a_changed_load_is_an_upsert_of_that_edge() {
        let old = Graph {
            nodes: vec![],
            edges: vec![edge("x", "h", Some(0.1))],
        };
        let new = Graph {
            nodes: vec![],
            edges: vec![edge("x", "h", Some(0.5))],
        };
        let d = diff(&old, &new);
        assert_eq!(d.upsert_edges, new.edges);
        assert!(d.remove_edges.is_empty());
    }

    fn graph() -> impl Strategy<Value = Graph> {
        let ids = prop::collection::btree_map(0u8..12, 0u8..3, 0..12);
        let edges = prop::collection::btree_map((0u8..12, 0u8..12), 0u8..3, 0..16);
        (ids, edges).prop_map(|(ids, edges)| Graph {
            nodes: ids
                .iter()
                .map(|(id, s)| node(&format!("n{id}"), &format!("s{s}")))
                .collect(),
            edges: edges
                .iter()
                .map(|((a, b), u)| edge(&format!("n{a}"), &format!("n{b}"), Some(f64::from(*u))))
                .collect(),
        })
    }

    proptest! {
        /// Whatever the two graphs, applying the diff to the old one gives the new one.
        #[test]
        fn applying_the_diff_gives_the_new_graph(old in graph(), new in graph()) {
            let d = diff(&old, &new);
            let mut got = old.clone();
            apply(&mut got, &d);
            prop_assert_eq!(canonical(got), canonical(new.clone()));
            // And a diff with itself is empty.
            prop_assert!(diff(&new, &new).is_empty());
        }
    }
}
