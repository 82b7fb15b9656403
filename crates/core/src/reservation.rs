//! Slots of a provider key reserved for cache-warm clients (spec §6.3, with fix §11.1 #5).
//!
//! A client whose prompt cache is warm on a key gains most from staying on it, so when a key runs
//! near its limit a share of its slots is kept for such clients. The share (the *ratio*) starts
//! small while little is known about the key (probe phase) and grows with load and with the
//! confidence that the limit is right (stable phase).
//!
//! Invariants:
//! - The ratio is always within [[`MIN_RATIO`], [`MAX_RATIO`]].
//! - Cache-warm requests may use every slot; others at most [`non_cached_cap`] slots.
//! - One rounding rule everywhere: `max(1, ⌊limit × (1 − ratio)⌋)`, never above the limit.
//!
//! Pure functions of the stats the caller passes; no clock reads.

use chrono::{DateTime, Utc};

/// The ratio while the key is new or lightly loaded.
pub const MIN_RATIO: f64 = 0.10;
/// The ratio under full load with full confidence.
pub const MAX_RATIO: f64 = 0.35;
/// Below this many requests seen the key is in its probe phase: the ratio stays at the minimum.
pub const PROBE_PHASE_REQUESTS: u64 = 100;
/// How many recent limits the stability measure looks at.
pub const STABILITY_LIMITS: usize = 5;

/// What the reservation needs to know about a key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyStats {
    /// Requests recorded on the key.
    pub requests: u64,
    /// Successful requests among them.
    pub successes: u64,
    /// Concurrency 429s seen.
    pub concurrent_429s: u64,
    /// Request-per-minute 429s seen.
    pub rpm_429s: u64,
    /// The last 429 of any kind.
    pub last_429_at: Option<DateTime<Utc>>,
    /// The new limits of the last ≤ 5 adaptive adjustments, oldest first.
    pub recent_limits: Vec<u32>,
    /// How many adaptive adjustments the history holds.
    pub adjustments: usize,
}

/// The share of a key's slots kept for cache-warm clients, in [`MIN_RATIO`, `MAX_RATIO`].
///
/// Probe phase (fewer than [`PROBE_PHASE_REQUESTS`] requests seen): [`MIN_RATIO`]. Stable phase:
/// [`MIN_RATIO`] below half load, growing linearly with load from 0.5 to 0.8, and
/// `MIN_RATIO + confidence × 0.25` from 0.8 on. An unknown limit means no load.
pub fn reservation_ratio(
    stats: &KeyStats,
    in_flight: u32,
    limit: Option<u32>,
    now: DateTime<Utc>,
) -> f64 {
    if seen(stats) < PROBE_PHASE_REQUESTS {
        return MIN_RATIO;
    }
    let load = match limit {
        None => 0.0,
        Some(0) => 1.0,
        Some(limit) => (f64::from(in_flight) / f64::from(limit)).min(1.0),
    };
    let span = MAX_RATIO - MIN_RATIO;
    let ratio = if load < 0.5 {
        MIN_RATIO
    } else if load < 0.8 {
        MIN_RATIO + confidence(stats, now) * ((load - 0.5) / 0.3) * span
    } else {
        MIN_RATIO + confidence(stats, now) * span
    };
    // The parts are bounded already; this guards the invariant against float surprises.
    if ratio.is_nan() {
        MIN_RATIO
    } else {
        ratio.clamp(MIN_RATIO, MAX_RATIO)
    }
}

/// How sure we are that the key's limit is right, in [0, 1] (0 in the probe phase): success
/// rate (weight 0.4), time since the last 429 (0.3) and stability of the learned limit (0.3).
pub fn confidence(stats: &KeyStats, now: DateTime<Utc>) -> f64 {
    if seen(stats) < PROBE_PHASE_REQUESTS {
        return 0.0;
    }
    // The spec also weighs the rate by `requests / 50` below 50 requests, but past the probe
    // phase there are either 100 or more requests or none (then other evidence stood in), so
    // that branch can never apply.
    let success = if stats.requests == 0 {
        0.0
    } else {
        0.4 * (stats.successes as f64 / stats.requests as f64).min(1.0)
    };
    let calm = match stats.last_429_at {
        None => 0.3,
        Some(at) => {
            let hours = (now - at).num_seconds().max(0) as f64 / 3600.0;
            0.3 * (hours / 24.0).min(1.0)
        }
    };
    let stability = if stats.adjustments >= 3 {
        let skip = stats.recent_limits.len().saturating_sub(STABILITY_LIMITS);
        let limits = &stats.recent_limits[skip..];
        match sample_variance(limits) {
            Some(variance) => 0.3 * (1.0 - variance / 10.0).max(0.0),
            None => 0.15,
        }
    } else {
        0.15
    };
    (success + calm + stability).clamp(0.0, 1.0)
}

/// Whether a request may take one more slot on a key with `in_flight` slots used.
pub fn admits(in_flight: u32, limit: u32, ratio: f64, cache_warm: bool) -> bool {
    if cache_warm {
        in_flight < limit
    } else {
        in_flight < non_cached_cap(limit, ratio)
    }
}

/// The slots a request without a warm cache may use: `max(1, ⌊limit × (1 − ratio)⌋)`, never
/// above `limit`.
///
/// The minimum of one keeps a key with limit 1 (or a small limit and a high ratio) usable by
/// ordinary traffic: plain `floor` would reserve its only slot for cache-warm clients that may
/// never come (the reference's Redis path had that bug, its memory path used `ceil`; §11.1 #5).
/// `ratio` is clamped to [0, 1]; NaN counts as 0.
pub fn non_cached_cap(limit: u32, ratio: f64) -> u32 {
    let ratio = if ratio > 0.0 { ratio.min(1.0) } else { 0.0 };
    // The epsilon absorbs representation error (e.g. 10 × 0.7 = 6.999…), so that an exact
    // product is not floored one below.
    let cap = (f64::from(limit) * (1.0 - ratio) + 1e-9).floor();
    // `cap` is within [0, limit], so the conversion is exact.
    let cap = cap as u32;
    cap.max(1).min(limit)
}

/// Requests seen on the key; without recorded requests, the other evidence stands in, each
/// adjustment worth ten (spec §6.3).
fn seen(stats: &KeyStats) -> u64 {
    if stats.requests > 0 {
        return stats.requests;
    }
    let adjustments = u64::try_from(stats.adjustments).unwrap_or(u64::MAX);
    stats
        .concurrent_429s
        .saturating_add(stats.rpm_429s)
        .saturating_add(stats.successes)
        .saturating_add(adjustments.saturating_mul(10))
}

/// The sample variance (n − 1), `None` for fewer than two values.
fn sample_variance(values: &[u32]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
    let squares = values
        .iter()
        .map(|v| (f64::from(*v) - mean).powi(2))
        .sum::<f64>();
    Some(squares / (n - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
            .single()
            .expect("valid")
    }

    /// A well-known key: 200 requests, all successful, no 429 ever, no adjustments.
    fn stable() -> KeyStats {
        KeyStats {
            requests: 200,
            successes: 200,
            ..Default::default()
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn probe_phase_keeps_the_minimum() {
        let stats = KeyStats {
            requests: 99,
            successes: 99,
            ..Default::default()
        };
        assert_eq!(reservation_ratio(&stats, 10, Some(10), now()), MIN_RATIO);
        assert_eq!(confidence(&stats, now()), 0.0);
    }

    #[test]
    fn without_requests_other_evidence_counts() {
        // 4 adjustments × 10 + 60 successes = 100: stable phase.
        let stats = KeyStats {
            successes: 60,
            adjustments: 4,
            recent_limits: vec![10, 10, 10, 10],
            ..Default::default()
        };
        assert_eq!(seen(&stats), 100);
        // No requests ⇒ no success part; calm 0.3 + stability 0.3.
        assert!(close(confidence(&stats, now()), 0.6));
        let one_short = KeyStats {
            successes: 59,
            ..stats
        };
        assert_eq!(
            reservation_ratio(&one_short, 10, Some(10), now()),
            MIN_RATIO
        );
    }

    #[test]
    fn stable_phase_grows_with_load() {
        // Confidence: 0.4 + 0.3 + 0.15 = 0.85.
        let stats = stable();
        assert!(close(confidence(&stats, now()), 0.85));
        assert_eq!(reservation_ratio(&stats, 4, Some(10), now()), MIN_RATIO);
        assert!(close(
            reservation_ratio(&stats, 5, Some(10), now()),
            MIN_RATIO
        ));
        // Load 0.65: halfway up the ramp.
        let mid = reservation_ratio(&stats, 13, Some(20), now());
        assert!(close(mid, 0.10 + 0.85 * 0.5 * 0.25), "{mid}");
        assert!(close(
            reservation_ratio(&stats, 8, Some(10), now()),
            0.10 + 0.85 * 0.25
        ));
        // Over the limit counts as full load.
        assert!(close(
            reservation_ratio(&stats, 30, Some(10), now()),
            0.10 + 0.85 * 0.25
        ));
        // No known limit: no load.
        assert_eq!(reservation_ratio(&stats, 30, None, now()), MIN_RATIO);
    }

    #[test]
    fn confidence_parts_follow_the_spec() {
        // The success part is the success rate.
        let mostly_ok = KeyStats {
            requests: 200,
            successes: 150,
            adjustments: 10,
            recent_limits: vec![20, 20, 20, 20, 20],
            ..Default::default()
        };
        // 0.4 × 0.75 + 0.3 + 0.3
        assert!(close(confidence(&mostly_ok, now()), 0.9));
        // A 429 six hours ago: calm is a quarter.
        let recent_429 = KeyStats {
            last_429_at: Some(now() - TimeDelta::hours(6)),
            ..stable()
        };
        assert!(close(confidence(&recent_429, now()), 0.4 + 0.075 + 0.15));
        // An unsteady limit: variance of [10, 14] is 8 ⇒ 0.3 × 0.2.
        let unsteady = KeyStats {
            adjustments: 3,
            recent_limits: vec![10, 14],
            ..stable()
        };
        assert!(close(confidence(&unsteady, now()), 0.4 + 0.3 + 0.06));
        // Only the last five limits count: the wild first one is ignored.
        let long = KeyStats {
            adjustments: 6,
            recent_limits: vec![100, 10, 10, 10, 10, 10],
            ..stable()
        };
        assert!(close(confidence(&long, now()), 1.0));
        // A single value gives half weight.
        let single = KeyStats {
            adjustments: 3,
            recent_limits: vec![10],
            ..stable()
        };
        assert!(close(confidence(&single, now()), 0.85));
    }

    #[test]
    fn the_cap_rounds_down_but_keeps_one_slot() {
        assert_eq!(non_cached_cap(10, 0.10), 9);
        assert_eq!(non_cached_cap(10, 0.35), 6);
        assert_eq!(
            non_cached_cap(10, 0.30),
            7,
            "exact products are not floored one below"
        );
        assert_eq!(non_cached_cap(100, 0.35), 65);
        assert_eq!(
            non_cached_cap(1, 0.35),
            1,
            "a key with limit 1 stays usable"
        );
        assert_eq!(non_cached_cap(2, 0.35), 1);
        assert_eq!(non_cached_cap(0, 0.10), 0, "never above the limit");
        assert_eq!(non_cached_cap(10, f64::NAN), 10);
        assert_eq!(non_cached_cap(10, 2.0), 1);
    }

    #[test]
    fn cache_warm_requests_may_use_every_slot() {
        assert!(admits(7, 10, 0.2, false));
        assert!(!admits(8, 10, 0.2, false));
        assert!(!admits(8, 10, 0.35, false));
        assert!(admits(9, 10, 0.35, true));
        assert!(!admits(10, 10, 0.35, true));
        assert!(admits(0, 1, 0.35, false));
        assert!(!admits(1, 1, 0.35, false));
    }

    fn stats() -> impl Strategy<Value = KeyStats> {
        (
            0u64..10_000,
            0u64..10_000,
            0u64..1_000,
            0u64..1_000,
            proptest::option::of(-100_000i64..100_000),
            proptest::collection::vec(0u32..300, 0..8),
            0usize..30,
        )
            .prop_map(
                |(requests, successes, c, r, ago, limits, adjustments)| KeyStats {
                    requests,
                    successes,
                    concurrent_429s: c,
                    rpm_429s: r,
                    last_429_at: ago.map(|s| now() - TimeDelta::seconds(s)),
                    recent_limits: limits,
                    adjustments,
                },
            )
    }

    proptest! {
        #[test]
        fn ratio_stays_in_range(
            stats in stats(),
            in_flight in 0u32..500,
            limit in proptest::option::of(0u32..300),
        ) {
            let ratio = reservation_ratio(&stats, in_flight, limit, now());
            prop_assert!((MIN_RATIO..=MAX_RATIO).contains(&ratio), "{}", ratio);
            let c = confidence(&stats, now());
            prop_assert!((0.0..=1.0).contains(&c));
        }

        #[test]
        fn ratio_never_falls_as_load_rises(stats in stats(), a in 0u32..300, b in 0u32..300, limit in 1u32..300) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(
                reservation_ratio(&stats, lo, Some(limit), now())
                    <= reservation_ratio(&stats, hi, Some(limit), now()) + 1e-12
            );
        }

        #[test]
        fn cap_is_bounded_and_monotone(limit in 0u32..10_000, r1 in 0.0f64..1.0, r2 in 0.0f64..1.0) {
            let cap = non_cached_cap(limit, r1);
            prop_assert!(cap <= limit);
            if limit >= 1 {
                prop_assert!(cap >= 1);
            }
            let (lo, hi) = (r1.min(r2), r1.max(r2));
            prop_assert!(non_cached_cap(limit, hi) <= non_cached_cap(limit, lo));
        }

        #[test]
        fn non_cached_admission_implies_cache_warm_admission(
            in_flight in 0u32..300,
            limit in 0u32..300,
            ratio in MIN_RATIO..=MAX_RATIO,
        ) {
            if admits(in_flight, limit, ratio, false) {
                prop_assert!(admits(in_flight, limit, ratio, true));
            }
        }
    }
}
