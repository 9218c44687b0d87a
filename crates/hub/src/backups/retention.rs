//! Retention: which backups of one job to keep, PBS-style.
//!
//! The rules are `keep-last`, `keep-hourly`, `keep-daily`, `keep-weekly`,
//! `keep-monthly` and `keep-yearly`, applied in that order, newest backup
//! first, each to what the rules before it left (as Proxmox Backup Server
//! documents: "the next option does not take care of already covered
//! backups; it will only consider older backups"):
//!
//! - a period (hour, day, ISO week, month, year; UTC) that an earlier rule
//!   already kept a backup in is skipped: it does not count again;
//! - in a new period the newest backup is kept, and the rule's count goes up;
//!   older backups of that same period are removed (no later rule takes them);
//! - a rule stops once it has kept its count.
//!
//! What no rule kept is removed, except the newest backup, which is always
//! kept. With no rule set at all, everything is kept. Pure: no I/O, no clock.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use time::OffsetDateTime;
pub use twinbay_proto::backup::Keep;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

const RULES: [Rule; 6] = [
    Rule::Last,
    Rule::Hourly,
    Rule::Daily,
    Rule::Weekly,
    Rule::Monthly,
    Rule::Yearly,
];

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Last => "keep-last",
            Rule::Hourly => "keep-hourly",
            Rule::Daily => "keep-daily",
            Rule::Weekly => "keep-weekly",
            Rule::Monthly => "keep-monthly",
            Rule::Yearly => "keep-yearly",
        }
    }

    /// The period a backup made at `ms` falls in, as text (`2026-12-03`,
    /// `2026-W49`, …); for `keep-last`, the backup itself.
    fn period(self, id: &str, ms: i64) -> String {
        let t = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let (y, m, d, h) = (t.year(), u8::from(t.month()), t.day(), t.hour());
        match self {
            Rule::Last => id.to_string(),
            Rule::Hourly => format!("{y:04}-{m:02}-{d:02}T{h:02}"),
            Rule::Daily => format!("{y:04}-{m:02}-{d:02}"),
            Rule::Weekly => {
                let (iy, w, _) = t.to_iso_week_date();
                format!("{iy:04}-W{w:02}")
            }
            Rule::Monthly => format!("{y:04}-{m:02}"),
            Rule::Yearly => format!("{y:04}"),
        }
    }
}

/// One backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    pub created_ms: i64,
}

/// What happens to one backup, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub id: String,
    pub keep: bool,
    /// E.g. `keep-daily 2026-12-03`, `newest`, `keep all (no retention set)`,
    /// `not kept by keep-last 3, keep-daily 7`.
    pub reason: String,
}

/// Decides for every backup in `items` (any order); the answer is newest
/// first. Ties in time are broken by id, so the answer never depends on the
/// input order.
pub fn apply(keep: &Keep, items: &[Item]) -> Vec<Decision> {
    let mut sorted: Vec<&Item> = items.iter().collect();
    sorted.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
    if !keep.keeps_something() {
        return sorted
            .iter()
            .map(|i| Decision {
                id: i.id.clone(),
                keep: true,
                reason: "keep all (no retention set)".into(),
            })
            .collect();
    }
    // Per backup (by position): kept with this reason, or marked removed.
    let mut marks: BTreeMap<usize, Option<String>> = BTreeMap::new();
    for (rule, (_, count)) in RULES.into_iter().zip(keep.counts()) {
        if count == 0 {
            continue;
        }
        // Periods an earlier rule already has a backup in do not count again.
        let covered: HashSet<String> = sorted
            .iter()
            .enumerate()
            .filter(|(i, _)| matches!(marks.get(i), Some(Some(_))))
            .map(|(_, item)| rule.period(&item.id, item.created_ms))
            .collect();
        let mut taken: HashSet<String> = HashSet::new();
        for (i, item) in sorted.iter().enumerate() {
            if marks.contains_key(&i) {
                continue;
            }
            let period = rule.period(&item.id, item.created_ms);
            if covered.contains(&period) {
                continue;
            }
            if taken.contains(&period) {
                marks.insert(i, None);
                continue;
            }
            if taken.len() >= count as usize {
                break;
            }
            let reason = match rule {
                Rule::Last => format!("keep-last {}/{count}", taken.len() + 1),
                _ => format!("{} {period}", rule.name()),
            };
            taken.insert(period);
            marks.insert(i, Some(reason));
        }
    }
    let describe = keep.describe();
    sorted
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let (keep, reason) = match marks.get(&i) {
                Some(Some(reason)) => (true, reason.clone()),
                _ if i == 0 => (true, "newest (always kept)".to_string()),
                _ => (false, format!("not kept by {describe}")),
            };
            Decision {
                id: item.id.clone(),
                keep,
                reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
