//! Messages of the HealthMonitor.

use actix::Message;
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchyard_core::breaker::{Admission, Breaker};
use switchyard_core::classify::HealthEffect;

/// May an attempt probe this half-open key now?
#[derive(Debug)]
pub struct AcquireProbe {
    /// Provider key id.
    pub key_id: String,
    /// Now.
    pub now: DateTime<Utc>,
}

impl Message for AcquireProbe {
    // `Result` only because actix implements its response trait generically for it.
    type Result = Result<Admission, std::convert::Infallible>;
}

/// What an attempt did to a key's health (fire-and-forget).
#[derive(Debug)]
pub struct Outcome {
    /// Provider key id.
    pub key_id: String,
    /// Success, failure, or no effect.
    pub effect: HealthEffect,
    /// The attempt held a probe slot.
    pub probe: bool,
    /// When it finished.
    pub now: DateTime<Utc>,
}

impl Message for Outcome {
    type Result = ();
}

/// Outcomes of several attempts, applied in order (KeySlots forwards those its releases carry
/// in one message per batch).
#[derive(Debug)]
pub struct Outcomes(pub Vec<Outcome>);

impl Message for Outcomes {
    type Result = ();
}

/// The health of one key, or of every key this shard knows.
#[derive(Debug)]
pub struct HealthOf {
    /// `None` = all.
    pub key_id: Option<String>,
    /// Now.
    pub now: DateTime<Utc>,
}

impl Message for HealthOf {
    type Result = Vec<KeyHealth>;
}

/// One key's health as shown to operators.
#[derive(Debug, Clone, Serialize)]
pub struct KeyHealth {
    /// Provider key id.
    pub key_id: String,
    /// `closed`, `open` or `half_open`.
    pub circuit: &'static str,
    /// Open until (when open).
    pub open_until: Option<DateTime<Utc>>,
    /// Outcomes in the window.
    pub window: usize,
    /// Error rate over the window.
    pub error_rate: f64,
    /// Consecutive failures.
    pub consecutive_failures: u32,
}

/// Close one key's circuit (or all) and clear its window.
#[derive(Debug)]
pub struct RecoverKey {
    /// `None` = all keys of this shard.
    pub key_id: Option<String>,
}

impl Message for RecoverKey {
    type Result = usize;
}

/// Breaker states loaded from the database at start.
#[derive(Debug)]
pub struct Restore(pub Vec<(String, Breaker)>);

impl Message for Restore {
    type Result = ();
}

/// The last circuit events of this shard.
#[derive(Debug)]
pub struct RecentEvents;

impl Message for RecentEvents {
    type Result = Vec<super::CircuitEvent>;
}

/// Write dirty state now (tests, shutdown). Answers whether, once this write ended, every
/// change the shard knows of was stored (a change that came in meanwhile, a write still on its
/// way or a failed write make it `false`: ask again).
#[derive(Debug)]
pub struct PersistNow;

impl Message for PersistNow {
    type Result = bool;
}
