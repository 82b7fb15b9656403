//! Mailbox metering. actix exposes no queue length, so every address the system uses is
//! wrapped: a message is stamped when sent, and counted when its handler finishes (or when it
//! is dropped unhandled), so `depth = sent − done` is exact, and queue-wait and handling times
//! are measured per message type.
//!
//! Everything here is lock-free on the hot path: atomics, and a `DashMap` that is written only
//! the first time a message type is seen.

use dashmap::DashMap;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Log-scale latency histogram with power-of-two microsecond buckets (1 µs … ~2 h).
/// Percentiles are bucket upper bounds: within a factor of two, which is what a mailbox
/// dashboard needs, at the cost of one atomic add per sample.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; 33],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let bucket = (64 - micros.leading_zeros()).min(32) as usize;
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The upper bound, in microseconds, under which `q` (0–1) of the samples fall.
    pub fn quantile_micros(&self, q: f64) -> u64 {
        let total = self.count.load(Ordering::Relaxed);
        if total == 0 {
            return 0;
        }
        let wanted = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= wanted {
                return if i == 0 { 1 } else { 1u64 << i };
            }
        }
        u64::MAX
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Summary for the status endpoint.
    pub fn summary(&self) -> LatencySummary {
        let count = self.count();
        LatencySummary {
            count,
            mean_us: self
                .sum_micros
                .load(Ordering::Relaxed)
                .checked_div(count)
                .unwrap_or(0),
            p50_us: self.quantile_micros(0.50),
            p90_us: self.quantile_micros(0.90),
            p99_us: self.quantile_micros(0.99),
            max_us: self.quantile_micros(1.0),
        }
    }
}

/// Percentiles of a histogram.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean, µs.
    pub mean_us: u64,
    /// Median bucket bound, µs.
    pub p50_us: u64,
    /// 90th percentile bucket bound, µs.
    pub p90_us: u64,
    /// 99th percentile bucket bound, µs.
    pub p99_us: u64,
    /// Largest bucket bound seen, µs.
    pub max_us: u64,
}

/// Counters of one message type at one actor shard.
#[derive(Debug, Default)]
pub struct MessageMeter {
    handled: AtomicU64,
    queue_wait: Histogram,
    handling: Histogram,
}

/// The meter of one actor shard.
#[derive(Debug)]
pub struct ActorMeter {
    actor: &'static str,
    shard: usize,
    sent: AtomicU64,
    done: AtomicU64,
    high_water: AtomicU64,
    messages: DashMap<&'static str, Arc<MessageMeter>, foldhash::fast::RandomState>,
}

impl ActorMeter {
    /// A meter for shard `shard` of `actor`.
    pub fn new(actor: &'static str, shard: usize) -> Self {
        Self {
            actor,
            shard,
            sent: AtomicU64::new(0),
            done: AtomicU64::new(0),
            high_water: AtomicU64::new(0),
            messages: DashMap::default(),
        }
    }

    /// A message was put in the mailbox.
    pub fn sent(&self) {
        let sent = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        let depth = sent.saturating_sub(self.done.load(Ordering::Relaxed));
        self.high_water.fetch_max(depth, Ordering::Relaxed);
    }

    /// A message left the mailbox (handled or dropped).
    pub fn done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// The per-type meter, created the first time a type is seen.
    pub fn message(&self, name: &'static str) -> Arc<MessageMeter> {
        if let Some(m) = self.messages.get(name) {
            return m.clone();
        }
        self.messages.entry(name).or_default().clone()
    }

    /// Messages waiting or being handled now.
    pub fn depth(&self) -> u64 {
        self.sent
            .load(Ordering::Relaxed)
            .saturating_sub(self.done.load(Ordering::Relaxed))
    }

    /// A snapshot for the status endpoint and `/metrics`.
    pub fn snapshot(&self) -> ActorSnapshot {
        let mut messages: Vec<MessageSnapshot> = self
            .messages
            .iter()
            .map(|entry| MessageSnapshot {
                message: entry.key(),
                handled: entry.value().handled.load(Ordering::Relaxed),
                queue_wait: entry.value().queue_wait.summary(),
                handling: entry.value().handling.summary(),
            })
            .collect();
        messages.sort_by_key(|m| m.message);
        ActorSnapshot {
            actor: self.actor,
            shard: self.shard,
            depth: self.depth(),
            high_water: self.high_water.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            handled: self.done.load(Ordering::Relaxed),
            messages,
        }
    }
}

impl MessageMeter {
    /// Records a handled message.
    pub fn record(&self, waited: Duration, handling: Duration) {
        self.handled.fetch_add(1, Ordering::Relaxed);
        self.queue_wait.record(waited);
        self.handling.record(handling);
    }
}

/// One actor shard's mailbox figures.
#[derive(Debug, Clone, Serialize)]
pub struct ActorSnapshot {
    /// Actor name.
    pub actor: &'static str,
    /// Shard index.
    pub shard: usize,
    /// Messages in the mailbox or in a handler now.
    pub depth: u64,
    /// Largest depth seen.
    pub high_water: u64,
    /// Messages sent.
    pub sent: u64,
    /// Messages handled (or dropped unhandled).
    pub handled: u64,
    /// Per message type.
    pub messages: Vec<MessageSnapshot>,
}

/// One message type's figures.
#[derive(Debug, Clone, Serialize)]
pub struct MessageSnapshot {
    /// Message type name.
    pub message: &'static str,
    /// Handled.
    pub handled: u64,
    /// Time between send and the start of handling.
    pub queue_wait: LatencySummary,
    /// Time inside the handler (its synchronous part).
    pub handling: LatencySummary,
}

/// Every meter of the process, for the status endpoint.
#[derive(Debug, Default, Clone)]
pub struct MeterRegistry {
    meters: Arc<std::sync::RwLock<Vec<Arc<ActorMeter>>>>,
}

impl MeterRegistry {
    /// Registers a meter (at start-up, not on the request path).
    pub fn register(&self, meter: Arc<ActorMeter>) {
        if let Ok(mut meters) = self.meters.write() {
            meters.push(meter);
        }
    }

    /// All snapshots.
    pub fn snapshots(&self) -> Vec<ActorSnapshot> {
        self.meters
            .read()
            .map(|m| m.iter().map(|m| m.snapshot()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_bound_the_samples() {
        let h = Histogram::default();
        for micros in [1u64, 3, 10, 100, 1000, 5000] {
            h.record(Duration::from_micros(micros));
        }
        assert_eq!(h.count(), 6);
        assert!(h.quantile_micros(0.5) >= 10 && h.quantile_micros(0.5) < 64);
        assert!(h.quantile_micros(1.0) >= 5000 && h.quantile_micros(1.0) <= 8192);
        assert_eq!(Histogram::default().quantile_micros(0.99), 0);
    }

    #[test]
    fn depth_and_high_water() {
        let m = ActorMeter::new("test", 0);
        m.sent();
        m.sent();
        m.done();
        m.sent();
        assert_eq!(m.depth(), 2);
        assert_eq!(m.snapshot().high_water, 2);
    }
}
