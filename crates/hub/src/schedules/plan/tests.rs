use chrono::{Datelike, NaiveDate, Offset, TimeZone, Timelike};
use proptest::prelude::*;

use super::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn ms(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .earliest()
        .expect("a real local time")
        .timestamp_millis()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    ms(chrono_tz::UTC, y, mo, d, h, mi)
}

fn plan(cron: &str, tz: &str) -> Plan {
    Plan::parse(cron, tz, utc(2026, 1, 1, 0, 0)).expect("parses")
}

#[test]
fn parses_five_fields_and_nicknames() {
    plan("*/5 * * * *", "UTC");
    plan("30 2 * * 1-5", "Europe/Berlin");
    plan("@daily", "America/New_York");
    plan("0 0 29 2 *", "UTC"); // leap days only: still fires
}

#[test]
fn refuses_bad_patterns_and_zones() {
    let now = utc(2026, 1, 1, 0, 0);
    let err = Plan::parse("0 0 30 2 *", "UTC", now).unwrap_err();
    assert!(
        matches!(&err, PlanError::Cron(m) if m.contains("never fires")),
        "{err}"
    );
    // Refused at once, without a search through the years.
    for never in ["59 23 31 2,4,6,9,11 *", "* * 30,31 2 *"] {
        let t = std::time::Instant::now();
        let err = Plan::parse(never, "UTC", now).unwrap_err();
        assert!(err.to_string().contains("never fires"), "{err}");
        assert!(
            t.elapsed() < std::time::Duration::from_millis(50),
            "{never}: {:?}",
            t.elapsed()
        );
    }
    // Days that some month has, or weekdays, still fire.
    plan("0 0 31 1-12 *", "UTC");
    plan("0 0 30 2 MON", "UTC");
    plan("0 0 L 2 *", "UTC");
    let err = Plan::parse("* * * *", "UTC", now).unwrap_err();
    assert!(err.to_string().contains("has 4 fields"), "{err}");
    let err = Plan::parse("0 * * * * *", "UTC", now).unwrap_err();
    assert!(err.to_string().contains("has 6 fields"), "{err}");
    assert!(Plan::parse("61 * * * *", "UTC", now).is_err());
    // croner 4 wants `*/5`, not the sloppy `5/5`.
    assert!(Plan::parse("5/5 * * * *", "UTC", now).is_err());
    let err = Plan::parse("* * * * *", "Mars/Olympus", now).unwrap_err();
    assert!(
        matches!(&err, PlanError::Timezone(m) if m.contains("Mars/Olympus")),
        "{err}"
    );
}

#[test]
fn next_runs_in_the_zone() {
    let p = plan("30 2 * * *", "Europe/Berlin");
    let now = utc(2026, 6, 1, 12, 0);
    let next = p.upcoming(now, 5);
    assert_eq!(next.len(), 5);
    // Berlin is UTC+2 in summer: 02:30 local is 00:30 UTC.
    assert_eq!(next[0], utc(2026, 6, 2, 0, 30));
    for w in next.windows(2) {
        assert_eq!(w[1] - w[0], 24 * HOUR);
    }
    // Exactly at a slot: the next is the one after.
    assert_eq!(p.next_after(next[0]), Some(next[1]));
    assert_eq!(p.latest_at_or_before(next[0]), Some(next[0]));
    assert_eq!(
        p.latest_at_or_before(next[0] - 1),
        Some(next[0] - 24 * HOUR)
    );
}

/// Runs of a daily 02:30 job whose local date is `day`.
fn runs_on(p: &Plan, tz: Tz, day: NaiveDate) -> Vec<i64> {
    let start = ms(tz, day.year(), day.month(), day.day(), 0, 0) - 2 * HOUR;
    p.upcoming(start, 4)
        .into_iter()
        .filter(|t| p.local(*t).unwrap().date_naive() == day)
        .collect()
}

#[test]
fn dst_days_run_a_0230_job_exactly_once() {
    let cases = [
        (
            "Europe/Berlin",
            NaiveDate::from_ymd_opt(2026, 3, 29).unwrap(),
        ), // 02:00 → 03:00
        (
            "Europe/Berlin",
            NaiveDate::from_ymd_opt(2026, 10, 25).unwrap(),
        ), // 03:00 → 02:00
        (
            "America/New_York",
            NaiveDate::from_ymd_opt(2026, 3, 8).unwrap(),
        ), // 02:00 → 03:00
        (
            "America/New_York",
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        ), // 02:00 → 01:00
    ];
    for (zone, day) in cases {
        let tz: Tz = zone.parse().unwrap();
        let p = plan("30 2 * * *", zone);
        let runs = runs_on(&p, tz, day);
        assert_eq!(runs.len(), 1, "{zone} {day}: {runs:?}");
        let local = p.local(runs[0]).unwrap();
        let spring = day.month() == 3;
        // Spring forward: 02:30 does not exist; the run is at the first
        // instant after the gap. Fall back: at the (first) 02:30.
        let expected = if spring { (3, 0) } else { (2, 30) };
        assert_eq!(
            (local.hour(), local.minute()),
            expected,
            "{zone} {day}: {local}"
        );
        // The days around it run at 02:30 local as usual.
        for other in [day.pred_opt().unwrap(), day.succ_opt().unwrap()] {
            let r = runs_on(&p, tz, other);
            assert_eq!(r.len(), 1, "{zone} {other}");
            let local = p.local(r[0]).unwrap();
            assert_eq!((local.hour(), local.minute()), (2, 30), "{zone} {other}");
        }
    }
}

#[test]
fn a_repeated_hour_runs_once_on_the_fall_back_day() {
    // New York repeats 01:00–01:59 on 2026-11-01: a 01:30 job runs once.
    let tz: Tz = "America/New_York".parse().unwrap();
    let p = plan("30 1 * * *", "America/New_York");
    let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    assert_eq!(runs_on(&p, tz, day).len(), 1);
    // Berlin repeats 02:00–02:59 on 2026-10-25.
    let tz: Tz = "Europe/Berlin".parse().unwrap();
    let p = plan("30 2 * * *", "Europe/Berlin");
    let day = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
    let runs = runs_on(&p, tz, day);
    assert_eq!(
        runs,
        vec![utc(2026, 10, 25, 0, 30)],
        "the first 02:30 (CEST)"
    );
}

#[test]
fn jitter_is_stable_bounded_and_spread() {
    assert_eq!(jitter_ms(1, "a", 0), 0);
    let j = jitter_ms(7, "node-a", 60);
    assert_eq!(j, jitter_ms(7, "node-a", 60));
    assert!((0..=60_000).contains(&j));
    let distinct: std::collections::HashSet<i64> = (0..50)
        .map(|i| jitter_ms(7, &format!("node-{i}"), 600))
        .collect();
    assert!(distinct.len() > 40, "{}", distinct.len());
    for i in 0..200 {
        assert!((0..=5_000).contains(&jitter_ms(i, "x", 5)));
    }
}

#[test]
fn on_time_runs_the_slot() {
    let p = plan("* * * * *", "UTC");
    let slot = utc(2026, 5, 1, 10, 0);
    assert_eq!(
        due(&p, slot, slot - 1, None),
        Due {
            run: None,
            missed: None,
            next: Some(slot)
        }
    );
    let d = due(&p, slot, slot + 300, None);
    assert_eq!(d.run, Some(slot));
    assert_eq!(d.missed, None);
    assert_eq!(d.next, Some(slot + MIN));
}

#[test]
fn downtime_runs_only_the_latest_slot_once() {
    let p = plan("* * * * *", "UTC");
    let expected = utc(2026, 5, 1, 10, 0);
    // Down for three minutes and a half: 10:00, 10:01, 10:02, 10:03 passed.
    let now = expected + 3 * MIN + 30_000;
    let d = due(&p, expected, now, None);
    assert_eq!(d.run, Some(expected + 3 * MIN));
    assert_eq!(
        d.missed,
        Some(Missed {
            count: 3,
            first_ms: expected,
            last_ms: expected + 2 * MIN
        })
    );
    assert_eq!(d.next, Some(expected + 4 * MIN));
    // Asked again at once with the new next slot: nothing runs twice.
    let again = due(&p, d.next.unwrap(), now + 1, None);
    assert_eq!(again.run, None);
}

#[test]
fn past_the_grace_nothing_runs_and_all_are_missed() {
    let p = plan("0 3 * * *", "UTC");
    let expected = utc(2026, 5, 1, 3, 0);
    // The default grace of a daily job is an hour.
    let d = due(&p, expected, expected + HOUR, None);
    assert_eq!(d.run, Some(expected));
    let d = due(&p, expected, expected + HOUR + 1, None);
    assert_eq!(d.run, None);
    assert_eq!(
        d.missed,
        Some(Missed {
            count: 1,
            first_ms: expected,
            last_ms: expected
        })
    );
    assert_eq!(d.next, Some(expected + 24 * HOUR));
    // A shorter grace, and a hub down for two days.
    let d = due(&p, expected, expected + 10 * MIN, Some(5 * MIN));
    assert_eq!(d.run, None);
    let d = due(&p, expected, expected + 48 * HOUR + 60_000, None);
    assert_eq!(d.run, Some(expected + 48 * HOUR));
    assert_eq!(d.missed.map(|m| m.count), Some(2));
}

#[test]
fn every_five_minutes_grace_is_one_period() {
    let p = plan("*/5 * * * *", "UTC");
    let slot = utc(2026, 5, 1, 10, 5);
    assert_eq!(p.default_grace_ms(slot), 5 * MIN);
    assert_eq!(due(&p, slot, slot + 5 * MIN - 1, None).run, Some(slot));
}

#[test]
fn overlap_decides() {
    assert_eq!(start(Overlap::Forbid, false), Start::Run);
    assert_eq!(start(Overlap::Forbid, true), Start::Skip);
    assert_eq!(start(Overlap::Allow, true), Start::Run);
    assert_eq!(start(Overlap::Replace, true), Start::CancelThenRun);
    assert_eq!(Overlap::parse("replace"), Some(Overlap::Replace));
    assert_eq!(Overlap::default().as_str(), "forbid");
}

const PATTERNS: &[&str] = &[
    "* * * * *",
    "*/5 * * * *",
    "30 2 * * *",
    "0 0 * * 0",
    "15 */3 1,15 * *",
    "0 9-17 * * 1-5",
    "45 23 31 * *",
    "0 0 1 1 *",
];
const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn next_run_is_after_now_and_matches(
        p in 0..PATTERNS.len(),
        z in 0..ZONES.len(),
        // 2000 .. 2100, with milliseconds
        now in 946_684_800_000i64..4_102_444_800_000i64,
    ) {
        let plan = plan(PATTERNS[p], ZONES[z]);
        let next = plan.next_after(now).expect("fires again");
        prop_assert!(next > now);
        prop_assert_eq!(next % 60_000, 0);
        let local = plan.local(next).unwrap();
        // A time the clocks skip (02:30 as summer time begins) runs at the
        // first minute after the jump, as cron does.
        let after_jump = plan.local(next - 60_000).unwrap().offset().fix() != local.offset().fix();
        prop_assert!(
            after_jump || plan.cron.is_time_matching(&local).unwrap(),
            "{} at {}", PATTERNS[p], local
        );
        // Nothing in between matches (checked minute by minute for short gaps).
        let same_offset = plan.local(now).unwrap().offset().fix() == local.offset().fix();
        if next - now <= 6 * HOUR && same_offset {
            let mut t = (now / 60_000 + 1) * 60_000;
            while t < next {
                let l = plan.local(t).unwrap();
                prop_assert!(!plan.cron.is_time_matching(&l).unwrap(), "{} also at {}", PATTERNS[p], l);
                t += 60_000;
            }
        }
    }
}
