//! A token bucket per agent connection: a steady rate of frames with room
//! for bursts (a full sync and a backlog of samples after a reconnect).

use std::time::Instant;

/// Frames per second an agent may keep up.
pub const RATE: f64 = 20.0;
/// Frames it may send at once.
pub const BURST: f64 = 200.0;
/// Command output and result frames per second, paced rather than dropped
/// (a result is one frame, output at most ten a second per command; this
/// leaves scripts running hundreds of quick commands a second unpaced).
pub const COMMAND_RATE: f64 = 1000.0;
/// Command frames an agent may send at once.
pub const COMMAND_BURST: f64 = 1000.0;

#[derive(Debug)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
    /// When the agent was last told it is throttled (once a second at most).
    told: Option<Instant>,
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Take,
    /// Drop it, and tell the agent.
    DropAndTell,
    /// Drop it; the agent was told a moment ago.
    Drop,
}

impl Bucket {
    pub fn new(now: Instant) -> Bucket {
        Bucket {
            tokens: BURST,
            last: now,
            told: None,
        }
    }

    /// Paces instead of dropping (for command output and results, which
    /// must not be lost): takes a token, and says how long to wait before
    /// reading on so the agent keeps to `rate` frames a second. Waiting
    /// stops reading the socket, so TCP slows the agent down.
    pub fn pace(&mut self, now: Instant, rate: f64, burst: f64) -> std::time::Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_secs_f64(-self.tokens / rate)
        }
    }

    pub fn frame(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * RATE).min(BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Take;
        }
        match self.told {
            Some(t) if now.saturating_duration_since(t).as_secs_f64() < 1.0 => Verdict::Drop,
            _ => {
                self.told = Some(now);
                Verdict::DropAndTell
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn pacing_never_drops_and_keeps_the_rate() {
        let start = Instant::now();
        let mut b = Bucket::new(start);
        // The burst goes through at once.
        for _ in 0..200 {
            assert_eq!(b.pace(start, 100.0, 200.0), Duration::ZERO);
        }
        // Then each frame waits its share: 1/100 s, growing while no time passes.
        assert_eq!(b.pace(start, 100.0, 200.0), Duration::from_millis(10));
        assert_eq!(b.pace(start, 100.0, 200.0), Duration::from_millis(20));
        // After waiting, the next one waits only its own share again.
        let later = start + Duration::from_millis(20);
        assert_eq!(b.pace(later, 100.0, 200.0), Duration::from_millis(10));
    }

    #[test]
    fn a_burst_passes_then_the_steady_rate() {
        let t = Instant::now();
        let mut b = Bucket::new(t);
        for _ in 0..BURST as usize {
            assert_eq!(b.frame(t), Verdict::Take);
        }
        assert_eq!(b.frame(t), Verdict::DropAndTell);
        assert_eq!(b.frame(t), Verdict::Drop);
        // A second later there is room for RATE more, and the agent may be told again.
        let later = t + Duration::from_secs(1);
        let taken = (0..100).filter(|_| b.frame(later) == Verdict::Take).count();
        assert_eq!(taken, RATE as usize);
        assert_eq!(b.frame(later + Duration::from_millis(1)), Verdict::Drop);
        assert_eq!(
            b.frame(later + Duration::from_millis(1100)),
            Verdict::Take,
            "refilled"
        );
    }

    #[test]
    fn an_agent_at_its_pace_is_never_throttled() {
        let t = Instant::now();
        let mut b = Bucket::new(t);
        for i in 0..10_000u64 {
            // Ten frames a second, for 1,000 seconds.
            assert_eq!(b.frame(t + Duration::from_millis(i * 100)), Verdict::Take);
        }
    }
}
