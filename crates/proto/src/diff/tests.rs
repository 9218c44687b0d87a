use proptest::prelude::*;

use super::*;
use crate::Str;
use crate::model::{FileState, ProxyProvider, RouteTarget};

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9]{0,6}"
}

fn container() -> impl Strategy<Value = Container> {
    (
        text(),
        text(),
        text(),
        prop::option::of(-2i64..200),
        0u32..5,
    )
        .prop_map(|(id, name, state, exit_code, restart_count)| Container {
            id,
            name: name.into(),
            state: state.into(),
            exit_code,
            restart_count,
            ..Default::default()
        })
}

fn unit() -> impl Strategy<Value = Unit> {
    (text(), text(), text()).prop_map(|(name, active_state, sub_state)| Unit {
        name: name.into(),
        active_state: active_state.into(),
        sub_state: sub_state.into(),
        ..Default::default()
    })
}

fn port() -> impl Strategy<Value = Port> {
    (
        prop::sample::select(vec!["tcp", "udp", "tcp6"]),
        1u16..20,
        prop::option::of(text()),
    )
        .prop_map(|(protocol, port, process)| Port {
            protocol: protocol.into(),
            address: "0.0.0.0".into(),
            port,
            process: process.map(Str::from),
            pid: None,
        })
}

fn source() -> impl Strategy<Value = SourceStatus> {
    (text(), any::<bool>()).prop_map(|(name, available)| SourceStatus {
        name: name.into(),
        available,
        reason: (!available).then(|| "not here".into()),
    })
}

fn interface() -> impl Strategy<Value = Interface> {
    (text(), any::<bool>(), prop::option::of(0u32..100_000)).prop_map(|(name, up, speed_mbps)| {
        Interface {
            name,
            up,
            speed_mbps,
            ..Default::default()
        }
    })
}

fn mount() -> impl Strategy<Value = Mount> {
    (text(), text(), prop::option::of(text())).prop_map(|(path, fs_type, error)| Mount {
        path,
        fs_type: fs_type.into(),
        error,
        ..Default::default()
    })
}

fn process() -> impl Strategy<Value = Process> {
    (0u32..50, text(), 0.0f32..400.0, any::<u64>()).prop_map(|(pid, name, cpu_pct, rss)| Process {
        pid,
        name: name.into(),
        cpu_pct,
        rss,
        uid: None,
    })
}

fn disk_health() -> impl Strategy<Value = DiskHealth> {
    (
        text(),
        prop::option::of(any::<bool>()),
        prop::option::of(0u64..100),
    )
        .prop_map(|(device, passed, wear_pct)| DiskHealth {
            device,
            passed,
            wear_pct,
            ..Default::default()
        })
}

fn watched_file() -> impl Strategy<Value = WatchedFile> {
    (text(), prop::option::of("[0-9a-f]{64}"), any::<bool>()).prop_map(|(path, sha256, keyed)| {
        WatchedFile {
            path,
            state: if sha256.is_some() {
                FileState::Present
            } else {
                FileState::Missing
            },
            sha256,
            keyed,
            ..Default::default()
        }
    })
}

fn route() -> impl Strategy<Value = Route> {
    (0..3u8, text(), text(), text(), any::<bool>(), 0..4u8).prop_map(
        |(provider, instance, host, upstream, tls, target)| Route {
            provider: [
                ProxyProvider::Nginx,
                ProxyProvider::Caddy,
                ProxyProvider::Traefik,
            ][provider as usize],
            instance,
            host,
            path: "/".into(),
            target: match target {
                0 => RouteTarget::Container {
                    id: upstream.clone(),
                    name: upstream.clone(),
                },
                1 => RouteTarget::Port {
                    key: upstream.clone(),
                },
                2 => RouteTarget::External,
                _ => RouteTarget::Unknown,
            },
            upstream,
            tls,
        },
    )
}

fn keyed<T: Keyed + std::fmt::Debug>(
    item: impl Strategy<Value = T>,
) -> impl Strategy<Value = BTreeMap<String, T>> {
    prop::collection::vec(item, 0..6)
        .prop_map(|items| items.into_iter().map(|i| (i.key(), i)).collect())
}

fn state() -> impl Strategy<Value = NodeState> {
    let services = (
        keyed(container().prop_map(Box::new)),
        keyed(unit().prop_map(Box::new)),
        keyed(port()),
        keyed(source()),
    );
    let host = (
        keyed(interface()),
        keyed(mount()),
        keyed(process()),
        keyed(disk_health()),
    );
    let twin = (keyed(watched_file()), keyed(route()));
    (text(), text(), services, host, twin).prop_map(
        |(
            hostname,
            kernel,
            (containers, units, ports, sources),
            (interfaces, mounts, processes, disk_health),
            (files, routes),
        )| NodeState {
            host: HostInfo {
                hostname,
                kernel: kernel.into(),
                ..Default::default()
            },
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
        },
    )
}

proptest! {
    #[test]
    fn applying_the_diff_of_a_and_b_to_a_gives_b(a in state(), b in state()) {
        let changes = diff(&a, &b);
        let mut applied = a.clone();
        apply(&mut applied, &changes).unwrap();
        prop_assert_eq!(&applied, &b);
    }

    #[test]
    fn diffs_are_idempotent(a in state(), b in state()) {
        let changes = diff(&a, &b);
        let mut twice = a.clone();
        apply(&mut twice, &changes).unwrap();
        apply(&mut twice, &changes).unwrap();
        prop_assert_eq!(&twice, &b);
    }

    #[test]
    fn diffs_survive_the_wire(a in state(), b in state()) {
        let changes = diff(&a, &b);
        let json = serde_json::to_string(&changes).unwrap();
        let back: Vec<Change> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, changes);
    }

    #[test]
    fn a_state_has_no_diff_with_itself(a in state()) {
        prop_assert!(diff(&a, &a).is_empty());
    }
}

#[test]
fn upsert_wire_format_names_collection_and_key() {
    let change = Change::upsert(Item::Units(
        Unit {
            name: "nginx.service".into(),
            active_state: "failed".into(),
            ..Default::default()
        }
        .into(),
    ));
    let json: serde_json::Value = serde_json::to_value(&change).unwrap();
    assert_eq!(json["op"], "upsert");
    assert_eq!(json["collection"], "units");
    assert_eq!(json["key"], "nginx.service");
    assert_eq!(json["value"]["active_state"], "failed");
}

#[test]
fn an_upsert_whose_key_lies_is_refused_and_changes_nothing() {
    let mut state = NodeState::default();
    let before = state.clone();
    let bad = Change::Upsert {
        key: "not-the-id".into(),
        item: Item::Containers(Box::new(Container {
            id: "abc".into(),
            ..Default::default()
        })),
    };
    let good = Change::Host {
        value: HostInfo {
            hostname: "changed".into(),
            ..Default::default()
        },
    };
    let err = apply(&mut state, &[good, bad]).unwrap_err();
    assert!(matches!(err, StateError::KeyMismatch { .. }), "{err}");
    assert_eq!(state, before);
}

#[test]
fn removing_a_missing_key_is_a_no_op() {
    let mut state = NodeState::default();
    apply(
        &mut state,
        &[Change::Remove {
            collection: Collection::Ports,
            key: "tcp/0.0.0.0:22".into(),
        }],
    )
    .unwrap();
    assert_eq!(state, NodeState::default());
}

#[test]
fn a_diff_with_a_bad_number_is_refused_and_changes_nothing() {
    let mut state = NodeState::default();
    let before = state.clone();
    let good = Change::upsert(Item::Ports(Port {
        protocol: "tcp".into(),
        address: "0.0.0.0".into(),
        port: 22,
        ..Default::default()
    }));
    let bad = Change::upsert(Item::Processes(Process {
        pid: 7,
        name: "x".into(),
        cpu_pct: f32::NAN,
        ..Default::default()
    }));
    let err = apply(&mut state, &[good, bad]).unwrap_err();
    assert!(matches!(err, StateError::BadNumber(_)), "{err}");
    assert_eq!(state, before);
}

#[test]
fn a_diff_that_overfills_a_collection_is_refused_and_changes_nothing() {
    let mut state = NodeState::default();
    for pid in 0..MAX_COLLECTION_LEN as u32 - 1 {
        let p = Process {
            pid,
            ..Default::default()
        };
        state.processes.insert(p.key(), p);
    }
    let before = state.clone();
    let new = |pid| {
        Change::upsert(Item::Processes(Process {
            pid,
            ..Default::default()
        }))
    };
    // Replacing an existing item and adding one more fits...
    let mut ok = state.clone();
    apply(&mut ok, &[new(0), new(u32::MAX)]).unwrap();
    assert_eq!(ok.processes.len(), MAX_COLLECTION_LEN);
    // ...adding two does not, and nothing changes.
    let err = apply(&mut state, &[new(u32::MAX), new(u32::MAX - 1)]).unwrap_err();
    assert!(matches!(err, StateError::TooMany { .. }), "{err}");
    assert_eq!(state, before);
}

/// A change's JSON object with its fields in the order `order` picks.
fn permuted(change: &Change, order: &[usize]) -> String {
    let serde_json::Value::Object(fields) = serde_json::to_value(change).unwrap() else {
        panic!("a change is an object");
    };
    let fields: Vec<_> = fields.into_iter().collect();
    let mut idx: Vec<usize> = (0..fields.len()).collect();
    for (i, o) in order.iter().enumerate().take(idx.len()) {
        let j = o % idx.len();
        idx.swap(i, j);
    }
    let body: Vec<String> = idx
        .iter()
        .map(|&i| {
            format!(
                "{}:{}",
                serde_json::to_string(&fields[i].0).unwrap(),
                fields[i].1
            )
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

fn reads_alike(json: &str) {
    let by_hand = serde_json::from_str::<Change>(json);
    let derived = serde_json::from_str::<super::de::Derived>(json).map(Change::from);
    match (&by_hand, &derived) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{json}"),
        (Err(_), Err(_)) => {}
        _ => panic!("{json}: by hand {by_hand:?}, derived {derived:?}"),
    }
}

proptest! {
    #[test]
    fn changes_read_by_hand_as_derived_in_any_field_order(
        a in state(),
        b in state(),
        order in proptest::collection::vec(0usize..4, 4),
    ) {
        for change in diff(&a, &b) {
            let json = permuted(&change, &order);
            reads_alike(&json);
            prop_assert_eq!(serde_json::from_str::<Change>(&json).unwrap(), change);
        }
    }

    #[test]
    fn a_changes_fields_cut_or_swapped_are_refused_alike(
        a in state(),
        b in state(),
        cut in 0usize..4,
        junk in "[a-z]{1,8}",
    ) {
        for change in diff(&a, &b).into_iter().take(8) {
            let serde_json::Value::Object(mut fields) = serde_json::to_value(&change).unwrap() else {
                unreachable!()
            };
            // A field missing, an unknown one added, a wrong op or collection.
            let name = fields.keys().nth(cut % fields.len()).unwrap().clone();
            let mut missing = fields.clone();
            missing.remove(&name);
            reads_alike(&serde_json::Value::Object(missing).to_string());
            fields.insert(junk.clone(), serde_json::json!(1));
            reads_alike(&serde_json::Value::Object(fields.clone()).to_string());
            let mut bad = fields.clone();
            bad.insert("op".into(), serde_json::json!(junk));
            reads_alike(&serde_json::Value::Object(bad).to_string());
            if fields.contains_key("collection") {
                let mut other = fields.clone();
                other.insert("collection".into(), serde_json::json!("units"));
                reads_alike(&serde_json::Value::Object(other).to_string());
            }
        }
    }
}

#[test]
fn odd_changes_are_refused_alike() {
    for json in [
        r#"{}"#,
        r#"[]"#,
        r#"{"op":"host"}"#,
        r#"{"op":"upsert","key":"k","collection":"containers"}"#,
        r#"{"op":"upsert","key":"k","value":{},"collection":"nope"}"#,
        r#"{"op":"remove","key":"k"}"#,
        r#"{"op":"remove","key":"k","collection":"ports","value":[1,2]}"#,
        r#"{"op":"remove","op":"remove","key":"k","collection":"ports"}"#,
        r#"{"op":7}"#,
        r#"{"value":{"hostname":"h"},"op":"host"}"#,
    ] {
        reads_alike(json);
    }
}
