//! Request latency histograms for `/metrics`: fixed bucket bounds and two atomic adds per
//! observation (its bucket, the sum), so the request path never locks or allocates to be
//! measured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: from a fast gateway answer to a long generation.
pub const BOUNDS_SECS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Counts of durations per bucket (the last counts those above every bound) and their sum; their
/// number is the buckets' total.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_SECS.len() + 1],
    sum_micros: AtomicU64,
}

/// A histogram read at one moment, cumulative as Prometheus wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `(upper bound in seconds, observations at or below it)` per bound, in order.
    pub cumulative: Vec<(f64, u64)>,
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_secs: f64,
}

impl Histogram {
    /// Counts one duration.
    pub fn observe(&self, duration: Duration) {
        let secs = duration.as_secs_f64();
        let bucket = BOUNDS_SECS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(BOUNDS_SECS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counts now, read without a lock: under load the sum may lag or lead the buckets by
    /// the observations being made at that moment.
    pub fn snapshot(&self) -> Snapshot {
        let mut total = 0;
        let cumulative = BOUNDS_SECS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, bucket)| {
                total += bucket.load(Ordering::Relaxed);
                (*bound, total)
            })
            .collect();
        let count = total + self.buckets[BOUNDS_SECS.len()].load(Ordering::Relaxed);
        Snapshot {
            cumulative,
            count,
            sum_secs: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{BOUNDS_SECS, Histogram};
    use std::time::Duration;

    #[test]
    fn a_duration_counts_in_the_first_bucket_that_holds_it_and_in_every_one_above() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500)); // ≤ 1 ms
        h.observe(Duration::from_millis(5)); // exactly on a bound: ≤ 5 ms
        h.observe(Duration::from_millis(300)); // ≤ 0.5 s
        h.observe(Duration::from_secs(400)); // above every bound
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert!((s.sum_secs - 400.3055).abs() < 1e-9, "{}", s.sum_secs);
        let at = |bound: f64| {
            s.cumulative
                .iter()
                .find(|(b, _)| (*b - bound).abs() < f64::EPSILON)
                .map(|(_, n)| *n)
        };
        assert_eq!(at(0.001), Some(1));
        assert_eq!(at(0.005), Some(2));
        assert_eq!(at(0.25), Some(2));
        assert_eq!(at(0.5), Some(3));
        assert_eq!(at(300.0), Some(3));
        assert_eq!(s.cumulative.len(), BOUNDS_SECS.len());
    }
}
