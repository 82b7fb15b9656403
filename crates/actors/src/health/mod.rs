//! The HealthMonitor: owns one circuit breaker per provider key (sliding window, bounded
//! half-open probes, window reset on close), pushes every transition to the Scheduler shards,
//! keeps the last circuit events for operators, and persists breaker state asynchronously so a
//! restart does not forget an open circuit.
//!
//! It never blocks the request path: outcomes are fire-and-forget; only a half-open key costs
//! one `AcquireProbe` round trip.

mod handlers;
pub mod messages;

use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashSet};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use switchyard_core::breaker::{Breaker, BreakerConfig};
use switchyard_store::Database;

/// How many circuit events are kept for operators.
const EVENT_HISTORY: usize = 200;

/// Counters for `/metrics`, shared by the shards.
#[derive(Debug, Default)]
pub struct HealthCounters {
    /// Circuits opened.
    pub opened: AtomicU64,
    /// Circuits closed again.
    pub closed: AtomicU64,
    /// Circuits that went half-open.
    pub half_opened: AtomicU64,
}

/// One circuit transition, for the admin view.
#[derive(Debug, Clone, Serialize)]
pub struct CircuitEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Which key.
    pub key_id: String,
    /// `opened`, `half_opened`, `closed` or `recovered`.
    pub event: &'static str,
}

/// One HealthMonitor shard.
#[derive(Debug)]
pub struct HealthMonitor {
    breakers: HashMap<String, Breaker>,
    config: BreakerConfig,
    schedulers: crate::scheduler::SchedulerSet,
    db: Option<Database>,
    dirty: HashSet<String>,
    events: VecDeque<CircuitEvent>,
    counters: Arc<HealthCounters>,
    persist_every: Duration,
    /// Taken by each write of breaker state for its duration: writes happen one at a time, in
    /// the order they began.
    writes: Arc<tokio::sync::Mutex<()>>,
    /// Writes begun and not yet ended: the shutdown is done only when none is left.
    writing: usize,
}

impl HealthMonitor {
    /// A shard; `db` = None disables persistence (tests).
    pub fn new(
        config: BreakerConfig,
        schedulers: crate::scheduler::SchedulerSet,
        db: Option<Database>,
        counters: Arc<HealthCounters>,
        persist_every: Duration,
    ) -> Self {
        Self {
            breakers: HashMap::default(),
            config,
            schedulers,
            db,
            dirty: HashSet::default(),
            events: VecDeque::new(),
            counters,
            persist_every,
            writes: Arc::default(),
            writing: 0,
        }
    }
}

impl actix::Actor for HealthMonitor {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        use actix::{ActorFutureExt, AsyncContext};
        ctx.run_interval(self.persist_every, |act, ctx| {
            if let Some(write) = act.persist() {
                ctx.spawn(write.map(|_, _, _| ()));
            }
        });
    }

    fn stopping(&mut self, ctx: &mut Self::Context) -> actix::Running {
        use actix::{ActorFutureExt, AsyncContext};
        if let Some(write) = self.persist() {
            ctx.spawn(write.map(|_, _, _| ()));
        }
        actix::Running::Stop
    }
}
