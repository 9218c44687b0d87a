//! Disk-full forecasts: a least-squares line through a mount's recent use,
//! extended forward (Prometheus' `predict_linear`, Netdata's "disk fill
//! rate"). Pure; the engine keeps each mount's points in a [`Trend`].

use std::collections::VecDeque;

/// The fewest points a forecast is made from.
pub const MIN_POINTS: usize = 5;
/// Points kept per mount, however long the window: older ones are thinned
/// (a point is kept only if it is at least window / `MAX_POINTS` after
/// the one before).
pub const MAX_POINTS: usize = 240;

/// The line through `points` (t in ms, y) by least squares: the value it
/// predicts at `at_ms`, and its slope per millisecond. `None` for fewer
/// than two distinct times.
pub fn fit(points: &[(i64, f64)], at_ms: i64) -> Option<(f64, f64)> {
    let n = points.len();
    if n < 2 {
        return None;
    }
    // Times relative to the newest, in seconds: epoch milliseconds squared
    // would lose the precision the fit needs.
    let t0 = points.iter().map(|p| p.0).max()?;
    let x = |t: i64| (t - t0) as f64 / 1000.0;
    let mean_x = points.iter().map(|p| x(p.0)).sum::<f64>() / n as f64;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(t, y) in points {
        let dx = x(t) - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    if sxx <= f64::EPSILON || !sxy.is_finite() {
        return None;
    }
    let slope = sxy / sxx;
    let at = mean_y + slope * (x(at_ms) - mean_x);
    Some((at, slope / 1000.0))
}

/// How long until the line through `points` reaches `total`, from `now_ms`:
/// `Some(0)` if it is there already, `None` if it never does (flat or
/// shrinking) or there is too little to judge.
pub fn time_to_full(points: &[(i64, f64)], total: f64, now_ms: i64) -> Option<i64> {
    if points.len() < MIN_POINTS || total <= 0.0 {
        return None;
    }
    let (now_value, per_ms) = fit(points, now_ms)?;
    if now_value >= total {
        return Some(0);
    }
    if per_ms <= 0.0 {
        return None;
    }
    let ms = (total - now_value) / per_ms;
    (ms.is_finite() && ms < i64::MAX as f64).then_some(ms as i64)
}

/// Whether the mount is predicted to fill within `within_ms` of `now_ms`.
pub fn fills_within(points: &[(i64, f64)], total: f64, now_ms: i64, within_ms: i64) -> bool {
    time_to_full(points, total, now_ms).is_some_and(|ms| ms <= within_ms)
}

/// One mount's recent use: (ms, bytes used) oldest first, and its size.
#[derive(Debug, Clone, Default)]
pub struct Trend {
    pub points: VecDeque<(i64, f64)>,
    pub total: f64,
}

impl Trend {
    /// Adds a sample taken at `ts_ms` (ignored unless newer than the last
    /// by window / [`MAX_POINTS`]); forgets what is older than `window_ms`.
    pub fn push(&mut self, ts_ms: i64, used: f64, total: f64, window_ms: i64) {
        let step = (window_ms / MAX_POINTS as i64).max(1);
        if self.points.back().is_some_and(|(t, _)| ts_ms - t < step) {
            return;
        }
        // A resized mount starts over: the old line says nothing now.
        if total != self.total {
            self.points.clear();
            self.total = total;
        }
        self.points.push_back((ts_ms, used));
        while self
            .points
            .front()
            .is_some_and(|(t, _)| ts_ms - t > window_ms)
        {
            self.points.pop_front();
        }
    }

    /// Puts `older` (oldest first, read from the metric history) before the
    /// points the trend holds, thinned as [`Trend::push`] thins: a restarted
    /// hub goes on with the line it had instead of waiting a window. Nothing
    /// changes if the mount was resized since (the trend's size differs).
    pub fn seed(
        &mut self,
        older: impl IntoIterator<Item = (i64, f64)>,
        total: f64,
        window_ms: i64,
    ) {
        if !self.points.is_empty() && self.total != total {
            return;
        }
        // The live points stay as they are; the stored ones end a step before them.
        let step = (window_ms / MAX_POINTS as i64).max(1);
        let before = self
            .points
            .front()
            .map_or(i64::MAX, |(t, _)| t.saturating_sub(step));
        let mut seeded = Trend::default();
        for (t, used) in older.into_iter().filter(|(t, _)| *t <= before) {
            seeded.push(t, used, total, window_ms);
        }
        for &(t, used) in &self.points {
            seeded.push(t, used, total, window_ms);
        }
        seeded.total = total;
        *self = seeded;
    }

    /// The points of the last `window_ms` before `now_ms`.
    pub fn within(&self, window_ms: i64, now_ms: i64) -> Vec<(i64, f64)> {
        self.points
            .iter()
            .filter(|(t, _)| now_ms - t <= window_ms)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const HOUR: i64 = 3_600_000;
    const NOW: i64 = 1_800_000_000_000;

    /// `n` points over the hour before NOW of `f(seconds before now)`.
    fn series(n: usize, mut f: impl FnMut(f64) -> f64) -> Vec<(i64, f64)> {
        (0..n)
            .map(|i| {
                let t = NOW - HOUR + HOUR * i as i64 / (n as i64 - 1);
                (t, f((NOW - t) as f64 / 1000.0))
            })
            .collect()
    }

    #[test]
    fn a_straight_line_is_extended_exactly() {
        // 100 GB disk at 50 GB, growing 1 GB an hour: full in 50 hours.
        let gb = 1e9;
        let points = series(60, |ago| 50.0 * gb - ago / 3600.0 * gb);
        let (now, per_ms) = fit(&points, NOW).unwrap();
        assert!((now - 50.0 * gb).abs() < 1.0, "{now}");
        assert!((per_ms * HOUR as f64 - gb).abs() < 1.0, "{per_ms}");
        let left = time_to_full(&points, 100.0 * gb, NOW).unwrap();
        assert!((left - 50 * HOUR).abs() < 1000, "{left}");
        assert!(fills_within(&points, 100.0 * gb, NOW, 51 * HOUR));
        assert!(!fills_within(&points, 100.0 * gb, NOW, 49 * HOUR));
    }

    #[test]
    fn flat_shrinking_full_and_too_little() {
        let flat = series(30, |_| 90.0);
        assert_eq!(time_to_full(&flat, 100.0, NOW), None, "flat never fills");
        let shrinking = series(30, |ago| 90.0 + ago / 3600.0);
        assert_eq!(time_to_full(&shrinking, 100.0, NOW), None);
        let full = series(30, |_| 100.0);
        assert_eq!(time_to_full(&full, 100.0, NOW), Some(0));
        let few = series(MIN_POINTS - 1, |ago| 99.0 - ago);
        assert_eq!(time_to_full(&few, 100.0, NOW), None, "too few points");
        let same_time = vec![(NOW, 1.0); 10];
        assert_eq!(fit(&same_time, NOW), None);
    }

    #[test]
    fn a_trend_keeps_its_window_thinned_and_restarts_on_resize() {
        let mut t = Trend::default();
        for s in 0..10_000 {
            t.push(NOW + s * 1000, s as f64, 1e6, HOUR);
        }
        assert!(t.points.len() <= MAX_POINTS + 1, "{}", t.points.len());
        let span = t.points.back().unwrap().0 - t.points.front().unwrap().0;
        assert!(span <= HOUR, "{span}");
        t.push(NOW + 20_000_000, 5.0, 2e6, HOUR);
        assert_eq!(t.points.len(), 1, "a resized mount starts over");
        assert_eq!(t.within(HOUR, NOW + 20_000_000).len(), 1);
    }

    #[test]
    fn a_seeded_trend_goes_on_with_the_stored_line() {
        let window = 6 * HOUR;
        let mut t = Trend::default();
        // The hub has seen two points since its restart (one each 90 s is kept).
        t.push(NOW - 120_000, 580.0, 1000.0, window);
        t.push(NOW, 600.0, 1000.0, window);
        // The history has the hour before, 10 a minute, and one point it already has.
        let stored = (0..=60).map(|m| (NOW - HOUR + m * 60_000, 0.0 + 10.0 * m as f64));
        t.seed(stored, 1000.0, window);
        let pts = t.within(window, NOW);
        assert!(
            pts.windows(2).all(|w| w[0].0 < w[1].0),
            "oldest first, no repeats"
        );
        assert_eq!(pts.first(), Some(&(NOW - HOUR, 0.0)));
        assert_eq!(pts.last(), Some(&(NOW, 600.0)));
        // 10 a minute, 400 left: full in 40 minutes.
        let ms = time_to_full(&pts, 1000.0, NOW).expect("filling");
        assert!((ms - 40 * 60_000).abs() < 60_000, "{ms}");
        // A mount resized since: the stored line says nothing about it.
        let mut resized = Trend::default();
        resized.push(NOW, 600.0, 2000.0, window);
        resized.seed([(NOW - HOUR, 0.0)], 1000.0, window);
        assert_eq!(resized.points.len(), 1);
        // An empty trend takes the stored line whole.
        let mut fresh = Trend::default();
        fresh.seed([(NOW - 240_000, 1.0), (NOW - 120_000, 2.0)], 10.0, window);
        assert_eq!((fresh.points.len(), fresh.total), (2, 10.0));
    }

    proptest! {
        /// A disk filling at a steady rate, with noise small beside the
        /// rise over the window, is forecast to fill when its true fill
        /// time is well inside the horizon.
        #[test]
        fn a_steadily_filling_disk_fires(
            used in 0.05f64..0.95,
            fill_hours in 0.5f64..12.0,
            noise in 0.0f64..1.0,
            noises in proptest::collection::vec(-1.0f64..1.0, 10..200),
        ) {
            let total = 1e12;
            let per_hour = (1.0 - used) * total / fill_hours;
            // The fit's slope errs by at most 3·noise/span: keep that a
            // quarter of the rate.
            let amplitude = noise * per_hour / 12.0;
            let mut noises = noises.iter();
            let points = series(noises.len(), |ago| {
                used * total - ago / 3600.0 * per_hour + noises.next().unwrap() * amplitude
            });
            let within = (fill_hours * 2.0 * HOUR as f64) as i64 + HOUR;
            prop_assert!(fills_within(&points, total, NOW, within),
                "fill in {fill_hours} h: {:?}", time_to_full(&points, total, NOW));
        }

        /// A flat or shrinking disk with noise does not fire, however full
        /// (short of full) it is.
        #[test]
        fn a_flat_or_shrinking_disk_does_not_fire(
            used in 0.05f64..0.98,
            shrink_per_hour in 0.0f64..0.05,
            noise in 0.0f64..1.0,
            noises in proptest::collection::vec(-1.0f64..1.0, 10..200),
        ) {
            let total = 1e12;
            let within = 24 * HOUR;
            let headroom = (1.0 - used) * total;
            // Noise alone could tilt the line by 3·amplitude per hour
            // (span one hour): keep that from reaching full in `within`,
            // nor the newest value's own error (≤ 2.5·amplitude).
            let amplitude = noise * headroom / (3.0 * 24.0 + 2.5) / 2.0;
            let mut noises = noises.iter();
            let points = series(noises.len(), |ago| {
                used * total + ago / 3600.0 * shrink_per_hour * total
                    + noises.next().unwrap() * amplitude
            });
            prop_assert!(!fills_within(&points, total, NOW, within),
                "{:?}", time_to_full(&points, total, NOW));
        }

        /// Never a panic or a nonsense answer, whatever the points.
        #[test]
        fn any_points_give_an_answer_or_none(
            points in proptest::collection::vec((0i64..10_000_000, -1e15f64..1e15), 0..50),
            total in -1e15f64..1e15,
        ) {
            if let Some(ms) = time_to_full(&points, total, 10_000_000) {
                prop_assert!(ms >= 0);
            }
        }
    }
}
