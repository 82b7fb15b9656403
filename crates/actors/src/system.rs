//! Starting the actors: N shards of each long-lived actor on N Arbiters (threads) — shard i of
//! the routing actors together on one, the Recorder's apart — and the handle the HTTP layer uses
//! to reach them.

use crate::config::RoutingConfig;
use crate::handle::{Handle, Shards};
use crate::health::{HealthCounters, HealthMonitor};
use crate::meter::MeterRegistry;
use crate::recorder::{RecordMail, Recorder, RecorderCounters};
use crate::scheduler::{AffinityStats, Scheduler, SchedulerSet};
use crate::slots::{KeySlots, SlotCounters};
use actix::prelude::*;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use switchyard_core::breaker::Breaker;
use switchyard_core::catalog::Catalog;
use switchyard_store::Database;
use switchyard_store::state::SharedState;
use switchyard_upstream::UpstreamClients;

/// Request-level counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RequestCounters {
    /// Requests that reached an orchestrator.
    pub requests: AtomicU64,
    /// Settled successfully.
    pub completed: AtomicU64,
    /// Settled with an error.
    pub failed: AtomicU64,
    /// Ended by the client going away.
    pub client_gone: AtomicU64,
    /// Upstream attempts.
    pub attempts: AtomicU64,
    /// Attempts after the first of a request.
    pub failovers: AtomicU64,
    /// Cache-affinity lookups and hits per affinity rule.
    pub affinity: AffinityCounters,
    /// Requests answered before routing, per reason.
    pub refused: RefusalCounters,
    /// Time from a routed request's arrival to its end (the last byte relayed).
    pub duration: crate::latency::Histogram,
    /// Time from a streamed request's arrival to its first byte to the client.
    pub first_byte: crate::latency::Histogram,
}

/// Why a request was answered before routing (no orchestrator, no upstream call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No valid gateway key, or its user is inactive (401), on any route that needs a key
    /// (model lists and token counts too). The one refusal with nobody to record it for: these
    /// are counted, not recorded.
    Unauthorized,
    /// Quota or balance used up (429).
    QuotaExceeded,
    /// The gateway is at its in-flight limit (503).
    Overloaded,
    /// The body was too large or could not be read (413, 400).
    BodyRefused,
    /// The body is not a valid request (400).
    InvalidRequest,
}

impl Refusal {
    /// Every reason, in the order the counters show them.
    pub const ALL: [Refusal; 5] = [
        Refusal::Unauthorized,
        Refusal::QuotaExceeded,
        Refusal::Overloaded,
        Refusal::BodyRefused,
        Refusal::InvalidRequest,
    ];

    /// The reason's name in `/status` and `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::QuotaExceeded => "quota_exceeded",
            Refusal::Overloaded => "overloaded",
            Refusal::BodyRefused => "body_refused",
            Refusal::InvalidRequest => "invalid_request",
        }
    }
}

/// Requests answered before routing, per [`Refusal`].
#[derive(Debug, Default)]
pub struct RefusalCounters([AtomicU64; Refusal::ALL.len()]);

impl RefusalCounters {
    /// Counts one refusal.
    pub fn count(&self, reason: Refusal) {
        self.0[reason as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// `(reason, count)` for every reason.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL
            .iter()
            .map(|reason| {
                (
                    reason.as_str(),
                    self.0[*reason as usize].load(std::sync::atomic::Ordering::Relaxed),
                )
            })
            .collect()
    }
}

/// The rules that pick a request's affinity key, in the order they are tried.
pub const AFFINITY_RULES: [&str; 5] = [
    "header",
    "previous_response_id",
    "prompt_cache_key",
    "metadata_user_id",
    "gateway_key",
];

/// Per affinity rule: how many resolutions looked up an entry, and how many were served by it.
#[derive(Debug, Default)]
pub struct AffinityCounters {
    lookups: [AtomicU64; AFFINITY_RULES.len()],
    hits: [AtomicU64; AFFINITY_RULES.len()],
}

impl AffinityCounters {
    /// Counts one resolution under `rule`.
    pub fn observe(&self, rule: &str, hit: bool) {
        if let Some(i) = AFFINITY_RULES.iter().position(|r| *r == rule) {
            self.lookups[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if hit {
                self.hits[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// `(rule, lookups, hits)` for every rule.
    pub fn snapshot(&self) -> Vec<(&'static str, u64, u64)> {
        AFFINITY_RULES
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                (
                    *rule,
                    self.lookups[i].load(std::sync::atomic::Ordering::Relaxed),
                    self.hits[i].load(std::sync::atomic::Ordering::Relaxed),
                )
            })
            .collect()
    }
}

/// Handles onto every actor, and shared request-path resources. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ActorSystem {
    /// Scheduler shards (by client key).
    pub scheduler: Shards<Scheduler>,
    /// Those shards and the replicas on the HTTP workers (see [`ActorSystem::attach_worker`]).
    pub schedulers: SchedulerSet,
    /// HealthMonitor shards (by provider key).
    pub health: Shards<HealthMonitor>,
    /// KeySlots shards (by provider key).
    pub slots: Shards<KeySlots>,
    /// Recorder shards (by request id).
    pub recorder: Shards<Recorder>,
    /// The Recorder shards' trays, where the request path posts its records.
    pub record_mail: RecordMail,
    /// Pooled upstream clients.
    pub clients: Arc<UpstreamClients>,
    /// Settings.
    pub config: Arc<RoutingConfig>,
    /// Every mailbox meter.
    pub registry: MeterRegistry,
    /// Requests in flight (HTTP layer).
    pub in_flight: Arc<AtomicUsize>,
    /// Request counters.
    pub counters: Arc<RequestCounters>,
    /// Affinity counters.
    pub affinity: Arc<AffinityStats>,
    /// Circuit counters.
    pub circuits: Arc<HealthCounters>,
    /// Slot counters.
    pub slot_counters: Arc<SlotCounters>,
    /// Record counters.
    pub records: Arc<RecorderCounters>,
    /// The shared-state backend in use.
    pub state: SharedState,
    /// Spend not yet in the catalog snapshot (quota and balance checks).
    pub ledger: Arc<crate::ledger::SpendLedger>,
    /// Orchestrators' meter (they are per-request actors).
    pub orchestrators: crate::handle::OrchestratorMeter,
    arbiters: Arc<Vec<ArbiterHandle>>,
    /// Tells this system's replicas from another's on the same thread (tests run several).
    id: u64,
}

static NEXT_SYSTEM_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    /// The Scheduler replica of this thread, per actor system.
    static LOCAL_SCHEDULER: std::cell::RefCell<Vec<(u64, Rc<Handle<Scheduler>>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl ActorSystem {
    /// Starts every shard. Must run inside an actix system.
    pub fn start(
        config: RoutingConfig,
        catalog: Arc<Catalog>,
        db: Database,
        state: SharedState,
        persist: bool,
    ) -> ActorSystem {
        let registry = MeterRegistry::default();
        let shards = config.shards.max(1);
        // Shard i of the Scheduler, KeySlots and HealthMonitor lives on arbiter i: a request's
        // round trips to them wake one thread instead of three, which on a small machine is the
        // difference between handling messages and switching threads. The Recorder gets arbiters
        // of its own: building a batch of rows takes milliseconds that routing must not wait on.
        let routing: Vec<ArbiterHandle> = (0..shards).map(|_| Arbiter::new().handle()).collect();
        let writers: Vec<ArbiterHandle> = (0..shards).map(|_| Arbiter::new().handle()).collect();
        let arbiter = |i: usize| routing[i % routing.len()].clone();
        let record_arbiter = |i: usize| writers[i % writers.len()].clone();
        let affinity = Arc::new(AffinityStats::default());
        let scheduler = Shards::new(
            (0..shards)
                .map(|i| {
                    let (catalog, state, stats) =
                        (catalog.clone(), state.clone(), affinity.clone());
                    let addr = Scheduler::start_in_arbiter(&arbiter(i), move |_| {
                        Scheduler::new(catalog, state, stats)
                    });
                    Handle::new(addr, "Scheduler", i, &registry)
                })
                .collect(),
        );
        let schedulers = SchedulerSet::new(scheduler.clone());
        let circuits = Arc::new(HealthCounters::default());
        let persisted = persist.then(|| db.clone());
        let health = Shards::new(
            (0..shards)
                .map(|i| {
                    let (schedulers, db, counters, every, breaker) = (
                        schedulers.clone(),
                        persisted.clone(),
                        circuits.clone(),
                        config.persist_every,
                        config.breaker.clone(),
                    );
                    let addr = HealthMonitor::start_in_arbiter(&arbiter(i), move |_| {
                        HealthMonitor::new(breaker, schedulers, db, counters, every)
                    });
                    Handle::new(addr, "HealthMonitor", i, &registry)
                })
                .collect(),
        );
        let slot_counters = Arc::new(SlotCounters::default());
        let slots = Shards::new(
            (0..shards)
                .map(|i| {
                    let (state, schedulers, cfg, db, counters, health) = (
                        state.clone(),
                        schedulers.clone(),
                        config.clone(),
                        persisted.clone(),
                        slot_counters.clone(),
                        health.clone(),
                    );
                    let addr = KeySlots::start_in_arbiter(&arbiter(i), move |_| {
                        KeySlots::new(state, schedulers, cfg, db, counters).with_health(health)
                    });
                    Handle::new(addr, "KeySlots", i, &registry)
                })
                .collect(),
        );
        let records = Arc::new(RecorderCounters::default());
        let mut trays = Vec::with_capacity(shards);
        let recorder = Shards::new(
            (0..shards)
                .map(|i| {
                    let (db, rows, every, counters) = (
                        db.clone(),
                        config.record_batch,
                        config.record_flush,
                        records.clone(),
                    );
                    let (tx, inbox) = crate::handle::tray();
                    let addr = Recorder::start_in_arbiter(&record_arbiter(i), move |_| {
                        Recorder::new(db, rows, every, counters).with_inbox(inbox)
                    });
                    let handle = Handle::new(addr, "Recorder", i, &registry);
                    trays.push(handle.tray(tx));
                    handle
                })
                .collect(),
        );
        let record_mail = RecordMail::new(trays);
        let orchestrators = crate::handle::OrchestratorMeter::new(&registry);
        ActorSystem {
            scheduler,
            schedulers,
            health,
            slots,
            recorder,
            record_mail,
            clients: Arc::new(UpstreamClients::new(config.connect_timeout)),
            config: Arc::new(config),
            registry,
            in_flight: Arc::new(AtomicUsize::new(0)),
            counters: Arc::new(RequestCounters::default()),
            affinity,
            circuits,
            slot_counters,
            records,
            state,
            ledger: Arc::new(crate::ledger::SpendLedger::default()),
            orchestrators,
            arbiters: Arc::new(routing.iter().chain(&writers).cloned().collect()),
            id: NEXT_SYSTEM_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Starts a Scheduler replica on the calling thread's arbiter (an HTTP worker's), unless
    /// it has one: requests orchestrated on this thread then resolve without a thread hop.
    /// `latest` reads the current catalog. Outside an actix arbiter, does nothing.
    pub fn attach_worker(&self, latest: impl Fn() -> Arc<Catalog>) {
        if actix::Arbiter::try_current().is_none() || self.local_scheduler().is_some() {
            return;
        }
        let index = self.schedulers.next_replica_number();
        let replica = Scheduler::new(latest(), self.state.clone(), self.affinity.clone())
            .replica_of(self.scheduler.all()[0].clone());
        // Registered before it runs: no push can fall between its copy of the key states
        // and its first push (see `Scheduler::replica_of`).
        let handle = Handle::new(replica.start(), "Scheduler", index, &self.registry);
        self.schedulers.add_replica(handle.clone());
        // A catalog published while the replica was being made reaches it now; older ones
        // are ignored by version.
        handle.tell(crate::scheduler::messages::CatalogChanged(latest()));
        LOCAL_SCHEDULER.with(|local| local.borrow_mut().push((self.id, Rc::new(handle))));
    }

    // An `Rc` of the handle: cloning an actix address allocates twice (its sender state), and
    // every request asks its replica at least twice.
    fn local_scheduler(&self) -> Option<Rc<Handle<Scheduler>>> {
        LOCAL_SCHEDULER.with(|local| {
            local
                .borrow()
                .iter()
                .find(|(id, _)| *id == self.id)
                .map(|(_, handle)| handle.clone())
        })
    }

    /// The Scheduler a request on this thread resolves with: the thread's replica, else the
    /// shard owning `affinity_key`.
    pub fn resolver(&self, affinity_key: &str) -> Rc<Handle<Scheduler>> {
        self.local_scheduler()
            .unwrap_or_else(|| Rc::new(self.scheduler.pick(affinity_key).clone()))
    }

    /// Restores persisted circuit states and learned limits (at start).
    pub async fn restore(&self, db: &Database) {
        let rows = match switchyard_store::key_state::load_all(db).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load persisted key state; starting fresh");
                return;
            }
        };
        for (key_id, health, limits) in rows {
            if let Some(breaker) = health.and_then(|h| serde_json::from_value::<Breaker>(h).ok()) {
                self.health
                    .pick(&key_id)
                    .tell(crate::health::messages::Restore(vec![(
                        key_id.clone(),
                        breaker,
                    )]));
            }
            if let Some(adaptive) = limits.and_then(|l| serde_json::from_value(l).ok()) {
                self.slots
                    .pick(&key_id)
                    .tell(crate::slots::messages::RestoreLimits(vec![(
                        key_id.clone(),
                        adaptive,
                    )]));
            }
        }
    }

    /// Records a request refused before routing (quota, body too large, invalid body) as a
    /// failed usage row with the status the client received, so that an authenticated client's
    /// every request is on the books.
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one request, each used once; a struct would only repackage them"
    )]
    pub fn record_refusal(
        &self,
        request_id: &str,
        client_request_id: Option<String>,
        key: &switchyard_core::catalog::GatewayKey,
        format: switchyard_core::ApiFormat,
        model: Option<&str>,
        status: u16,
        message: &str,
    ) {
        let record = crate::orchestrator::RequestRecord {
            request_id: request_id.into(),
            client_request_id: client_request_id.map(Into::into),
            user_id: key.user_id.as_str().into(),
            gateway_key_id: key.id.as_str().into(),
            standalone: key.is_standalone,
            model: model.unwrap_or("unknown").into(),
            global_model_id: None,
            format,
            stream: false,
            started: std::time::Instant::now(),
            started_at: chrono::Utc::now(),
            required_capabilities: None,
            recorder: self.record_mail.pick(request_id).clone(),
            counters: self.counters.clone(),
            ledger: self.ledger.clone(),
        };
        record.finish(
            status,
            Some(message.to_owned()),
            None,
            switchyard_formats::usage::Usage::default(),
            None,
        );
    }

    /// Publishes a new catalog to every Scheduler shard, and drops the upstream clients (and
    /// their idle connections) of endpoints it no longer has.
    pub fn catalog_changed(&self, catalog: Arc<Catalog>) {
        let live: std::collections::HashSet<&str> = catalog
            .providers
            .iter()
            .flat_map(|provider| provider.endpoints.iter().map(|e| e.id.as_str()))
            .collect();
        self.clients.retain(|id| live.contains(id));
        for shard in self.schedulers.all() {
            shard.tell(crate::scheduler::messages::CatalogChanged(catalog.clone()));
        }
    }

    /// Writes every buffered record (tests, graceful shutdown).
    pub async fn flush_records(&self) {
        for shard in self.recorder.all() {
            let _ = shard
                .ask(
                    crate::recorder::messages::Flush,
                    std::time::Duration::from_secs(30),
                )
                .await;
        }
    }

    /// Persists circuit states now (graceful shutdown): asks each HealthMonitor shard to write
    /// until it answers that everything it knows of is stored, waiting out writes on their way.
    /// Learned limits are written by KeySlots on its own period.
    pub async fn persist_now(&self) {
        /// Rounds per shard: each stores what changed meanwhile, or waits out a write on its way.
        const ROUNDS: usize = 5;
        for shard in self.health.all() {
            let mut stored = false;
            for _ in 0..ROUNDS {
                let answer = shard
                    .ask(
                        crate::health::messages::PersistNow,
                        std::time::Duration::from_secs(10),
                    )
                    .await;
                if matches!(answer, Ok(true)) {
                    stored = true;
                    break;
                }
            }
            if !stored {
                tracing::warn!(
                    rounds = ROUNDS,
                    "circuit states may not all be stored: a restart can forget an open circuit"
                );
            }
        }
    }

    /// Stops the actor threads.
    pub fn stop(&self) {
        for arbiter in self.arbiters.iter() {
            arbiter.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Refusal, RefusalCounters};

    #[test]
    fn each_refusal_counts_under_its_own_name() {
        let counters = RefusalCounters::default();
        for (n, reason) in Refusal::ALL.into_iter().enumerate() {
            for _ in 0..=n {
                counters.count(reason);
            }
        }
        let snapshot = counters.snapshot();
        let expected: Vec<(&str, u64)> = Refusal::ALL
            .iter()
            .enumerate()
            .map(|(n, reason)| (reason.as_str(), n as u64 + 1))
            .collect();
        assert_eq!(snapshot, expected);
    }
}
