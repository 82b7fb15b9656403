//! The answers a request can end with: a settled success, or one clear error built from what the
//! failover loop saw (its tallies).

use super::record::Serving;
use super::relay::RelayStream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::time::Instant;
use switchyard_core::routing::RouteError;

/// A settled success.
#[derive(Debug)]
pub enum Settled {
    /// A whole JSON body (the upstream's, unchanged, or converted to the client's format).
    Json {
        /// The body.
        body: Bytes,
    },
    /// A relayed stream.
    Stream(Box<RelayStream>),
}

/// A final error for the client, in the front door's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status.
    pub status: u16,
    /// Envelope `type`.
    pub error_type: &'static str,
    /// Envelope `code` (the upstream's own code when it rejected the request).
    pub code: Cow<'static, str>,
    /// Human message (no secrets).
    pub message: String,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl Failure {
    /// A 500.
    pub fn internal(message: &str) -> Failure {
        Failure {
            status: 500,
            error_type: "server_error",
            code: "internal_error".into(),
            message: message.to_owned(),
            retry_after: None,
        }
    }

    pub(super) fn unavailable(message: String) -> Failure {
        Failure {
            status: 503,
            error_type: "server_error",
            code: "service_unavailable".into(),
            message,
            retry_after: Some(1),
        }
    }
}

/// Running tallies of the loop, for the final answer.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) attempts: u32,
    pub(super) failed: u32,
    pub(super) last_cause: Option<String>,
    pub(super) last_serving: Option<Serving>,
    pub(super) capacity_denied: Vec<usize>,
    pub(super) throttled_until: Option<DateTime<Utc>>,
    /// Attempts that ended in a 429.
    pub(super) rate_limited: u32,
    pub(super) circuit_skips: u32,
    pub(super) waited_rate_limit: bool,
    pub(super) deadline_hit: bool,
    /// Candidates skipped because the request cannot be converted to their format.
    pub(super) unconvertible: u32,
    /// Why, for the last of them.
    pub(super) unconvertible_cause: Option<String>,
}

impl Tally {
    pub(super) fn throttled(&mut self, until: DateTime<Utc>) {
        self.throttled_until = Some(self.throttled_until.map_or(until, |t| t.min(until)));
    }
}

pub(super) fn route_failure(route: &RouteError) -> Failure {
    match route {
        RouteError::ModelNotFound => Failure {
            status: 404,
            error_type: "invalid_request_error",
            code: "model_not_found".into(),
            message: "The model does not exist or is not served by this gateway.".into(),
            retry_after: None,
        },
        RouteError::ModelNotAllowed => Failure {
            status: 403,
            error_type: "permission_error",
            code: "model_not_allowed".into(),
            message: "This key may not use this model.".into(),
            retry_after: None,
        },
        RouteError::FormatNotAllowed => Failure {
            status: 403,
            error_type: "permission_error",
            code: "api_format_not_allowed".into(),
            message: "This key may not use this API.".into(),
            retry_after: None,
        },
        RouteError::NoCandidate { .. } => Failure::unavailable(route.to_string()),
    }
}

pub(super) fn final_failure(tally: &Tally, candidates: usize, deadline: Instant) -> Failure {
    let now = Utc::now();
    let busy = || {
        let retry_after = tally
            .throttled_until
            .map(|t| (t - now).num_milliseconds().max(0) as u64)
            .map_or(1, |ms| ms.div_ceil(1000).max(1));
        Failure {
            status: 429,
            error_type: "rate_limit_error",
            code: "rate_limit_exceeded".into(),
            message: "Every upstream for this model is busy or rate limited; retry later.".into(),
            retry_after: Some(retry_after),
        }
    };
    if tally.attempts == 0 && (!tally.capacity_denied.is_empty() || tally.throttled_until.is_some())
    {
        return busy();
    }
    // Every upstream that was tried answered 429: nothing is broken, the client should come
    // back when the earliest cool-down ends.
    if tally.attempts > 0 && tally.failed == tally.rate_limited && tally.throttled_until.is_some() {
        return busy();
    }
    if tally.deadline_hit || Instant::now() >= deadline {
        return Failure {
            status: 504,
            error_type: "server_error",
            code: "deadline_exceeded".into(),
            message: format!(
                "The request deadline passed after {} upstream attempt(s){}.",
                tally.attempts,
                cause_suffix(tally)
            ),
            retry_after: None,
        };
    }
    // Nothing was tried because no candidate's format can express the request: the client has
    // to change it, retrying is pointless.
    if tally.attempts == 0 && tally.unconvertible > 0 && tally.circuit_skips == 0 {
        return Failure {
            status: 400,
            error_type: "invalid_request_error",
            code: "unsupported_by_upstreams".into(),
            message: format!(
                "No upstream serving this model can express the request ({}).",
                tally
                    .unconvertible_cause
                    .as_deref()
                    .unwrap_or("cannot convert")
            ),
            retry_after: None,
        };
    }
    if tally.attempts == 0 {
        return Failure::unavailable(format!(
            "No healthy upstream: {} of {candidates} candidate(s) have an open circuit.",
            tally.circuit_skips
        ));
    }
    Failure {
        status: 502,
        error_type: "server_error",
        code: "upstream_failed".into(),
        message: format!(
            "All {} upstream attempt(s) failed{}.",
            tally.failed,
            cause_suffix(tally)
        ),
        retry_after: None,
    }
}

fn cause_suffix(tally: &Tally) -> String {
    tally
        .last_cause
        .as_ref()
        .map(|c| format!("; last: {c}"))
        .unwrap_or_default()
}
