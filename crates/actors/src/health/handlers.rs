//! HealthMonitor handlers.

use super::messages::*;
use super::{CircuitEvent, EVENT_HISTORY, HealthMonitor};
use crate::scheduler::messages::CircuitChanged;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::sync::atomic::Ordering;
use switchyard_core::breaker::{Admission, Breaker, CircuitState, Transition};
use switchyard_core::classify::HealthEffect;
use switchyard_core::routing::KeyCircuit;

impl HealthMonitor {
    fn breaker(&mut self, key_id: &str) -> &mut Breaker {
        self.breakers.entry(key_id.to_owned()).or_default()
    }

    /// Tells every Scheduler shard about a transition and keeps the event.
    fn announce(&mut self, key_id: &str, transition: Transition, now: DateTime<Utc>) {
        let (circuit, event) = match transition {
            Transition::Opened { until } => {
                self.counters.opened.fetch_add(1, Ordering::Relaxed);
                (KeyCircuit::Open { until }, "opened")
            }
            Transition::HalfOpened => {
                self.counters.half_opened.fetch_add(1, Ordering::Relaxed);
                (KeyCircuit::HalfOpen, "half_opened")
            }
            Transition::Closed => {
                self.counters.closed.fetch_add(1, Ordering::Relaxed);
                (KeyCircuit::Closed, "closed")
            }
        };
        tracing::info!(provider_key_id = %key_id, event, "circuit changed");
        self.push(key_id, circuit);
        self.events.push_back(CircuitEvent {
            at: now,
            key_id: key_id.to_owned(),
            event,
        });
        while self.events.len() > EVENT_HISTORY {
            self.events.pop_front();
        }
    }

    fn push(&self, key_id: &str, circuit: KeyCircuit) {
        for shard in self.schedulers.all() {
            shard.tell(CircuitChanged {
                key_id: key_id.to_owned(),
                circuit,
            });
        }
    }

    /// Writes the breakers changed since the last write, off the request path; `None` when
    /// nothing changed. Keys whose write failed are marked dirty again, so the next round
    /// retries them.
    pub(super) fn persist(&mut self) -> Option<ResponseActFuture<Self, bool>> {
        if self.dirty.is_empty() {
            return None;
        }
        Some(self.write_dirty())
    }

    /// Writes the changed breakers and resolves once every write begun before it has ended as
    /// well, with whether this write stored its rows. Writes take their turn (first begun,
    /// first written), so an older state never lands after a newer one, and a caller that must
    /// see everything stored (the graceful shutdown) cannot return while a periodic write that
    /// already took the changes is still on its way.
    pub(super) fn write_dirty(&mut self) -> ResponseActFuture<Self, bool> {
        let Some(db) = self.db.clone() else {
            self.dirty.clear();
            return Box::pin(actix::fut::ready(true));
        };
        let rows: Vec<(String, serde_json::Value)> = self
            .dirty
            .drain()
            .filter_map(|id| {
                let breaker = self.breakers.get(&id)?;
                Some((id, serde_json::to_value(breaker).ok()?))
            })
            .collect();
        let ids: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
        let turn = self.writes.clone();
        self.writing += 1;
        Box::pin(
            async move {
                let _turn = turn.lock().await;
                if rows.is_empty() {
                    return true;
                }
                match switchyard_store::key_state::save_health(&db, &rows).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, keys = rows.len(), "cannot persist circuit state; will retry");
                        false
                    }
                }
            }
            .into_actor(self)
            .map(move |saved, act, _ctx| {
                act.writing -= 1;
                if !saved {
                    act.dirty.extend(ids);
                }
                saved
            }),
        )
    }

    /// Whether every breaker change this shard knows of is stored: nothing changed since the
    /// last write began, and no write is still on its way.
    fn all_stored(&self) -> bool {
        self.dirty.is_empty() && self.writing == 0
    }
}

impl Handler<AcquireProbe> for HealthMonitor {
    type Result = Result<Admission, std::convert::Infallible>;

    fn handle(&mut self, msg: AcquireProbe, _ctx: &mut Self::Context) -> Self::Result {
        let config = self.config.clone();
        // The open → half-open change is driven by the clock; the first probe request reports it.
        if let Some(transition) = self.breaker(&msg.key_id).tick(msg.now) {
            self.dirty.insert(msg.key_id.clone());
            self.announce(&msg.key_id, transition, msg.now);
        }
        let before = self.breaker(&msg.key_id).state(msg.now);
        let admission = self.breaker(&msg.key_id).admit(msg.now, &config);
        if matches!(before, CircuitState::HalfOpen) && matches!(admission, Admission::Probe) {
            self.dirty.insert(msg.key_id);
        }
        Ok(admission)
    }
}

impl Handler<Outcome> for HealthMonitor {
    type Result = ();

    fn handle(&mut self, msg: Outcome, _ctx: &mut Self::Context) {
        self.apply(msg);
    }
}

impl Handler<Outcomes> for HealthMonitor {
    type Result = ();

    fn handle(&mut self, msg: Outcomes, _ctx: &mut Self::Context) {
        for outcome in msg.0 {
            self.apply(outcome);
        }
    }
}

impl HealthMonitor {
    /// Counts one attempt's outcome in its key's breaker; announces a transition.
    fn apply(&mut self, msg: Outcome) {
        let config = self.config.clone();
        let transition = match msg.effect {
            HealthEffect::Neutral => {
                if msg.probe {
                    self.breaker(&msg.key_id).release_probe();
                }
                None
            }
            HealthEffect::Success | HealthEffect::Failure => {
                let success = matches!(msg.effect, HealthEffect::Success);
                self.breaker(&msg.key_id)
                    .record(success, msg.probe, msg.now, &config)
            }
        };
        self.dirty.insert(msg.key_id.clone());
        if let Some(transition) = transition {
            self.announce(&msg.key_id, transition, msg.now);
        }
    }
}

impl Handler<HealthOf> for HealthMonitor {
    type Result = Vec<KeyHealth>;

    fn handle(&mut self, msg: HealthOf, _ctx: &mut Self::Context) -> Vec<KeyHealth> {
        self.breakers
            .iter()
            .filter(|(id, _)| msg.key_id.as_ref().is_none_or(|k| k == *id))
            .map(|(id, b)| {
                let (circuit, open_until) = match b.state(msg.now) {
                    CircuitState::Closed => ("closed", None),
                    CircuitState::HalfOpen => ("half_open", None),
                    CircuitState::Open { until } => ("open", Some(until)),
                };
                KeyHealth {
                    key_id: id.clone(),
                    circuit,
                    open_until,
                    window: b.window_len(),
                    error_rate: b.error_rate(msg.now, &self.config),
                    consecutive_failures: b.consecutive_failures(),
                }
            })
            .collect()
    }
}

impl Handler<RecoverKey> for HealthMonitor {
    type Result = usize;

    fn handle(&mut self, msg: RecoverKey, _ctx: &mut Self::Context) -> usize {
        let ids: Vec<String> = match msg.key_id {
            Some(id) => vec![id],
            None => self.breakers.keys().cloned().collect(),
        };
        let now = Utc::now();
        for id in &ids {
            self.breaker(id).reset();
            self.dirty.insert(id.clone());
            self.push(id, KeyCircuit::Closed);
            self.events.push_back(CircuitEvent {
                at: now,
                key_id: id.clone(),
                event: "recovered",
            });
        }
        while self.events.len() > EVENT_HISTORY {
            self.events.pop_front();
        }
        ids.len()
    }
}

impl Handler<Restore> for HealthMonitor {
    type Result = ();

    fn handle(&mut self, msg: Restore, _ctx: &mut Self::Context) {
        let now = Utc::now();
        for (id, breaker) in msg.0 {
            match breaker.state(now) {
                CircuitState::Closed => {}
                CircuitState::HalfOpen => self.push(&id, KeyCircuit::HalfOpen),
                CircuitState::Open { until } => self.push(&id, KeyCircuit::Open { until }),
            }
            self.breakers.insert(id, breaker);
        }
    }
}

impl Handler<RecentEvents> for HealthMonitor {
    type Result = Vec<CircuitEvent>;

    fn handle(&mut self, _msg: RecentEvents, _ctx: &mut Self::Context) -> Vec<CircuitEvent> {
        self.events.iter().cloned().collect()
    }
}

impl Handler<PersistNow> for HealthMonitor {
    type Result = ResponseActFuture<Self, bool>;

    fn handle(&mut self, _msg: PersistNow, _ctx: &mut Self::Context) -> Self::Result {
        Box::pin(
            self.write_dirty()
                .map(|saved, act, _ctx| saved && act.all_stored()),
        )
    }
}

crate::metered!(HealthMonitor: AcquireProbe, Outcome, Outcomes, HealthOf, RecoverKey, Restore, RecentEvents, PersistNow);
