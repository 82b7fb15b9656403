//! Learned concurrency for provider keys without a fixed limit (spec §6.4, AIMD).
//!
//! A concurrency 429 lowers the limit multiplicatively (to 85 % of what was in flight); sustained
//! high utilisation, or a long quiet period with steady use, raises it additively (+2). A
//! request-per-minute 429 changes nothing: concurrency was not the problem.
//!
//! Invariants:
//! - Nothing learned (`limit() == None`) means the key is uncapped. Utilisation is measured
//!   against `learned.unwrap_or(initial)`, but only a 429 installs the first limit: an increase
//!   never caps a key that had no cap (the reference did, turning an uncapped key into a 52 cap).
//! - A learned limit stays within `[min, max]`; a 429 never raises it.
//! - No increase within `cooldown` of a decrease.
//! - Samples and history are bounded (`max_samples`, `history`).
//!
//! Fixed-limit keys never reach this module: the caller does not feed them to it. It never reads
//! the clock: every call takes `now`.

use crate::breaker::serde_seconds;
use crate::ratelimit::LimitKind;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// The multiplicative decrease after a 429 whose kind is unknown (spec §6.4: ×0.9, gentler than
/// the ×0.85 of a known concurrency 429 because the evidence is weaker).
pub const UNKNOWN_DECREASE: f64 = 0.9;

/// Tuning of adaptive concurrency, the same for every key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveConfig {
    /// The reference limit utilisation is measured against before anything is learned.
    pub initial: u32,
    /// A learned limit never goes below this.
    pub min: u32,
    /// A learned limit never goes above this.
    pub max: u32,
    /// Additive increase.
    pub step: u32,
    /// Multiplicative decrease on a concurrency 429.
    pub decrease: f64,
    /// No increase this soon after a decrease (seconds when serialised).
    #[serde(with = "serde_seconds")]
    pub cooldown: Duration,
    /// Utilisation samples older than this are dropped (seconds when serialised).
    #[serde(with = "serde_seconds")]
    pub sample_window: Duration,
    /// At most this many utilisation samples are kept.
    pub max_samples: usize,
    /// A sample at or above this utilisation counts as high.
    pub util_threshold: f64,
    /// The share of high samples that triggers an increase.
    pub high_util_ratio: f64,
    /// Samples needed before a high-utilisation increase.
    pub min_samples: usize,
    /// A probe increase needs this long since the last 429 and the last probe increase (seconds
    /// when serialised).
    #[serde(with = "serde_seconds")]
    pub probe_interval: Duration,
    /// Samples needed before a probe increase.
    pub probe_min_samples: usize,
    /// Mean utilisation needed for a probe increase (a key nobody uses learns nothing).
    pub probe_min_avg_util: f64,
    /// Adjustments kept for display and for the reservation's stability measure.
    pub history: usize,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            initial: 50,
            min: 3,
            max: 200,
            step: 2,
            decrease: 0.85,
            cooldown: Duration::from_secs(5 * 60),
            sample_window: Duration::from_secs(120),
            max_samples: 20,
            util_threshold: 0.7,
            high_util_ratio: 0.6,
            min_samples: 5,
            probe_interval: Duration::from_secs(30 * 60),
            probe_min_samples: 10,
            probe_min_avg_util: 0.3,
            history: 20,
        }
    }
}

/// Why a limit changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustReason {
    /// A 429 identified as a concurrency limit.
    Concurrent429,
    /// A 429 of unknown kind.
    Unknown429,
    /// Most recent requests ran near the limit.
    HighUtilization,
    /// A long quiet period with steady use: try a little more.
    ProbeIncrease,
    /// Set by an admin.
    Manual,
}

/// One change of the learned limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adjustment {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The limit before (`None`: nothing learned, uncapped).
    pub old: Option<u32>,
    /// The limit after.
    pub new: u32,
    /// Why.
    pub reason: AdjustReason,
}

/// One utilisation sample, taken at a success.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Sample {
    /// When it was taken.
    at: DateTime<Utc>,
    /// In-flight requests over the reference limit, 3 decimals.
    util: f64,
}

/// What adaptive concurrency knows about one key. Serialisable: persisted and restored at start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdaptiveState {
    /// The learned limit; `None` = nothing learned = uncapped.
    learned: Option<u32>,
    /// Concurrency 429s seen.
    concurrent_429s: u64,
    /// Request-per-minute 429s seen.
    rpm_429s: u64,
    /// The last 429 of any kind (delays probe increases; feeds the reservation's confidence).
    last_429_at: Option<DateTime<Utc>>,
    /// The kind of the last 429.
    last_429_kind: Option<LimitKind>,
    /// Requests in flight at the last 429 (display).
    last_concurrent_peak: Option<u32>,
    /// Recent utilisation samples, oldest first.
    samples: VecDeque<Sample>,
    /// Recent adjustments, oldest first.
    history: VecDeque<Adjustment>,
    /// The last probe increase (probe increases are spaced by `probe_interval`).
    last_probe_increase_at: Option<DateTime<Utc>>,
    /// The last 429 that lowered (or would have lowered) the limit; starts the cool-down.
    last_decrease_at: Option<DateTime<Utc>>,
}

impl AdaptiveState {
    /// The enforced limit; `None` = nothing learned = uncapped.
    pub fn limit(&self) -> Option<u32> {
        self.learned
    }

    /// Concurrency 429s seen since the last reset.
    pub fn concurrent_429s(&self) -> u64 {
        self.concurrent_429s
    }

    /// Request-per-minute 429s seen since the last reset.
    pub fn rpm_429s(&self) -> u64 {
        self.rpm_429s
    }

    /// The last 429 of any kind.
    pub fn last_429_at(&self) -> Option<DateTime<Utc>> {
        self.last_429_at
    }

    /// The kind of the last 429.
    pub fn last_429_kind(&self) -> Option<LimitKind> {
        self.last_429_kind
    }

    /// Requests in flight at the last 429.
    pub fn last_concurrent_peak(&self) -> Option<u32> {
        self.last_concurrent_peak
    }

    /// Recent adjustments, oldest first.
    pub fn history(&self) -> impl ExactSizeIterator<Item = &Adjustment> {
        self.history.iter()
    }

    /// The new limits of the last `n` adjustments, oldest first (the reservation's stability
    /// input).
    pub fn recent_limits(&self, n: usize) -> Vec<u32> {
        let skip = self.history.len().saturating_sub(n);
        self.history.iter().skip(skip).map(|a| a.new).collect()
    }

    /// Utilisation samples currently kept.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Learns from a 429 on this key with `in_flight` requests running (0 if unknown).
    pub fn on_rate_limited(
        &mut self,
        kind: LimitKind,
        in_flight: u32,
        now: DateTime<Utc>,
        cfg: &AdaptiveConfig,
    ) -> Option<Adjustment> {
        self.last_429_at = Some(now);
        self.last_429_kind = Some(kind);
        self.last_concurrent_peak = Some(in_flight);
        // Samples taken before the 429 describe a load the key could not carry.
        self.samples.clear();
        let old = self.learned.unwrap_or(cfg.initial);
        let (new, reason) = match kind {
            LimitKind::Rpm => {
                self.rpm_429s = self.rpm_429s.saturating_add(1);
                return None;
            }
            LimitKind::Concurrent => {
                self.concurrent_429s = self.concurrent_429s.saturating_add(1);
                // What was in flight is the best evidence of the real limit; without it, shrink
                // what we believed.
                let from = if in_flight > 0 { in_flight } else { old };
                (scale(from, cfg.decrease), AdjustReason::Concurrent429)
            }
            LimitKind::Unknown => (scale(old, UNKNOWN_DECREASE), AdjustReason::Unknown429),
        };
        let mut new = bounded(new, cfg);
        if let Some(current) = self.learned {
            // Requests admitted before the last decrease may still be in flight and exceed the
            // new limit; their 429s must not raise it back.
            new = new.min(current);
        }
        self.last_decrease_at = Some(now);
        self.adjust(new, reason, now, cfg)
    }

    /// Learns from a success with `in_flight` requests running on the key (including this one).
    pub fn on_success(
        &mut self,
        in_flight: u32,
        now: DateTime<Utc>,
        cfg: &AdaptiveConfig,
    ) -> Option<Adjustment> {
        let reference = self.learned.unwrap_or(cfg.initial).max(1);
        let util = (f64::from(in_flight) / f64::from(reference) * 1000.0).round() / 1000.0;
        self.samples.push_back(Sample { at: now, util });
        self.prune_samples(now, cfg);

        // Nothing learned means uncapped: raising "the limit" would install a cap. Below the
        // maximum only; and never right after a decrease.
        let current = self.learned?;
        if current >= cfg.max || within(self.last_decrease_at, now, cfg.cooldown) {
            return None;
        }
        let reason = if self.high_utilization(cfg) {
            AdjustReason::HighUtilization
        } else if self.probe_due(now, cfg) {
            AdjustReason::ProbeIncrease
        } else {
            return None;
        };
        if reason == AdjustReason::ProbeIncrease {
            self.last_probe_increase_at = Some(now);
        }
        let new = bounded(current.saturating_add(cfg.step), cfg);
        // The samples were measured against the old limit.
        self.samples.clear();
        self.adjust(new, reason, now, cfg)
    }

    /// Forgets everything learned: limit, counters, timestamps, samples and history.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Sets the learned limit by hand (admin), bounded to `[cfg.min, cfg.max]`. Learning goes on
    /// from there. Returns the recorded adjustment.
    pub fn set_manual(
        &mut self,
        limit: u32,
        now: DateTime<Utc>,
        cfg: &AdaptiveConfig,
    ) -> Adjustment {
        let new = bounded(limit, cfg);
        let adjustment = Adjustment {
            at: now,
            old: self.learned,
            new,
            reason: AdjustReason::Manual,
        };
        self.learned = Some(new);
        self.samples.clear();
        self.push_history(adjustment.clone(), cfg);
        adjustment
    }

    /// Installs `new` if it differs from the learned limit and records it.
    fn adjust(
        &mut self,
        new: u32,
        reason: AdjustReason,
        now: DateTime<Utc>,
        cfg: &AdaptiveConfig,
    ) -> Option<Adjustment> {
        // A no-op (already at the floor) would only add noise to the history and make the
        // reservation's stability measure look steadier than it is.
        if self.learned == Some(new) {
            return None;
        }
        let adjustment = Adjustment {
            at: now,
            old: self.learned,
            new,
            reason,
        };
        self.learned = Some(new);
        self.push_history(adjustment.clone(), cfg);
        Some(adjustment)
    }

    fn push_history(&mut self, adjustment: Adjustment, cfg: &AdaptiveConfig) {
        self.history.push_back(adjustment);
        while self.history.len() > cfg.history {
            self.history.pop_front();
        }
    }

    fn prune_samples(&mut self, now: DateTime<Utc>, cfg: &AdaptiveConfig) {
        while self
            .samples
            .front()
            .is_some_and(|s| !within(Some(s.at), now, cfg.sample_window))
        {
            self.samples.pop_front();
        }
        while self.samples.len() > cfg.max_samples {
            self.samples.pop_front();
        }
    }

    /// At least `min_samples` samples and at least `high_util_ratio` of them at or above
    /// `util_threshold`.
    fn high_utilization(&self, cfg: &AdaptiveConfig) -> bool {
        let n = self.samples.len();
        if n == 0 || n < cfg.min_samples {
            return false;
        }
        let high = self
            .samples
            .iter()
            .filter(|s| s.util >= cfg.util_threshold)
            .count();
        high as f64 / n as f64 >= cfg.high_util_ratio
    }

    /// A long time since the last 429 and the last probe increase, with steady use.
    fn probe_due(&self, now: DateTime<Utc>, cfg: &AdaptiveConfig) -> bool {
        let n = self.samples.len();
        if n == 0 || n < cfg.probe_min_samples {
            return false;
        }
        let quiet = !within(self.last_429_at, now, cfg.probe_interval)
            && !within(self.last_probe_increase_at, now, cfg.probe_interval);
        let mean = self.samples.iter().map(|s| s.util).sum::<f64>() / n as f64;
        quiet && mean >= cfg.probe_min_avg_util
    }
}

/// `⌊value × factor⌋`, saturating; a non-finite or negative factor gives 0 (then the floor).
fn scale(value: u32, factor: f64) -> u32 {
    let scaled = (f64::from(value) * factor).floor();
    if scaled.is_nan() || scaled <= 0.0 {
        0
    } else if scaled >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        scaled as u32
    }
}

/// `value` bounded to `[min, max]`; `max` wins if the config has them crossed (no panic).
fn bounded(value: u32, cfg: &AdaptiveConfig) -> u32 {
    value.max(cfg.min).min(cfg.max)
}

/// Whether `since` is set and less than `span` before `now`.
fn within(since: Option<DateTime<Utc>>, now: DateTime<Utc>, span: Duration) -> bool {
    let Some(since) = since else {
        return false;
    };
    match TimeDelta::from_std(span) {
        Ok(span) => now.signed_duration_since(since) < span,
        // A span beyond chrono's range is forever.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
            .single()
            .expect("valid")
    }

    fn at(secs: i64) -> DateTime<Utc> {
        t0() + TimeDelta::seconds(secs)
    }

    fn cfg() -> AdaptiveConfig {
        AdaptiveConfig::default()
    }

    fn learned(limit: u32) -> AdaptiveState {
        let mut s = AdaptiveState::default();
        s.set_manual(limit, t0() - TimeDelta::hours(10), &cfg());
        s
    }

    #[test]
    fn concurrent_429_lowers_to_85_percent_of_in_flight() {
        let mut s = AdaptiveState::default();
        let adj = s
            .on_rate_limited(LimitKind::Concurrent, 40, t0(), &cfg())
            .expect("adjusts");
        assert_eq!((adj.old, adj.new), (None, 34));
        assert_eq!(adj.reason, AdjustReason::Concurrent429);
        assert_eq!(s.limit(), Some(34));
        assert_eq!(s.concurrent_429s(), 1);
        assert_eq!(s.last_429_kind(), Some(LimitKind::Concurrent));
        assert_eq!(s.last_concurrent_peak(), Some(40));
    }

    #[test]
    fn concurrent_429_without_in_flight_shrinks_the_old_limit() {
        let mut s = AdaptiveState::default();
        let adj = s.on_rate_limited(LimitKind::Concurrent, 0, t0(), &cfg());
        assert_eq!(adj.map(|a| a.new), Some(42), "⌊50 × 0.85⌋");
        let adj = s.on_rate_limited(LimitKind::Concurrent, 0, at(1), &cfg());
        assert_eq!(adj.map(|a| a.new), Some(35), "⌊42 × 0.85⌋");
    }

    #[test]
    fn decreases_stop_at_min_and_record_nothing_there() {
        let mut s = AdaptiveState::default();
        assert_eq!(
            s.on_rate_limited(LimitKind::Concurrent, 2, t0(), &cfg())
                .map(|a| a.new),
            Some(3)
        );
        assert_eq!(
            s.on_rate_limited(LimitKind::Concurrent, 2, at(1), &cfg()),
            None
        );
        assert_eq!(s.limit(), Some(3));
        assert_eq!(s.history().len(), 1);
        assert_eq!(s.concurrent_429s(), 2, "still counted");
    }

    #[test]
    fn a_429_never_raises_a_learned_limit() {
        let mut s = learned(20);
        // 30 in flight (admitted before a decrease) × 0.85 = 25 > 20.
        assert_eq!(
            s.on_rate_limited(LimitKind::Concurrent, 30, t0(), &cfg()),
            None
        );
        assert_eq!(s.limit(), Some(20));
    }

    #[test]
    fn rpm_429_only_counts() {
        let mut s = AdaptiveState::default();
        assert_eq!(s.on_rate_limited(LimitKind::Rpm, 30, t0(), &cfg()), None);
        assert_eq!(s.limit(), None);
        assert_eq!(s.rpm_429s(), 1);
        assert_eq!(s.last_429_at(), Some(t0()));
        // Nor does it start a cool-down: a learned key can still grow right after.
        let mut s = learned(10);
        s.on_rate_limited(LimitKind::Rpm, 9, t0(), &cfg());
        let mut grew = None;
        for i in 0..5 {
            grew = s.on_success(9, at(i), &cfg()).or(grew);
        }
        assert_eq!(grew.map(|a| a.new), Some(12));
    }

    #[test]
    fn unknown_429_lowers_by_ten_percent() {
        let mut s = AdaptiveState::default();
        let adj = s.on_rate_limited(LimitKind::Unknown, 1, t0(), &cfg());
        assert_eq!(
            adj.map(|a| (a.new, a.reason)),
            Some((45, AdjustReason::Unknown429))
        );
        let adj = s.on_rate_limited(LimitKind::Unknown, 1, at(1), &cfg());
        assert_eq!(adj.map(|a| a.new), Some(40));
    }

    #[test]
    fn high_utilisation_raises_by_step() {
        let mut s = learned(10);
        // 3 of 5 samples at 0.7 or more: 60 %.
        for (i, in_flight) in [7, 8, 2, 9, 1].into_iter().enumerate() {
            let adj = s.on_success(in_flight, at(i as i64), &cfg());
            if i < 4 {
                assert_eq!(adj, None, "sample {i}");
            } else {
                let adj = adj.expect("raised");
                assert_eq!((adj.old, adj.new), (Some(10), 12));
                assert_eq!(adj.reason, AdjustReason::HighUtilization);
            }
        }
        assert_eq!(s.sample_count(), 0, "samples cleared after a change");
    }

    #[test]
    fn low_utilisation_does_not_raise() {
        let mut s = learned(10);
        // Mean 0.2: below both the high threshold and the probe's minimum mean.
        for i in 0..20 {
            assert_eq!(s.on_success(2, at(i), &cfg()), None);
        }
        assert_eq!(s.limit(), Some(10));
    }

    #[test]
    fn a_key_that_never_saw_a_429_may_probe_at_moderate_use() {
        let mut s = learned(10);
        // Mean 0.6: not high, but steady use with no 429 ever and no earlier probe.
        let mut raised = None;
        for i in 0..10 {
            raised = s.on_success(6, at(i), &cfg()).or(raised);
        }
        assert_eq!(
            raised.map(|a| (a.new, a.reason)),
            Some((12, AdjustReason::ProbeIncrease))
        );
    }

    #[test]
    fn no_increase_within_the_cooldown_after_a_decrease() {
        let mut s = learned(20);
        s.on_rate_limited(LimitKind::Concurrent, 20, t0(), &cfg());
        assert_eq!(s.limit(), Some(17));
        for i in 0..10 {
            assert_eq!(s.on_success(17, at(10 + i), &cfg()), None, "in cool-down");
        }
        for i in 296..300 {
            assert_eq!(s.on_success(17, at(i), &cfg()), None, "still in cool-down");
        }
        // At five minutes: full utilisation raises it.
        let adj = s.on_success(17, at(300), &cfg());
        assert_eq!(adj.map(|a| a.new), Some(19));
    }

    #[test]
    fn never_above_max() {
        let mut s = learned(199);
        let mut last = None;
        for i in 0..5 {
            last = s.on_success(199, at(i), &cfg()).or(last);
        }
        assert_eq!(last.map(|a| a.new), Some(200));
        for i in 5..50 {
            assert_eq!(s.on_success(200, at(i), &cfg()), None);
        }
        assert_eq!(s.limit(), Some(200));
    }

    #[test]
    fn an_uncapped_key_is_never_capped_by_an_increase() {
        let mut s = AdaptiveState::default();
        for i in 0..50 {
            assert_eq!(s.on_success(60, at(i), &cfg()), None);
        }
        assert_eq!(s.limit(), None);
    }

    #[test]
    fn probe_increase_after_a_quiet_half_hour() {
        let mut s = learned(20);
        s.on_rate_limited(LimitKind::Rpm, 5, t0(), &cfg());
        // Mean utilisation 0.4, below the high threshold: only a probe can raise it.
        let mut first = None;
        for i in 0..10 {
            first = s.on_success(8, at(1800 + i), &cfg()).or(first);
        }
        let adj = first.expect("probe increase at 30 min with 10 samples");
        assert_eq!((adj.new, adj.reason), (22, AdjustReason::ProbeIncrease));
        // The next probe waits another 30 minutes.
        for i in 0..30 {
            assert_eq!(s.on_success(9, at(1900 + i * 2), &cfg()), None);
        }
        let mut second = None;
        for i in 0..10 {
            second = s.on_success(9, at(1810 + 1800 + i), &cfg()).or(second);
        }
        assert_eq!(second.map(|a| a.new), Some(24));
    }

    #[test]
    fn probe_increase_needs_a_quiet_period_after_any_429() {
        let mut s = learned(20);
        s.on_rate_limited(LimitKind::Rpm, 5, t0(), &cfg());
        for i in 0..10 {
            assert_eq!(s.on_success(8, at(600 + i), &cfg()), None);
        }
    }

    #[test]
    fn old_samples_expire() {
        let mut s = learned(10);
        for i in 0..4 {
            s.on_success(9, at(i), &cfg());
        }
        // 121 s later the four high samples are gone: one more is not enough.
        assert_eq!(s.on_success(9, at(125), &cfg()), None);
        assert_eq!(s.sample_count(), 1);
    }

    #[test]
    fn reset_and_manual() {
        let mut s = AdaptiveState::default();
        s.on_rate_limited(LimitKind::Concurrent, 10, t0(), &cfg());
        s.on_rate_limited(LimitKind::Rpm, 10, t0(), &cfg());
        s.reset();
        assert_eq!(s, AdaptiveState::default());
        let adj = s.set_manual(500, t0(), &cfg());
        assert_eq!(
            (adj.old, adj.new, adj.reason),
            (None, 200, AdjustReason::Manual)
        );
        assert_eq!(s.set_manual(0, t0(), &cfg()).new, 3);
        assert_eq!(s.recent_limits(5), vec![200, 3]);
    }

    #[test]
    fn persists_and_restores() {
        let mut s = AdaptiveState::default();
        s.on_rate_limited(LimitKind::Concurrent, 10, t0(), &cfg());
        s.on_success(5, at(1), &cfg());
        let json = serde_json::to_string(&s).expect("serialises");
        let back: AdaptiveState = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, s);
        let empty: AdaptiveState = serde_json::from_str("{}").expect("defaults");
        assert_eq!(empty.limit(), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        RateLimited(LimitKind, u32),
        Success(u32),
        Manual(u32),
        Advance(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let kind = prop_oneof![
            Just(LimitKind::Concurrent),
            Just(LimitKind::Rpm),
            Just(LimitKind::Unknown)
        ];
        prop_oneof![
            1 => (kind, 0u32..400).prop_map(|(k, n)| Op::RateLimited(k, n)),
            6 => (0u32..400).prop_map(Op::Success),
            1 => any::<u32>().prop_map(Op::Manual),
            3 => (0i64..4000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #[test]
        fn limit_stays_within_bounds_and_state_stays_bounded(
            ops in proptest::collection::vec(op(), 1..300),
            min in 1u32..10,
            span in 0u32..300,
            history in 0usize..10,
            max_samples in 0usize..30,
        ) {
            let cfg = AdaptiveConfig {
                min,
                max: min + span,
                history,
                max_samples,
                ..AdaptiveConfig::default()
            };
            let mut s = AdaptiveState::default();
            let mut now = t0();
            for op in ops {
                let before = s.limit();
                let adj = match op {
                    Op::RateLimited(kind, n) => {
                        let adj = s.on_rate_limited(kind, n, now, &cfg);
                        if let (Some(b), Some(a)) = (before, s.limit()) {
                            prop_assert!(a <= b, "a 429 raised {} to {}", b, a);
                        }
                        if kind == LimitKind::Rpm {
                            prop_assert_eq!(s.limit(), before);
                        }
                        adj
                    }
                    Op::Success(n) => {
                        let adj = s.on_success(n, now, &cfg);
                        if let Some(a) = &adj {
                            prop_assert!(before.is_some());
                            prop_assert!(a.new <= before.unwrap_or(0) + cfg.step);
                        }
                        adj
                    }
                    Op::Manual(n) => Some(s.set_manual(n, now, &cfg)),
                    Op::Advance(secs) => {
                        now += TimeDelta::seconds(secs);
                        None
                    }
                };
                if let Some(a) = adj {
                    prop_assert_eq!(Some(a.new), s.limit());
                }
                if let Some(l) = s.limit() {
                    prop_assert!(l >= cfg.min && l <= cfg.max, "{} outside [{}, {}]", l, cfg.min, cfg.max);
                }
                prop_assert!(s.history().len() <= cfg.history);
                prop_assert!(s.sample_count() <= cfg.max_samples);
            }
        }
    }
}
