//! Messages of KeySlots.

use actix::Message;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;
use switchyard_core::outcome::RateLimitHeaders;

/// Take a slot on a key (and its endpoint).
#[derive(Debug, Clone)]
pub struct AcquireSlot {
    /// Provider key id.
    pub key_id: String,
    /// Its endpoint id.
    pub endpoint_id: String,
    /// Unique per attempt.
    pub lease_id: String,
    /// The key's fixed limit; `None` = adaptive.
    pub fixed_limit: Option<u32>,
    /// The endpoint's cap.
    pub endpoint_limit: Option<u32>,
    /// The key's requests-per-minute limit.
    pub rpm_limit: Option<u32>,
    /// The client's upstream prompt cache is warm on this key: it may use the reserved slots.
    pub cache_warm: bool,
    /// Wait this long for a slot when full (the bounded FIFO); `None` = answer at once.
    pub wait: Option<Duration>,
}

/// The answer to [`AcquireSlot`].
pub type SlotResult = Result<Granted, Denied>;

impl Message for AcquireSlot {
    type Result = SlotResult;
}

/// Several slot requests that do not wait, made on one thread in one round of its tasks (see
/// `slots::outbox`): each comes back with its answer, in order (the sender gives back a slot
/// whose requester has gone meanwhile, and needs its ids for that).
#[derive(Debug)]
pub struct AcquireSlots(pub Vec<AcquireSlot>);

impl Message for AcquireSlots {
    type Result = Vec<(AcquireSlot, SlotResult)>;
}

/// A granted slot (wrap it in a `Lease` at once).
#[derive(Debug, Clone, Copy)]
pub struct Granted {
    /// Key in-flight count with this lease.
    pub in_flight: u32,
    /// The key and endpoint have room to spare and no RPM limit: the slot may be handed to the
    /// worker's next request for the same key (see `slots::handover`).
    pub handover: bool,
}

/// Why no slot was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The key is at its limit.
    KeyFull {
        /// In flight now.
        in_flight: u32,
        /// The limit applied to this request.
        limit: u32,
    },
    /// The endpoint is at its cap.
    EndpointFull {
        /// In flight now.
        in_flight: u32,
    },
    /// The key's RPM window is spent.
    Rpm {
        /// When a slot frees.
        retry_at: DateTime<Utc>,
    },
    /// The key rests after a 429.
    Cooling {
        /// Until.
        until: DateTime<Utc>,
    },
    /// Too many requests already wait for this key.
    QueueFull,
    /// The shared state failed.
    Unavailable(String),
}

impl Denied {
    /// The skip reason recorded for the candidate.
    pub fn reason(&self) -> String {
        match self {
            Denied::KeyFull { in_flight, limit } => {
                format!("concurrency limit: {in_flight}/{limit} in flight on the key")
            }
            Denied::EndpointFull { in_flight } => {
                format!("concurrency limit: {in_flight} in flight on the endpoint")
            }
            Denied::Rpm { retry_at } => format!("RPM limit reached until {retry_at}"),
            Denied::Cooling { until } => format!("cooling down after a 429 until {until}"),
            Denied::QueueFull => "too many requests waiting for this key".into(),
            Denied::Unavailable(e) => format!("shared state unavailable: {e}"),
        }
    }

    /// When trying again could succeed, if known.
    pub fn retry_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Denied::Rpm { retry_at } => Some(*retry_at),
            Denied::Cooling { until } => Some(*until),
            _ => None,
        }
    }
}

/// Give a slot back (sent by `Lease::drop`), with what the attempt taught about the key (one
/// message instead of two on every attempt).
#[derive(Debug)]
pub struct ReleaseSlot {
    /// Provider key id.
    pub key_id: String,
    /// Endpoint id.
    pub endpoint_id: String,
    /// The lease.
    pub lease_id: String,
    /// The attempt's outcome, applied before the slot is freed.
    pub observed: Option<ObserveOutcome>,
    /// The attempt's health outcome, forwarded to the key's HealthMonitor shard.
    pub health: Option<crate::health::messages::Outcome>,
    /// The worker keeps the slot for its next request (see `slots::handover`): apply what the
    /// attempt taught, leave the lease in place.
    pub kept: bool,
    /// The attempt ran on a slot handed over on its worker, not granted by KeySlots: count it
    /// as a request of the key.
    pub handed_over: bool,
}

impl ReleaseSlot {
    /// Gives a lease back, with nothing learned.
    pub fn free(key_id: String, endpoint_id: String, lease_id: String) -> Self {
        Self {
            key_id,
            endpoint_id,
            lease_id,
            observed: None,
            health: None,
            kept: false,
            handed_over: false,
        }
    }
}

impl Message for ReleaseSlot {
    type Result = ();
}

/// Several releases made on one thread in one round of its tasks (see `slots::outbox`),
/// applied in order.
#[derive(Debug)]
pub struct ReleaseSlots(pub Vec<ReleaseSlot>);

impl Message for ReleaseSlots {
    type Result = ();
}

/// The requester of a waiting `AcquireSlot` left (its client went away): drop its place in
/// line, or give back the slot if it was granted meanwhile (fire-and-forget).
#[derive(Debug)]
pub struct CancelWait {
    /// Provider key id.
    pub key_id: String,
    /// Endpoint id.
    pub endpoint_id: String,
    /// The lease the wait was for.
    pub lease_id: String,
}

impl Message for CancelWait {
    type Result = ();
}

/// What an attempt taught about the key's limits (fire-and-forget).
#[derive(Debug)]
pub struct ObserveOutcome {
    /// Provider key id.
    pub key_id: String,
    /// The key learns its limit (no fixed limit configured).
    pub adaptive: bool,
    /// In flight when the attempt started.
    pub in_flight: u32,
    /// What happened.
    pub observed: Observed,
    /// When.
    pub now: DateTime<Utc>,
}

/// The part of an outcome KeySlots cares about.
#[derive(Debug, Clone)]
pub enum Observed {
    /// A success.
    Success,
    /// A 429 with its hints.
    RateLimited {
        /// `Retry-After`.
        retry_after: Option<Duration>,
        /// Rate-limit headers.
        headers: RateLimitHeaders,
    },
    /// Anything else.
    Other,
}

impl Message for ObserveOutcome {
    type Result = ();
}

/// Limits and counts of one key or all keys of this shard.
#[derive(Debug)]
pub struct LimitsOf {
    /// `None` = all.
    pub key_id: Option<String>,
}

impl Message for LimitsOf {
    type Result = Vec<KeyLimits>;
}

/// One key's limits as shown to operators.
#[derive(Debug, Clone, Serialize)]
pub struct KeyLimits {
    /// Provider key id.
    pub key_id: String,
    /// Learned limit (adaptive keys).
    pub learned_limit: Option<u32>,
    /// In flight at the last grant.
    pub last_in_flight: u32,
    /// Requests granted.
    pub requests: u64,
    /// Successes observed.
    pub successes: u64,
    /// Cool-down end.
    pub cooling_until: Option<DateTime<Utc>>,
    /// Requests waiting for a slot.
    pub waiting: usize,
    /// The adaptive state (429 counts, history).
    pub adaptive: serde_json::Value,
}

/// Forget what was learned about a key (or all keys of this shard) and free its leases.
#[derive(Debug)]
pub struct ResetKey {
    /// `None` = all.
    pub key_id: Option<String>,
}

impl Message for ResetKey {
    type Result = usize;
}

/// Learned limits loaded from the database at start.
#[derive(Debug)]
pub struct RestoreLimits(pub Vec<(String, switchyard_core::adaptive::AdaptiveState)>);

impl Message for RestoreLimits {
    type Result = ();
}
