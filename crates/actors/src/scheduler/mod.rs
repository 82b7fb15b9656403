//! The Scheduler: owns the routing catalog snapshot, the circuit states pushed by the
//! HealthMonitor, the cool-downs pushed by KeySlots, and cache affinity (kept in the shared
//! state so several gateways agree). It answers `Resolve` with the ordered candidates.
//!
//! It never touches the database and never waits on another actor: the only await in a
//! handler is the affinity lookup in the shared state, after which the pure resolver runs on
//! the state as it is then.

mod handlers;
pub mod messages;

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use switchyard_core::catalog::Catalog;
use switchyard_core::routing::{KeyCircuit, RoutingView};
use switchyard_store::state::SharedState;

/// Affinity hit counters (shared by the shards, for the status endpoint).
#[derive(Debug, Default)]
pub struct AffinityStats {
    /// Lookups that found a usable entry and used it.
    pub hits: AtomicU64,
    /// Lookups without an entry.
    pub misses: AtomicU64,
    /// Entries dropped because a better candidate is healthy again, or unusable.
    pub dropped: AtomicU64,
}

/// One Scheduler shard.
#[derive(Debug)]
pub struct Scheduler {
    catalog: Arc<Catalog>,
    circuits: HashMap<String, KeyCircuit>,
    cooldowns: HashMap<String, DateTime<Utc>>,
    state: SharedState,
    stats: Arc<AffinityStats>,
}

impl Scheduler {
    /// A shard starting from `catalog`.
    pub fn new(catalog: Arc<Catalog>, state: SharedState, stats: Arc<AffinityStats>) -> Self {
        Self {
            catalog,
            circuits: HashMap::new(),
            cooldowns: HashMap::new(),
            state,
            stats,
        }
    }
}

impl actix::Actor for Scheduler {
    type Context = actix::Context<Self>;
}

/// The live key states the resolver consults.
struct View<'a> {
    circuits: &'a HashMap<String, KeyCircuit>,
    cooldowns: &'a HashMap<String, DateTime<Utc>>,
}

impl RoutingView for View<'_> {
    fn circuit(&self, provider_key_id: &str) -> KeyCircuit {
        self.circuits
            .get(provider_key_id)
            .cloned()
            .unwrap_or(KeyCircuit::Closed)
    }

    fn cooldown_until(&self, provider_key_id: &str) -> Option<DateTime<Utc>> {
        self.cooldowns.get(provider_key_id).copied()
    }
}
