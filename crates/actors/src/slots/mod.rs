//! KeySlots: per provider key and per endpoint concurrency. It decides each key's limit (fixed,
//! or learned from 429s), applies the reservation for cache-warm clients, the RPM limit and the
//! cool-down after a 429, takes a lease in the shared state (memory or Redis), and keeps a
//! bounded FIFO of requests waiting for a slot.
//!
//! Leases are released by dropping the orchestrator's [`Lease`] guard, at the end of the relayed
//! body — never at first byte (fix of the reference's §11.1 #1).

mod backends;
mod handlers;
pub mod messages;
pub(crate) mod outbox;

use crate::config::RoutingConfig;
use crate::handle::{Handle, Shards};
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashSet};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use switchyard_core::adaptive::{AdaptiveConfig, AdaptiveState};
use switchyard_store::Database;
use switchyard_store::state::SharedState;

/// Counters for `/metrics`, shared by the shards.
#[derive(Debug, Default)]
pub struct SlotCounters {
    /// Leases granted.
    pub granted: AtomicU64,
    /// Acquisitions refused (full, RPM, cooling, queue full).
    pub denied: AtomicU64,
    /// Requests that waited in the queue and got a slot.
    pub waited: AtomicU64,
    /// Requests that waited and timed out.
    pub wait_timeouts: AtomicU64,
    /// Adaptive limit decreases.
    pub limit_decreases: AtomicU64,
    /// Adaptive limit increases.
    pub limit_increases: AtomicU64,
    /// 429s observed.
    pub rate_limited: AtomicU64,
    /// Lease or RPM operations served locally because the shared state failed.
    pub state_fallbacks: AtomicU64,
    /// Unix time of the last fallback (0 = never).
    pub last_fallback_at: std::sync::atomic::AtomicI64,
    /// Unix time of the last fallback warning logged.
    pub last_fallback_warning: std::sync::atomic::AtomicI64,
}

/// What KeySlots knows about one key.
#[derive(Debug, Default)]
struct KeyEntry {
    adaptive: AdaptiveState,
    requests: u64,
    successes: u64,
    /// In-flight count seen at the last grant (for the reservation ratio).
    last_in_flight: u32,
    waiters: VecDeque<handlers::Waiter>,
    /// The head waiter is out of the queue, trying for a slot: nobody else may jump ahead.
    serving: bool,
    /// A slot may have freed while the head waiter was trying: try again when it is back.
    rerun: bool,
}

/// One KeySlots shard.
#[derive(Debug)]
pub struct KeySlots {
    keys: HashMap<String, KeyEntry>,
    cooldowns: HashMap<String, DateTime<Utc>>,
    state: SharedState,
    backends: backends::Backends,
    schedulers: crate::scheduler::SchedulerSet,
    config: RoutingConfig,
    adaptive: AdaptiveConfig,
    db: Option<Database>,
    dirty: HashSet<String>,
    counters: Arc<SlotCounters>,
    /// Leases whose requester left while their grant may still be on its way, with when:
    /// a grant for one of them is given straight back (purged after the longest wait).
    cancelled: HashMap<String, std::time::Instant>,
    /// Where health outcomes carried by releases go (shard i of both lives on one arbiter).
    health: Option<Shards<crate::health::HealthMonitor>>,
}

impl KeySlots {
    /// A shard; `db` = None disables persistence of learned limits.
    pub fn new(
        state: SharedState,
        schedulers: crate::scheduler::SchedulerSet,
        config: RoutingConfig,
        db: Option<Database>,
        counters: Arc<SlotCounters>,
    ) -> Self {
        Self {
            keys: HashMap::default(),
            cooldowns: HashMap::default(),
            backends: backends::Backends::new(state.clone(), counters.clone()),
            state,
            schedulers,
            config,
            adaptive: AdaptiveConfig::default(),
            db,
            dirty: HashSet::default(),
            counters,
            cancelled: HashMap::default(),
            health: None,
        }
    }

    /// Forwards the health outcomes that releases carry to `health`.
    pub fn with_health(mut self, health: Shards<crate::health::HealthMonitor>) -> Self {
        self.health = Some(health);
        self
    }
}

impl actix::Actor for KeySlots {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        use actix::AsyncContext;
        // Waiters are woken by releases; this tick also serves them when a slot frees in
        // another shard or another gateway process, and expires the ones out of time.
        ctx.run_interval(std::time::Duration::from_millis(50), |act, ctx| {
            act.serve_waiters(ctx);
            let horizon = act.config.queue_timeout + act.config.actor_timeout;
            act.cancelled.retain(|_, at| at.elapsed() < horizon);
        });
        let every = self.config.persist_every;
        ctx.run_interval(every, |act, ctx| act.persist(ctx));
    }
}

/// A granted slot. Dropping it releases the slot, wherever the request ends: relayed body
/// finished, client gone, error, panic.
#[derive(Debug)]
pub struct Lease {
    slots: Handle<KeySlots>,
    key_id: String,
    endpoint_id: String,
    lease_id: String,
    /// Key in-flight count right after the grant (this lease included).
    pub in_flight: u32,
    granted_at: Instant,
    observed: Option<messages::ObserveOutcome>,
    health: Option<crate::health::messages::Outcome>,
}

impl Lease {
    /// Notes the attempt's health outcome; KeySlots hands it to the key's HealthMonitor shard
    /// (on its own thread) with the release, so the request path sends one message, not two.
    pub fn report_health(&mut self, outcome: crate::health::messages::Outcome) {
        self.health = Some(outcome);
    }

    /// Notes what the attempt taught about the key; KeySlots applies it with the release.
    pub fn observe(&mut self, outcome: messages::ObserveOutcome) {
        self.observed = Some(outcome);
    }

    /// How long the slot has been held.
    pub fn held_for(&self) -> std::time::Duration {
        self.granted_at.elapsed()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        outbox::post(
            &self.slots,
            messages::ReleaseSlot {
                key_id: std::mem::take(&mut self.key_id),
                endpoint_id: std::mem::take(&mut self.endpoint_id),
                lease_id: std::mem::take(&mut self.lease_id),
                observed: self.observed.take(),
                health: self.health.take(),
            },
        );
    }
}
