//! One alert's life: ok → pending (the condition has held less than the
//! rule's `for`; it recovers silently) → firing → resolved. Pure: the
//! engine feeds it the condition and the time.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Firing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        match s {
            "pending" => Some(State::Pending),
            "firing" => Some(State::Firing),
            "resolved" => Some(State::Resolved),
            _ => None,
        }
    }
}

/// An alert that is (or was) active.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub state: State,
    /// When the condition began to hold.
    pub started_ms: i64,
    /// When it fired (held for `for`).
    pub fired_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
}

/// What a step changed, worth a notification or a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// New: the condition began to hold (pending).
    Began,
    /// Held long enough: firing.
    Fired,
    /// Pending, and the condition let go before `for`: forgotten, silently.
    Dropped,
    /// Was firing, the condition let go.
    Resolved,
}

/// The next state of `alert` (`None`: no alert) given whether the condition
/// holds `now`, and what changed.
pub fn step(
    alert: Option<&Alert>,
    holds: bool,
    for_ms: i64,
    now: i64,
) -> (Option<Alert>, Option<Transition>) {
    let active = alert.filter(|a| a.state != State::Resolved);
    match (active, holds) {
        (None, false) => (None, None),
        (None, true) => {
            let a = Alert {
                state: State::Pending,
                started_ms: now,
                fired_ms: None,
                resolved_ms: None,
            };
            // `for: 0` fires at once.
            if for_ms <= 0 {
                let fired = Alert {
                    state: State::Firing,
                    fired_ms: Some(now),
                    ..a
                };
                return (Some(fired), Some(Transition::Fired));
            }
            (Some(a), Some(Transition::Began))
        }
        (Some(a), true) if a.state == State::Pending && now - a.started_ms >= for_ms => {
            let fired = Alert {
                state: State::Firing,
                fired_ms: Some(now),
                ..a.clone()
            };
            (Some(fired), Some(Transition::Fired))
        }
        (Some(a), true) => (Some(a.clone()), None),
        (Some(a), false) if a.state == State::Pending => (None, Some(Transition::Dropped)),
        (Some(a), false) => {
            let resolved = Alert {
                state: State::Resolved,
                resolved_ms: Some(now),
                ..a.clone()
            };
            (Some(resolved), Some(Transition::Resolved))
        }
    }
}

/// A threshold with hysteresis: it starts to hold above `enter` and stops
/// holding only at or below `clear` (`clear` ≤ `enter`), so a value
/// oscillating between the two does not flap.
pub fn over(value: f64, enter: f64, clear: f64, active: bool) -> bool {
    if active { value > clear } else { value > enter }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a condition series one second apart; returns the transitions.
    fn run(series: &[bool], for_ms: i64) -> Vec<(i64, Transition)> {
        let mut alert = None;
        let mut out = Vec::new();
        for (i, holds) in series.iter().enumerate() {
            let now = i as i64 * 1000;
            let (next, t) = step(alert.as_ref(), *holds, for_ms, now);
            if let Some(t) = t {
                out.push((now, t));
            }
            alert = next.filter(|a: &Alert| a.state != State::Resolved);
        }
        out
    }

    #[test]
    fn fires_after_for_and_resolves_once() {
        let t = run(&[false, true, true, true, true, false, false], 2000);
        assert_eq!(
            t,
            vec![
                (1000, Transition::Began),
                (3000, Transition::Fired),
                (5000, Transition::Resolved)
            ]
        );
    }

    #[test]
    fn a_blip_shorter_than_for_recovers_silently() {
        let t = run(&[true, false, true, true, false], 5000);
        assert!(
            t.iter()
                .all(|(_, t)| matches!(t, Transition::Began | Transition::Dropped)),
            "{t:?}"
        );
    }

    #[test]
    fn for_zero_fires_at_once() {
        assert_eq!(run(&[true], 0), vec![(0, Transition::Fired)]);
    }

    #[test]
    fn hysteresis_fires_once_per_excursion() {
        // CPU oscillating 85–95 around an enter of 90 (clear 80): once.
        let cpu = [50.0, 95.0, 85.0, 95.0, 86.0, 94.0, 85.0, 70.0, 95.0];
        let mut alert: Option<Alert> = None;
        let mut fired = 0;
        let mut resolved = 0;
        for (i, v) in cpu.iter().enumerate() {
            let active = alert.as_ref().is_some_and(|a| a.state != State::Resolved);
            let holds = over(*v, 90.0, 80.0, active);
            let (next, t) = step(alert.as_ref(), holds, 0, i as i64 * 1000);
            match t {
                Some(Transition::Fired) => fired += 1,
                Some(Transition::Resolved) => resolved += 1,
                _ => {}
            }
            alert = next;
        }
        // Fired at 95, held through 85–95, resolved at 70, fired again at 95.
        assert_eq!((fired, resolved), (2, 1));
    }
}
