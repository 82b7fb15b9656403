//! KeySlots handlers and the waiting queue.

use super::backends::Backends;
use super::handover::Slot;
use super::messages::*;
use super::{KeyEntry, KeySlots, Lease};
use crate::handle::Handle;
use crate::health::HealthMonitor;
use crate::health::messages::{Outcome, Outcomes};
use crate::scheduler::messages::KeyCooling;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use foldhash::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;
use switchyard_core::adaptive::AdaptiveState;
use switchyard_core::ratelimit;
use switchyard_core::reservation::{KeyStats, non_cached_cap, reservation_ratio};
use switchyard_store::state::{LeaseOutcome, LeaseRequest, RpmOutcome};
use tokio::sync::oneshot;

/// A request waiting for a slot on a full key.
#[derive(Debug)]
pub(super) struct Waiter {
    request: AcquireSlot,
    reply: oneshot::Sender<SlotResult>,
    deadline: Instant,
    last_denial: Denied,
}

/// What one acquisition will ask the shared state.
struct Plan {
    lease: LeaseRequest,
    key_limit: Option<u32>,
    rpm_limit: Option<u32>,
}

/// The entry of `key_id`, made when missing. Looked up by reference first: the ids are copied
/// only for a key seen for the first time, not on every grant, release and outcome.
fn key_entry<'a>(keys: &'a mut HashMap<String, KeyEntry>, key_id: &str) -> &'a mut KeyEntry {
    if !keys.contains_key(key_id) {
        keys.insert(key_id.to_owned(), KeyEntry::default());
    }
    match keys.get_mut(key_id) {
        Some(entry) => entry,
        None => unreachable!("inserted above"),
    }
}

fn stats(entry: &KeyEntry) -> KeyStats {
    KeyStats {
        requests: entry.requests,
        successes: entry.successes,
        concurrent_429s: entry.adaptive.concurrent_429s(),
        rpm_429s: entry.adaptive.rpm_429s(),
        last_429_at: entry.adaptive.last_429_at(),
        recent_limits: entry.adaptive.recent_limits(5),
        adjustments: entry.adaptive.history().len(),
    }
}

impl KeySlots {
    /// Decides the limit for this request (sync, on the actor's state).
    fn plan(&mut self, req: &AcquireSlot, now: DateTime<Utc>) -> Result<Plan, Denied> {
        if let Some(until) = self.cooldowns.get(&req.key_id) {
            if *until > now {
                return Err(Denied::Cooling { until: *until });
            }
            self.cooldowns.remove(&req.key_id);
        }
        let entry = key_entry(&mut self.keys, &req.key_id);
        let limit = req.fixed_limit.or_else(|| entry.adaptive.limit());
        let key_limit = limit.map(|limit| {
            if req.cache_warm {
                limit
            } else {
                let ratio =
                    reservation_ratio(&stats(entry), entry.last_in_flight, Some(limit), now);
                non_cached_cap(limit, ratio)
            }
        });
        Ok(Plan {
            lease: LeaseRequest {
                key_id: req.key_id.clone(),
                endpoint_id: req.endpoint_id.clone(),
                lease_id: req.lease_id.clone(),
                key_limit,
                endpoint_limit: req.endpoint_limit,
                ttl: self.config.lease_ttl,
            },
            key_limit,
            rpm_limit: req.rpm_limit,
        })
    }

    fn granted(&mut self, key_id: &str, granted: Granted) {
        self.counters.granted.fetch_add(1, Ordering::Relaxed);
        let entry = key_entry(&mut self.keys, key_id);
        entry.requests += 1;
        entry.last_in_flight = granted.in_flight;
    }

    /// Offers a slot to the first waiter of every key that has some, expiring the late ones.
    pub(super) fn serve_waiters(&mut self, ctx: &mut Context<Self>) {
        let keys: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, e)| !e.waiters.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.serve_key(&key, ctx);
        }
    }

    fn serve_key(&mut self, key_id: &str, ctx: &mut Context<Self>) {
        let now = Instant::now();
        // One try at a time per key, or the second waiter could get the slot the first one is
        // still asking the shared state for (FIFO broken whenever that state is remote).
        if let Some(entry) = self.keys.get_mut(key_id)
            && entry.serving
        {
            entry.rerun = true;
            return;
        }
        // The first waiter still interested and in time; the others are answered or dropped.
        let waiter = loop {
            let Some(front) = self
                .keys
                .get_mut(key_id)
                .and_then(|e| e.waiters.pop_front())
            else {
                return;
            };
            if front.reply.is_closed() {
                continue;
            }
            if front.deadline <= now {
                self.counters.wait_timeouts.fetch_add(1, Ordering::Relaxed);
                let _ = front.reply.send(Err(front.last_denial));
                continue;
            }
            break front;
        };
        let plan = match self.plan(&waiter.request, Utc::now()) {
            Ok(plan) => plan,
            Err(denied) => {
                let _ = waiter.reply.send(Err(denied));
                return;
            }
        };
        if let Some(entry) = self.keys.get_mut(key_id) {
            entry.serving = true;
            entry.rerun = false;
        }
        let state = self.backends.clone();
        let key = key_id.to_owned();
        ctx.spawn(
            execute(state.clone(), plan)
                .into_actor(self)
                .map(move |result, act, ctx| {
                    match result {
                        Ok(granted) => {
                            act.granted(&waiter.request.key_id, granted);
                            act.counters.waited.fetch_add(1, Ordering::Relaxed);
                            let cancelled =
                                act.cancelled.remove(&waiter.request.lease_id).is_some();
                            if cancelled {
                                let r = waiter.request;
                                actix::spawn(async move {
                                    let _ =
                                        state.release(&r.key_id, &r.endpoint_id, &r.lease_id).await;
                                });
                            } else if let Err(Ok(_)) = waiter.reply.send(Ok(granted)) {
                                // The requester left meanwhile: give the slot straight back.
                                let r = waiter.request;
                                actix::spawn(async move {
                                    let _ =
                                        state.release(&r.key_id, &r.endpoint_id, &r.lease_id).await;
                                });
                            }
                        }
                        Err(denied @ (Denied::KeyFull { .. } | Denied::EndpointFull { .. })) => {
                            // Still full: back to the head of the line.
                            let key = waiter.request.key_id.clone();
                            act.keys.entry(key).or_default().waiters.push_front(Waiter {
                                last_denial: denied,
                                ..waiter
                            });
                        }
                        Err(other) => {
                            let _ = waiter.reply.send(Err(other));
                        }
                    }
                    let entry = act.keys.entry(key.clone()).or_default();
                    entry.serving = false;
                    if std::mem::take(&mut entry.rerun) {
                        act.serve_key(&key, ctx);
                    }
                }),
        );
    }

    fn set_cooldown(&mut self, key_id: &str, until: DateTime<Utc>, ctx: &mut Context<Self>) {
        let entry = self.cooldowns.entry(key_id.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
        for shard in self.schedulers.all() {
            shard.tell(KeyCooling {
                key_id: key_id.to_owned(),
                until: Some(until),
            });
        }
        let state = self.state.clone();
        let key = key_id.to_owned();
        ctx.spawn(
            async move {
                if let Err(e) = state.set_cooldown(&key, until).await {
                    tracing::warn!(error = %e, "cannot share a cool-down");
                }
            }
            .into_actor(self),
        );
    }

    /// Writes learned limits changed since the last write.
    pub(super) fn persist(&mut self, ctx: &mut Context<Self>) {
        let Some(db) = self.db.clone() else {
            self.dirty.clear();
            return;
        };
        if self.dirty.is_empty() {
            return;
        }
        let rows: Vec<(String, serde_json::Value)> = self
            .dirty
            .drain()
            .filter_map(|id| {
                let entry = self.keys.get(&id)?;
                Some((id, serde_json::to_value(&entry.adaptive).ok()?))
            })
            .collect();
        ctx.spawn(
            async move {
                if let Err(e) = switchyard_store::key_state::save_limits(&db, &rows).await {
                    tracing::warn!(error = %e, "cannot persist learned limits; will retry");
                }
            }
            .into_actor(self),
        );
    }

    /// Wraps a grant in a lease that releases on drop.
    pub fn lease(slots: &Handle<KeySlots>, req: &AcquireSlot, granted: Granted) -> Lease {
        let slot = Slot::granted(slots, req, granted.in_flight, granted.handover);
        Lease::new(slot, false)
    }
}

/// Takes the lease, then the RPM slot (giving the lease back if the minute is spent).
async fn execute(state: Backends, plan: Plan) -> SlotResult {
    let lease = &plan.lease;
    // At most half full, the slot may stay with its worker for a moment when its request ends
    // (see `slots::handover`) without pushing anyone else over a limit.
    let spare = |in_flight: u32, limit: Option<u32>| {
        limit.is_none_or(|limit| in_flight.saturating_mul(2) <= limit)
    };
    let granted = match state.acquire(lease).await {
        Ok(LeaseOutcome::Granted {
            key_in_flight,
            endpoint_in_flight,
        }) => Granted {
            in_flight: key_in_flight,
            handover: plan.rpm_limit.is_none()
                && spare(key_in_flight, plan.key_limit)
                && spare(endpoint_in_flight, lease.endpoint_limit),
        },
        Ok(LeaseOutcome::KeyFull { in_flight }) => {
            return Err(Denied::KeyFull {
                in_flight,
                limit: plan.key_limit.unwrap_or(in_flight),
            });
        }
        Ok(LeaseOutcome::EndpointFull { in_flight }) => {
            return Err(Denied::EndpointFull { in_flight });
        }
        Err(e) => return Err(Denied::Unavailable(e.to_string())),
    };
    if let Some(limit) = plan.rpm_limit {
        match state
            .rpm_admit(&lease.key_id, limit, &lease.lease_id, Utc::now())
            .await
        {
            Ok(RpmOutcome::Admitted) => {}
            Ok(RpmOutcome::Full { retry_at }) => {
                let _ = state
                    .release(&lease.key_id, &lease.endpoint_id, &lease.lease_id)
                    .await;
                return Err(Denied::Rpm { retry_at });
            }
            Err(e) => {
                let _ = state
                    .release(&lease.key_id, &lease.endpoint_id, &lease.lease_id)
                    .await;
                return Err(Denied::Unavailable(e.to_string()));
            }
        }
    }
    Ok(granted)
}

impl Handler<AcquireSlot> for KeySlots {
    type Result = ResponseActFuture<Self, SlotResult>;

    fn handle(&mut self, msg: AcquireSlot, _ctx: &mut Self::Context) -> Self::Result {
        let plan = match self.plan(&msg, Utc::now()) {
            Ok(plan) => plan,
            Err(denied) => {
                self.counters.denied.fetch_add(1, Ordering::Relaxed);
                return Box::pin(fut::ready(Err(denied)));
            }
        };
        let state = self.backends.clone();
        Box::pin(execute(state, plan).into_actor(self).then(
            move |result, act, _ctx| -> ResponseActFuture<Self, SlotResult> {
                match result {
                    Ok(granted) => {
                        act.granted(&msg.key_id, granted);
                        Box::pin(fut::ready(Ok(granted)))
                    }
                    Err(denied @ (Denied::KeyFull { .. } | Denied::EndpointFull { .. }))
                        if msg.wait.is_some() =>
                    {
                        let max = act.config.queue_max_waiters;
                        let entry = act.keys.entry(msg.key_id.clone()).or_default();
                        if entry.waiters.len() >= max {
                            act.counters.denied.fetch_add(1, Ordering::Relaxed);
                            return Box::pin(fut::ready(Err(Denied::QueueFull)));
                        }
                        let (reply, wait) = oneshot::channel();
                        let deadline = Instant::now() + msg.wait.unwrap_or_default();
                        entry.waiters.push_back(Waiter {
                            request: msg,
                            reply,
                            deadline,
                            last_denial: denied.clone(),
                        });
                        Box::pin(async move { wait.await.unwrap_or(Err(denied)) }.into_actor(act))
                    }
                    Err(denied) => {
                        act.counters.denied.fetch_add(1, Ordering::Relaxed);
                        Box::pin(fut::ready(Err(denied)))
                    }
                }
            },
        ))
    }
}

impl Handler<AcquireSlots> for KeySlots {
    type Result = ResponseActFuture<Self, Vec<(AcquireSlot, SlotResult)>>;

    fn handle(&mut self, msg: AcquireSlots, _ctx: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        let plans: Vec<Result<Plan, Denied>> = msg
            .0
            .iter()
            .map(|request| self.plan(request, now))
            .collect();
        let state = self.backends.clone();
        // Concurrently, as separate messages would run: with Redis the round trips overlap.
        let executions = plans.into_iter().map(move |plan| {
            let state = state.clone();
            async move {
                match plan {
                    Ok(plan) => execute(state, plan).await,
                    Err(denied) => Err(denied),
                }
            }
        });
        Box::pin(
            futures_util::future::join_all(executions)
                .into_actor(self)
                .map(move |results, act, _ctx| {
                    for (request, result) in msg.0.iter().zip(&results) {
                        match result {
                            Ok(granted) => act.granted(&request.key_id, *granted),
                            Err(_) => {
                                act.counters.denied.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    msg.0.into_iter().zip(results).collect()
                }),
        )
    }
}

impl Handler<ReleaseSlot> for KeySlots {
    type Result = ();

    fn handle(&mut self, msg: ReleaseSlot, ctx: &mut Self::Context) {
        self.release(vec![msg], ctx);
    }
}

impl Handler<ReleaseSlots> for KeySlots {
    type Result = ();

    fn handle(&mut self, msg: ReleaseSlots, ctx: &mut Self::Context) {
        self.release(msg.0, ctx);
    }
}

impl KeySlots {
    /// Applies what the attempts taught, hands their health outcomes on, gives the leases
    /// back, then offers the freed slots to the keys' waiters.
    fn release(&mut self, mut releases: Vec<ReleaseSlot>, ctx: &mut Context<Self>) {
        // Per HealthMonitor shard, the outcomes to hand on: one message each.
        let mut outcomes: Vec<(Handle<HealthMonitor>, Vec<Outcome>)> = Vec::new();
        for release in &mut releases {
            if release.handed_over {
                // A request KeySlots did not see: count it like a grant.
                self.counters.handed_over.fetch_add(1, Ordering::Relaxed);
                key_entry(&mut self.keys, &release.key_id).requests += 1;
            }
            if let Some(observed) = release.observed.take() {
                self.observe(observed, ctx);
            }
            if let (Some(outcome), Some(health)) = (release.health.take(), &self.health) {
                let shard = health.pick(&outcome.key_id);
                match outcomes.iter_mut().find(|(h, _)| h.addr() == shard.addr()) {
                    Some((_, batch)) => batch.push(outcome),
                    None => outcomes.push((shard.clone(), vec![outcome])),
                }
            }
        }
        for (shard, batch) in outcomes {
            shard.tell(Outcomes(batch));
        }
        // A kept slot stays in flight: its worker hands it on or gives it back later.
        releases.retain(|release| !release.kept);
        if releases.is_empty() {
            return;
        }
        let state = self.backends.clone();
        ctx.spawn(
            async move {
                // Concurrently, as separate messages would run: with Redis the round trips overlap.
                let given_back = futures_util::future::join_all(
                    releases
                        .iter()
                        .map(|r| state.release(&r.key_id, &r.endpoint_id, &r.lease_id)),
                )
                .await;
                for result in given_back {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "cannot release a lease; it expires by itself");
                    }
                }
                releases
            }
            .into_actor(self)
            .map(|releases, act, ctx| {
                let mut served: Vec<&str> = Vec::with_capacity(releases.len());
                for release in &releases {
                    if !served.contains(&release.key_id.as_str()) {
                        served.push(&release.key_id);
                        act.serve_key(&release.key_id, ctx);
                    }
                }
            }),
        );
    }
}

impl Handler<CancelWait> for KeySlots {
    type Result = ();

    fn handle(&mut self, msg: CancelWait, ctx: &mut Self::Context) {
        // Still in line: leave it (dropping its reply ends the wait, answered to nobody).
        if let Some(entry) = self.keys.get_mut(&msg.key_id)
            && let Some(at) = entry
                .waiters
                .iter()
                .position(|w| w.request.lease_id == msg.lease_id)
        {
            entry.waiters.remove(at);
            return;
        }
        // Granted already, or being granted: give the slot back now and when the grant lands.
        self.cancelled
            .insert(msg.lease_id.clone(), std::time::Instant::now());
        let state = self.backends.clone();
        let key = msg.key_id.clone();
        ctx.spawn(
            async move {
                let _ = state
                    .release(&msg.key_id, &msg.endpoint_id, &msg.lease_id)
                    .await;
            }
            .into_actor(self)
            .map(move |(), act, ctx| act.serve_key(&key, ctx)),
        );
    }
}

impl Handler<ObserveOutcome> for KeySlots {
    type Result = ();

    fn handle(&mut self, msg: ObserveOutcome, ctx: &mut Self::Context) {
        self.observe(msg, ctx);
    }
}

impl KeySlots {
    /// Applies what an attempt taught: success samples, 429 counts, learned limits, cool-downs.
    fn observe(&mut self, msg: ObserveOutcome, ctx: &mut Context<Self>) {
        let adaptive = self.adaptive.clone();
        let entry = key_entry(&mut self.keys, &msg.key_id);
        match msg.observed {
            Observed::Success => {
                entry.successes += 1;
                if msg.adaptive
                    && let Some(adjustment) =
                        entry.adaptive.on_success(msg.in_flight, msg.now, &adaptive)
                {
                    tracing::info!(provider_key_id = %msg.key_id, new_limit = adjustment.new, "adaptive limit raised");
                    self.counters
                        .limit_increases
                        .fetch_add(1, Ordering::Relaxed);
                    self.dirty.insert(msg.key_id.clone());
                }
            }
            Observed::RateLimited {
                retry_after,
                headers,
            } => {
                self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                if msg.adaptive {
                    let kind = ratelimit::limit_kind(&headers, retry_after, msg.in_flight);
                    if let Some(adjustment) =
                        entry
                            .adaptive
                            .on_rate_limited(kind, msg.in_flight, msg.now, &adaptive)
                    {
                        tracing::info!(provider_key_id = %msg.key_id, new_limit = adjustment.new, "adaptive limit lowered after a 429");
                        self.counters
                            .limit_decreases
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    self.dirty.insert(msg.key_id.clone());
                }
                let rest = ratelimit::cooldown(
                    retry_after,
                    &headers,
                    self.config.default_cooldown,
                    self.config.max_cooldown,
                );
                let until = msg.now + chrono::Duration::from_std(rest).unwrap_or_default();
                self.set_cooldown(&msg.key_id, until, ctx);
            }
            Observed::Other => {}
        }
    }
}

impl Handler<LimitsOf> for KeySlots {
    type Result = Vec<KeyLimits>;

    fn handle(&mut self, msg: LimitsOf, _ctx: &mut Self::Context) -> Vec<KeyLimits> {
        let now = Utc::now();
        self.keys
            .iter()
            .filter(|(id, _)| msg.key_id.as_ref().is_none_or(|k| k == *id))
            .map(|(id, e)| KeyLimits {
                key_id: id.clone(),
                learned_limit: e.adaptive.limit(),
                last_in_flight: e.last_in_flight,
                requests: e.requests,
                successes: e.successes,
                cooling_until: self.cooldowns.get(id).copied().filter(|u| *u > now),
                waiting: e.waiters.len(),
                adaptive: serde_json::to_value(&e.adaptive).unwrap_or_default(),
            })
            .collect()
    }
}

impl Handler<ResetKey> for KeySlots {
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, msg: ResetKey, _ctx: &mut Self::Context) -> Self::Result {
        let ids: Vec<String> = match &msg.key_id {
            Some(id) => vec![id.clone()],
            None => self.keys.keys().cloned().collect(),
        };
        for id in &ids {
            if let Some(entry) = self.keys.get_mut(id) {
                entry.adaptive = AdaptiveState::default();
                entry.last_in_flight = 0;
            }
            self.cooldowns.remove(id);
            self.dirty.insert(id.clone());
            for shard in self.schedulers.all() {
                shard.tell(KeyCooling {
                    key_id: id.clone(),
                    until: None,
                });
            }
        }
        let state = self.state.clone();
        let count = ids.len();
        Box::pin(
            async move {
                let scope = msg.key_id.as_deref();
                let _ = state.reset_leases(scope).await;
                for id in &ids {
                    let _ = state.clear_cooldown(id).await;
                }
                count
            }
            .into_actor(self),
        )
    }
}

impl Handler<RestoreLimits> for KeySlots {
    type Result = ();

    fn handle(&mut self, msg: RestoreLimits, _ctx: &mut Self::Context) {
        for (id, adaptive) in msg.0 {
            self.keys.entry(id).or_default().adaptive = adaptive;
        }
    }
}

crate::metered!(KeySlots: AcquireSlot, AcquireSlots, ReleaseSlot, ReleaseSlots, CancelWait, ObserveOutcome, LimitsOf, ResetKey, RestoreLimits);
