use twinbay_proto::diff::{Change, Item};
use twinbay_proto::model::{HostInfo, NodeState, Process, Sample, SourceStatus};

use super::*;

fn twin_with(id: &str) -> Twin {
    let twin = Twin::new(Vec::new());
    twin.ensure_node(id, false, "key");
    twin
}

fn host(name: &str) -> NodeState {
    NodeState {
        host: HostInfo {
            hostname: name.into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn diffs_need_a_baseline_and_consecutive_sequence_numbers() {
    let twin = twin_with("n1");
    let (conn, _) = twin.connect("n1", "0.1.0", None);
    let change = [Change::upsert(Item::Sources(SourceStatus {
        name: "docker".into(),
        available: false,
        reason: Some("no socket".into()),
    }))];
    assert!(matches!(
        twin.apply_diff("n1", conn, 2, &change),
        Err(ApplyError::NoBaseline)
    ));
    twin.apply_full("n1", conn, 1, host("a")).unwrap();
    match twin.apply_diff("n1", conn, 3, &change) {
        Err(ApplyError::Gap {
            expected: 2,
            got: 3,
        }) => {}
        other => panic!("{other:?}"),
    }
    twin.apply_diff("n1", conn, 2, &change).unwrap();
    let view = twin.view("n1").unwrap();
    assert_eq!(view.seq, Some(2));
    assert!(!view.state.sources["docker"].available);
}

#[test]
fn subscribers_get_a_snapshot_then_every_change_in_order() {
    let twin = twin_with("n1");
    let (snapshot, mut rx) = twin.subscribe();
    assert!(snapshot.as_str().contains("\"type\":\"snapshot\""));
    let (conn, _) = twin.connect("n1", "0.1.0", None);
    twin.apply_full("n1", conn, 1, host("alpha")).unwrap();
    let mut next =
        || serde_json::from_str::<serde_json::Value>(rx.try_recv().unwrap().as_str()).unwrap();
    let status = next();
    assert_eq!(status["type"], "status");
    assert_eq!(status["connected"], true);
    // The timeline line comes right after the state change it describes.
    let line = next();
    assert_eq!(line["type"], "event");
    assert_eq!(line["event"]["kind"], "agent.connected");
    let node = next();
    assert_eq!(node["type"], "node");
    assert_eq!(node["node"]["hostname"], "alpha");
}

#[test]
fn a_newer_connection_replaces_the_old_one() {
    let twin = twin_with("n1");
    let (old, old_cancel) = twin.connect("n1", "0.1.0", None);
    let (new, _) = twin.connect("n1", "0.1.0", None);
    assert!(old_cancel.is_cancelled());
    assert!(matches!(
        twin.apply_full("n1", old, 1, host("x")),
        Err(ApplyError::Stale)
    ));
    // The old session ending must not mark the node disconnected.
    twin.disconnect("n1", old);
    assert!(twin.view("n1").unwrap().connected);
    twin.disconnect("n1", new);
    assert!(!twin.view("n1").unwrap().connected);
}

#[test]
fn changed_nodes_are_handed_to_the_recorder_once() {
    let twin = twin_with("n1");
    let (conn, _) = twin.connect("n1", "0.1.0", None);
    twin.apply_full("n1", conn, 1, host("alpha")).unwrap();
    let writes = twin.take_dirty(true);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].hostname, "alpha");
    assert!(writes[0].state.is_some());
    assert!(twin.take_dirty(true).is_empty());
}

#[test]
fn samples_mark_only_liveness_and_are_written_without_the_state() {
    let twin = twin_with("n1");
    let (conn, _) = twin.connect("n1", "0.1.0", None);
    twin.apply_full("n1", conn, 1, host("alpha")).unwrap();
    twin.take_dirty(true);
    let sample = Sample {
        ts_ms: 5,
        cpu_pct: 12.5,
        ..Sample::default()
    };
    twin.record_samples("n1", &[sample]);
    // A frequent flush skips nodes of which only liveness changed...
    assert!(twin.take_dirty(false).is_empty());
    // ...a liveness flush writes their resources but not their state.
    let writes = twin.take_dirty(true);
    assert_eq!(writes.len(), 1);
    assert!(writes[0].state.is_none());
    assert!(writes[0].resources.as_deref().unwrap().contains("12.5"));
}

#[test]
fn a_failed_write_is_retried_on_the_next_flush() {
    let twin = twin_with("n1");
    let (conn, _) = twin.connect("n1", "0.1.0", None);
    twin.apply_full("n1", conn, 1, host("alpha")).unwrap();
    let writes = twin.take_dirty(true);
    twin.mark_dirty(writes.into_iter().map(|w| w.id));
    let again = twin.take_dirty(false);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].hostname, "alpha");
}

#[test]
fn a_diff_of_only_top_processes_does_not_rewrite_the_stored_state() {
    let twin = twin_with("n1");
    let (conn, _) = twin.connect("n1", "0.1.0", None);
    twin.apply_full("n1", conn, 1, host("alpha")).unwrap();
    twin.take_dirty(true);
    let process = Change::upsert(Item::Processes(Process {
        pid: 42,
        name: "postgres".into(),
        cpu_pct: 3.5,
        ..Default::default()
    }));
    twin.apply_diff("n1", conn, 2, &[process]).unwrap();
    assert!(twin.take_dirty(false).is_empty());
    let source = Change::upsert(Item::Sources(SourceStatus {
        name: "docker".into(),
        available: true,
        reason: None,
    }));
    twin.apply_diff("n1", conn, 3, &[source]).unwrap();
    let writes = twin.take_dirty(false);
    assert_eq!(writes.len(), 1);
    assert!(writes[0].state.as_deref().unwrap().contains("docker"));
}
