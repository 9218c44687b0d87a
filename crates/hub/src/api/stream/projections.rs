//! The part of a twin's `diff` that a client watching collections is sent,
//! worked out once per diff and set of collections, not once per client:
//! twenty UIs watching the fleet's containers would otherwise each parse and
//! write again every diff of 10,000 hosts.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use axum::extract::ws::Utf8Bytes;
use twinbay_proto::diff::Collection;

use super::watch::diff_for;
use crate::twin::view::FLEET_COLLECTIONS;

/// Diffs remembered: a few seconds of a busy fleet, so clients reading the
/// same event moments apart find it.
const KEEP: usize = 8_192;

/// A diff by identity: where its text lives and how long it is, with the
/// collections watched as a bit set. The entry holds a clone of the text,
/// so no other text can take that address while the entry is kept.
type Key = (usize, usize, u8);

#[derive(Default)]
pub struct Projections {
    memo: Mutex<Memo>,
}

#[derive(Default)]
struct Memo {
    parts: HashMap<Key, (Utf8Bytes, Option<Utf8Bytes>)>,
    order: VecDeque<Key>,
}

impl Projections {
    /// [`diff_for`] of `diff` and `keep`, from memory when another client
    /// already asked for it.
    pub fn diff_for(&self, diff: &Utf8Bytes, keep: &[Collection]) -> Option<Utf8Bytes> {
        let key = (diff.as_str().as_ptr() as usize, diff.len(), bits(keep));
        if let Some((_, part)) = self.lock().parts.get(&key) {
            return part.clone();
        }
        let part = diff_for(diff.as_str(), keep);
        let mut memo = self.lock();
        if memo
            .parts
            .insert(key, (diff.clone(), part.clone()))
            .is_none()
        {
            memo.order.push_back(key);
        }
        while memo.order.len() > KEEP {
            if let Some(old) = memo.order.pop_front() {
                memo.parts.remove(&old);
            }
        }
        part
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memo> {
        // A panic elsewhere cannot leave the memo wrong, only incomplete.
        self.memo.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn bits(keep: &[Collection]) -> u8 {
    FLEET_COLLECTIONS
        .iter()
        .enumerate()
        .filter(|(_, c)| keep.contains(c))
        .fold(0, |b, (i, _)| b | 1 << i)
}

#[cfg(test)]
mod tests {
    use twinbay_proto::diff::{Change, Item};
    use twinbay_proto::model::{Container, Unit};

    use super::*;
    use crate::twin::view::diff_event;

    fn diff(seq: u64) -> Utf8Bytes {
        let container = Container {
            id: format!("c{seq}"),
            name: "web".into(),
            ..Default::default()
        };
        let unit = Unit {
            name: "a.service".into(),
            ..Default::default()
        };
        diff_event(
            "n1",
            seq,
            &[
                Change::upsert(Item::Containers(container.into())),
                Change::upsert(Item::Units(unit.into())),
            ],
        )
    }

    #[test]
    fn every_client_gets_what_its_own_parse_would_give() {
        let p = Projections::default();
        let d = diff(1);
        for keep in [
            vec![Collection::Containers],
            vec![Collection::Units, Collection::Containers],
            vec![Collection::Containers, Collection::Units],
            vec![Collection::Ports],
        ] {
            for _ in 0..2 {
                assert_eq!(
                    p.diff_for(&d, &keep),
                    diff_for(d.as_str(), &keep),
                    "{keep:?}"
                );
            }
        }
        // Another diff with the same length is told apart.
        let other = diff(2);
        assert_eq!(other.len(), d.len());
        let part = p.diff_for(&other, &[Collection::Containers]).unwrap();
        assert!(part.as_str().contains(r#""c2""#), "{part}");
    }

    #[test]
    fn memory_is_bounded() {
        let p = Projections::default();
        for seq in 0..(KEEP as u64 + 100) {
            p.diff_for(&diff(seq), &[Collection::Containers]);
        }
        let memo = p.lock();
        assert_eq!(memo.parts.len(), KEEP);
        assert_eq!(memo.order.len(), KEEP);
    }
}
