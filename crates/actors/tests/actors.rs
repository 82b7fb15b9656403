//! The actors with real messages on a real actix system: the Scheduler resolves and follows
//! circuit and cool-down pushes, the HealthMonitor opens a circuit and tells the Scheduler,
//! KeySlots grants, refuses, queues and releases, the Recorder writes one final row per request,
//! and every mailbox is metered.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test set-up fails loudly"
)]

use chrono::Utc;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_actors::ActorSystem;
use switchyard_actors::RoutingConfig;
use switchyard_actors::health::messages::{HealthOf, Outcome, PersistNow};
use switchyard_actors::meter::ActorSnapshot;
use switchyard_actors::recorder::messages::{Flush, RecordEvent, RequestFinished, RequestOpened};
use switchyard_actors::scheduler::messages::{KeyCooling, Resolve};
use switchyard_actors::slots::KeySlots;
use switchyard_actors::slots::messages::{AcquireSlot, CancelWait, Denied, LimitsOf};
use switchyard_core::ApiFormat;
use switchyard_core::SecretString;
use switchyard_core::catalog::{
    BillingType, Catalog, CatalogParts, Endpoint, GatewayKey, GlobalModel, Provider, ProviderKey,
    ProviderModel, User,
};
use switchyard_core::classify::HealthEffect;
use switchyard_core::pricing::TieredPricing;
use switchyard_core::routing::SkipReason;
use switchyard_store::records::{UsageRow, UsageStatus};
use switchyard_store::state::SharedState;

const ASK: Duration = Duration::from_secs(5);

fn key(id: &str, endpoint: &str) -> ProviderKey {
    ProviderKey {
        internal_priority: Some(50),
        ..ProviderKey::new(id, endpoint, SecretString::new(format!("secret-{id}")))
    }
}

fn catalog() -> Arc<Catalog> {
    catalog_at(1, &[("primary", 10), ("fallback", 20)])
}

/// A catalog of `version` with these `(name, priority)` providers.
fn catalog_at(version: u64, providers: &[(&str, i32)]) -> Arc<Catalog> {
    let provider = |name: &str, priority: i32| Provider {
        id: format!("p-{name}"),
        name: name.into(),
        priority,
        billing_type: BillingType::PayAsYouGo,
        endpoints: vec![Endpoint {
            id: format!("e-{name}"),
            provider_id: format!("p-{name}"),
            api_format: ApiFormat::OpenAi,
            base_url: "http://127.0.0.1:9".into(),
            custom_path: None,
            headers: BTreeMap::new(),
            timeout_secs: 30,
            header_timeout_secs: 5,
            first_byte_timeout_secs: 5,
            max_retries: 1,
            max_concurrent: None,
            format_conversion: None,
            keys: vec![key(&format!("k-{name}"), &format!("e-{name}"))],
        }],
        models: [(
            "g".to_owned(),
            ProviderModel {
                id: format!("pm-{name}"),
                global_model_id: "g".into(),
                provider_model_name: "m".into(),
                mappings: vec![],
                pricing: None,
                price_per_request: None,
                supports_streaming: true,
            },
        )]
        .into_iter()
        .collect(),
    };
    Arc::new(Catalog::build(
        version,
        CatalogParts {
            providers: providers
                .iter()
                .map(|(name, priority)| provider(name, *priority))
                .collect(),
            global_models: vec![GlobalModel {
                id: "g".into(),
                name: "m".into(),
                default_pricing: TieredPricing::flat(1.0, 2.0),
                default_price_per_request: None,
                supported_capabilities: vec![],
            }],
            ..CatalogParts::default()
        },
    ))
}

fn client() -> (Arc<GatewayKey>, Arc<User>) {
    (
        Arc::new(GatewayKey {
            id: "gk".into(),
            user_id: "u".into(),
            name: "gk".into(),
            expires_at: None,
            is_standalone: false,
            balance_usd: None,
            balance_used_usd: 0.0,
            allowed_providers: None,
            allowed_endpoints: None,
            allowed_api_formats: None,
            allowed_models: None,
            force_capabilities: BTreeMap::new(),
        }),
        Arc::new(User {
            id: "u".into(),
            name: "u".into(),
            is_admin: false,
            allowed_providers: None,
            allowed_endpoints: None,
            allowed_models: None,
            model_capability_settings: BTreeMap::new(),
            quota_usd: None,
            used_usd: 0.0,
        }),
    )
}

fn resolve() -> Resolve {
    let (gateway_key, user) = client();
    Resolve {
        model: "m".into(),
        format: ApiFormat::OpenAi,
        stream: false,
        gateway_key,
        user,
        capabilities: BTreeMap::new(),
        affinity_key: "gk".into(),
        now: Utc::now(),
    }
}

async fn system(shards: usize) -> (ActorSystem, switchyard_store::testing::TestDb) {
    let db = switchyard_store::testing::sqlite().await;
    let config = RoutingConfig {
        shards,
        record_flush: Duration::from_millis(20),
        ..RoutingConfig::default()
    };
    (start_on(&db, config, false), db)
}

/// The actor system over the test catalog and `db`, shared state in memory; `persist` writes
/// circuit states and learned limits to `db`.
fn start_on(
    db: &switchyard_store::testing::TestDb,
    config: RoutingConfig,
    persist: bool,
) -> ActorSystem {
    ActorSystem::start(
        config,
        catalog(),
        db.db.clone(),
        SharedState::memory(),
        persist,
    )
}

async fn order(system: &ActorSystem) -> Vec<(String, Option<SkipReason>)> {
    let resolved = system
        .scheduler
        .pick("gk")
        .ask(resolve(), ASK)
        .await
        .expect("answered")
        .expect("resolved");
    resolved
        .resolution
        .candidates
        .iter()
        .map(|c| (c.key().id.clone(), c.skip.clone()))
        .collect()
}

/// The first candidate's key and skip reason as `resolver` resolves it.
async fn first_candidate(
    resolver: &switchyard_actors::handle::Handle<switchyard_actors::scheduler::Scheduler>,
) -> (String, Option<SkipReason>) {
    let resolved = resolver
        .ask(resolve(), ASK)
        .await
        .expect("answered")
        .expect("resolved");
    let first = &resolved.resolution.candidates[0];
    (first.key().id.clone(), first.skip.clone())
}

#[actix_rt::test]
async fn a_worker_replica_starts_from_the_key_states_and_follows_every_push() {
    use switchyard_actors::scheduler::messages::{CatalogChanged, CircuitChanged};
    use switchyard_core::routing::KeyCircuit;
    let (system, db) = system(2).await;
    let open = KeyCircuit::Open {
        until: Utc::now() + chrono::Duration::minutes(5),
    };
    // Opened before the replica exists: the replica must copy it.
    for shard in system.schedulers.all() {
        shard.tell(CircuitChanged {
            key_id: "k-primary".into(),
            circuit: open,
        });
    }
    system.attach_worker(catalog);
    let replica = system.resolver("any client");
    assert_eq!(system.schedulers.replica_count(), 1);
    system.attach_worker(catalog);
    assert_eq!(
        system.schedulers.replica_count(),
        1,
        "one replica per thread"
    );
    assert!(matches!(
        first_candidate(&replica).await,
        (key, Some(SkipReason::CircuitOpen { .. })) if key == "k-primary"
    ));

    // Pushed after it joined: it follows.
    for shard in system.schedulers.all() {
        shard.tell(CircuitChanged {
            key_id: "k-primary".into(),
            circuit: KeyCircuit::Closed,
        });
    }
    assert_eq!(
        first_candidate(&replica).await,
        ("k-primary".to_owned(), None)
    );

    // A catalog older than the one it has (pushes race between threads) is ignored.
    let both = [("primary", 10), ("fallback", 20)];
    replica.tell(CatalogChanged(catalog_at(2, &both)));
    // Without the primary: were it applied, the fallback would come first.
    replica.tell(CatalogChanged(catalog_at(1, &[("fallback", 20)])));
    assert_eq!(
        first_candidate(&replica).await,
        ("k-primary".to_owned(), None)
    );

    // The replica is metered after the shards, and it is what answered.
    let replica_meter =
        meter(&system, |s| s.actor == "Scheduler" && s.shard == 2).expect("the replica's meter");
    assert_eq!(handled(&replica_meter, "Resolve"), 3);
    system.stop();
    db.finish().await;
}

#[actix_rt::test]
async fn failures_open_the_circuit_and_the_scheduler_skips_the_key() {
    for shards in [1, 3] {
        let (system, db) = system(shards).await;
        assert_eq!(order(&system).await[0], ("k-primary".to_owned(), None));
        for _ in 0..6 {
            system.health.pick("k-primary").tell(Outcome {
                key_id: "k-primary".into(),
                effect: HealthEffect::Failure,
                probe: false,
                now: Utc::now(),
            });
        }
        let health = system
            .health
            .pick("k-primary")
            .ask(
                HealthOf {
                    key_id: Some("k-primary".into()),
                    now: Utc::now(),
                },
                ASK,
            )
            .await
            .expect("answered");
        assert_eq!(health[0].circuit, "open", "shards={shards}");
        // The push reaches every Scheduler shard; poll until this one has it.
        let mut skipped = false;
        for _ in 0..100 {
            let candidates = order(&system).await;
            if matches!(candidates[0].1, Some(SkipReason::CircuitOpen { .. })) {
                assert_eq!(candidates[1], ("k-fallback".to_owned(), None));
                skipped = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            skipped,
            "the scheduler never learned the circuit opened (shards={shards})"
        );
        system.stop();
        db.finish().await;
    }
}

#[actix_rt::test]
async fn cooling_keys_are_skipped_until_the_cool_down_ends() {
    let (system, db) = system(1).await;
    let until = Utc::now() + chrono::Duration::milliseconds(300);
    system.scheduler.pick("gk").tell(KeyCooling {
        key_id: "k-primary".into(),
        until: Some(until),
    });
    assert!(matches!(
        order(&system).await[0].1,
        Some(SkipReason::CoolingDown { .. })
    ));
    // Poll with a deadline: the key comes back once `until` has passed, not before.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let skip = order(&system).await[0].1.clone();
        if skip.is_none() {
            assert!(
                Utc::now() >= until,
                "the key came back before its cool-down ended"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still skipped after the cool-down ended"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    system.stop();
    db.finish().await;
}

fn acquire(lease: &str, limit: u32, wait: Option<Duration>) -> AcquireSlot {
    AcquireSlot {
        key_id: "k-primary".into(),
        endpoint_id: "e-primary".into(),
        lease_id: lease.into(),
        fixed_limit: Some(limit),
        endpoint_limit: None,
        rpm_limit: None,
        cache_warm: true,
        wait,
    }
}

#[actix_rt::test]
async fn slots_grant_refuse_queue_and_release_on_drop() {
    let (system, db) = system(1).await;
    let slots = system.slots.pick("k-primary").clone();
    let first = acquire("a", 1, None);
    let granted = slots
        .ask(first.clone(), ASK)
        .await
        .expect("answered")
        .expect("granted");
    let lease = KeySlots::lease(&slots, &first, granted);
    let refused = slots
        .ask(acquire("b", 1, None), ASK)
        .await
        .expect("answered");
    assert!(
        matches!(
            refused,
            Err(Denied::KeyFull {
                in_flight: 1,
                limit: 1
            })
        ),
        "{refused:?}"
    );
    // A waiter gets the slot as soon as the lease is dropped.
    let waiting = {
        let slots = slots.clone();
        tokio::spawn(async move {
            slots
                .ask(acquire("c", 1, Some(Duration::from_secs(5))), ASK * 2)
                .await
        })
    };
    // Drop the lease only once the request is in the queue.
    within("the request never queued", || {
        let slots = slots.clone();
        async move {
            let limits = slots
                .ask(
                    LimitsOf {
                        key_id: Some("k-primary".into()),
                    },
                    ASK,
                )
                .await
                .expect("answered");
            limits.first().is_some_and(|l| l.waiting == 1)
        }
    })
    .await;
    drop(lease);
    let waited = waiting.await.expect("joined").expect("answered");
    assert!(
        waited.is_ok(),
        "the waiter did not get the freed slot: {waited:?}"
    );
    // A waiter past its time is refused.
    let late = slots
        .ask(acquire("d", 1, Some(Duration::from_millis(200))), ASK)
        .await
        .expect("answered");
    assert!(matches!(late, Err(Denied::KeyFull { .. })), "{late:?}");
    system.stop();
    db.finish().await;
}

#[actix_rt::test]
async fn leases_dropped_together_go_back_in_one_message() {
    let (system, db) = system(1).await;
    let slots = system.slots.pick("k-primary").clone();
    let mut leases = Vec::new();
    for id in ["a", "b", "c"] {
        let request = acquire(id, 3, None);
        let granted = slots
            .ask(request.clone(), ASK)
            .await
            .expect("answered")
            .expect("granted");
        leases.push(KeySlots::lease(&slots, &request, granted));
    }
    // Three releases in one round of this thread's tasks.
    drop(leases);
    let slots_handled =
        |name: &str| meter(&system, |s| s.actor == "KeySlots").map_or(0, |m| handled(&m, name));
    within("the releases never arrived", || {
        let arrived = slots_handled("ReleaseSlots") > 0;
        async move { arrived }
    })
    .await;
    assert_eq!(
        (slots_handled("ReleaseSlots"), slots_handled("ReleaseSlot")),
        (1, 0)
    );
    // All three are free: a request that may only hold one slot gets it.
    let request = acquire("d", 1, None);
    let _lease = until("the three slots were not given back", || {
        let (slots, request) = (slots.clone(), request.clone());
        async move {
            let granted = slots
                .ask(request.clone(), ASK)
                .await
                .expect("answered")
                .ok()?;
            Some(KeySlots::lease(&slots, &request, granted))
        }
    })
    .await;
    system.stop();
    db.finish().await;
}

/// The first actor meter `pick` accepts.
fn meter(system: &ActorSystem, pick: impl Fn(&ActorSnapshot) -> bool) -> Option<ActorSnapshot> {
    system.registry.snapshots().into_iter().find(|s| pick(s))
}

/// How many messages named `message` a meter counts as handled (0 when it saw none).
fn handled(meter: &ActorSnapshot, message: &str) -> u64 {
    meter
        .messages
        .iter()
        .find(|m| m.message == message)
        .map_or(0, |m| m.handled)
}

/// Whether `future` is still unfinished after `wait` (it is polled meanwhile, and can be
/// awaited on afterwards).
async fn still_pending<F: std::future::Future + Unpin>(future: &mut F, wait: Duration) -> bool {
    tokio::time::timeout(wait, future).await.is_err()
}

/// Polls `check` every 5 ms for up to 3 s.
async fn within<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    until(what, || {
        let checked = check();
        async move { checked.await.then_some(()) }
    })
    .await;
}

/// Polls `attempt` every 5 ms for up to 3 s, until it gives something.
async fn until<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A requester of `lease` that waits in line (up to 10 s) on its own task.
fn queue_up(
    slots: &switchyard_actors::handle::Handle<KeySlots>,
    lease: &str,
) -> tokio::task::JoinHandle<
    Result<<AcquireSlot as actix::Message>::Result, switchyard_actors::handle::SendError>,
> {
    let slots = slots.clone();
    let request = acquire(lease, 1, Some(Duration::from_secs(10)));
    tokio::spawn(async move { slots.ask(request, ASK * 3).await })
}

#[actix_rt::test]
async fn a_cancelled_wait_leaves_the_line_or_gives_back_the_slot_it_was_granted() {
    let (system, db) = system(1).await;
    let slots = system.slots.pick("k-primary").clone();
    let waiting = |slots: &switchyard_actors::handle::Handle<KeySlots>| {
        let slots = slots.clone();
        async move {
            slots
                .ask(
                    LimitsOf {
                        key_id: Some("k-primary".into()),
                    },
                    ASK,
                )
                .await
                .expect("answered")
                .first()
                .map_or(0, |l| l.waiting)
        }
    };
    let in_flight = || {
        let state = system.state.clone();
        async move { state.in_flight("k-primary").await.expect("counted") }
    };
    let cancel = |lease: &str| CancelWait {
        key_id: "k-primary".into(),
        endpoint_id: "e-primary".into(),
        lease_id: lease.into(),
    };
    let first = acquire("a", 1, None);
    let granted = slots
        .ask(first.clone(), ASK)
        .await
        .expect("answered")
        .expect("granted");
    let lease = KeySlots::lease(&slots, &first, granted);

    // Still in line: the requester leaves, its place goes at once.
    let gone = queue_up(&slots, "b");
    within("b never queued", || async { waiting(&slots).await == 1 }).await;
    gone.abort();
    slots.tell(cancel("b"));
    within("b kept its place", || async { waiting(&slots).await == 0 }).await;

    // Granted while its requester was leaving: the slot comes straight back.
    let gone = queue_up(&slots, "c");
    within("c never queued", || async { waiting(&slots).await == 1 }).await;
    gone.abort();
    drop(lease);
    // The grant to nobody holds the slot…
    within("c was never granted", || async {
        waiting(&slots).await == 0 && in_flight().await == 1
    })
    .await;
    // …until the cancellation arrives.
    slots.tell(cancel("c"));
    within("the slot granted to c was never given back", || async {
        in_flight().await == 0
    })
    .await;
    system.stop();
    db.finish().await;
}

/// The statuses of the stored usage rows.
/// A request's opening event: its pending row, no skipped candidates.
fn opened(id: &str, at: chrono::DateTime<Utc>) -> RecordEvent {
    RecordEvent::Opened(RequestOpened {
        usage: UsageRow::new(id, "m", "OPENAI", UsageStatus::Pending, at),
        attempts: vec![],
    })
}

/// A request's final event with the status the client received.
fn finished(id: &str, status: UsageStatus, code: i32, at: chrono::DateTime<Utc>) -> RecordEvent {
    let mut usage = UsageRow::new(id, "m", "OPENAI", status, at);
    usage.status_code = Some(code);
    RecordEvent::Finished(RequestFinished {
        usage,
        attempts: vec![],
        spend: None,
    })
}

async fn stored_statuses(db: &switchyard_store::testing::TestDb) -> Vec<String> {
    use sea_orm::EntityTrait;
    switchyard_store::entity::usage::Entity::find()
        .all(&db.db)
        .await
        .expect("query")
        .into_iter()
        .map(|r| r.status)
        .collect()
}

#[actix_rt::test]
async fn posted_records_hold_unfinished_rows_back_and_write_each_request_once() {
    use switchyard_actors::recorder::HOLD_UNFINISHED;
    let (system, db) = system(1).await;
    let now = Utc::now();
    let post = |event: RecordEvent| {
        let kind = event.kind();
        system.record_mail.pick("req-quick").post(event, kind);
    };
    // A quick request: opened, then finished well within the hold.
    post(opened("req-quick", now));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        stored_statuses(&db).await.is_empty(),
        "an unfinished row was written before its hold ran out"
    );
    post(finished("req-quick", UsageStatus::Completed, 200, now));
    // Nobody flushes: the tray is collected and the batch written on the Recorder's own clock.
    let mut statuses = Vec::new();
    for _ in 0..100 {
        statuses = stored_statuses(&db).await;
        if !statuses.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(statuses, ["completed"]);
    assert_eq!(
        system
            .records
            .usage_rows
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the pending row of a quick request reached the database"
    );

    // A long request shows up while it runs, once the hold is over.
    let posted = std::time::Instant::now();
    system
        .record_mail
        .pick("req-long")
        .post(opened("req-long", now), "RequestOpened");
    let mut statuses = Vec::new();
    while posted.elapsed() < HOLD_UNFINISHED + Duration::from_secs(5) {
        statuses = stored_statuses(&db).await;
        if statuses.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        posted.elapsed() >= HOLD_UNFINISHED,
        "an unfinished row was written before its hold ran out"
    );
    statuses.sort();
    assert_eq!(statuses, ["completed", "pending"]);

    let snapshot = meter(&system, |s| s.actor == "Recorder").expect("recorder meter");
    assert_eq!(snapshot.depth, 0, "posted records are counted as handled");
    assert_eq!(handled(&snapshot, "RequestOpened"), 2);
    system.stop();
    db.finish().await;
}

#[actix_rt::test]
async fn the_recorder_writes_one_final_row_and_meters_its_mailbox() {
    let (system, db) = system(2).await;
    let recorder = system.recorder.pick("req-1").clone();
    let tray = system.record_mail.pick("req-1");
    let post = |event: RecordEvent| {
        let kind = event.kind();
        tray.post(event, kind);
    };
    let now = Utc::now();
    post(opened("req-1", now));
    post(finished("req-1", UsageStatus::Completed, 200, now));
    post(finished("req-1", UsageStatus::Failed, 500, now));
    recorder.ask(Flush, ASK).await.expect("flushed");
    use sea_orm::EntityTrait;
    let rows = switchyard_store::entity::usage::Entity::find()
        .all(&db.db)
        .await
        .expect("query");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].status.as_str(), rows[0].status_code),
        ("completed", Some(200)),
        "a final row was overwritten"
    );
    let snapshot =
        meter(&system, |s| s.actor == "Recorder" && s.handled >= 4).expect("recorder meter");
    assert_eq!(snapshot.depth, 0);
    assert_eq!(handled(&snapshot, "RequestFinished"), 2);
    system.stop();
    db.finish().await;
}

#[actix_rt::test]
async fn each_batch_writes_only_the_rows_that_arrived_since_the_last() {
    let (system, db) = system(1).await;
    let now = Utc::now();
    for id in ["req-a", "req-b", "req-c", "req-d"] {
        let tray = system.record_mail.pick(id);
        tray.post(
            finished(id, UsageStatus::Completed, 200, now),
            "RequestFinished",
        );
        system
            .recorder
            .pick(id)
            .ask(Flush, ASK)
            .await
            .expect("flushed");
    }
    let counted =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        (
            counted(&system.records.batches),
            counted(&system.records.usage_rows)
        ),
        (4, 4),
        "a batch wrote rows of an earlier one"
    );
    assert_eq!(stored_statuses(&db).await.len(), 4);
    system.stop();
    db.finish().await;
}

/// One provider key in the database (circuit states are stored only for keys there) and an
/// actor system on it with one shard and no periodic write: every write is one asked for.
async fn one_stored_key(db: &switchyard_store::testing::TestDb) -> (ActorSystem, String) {
    use sea_orm::EntityTrait;
    const ONE_KEY: &str = r#"
[[providers]]
name = "only"
priority = 10
  [[providers.endpoints]]
  api_format = "openai"
  base_url = "https://api.example.invalid"
    [[providers.endpoints.keys]]
    name = "held"
    api_key = "sk-held-0123456789"
"#;
    let ctx =
        switchyard_store::manage::WriteContext::new(switchyard_store::Cipher::from_key(&[7u8; 32]));
    switchyard_store::import::import_toml(&db.db, &ctx, ONE_KEY, &|_| None)
        .await
        .expect("imported");
    let key_id = switchyard_store::entity::provider_key::Entity::find()
        .all(&db.db)
        .await
        .expect("keys")
        .remove(0)
        .id;
    let config = RoutingConfig {
        shards: 1,
        persist_every: Duration::from_secs(3600),
        ..RoutingConfig::default()
    };
    (start_on(db, config, true), key_id)
}

fn failures(system: &ActorSystem, key_id: &str) {
    // Enough failures to open the circuit: a change to store.
    for _ in 0..6 {
        system.health.pick(key_id).tell(Outcome {
            key_id: key_id.to_owned(),
            effect: HealthEffect::Failure,
            probe: false,
            now: Utc::now(),
        });
    }
}

/// A write of circuit states that fails says so, and keeps the change for the next one: the
/// graceful shutdown asks again until everything is stored.
#[actix_rt::test]
async fn a_failed_write_of_circuits_answers_false_and_the_next_stores_it() {
    use sea_orm::ConnectionTrait;
    for db in switchyard_store::testing::all().await {
        let (system, key_id) = one_stored_key(&db).await;
        failures(&system, &key_id);
        let shard = system.health.pick(&key_id).clone();
        let rename = |from: &str, to: &str| format!("ALTER TABLE {from} RENAME TO {to}");
        db.db
            .execute_unprepared(&rename("provider_key_states", "key_states_away"))
            .await
            .expect("table moved away");
        let failed = shard.ask(PersistNow, Duration::from_secs(30)).await;
        assert_eq!(failed.ok(), Some(false), "{}", db.backend);
        db.db
            .execute_unprepared(&rename("key_states_away", "provider_key_states"))
            .await
            .expect("table back");
        let stored = shard.ask(PersistNow, Duration::from_secs(30)).await;
        assert_eq!(stored.ok(), Some(true), "{}", db.backend);
        let rows = switchyard_store::key_state::load_all(&db.db)
            .await
            .expect("key states");
        assert!(
            rows.iter()
                .any(|(id, health, _)| *id == key_id && health.is_some()),
            "{}: {rows:?}",
            db.backend
        );
        system.stop();
        db.finish().await;
    }
}

/// The graceful shutdown's write of circuit states waits for a write that already took the
/// changes (a periodic one, in production): otherwise it finds nothing to write, returns, and
/// the process exits before that write lands (a circuit open at shutdown was then closed after
/// the restart).
#[actix_rt::test]
async fn the_shutdown_write_of_circuits_waits_for_a_write_under_way() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    for db in switchyard_store::testing::all().await {
        let (system, key_id) = one_stored_key(&db).await;
        // Another connection holds the write lock, so a write of the states blocks behind it.
        let blocker = db.db.begin().await.expect("a transaction");
        let lock = match db.backend {
            "postgres" => "LOCK TABLE provider_key_states IN EXCLUSIVE MODE",
            _ => "CREATE TABLE persist_blocker (x INTEGER)",
        };
        blocker.execute_unprepared(lock).await.expect("the lock");
        failures(&system, &key_id);
        // A first write takes the change and waits for the lock (the mailbox keeps the order:
        // the outcomes, then this write, then the shutdown's).
        let shard = system.health.pick(&key_id).clone();
        let first = shard.ask(PersistNow, Duration::from_secs(30));
        tokio::pin!(first);
        assert!(
            still_pending(&mut first, Duration::from_millis(50)).await,
            "{}: the first write did not wait for the lock",
            db.backend
        );
        let shutdown = system.persist_now();
        tokio::pin!(shutdown);
        assert!(
            still_pending(&mut shutdown, Duration::from_millis(300)).await,
            "{}: the shutdown write returned while the state was not stored",
            db.backend
        );
        blocker.rollback().await.expect("the lock released");
        tokio::time::timeout(Duration::from_secs(10), shutdown)
            .await
            .expect("the shutdown write ends once the lock is gone");
        first.await.expect("the first write ended as well");
        let stored = switchyard_store::key_state::load_all(&db.db)
            .await
            .expect("key states");
        assert!(
            stored
                .iter()
                .any(|(id, health, _)| *id == key_id && health.is_some()),
            "{}: {stored:?}",
            db.backend
        );
        system.stop();
        db.finish().await;
    }
}
