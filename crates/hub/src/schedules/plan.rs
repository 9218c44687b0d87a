//! A schedule's rules as pure functions of the time they are asked at:
//! parsing a 5-field cron pattern in an IANA time zone, the next runs,
//! each host's fixed jitter, what to do with slots that passed while the
//! hub was not looking (catch-up), and overlap. No I/O and no clock: the
//! caller passes `now` (unix milliseconds), so tests move time freely.
//!
//! Time zones: `croner` walks the wall clock of the zone, so a 02:30 job
//! runs once on both DST days — on the spring-forward day at the first
//! instant after the gap, on the fall-back day at the first of the two
//! 02:30s only.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use sha2::{Digest, Sha256};

/// The longest catch-up grace, and the longest jitter.
pub const MAX_GRACE_MS: i64 = 3_600_000;
pub const MAX_JITTER_SECS: u32 = 3_600;

/// Why a pattern or zone was refused; the message is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("cron: {0}")]
    Cron(String),
    #[error("timezone: {0}")]
    Timezone(String),
}

/// A parsed pattern in its zone.
#[derive(Debug, Clone)]
pub struct Plan {
    cron: Cron,
    tz: Tz,
}

impl Plan {
    /// Parses `cron` (minute hour day-of-month month day-of-week, or a
    /// nickname such as `@daily`) in `timezone`. A pattern that never fires
    /// after `now_ms` (`0 0 30 2 *`) is refused.
    pub fn parse(cron: &str, timezone: &str, now_ms: i64) -> Result<Plan, PlanError> {
        let text = cron.trim();
        if text.len() > 200 {
            return Err(PlanError::Cron("at most 200 characters".into()));
        }
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && fields != 5 {
            return Err(PlanError::Cron(format!(
                "{text:?} has {fields} fields; a schedule has 5: minute hour day-of-month month day-of-week"
            )));
        }
        let parsed = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| PlanError::Cron(format!("{text:?}: {}", lower(&e.to_string()))))?;
        let zone = timezone.trim();
        let tz = Tz::from_str(zone).map_err(|_| {
            PlanError::Timezone(format!(
                "{zone:?} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)"
            ))
        })?;
        let plan = Plan { cron: parsed, tz };
        // A day that no month has is refused at once; croner would search
        // years of dates to prove it (0.1–0.7 s unoptimised).
        if !plan.some_day_exists() || plan.next_after(now_ms).is_none() {
            return Err(PlanError::Cron(format!(
                "{text:?} never fires: no date matches it"
            )));
        }
        Ok(plan)
    }

    /// False only when the weekday field is `*` and no month of the
    /// pattern has any of its days of the month (`30 2`, `31 4,6`); true
    /// whenever it cannot tell so cheaply.
    fn some_day_exists(&self) -> bool {
        let p = &self.cron.pattern;
        if !p.is_dow_wildcard() || p.days.has_modifiers() {
            return true;
        }
        let days = p.days.values();
        p.months.values().iter().any(|&m| {
            let last = match m {
                2 => 29,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            days.iter().any(|&d| d <= last)
        })
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first run strictly after `t_ms`, if the pattern fires again.
    pub fn next_after(&self, t_ms: i64) -> Option<i64> {
        let t = self.at(t_ms)?;
        let next = self.cron.find_next_occurrence(&t, false).ok()?;
        Some(next.timestamp_millis())
    }

    /// The latest run at or before `t_ms`.
    pub fn latest_at_or_before(&self, t_ms: i64) -> Option<i64> {
        let t = self.at(t_ms)?;
        let prev = self.cron.find_previous_occurrence(&t, true).ok()?;
        Some(prev.timestamp_millis()).filter(|p| *p <= t_ms)
    }

    /// The next `n` runs after `t_ms`.
    pub fn upcoming(&self, t_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut t = t_ms;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    /// The default catch-up grace for `slot`: the time to the next run (one
    /// period), at most an hour.
    pub fn default_grace_ms(&self, slot: i64) -> i64 {
        self.next_after(slot)
            .map_or(MAX_GRACE_MS, |next| (next - slot).min(MAX_GRACE_MS))
    }

    /// `t_ms` as a time in the plan's zone.
    pub fn local(&self, t_ms: i64) -> Option<DateTime<Tz>> {
        self.at(t_ms)
    }

    fn at(&self, t_ms: i64) -> Option<DateTime<Tz>> {
        Utc.timestamp_millis_opt(t_ms)
            .single()
            .map(|t| t.with_timezone(&self.tz))
    }
}

fn lower(s: &str) -> String {
    let s = s.trim_end_matches('.');
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A host's fixed offset from each slot, in `0..=jitter_secs` seconds
/// (milliseconds resolution): the same for a schedule and host every time,
/// different between hosts, so a fleet does not start at one instant
/// (systemd's `RandomizedDelaySec` with `FixedRandomDelay`).
pub fn jitter_ms(schedule_id: i64, node_id: &str, jitter_secs: u32) -> i64 {
    if jitter_secs == 0 {
        return 0;
    }
    let mut h = Sha256::new();
    h.update(schedule_id.to_be_bytes());
    h.update(node_id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let span = u64::from(jitter_secs.min(MAX_JITTER_SECS)) * 1000 + 1;
    (u64::from_be_bytes(first) % span) as i64
}

/// Slots that passed without a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// How many (counted up to [`MISSED_COUNT_CAP`]).
    pub count: u32,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Missed slots are counted up to this many.
pub const MISSED_COUNT_CAP: u32 = 10_000;

/// What to do when the scheduler looks at a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Run this slot now (on time, or the one catch-up).
    pub run: Option<i64>,
    /// Slots given up on (the hub was down or busy past them).
    pub missed: Option<Missed>,
    /// The next slot to wait for; `None` if the pattern never fires again.
    pub next: Option<i64>,
}

/// The decision at `now` for a schedule whose next slot was `expected`:
/// nothing before it; at or after it, the most recent slot that has passed
/// runs once if it is at most `grace_ms` old (default: one period, at most
/// an hour), and every other passed slot is missed — never run late.
pub fn due(plan: &Plan, expected: i64, now: i64, grace_ms: Option<i64>) -> Due {
    if expected > now {
        return Due {
            run: None,
            missed: None,
            next: Some(expected),
        };
    }
    let latest = plan
        .latest_at_or_before(now)
        .filter(|l| *l >= expected)
        .unwrap_or(expected);
    let grace = grace_ms
        .unwrap_or_else(|| plan.default_grace_ms(latest))
        .clamp(0, MAX_GRACE_MS);
    let run = (now - latest <= grace).then_some(latest);
    // Count the slots from `expected` up to the latest, leaving out a run one.
    let mut count = 0u32;
    let mut first = None;
    let mut last = None;
    let mut slot = Some(expected);
    while let Some(s) = slot {
        if s > latest || count >= MISSED_COUNT_CAP {
            break;
        }
        if Some(s) != run {
            count += 1;
            first.get_or_insert(s);
            last = Some(s);
        }
        slot = plan.next_after(s);
    }
    let missed = match (first, last) {
        (Some(first_ms), Some(last_ms)) => Some(Missed {
            count,
            first_ms,
            last_ms: if run.is_none() { latest } else { last_ms },
        }),
        _ => None,
    };
    Due {
        run,
        missed,
        next: plan.next_after(now),
    }
}

/// What to do when a slot comes while the previous run on a host still runs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// Skip this slot (recorded as a skip).
    #[default]
    Forbid,
    /// Run beside it.
    Allow,
    /// Cancel the running one, then run.
    Replace,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Forbid => "forbid",
            Overlap::Allow => "allow",
            Overlap::Replace => "replace",
        }
    }

    pub fn parse(s: &str) -> Option<Overlap> {
        match s {
            "forbid" => Some(Overlap::Forbid),
            "allow" => Some(Overlap::Allow),
            "replace" => Some(Overlap::Replace),
            _ => None,
        }
    }
}

/// Whether to start a run on a host given whether its previous run still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Run,
    Skip,
    CancelThenRun,
}

pub fn start(overlap: Overlap, previous_running: bool) -> Start {
    match (previous_running, overlap) {
        (false, _) | (true, Overlap::Allow) => Start::Run,
        (true, Overlap::Forbid) => Start::Skip,
        (true, Overlap::Replace) => Start::CancelThenRun,
    }
}

#[cfg(test)]
mod tests;
