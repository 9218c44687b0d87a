//! Where a node's twin keeps its bytes: an estimate of the heap each part of
//! a [`NodeState`] holds, by collection (pure; for `GET /api/v1/hub`'s
//! `memory` and the hub-scale bench).
//!
//! It counts what glibc would hand out for each allocation (its 8-byte
//! header, rounded up to 16, at least 32), a `BTreeMap`'s nodes as std lays
//! them out (up to 11 entries a leaf, about half full once grown) and a
//! shared [`Str`] as its share: the text's bytes divided among its holders,
//! so 10,000 hosts naming one image count it about once in total.

use std::collections::BTreeMap;
use std::mem::size_of;

use twinbay_proto::Str;
use twinbay_proto::model::{Labels, NodeState, Sample};

/// Heap bytes by part of a node's twin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sizes {
    /// `(part, bytes)`, in [`PARTS`] order.
    pub parts: Vec<(&'static str, u64)>,
}

/// The parts [`Sizes`] names.
pub const PARTS: &[&str] = &[
    "host",
    "containers",
    "units",
    "ports",
    "sources",
    "interfaces",
    "mounts",
    "processes",
    "disk_health",
    "files",
    "routes",
    "resources",
];

impl Sizes {
    pub fn total(&self) -> u64 {
        self.parts.iter().map(|(_, b)| b).sum()
    }

    /// Adds `other` part by part.
    pub fn add(&mut self, other: &Sizes) {
        if self.parts.is_empty() {
            self.parts = PARTS.iter().map(|p| (*p, 0)).collect();
        }
        for ((_, mine), (_, theirs)) in self.parts.iter_mut().zip(&other.parts) {
            *mine += theirs;
        }
    }
}

/// What malloc hands out for a request of `n` bytes (0 for none).
pub fn alloc(n: usize) -> usize {
    match n {
        0 => 0,
        n => (n + 8).div_ceil(16).max(2) * 16,
    }
}

fn string(s: &str) -> usize {
    alloc(s.len())
}

fn opt_string(s: &Option<String>) -> usize {
    s.as_deref().map_or(0, string)
}

/// A shared string's share of its text.
fn shared(s: &Str) -> usize {
    alloc(s.heap_bytes()) / s.holders().max(1)
}

fn opt_shared(s: &Option<Str>) -> usize {
    s.as_ref().map_or(0, shared)
}

/// A `BTreeMap`'s nodes (entries inline), without what the entries own.
pub fn btree_nodes<K, V>(len: usize) -> usize {
    const CAPACITY: usize = 11;
    let leaf = alloc(8 + 2 + 2 + CAPACITY * (size_of::<K>() + size_of::<V>()));
    let internal =
        alloc(8 + 2 + 2 + CAPACITY * (size_of::<K>() + size_of::<V>()) + (CAPACITY + 1) * 8);
    match len {
        0 => 0,
        1..=CAPACITY => leaf,
        n => {
            // Grown by inserts in key order: about half full.
            let leaves = n.div_ceil(CAPACITY / 2 + 1);
            let internals = leaves.div_ceil(CAPACITY / 2 + 1);
            leaves * leaf + internals * internal
        }
    }
}

fn keyed<V>(map: &BTreeMap<String, V>, item: impl Fn(&V) -> usize) -> u64 {
    let entries: usize = map.iter().map(|(k, v)| string(k) + item(v)).sum();
    (btree_nodes::<String, V>(map.len()) + entries) as u64
}

/// A sorted `Vec` of exactly its entries (`model::read_labels`).
fn labels(map: &Labels) -> usize {
    alloc(map.len() * size_of::<(Str, Str)>())
        + map
            .iter()
            .map(|(k, v)| shared(k) + shared(v))
            .sum::<usize>()
}

/// The estimated heap bytes of `state` and `resources`, by part.
pub fn node(state: &NodeState, resources: Option<&Sample>) -> Sizes {
    let h = &state.host;
    let host = string(&h.hostname)
        + shared(&h.os)
        + shared(&h.kernel)
        + shared(&h.arch)
        + shared(&h.agent_version)
        + btree_nodes::<String, String>(h.labels.len())
        + h.labels
            .iter()
            .map(|(k, v)| string(k) + string(v))
            .sum::<usize>();
    let containers = keyed(&state.containers, |c| {
        alloc(size_of::<twinbay_proto::model::Container>())
            + string(&c.id)
            + shared(&c.name)
            + shared(&c.image)
            + shared(&c.state)
            + opt_shared(&c.health)
            + alloc(c.ports.capacity() * size_of::<String>())
            + c.ports.iter().map(|p| string(p)).sum::<usize>()
            + labels(&c.labels)
            + opt_shared(&c.compose_project)
            + opt_shared(&c.compose_service)
            + opt_string(&c.created)
            + opt_string(&c.started_at)
            + opt_shared(&c.image_id)
    });
    let units = keyed(&state.units, |u| {
        alloc(size_of::<twinbay_proto::model::Unit>())
            + shared(&u.name)
            + shared(&u.description)
            + shared(&u.load_state)
            + shared(&u.active_state)
            + shared(&u.sub_state)
            + opt_shared(&u.fragment_path)
            + alloc(u.drop_in_paths.capacity() * size_of::<String>())
            + u.drop_in_paths.iter().map(|p| string(p)).sum::<usize>()
    });
    let ports = keyed(&state.ports, |p| {
        shared(&p.protocol) + shared(&p.address) + opt_shared(&p.process)
    });
    let sources = keyed(&state.sources, |s| shared(&s.name) + opt_shared(&s.reason));
    let interfaces = keyed(&state.interfaces, |i| {
        string(&i.name) + opt_string(&i.mac) + opt_shared(&i.duplex)
    });
    let mounts = keyed(&state.mounts, |m| {
        string(&m.path) + shared(&m.device) + shared(&m.fs_type) + opt_string(&m.error)
    });
    let processes = keyed(&state.processes, |p| shared(&p.name));
    let disk_health = keyed(&state.disk_health, |d| {
        string(&d.device) + string(&d.model) + string(&d.serial) + opt_string(&d.error)
    });
    let files = keyed(&state.files, |f| {
        string(&f.path) + opt_string(&f.sha256) + string(&f.origin) + opt_string(&f.error)
    });
    let routes = keyed(&state.routes, |r| {
        use twinbay_proto::model::RouteTarget;
        let target = match &r.target {
            RouteTarget::Container { id, name } => string(id) + string(name),
            RouteTarget::Port { key } => string(key),
            RouteTarget::External | RouteTarget::Unknown => 0,
        };
        string(&r.instance) + string(&r.host) + string(&r.path) + string(&r.upstream) + target
    });
    let resources = resources.map_or(0, sample) as u64;
    let parts = [
        host as u64,
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
        resources,
    ];
    Sizes {
        parts: PARTS.iter().copied().zip(parts).collect(),
    }
}

fn sample(s: &Sample) -> usize {
    use twinbay_proto::model::{
        ContainerSample, DiskSample, GpuSample, LatencySample, NetSample, TempSample,
    };
    fn vec<T>(v: &[T], cap: usize, each: impl Fn(&T) -> usize) -> usize {
        alloc(cap * size_of::<T>()) + v.iter().map(each).sum::<usize>()
    }
    alloc(size_of::<Sample>())
        + vec(&s.cores, s.cores.capacity(), |_| 0)
        + vec::<DiskSample>(&s.disks, s.disks.capacity(), |d| string(&d.mount))
        + vec::<NetSample>(&s.nets, s.nets.capacity(), |n| string(&n.iface))
        + vec::<TempSample>(&s.temps, s.temps.capacity(), |t| string(&t.sensor))
        + vec::<GpuSample>(&s.gpus, s.gpus.capacity(), |g| string(&g.name))
        + vec::<LatencySample>(&s.latency, s.latency.capacity(), |l| string(&l.target))
        + vec::<ContainerSample>(&s.containers, s.containers.capacity(), |c| string(&c.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinbay_proto::model::{Container, Keyed, Unit};

    fn part(s: &Sizes, name: &str) -> u64 {
        s.parts.iter().find(|(p, _)| *p == name).unwrap().1
    }

    #[test]
    fn malloc_sizes_round_up_with_a_header() {
        assert_eq!(alloc(0), 0);
        assert_eq!(alloc(1), 32);
        assert_eq!(alloc(24), 32);
        assert_eq!(alloc(25), 48);
        assert_eq!(alloc(100), 112);
    }

    #[test]
    fn btree_nodes_grow_with_entries() {
        assert_eq!(btree_nodes::<String, u64>(0), 0);
        let one = btree_nodes::<String, u64>(1);
        assert_eq!(one, btree_nodes::<String, u64>(11));
        assert!(btree_nodes::<String, u64>(12) > one);
        assert!(btree_nodes::<String, u64>(1000) > 100 * one);
    }

    #[test]
    fn an_empty_state_holds_nothing() {
        let s = node(&NodeState::default(), None);
        assert_eq!(s.parts.len(), PARTS.len());
        assert_eq!(s.total(), 0);
    }

    #[test]
    fn each_collection_is_counted_in_its_part() {
        let mut state = NodeState::default();
        let c = Container {
            id: "a".repeat(64),
            name: "web".into(),
            image: "nginx".into(),
            ..Container::default()
        };
        state.containers.insert(c.key(), c.into());
        let s = node(&state, None);
        let containers = part(&s, "containers");
        // The leaf, the boxed container, the key and the id (64 bytes each).
        assert!(
            containers
                >= (2 * 80
                    + alloc(size_of::<Container>())
                    + btree_nodes::<String, Box<Container>>(1)) as u64
        );
        assert_eq!(part(&s, "units"), 0);
        assert_eq!(s.total(), containers);

        let u = Unit {
            name: "sshd.service".into(),
            ..Unit::default()
        };
        state.units.insert(u.key(), u.into());
        let with_unit = node(&state, None);
        assert!(part(&with_unit, "units") > 0);
        assert_eq!(part(&with_unit, "containers"), containers);
    }

    #[test]
    fn shared_text_counts_once_among_its_holders() {
        let text = "docker.io/library/a-rather-long-image-name:1.2.3";
        let one = Str::from(text);
        let alone = shared(&one);
        assert_eq!(alone, alloc(one.heap_bytes()));
        let many: Vec<Str> = (0..9).map(|_| one.clone()).collect();
        assert_eq!(shared(&one), alone / 10);
        drop(many);
        assert_eq!(shared(&one), alone);
    }

    #[test]
    fn add_sums_part_by_part() {
        let mut total = Sizes::default();
        let mut state = NodeState::default();
        state.host.hostname = "h".repeat(40);
        let s = node(&state, None);
        total.add(&s);
        total.add(&s);
        assert_eq!(total.total(), 2 * s.total());
        assert_eq!(part(&total, "host"), 2 * part(&s, "host"));
    }
}
