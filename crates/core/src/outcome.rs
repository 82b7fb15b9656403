//! What one upstream attempt produced, normalised so that the pure classifier can decide what
//! happens next. The upstream client and stream inspector fill these in; nothing here does I/O.

use std::time::Duration;

/// The interesting parts of an upstream error body (spec §4.3), whatever its shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// `error.type` (or `__type`, Gemini `status`).
    pub error_type: Option<String>,
    /// The human message.
    pub message: String,
    /// `error.reason` or `error.code`.
    pub reason: Option<String>,
    /// The first 1000 characters of the raw body, for pattern matching and records.
    pub raw: String,
}

/// Rate-limit headers of a response, whichever provider style they came in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// Requests allowed per window.
    pub limit: Option<u64>,
    /// Requests left in the window.
    pub remaining: Option<u64>,
    /// Time until the window resets.
    pub reset: Option<Duration>,
}

/// One attempt's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamOutcome {
    /// A usable answer (non-streamed: a 2xx JSON body without an error object; streamed: a 2xx
    /// head followed by a first valid event).
    Success,
    /// The connection could not be made, or was refused or reset before a response head.
    ConnectFailed,
    /// No response head within the endpoint's header timeout.
    HeaderTimeout,
    /// A streamed answer's head arrived but no first event within the first-byte timeout.
    FirstByteTimeout,
    /// A non-2xx status.
    Http {
        /// The status.
        status: u16,
        /// The parsed error body.
        body: ErrorBody,
        /// `Retry-After`, already turned into a duration.
        retry_after: Option<Duration>,
        /// Rate-limit headers.
        rate_limit: RateLimitHeaders,
    },
    /// A 2xx whose body (or first stream event) is an error object.
    ErrorInBody {
        /// The parsed error.
        body: ErrorBody,
    },
    /// An HTML page where JSON or SSE was expected (usually a wrong base URL or a proxy page).
    HtmlBody,
    /// A 2xx body that is not valid JSON, or a stream whose first event does not parse.
    MalformedBody,
    /// The client went away before the attempt finished.
    ClientGone,
}
