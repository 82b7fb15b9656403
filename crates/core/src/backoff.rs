//! The wait before retrying the same key (spec §11.1 #3: the reference retried at once).
//!
//! Exponential growth with "equal jitter": half of the delay is fixed, so a retry always waits a
//! meaningful time, and half is random, so clients that failed together do not retry together.
//!
//! Invariants: the result never exceeds `max`, and never falls below half of the capped
//! exponential delay. The caller passes the random number, so the function is deterministic.

use std::time::Duration;

/// The delay before retry number `retry` (0 for the first retry): `base × 2^retry` capped at
/// `max`, then half of it plus `unit_random` × the other half. `unit_random` is expected in
/// `[0, 1)`; values outside (and NaN) are clamped into `[0, 1]` so a bad random source can never
/// make the delay exceed `max`.
pub fn backoff(retry: u32, base: Duration, max: Duration, unit_random: f64) -> Duration {
    let exponential = match 2u32.checked_pow(retry).and_then(|f| base.checked_mul(f)) {
        Some(delay) => delay.min(max),
        // Overflow means "larger than anything": the cap, unless there is nothing to grow.
        None if base.is_zero() => Duration::ZERO,
        None => max,
    };
    let half = exponential / 2;
    let r = if unit_random.is_nan() {
        0.0
    } else {
        unit_random.clamp(0.0, 1.0)
    };
    let jitter = Duration::try_from_secs_f64(half.as_secs_f64() * r).unwrap_or(Duration::ZERO);
    // The rounding of the float path could add a nanosecond; the cap keeps the invariant exact.
    (half + jitter).min(exponential)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn grows_exponentially_with_equal_jitter() {
        let base = MS(100);
        let max = Duration::from_secs(10);
        // No jitter: exactly half of base × 2^retry.
        assert_eq!(backoff(0, base, max, 0.0), MS(50));
        assert_eq!(backoff(1, base, max, 0.0), MS(100));
        assert_eq!(backoff(3, base, max, 0.0), MS(400));
        // Half jitter: three quarters.
        assert_eq!(backoff(2, base, max, 0.5), MS(300));
        // Close to full jitter: almost the whole delay.
        assert!(backoff(2, base, max, 0.999) > MS(399));
    }

    #[test]
    fn is_capped_at_max_even_for_huge_retries() {
        let max = Duration::from_secs(5);
        assert_eq!(backoff(10, MS(100), max, 0.0), Duration::from_millis(2500));
        assert_eq!(backoff(u32::MAX, MS(100), max, 1.0), max);
        assert!(backoff(u32::MAX, MS(100), max, 0.999_999) > MS(4_999));
        assert_eq!(backoff(63, Duration::MAX, max, 1.0), max);
        assert_eq!(backoff(40, Duration::ZERO, max, 0.5), Duration::ZERO);
    }

    #[test]
    fn bad_randoms_are_clamped() {
        let base = MS(100);
        let max = Duration::from_secs(10);
        assert_eq!(backoff(0, base, max, -3.0), MS(50));
        assert_eq!(backoff(0, base, max, f64::NAN), MS(50));
        assert_eq!(backoff(0, base, max, 7.0), MS(100));
        assert_eq!(backoff(0, base, max, f64::INFINITY), MS(100));
    }

    #[test]
    fn is_deterministic_for_a_given_random() {
        let a = backoff(4, MS(250), Duration::from_secs(30), 0.123);
        let b = backoff(4, MS(250), Duration::from_secs(30), 0.123);
        assert_eq!(a, b);
    }

    proptest! {
        #[test]
        fn never_exceeds_max_and_keeps_the_fixed_half(
            retry in 0u32..100,
            base_ms in 0u64..100_000,
            max_ms in 0u64..1_000_000,
            r in proptest::num::f64::ANY,
        ) {
            let (base, max) = (MS(base_ms), MS(max_ms));
            let d = backoff(retry, base, max, r);
            prop_assert!(d <= max);
            let capped = base
                .checked_mul(2u32.saturating_pow(retry.min(31)))
                .unwrap_or(max)
                .min(max);
            prop_assert!(d >= capped / 2);
        }

        #[test]
        fn grows_with_the_retry_for_a_fixed_random(retry in 0u32..40, r in 0.0f64..1.0) {
            let (base, max) = (MS(10), Duration::from_secs(60));
            prop_assert!(backoff(retry + 1, base, max, r) >= backoff(retry, base, max, r));
        }
    }
}
