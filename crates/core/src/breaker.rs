//! The circuit breaker of one provider key (spec §5, with the fixes of §11.1 #10 and #11).
//!
//! 1. Closed: every outcome with a health effect goes into a sliding window (the newest
//!    `window_size` outcomes, none older than `window`). A failure that leaves at least
//!    `min_requests` entries with an error rate of at least `error_rate` opens the circuit.
//! 2. Open: everything is rejected until the recovery time, which doubles with every consecutive
//!    opening (`initial_recovery × 2^(k−1)`, capped at `max_recovery`).
//! 3. Half-open (from the recovery time on, derived from the clock, nothing stored): at most
//!    `half_open_probes` probe requests run at once; everything else is rejected.
//!    `half_open_successes` probe successes close the circuit, clear the window and the opening
//!    count; `half_open_failures` probe failures re-open it with the next, longer recovery.
//!
//! Invariants:
//! - Half-open never admits more than `half_open_probes` concurrent probes (the reference admitted
//!   all traffic). A probe slot is given back by [`Breaker::record`] or [`Breaker::release_probe`]
//!   exactly once; callers hold it in a drop guard.
//! - Only outcomes the classifier marks as a health success or failure are recorded; a 429 is
//!   not (§11.1 #11).
//! - A success that arrives while open (a request started before the opening) does not close it.
//! - The breaker is plain serialisable state: it is persisted and restored at start. The count
//!   of probes in flight is not persisted, because those probes died with the process.
//!
//! It never reads the clock: every call takes `now`.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// How long a caller refused for lack of a half-open probe slot should stay away before asking
/// again: about the time a probe takes to answer. Short on purpose, so that the key gets its
/// probes as soon as slots free up.
pub const PROBE_RETRY_HINT: Duration = Duration::from_secs(5);

/// Tuning of the breaker, the same for every key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// The window keeps at most this many newest outcomes.
    pub window_size: usize,
    /// Outcomes older than this leave the window (seconds when serialised).
    #[serde(with = "serde_seconds")]
    pub window: Duration,
    /// The circuit never opens on fewer outcomes than this, so one early failure cannot trip it.
    pub min_requests: usize,
    /// The failure share of the window (0–1) at which the circuit opens.
    pub error_rate: f64,
    /// Recovery time after a first opening (seconds when serialised).
    #[serde(with = "serde_seconds")]
    pub initial_recovery: Duration,
    /// The recovery time never grows past this (seconds when serialised).
    #[serde(with = "serde_seconds")]
    pub max_recovery: Duration,
    /// Probes admitted at once while half-open.
    pub half_open_probes: u32,
    /// Probe successes that close the circuit.
    pub half_open_successes: u32,
    /// Probe failures that re-open the circuit.
    pub half_open_failures: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window_size: 20,
            window: Duration::from_secs(300),
            min_requests: 5,
            error_rate: 0.5,
            initial_recovery: Duration::from_secs(30),
            max_recovery: Duration::from_secs(300),
            half_open_probes: 2,
            half_open_successes: 3,
            half_open_failures: 2,
        }
    }
}

/// The state of a circuit at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum CircuitState {
    /// Normal operation.
    Closed,
    /// Rejecting everything until `until`.
    Open {
        /// When it becomes half-open.
        until: DateTime<Utc>,
    },
    /// Admitting a bounded number of probes.
    HalfOpen,
}

/// The answer to "may a request use this key now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Yes, as ordinary traffic.
    Allowed,
    /// Yes, as one of the half-open probes: report its outcome with `probe = true`, or give the
    /// slot back with [`Breaker::release_probe`].
    Probe,
    /// No; ask again at `until` (a skipped candidate).
    Rejected {
        /// When asking again may succeed.
        until: DateTime<Utc>,
    },
}

/// A change of state worth an event, a log line and a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "transition")]
pub enum Transition {
    /// The circuit opened (or re-opened) until `until`.
    Opened {
        /// The recovery time.
        until: DateTime<Utc>,
    },
    /// The recovery time passed: probes are now admitted.
    HalfOpened,
    /// Enough probes succeeded: normal operation again.
    Closed,
}

/// One outcome in the sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct WindowEntry {
    /// When it was recorded.
    at: DateTime<Utc>,
    /// Whether it was a success.
    ok: bool,
}

/// The breaker of one provider key. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Breaker {
    /// Recent outcomes, oldest first; only filled while closed.
    window: VecDeque<WindowEntry>,
    /// `Some` while open or half-open: the end of the current recovery time.
    open_until: Option<DateTime<Utc>>,
    /// Openings since the circuit was last closed; drives the doubling recovery time.
    openings: u32,
    /// Probe successes in the current open/half-open episode.
    probe_successes: u32,
    /// Probe failures in the current open/half-open episode.
    probe_failures: u32,
    /// Failures in a row, whatever the state (display and logs).
    consecutive_failures: u32,
    /// Whether [`Breaker::tick`] has reported the current half-open phase.
    half_open_reported: bool,
    /// Probes admitted and not yet recorded or released. Not persisted: they died with the
    /// process that admitted them.
    #[serde(skip)]
    probes_in_flight: u32,
}

impl Breaker {
    /// A closed breaker with an empty window.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state at `now`: open turns half-open once `now` reaches the recovery time.
    pub fn state(&self, now: DateTime<Utc>) -> CircuitState {
        match self.open_until {
            None => CircuitState::Closed,
            Some(until) if now < until => CircuitState::Open { until },
            Some(_) => CircuitState::HalfOpen,
        }
    }

    /// Decides whether a request may use the key now, taking a probe slot when half-open.
    pub fn admit(&mut self, now: DateTime<Utc>, cfg: &BreakerConfig) -> Admission {
        match self.state(now) {
            CircuitState::Closed => Admission::Allowed,
            CircuitState::Open { until } => Admission::Rejected { until },
            CircuitState::HalfOpen if self.probes_in_flight < cfg.half_open_probes => {
                self.probes_in_flight += 1;
                Admission::Probe
            }
            CircuitState::HalfOpen => Admission::Rejected {
                until: after(now, PROBE_RETRY_HINT),
            },
        }
    }

    /// Reports the time-driven open → half-open change once, for events and metrics; the other
    /// transitions are returned by [`Breaker::record`]. Admission does not depend on calling it.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Option<Transition> {
        if self.state(now) == CircuitState::HalfOpen && !self.half_open_reported {
            self.half_open_reported = true;
            return Some(Transition::HalfOpened);
        }
        None
    }

    /// Records an outcome with a health effect (`success` or failure). `probe` says whether the
    /// request was admitted as a [`Admission::Probe`]; its slot is given back here.
    pub fn record(
        &mut self,
        success: bool,
        probe: bool,
        now: DateTime<Utc>,
        cfg: &BreakerConfig,
    ) -> Option<Transition> {
        if probe {
            self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        }
        self.consecutive_failures = if success {
            0
        } else {
            self.consecutive_failures.saturating_add(1)
        };
        match self.state(now) {
            CircuitState::Closed => {
                self.window.push_back(WindowEntry {
                    at: now,
                    ok: success,
                });
                self.prune(now, cfg);
                if !success && self.should_open(now, cfg) {
                    return Some(self.open(now, cfg));
                }
                None
            }
            // Late results of requests admitted before the opening say nothing about recovery.
            CircuitState::Open { .. } => None,
            // Only probes decide; a late ordinary request is not evidence of recovery.
            CircuitState::HalfOpen if !probe => None,
            CircuitState::HalfOpen if success => {
                self.probe_successes += 1;
                if self.probe_successes >= cfg.half_open_successes {
                    self.close();
                    return Some(Transition::Closed);
                }
                None
            }
            CircuitState::HalfOpen => {
                self.probe_failures += 1;
                if self.probe_failures >= cfg.half_open_failures {
                    return Some(self.open(now, cfg));
                }
                None
            }
        }
    }

    /// Gives a probe slot back when the probe ended with no health effect (a 429, a client error,
    /// the client gone).
    pub fn release_probe(&mut self) {
        self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
    }

    /// The admin "recover": closed, window and all counters cleared. Also forgets probes in
    /// flight, so a leaked probe slot can always be recovered from; a late release of one of
    /// them cannot go below zero.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// The number of outcomes in the window, as pruned at the last record.
    pub fn window_len(&self) -> usize {
        self.window.len()
    }

    /// The failure share of the window's outcomes still younger than `cfg.window` at `now`, in
    /// [0, 1]; 0 when there are none.
    pub fn error_rate(&self, now: DateTime<Utc>, cfg: &BreakerConfig) -> f64 {
        let (total, failures) = self
            .live(now, cfg)
            .fold((0usize, 0usize), |(total, failures), e| {
                (total + 1, failures + usize::from(!e.ok))
            });
        ratio(failures, total)
    }

    /// Failures in a row, whatever the state; reset by a success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Probes admitted and not yet recorded or released.
    pub fn probes_in_flight(&self) -> u32 {
        self.probes_in_flight
    }

    /// Drops entries older than `cfg.window` and keeps the newest `cfg.window_size`.
    fn prune(&mut self, now: DateTime<Utc>, cfg: &BreakerConfig) {
        let horizon = before(now, cfg.window);
        while self.window.front().is_some_and(|e| e.at < horizon) {
            self.window.pop_front();
        }
        while self.window.len() > cfg.window_size {
            self.window.pop_front();
        }
    }

    /// The window's entries still younger than `cfg.window` at `now`.
    fn live(&self, now: DateTime<Utc>, cfg: &BreakerConfig) -> impl Iterator<Item = &WindowEntry> {
        let horizon = before(now, cfg.window);
        self.window.iter().filter(move |e| e.at >= horizon)
    }

    /// Whether the window calls for opening.
    fn should_open(&self, now: DateTime<Utc>, cfg: &BreakerConfig) -> bool {
        self.live(now, cfg).count() >= cfg.min_requests
            && self.error_rate(now, cfg) >= cfg.error_rate
    }

    /// Opens (or re-opens) with the next recovery time.
    fn open(&mut self, now: DateTime<Utc>, cfg: &BreakerConfig) -> Transition {
        self.openings = self.openings.saturating_add(1);
        let until = after(now, recovery(self.openings, cfg));
        self.open_until = Some(until);
        self.probe_successes = 0;
        self.probe_failures = 0;
        self.half_open_reported = false;
        Transition::Opened { until }
    }

    /// Closes: a fresh start, so old failures cannot re-open it at once (§11.1 #10).
    fn close(&mut self) {
        self.window.clear();
        self.open_until = None;
        self.openings = 0;
        self.probe_successes = 0;
        self.probe_failures = 0;
        self.half_open_reported = false;
    }
}

/// The recovery time after the `openings`-th consecutive opening (1-based):
/// `initial × 2^(openings − 1)`, capped at `max`.
pub fn recovery(openings: u32, cfg: &BreakerConfig) -> Duration {
    let exponent = openings.saturating_sub(1);
    2u32.checked_pow(exponent)
        .and_then(|factor| cfg.initial_recovery.checked_mul(factor))
        .unwrap_or(cfg.max_recovery)
        .min(cfg.max_recovery)
}

/// `part / total`, 0 for an empty total.
fn ratio(part: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

/// `now + d`, saturating at the end of time.
fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `now − d`, saturating at the start of time.
fn before(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Serialises a [`Duration`] as seconds (an integer when whole, else a decimal), so that config
/// files say `window = 300` rather than `{ secs = 300, nanos = 0 }`.
pub(crate) mod serde_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes seconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_nanos() == 0 {
            s.serialize_u64(d.as_secs())
        } else {
            s.serialize_f64(d.as_secs_f64())
        }
    }

    /// Reads integer or decimal seconds; negative or non-finite values are refused.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
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

    fn cfg() -> BreakerConfig {
        BreakerConfig::default()
    }

    /// Records `n` failures at `now`; returns the last transition.
    fn fail(b: &mut Breaker, n: usize, now: DateTime<Utc>) -> Option<Transition> {
        let mut last = None;
        for _ in 0..n {
            last = b.record(false, false, now, &cfg()).or(last);
        }
        last
    }

    /// Opens a fresh breaker at `now` with five failures.
    fn opened(now: DateTime<Utc>) -> Breaker {
        let mut b = Breaker::new();
        assert_eq!(
            fail(&mut b, 5, now),
            Some(Transition::Opened {
                until: now + TimeDelta::seconds(30)
            })
        );
        b
    }

    #[test]
    fn stays_closed_below_min_requests() {
        let mut b = Breaker::new();
        assert_eq!(fail(&mut b, 4, t0()), None);
        assert_eq!(b.state(t0()), CircuitState::Closed);
        assert_eq!(b.error_rate(t0(), &cfg()), 1.0);
        assert_eq!(b.consecutive_failures(), 4);
    }

    #[test]
    fn opens_at_the_error_rate_threshold() {
        let mut b = Breaker::new();
        for _ in 0..5 {
            assert_eq!(b.record(true, false, t0(), &cfg()), None);
        }
        assert_eq!(fail(&mut b, 4, t0()), None, "4/9 is below 0.5");
        let opened = b.record(false, false, t0(), &cfg());
        assert_eq!(
            opened,
            Some(Transition::Opened { until: at(30) }),
            "5/10 reaches 0.5"
        );
        assert_eq!(b.state(at(29)), CircuitState::Open { until: at(30) });
        assert_eq!(
            b.admit(at(29), &cfg()),
            Admission::Rejected { until: at(30) }
        );
    }

    #[test]
    fn successes_never_open_it() {
        let mut b = Breaker::new();
        for i in 0..50 {
            assert_eq!(b.record(true, false, at(i), &cfg()), None);
        }
        assert_eq!(b.window_len(), 20, "the window keeps the newest 20");
    }

    #[test]
    fn old_entries_expire_by_time() {
        let mut b = Breaker::new();
        assert_eq!(fail(&mut b, 4, t0()), None);
        assert_eq!(b.error_rate(at(300), &cfg()), 1.0);
        assert_eq!(
            b.error_rate(at(301), &cfg()),
            0.0,
            "expired without a new record"
        );
        // 301 s later the four old failures are gone: one failure alone cannot open it.
        assert_eq!(fail(&mut b, 1, at(301)), None);
        assert_eq!(b.window_len(), 1);
        assert_eq!(b.state(at(301)), CircuitState::Closed);
        // Within 300 s they would have counted.
        let mut c = Breaker::new();
        fail(&mut c, 4, t0());
        assert!(matches!(
            fail(&mut c, 1, at(300)),
            Some(Transition::Opened { .. })
        ));
    }

    #[test]
    fn open_turns_half_open_at_the_recovery_time() {
        let mut b = opened(t0());
        assert_eq!(b.tick(at(29)), None);
        assert_eq!(b.state(at(30)), CircuitState::HalfOpen);
        assert_eq!(b.tick(at(30)), Some(Transition::HalfOpened));
        assert_eq!(b.tick(at(31)), None, "reported once");
    }

    #[test]
    fn half_open_admits_only_the_probe_budget() {
        let mut b = opened(t0());
        let now = at(30);
        assert_eq!(b.admit(now, &cfg()), Admission::Probe);
        assert_eq!(b.admit(now, &cfg()), Admission::Probe);
        assert_eq!(
            b.admit(now, &cfg()),
            Admission::Rejected {
                until: now + TimeDelta::seconds(5)
            }
        );
        // A released slot is available again.
        b.release_probe();
        assert_eq!(b.admit(now, &cfg()), Admission::Probe);
        assert_eq!(b.probes_in_flight(), 2);
    }

    #[test]
    fn probe_successes_close_it_and_clear_the_window() {
        let mut b = opened(t0());
        let mut now = at(30);
        for i in 0..3 {
            assert_eq!(b.admit(now, &cfg()), Admission::Probe);
            let t = b.record(true, true, now, &cfg());
            if i < 2 {
                assert_eq!(t, None);
            } else {
                assert_eq!(t, Some(Transition::Closed));
            }
            now += TimeDelta::seconds(1);
        }
        assert_eq!(b.state(now), CircuitState::Closed);
        assert_eq!(b.window_len(), 0);
        assert_eq!(b.admit(now, &cfg()), Admission::Allowed);
        // The old failures are forgotten: one new failure does not re-open it.
        assert_eq!(fail(&mut b, 1, now), None);
        assert_eq!(b.state(now), CircuitState::Closed);
    }

    #[test]
    fn closing_resets_the_recovery_doubling() {
        let mut b = opened(t0());
        for _ in 0..3 {
            b.admit(at(30), &cfg());
            b.record(true, true, at(30), &cfg());
        }
        assert_eq!(b.state(at(30)), CircuitState::Closed);
        assert_eq!(
            fail(&mut b, 5, at(40)),
            Some(Transition::Opened { until: at(70) }),
            "30 s again, not 60 s"
        );
    }

    #[test]
    fn probe_failures_reopen_with_doubling_recovery() {
        let mut b = opened(t0());
        let mut now = at(30);
        let mut expected = Vec::new();
        for recovery_secs in [60, 120, 240, 300, 300] {
            assert_eq!(b.admit(now, &cfg()), Admission::Probe);
            assert_eq!(b.admit(now, &cfg()), Admission::Probe);
            assert_eq!(b.record(false, true, now, &cfg()), None);
            let t = b.record(false, true, now, &cfg());
            let until = now + TimeDelta::seconds(recovery_secs);
            assert_eq!(t, Some(Transition::Opened { until }));
            expected.push(recovery_secs);
            now = until;
        }
        assert_eq!(expected, [60, 120, 240, 300, 300]);
    }

    #[test]
    fn recovery_doubles_and_caps() {
        let got: Vec<u64> = (1..=7).map(|k| recovery(k, &cfg()).as_secs()).collect();
        assert_eq!(got, [30, 60, 120, 240, 300, 300, 300]);
        assert_eq!(recovery(u32::MAX, &cfg()), Duration::from_secs(300));
    }

    #[test]
    fn a_late_success_while_open_does_not_close_it() {
        let mut b = opened(t0());
        for _ in 0..10 {
            assert_eq!(b.record(true, false, at(5), &cfg()), None);
        }
        assert_eq!(b.state(at(5)), CircuitState::Open { until: at(30) });
        // And late ordinary successes while half-open are not probes either.
        for _ in 0..10 {
            assert_eq!(b.record(true, false, at(31), &cfg()), None);
        }
        assert_eq!(b.state(at(31)), CircuitState::HalfOpen);
    }

    #[test]
    fn mixed_probe_results_need_their_own_thresholds() {
        let mut b = opened(t0());
        let now = at(30);
        b.admit(now, &cfg());
        b.admit(now, &cfg());
        assert_eq!(b.record(false, true, now, &cfg()), None);
        assert_eq!(b.record(true, true, now, &cfg()), None);
        b.admit(now, &cfg());
        assert_eq!(b.record(true, true, now, &cfg()), None);
        b.admit(now, &cfg());
        assert_eq!(b.record(true, true, now, &cfg()), Some(Transition::Closed));
    }

    #[test]
    fn reset_closes_and_clears_everything() {
        let mut b = opened(t0());
        b.admit(at(30), &cfg());
        b.reset();
        assert_eq!(b, Breaker::new());
        assert_eq!(b.state(at(1)), CircuitState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
        // A late release of a forgotten probe cannot underflow.
        b.release_probe();
        assert_eq!(b.probes_in_flight(), 0);
    }

    #[test]
    fn persists_without_probes_in_flight() {
        let mut b = opened(t0());
        b.admit(at(30), &cfg());
        b.admit(at(30), &cfg());
        let json = serde_json::to_string(&b).expect("serialises");
        let mut restored: Breaker = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(restored.probes_in_flight(), 0);
        assert_eq!(restored.state(at(30)), CircuitState::HalfOpen);
        assert_eq!(restored.admit(at(30), &cfg()), Admission::Probe);
        // The doubling survives a restart.
        restored.record(false, true, at(30), &cfg());
        restored.admit(at(30), &cfg());
        assert_eq!(
            restored.record(false, true, at(30), &cfg()),
            Some(Transition::Opened { until: at(90) })
        );
    }

    #[test]
    fn config_reads_seconds_and_defaults() {
        let c: BreakerConfig =
            serde_json::from_str(r#"{"window": 60, "initial_recovery": 1.5}"#).expect("parses");
        assert_eq!(c.window, Duration::from_secs(60));
        assert_eq!(c.initial_recovery, Duration::from_millis(1500));
        assert_eq!(c.window_size, 20);
        let back = serde_json::to_value(&c).expect("serialises");
        assert_eq!(back["window"], serde_json::json!(60));
        assert!(serde_json::from_str::<BreakerConfig>(r#"{"windw": 60}"#).is_err());
        assert!(serde_json::from_str::<BreakerConfig>(r#"{"window": -1}"#).is_err());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Admit,
        Succeed,
        Fail,
        Release,
        LateSuccess,
        Advance(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Admit),
            2 => Just(Op::Succeed),
            2 => Just(Op::Fail),
            1 => Just(Op::Release),
            1 => Just(Op::LateSuccess),
            2 => (0i64..120).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// Drives the breaker like the orchestrator does: requests are admitted, run, and end
        /// with a success, a failure or no health effect; time passes.
        #[test]
        fn half_open_never_exceeds_the_probe_budget(
            ops in proptest::collection::vec(op(), 1..300),
            probes in 1u32..4,
        ) {
            let cfg = BreakerConfig { half_open_probes: probes, ..BreakerConfig::default() };
            let mut b = Breaker::new();
            let mut now = t0();
            // Requests admitted and still running: `true` for probes.
            let mut running: Vec<bool> = Vec::new();
            for op in ops {
                match op {
                    Op::Admit => match b.admit(now, &cfg) {
                        Admission::Allowed => {
                            prop_assert_eq!(b.state(now), CircuitState::Closed);
                            running.push(false);
                        }
                        Admission::Probe => {
                            prop_assert_eq!(b.state(now), CircuitState::HalfOpen);
                            running.push(true);
                        }
                        Admission::Rejected { until } => {
                            prop_assert!(until > now);
                            prop_assert_ne!(b.state(now), CircuitState::Closed);
                        }
                    },
                    Op::Succeed | Op::Fail => {
                        if let Some(probe) = running.pop() {
                            b.record(matches!(op, Op::Succeed), probe, now, &cfg);
                        }
                    }
                    Op::Release => {
                        if let Some(probe) = running.pop()
                            && probe
                        {
                            b.release_probe();
                        }
                    }
                    Op::LateSuccess => {
                        let before = b.state(now);
                        b.record(true, false, now, &cfg);
                        if let CircuitState::Open { .. } = before {
                            prop_assert_eq!(b.state(now), before);
                        }
                    }
                    Op::Advance(secs) => now += TimeDelta::seconds(secs),
                }
                let probes_running = running.iter().filter(|p| **p).count() as u32;
                prop_assert!(probes_running <= cfg.half_open_probes);
                prop_assert_eq!(probes_running, b.probes_in_flight());
                prop_assert!(b.window_len() <= cfg.window_size);
                let rate = b.error_rate(now, &cfg);
                prop_assert!((0.0..=1.0).contains(&rate));
            }
        }

        #[test]
        fn recovery_stays_within_bounds(k in 1u32..1000) {
            let r = recovery(k, &cfg());
            prop_assert!(r >= cfg().initial_recovery.min(cfg().max_recovery));
            prop_assert!(r <= cfg().max_recovery);
            prop_assert!(recovery(k + 1, &cfg()) >= r);
        }
    }
}
