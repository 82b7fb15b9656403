//! Slots handed from one request to the next on the same worker thread.
//!
//! Without this, every attempt asks its KeySlots shard for a slot and waits for the answer: at
//! low concurrency that is two thread wake-ups per request (the shard's, then the worker's), the
//! largest single cost of a request at concurrency 1 on a small machine (measured: ~0.1 ms of
//! latency and ~85 µs of CPU per request). Instead, a worker whose request ended in a clean
//! success keeps the slot for a moment, still counted in flight; its next request for the same
//! key and endpoint takes it without asking. A slot nobody takes within [`HOLD`] goes back at
//! the next sweep (every [`SWEEP_EVERY`]).
//!
//! The accounting never under-counts: a slot is in flight from KeySlots' grant until it is given
//! back, whoever uses it meanwhile. What a kept slot can hide is bounded:
//! - only slots KeySlots marked as spare are kept: the key and the endpoint at most half full at
//!   the grant and no RPM limit (every request must be counted in an RPM window), so a kept idle
//!   slot does not push another request over a limit;
//! - a slot serves requests for at most [`MAX_AGE`] after its grant, then goes back and the next
//!   request asks KeySlots: a cool-down, a lowered limit or a reset reaches the worker in time;
//! - a slot KeySlots granted to a cache-warm request (which may use the reserved share) is only
//!   handed to another cache-warm request.
//!
//! What each attempt taught (success samples, health) still reaches KeySlots and HealthMonitor,
//! with the thread's next batch of releases or the next sweep, at most [`SWEEP_EVERY`] later.

use super::messages::{AcquireSlot, ReleaseSlot};
use super::{KeySlots, Lease, outbox};
use crate::handle::Handle;
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// How long an unused kept slot stays with the worker (it goes back at the first sweep after
/// that). Long enough for a client's next request on a kept-alive connection; short enough that
/// an idle slot never matters to anyone else.
pub(crate) const HOLD: Duration = Duration::from_millis(2);

/// How often a thread that keeps slots gives back the unused ones and sends what its attempts
/// taught. Each sweep may wake the KeySlots thread: a sweep per request would cost at
/// concurrency 1 what the hand-over saves.
const SWEEP_EVERY: Duration = Duration::from_millis(5);

/// How long after KeySlots granted it a slot may still be handed on.
pub(crate) const MAX_AGE: Duration = Duration::from_millis(100);

/// Slots one thread keeps at most.
const MAX_KEPT: usize = 64;

/// A slot's identity and the terms it was granted under.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) slots: Handle<KeySlots>,
    pub(crate) key_id: String,
    pub(crate) endpoint_id: String,
    pub(crate) lease_id: String,
    /// Key in-flight count right after the grant.
    pub(crate) in_flight: u32,
    pub(crate) granted_at: Instant,
    /// Granted to a cache-warm request.
    pub(crate) cache_warm: bool,
    /// The key's and endpoint's configured limits at the grant.
    pub(crate) limits: (Option<u32>, Option<u32>),
    /// KeySlots marked it as spare (see the module documentation).
    pub(crate) spare: bool,
}

impl Slot {
    /// The terms of `request`'s grant.
    pub(crate) fn granted(
        slots: &Handle<KeySlots>,
        request: &AcquireSlot,
        in_flight: u32,
        spare: bool,
    ) -> Self {
        Self {
            slots: slots.clone(),
            key_id: request.key_id.clone(),
            endpoint_id: request.endpoint_id.clone(),
            lease_id: request.lease_id.clone(),
            in_flight,
            granted_at: Instant::now(),
            cache_warm: request.cache_warm,
            limits: (request.fixed_limit, request.endpoint_limit),
            spare,
        }
    }

    /// Whether `request` may run on this slot.
    fn serves(&self, slots: &Handle<KeySlots>, request: &AcquireSlot) -> bool {
        self.key_id == request.key_id
            && self.endpoint_id == request.endpoint_id
            && self.limits == (request.fixed_limit, request.endpoint_limit)
            && (request.cache_warm || !self.cache_warm)
            && self.slots.addr() == slots.addr()
    }

    /// Its shard and the release that gives it back.
    fn give_back(self) -> (Handle<KeySlots>, ReleaseSlot) {
        let release = ReleaseSlot::free(self.key_id, self.endpoint_id, self.lease_id);
        (self.slots, release)
    }
}

/// A slot kept since a request ended.
struct Kept {
    slot: Slot,
    since: Instant,
}

thread_local! {
    /// This thread's kept slots, oldest first.
    static KEPT: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
    /// A sweeper task runs on this thread.
    static SWEEPING: Cell<bool> = const { Cell::new(false) };
}

/// Whether `slot`, whose request just ended in a clean success, may be kept for the next one.
pub(crate) fn can_keep(slot: &Slot) -> bool {
    slot.spare
        && slot.granted_at.elapsed() < MAX_AGE
        && actix::Arbiter::try_current().is_some()
        && KEPT
            .try_with(|kept| kept.borrow().len() < MAX_KEPT)
            .unwrap_or(false)
}

/// Keeps `slot` (after [`can_keep`]) until a request takes it or a sweep finds it unused for
/// [`HOLD`].
pub(crate) fn keep(slot: Slot) {
    let mut kept = Some(Kept {
        slot,
        since: Instant::now(),
    });
    let _ = KEPT.try_with(|slots| slots.borrow_mut().extend(kept.take()));
    match kept {
        // The thread is exiting: give it back now.
        Some(kept) => {
            let (slots, release) = kept.slot.give_back();
            slots.tell(release);
        }
        None => start_sweeper(),
    }
}

/// A lease on a slot this thread kept, for `request`'s key and endpoint, if there is one.
pub(crate) fn take(slots: &Handle<KeySlots>, request: &AcquireSlot) -> Option<Lease> {
    // A waiting request keeps its place in the shard's line; an RPM-limited key counts every
    // request at its shard.
    if request.wait.is_some() || request.rpm_limit.is_some() {
        return None;
    }
    let slot = KEPT
        .try_with(|kept| {
            let mut kept = kept.borrow_mut();
            // The most recently kept: the freshest grant.
            let at = kept.iter().rposition(|k| k.slot.serves(slots, request))?;
            Some(kept.remove(at).slot)
        })
        .ok()
        .flatten()?;
    if slot.granted_at.elapsed() >= MAX_AGE {
        let (slots, release) = slot.give_back();
        outbox::post(&slots, release);
        return None;
    }
    Some(Lease::new(slot, true))
}

/// Runs [`sweep`] every [`SWEEP_EVERY`] while this thread keeps slots.
fn start_sweeper() {
    if SWEEPING.try_with(|on| on.replace(true)).unwrap_or(true) {
        return;
    }
    // Made before the task so that it runs even if the task is dropped unpolled.
    let stop = SweeperStop;
    actix::spawn(async move {
        let _stop = stop;
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            if !sweep(Instant::now()) {
                break;
            }
        }
    });
}

/// Gives back the slots kept for [`HOLD`] and sends this thread's pending reports and
/// releases: whether slots are still kept.
fn sweep(now: Instant) -> bool {
    let (expired, left) = KEPT
        .try_with(|kept| {
            let mut kept = kept.borrow_mut();
            // Oldest first: the expired ones lead.
            let unused = kept
                .iter()
                .take_while(|k| now.saturating_duration_since(k.since) >= HOLD)
                .count();
            let expired: Vec<Slot> = kept.drain(..unused).map(|k| k.slot).collect();
            (expired, !kept.is_empty())
        })
        .unwrap_or_default();
    for slot in expired {
        let (slots, release) = slot.give_back();
        outbox::post_later(&slots, release);
    }
    outbox::flush_all();
    left
}

/// Ends a sweeper: gives back whatever is still kept (the thread is stopping, or nothing is).
struct SweeperStop;

impl Drop for SweeperStop {
    fn drop(&mut self) {
        let kept = KEPT
            .try_with(|kept| std::mem::take(&mut *kept.borrow_mut()))
            .unwrap_or_default();
        for kept in kept {
            let (slots, release) = kept.slot.give_back();
            slots.tell(release);
        }
        outbox::flush_all();
        let _ = SWEEPING.try_with(|on| on.set(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RoutingConfig;
    use crate::handle::Shards;
    use crate::health::messages::Outcome;
    use crate::meter::MeterRegistry;
    use crate::scheduler::SchedulerSet;
    use crate::slots::SlotCounters;
    use crate::slots::messages::{LimitsOf, ObserveOutcome, Observed};
    use actix::Actor;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use switchyard_core::classify::HealthEffect;
    use switchyard_store::state::SharedState;

    const ASK: Duration = Duration::from_secs(5);

    struct Shard {
        slots: Handle<KeySlots>,
        state: SharedState,
        counters: Arc<SlotCounters>,
        registry: MeterRegistry,
    }

    fn shard() -> Shard {
        let (state, counters, registry) = (
            SharedState::memory(),
            Arc::new(SlotCounters::default()),
            MeterRegistry::default(),
        );
        let slots = KeySlots::new(
            state.clone(),
            SchedulerSet::new(Shards::new(Vec::new())),
            RoutingConfig::default(),
            None,
            counters.clone(),
        );
        let slots = Handle::new(slots.start(), "KeySlots", 0, &registry);
        Shard {
            slots,
            state,
            counters,
            registry,
        }
    }

    fn request(lease: &str, limit: Option<u32>) -> AcquireSlot {
        AcquireSlot {
            key_id: "k".into(),
            endpoint_id: "e".into(),
            lease_id: lease.into(),
            fixed_limit: limit,
            endpoint_limit: None,
            rpm_limit: None,
            cache_warm: false,
            wait: None,
        }
    }

    impl Shard {
        /// A lease granted by KeySlots.
        async fn grant(&self, request: &AcquireSlot) -> Lease {
            let granted = outbox::acquire(&self.slots, request.clone(), ASK)
                .await
                .expect("answered")
                .expect("granted");
            KeySlots::lease(&self.slots, request, granted)
        }

        async fn in_flight(&self) -> u32 {
            self.state.in_flight("k").await.expect("memory state")
        }

        fn handled(&self, message: &str) -> u64 {
            self.registry
                .snapshots()
                .into_iter()
                .flat_map(|s| s.messages)
                .find(|m| m.message == message)
                .map_or(0, |m| m.handled)
        }

        /// Polls `check` for up to 3 s.
        async fn eventually<F: AsyncFnMut(&Shard) -> bool>(&self, what: &str, mut check: F) {
            let deadline = Instant::now() + Duration::from_secs(3);
            while !check(self).await {
                assert!(Instant::now() < deadline, "{what}");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    /// Notes on `lease` what an attempt that ended with `effect` reports.
    fn ended(lease: &mut Lease, effect: HealthEffect) {
        let now = chrono::Utc::now();
        lease.report_health(Outcome {
            key_id: "k".into(),
            effect,
            probe: false,
            now,
        });
        let observed = match effect {
            HealthEffect::Success => Observed::Success,
            _ => Observed::Other,
        };
        lease.observe(ObserveOutcome {
            key_id: "k".into(),
            adaptive: false,
            in_flight: lease.in_flight,
            observed,
            now,
        });
    }

    #[actix_rt::test]
    async fn a_clean_success_hands_its_slot_to_the_next_request_for_the_key() {
        let shard = shard();
        let mut first = shard.grant(&request("a", Some(4))).await;
        assert!(!first.handed_over());
        ended(&mut first, HealthEffect::Success);
        drop(first);
        let mut second = take(&shard.slots, &request("b", Some(4))).expect("handed over");
        assert!(second.handed_over());
        // Counted in flight the whole time, and KeySlots was asked once.
        assert_eq!(shard.in_flight().await, 1);
        assert_eq!(shard.handled("AcquireSlots"), 1);
        ended(&mut second, HealthEffect::Failure);
        drop(second);
        shard
            .eventually("the slot was not given back", async |s| {
                s.in_flight().await == 0
            })
            .await;
        // What both attempts taught arrived: two requests of the key, the first a success.
        let limits = shard
            .slots
            .ask(
                LimitsOf {
                    key_id: Some("k".into()),
                },
                ASK,
            )
            .await
            .expect("answered");
        assert_eq!((limits[0].requests, limits[0].successes), (2, 1));
        assert_eq!(shard.counters.handed_over.load(Ordering::Relaxed), 1);
    }

    #[actix_rt::test]
    async fn a_kept_slot_nobody_takes_goes_back_after_the_hold() {
        let shard = shard();
        let mut lease = shard.grant(&request("a", None)).await;
        ended(&mut lease, HealthEffect::Success);
        drop(lease);
        assert_eq!(shard.in_flight().await, 1, "kept, still in flight");
        let kept_at = Instant::now();
        shard
            .eventually("the kept slot never went back", async |s| {
                s.in_flight().await == 0
            })
            .await;
        assert!(kept_at.elapsed() >= HOLD);
        assert!(take(&shard.slots, &request("b", None)).is_none());
        assert_eq!(shard.counters.handed_over.load(Ordering::Relaxed), 0);
    }

    /// Drops `lease` after `effect` and says whether `next` then got its slot from the thread.
    async fn handed(
        shard: &Shard,
        mut lease: Lease,
        effect: HealthEffect,
        next: &AcquireSlot,
    ) -> bool {
        ended(&mut lease, effect);
        drop(lease);
        let handed = take(&shard.slots, next).is_some();
        shard
            .eventually("the slot was not given back", async |s| {
                s.in_flight().await == 0
            })
            .await;
        handed
    }

    #[actix_rt::test]
    async fn only_spare_slots_after_a_clean_success_are_handed_on() {
        let shard = shard();
        let limited = |lease: &str| request(lease, Some(4));
        // A failure, or an outcome that says nothing about the key (a client error), gives the
        // slot back.
        let lease = shard.grant(&limited("a")).await;
        assert!(!handed(&shard, lease, HealthEffect::Failure, &limited("b")).await);
        let lease = shard.grant(&limited("a")).await;
        assert!(!handed(&shard, lease, HealthEffect::Neutral, &limited("b")).await);
        // More than half full at the grant: a key limited to one slot.
        let lease = shard.grant(&request("a", Some(1))).await;
        assert!(!handed(&shard, lease, HealthEffect::Success, &request("b", Some(1))).await);
        // Every request of an RPM-limited key is counted by KeySlots.
        let rpm = |lease: &str| AcquireSlot {
            rpm_limit: Some(1000),
            ..limited(lease)
        };
        let lease = shard.grant(&rpm("a")).await;
        assert!(!handed(&shard, lease, HealthEffect::Success, &rpm("b")).await);
        // A cache-warm grant (which may use the reserved share) goes to cache-warm requests only.
        let warm = |lease: &str| AcquireSlot {
            cache_warm: true,
            ..limited(lease)
        };
        let lease = shard.grant(&warm("a")).await;
        assert!(!handed(&shard, lease, HealthEffect::Success, &limited("b")).await);
        let lease = shard.grant(&warm("a")).await;
        assert!(handed(&shard, lease, HealthEffect::Success, &warm("b")).await);
        // Another key, endpoint or limit than the grant's.
        let other_endpoint = AcquireSlot {
            endpoint_id: "e2".into(),
            ..limited("b")
        };
        let lease = shard.grant(&limited("a")).await;
        assert!(!handed(&shard, lease, HealthEffect::Success, &other_endpoint).await);
        let lease = shard.grant(&limited("a")).await;
        assert!(!handed(&shard, lease, HealthEffect::Success, &request("b", Some(8))).await);
        // A request that would wait in line asks KeySlots.
        let waiting = AcquireSlot {
            wait: Some(Duration::from_secs(1)),
            ..limited("b")
        };
        let lease = shard.grant(&limited("a")).await;
        assert!(!handed(&shard, lease, HealthEffect::Success, &waiting).await);
        // The control: the same grant, a request that qualifies.
        let lease = shard.grant(&limited("a")).await;
        assert!(handed(&shard, lease, HealthEffect::Success, &limited("b")).await);
    }

    #[actix_rt::test]
    async fn slots_kept_by_a_thread_that_stops_go_back() {
        let shard = shard();
        let (slots, request) = (shard.slots.clone(), request("a", None));
        let (kept_tx, kept_rx) = tokio::sync::oneshot::channel();
        let worker = actix::Arbiter::new();
        worker.spawn(async move {
            let granted = outbox::acquire(&slots, request.clone(), ASK)
                .await
                .expect("answered")
                .expect("granted");
            let mut lease = KeySlots::lease(&slots, &request, granted);
            ended(&mut lease, HealthEffect::Success);
            drop(lease);
            let _ = kept_tx.send(KEPT.with(|kept| kept.borrow().len()));
            // Long before its first sweep.
            actix::Arbiter::current().stop();
        });
        assert_eq!(kept_rx.await.expect("ran"), 1, "the slot was not kept");
        shard
            .eventually("a stopped thread's kept slot never went back", async |s| {
                s.in_flight().await == 0
            })
            .await;
    }

    #[actix_rt::test]
    async fn a_slot_is_not_handed_on_past_its_age() {
        let shard = shard();
        let lease = shard.grant(&request("a", None)).await;
        tokio::time::sleep(MAX_AGE).await;
        assert!(!handed(&shard, lease, HealthEffect::Success, &request("b", None)).await);
    }
}
