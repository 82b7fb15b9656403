//! Request counters, in-flight gauges and the request log ring.
//!
//! Counters are atomics inside `DashMap`s so that concurrent requests never
//! wait on one another; the log ring is a short critical section under a
//! plain mutex, never held across an await.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The key under which requests without a credential are counted.
pub const NO_KEY: &str = "-";

/// Current and highest concurrency of one key.
#[derive(Debug, Default)]
struct Gauge {
    current: AtomicI64,
    max: AtomicI64,
}

impl Gauge {
    fn enter(&self) {
        let now = self.current.fetch_add(1, Ordering::AcqRel) + 1;
        self.max.fetch_max(now, Ordering::AcqRel);
    }
    fn leave(&self) {
        self.current.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Live counters. See [`StatsSnapshot`] for what each means.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    total: AtomicU64,
    by_path: DashMap<Box<str>, AtomicU64>,
    by_key: DashMap<Box<str>, AtomicU64>,
    in_flight: Gauge,
    by_key_in_flight: DashMap<Box<str>, Arc<Gauge>>,
}

/// Decrements the in-flight gauges when the response is finished — or when
/// the connection task is dropped because the client went away.
#[derive(Debug)]
pub(crate) struct InFlight {
    stats: Arc<Stats>,
    key: Arc<Gauge>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.leave();
        self.key.leave();
    }
}

fn bump(map: &DashMap<Box<str>, AtomicU64>, k: &str) {
    // Look up first so the common case allocates nothing.
    if let Some(c) = map.get(k) {
        c.fetch_add(1, Ordering::Relaxed);
        return;
    }
    map.entry(k.into())
        .or_default()
        .fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// Count one API request and mark it in flight until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>, path: &str, key: Option<&str>) -> InFlight {
        let key = key.unwrap_or(NO_KEY);
        self.total.fetch_add(1, Ordering::Relaxed);
        bump(&self.by_path, path);
        bump(&self.by_key, key);
        let gauge = match self.by_key_in_flight.get(key) {
            Some(g) => Arc::clone(&g),
            None => Arc::clone(&self.by_key_in_flight.entry(key.into()).or_default()),
        };
        self.in_flight.enter();
        gauge.enter();
        InFlight {
            stats: Arc::clone(self),
            key: gauge,
        }
    }

    /// Forget counts and maxima. Requests still in flight stay counted as in
    /// flight (their guards will decrement later), so gauges are kept.
    pub(crate) fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.by_path.clear();
        self.by_key.clear();
        let now = self.in_flight.current.load(Ordering::Acquire);
        self.in_flight.max.store(now, Ordering::Release);
        self.by_key_in_flight
            .retain(|_, g| g.current.load(Ordering::Acquire) > 0);
        for g in &self.by_key_in_flight {
            g.max
                .store(g.current.load(Ordering::Acquire), Ordering::Release);
        }
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        fn counts(map: &DashMap<Box<str>, AtomicU64>) -> BTreeMap<String, u64> {
            map.iter()
                .map(|e| (e.key().to_string(), e.value().load(Ordering::Relaxed)))
                .collect()
        }
        let clamp = |v: i64| u64::try_from(v).unwrap_or(0);
        let mut in_flight_by_key = BTreeMap::new();
        let mut max_in_flight_by_key = BTreeMap::new();
        for e in &self.by_key_in_flight {
            in_flight_by_key.insert(
                e.key().to_string(),
                clamp(e.value().current.load(Ordering::Acquire)),
            );
            max_in_flight_by_key.insert(
                e.key().to_string(),
                clamp(e.value().max.load(Ordering::Acquire)),
            );
        }
        StatsSnapshot {
            total: self.total.load(Ordering::Relaxed),
            by_path: counts(&self.by_path),
            by_key: counts(&self.by_key),
            in_flight: clamp(self.in_flight.current.load(Ordering::Acquire)),
            max_in_flight: clamp(self.in_flight.max.load(Ordering::Acquire)),
            in_flight_by_key,
            max_in_flight_by_key,
        }
    }
}

/// The answer of `GET /_mock/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// API requests received (control and `/health` requests excluded).
    pub total: u64,
    /// Requests per routed path (after the `/_b/` prefix is stripped,
    /// without the query).
    pub by_path: BTreeMap<String, u64>,
    /// Requests per credential; requests without one count under `"-"`.
    pub by_key: BTreeMap<String, u64>,
    /// Requests whose response is not finished yet.
    pub in_flight: u64,
    /// Highest `in_flight` seen since start or the last reset.
    pub max_in_flight: u64,
    /// `in_flight` per credential.
    pub in_flight_by_key: BTreeMap<String, u64>,
    /// `max_in_flight` per credential.
    pub max_in_flight_by_key: BTreeMap<String, u64>,
}

/// One stored request: the raw head and body, parsed only when asked for.
#[derive(Debug)]
struct Entry {
    seq: u64,
    unix_ms: i64,
    head: Bytes,
    body: Bytes,
}

/// The last `capacity` API requests.
#[derive(Debug)]
pub(crate) struct RequestLog {
    capacity: usize,
    seq: AtomicU64,
    ring: Mutex<VecDeque<Entry>>,
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> Self {
        RequestLog {
            capacity,
            seq: AtomicU64::new(0),
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    pub(crate) fn push(&self, head: Bytes, body: Bytes) {
        if self.capacity == 0 {
            return;
        }
        let entry = Entry {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            unix_ms: chrono::Utc::now().timestamp_millis(),
            head,
            body,
        };
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    pub(crate) fn clear(&self) {
        self.ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The last `limit` requests, oldest first.
    pub(crate) fn last(&self, limit: usize) -> Vec<LoggedRequest> {
        // Copy the cheap `Bytes` handles out, then parse outside the lock.
        let picked: Vec<(u64, i64, Bytes, Bytes)> = {
            let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
            let skip = ring.len().saturating_sub(limit);
            ring.iter()
                .skip(skip)
                .map(|e| (e.seq, e.unix_ms, e.head.clone(), e.body.clone()))
                .collect()
        };
        picked
            .into_iter()
            .filter_map(|(seq, unix_ms, head, body)| {
                LoggedRequest::from_raw(seq, unix_ms, &head, &body)
            })
            .collect()
    }
}

/// One entry of `GET /_mock/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Sequence number (1 for the first request since start).
    pub seq: u64,
    /// When the request head was read, Unix milliseconds.
    pub unix_ms: i64,
    /// Request method.
    pub method: String,
    /// The request target exactly as received (with any `/_b/` prefix and
    /// the query).
    pub target: String,
    /// The routed path: `/_b/` prefix stripped, no query.
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// Every header as received: `[name, value]` pairs, in order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON when it parses, else as a string (`null` if empty).
    pub body: Value,
    /// The body's bytes as received (lossy UTF-8), for checking what a proxy changed in them.
    pub body_text: String,
    /// The credential the request carried, if any.
    pub key: Option<String>,
    /// The model the request asked for (body `model`, or the Gemini path).
    pub model: Option<String>,
}

impl LoggedRequest {
    fn from_raw(seq: u64, unix_ms: i64, head: &[u8], body: &[u8]) -> Option<Self> {
        let crate::http1::LoggedHead {
            method,
            target,
            headers,
        } = crate::http1::parse_logged(head)?;
        let (path, query) = crate::http1::split_target(&target);
        let path = crate::server::strip_behaviour_prefix(path).0.to_owned();
        let query = query.map(str::to_owned);
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let model = crate::routes::request_model(&path, json.as_ref());
        let body_text = String::from_utf8_lossy(body).into_owned();
        let body = match json {
            Some(v) => v,
            None if body.is_empty() => Value::Null,
            None => Value::String(String::from_utf8_lossy(body).into_owned()),
        };
        let header_key = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| crate::http1::strip_bearer(v).to_owned())
            .or_else(|| find(&headers, "x-api-key"))
            .or_else(|| find(&headers, "x-goog-api-key"))
            .filter(|k| !k.is_empty());
        let key = header_key.or_else(|| crate::http1::query_param(query.as_deref(), "key"));
        Some(LoggedRequest {
            seq,
            unix_ms,
            method,
            target,
            path,
            query,
            headers,
            body,
            body_text,
            key,
            model,
        })
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn find(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
}
