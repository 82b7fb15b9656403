//! KeySlots: per provider key and per endpoint concurrency. It decides each key's limit (fixed,
//! or learned from 429s), applies the reservation for cache-warm clients, the RPM limit and the
//! cool-down after a 429, takes a lease in the shared state (memory or Redis), and keeps a
//! bounded FIFO of requests waiting for a slot.
//!
//! Leases are released by dropping the orchestrator's [`Lease`] guard, at the end of the relayed
//! body — never at first byte (fix of the reference's §11.1 #1).

mod backends;
mod handlers;
pub(crate) mod handover;
pub mod messages;
pub(crate) mod outbox;

use crate::config::RoutingConfig;
use crate::handle::{Handle, Shards};
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashSet};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use switchyard_core::adaptive::{AdaptiveConfig, AdaptiveState};
use switchyard_store::Database;
use switchyard_store::state::SharedState;

/// Counters for `/metrics`, shared by the shards.
#[derive(Debug, Default)]
pub struct SlotCounters {
    /// Leases granted.
    pub granted: AtomicU64,
    /// Attempts served by a slot handed over from the worker's previous request.
    pub handed_over: AtomicU64,
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

/// A lease for `request`: the slot this thread's previous request on the key left, when it may
/// serve this one (see `slots::handover`), or one KeySlots grants.
pub async fn lease_for(
    slots: &Handle<KeySlots>,
    request: &messages::AcquireSlot,
    timeout: std::time::Duration,
) -> Result<Result<Lease, messages::Denied>, crate::handle::SendError> {
    if let Some(lease) = handover::take(slots, request) {
        return Ok(Ok(lease));
    }
    let answer = outbox::acquire(slots, request.clone(), timeout).await?;
    Ok(answer.map(|granted| KeySlots::lease(slots, request, granted)))
}

/// A granted slot. Dropping it releases the slot, wherever the request ends: relayed body
/// finished, client gone, error, panic — or, after a clean success on a key with room to spare,
/// hands it to the worker's next request for that key (see `slots::handover`).
#[derive(Debug)]
pub struct Lease {
    /// `Some` until dropped.
    slot: Option<handover::Slot>,
    /// Key in-flight count right after the grant (this lease included).
    pub in_flight: u32,
    observed: Option<messages::ObserveOutcome>,
    health: Option<crate::health::messages::Outcome>,
    /// The slot came from the worker's previous request, not from KeySlots.
    handed_over: bool,
}

impl Lease {
    fn new(slot: handover::Slot, handed_over: bool) -> Self {
        Self {
            in_flight: slot.in_flight,
            slot: Some(slot),
            observed: None,
            health: None,
            handed_over,
        }
    }

    /// Notes the attempt's health outcome; KeySlots hands it to the key's HealthMonitor shard
    /// (on its own thread) with the release, so the request path sends one message, not two.
    pub fn report_health(&mut self, outcome: crate::health::messages::Outcome) {
        self.health = Some(outcome);
    }

    /// Notes what the attempt taught about the key; KeySlots applies it with the release.
    pub fn observe(&mut self, outcome: messages::ObserveOutcome) {
        self.observed = Some(outcome);
    }

    /// Whether the slot came from the worker's previous request instead of KeySlots.
    pub fn handed_over(&self) -> bool {
        self.handed_over
    }

    /// A clean success that taught nothing but a success: its slot may serve the next request.
    fn clean_success(&self) -> bool {
        use crate::health::messages::Outcome;
        use switchyard_core::classify::HealthEffect;
        matches!(
            self.observed,
            Some(messages::ObserveOutcome {
                observed: messages::Observed::Success,
                ..
            })
        ) && matches!(
            self.health,
            Some(Outcome {
                effect: HealthEffect::Success,
                probe: false,
                ..
            })
        )
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let keep = self.clean_success() && handover::can_keep(&slot);
        let (observed, health) = (self.observed.take(), self.health.take());
        let handed_over = self.handed_over;
        if keep {
            // Nothing waits on what the attempt taught: it goes with the thread's next batch.
            let report = messages::ReleaseSlot {
                key_id: slot.key_id.clone(),
                endpoint_id: slot.endpoint_id.clone(),
                lease_id: slot.lease_id.clone(),
                observed,
                health,
                kept: true,
                handed_over,
            };
            outbox::post_later(&slot.slots, report);
            handover::keep(slot);
        } else {
            let handover::Slot {
                slots,
                key_id,
                endpoint_id,
                lease_id,
                ..
            } = slot;
            let release = messages::ReleaseSlot {
                key_id,
                endpoint_id,
                lease_id,
                observed,
                health,
                kept: false,
                handed_over,
            };
            outbox::post(&slots, release);
        }
    }
}
