//! [`Str`]: the twin's text that repeats from host to host (image names,
//! unit names and descriptions, states, label keys), shared instead of
//! copied.
//!
//! A `Str` is an immutable `Arc<str>`: 16 bytes inline instead of a
//! `String`'s 24, and on the wire exactly a JSON string. A process that holds
//! many nodes' twins (the hub) calls [`intern::enable`]; from then on every
//! `Str` that is deserialized is looked up in a process-wide pool and shares
//! the one copy of its text, so 10,000 hosts running `nginx:1.27` hold that
//! name once. [`intern::prune`] drops the pool's strings that nothing else
//! holds any more. The agent never enables it: its `Str`s are plain
//! `Arc<str>`s.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable, cheaply cloned string; see the module docs.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Str(Arc<str>);

impl Str {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Heap bytes of this string if it were the only holder of its text
    /// (its `Arc`'s counts and the text), 0 for the empty string.
    pub fn heap_bytes(&self) -> usize {
        match self.0.len() {
            0 => 0,
            n => n + 2 * std::mem::size_of::<usize>(),
        }
    }

    /// How many `Str`s (the pool's own included) share this text.
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// Whether `self` and `other` share one copy of their text.
    pub fn shares(&self, other: &Str) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Default for Str {
    fn default() -> Str {
        Str::from("")
    }
}

impl Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for Str {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&*self.0)
    }
}

impl AsRef<std::ffi::OsStr> for Str {
    fn as_ref(&self) -> &std::ffi::OsStr {
        std::ffi::OsStr::new(&*self.0)
    }
}

impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Str {
        Str(Arc::from(s))
    }
}

impl From<String> for Str {
    fn from(s: String) -> Str {
        Str(Arc::from(s))
    }
}

impl From<&String> for Str {
    fn from(s: &String) -> Str {
        Str(Arc::from(s.as_str()))
    }
}

impl From<Str> for String {
    fn from(s: Str) -> String {
        s.0.to_string()
    }
}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Str {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Str> for str {
    fn eq(&self, other: &Str) -> bool {
        self == &*other.0
    }
}

impl PartialEq<Str> for &str {
    fn eq(&self, other: &Str) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<Str> for String {
    fn eq(&self, other: &Str) -> bool {
        **self == *other.0
    }
}

impl Serialize for Str {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Str, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Str, E> {
                Ok(intern::get(v))
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Str {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <String as utoipa::PartialSchema>::schema()
    }
}

/// The process-wide pool of shared text.
pub mod intern {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, LazyLock, Mutex};

    use super::Str;

    /// Locks are per shard, so the runtime's workers rarely wait on each other.
    const SHARDS: usize = 16;
    /// Longer text is rarely shared (command lines, errors): kept as is.
    pub const MAX_LEN: usize = 256;

    static ON: AtomicBool = AtomicBool::new(false);

    struct Pool {
        hasher: RandomState,
        shards: [Mutex<HashSet<Arc<str>>>; SHARDS],
    }

    static POOL: LazyLock<Pool> = LazyLock::new(|| Pool {
        hasher: RandomState::new(),
        shards: std::array::from_fn(|_| Mutex::new(HashSet::new())),
    });

    /// From now on, deserialized [`Str`]s share their text through the pool.
    pub fn enable() {
        ON.store(true, Ordering::Relaxed);
    }

    /// Whether [`enable`] was called.
    pub fn enabled() -> bool {
        ON.load(Ordering::Relaxed)
    }

    /// `text` as a [`Str`]: the pool's copy when the pool is enabled.
    pub fn get(text: &str) -> Str {
        if !enabled() || text.len() > MAX_LEN {
            return Str::from(text);
        }
        shared(text)
    }

    /// `text` from the pool, whether or not it is enabled.
    pub fn shared(text: &str) -> Str {
        let pool = &*POOL;
        let shard = (pool.hasher.hash_one(text) as usize) % SHARDS;
        let mut set = pool.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = set.get(text) {
            return Str(found.clone());
        }
        let new: Arc<str> = Arc::from(text);
        set.insert(new.clone());
        Str(new)
    }

    /// Drops the pooled text that only the pool still holds; returns how
    /// many strings went.
    pub fn prune() -> usize {
        let mut dropped = 0;
        for shard in &POOL.shards {
            let mut set = shard.lock().unwrap_or_else(|e| e.into_inner());
            let before = set.len();
            set.retain(|s| Arc::strong_count(s) > 1);
            if set.len() < before / 2 {
                set.shrink_to_fit();
            }
            dropped += before - set.len();
        }
        dropped
    }

    /// The pool's size: strings, and heap bytes (text, counts and table).
    pub fn stats() -> (usize, usize) {
        let (mut count, mut bytes) = (0, 0);
        for shard in &POOL.shards {
            let set = shard.lock().unwrap_or_else(|e| e.into_inner());
            count += set.len();
            bytes += set.capacity() * (std::mem::size_of::<Arc<str>>() + 1);
            bytes += set
                .iter()
                .map(|s| s.len() + 2 * std::mem::size_of::<usize>())
                .sum::<usize>();
        }
        (count, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_str_is_a_json_string_both_ways() {
        let s: Str = serde_json::from_str(r#""nginx:1.27 \u00e9""#).unwrap();
        assert_eq!(s, "nginx:1.27 é");
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""nginx:1.27 é""#);
        assert!(serde_json::from_str::<Str>("17").is_err());
    }

    #[test]
    fn pooled_text_is_shared_and_pruned_when_unused() {
        let a = intern::shared("docker.io/library/test-pool-image:1");
        let b = intern::shared("docker.io/library/test-pool-image:1");
        assert!(a.shares(&b));
        let c = intern::shared("docker.io/library/test-pool-image:2");
        assert!(!a.shares(&c));
        drop(c);
        assert!(intern::prune() >= 1);
        // `a` is still held, so a later lookup shares it; `c` was dropped.
        let d = intern::shared("docker.io/library/test-pool-image:1");
        assert!(a.shares(&d));
        let (count, bytes) = intern::stats();
        assert!(count >= 1 && bytes > 0);
    }

    #[test]
    fn deserialized_text_is_shared_once_enabled() {
        intern::enable();
        let a: Str = serde_json::from_str(r#""sshd.service test""#).unwrap();
        let b: Str = serde_json::from_str(r#""sshd.service test""#).unwrap();
        assert!(a.shares(&b));
        // Long text is not pooled.
        let long = format!("\"{}\"", "x".repeat(intern::MAX_LEN + 1));
        let a: Str = serde_json::from_str(&long).unwrap();
        let b: Str = serde_json::from_str(&long).unwrap();
        assert!(!a.shares(&b));
    }

    #[test]
    fn compares_with_str_and_string() {
        let s = Str::from("running");
        assert!(s == "running");
        assert!("running" == s);
        assert_eq!(String::from(s.clone()), "running");
        assert_eq!(s.len(), 7);
        let map: std::collections::BTreeMap<Str, u8> = [(Str::from("k"), 1)].into();
        assert_eq!(map.get("k"), Some(&1));
    }
}
