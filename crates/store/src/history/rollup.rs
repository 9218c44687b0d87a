//! Levels, windows and buckets of the history (pure, no I/O).
//!
//! A level is raw samples (`RAW`) or a rollup tier (bucket width in
//! seconds). Each level is stored in chunks of one node's window: raw in
//! 10 min windows, 1 min buckets in 1 h windows, 15 min and 1 h buckets in
//! 1 day windows. A bucket is `[min, max, sum, count]` (see
//! [`super::codec::Columns`]); a raw point is `[value, 0, 0, 0]`.

use std::collections::BTreeMap;

use super::codec::Columns;

/// The raw level.
pub const RAW: u32 = 0;

/// Every level, finest first.
pub const LEVELS: [u32; 4] = [RAW, 60, 900, 3600];

/// The span of one chunk of `level`, in milliseconds.
pub fn window_ms(level: u32) -> i64 {
    match level {
        RAW => 600_000,
        60 => 3_600_000,
        _ => 86_400_000,
    }
}

/// A bucket's width in milliseconds (1 for raw points).
pub fn width_ms(level: u32) -> i64 {
    (i64::from(level) * 1000).max(1)
}

/// The level a tier is computed from.
pub fn finer(tier: u32) -> u32 {
    match tier {
        60 => RAW,
        900 => 60,
        _ => 900,
    }
}

/// The tier computed from `level`, if any.
pub fn coarser(level: u32) -> Option<u32> {
    match level {
        RAW => Some(60),
        60 => Some(900),
        900 => Some(3600),
        _ => None,
    }
}

/// Position of a tier in `[60, 900, 3600]`.
pub fn tier_index(tier: u32) -> usize {
    match tier {
        60 => 0,
        900 => 1,
        _ => 2,
    }
}

pub fn floor(ts: i64, width: i64) -> i64 {
    ts.div_euclid(width).saturating_mul(width)
}

pub fn ceil(ts: i64, width: i64) -> i64 {
    let f = floor(ts, width);
    if f == ts { f } else { f.saturating_add(width) }
}

/// Folds points of a finer level (time-ordered) into `width`-ms buckets.
/// Raw points count once each; finer buckets merge their aggregates.
pub fn aggregate(points: &[(i64, Columns)], from_raw: bool, width: i64) -> Vec<(i64, Columns)> {
    let mut out: Vec<(i64, Columns)> = Vec::new();
    for &(ts, c) in points {
        let part = if from_raw { [c[0], c[0], c[0], 1.0] } else { c };
        let bucket = floor(ts, width);
        match out.last_mut() {
            Some((b, acc)) if *b == bucket => {
                acc[0] = acc[0].min(part[0]);
                acc[1] = acc[1].max(part[1]);
                acc[2] += part[2];
                acc[3] += part[3];
            }
            _ => out.push((bucket, part)),
        }
    }
    out
}

/// `old` with every point of `new` put in (a point at the same time replaces).
pub fn merge(old: Vec<(i64, Columns)>, new: Vec<(i64, Columns)>) -> Vec<(i64, Columns)> {
    if old.is_empty() {
        return new;
    }
    if new.is_empty() {
        return old;
    }
    let mut all: BTreeMap<i64, Columns> = old.into_iter().collect();
    all.extend(new);
    all.into_iter().collect()
}

/// A stored bucket as the API shows it: `[ts, min, avg, max]`.
pub fn bucket(ts: i64, c: Columns, raw: bool) -> [f64; 4] {
    if raw {
        [ts as f64, c[0], c[0], c[0]]
    } else {
        [ts as f64, c[0], c[2] / c[3], c[1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(points: &[(i64, f64)]) -> Vec<(i64, Columns)> {
        points
            .iter()
            .map(|(t, v)| (*t, [*v, 0.0, 0.0, 0.0]))
            .collect()
    }

    #[test]
    fn raw_points_fold_into_min_max_sum_count() {
        let b = aggregate(
            &raw(&[(0, 3.0), (10_000, 1.0), (59_999, 2.0), (60_000, 7.0)]),
            true,
            60_000,
        );
        assert_eq!(
            b,
            vec![(0, [1.0, 3.0, 6.0, 3.0]), (60_000, [7.0, 7.0, 7.0, 1.0])]
        );
        assert_eq!(bucket(0, b[0].1, false), [0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn buckets_fold_into_coarser_buckets() {
        let fine = vec![
            (0, [1.0, 3.0, 6.0, 3.0]),
            (60_000, [0.0, 9.0, 9.0, 2.0]),
            (900_000, [5.0, 5.0, 5.0, 1.0]),
        ];
        assert_eq!(
            aggregate(&fine, false, 900_000),
            vec![(0, [0.0, 9.0, 15.0, 5.0]), (900_000, [5.0, 5.0, 5.0, 1.0])]
        );
    }

    #[test]
    fn negative_times_fall_in_the_bucket_below() {
        assert_eq!(floor(-1, 60_000), -60_000);
        assert_eq!(ceil(-1, 60_000), 0);
        assert_eq!(ceil(60_000, 60_000), 60_000);
        assert_eq!(ceil(60_001, 60_000), 120_000);
    }

    #[test]
    fn merging_replaces_points_at_the_same_time() {
        let merged = merge(raw(&[(1, 1.0), (2, 2.0)]), raw(&[(2, 5.0), (3, 3.0)]));
        assert_eq!(merged, raw(&[(1, 1.0), (2, 5.0), (3, 3.0)]));
    }

    #[test]
    fn windows_hold_whole_buckets_of_their_level() {
        for level in LEVELS {
            assert_eq!(window_ms(level) % width_ms(level), 0);
            if let Some(c) = coarser(level) {
                // A coarser bucket is made of whole finer windows or lies inside one.
                let (w, b) = (window_ms(level), width_ms(c));
                assert!(w % b == 0 || b % w == 0, "{level} → {c}");
                assert_eq!(finer(c), level);
            }
        }
    }
}
