//! Scheduler handlers: each short, delegating to the pure resolver.

use super::messages::*;
use super::{Scheduler, View};
use actix::prelude::*;
use std::sync::atomic::Ordering;
use switchyard_core::routing::{self, AffinityTarget, AffinityUse, RouteRequest};
use switchyard_core::settings::SchedulingMode;
use switchyard_store::state::{AffinityKey, AffinityTargetIds};

fn affinity_key(client: &str, format: switchyard_core::ApiFormat, model: &str) -> AffinityKey {
    AffinityKey {
        affinity_key: client.to_owned(),
        api_format: format.as_str().to_owned(),
        global_model_id: model.to_owned(),
    }
}

fn target_ids(target: &AffinityTarget) -> AffinityTargetIds {
    AffinityTargetIds {
        provider_id: target.provider_id.clone(),
        endpoint_id: target.endpoint_id.clone(),
        provider_key_id: target.provider_key_id.clone(),
    }
}

impl Handler<Resolve> for Scheduler {
    type Result = ResponseActFuture<Self, <Resolve as Message>::Result>;

    fn handle(&mut self, msg: Resolve, _ctx: &mut Self::Context) -> Self::Result {
        // The affinity dimension is the global model: look it up first (cheap, in memory).
        let lookup = match (
            self.catalog.settings.scheduling_mode,
            self.catalog.resolve_model(&msg.model),
        ) {
            (SchedulingMode::CacheAffinity, Some((model, _))) => {
                Some(affinity_key(&msg.affinity_key, msg.format, &model.id))
            }
            _ => None,
        };
        let state = self.state.clone();
        let fetch = async move {
            match &lookup {
                Some(key) => {
                    let entry = state.affinity_get(key, chrono::Utc::now()).await;
                    (lookup.clone(), entry.ok().flatten())
                }
                None => (None, None),
            }
        };
        Box::pin(fetch.into_actor(self).map(move |(key, entry), act, ctx| {
            let target = entry.map(|e| AffinityTarget {
                provider_id: e.provider_id,
                endpoint_id: e.endpoint_id,
                provider_key_id: e.provider_key_id,
            });
            let view = View {
                circuits: &act.circuits,
                cooldowns: &act.cooldowns,
            };
            let request = RouteRequest {
                model: &msg.model,
                format: msg.format,
                stream: msg.stream,
                gateway_key: &msg.gateway_key,
                user: &msg.user,
                capabilities: &msg.capabilities,
                affinity_key: &msg.affinity_key,
                now: msg.now,
            };
            let resolution = routing::resolve(&act.catalog, &request, &view, target.as_ref()).map(
                |resolution| {
                    let probing = resolution
                        .candidates
                        .iter()
                        .filter(|c| c.skip.is_none())
                        .map(|c| c.key().id.clone())
                        .filter(|id| act.circuits.contains_key(id))
                        .collect();
                    Resolved {
                        resolution,
                        probing,
                    }
                },
            );
            if let (Ok(resolved), Some(key), Some(target)) = (&resolution, key, target) {
                match resolved.resolution.affinity {
                    AffinityUse::Hit => {
                        act.stats.hits.fetch_add(1, Ordering::Relaxed);
                    }
                    AffinityUse::Miss => {
                        act.stats.misses.fetch_add(1, Ordering::Relaxed);
                    }
                    AffinityUse::Dropped | AffinityUse::Unusable => {
                        act.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        let state = act.state.clone();
                        ctx.spawn(
                            async move {
                                let _ = state
                                    .affinity_invalidate(
                                        &key,
                                        &target.provider_key_id,
                                        &target.endpoint_id,
                                    )
                                    .await;
                            }
                            .into_actor(act),
                        );
                    }
                }
            } else if resolution.is_ok() {
                act.stats.misses.fetch_add(1, Ordering::Relaxed);
            }
            resolution
        }))
    }
}

impl Handler<CatalogChanged> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: CatalogChanged, _ctx: &mut Self::Context) {
        // Pushes from different threads may arrive out of order: never go back.
        let catalog = msg.0;
        if catalog.version < self.catalog.version {
            return;
        }
        // Keys that left the catalog take their live state with them.
        let live: std::collections::HashSet<&str> = catalog
            .providers
            .iter()
            .flat_map(|p| &p.endpoints)
            .flat_map(|e| &e.keys)
            .map(|k| k.id.as_str())
            .collect();
        self.circuits.retain(|k, _| live.contains(k.as_str()));
        self.cooldowns.retain(|k, _| live.contains(k.as_str()));
        self.catalog = catalog;
    }
}

impl Handler<CircuitChanged> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: CircuitChanged, _ctx: &mut Self::Context) {
        match msg.circuit {
            routing::KeyCircuit::Closed => {
                self.circuits.remove(&msg.key_id);
            }
            circuit => {
                self.circuits.insert(msg.key_id, circuit);
            }
        }
    }
}

impl Handler<KeyCooling> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: KeyCooling, _ctx: &mut Self::Context) {
        match msg.until {
            Some(until) => {
                let entry = self.cooldowns.entry(msg.key_id).or_insert(until);
                *entry = (*entry).max(until);
            }
            None => {
                self.cooldowns.remove(&msg.key_id);
            }
        }
        let now = chrono::Utc::now();
        self.cooldowns.retain(|_, until| *until > now);
    }
}

impl Handler<SetAffinity> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: SetAffinity, ctx: &mut Self::Context) {
        let state = self.state.clone();
        let key = affinity_key(&msg.affinity_key, msg.format, &msg.global_model_id);
        let target = target_ids(&msg.target);
        ctx.spawn(
            async move {
                if let Err(e) = state
                    .affinity_set(&key, &target, msg.ttl, chrono::Utc::now())
                    .await
                {
                    // Best effort: a shared-state outage is reported by KeySlots, once per burst.
                    tracing::debug!(error = %e, "cannot record cache affinity");
                }
            }
            .into_actor(self),
        );
    }
}

impl Handler<InvalidateAffinity> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: InvalidateAffinity, ctx: &mut Self::Context) {
        let state = self.state.clone();
        let key = affinity_key(&msg.affinity_key, msg.format, &msg.global_model_id);
        ctx.spawn(
            async move {
                let _ = state
                    .affinity_invalidate(&key, &msg.target.provider_key_id, &msg.target.endpoint_id)
                    .await;
            }
            .into_actor(self),
        );
    }
}

impl Handler<KeyStates> for Scheduler {
    type Result = KeyStateSnapshot;

    fn handle(&mut self, _msg: KeyStates, _ctx: &mut Self::Context) -> KeyStateSnapshot {
        KeyStateSnapshot {
            circuits: self.circuits.clone(),
            cooldowns: self.cooldowns.clone(),
        }
    }
}

crate::metered!(Scheduler: Resolve, CatalogChanged, CircuitChanged, KeyCooling, SetAffinity, InvalidateAffinity, KeyStates);
