use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;
use twinbay_proto::diff::diff;
use twinbay_proto::model::{
    Container, FileState, HostInfo, NodeState, Port, Process, Unit, WatchedFile,
};

use super::changes::describe;
use super::*;
use crate::recorder;
use crate::store::Store;
use crate::twin::Twin;

fn tempdir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "twinbay-journal-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What the store rebuilds for `node` at `at` (`None`: nothing that early).
async fn at(store: &Store, node: &str, at: i64) -> Option<NodeState> {
    let rows = store.journal_at(node, at).await.unwrap();
    (!rows.is_empty()).then(|| replay(node, &rows).unwrap().0)
}

// Small key spaces, so that random states share keys and change them.
fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(String::from)
}

fn container() -> impl Strategy<Value = Container> {
    (
        name(),
        name(),
        prop::sample::select(vec!["nginx:1.25", "nginx:1.27"]),
        prop::sample::select(vec!["running", "exited"]),
    )
        .prop_map(|(id, name, image, state)| Container {
            id,
            name: name.into(),
            image: image.into(),
            state: state.into(),
            ..Default::default()
        })
}

fn unit() -> impl Strategy<Value = Unit> {
    (name(), prop::sample::select(vec!["active", "failed"])).prop_map(|(name, active)| Unit {
        name: name.into(),
        active_state: active.into(),
        ..Default::default()
    })
}

fn port() -> impl Strategy<Value = Port> {
    (8440u16..8444).prop_map(|port| Port {
        protocol: "tcp".into(),
        address: "0.0.0.0".into(),
        port,
        process: None,
        pid: None,
    })
}

fn file() -> impl Strategy<Value = WatchedFile> {
    (name(), prop::sample::select(vec!["1", "2"])).prop_map(|(path, v)| WatchedFile {
        path: format!("/etc/{path}"),
        state: FileState::Present,
        sha256: Some(v.repeat(64)),
        ..Default::default()
    })
}

fn process() -> impl Strategy<Value = Process> {
    (0u32..4, 0.0f32..100.0).prop_map(|(pid, cpu_pct)| Process {
        pid,
        name: "p".into(),
        cpu_pct,
        rss: 1,
        uid: None,
    })
}

fn keyed<T: twinbay_proto::model::Keyed, V: From<T>>(items: Vec<T>) -> BTreeMap<String, V> {
    items.into_iter().map(|i| (i.key(), i.into())).collect()
}

fn state() -> impl Strategy<Value = NodeState> {
    (
        prop::sample::select(vec!["6.1", "6.8"]),
        prop::collection::vec(container(), 0..4),
        prop::collection::vec(unit(), 0..3),
        prop::collection::vec(port(), 0..3),
        prop::collection::vec(file(), 0..3),
        prop::collection::vec(process(), 0..3),
    )
        .prop_map(|(kernel, c, u, p, f, procs)| NodeState {
            host: HostInfo {
                hostname: "h".into(),
                kernel: kernel.into(),
                ..Default::default()
            },
            containers: keyed(c),
            units: keyed(u),
            ports: keyed(p),
            files: keyed(f),
            processes: keyed(procs),
            ..Default::default()
        })
}

/// What happens to the node between two moments.
#[derive(Debug, Clone)]
enum Step {
    /// A reconnect's full sync.
    Full(NodeState),
    /// Diffs from the agent towards this state.
    Diff(NodeState),
    /// Only the top processes change (not journaled).
    Processes(Vec<Process>),
    /// The recorder flushes.
    Flush,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => state().prop_map(Step::Full),
        4 => state().prop_map(Step::Diff),
        1 => prop::collection::vec(process(), 0..3).prop_map(Step::Processes),
        3 => Just(Step::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Acceptance 1: the state rebuilt at every recorded moment (and just
    /// before the next) is the state the twin had then, top processes aside.
    #[test]
    fn every_recorded_moment_rebuilds_the_twin_it_was(steps in prop::collection::vec(step(), 1..40)) {
        runtime().block_on(async {
            let store = Store::open(&tempdir("prop")).await.unwrap();
            let twin = Twin::new(Vec::new());
            twin.ensure_node("n1", false, "key");
            let (conn, _) = twin.connect("n1", "0.1.0", None);
            twin.apply_full("n1", conn, 1, NodeState::default()).unwrap();
            let mut seq = 1;
            // Small checkpoint spacing, so replays cross checkpoints.
            let mut journal = Journal::with_checkpoints_every(3);
            let mut moments: Vec<(i64, NodeState)> = Vec::new();
            for step in steps.into_iter().chain([Step::Flush]) {
                let now = twin.read("n1", |n| n.state.clone()).unwrap();
                match step {
                    Step::Full(s) => {
                        seq += 1;
                        twin.apply_full("n1", conn, seq, s).unwrap();
                    }
                    Step::Diff(s) => {
                        seq += 1;
                        twin.apply_diff("n1", conn, seq, &diff(&now, &s)).unwrap();
                    }
                    Step::Processes(p) => {
                        let target = NodeState { processes: keyed(p), ..now.clone() };
                        seq += 1;
                        twin.apply_diff("n1", conn, seq, &diff(&now, &target)).unwrap();
                    }
                    Step::Flush => {
                        recorder::flush(&twin, &store, &mut journal, false).await;
                        if let Some(head) = journal.head("n1") {
                            let had = journaled(twin.read("n1", |n| n.state.clone()).unwrap());
                            assert_eq!(head.state(), had);
                            if moments.last().is_none_or(|(ts, _)| *ts != head.ts) {
                                moments.push((head.ts, had));
                            }
                        }
                    }
                }
            }
            let first = moments[0].0;
            assert_eq!(at(&store, "n1", first - 1).await, None);
            for (i, (ts, had)) in moments.iter().enumerate() {
                assert_eq!(at(&store, "n1", *ts).await.as_ref(), Some(had), "at {ts}");
                let before_next = moments.get(i + 1).map_or(ts + 1000, |(next, _)| next - 1);
                assert_eq!(at(&store, "n1", before_next).await.as_ref(), Some(had), "at {before_next}");
            }
            // A replay never reads more than one checkpoint and its diffs.
            let (_, last) = moments.last().unwrap();
            let rows = store.journal_at("n1", i64::MAX).await.unwrap();
            assert!(rows.len() <= 3, "{} rows", rows.len());
            assert_eq!(&replay("n1", &rows).unwrap().0, last);
        });
    }
}

fn host_with(containers: &[(&str, &str, &str, &str)]) -> NodeState {
    NodeState {
        host: HostInfo {
            hostname: "h".into(),
            ..Default::default()
        },
        containers: containers
            .iter()
            .map(|(id, name, image, state)| {
                (
                    id.to_string(),
                    Container {
                        id: id.to_string(),
                        name: (*name).into(),
                        image: (*image).into(),
                        state: (*state).into(),
                        ..Default::default()
                    }
                    .into(),
                )
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn a_restarted_hub_continues_the_journal_with_diffs() {
    runtime().block_on(async {
        let dir = tempdir("restart");
        let store = Store::open(&dir).await.unwrap();
        let states = [
            host_with(&[("c1", "web", "nginx:1.25", "running")]),
            host_with(&[("c1", "web", "nginx:1.25", "exited")]),
            host_with(&[("c2", "web", "nginx:1.27", "running")]),
        ];
        let mut journal = Journal::new();
        for (i, s) in states[..2].iter().enumerate() {
            let (row, head) = journal.prepare("n1", 1000 + i as i64, s.clone()).unwrap();
            store.insert_journal(&[row]).await.unwrap();
            journal.commit([("n1".to_string(), head)]);
        }
        store.close().await;

        // "Restart": a new store handle and a journal that knows nothing.
        let store = Store::open(&dir).await.unwrap();
        let mut journal = Journal::new();
        assert!(!journal.knows("n1"));
        let head = head_of("n1", &store.journal_head("n1").await.unwrap()).unwrap();
        assert_eq!(head.state(), states[1]);
        assert_eq!((head.ts, head.since_checkpoint), (1001, 1));
        journal.loaded("n1", Some(head));
        // The same state again (a reconnect's full sync): nothing to write.
        assert!(journal.prepare("n1", 2000, states[1].clone()).is_none());
        // A change: a diff against what was journaled before the restart.
        let (row, head) = journal.prepare("n1", 2001, states[2].clone()).unwrap();
        assert!(!row.checkpoint);
        let Entry::Diff { changes } = decode(&row).unwrap() else {
            panic!("a diff")
        };
        assert_eq!(
            expand(&states[1], changes).unwrap(),
            diff(&states[1], &states[2])
        );
        assert_eq!(head.since_checkpoint, 2);
        store.insert_journal(&[row]).await.unwrap();
        journal.commit([("n1".to_string(), head)]);
        for (i, ts) in [1000, 1001, 2001].into_iter().enumerate() {
            assert_eq!(at(&store, "n1", ts).await.as_ref(), Some(&states[i]));
        }
        // A clock that went back still appends after the last row.
        let (row, _) = journal.prepare("n1", 5, states[0].clone()).unwrap();
        assert_eq!(row.ts, 2002);
    });
}

#[test]
fn retention_keeps_the_checkpoint_that_the_cut_needs() {
    runtime().block_on(async {
        let store = Store::open(&tempdir("retention")).await.unwrap();
        let mut journal = Journal::with_checkpoints_every(3);
        let mut states = Vec::new();
        for i in 0..8i64 {
            let image = format!("nginx:1.{i}");
            let s = host_with(&[("c1", "web", &image, "running")]);
            let (row, head) = journal.prepare("n1", i * 10, s.clone()).unwrap();
            store.insert_journal(&[row]).await.unwrap();
            journal.commit([("n1".to_string(), head)]);
            states.push(s);
        }
        // Checkpoints at 0, 30 and 60; cutting at 50 keeps 30 onwards.
        let gone = store.prune_journal(50).await.unwrap();
        assert_eq!(gone, 3);
        assert_eq!(at(&store, "n1", 20).await, None);
        for i in 3..8 {
            assert_eq!(
                at(&store, "n1", i * 10).await.as_ref(),
                Some(&states[i as usize])
            );
        }
    });
}

#[test]
fn changes_read_as_transitions_per_subject() {
    let before = host_with(&[
        ("c1", "web", "nginx:1.25", "running"),
        ("d1", "db", "pg", "running"),
    ]);
    let stopped = host_with(&[
        ("c1", "web", "nginx:1.25", "exited"),
        ("d1", "db", "pg", "running"),
    ]);
    let mut recreated = host_with(&[
        ("c2", "web", "nginx:1.27", "running"),
        ("d1", "db", "pg", "running"),
    ]);
    recreated.ports.insert(
        "tcp/0.0.0.0:8443".into(),
        Port {
            protocol: "tcp".into(),
            address: "0.0.0.0".into(),
            port: 8443,
            process: Some("nginx".into()),
            pid: Some(7),
        },
    );
    recreated.units.insert(
        "backup.service".into(),
        Unit {
            name: "backup.service".into(),
            active_state: "failed".into(),
            memory_bytes: Some(5),
            ..Default::default()
        }
        .into(),
    );
    let mut noisy = recreated.clone();
    noisy.units.get_mut("backup.service").unwrap().memory_bytes = Some(9);
    let steps = vec![
        (
            10,
            Entry::Diff {
                changes: compact(&before, diff(&before, &stopped)),
            },
        ),
        // A checkpoint on the way reads as what differs from the state before it.
        (
            20,
            Entry::Checkpoint {
                state: Box::new(recreated.clone()),
            },
        ),
        (
            30,
            Entry::Diff {
                changes: compact(&recreated, diff(&recreated, &noisy)),
            },
        ),
    ];
    let out = describe(before, steps);
    type Line = (String, String, Vec<(i64, String)>);
    let lines: Vec<Line> = out
        .into_iter()
        .map(|s| {
            (
                s.subject,
                s.summary,
                s.transitions
                    .into_iter()
                    .map(|t| (t.ts, t.change))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                "container web".to_string(),
                "recreated, image nginx:1.25 → nginx:1.27 (2 steps)".to_string(),
                vec![
                    (10, "state running → exited".to_string()),
                    (
                        20,
                        "recreated, image nginx:1.25 → nginx:1.27, state exited → running"
                            .to_string()
                    ),
                ]
            ),
            (
                "unit backup.service".to_string(),
                "appeared (failed)".to_string(),
                vec![(20, "appeared (failed)".to_string())]
            ),
            (
                "port tcp/0.0.0.0:8443".to_string(),
                "opened by nginx".to_string(),
                vec![(20, "opened by nginx".to_string())]
            ),
        ]
    );
}

#[test]
fn times_are_unix_ms_or_rfc3339() {
    assert_eq!(parse_time("1764731520000"), Ok(1_764_731_520_000));
    assert_eq!(parse_time("2025-12-03T03:12:00Z"), Ok(1_764_731_520_000));
    assert_eq!(
        parse_time("2025-12-03T04:12:00+01:00"),
        Ok(1_764_731_520_000)
    );
    for bad in [
        "",
        "yesterday",
        "2025-13-01T00:00:00Z",
        "99999999999999999999",
    ] {
        let e = parse_time(bad).unwrap_err();
        assert!(!e.is_empty(), "{bad}");
    }
}

#[test]
fn moments_as_people_write_them_are_utc_unless_an_offset_is_given() {
    let now = 1_764_731_520_000; // 2025-12-03T03:12:00Z
    assert_eq!(parse_moment("1764731520000", 0), Ok(now));
    assert_eq!(parse_moment("2025-12-03T03:12:00Z", 0), Ok(now));
    assert_eq!(parse_moment("2025-12-03T04:12:00+01:00", 0), Ok(now));
    assert_eq!(parse_moment("2025-12-03 03:12", 0), Ok(now));
    assert_eq!(parse_moment(" 2025-12-03T03:12 ", 0), Ok(now));
    assert_eq!(parse_moment("2025-12-03 03:12:30", 0), Ok(now + 30_000));
    assert_eq!(parse_moment("2025-12-03 03:12:30.5", 0), Ok(now + 30_500));
    assert_eq!(
        parse_moment("2025-12-03", 0),
        Ok(now - (3 * 60 + 12) * 60_000)
    );
    assert_eq!(parse_moment("2h", now), Ok(now - 7_200_000));
    assert_eq!(parse_moment("30m ago", now), Ok(now - 1_800_000));
    assert_eq!(parse_moment("1d 6h ago", now), Ok(now - 30 * 3_600_000));
    for bad in [
        "",
        "yesterday",
        "2025-13-01 00:00",
        "ago",
        "h2",
        "2025-12-03 25:00",
    ] {
        let e = parse_moment(bad, now).unwrap_err();
        assert!(!e.is_empty(), "{bad}");
    }
}

#[test]
fn a_changed_item_is_journaled_as_its_changed_fields() {
    let before = host_with(&[("c1", "web", "nginx:1.25", "running")]);
    let mut after = host_with(&[("c1", "web", "nginx:1.25", "exited")]);
    after.containers.get_mut("c1").unwrap().exit_code = Some(7);
    let steps = compact(&before, diff(&before, &after));
    let json = serde_json::to_value(&steps).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{"patch": "containers", "key": "c1", "set": {"state": "exited", "exit_code": 7}}])
    );
    assert_eq!(expand(&before, steps).unwrap(), diff(&before, &after));
    // Back to no exit code: the field is dropped again.
    let steps = compact(&after, diff(&after, &before));
    let changes = expand(&after, steps).unwrap();
    let mut s = after.clone();
    twinbay_proto::diff::apply(&mut s, &changes).unwrap();
    assert_eq!(s, before);
}

#[test]
fn a_damaged_or_sizeless_entry_is_an_error_not_a_panic() {
    let row = |body: Vec<u8>| Row {
        node_id: "n1".into(),
        ts: 1,
        checkpoint: true,
        body,
    };
    let state = host_with(&[("c1", "web", "nginx", "running")]);
    let good = encode(&Entry::Checkpoint {
        state: Box::new(state.clone()),
    });
    assert!(matches!(
        decode(&row(good.clone())),
        Ok(Entry::Checkpoint { .. })
    ));
    // Garbage, a cut frame, and a real frame that does not say its size
    // (a streaming encoder's) each name the entry.
    let mut cut = good.clone();
    cut.truncate(good.len() / 2);
    let mut sizeless = Vec::new();
    {
        let mut enc = zstd::stream::write::Encoder::new(&mut sizeless, 1).unwrap();
        std::io::Write::write_all(&mut enc, &serde_json::to_vec(&state).unwrap()).unwrap();
        enc.finish().unwrap();
    }
    for (body, why) in [
        (b"not zstd at all".to_vec(), "not a zstd frame"),
        (cut, ""),
        (sizeless, "does not say its size"),
    ] {
        let err = decode(&row(body)).unwrap_err().to_string();
        assert!(err.starts_with("journal entry of node n1 at 1:"), "{err}");
        assert!(err.contains(why), "{err}");
    }
    // Many entries on one thread reuse its contexts and stay right.
    for i in 0..100 {
        let mut s = state.clone();
        s.host.hostname = format!("host-{i}");
        let entry = Entry::Checkpoint {
            state: Box::new(s.clone()),
        };
        let Ok(Entry::Checkpoint { state: back }) = decode(&row(encode(&entry))) else {
            panic!("entry {i} reads back");
        };
        assert_eq!(*back, s);
    }
}
