//! Whole-fleet snapshots (the summaries, a collection of every host) built
//! once and sent to every client that may have them, compressed once.
//! At 10,000 hosts the containers of the fleet are tens of megabytes of
//! JSON: twenty clients that open the Containers screen, or fall behind at
//! the same moment, each had theirs written and compressed anew (bench/
//! hub-scale: deflate and JSON were 60 % of a busy hub's CPU).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes};
use twinbay_proto::diff::Collection;

use super::deflate::{MIN_BYTES, zlib};

/// A message for many clients (a snapshot, a summaries batch): its text,
/// and its compressed form made the first time a client asks for it.
#[derive(Debug)]
pub struct Snapshot {
    text: Utf8Bytes,
    zipped: OnceLock<Bytes>,
}

impl Snapshot {
    pub fn new(text: Utf8Bytes) -> Snapshot {
        Snapshot {
            text,
            zipped: OnceLock::new(),
        }
    }

    pub fn text(&self) -> &Utf8Bytes {
        &self.text
    }

    /// The text compressed (once, for every client that asks).
    pub fn zipped(&self) -> Bytes {
        self.zipped.get_or_init(|| zlib(self.text.as_str())).clone()
    }

    /// The frame for a client, as [`super::deflate::frame`] makes it.
    pub fn frame(&self, compress: bool) -> Message {
        if compress && self.text.len() >= MIN_BYTES {
            Message::Binary(self.zipped())
        } else {
            Message::Text(self.text.clone())
        }
    }
}

/// The latest snapshot of each collection of every host, with the moment
/// its build began.
#[derive(Default)]
pub struct Collections {
    latest: Mutex<Vec<(Collection, Instant, Arc<Snapshot>)>>,
}

impl Collections {
    /// A snapshot of collection `c` of every host that began at or after
    /// `since` (when the client subscribed to the twin's events, so that
    /// every change it was not sent is in it): another client's, if one is
    /// that recent, else a new one from `build`.
    pub fn get(
        &self,
        c: Collection,
        since: Instant,
        build: impl FnOnce() -> Utf8Bytes,
    ) -> Arc<Snapshot> {
        if let Some((_, at, s)) = self.lock().iter().find(|x| x.0 == c)
            && *at >= since
        {
            return s.clone();
        }
        // Built without the lock: a client that asks meanwhile builds its
        // own rather than waiting on a worker thread.
        let at = Instant::now();
        let s = Arc::new(Snapshot::new(build()));
        let mut latest = self.lock();
        match latest.iter_mut().find(|x| x.0 == c) {
            Some(x) if x.1 < at => *x = (c, at, s.clone()),
            Some(_) => {}
            None => latest.push((c, at, s.clone())),
        }
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Collection, Instant, Arc<Snapshot>)>> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_snapshot_is_shared_only_with_clients_that_subscribed_before_it_began() {
        let shared = Collections::default();
        let builds = std::cell::Cell::new(0);
        let build = || {
            builds.set(builds.get() + 1);
            Utf8Bytes::from(format!("{{\"n\":{}}}", builds.get()))
        };
        let early = Instant::now();
        let first = shared.get(Collection::Containers, early, build);
        // A client that subscribed before it began: the same one.
        let again = shared.get(Collection::Containers, early, build);
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(builds.get(), 1);
        // Another collection is its own.
        shared.get(Collection::Units, early, build);
        assert_eq!(builds.get(), 2);
        // A client that subscribed after it began could miss a change: a new one.
        std::thread::sleep(Duration::from_millis(2));
        let late = shared.get(Collection::Containers, Instant::now(), build);
        assert!(!Arc::ptr_eq(&first, &late));
        assert_eq!(late.text().as_str(), r#"{"n":3}"#);
    }

    #[test]
    fn large_snapshots_go_compressed_once() {
        let text = format!("[{}]", vec!["\"x\""; 4096].join(","));
        let s = Snapshot::new(text.clone().into());
        let (Message::Binary(a), Message::Binary(b)) = (s.frame(true), s.frame(true)) else {
            panic!("a large snapshot goes compressed");
        };
        assert_eq!(a.as_ptr(), b.as_ptr(), "compressed once, shared");
        assert_eq!(
            miniz_oxide::inflate::decompress_to_vec_zlib(&a).unwrap(),
            text.as_bytes()
        );
        assert!(matches!(s.frame(false), Message::Text(_)));
    }
}
