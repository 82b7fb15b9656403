//! The Scheduler: owns the routing catalog snapshot, the circuit states pushed by the
//! HealthMonitor, the cool-downs pushed by KeySlots, and cache affinity (kept in the shared
//! state so several gateways agree). It answers `Resolve` with the ordered candidates.
//!
//! It never touches the database and never waits on another actor: the only await in a
//! handler is the affinity lookup in the shared state, after which the pure resolver runs on
//! the state as it is then.
//!
//! Besides its N shards on their own arbiters, every HTTP worker runs a replica on its own
//! thread ([`SchedulerSet`]): a request resolves on its worker's replica without a thread hop.
//! Replicas are exact copies because everything a Scheduler decides from is either pushed to
//! every shard (catalog, circuits, cool-downs) or read from the shared state (affinity).

mod handlers;
pub mod messages;

use crate::handle::{Handle, Shards};
use chrono::{DateTime, Utc};
use foldhash::HashMap;
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
    /// A replica's source of the key states pushed before it joined.
    seed: Option<Handle<Scheduler>>,
}

impl Scheduler {
    /// A shard starting from `catalog`.
    pub fn new(catalog: Arc<Catalog>, state: SharedState, stats: Arc<AffinityStats>) -> Self {
        Self {
            catalog,
            circuits: HashMap::default(),
            cooldowns: HashMap::default(),
            state,
            stats,
            seed: None,
        }
    }

    /// A replica that copies the circuits and cool-downs of `seed` before it handles its first
    /// message. Register it in the [`SchedulerSet`] before it starts, so no push falls between
    /// the copy and the registration.
    pub fn replica_of(mut self, seed: Handle<Scheduler>) -> Self {
        self.seed = Some(seed);
        self
    }
}

impl actix::Actor for Scheduler {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        use actix::{ActorFutureExt, AsyncContext, WrapFuture};
        let Some(seed) = self.seed.take() else {
            return;
        };
        // `wait`: no message is handled before the copy is in, neither a Resolve nor a push.
        // Pushes that arrive meanwhile wait in the mailbox and are applied after the copy, in
        // the order they were sent, so the newer state wins.
        ctx.wait(
            async move {
                seed.ask(messages::KeyStates, std::time::Duration::from_secs(10))
                    .await
            }
            .into_actor(self)
            .map(|snapshot, act, _ctx| {
                match snapshot {
                    Ok(messages::KeyStateSnapshot {
                        circuits,
                        cooldowns,
                    }) => {
                        act.circuits = circuits;
                        act.cooldowns = cooldowns;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a Scheduler replica could not copy the key states; it learns them from the next changes");
                    }
                }
            }),
        );
    }
}

/// Every Scheduler: the N shards and the replicas on the HTTP workers. Catalog, circuit and
/// cool-down changes are pushed to all of them.
#[derive(Debug, Clone)]
pub struct SchedulerSet {
    shards: Shards<Scheduler>,
    replicas: Arc<arc_swap::ArcSwap<Vec<Handle<Scheduler>>>>,
    /// Numbers handed to replicas (workers attach concurrently).
    numbered: Arc<std::sync::atomic::AtomicUsize>,
}

impl SchedulerSet {
    /// The set of `shards`, without replicas yet.
    pub fn new(shards: Shards<Scheduler>) -> Self {
        Self {
            shards,
            replicas: Arc::new(arc_swap::ArcSwap::from_pointee(Vec::new())),
            numbered: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    }

    /// The shard number of the next replica (after the shards'), unique per set.
    pub fn next_replica_number(&self) -> usize {
        self.shards.all().len()
            + self
                .numbered
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds a replica: from now on it receives every push.
    pub fn add_replica(&self, replica: Handle<Scheduler>) {
        self.replicas.rcu(|current| {
            let mut next = Vec::clone(current);
            next.push(replica.clone());
            next
        });
    }

    /// How many replicas there are.
    pub fn replica_count(&self) -> usize {
        self.replicas.load().len()
    }

    /// Every shard and replica (for pushes, which are rare).
    pub fn all(&self) -> Vec<Handle<Scheduler>> {
        let replicas = self.replicas.load();
        self.shards
            .all()
            .iter()
            .chain(replicas.iter())
            .cloned()
            .collect()
    }
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
