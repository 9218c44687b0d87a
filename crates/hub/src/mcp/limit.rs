//! A rate limit per caller (token or user): a token bucket, so an
//! assistant in a loop cannot turn the hub into its busy-work; a person's
//! pace never meets it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lock;

/// Calls a caller may make at once.
pub const BURST: f64 = 120.0;
/// Calls per second it earns back.
pub const PER_SECOND: f64 = 50.0;
/// Callers remembered at most (the oldest idle ones go first).
const MAX_CALLERS: usize = 10_000;

#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    /// Takes one call from `caller`'s bucket at `now`; `Err` says how long
    /// until the next one is allowed.
    pub fn take(&self, caller: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= MAX_CALLERS && !buckets.contains_key(caller) {
            // Full buckets are as good as forgotten.
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() * PER_SECOND < BURST);
        }
        let (tokens, at) = buckets.entry(caller.to_string()).or_insert((BURST, now));
        let earned = now.saturating_duration_since(*at).as_secs_f64() * PER_SECOND;
        *tokens = (*tokens + earned).min(BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / PER_SECOND))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate_per_caller() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..BURST as usize {
            assert!(l.take("token:1", t0).is_ok());
        }
        let wait = l.take("token:1", t0).unwrap_err();
        assert!(wait <= Duration::from_millis(20), "{wait:?}");
        // Another caller has a bucket of its own.
        assert!(l.take("token:2", t0).is_ok());
        // A fiftieth of a second later, one more.
        let t1 = t0 + Duration::from_millis(20);
        assert!(l.take("token:1", t1).is_ok());
        assert!(l.take("token:1", t1).is_err());
    }
}
