//! Tunables of the request path, with production defaults. The binary fills this from the
//! `[routing]` section of the configuration.

use std::time::Duration;
use switchyard_core::breaker::BreakerConfig;

/// Request-path settings shared by the actors.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// Overall budget of one request until it is settled (non-streamed) or committed (streamed).
    pub request_deadline: Duration,
    /// Upstream attempts per request, over all candidates.
    pub max_attempts: u32,
    /// First retry back-off; doubles per retry, with jitter.
    pub retry_base: Duration,
    /// Longest back-off.
    pub retry_max: Duration,
    /// A 429 whose `Retry-After` is at most this is waited out once on the best candidate.
    pub rate_limit_wait_max: Duration,
    /// How long a request may wait for a slot when every usable candidate is full.
    pub queue_timeout: Duration,
    /// Waiters per key beyond which requests are refused at once.
    pub queue_max_waiters: usize,
    /// Cool-down after a 429 without `Retry-After`.
    pub default_cooldown: Duration,
    /// Longest cool-down, whatever the upstream says.
    pub max_cooldown: Duration,
    /// A committed stream that sends nothing for this long is ended with an error event.
    pub stream_idle_timeout: Duration,
    /// Connect timeout of upstream clients.
    pub connect_timeout: Duration,
    /// Timeout of request-path messages to actors.
    pub actor_timeout: Duration,
    /// Lifetime of a concurrency lease in the shared state if its holder vanishes.
    pub lease_ttl: Duration,
    /// Record rows buffered before a flush is forced.
    pub record_batch: usize,
    /// Longest time a record waits in the buffer.
    pub record_flush: Duration,
    /// Shards (and threads) per actor kind.
    pub shards: usize,
    /// Requests in flight beyond which new ones are refused with 503.
    pub max_in_flight: usize,
    /// How often hot state (health, learned limits) is persisted.
    pub persist_every: Duration,
    /// The circuit breaker of every provider key.
    pub breaker: BreakerConfig,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            request_deadline: Duration::from_secs(600),
            max_attempts: 8,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            rate_limit_wait_max: Duration::from_secs(3),
            queue_timeout: Duration::from_secs(5),
            queue_max_waiters: 1024,
            default_cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(600),
            stream_idle_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            actor_timeout: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(900),
            record_batch: 1024,
            record_flush: Duration::from_millis(25),
            shards: 1,
            max_in_flight: 10_000,
            persist_every: Duration::from_secs(5),
            breaker: BreakerConfig::default(),
        }
    }
}
