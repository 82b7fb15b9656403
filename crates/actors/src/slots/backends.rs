//! Where leases and RPM windows live: the shared state (memory, or Redis for several gateways)
//! and, with Redis, a process-local fallback. If Redis fails, the gateway keeps serving on local
//! state — limits then hold per process instead of across processes — and says so in the logs
//! and on the status endpoint; as soon as Redis answers again new leases go back to it, and the
//! local ones drain as their requests end.

use super::SlotCounters;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use switchyard_store::state::{LeaseOutcome, LeaseRequest, RpmOutcome, SharedState, StateError};

/// Seconds between two "shared state unavailable" warnings (one per outage burst, not one per
/// request).
const WARN_EVERY_SECS: i64 = 10;

/// The shared state and its local fallback.
#[derive(Debug, Clone)]
pub(crate) struct Backends {
    shared: SharedState,
    local: Option<SharedState>,
    counters: Arc<SlotCounters>,
}

impl Backends {
    /// A shared state; Redis gets a local fallback.
    pub(crate) fn new(shared: SharedState, counters: Arc<SlotCounters>) -> Self {
        let local = (shared.backend() == "redis").then(SharedState::memory);
        Self {
            shared,
            local,
            counters,
        }
    }

    fn fell_back(&self, operation: &str, error: &StateError) {
        let now = Utc::now().timestamp();
        self.counters
            .state_fallbacks
            .fetch_add(1, Ordering::Relaxed);
        self.counters.last_fallback_at.store(now, Ordering::Relaxed);
        let last = self.counters.last_fallback_warning.load(Ordering::Relaxed);
        if now - last >= WARN_EVERY_SECS
            && self
                .counters
                .last_fallback_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(operation, error = %error, "shared state unavailable: serving on process-local state until it answers again");
        }
    }

    /// Takes a lease in the shared state, or locally while the shared state fails.
    pub(crate) async fn acquire(&self, req: &LeaseRequest) -> Result<LeaseOutcome, StateError> {
        match (self.shared.acquire(req).await, &self.local) {
            (Err(e), Some(local)) => {
                self.fell_back("acquire", &e);
                local.acquire(req).await
            }
            (result, _) => result,
        }
    }

    /// Gives a lease back wherever it was taken (releasing an unknown lease is a no-op).
    pub(crate) async fn release(
        &self,
        key_id: &str,
        endpoint_id: &str,
        lease_id: &str,
    ) -> Result<(), StateError> {
        if let Some(local) = &self.local {
            let _ = local.release(key_id, endpoint_id, lease_id).await;
        }
        self.shared.release(key_id, endpoint_id, lease_id).await
    }

    /// Counts a request in the key's RPM window, locally while the shared state fails.
    pub(crate) async fn rpm_admit(
        &self,
        key_id: &str,
        limit: u32,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Result<RpmOutcome, StateError> {
        match (
            self.shared.rpm_admit(key_id, limit, request_id, now).await,
            &self.local,
        ) {
            (Err(e), Some(local)) => {
                self.fell_back("rpm", &e);
                local.rpm_admit(key_id, limit, request_id, now).await
            }
            (result, _) => result,
        }
    }
}
