//! Jittered exponential backoff for reconnects.

use std::time::Duration;

/// Exponential backoff with "equal jitter": the delay is uniformly drawn from
/// `[cap/2, cap]`, where `cap` doubles from `base` up to `max`. The floor keeps
/// a restarted hub from seeing every agent at once; the jitter spreads them.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The next delay; `unit` is a uniform random number in `[0, 1)`.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        cap.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A uniform random number in `[0, 1)` from the OS.
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    // Without OS randomness, no jitter is still a correct (if herd-prone) backoff.
    let _ = getrandom::fill(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_jitters_within_it() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let lows: Vec<_> = (0..10).map(|_| b.next_delay(0.0)).collect();
        assert_eq!(lows[0], Duration::from_millis(250));
        assert_eq!(lows[1], Duration::from_millis(500));
        assert_eq!(lows[9], Duration::from_secs(15));
        assert_eq!(b.next_delay(1.0), Duration::from_secs(30));
        b.reset();
        let d = b.next_delay(0.5);
        assert_eq!(d, Duration::from_millis(375));
        let r = random_unit();
        assert!((0.0..1.0).contains(&r));
    }
}
