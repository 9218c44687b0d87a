use proptest::prelude::*;
use time::{Date, Month, PrimitiveDateTime, Time};

use super::*;

fn at(y: i32, m: u8, d: u8, h: u8) -> i64 {
    let date = Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap();
    let t = PrimitiveDateTime::new(date, Time::from_hms(h, 0, 0).unwrap()).assume_utc();
    t.unix_timestamp() * 1000
}

fn items(times: &[i64]) -> Vec<Item> {
    times
        .iter()
        .enumerate()
        .map(|(i, t)| Item {
            id: format!("b{i:03}"),
            created_ms: *t,
        })
        .collect()
}

fn kept(decisions: &[Decision]) -> Vec<&str> {
    decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.id.as_str())
        .collect()
}

/// One backup a day at 03:00, `days` days ending on 2026-12-03 (b000 the oldest).
fn daily(days: u32) -> Vec<Item> {
    let last = Date::from_calendar_date(2026, Month::December, 3).unwrap();
    let times: Vec<i64> = (0..days)
        .rev()
        .map(|back| {
            let d = last - time::Duration::days(back.into());
            at(d.year(), d.month().into(), d.day(), 3)
        })
        .collect();
    items(&times)
}

#[test]
fn restic_keep_daily_on_a_daily_history_keeps_the_newest_days() {
    // restic's documentation: `--keep-daily 7` on one snapshot a day keeps
    // the last seven days' snapshots.
    let history = daily(14);
    let d = apply(
        &Keep {
            daily: 7,
            ..Keep::default()
        },
        &history,
    );
    assert_eq!(
        kept(&d),
        ["b013", "b012", "b011", "b010", "b009", "b008", "b007"]
    );
    assert_eq!(d[0].reason, "keep-daily 2026-12-03");
    assert_eq!(d[7].reason, "not kept by keep-daily 7");
}

#[test]
fn only_the_latest_of_a_day_is_kept() {
    // Both tools: "if there is more than one backup for a single day, only
    // the latest is kept".
    let history = items(&[
        at(2026, 12, 1, 1),
        at(2026, 12, 1, 22),
        at(2026, 12, 2, 5),
        at(2026, 12, 2, 6),
        at(2026, 12, 3, 0),
    ]);
    let d = apply(
        &Keep {
            daily: 3,
            ..Keep::default()
        },
        &history,
    );
    assert_eq!(kept(&d), ["b004", "b003", "b001"]);
}

#[test]
fn pbs_a_later_rule_skips_periods_an_earlier_rule_covered() {
    // PBS: "the next option does not take care of already covered backups;
    // it will only consider older backups". keep-last 3 takes the three of
    // today; keep-daily 2 then does not count today again and keeps the
    // newest of each of the two days before.
    let history = items(&[
        at(2026, 11, 29, 12),
        at(2026, 11, 30, 8),
        at(2026, 12, 1, 8),
        at(2026, 12, 1, 20),
        at(2026, 12, 2, 9),
        at(2026, 12, 2, 10),
        at(2026, 12, 2, 11),
    ]);
    let d = apply(
        &Keep {
            last: 3,
            daily: 2,
            ..Keep::default()
        },
        &history,
    );
    assert_eq!(kept(&d), ["b006", "b005", "b004", "b003", "b001"]);
    let reasons: Vec<&str> = d.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "keep-last 1/3",
            "keep-last 2/3",
            "keep-last 3/3",
            "keep-daily 2026-12-01",
            "not kept by keep-last 3, keep-daily 2",
            "keep-daily 2026-11-30",
            "not kept by keep-last 3, keep-daily 2",
        ]
    );
}

#[test]
fn pbs_simulator_style_daily_weekly_monthly() {
    // A year of nightly backups with keep-daily 7, keep-weekly 4,
    // keep-monthly 6 (the prune simulator's kind of schedule): 7 + 4 + 6
    // kept, weeks and months counted only beyond what the days covered.
    let history = daily(365);
    let keep = Keep {
        daily: 7,
        weekly: 4,
        monthly: 6,
        ..Keep::default()
    };
    let d = apply(&keep, &history);
    let kept_ids = kept(&d);
    assert_eq!(kept_ids.len(), 17, "{kept_ids:?}");
    // 2026-12-03 is a Thursday: the days keep 11-27 … 12-03, so ISO week 49
    // (11-30 … 12-06) and 48 (from 11-27) are covered; weeks 47, 46, 45, 44
    // keep their Sundays.
    let weekly: Vec<&str> = d
        .iter()
        .filter(|d| d.reason.starts_with("keep-weekly"))
        .map(|d| d.reason.as_str())
        .collect();
    assert_eq!(
        weekly,
        [
            "keep-weekly 2026-W47",
            "keep-weekly 2026-W46",
            "keep-weekly 2026-W45",
            "keep-weekly 2026-W44"
        ]
    );
    let monthly: Vec<&str> = d
        .iter()
        .filter(|d| d.reason.starts_with("keep-monthly"))
        .map(|d| d.reason.as_str())
        .collect();
    // December and November are covered by the days and weeks; October's
    // last day was kept by week 44 (10-26 … 11-01: its Sunday is 11-01), so
    // October still counts.
    assert_eq!(
        monthly,
        [
            "keep-monthly 2026-10",
            "keep-monthly 2026-09",
            "keep-monthly 2026-08",
            "keep-monthly 2026-07",
            "keep-monthly 2026-06",
            "keep-monthly 2026-05"
        ]
    );
}

#[test]
fn iso_weeks_cross_the_new_year() {
    // 2020-12-31 (Thursday) and 2021-01-03 (Sunday) are both in 2020-W53;
    // 2021-01-04 starts 2021-W01.
    let history = items(&[at(2020, 12, 31, 0), at(2021, 1, 3, 0), at(2021, 1, 4, 0)]);
    let d = apply(
        &Keep {
            weekly: 5,
            ..Keep::default()
        },
        &history,
    );
    assert_eq!(kept(&d), ["b002", "b001"]);
    assert_eq!(d[1].reason, "keep-weekly 2020-W53");
}

#[test]
fn yearly_keeps_the_last_of_each_year() {
    let history = items(&[
        at(2023, 3, 1, 0),
        at(2023, 11, 1, 0),
        at(2024, 6, 1, 0),
        at(2025, 1, 1, 0),
        at(2025, 12, 31, 23),
    ]);
    let d = apply(
        &Keep {
            yearly: 2,
            ..Keep::default()
        },
        &history,
    );
    assert_eq!(kept(&d), ["b004", "b002"]);
}

#[test]
fn no_rule_keeps_everything_and_an_empty_history_is_fine() {
    let d = apply(&Keep::default(), &daily(3));
    assert!(d.iter().all(|d| d.keep));
    assert!(
        apply(
            &Keep {
                last: 2,
                ..Keep::default()
            },
            &[]
        )
        .is_empty()
    );
}

#[test]
fn hourly_counts_hours() {
    let history = items(&[
        at(2026, 12, 3, 1),
        at(2026, 12, 3, 1) + 60_000,
        at(2026, 12, 3, 2),
        at(2026, 12, 3, 3),
    ]);
    let d = apply(
        &Keep {
            hourly: 2,
            ..Keep::default()
        },
        &history,
    );
    assert_eq!(kept(&d), ["b003", "b002"]);
}

fn keep_strategy() -> impl Strategy<Value = Keep> {
    (0u32..4, 0u32..4, 0u32..5, 0u32..4, 0u32..4, 0u32..3).prop_map(
        |(last, hourly, daily, weekly, monthly, yearly)| Keep {
            last,
            hourly,
            daily,
            weekly,
            monthly,
            yearly,
        },
    )
}

fn history_strategy() -> impl Strategy<Value = Vec<Item>> {
    // Up to 60 backups within ~3 years, some at the same moment.
    prop::collection::vec(0i64..(3 * 365 * 24), 0..60).prop_map(|hours| {
        let base = at(2024, 1, 1, 0);
        items(
            &hours
                .iter()
                .map(|h| base + h * 3_600_000)
                .collect::<Vec<_>>(),
        )
    })
}

proptest! {
    #[test]
    fn the_newest_is_kept_and_every_backup_is_decided_once(
        keep in keep_strategy(),
        history in history_strategy(),
    ) {
        let d = apply(&keep, &history);
        prop_assert_eq!(d.len(), history.len());
        let mut ids: Vec<&str> = d.iter().map(|d| d.id.as_str()).collect();
        ids.sort();
        let mut want: Vec<&str> = history.iter().map(|i| i.id.as_str()).collect();
        want.sort();
        prop_assert_eq!(ids, want, "kept ∪ removed = all, each once");
        if let Some(newest) = history.iter().max_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id))) {
            let first = &d[0];
            prop_assert_eq!(&first.id, &newest.id);
            prop_assert!(first.keep, "the newest is kept: {:?}", first);
        }
        // A rule never keeps more than its count.
        let last = d.iter().filter(|d| d.reason.starts_with("keep-last")).count();
        prop_assert!(last <= keep.last as usize);
        let daily = d.iter().filter(|d| d.reason.starts_with("keep-daily")).count();
        prop_assert!(daily <= keep.daily as usize);
    }

    #[test]
    fn pruning_again_removes_nothing_more(
        keep in keep_strategy(),
        history in history_strategy(),
    ) {
        let first = apply(&keep, &history);
        let survivors: Vec<Item> = history
            .iter()
            .filter(|i| first.iter().any(|d| d.keep && d.id == i.id))
            .cloned()
            .collect();
        let second = apply(&keep, &survivors);
        prop_assert!(second.iter().all(|d| d.keep), "idempotent: {:?}", second);
    }

    #[test]
    fn input_order_does_not_matter(
        keep in keep_strategy(),
        history in history_strategy(),
    ) {
        let mut reversed = history.clone();
        reversed.reverse();
        prop_assert_eq!(apply(&keep, &history), apply(&keep, &reversed));
    }
}
