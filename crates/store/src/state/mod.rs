//! Shared hot state: concurrency leases, requests-per-minute windows, 429 cool-downs and cache
//! affinity, in process memory (one gateway) or in Redis (several gateways share it).
//!
//! [`SharedState`] is one type with two backends that pass the same tests (`tests/state.rs`).
//! The actors that own routing state (`KeySlots`, `Scheduler`) call it; nothing else should.
//!
//! Invariants, on both backends:
//! - A concurrency slot is a *lease* with its own expiry, never a bare counter: a lease that is
//!   never released stops counting after its ttl, so no crash, lost release or Redis hiccup can
//!   leak capacity for longer than that (fixes reference §11.1 #16). Long streams [`renew`].
//! - [`acquire`] is atomic and all-or-nothing across the key and the endpoint: either both get
//!   the lease or neither does. The endpoint limit is checked before the key limit.
//! - An RPM admission is check-and-add in one step, so racing gateways never admit more than the
//!   limit in any 60 s window.
//! - A cool-down only ever moves later ([`set_cooldown`] keeps the later of old and new).
//! - An affinity entry slides while it keeps pointing at the same target, and is only
//!   invalidated by a failure of the target it still points at.
//!
//! What it must not do: hold a lock across `.await`, scan the whole keyspace with `KEYS`, or put
//! a Redis password in an error or a `Debug` string.
//!
//! Time: lease expiry uses the backend's clock (the process monotonic clock in memory, the Redis
//! server's `TIME` in Redis), so gateways with skewed wall clocks agree on which leases are live.
//! RPM windows, cool-downs and affinity use the caller's `now`, which keeps those rules
//! deterministic in tests. RPM and cool-down instants are kept to millisecond precision on both
//! backends (Redis stores them as integer milliseconds), so both answer the same.
//!
//! [`renew`]: SharedState::renew
//! [`acquire`]: SharedState::acquire
//! [`set_cooldown`]: SharedState::set_cooldown

mod memory;
mod redis;

pub use self::memory::MemoryState;
pub use self::redis::RedisState;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Length of the sliding requests-per-minute window.
pub const RPM_WINDOW: Duration = Duration::from_secs(60);

/// The byte that separates ids inside a lease member (see the Redis backend); key and endpoint
/// ids must not contain it.
pub(crate) const MEMBER_SEPARATOR: char = '\u{1f}';

/// Shared hot state, in memory or in Redis. Cheap to clone: clones share the same state.
///
/// Every method awaits its Redis arm boxed: a Redis call's future is kilobytes, and unboxed it
/// would make every call's future that large — memory calls included, which the actors move
/// into a spawned task on the request path.
#[derive(Clone, Debug)]
pub enum SharedState {
    /// One process: maps in memory.
    Memory(MemoryState),
    /// Several processes: one Redis, under a key prefix.
    Redis(RedisState),
}

/// One concurrency lease to take for a provider key on one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// Provider key id.
    pub key_id: String,
    /// Endpoint id (the key's endpoint).
    pub endpoint_id: String,
    /// Unique per acquisition (e.g. request id + attempt); what `release` and `renew` name.
    pub lease_id: String,
    /// At most this many live leases on the key; `None` = unlimited. The caller has already
    /// applied the cache-warm reservation to it.
    pub key_limit: Option<u32>,
    /// At most this many live leases on the endpoint; `None` = unlimited.
    pub endpoint_limit: Option<u32>,
    /// How long the lease counts without a renew.
    pub ttl: Duration,
}

/// What [`SharedState::acquire`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The lease is held on both the key and the endpoint.
    Granted {
        /// Live leases of the key, this one included.
        key_in_flight: u32,
        /// Live leases of the endpoint, this one included.
        endpoint_in_flight: u32,
    },
    /// The key is at its limit; nothing was taken.
    KeyFull {
        /// Live leases of the key.
        in_flight: u32,
    },
    /// The endpoint is at its limit; nothing was taken.
    EndpointFull {
        /// Live leases of the endpoint.
        in_flight: u32,
    },
}

/// What [`SharedState::rpm_admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpmOutcome {
    /// Counted in the window.
    Admitted,
    /// The window is full; not counted.
    Full {
        /// When the oldest request in the window leaves it (a slot frees then).
        retry_at: DateTime<Utc>,
    },
}

/// What an affinity entry is keyed by: one client, one API format, one canonical model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AffinityKey {
    /// Stable per client (the gateway key id).
    pub affinity_key: String,
    /// The client's API format (e.g. `CLAUDE`).
    pub api_format: String,
    /// The resolved global model id.
    pub global_model_id: String,
}

/// The (provider, endpoint, provider key) triple that served a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AffinityTargetIds {
    /// Provider id.
    pub provider_id: String,
    /// Endpoint id.
    pub endpoint_id: String,
    /// Provider key id.
    pub provider_key_id: String,
}

/// Where a client was served last, and since when (spec §3.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffinityEntry {
    /// Provider id.
    pub provider_id: String,
    /// Endpoint id.
    pub endpoint_id: String,
    /// Provider key id.
    pub provider_key_id: String,
    /// When the entry started pointing at this target.
    pub created_at: DateTime<Utc>,
    /// When it lapses unless refreshed.
    pub expires_at: DateTime<Utc>,
    /// Successful requests served by this target since `created_at`.
    pub request_count: u64,
}

impl AffinityEntry {
    /// The target this entry points at.
    pub fn target(&self) -> AffinityTargetIds {
        AffinityTargetIds {
            provider_id: self.provider_id.clone(),
            endpoint_id: self.endpoint_id.clone(),
            provider_key_id: self.provider_key_id.clone(),
        }
    }

    fn points_to(&self, target: &AffinityTargetIds) -> bool {
        self.provider_id == target.provider_id
            && self.endpoint_id == target.endpoint_id
            && self.provider_key_id == target.provider_key_id
    }

    /// The sliding rule, shared by both backends so they cannot drift: the same target still
    /// live keeps `created_at` and counts one more request; anything else starts afresh.
    pub(crate) fn next(
        existing: Option<&AffinityEntry>,
        target: &AffinityTargetIds,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> AffinityEntry {
        let expires_at = chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|ttl| now.checked_add_signed(ttl))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        match existing {
            Some(e) if e.expires_at > now && e.points_to(target) => AffinityEntry {
                expires_at,
                request_count: e.request_count.saturating_add(1),
                ..e.clone()
            },
            _ => AffinityEntry {
                provider_id: target.provider_id.clone(),
                endpoint_id: target.endpoint_id.clone(),
                provider_key_id: target.provider_key_id.clone(),
                created_at: now,
                expires_at,
                request_count: 1,
            },
        }
    }
}

/// A shared-state operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The backend failed or could not be reached. `reason` never contains a password.
    #[error("{backend} shared state: {operation} failed: {reason}")]
    Backend {
        /// `memory` or `redis`.
        backend: &'static str,
        /// The operation, e.g. `acquire`.
        operation: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The caller passed a value the state cannot represent.
    #[error("shared state: {operation}: invalid {field}: {reason}")]
    Invalid {
        /// The operation.
        operation: &'static str,
        /// Which argument.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl SharedState {
    /// A fresh in-memory state (one process).
    pub fn memory() -> Self {
        Self::Memory(MemoryState::new())
    }

    /// Connects to Redis at `url` (pooled through deadpool-redis) and checks it with a `PING`.
    /// Every key this state writes starts with `key_prefix`, so several deployments (or tests)
    /// can share one Redis.
    pub async fn redis(url: &str, key_prefix: &str) -> Result<Self, StateError> {
        Ok(Self::Redis(RedisState::connect(url, key_prefix).await?))
    }

    /// `memory` or `redis`, for status pages and logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
        }
    }

    /// Takes a lease on the key and the endpoint, atomically and all-or-nothing: expired leases
    /// of both are dropped, then the endpoint limit and the key limit are checked, then the lease
    /// is added to both with expiry now + ttl.
    pub async fn acquire(&self, req: &LeaseRequest) -> Result<LeaseOutcome, StateError> {
        check_id("acquire", "key_id", &req.key_id)?;
        check_id("acquire", "endpoint_id", &req.endpoint_id)?;
        match self {
            Self::Memory(m) => Ok(m.acquire(req)),
            Self::Redis(r) => Box::pin(r.acquire(req)).await,
        }
    }

    /// Gives a lease back. Releasing a lease that expired or was never taken is not an error
    /// (release runs from drop paths that cannot know).
    pub async fn release(
        &self,
        key_id: &str,
        endpoint_id: &str,
        lease_id: &str,
    ) -> Result<(), StateError> {
        check_id("release", "key_id", key_id)?;
        check_id("release", "endpoint_id", endpoint_id)?;
        match self {
            Self::Memory(m) => {
                m.release(key_id, endpoint_id, lease_id);
                Ok(())
            }
            Self::Redis(r) => Box::pin(r.release(key_id, endpoint_id, lease_id)).await,
        }
    }

    /// Pushes a live lease's expiry to now + ttl (long streams). Returns `false` when the lease
    /// had already expired or been released: it is not resurrected, since its slot may have been
    /// given to someone else in the meantime.
    pub async fn renew(
        &self,
        key_id: &str,
        endpoint_id: &str,
        lease_id: &str,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        check_id("renew", "key_id", key_id)?;
        check_id("renew", "endpoint_id", endpoint_id)?;
        match self {
            Self::Memory(m) => Ok(m.renew(key_id, endpoint_id, lease_id, ttl)),
            Self::Redis(r) => Box::pin(r.renew(key_id, endpoint_id, lease_id, ttl)).await,
        }
    }

    /// Live (unexpired) leases of a provider key.
    pub async fn in_flight(&self, key_id: &str) -> Result<u32, StateError> {
        match self {
            Self::Memory(m) => Ok(m.in_flight(key_id)),
            Self::Redis(r) => Box::pin(r.in_flight(key_id)).await,
        }
    }

    /// Live (unexpired) leases of an endpoint.
    pub async fn endpoint_in_flight(&self, endpoint_id: &str) -> Result<u32, StateError> {
        match self {
            Self::Memory(m) => Ok(m.endpoint_in_flight(endpoint_id)),
            Self::Redis(r) => Box::pin(r.endpoint_in_flight(endpoint_id)).await,
        }
    }

    /// Admin: drops every lease of one key (from its endpoints too), or every lease.
    pub async fn reset_leases(&self, key_id: Option<&str>) -> Result<(), StateError> {
        match self {
            Self::Memory(m) => {
                m.reset_leases(key_id);
                Ok(())
            }
            Self::Redis(r) => Box::pin(r.reset_leases(key_id)).await,
        }
    }

    /// Counts `request_id` in the key's sliding 60 s window if fewer than `limit` requests are
    /// in it (check and add in one atomic step). A request id already in the window is admitted
    /// again without being counted twice, so a retried admission is harmless.
    pub async fn rpm_admit(
        &self,
        key_id: &str,
        limit: u32,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Result<RpmOutcome, StateError> {
        match self {
            Self::Memory(m) => Ok(m.rpm_admit(key_id, limit, request_id, now)),
            Self::Redis(r) => Box::pin(r.rpm_admit(key_id, limit, request_id, now)).await,
        }
    }

    /// Puts a key in cool-down until `until`, or keeps the existing cool-down if it ends later.
    pub async fn set_cooldown(&self, key_id: &str, until: DateTime<Utc>) -> Result<(), StateError> {
        match self {
            Self::Memory(m) => {
                m.set_cooldown(key_id, until);
                Ok(())
            }
            Self::Redis(r) => Box::pin(r.set_cooldown(key_id, until)).await,
        }
    }

    /// Every key still cooling down at `now`, with its end, sorted by key id. Ended cool-downs
    /// are dropped on the way.
    pub async fn cooldowns(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StateError> {
        let mut all = match self {
            Self::Memory(m) => m.cooldowns(now),
            Self::Redis(r) => Box::pin(r.cooldowns(now)).await?,
        };
        all.sort();
        Ok(all)
    }

    /// Ends a key's cool-down now (admin recovery, or a success that proves it over).
    pub async fn clear_cooldown(&self, key_id: &str) -> Result<(), StateError> {
        match self {
            Self::Memory(m) => {
                m.clear_cooldown(key_id);
                Ok(())
            }
            Self::Redis(r) => Box::pin(r.clear_cooldown(key_id)).await,
        }
    }

    /// The live affinity entry of a client for a format and model, if any.
    pub async fn affinity_get(
        &self,
        k: &AffinityKey,
        now: DateTime<Utc>,
    ) -> Result<Option<AffinityEntry>, StateError> {
        match self {
            Self::Memory(m) => Ok(m.affinity_get(k, now)),
            Self::Redis(r) => Box::pin(r.affinity_get(k, now)).await,
        }
    }

    /// Records that `target` served the client (sliding window, spec §3.8): the same target
    /// still live keeps `created_at`, counts one more request and pushes the expiry to
    /// now + ttl; another target (or none) starts a new entry with `request_count = 1`.
    /// Returns the entry as stored.
    pub async fn affinity_set(
        &self,
        k: &AffinityKey,
        target: &AffinityTargetIds,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<AffinityEntry, StateError> {
        match self {
            Self::Memory(m) => Ok(m.affinity_set(k, target, ttl, now)),
            Self::Redis(r) => Box::pin(r.affinity_set(k, target, ttl, now)).await,
        }
    }

    /// Deletes the entry only if it still points at this provider key and endpoint, so a
    /// failure of the old target cannot erase a newer entry. Returns whether it deleted one.
    pub async fn affinity_invalidate(
        &self,
        k: &AffinityKey,
        provider_key_id: &str,
        endpoint_id: &str,
    ) -> Result<bool, StateError> {
        match self {
            Self::Memory(m) => Ok(m.affinity_invalidate(k, provider_key_id, endpoint_id)),
            Self::Redis(r) => {
                Box::pin(r.affinity_invalidate(k, provider_key_id, endpoint_id)).await
            }
        }
    }

    /// Admin: up to `limit` live entries, sorted by key (Redis walks with `SCAN`, never `KEYS`).
    pub async fn affinity_list(
        &self,
        limit: usize,
    ) -> Result<Vec<(AffinityKey, AffinityEntry)>, StateError> {
        let mut all = match self {
            Self::Memory(m) => m.affinity_list(limit),
            Self::Redis(r) => Box::pin(r.affinity_list(limit)).await?,
        };
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// Admin: deletes the entries of one client (every format and model), or all entries.
    /// Returns how many live entries were deleted.
    pub async fn affinity_clear(&self, affinity_key: Option<&str>) -> Result<u64, StateError> {
        match self {
            Self::Memory(m) => Ok(m.affinity_clear(affinity_key)),
            Self::Redis(r) => Box::pin(r.affinity_clear(affinity_key)).await,
        }
    }

    /// Forgets everything this state holds (Redis: every key under its prefix). For tests and
    /// for an operator who wants a clean slate; never called on the request path.
    pub async fn clear_all(&self) -> Result<u64, StateError> {
        match self {
            Self::Memory(m) => Ok(m.clear_all()),
            Self::Redis(r) => Box::pin(r.clear_all()).await,
        }
    }
}

/// Key and endpoint ids are joined with [`MEMBER_SEPARATOR`] inside lease members; an id that
/// contains it could be split wrongly, so it is refused up front (on both backends, so they
/// behave alike).
fn check_id(operation: &'static str, field: &'static str, id: &str) -> Result<(), StateError> {
    if id.contains(MEMBER_SEPARATOR) {
        return Err(StateError::Invalid {
            operation,
            field,
            reason: "contains the control character U+001F".to_owned(),
        });
    }
    Ok(())
}

/// Milliseconds since the epoch, the precision both backends keep.
pub(crate) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Back from milliseconds; out-of-range values (never produced by this module) saturate.
pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// A duration in whole milliseconds, at least 1 (Redis refuses `PX 0`, and a zero ttl would make
/// a lease that never counts).
pub(crate) fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// Saturating count conversion.
pub(crate) fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
