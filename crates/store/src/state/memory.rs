//! The in-process backend: `DashMap`s owned by one gateway process.
//!
//! Rules that keep it deadlock-free and bounded:
//! - No lock is held across `.await` (nothing here is async).
//! - A `DashMap` guard is never held while the same map is touched again; guards are dropped
//!   before `remove_if` tidies an emptied entry.
//! - The only path that holds two guards at once ([`MemoryState::acquire`], and `renew`) takes
//!   the key map first, then the endpoint map; no path takes them in the other order, so two
//!   acquisitions cannot deadlock.
//! - Expired leases, RPM entries and cool-downs are purged whenever their entry is touched, and
//!   emptied entries are removed, so the maps hold only live state. The affinity map is bounded
//!   at [`AFFINITY_CAPACITY`] entries.

use super::{
    AffinityEntry, AffinityKey, AffinityTargetIds, LeaseOutcome, LeaseRequest, RPM_WINDOW,
    RpmOutcome, count_u32, from_millis, to_millis, ttl_millis,
};
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use foldhash::HashMap;
use foldhash::fast::RandomState as FastHash;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Most affinity entries kept in memory. Past it, expired entries are dropped and, if that is not
/// enough, the tenth that expires soonest (affinity is an optimisation: losing an entry costs a
/// cache miss, an unbounded map costs the process).
pub const AFFINITY_CAPACITY: usize = 100_000;

/// Shared hot state of one process. Clones share the same maps.
#[derive(Clone, Default)]
pub struct MemoryState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No map sizes: `len()` locks every shard, and Debug may run anywhere.
        f.debug_struct("MemoryState").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    /// key id → lease id → lease. The endpoint is kept so a key reset can free the endpoint too.
    key_leases: DashMap<String, HashMap<String, KeyLease>, FastHash>,
    /// endpoint id → (key id, lease id) → expiry.
    endpoint_leases: DashMap<String, HashMap<(String, String), Instant>, FastHash>,
    /// key id → its RPM window.
    rpm: DashMap<String, RpmWindow, FastHash>,
    /// key id → end of its cool-down, in epoch milliseconds.
    cooldowns: DashMap<String, i64, FastHash>,
    affinity: DashMap<AffinityKey, AffinityEntry, FastHash>,
}

struct KeyLease {
    endpoint_id: String,
    expires: Instant,
}

/// One key's sliding window: request ids ordered by admission time, plus an index by id so a
/// repeated admission is not counted twice (the same semantics as a Redis sorted set).
#[derive(Default)]
struct RpmWindow {
    by_time: BTreeSet<(i64, String)>,
    by_id: HashMap<String, i64>,
}

impl RpmWindow {
    fn admit(&mut self, limit: u32, request_id: &str, now_ms: i64) -> RpmOutcome {
        let window = ttl_millis(RPM_WINDOW);
        let cutoff = now_ms - window;
        while self.by_time.first().is_some_and(|(t, _)| *t <= cutoff) {
            if let Some((_, id)) = self.by_time.pop_first() {
                self.by_id.remove(&id);
            }
        }
        if self.by_id.contains_key(request_id) {
            return RpmOutcome::Admitted;
        }
        if self.by_id.len() >= limit as usize {
            let oldest = self.by_time.first().map_or(now_ms, |(t, _)| *t);
            return RpmOutcome::Full {
                retry_at: from_millis(oldest + window),
            };
        }
        self.by_time.insert((now_ms, request_id.to_owned()));
        self.by_id.insert(request_id.to_owned(), now_ms);
        RpmOutcome::Admitted
    }
}

/// Same floor as the Redis backend (1 ms), so a zero ttl behaves alike on both.
fn lease_ttl(ttl: Duration) -> Duration {
    ttl.max(Duration::from_millis(1))
}

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn acquire(&self, req: &LeaseRequest) -> LeaseOutcome {
        let now = Instant::now();
        let expires = now + lease_ttl(req.ttl);
        let outcome = {
            // Lock order: key map, then endpoint map (see the module docs).
            let mut key = self.inner.key_leases.entry(req.key_id.clone()).or_default();
            key.retain(|_, l| l.expires > now);
            let mut endpoint = self
                .inner
                .endpoint_leases
                .entry(req.endpoint_id.clone())
                .or_default();
            endpoint.retain(|_, e| *e > now);
            let (key_count, endpoint_count) = (key.len(), endpoint.len());
            if req
                .endpoint_limit
                .is_some_and(|l| endpoint_count >= l as usize)
            {
                LeaseOutcome::EndpointFull {
                    in_flight: count_u32(endpoint_count),
                }
            } else if req.key_limit.is_some_and(|l| key_count >= l as usize) {
                LeaseOutcome::KeyFull {
                    in_flight: count_u32(key_count),
                }
            } else {
                key.insert(
                    req.lease_id.clone(),
                    KeyLease {
                        endpoint_id: req.endpoint_id.clone(),
                        expires,
                    },
                );
                endpoint.insert((req.key_id.clone(), req.lease_id.clone()), expires);
                LeaseOutcome::Granted {
                    key_in_flight: count_u32(key.len()),
                    endpoint_in_flight: count_u32(endpoint.len()),
                }
            }
        };
        // Guards are gone; a refusal may have left an entry that `or_default` created empty.
        if !matches!(outcome, LeaseOutcome::Granted { .. }) {
            self.drop_empty(&req.key_id, &req.endpoint_id);
        }
        outcome
    }

    pub(super) fn release(&self, key_id: &str, endpoint_id: &str, lease_id: &str) {
        if let Some(mut key) = self.inner.key_leases.get_mut(key_id) {
            key.remove(lease_id);
        }
        if let Some(mut endpoint) = self.inner.endpoint_leases.get_mut(endpoint_id) {
            endpoint.remove(&(key_id.to_owned(), lease_id.to_owned()));
        }
        self.drop_empty(key_id, endpoint_id);
    }

    pub(super) fn renew(
        &self,
        key_id: &str,
        endpoint_id: &str,
        lease_id: &str,
        ttl: Duration,
    ) -> bool {
        let now = Instant::now();
        let expires = now + lease_ttl(ttl);
        let Some(mut key) = self.inner.key_leases.get_mut(key_id) else {
            return false;
        };
        match key.get_mut(lease_id) {
            Some(lease) if lease.expires > now => lease.expires = expires,
            _ => return false,
        }
        // Still holding the key guard: the endpoint map comes second, as in `acquire`.
        self.inner
            .endpoint_leases
            .entry(endpoint_id.to_owned())
            .or_default()
            .insert((key_id.to_owned(), lease_id.to_owned()), expires);
        true
    }

    pub(super) fn in_flight(&self, key_id: &str) -> u32 {
        let now = Instant::now();
        self.inner.key_leases.get(key_id).map_or(0, |leases| {
            count_u32(leases.values().filter(|l| l.expires > now).count())
        })
    }

    pub(super) fn endpoint_in_flight(&self, endpoint_id: &str) -> u32 {
        let now = Instant::now();
        self.inner
            .endpoint_leases
            .get(endpoint_id)
            .map_or(0, |leases| {
                count_u32(leases.values().filter(|e| **e > now).count())
            })
    }

    pub(super) fn reset_leases(&self, key_id: Option<&str>) {
        let Some(key_id) = key_id else {
            self.inner.key_leases.clear();
            self.inner.endpoint_leases.clear();
            return;
        };
        let Some((_, leases)) = self.inner.key_leases.remove(key_id) else {
            return;
        };
        for (lease_id, lease) in leases {
            if let Some(mut endpoint) = self.inner.endpoint_leases.get_mut(&lease.endpoint_id) {
                endpoint.remove(&(key_id.to_owned(), lease_id));
            }
            self.inner
                .endpoint_leases
                .remove_if(&lease.endpoint_id, |_, l| l.is_empty());
        }
    }

    /// Removes emptied lease entries. Called with no guard held; `remove_if` re-checks under the
    /// shard lock, so a lease added in between is never lost.
    fn drop_empty(&self, key_id: &str, endpoint_id: &str) {
        self.inner.key_leases.remove_if(key_id, |_, l| l.is_empty());
        self.inner
            .endpoint_leases
            .remove_if(endpoint_id, |_, l| l.is_empty());
    }

    pub(super) fn rpm_admit(
        &self,
        key_id: &str,
        limit: u32,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> RpmOutcome {
        self.inner.rpm.entry(key_id.to_owned()).or_default().admit(
            limit,
            request_id,
            to_millis(now),
        )
    }

    pub(super) fn set_cooldown(&self, key_id: &str, until: DateTime<Utc>) {
        let until = to_millis(until);
        self.inner
            .cooldowns
            .entry(key_id.to_owned())
            .and_modify(|u| *u = (*u).max(until))
            .or_insert(until);
    }

    pub(super) fn cooldowns(&self, now: DateTime<Utc>) -> Vec<(String, DateTime<Utc>)> {
        let now = to_millis(now);
        self.inner.cooldowns.retain(|_, until| *until > now);
        self.inner
            .cooldowns
            .iter()
            .filter(|e| *e.value() > now)
            .map(|e| (e.key().clone(), from_millis(*e.value())))
            .collect()
    }

    pub(super) fn clear_cooldown(&self, key_id: &str) {
        self.inner.cooldowns.remove(key_id);
    }

    pub(super) fn affinity_get(
        &self,
        k: &AffinityKey,
        now: DateTime<Utc>,
    ) -> Option<AffinityEntry> {
        // Copy out first: the guard must be gone before `remove_if` touches the map again.
        let found = self.inner.affinity.get(k).map(|e| e.value().clone());
        match found {
            Some(entry) if entry.expires_at > now => Some(entry),
            Some(_) => {
                self.inner.affinity.remove_if(k, |_, e| e.expires_at <= now);
                None
            }
            None => None,
        }
    }

    pub(super) fn affinity_set(
        &self,
        k: &AffinityKey,
        target: &AffinityTargetIds,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> AffinityEntry {
        if !self.inner.affinity.contains_key(k) && self.inner.affinity.len() >= AFFINITY_CAPACITY {
            self.evict_affinity(now);
        }
        match self.inner.affinity.entry(k.clone()) {
            Entry::Occupied(mut slot) => {
                let next = AffinityEntry::next(Some(slot.get()), target, ttl, now);
                slot.insert(next.clone());
                next
            }
            Entry::Vacant(slot) => {
                let next = AffinityEntry::next(None, target, ttl, now);
                slot.insert(next.clone());
                next
            }
        }
    }

    /// Makes room: drops expired entries, then, if the map is still full, the tenth that expires
    /// soonest (one sort per tenth of the capacity keeps inserts cheap on average).
    fn evict_affinity(&self, now: DateTime<Utc>) {
        self.inner.affinity.retain(|_, e| e.expires_at > now);
        if self.inner.affinity.len() < AFFINITY_CAPACITY {
            return;
        }
        let mut by_expiry: Vec<(DateTime<Utc>, AffinityKey)> = self
            .inner
            .affinity
            .iter()
            .map(|e| (e.value().expires_at, e.key().clone()))
            .collect();
        by_expiry.sort();
        for (_, k) in by_expiry.into_iter().take(AFFINITY_CAPACITY / 10) {
            self.inner.affinity.remove(&k);
        }
    }

    pub(super) fn affinity_invalidate(
        &self,
        k: &AffinityKey,
        provider_key_id: &str,
        endpoint_id: &str,
    ) -> bool {
        let now = Utc::now();
        self.inner
            .affinity
            .remove_if(k, |_, e| {
                e.provider_key_id == provider_key_id && e.endpoint_id == endpoint_id
            })
            // An entry past its expiry counted for nothing already, as in Redis where it is gone.
            .is_some_and(|(_, e)| e.expires_at > now)
    }

    pub(super) fn affinity_list(&self, limit: usize) -> Vec<(AffinityKey, AffinityEntry)> {
        let now = Utc::now();
        self.inner
            .affinity
            .iter()
            .filter(|e| e.value().expires_at > now)
            .take(limit)
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    pub(super) fn affinity_clear(&self, affinity_key: Option<&str>) -> u64 {
        let now = Utc::now();
        let mut removed = 0u64;
        self.inner.affinity.retain(|k, e| {
            let hit = affinity_key.is_none_or(|a| k.affinity_key == a);
            if hit && e.expires_at > now {
                removed += 1;
            }
            !hit
        });
        removed
    }

    pub(super) fn clear_all(&self) -> u64 {
        let i = &self.inner;
        let n = i.key_leases.len()
            + i.endpoint_leases.len()
            + i.rpm.len()
            + i.cooldowns.len()
            + i.affinity.len();
        i.key_leases.clear();
        i.endpoint_leases.clear();
        i.rpm.clear();
        i.cooldowns.clear();
        i.affinity.clear();
        n as u64
    }
}
