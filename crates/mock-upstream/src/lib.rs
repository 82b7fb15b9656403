//! A fake LLM provider for Switchyard's end-to-end tests, demos and
//! benchmarks: a real HTTP/1.1 server (hand-written on tokio + `httparse`,
//! so it can misbehave at the byte level) that speaks the wire formats of
//! OpenAI, Anthropic and Gemini and can be told to fail in every way an
//! upstream fails.
//!
//! # Routes
//!
//! | route | format |
//! | --- | --- |
//! | `POST /v1/chat/completions` | OpenAI Chat Completions; SSE with `"stream":true` (usage chunk with `stream_options.include_usage`), ends with `data: [DONE]` |
//! | `POST /v1/responses` | OpenAI Responses; typed SSE events with `sequence_number`, ends with `response.completed` |
//! | `POST /v1/messages` | Anthropic Messages; SSE `message_start` … `message_stop`, one `ping` |
//! | `POST /v1/messages/count_tokens` | `{"input_tokens":N}` |
//! | `POST /v1beta/models/{model}:generateContent` | Gemini (also under `/v1/models/…`) |
//! | `POST /v1beta/models/{model}:streamGenerateContent` | SSE with `?alt=sse`, else a streamed JSON array |
//! | `POST /v1beta/models/{model}:countTokens` | `{"totalTokens":N,…}` |
//! | `GET /v1/models` | OpenAI model list (Anthropic's shape when `anthropic-version` is sent) |
//! | `GET /health` | `200 ok` (obeys behaviours, never counted or logged) |
//! | anything else | 404 with an OpenAI error envelope |
//!
//! The reply is a fixed sentence naming the model. When the request offers
//! a tool, its last message is the user's and contains "weather", the reply
//! is a call of the first tool instead (`tool_calls`, `tool_use`,
//! `function_call` item, Gemini `functionCall`).
//!
//! Token counts are deterministic: `max(1, bytes / 4)`, where the input
//! bytes are those of every string under a `content`, `text`, `input`,
//! `instructions` or `system` key of the body, and the output bytes those of
//! the reply text (or of the tool name and arguments). Cache and reasoning
//! tokens are 0 unless a behaviour sets them; they are added on top of the
//! body-derived count, mapped the way each provider reports them: OpenAI
//! `prompt_tokens` and Gemini `promptTokenCount` include cached tokens,
//! Anthropic `input_tokens` excludes cache reads and writes; OpenAI and
//! Anthropic output counts include reasoning, Gemini reports it separately
//! as `thoughtsTokenCount`.
//!
//! Every API answer carries `x-mock-name: NAME` when the server has a name,
//! and a request id (`x-request-id` for OpenAI routes, `request-id` for
//! Anthropic).
//!
//! # Behaviours
//!
//! A [`Behaviour`] is chosen per request; the first source that has one
//! wins:
//! 1. a runtime rule (`POST /_mock/rules`), matched by the request's
//!    credential (`Authorization: Bearer X`, `x-api-key`, `x-goog-api-key`,
//!    or `?key=`), routed path prefix and model, in creation order, with
//!    optional `times`;
//! 2. the `x-mock-behaviour` request header (JSON or compact form);
//! 3. a `/_b/<spec>/` path prefix, stripped before routing, where `<spec>`
//!    is percent-encoded JSON or the compact form `status=503,retry_after=2`
//!    (keys and values may be percent-encoded; a bare key means `true`).
//!
//! An unparseable header or prefix is answered with a 400 in the route's
//! envelope, so typos are noticed.
//!
//! | field | effect |
//! | --- | --- |
//! | `latency_ms` | wait before the response head (and before a fault) |
//! | `first_byte_ms` | send the head, then wait before the first body byte |
//! | `status` | answer this status with the route's error envelope (OpenAI `{"error":{"message","type","param","code"}}`, Anthropic `{"type":"error","error":{"type","message"}}`, Gemini `{"error":{"code","message","status"}}`); a 2xx status only changes the status line of a normal answer |
//! | `message` | the error message (default: a realistic one per status) |
//! | `error_type` (alias `type`) | OpenAI/Anthropic `error.type`, Gemini `error.status` (default per status) |
//! | `error_code` (alias `code`) | OpenAI `error.code`, e.g. `context_length_exceeded` |
//! | `error_param` (alias `param`) | OpenAI `error.param` |
//! | `retry_after` | `Retry-After: N` (seconds) |
//! | `retry_after_date` | with `retry_after`: send it as an HTTP date (now + N) |
//! | `ratelimit_limit`, `ratelimit_remaining`, `ratelimit_reset` | OpenAI routes: `x-ratelimit-{limit,remaining,reset}-requests` (reset as `Ns`); Anthropic: `anthropic-ratelimit-requests-{limit,remaining,reset}` (reset as RFC 3339 time, now + N s); Gemini: none, as Gemini sends none |
//! | `fault` | see below |
//! | `after_events` | stream faults act after this many events (default 0) |
//! | `event_interval_ms` | pause between stream events (default 0) |
//! | `cache_read_tokens`, `cache_creation_tokens`, `reasoning_tokens` | usage overrides |
//! | `output_text` | replace the reply text (also disables the tool call) |
//! | `times` | rules only: apply to the next N matching requests |
//!
//! Faults (`fault` values):
//! - `reset`: close with TCP RST (`SO_LINGER` 0) before any byte;
//! - `close`: close cleanly before any byte;
//! - `hang`: never answer; the socket stays open until the client leaves;
//! - `html`: a `text/html` error page, status 200 (or `status`);
//! - `error_in_200`: status 200 whose JSON body is the route's error
//!   envelope (built from `status`, default 500, and `message` etc.);
//! - `stream_cut`: send `after_events` events, then close the connection
//!   without the end marker or the last chunk;
//! - `stream_stall`: send `after_events` events, then nothing more, keeping
//!   the connection open until the client leaves;
//! - `stream_malformed`: send `after_events` events, then a garbage
//!   non-JSON `data:` event, then the rest of the stream;
//! - `stream_no_done`: the whole stream minus its end marker, with the body
//!   ended properly. End markers: `data: [DONE]` (chat),
//!   `response.completed` (responses), `message_stop` (messages), the last
//!   chunk with `finishReason` (Gemini SSE) or the closing `]` (Gemini
//!   JSON array);
//! - `stream_error_event`: at position `after_events`, an error event in
//!   the route's dialect (chat `data: {"error":{…}}`, responses
//!   `event: error` with a flat `{"type":"error","code","message",…}`,
//!   messages `event: error` + `{"type":"error","error":{…}}`, Gemini
//!   `{"error":{…}}`), after which the body ends.
//!
//! With `error_in_200` and `stream_error_event`, `status` only chooses the
//! error in the body (its type and default message); the HTTP status stays
//! 200. With `html`, it is the page's status.
//!
//! On a non-streaming request, `stream_cut` and `stream_stall` send the
//! head and half of the JSON body before cutting or stalling; the other
//! stream faults do nothing.
//!
//! # Control API (`/_mock/…`, never counted, logged or faulted)
//!
//! - `GET /_mock/stats` → [`StatsSnapshot`];
//! - `GET /_mock/requests?limit=N` → the last N [`LoggedRequest`]s, oldest
//!   first (the ring keeps 256 by default);
//! - `GET /_mock/rules` → [`RuleInfo`] list;
//! - `POST /_mock/rules` with a [`RuleSpec`] → `{"id":N}`;
//! - `DELETE /_mock/rules/{id}` → `{"deleted":N}` (404 if unknown);
//! - `DELETE /_mock/rules` → `{"cleared":true}`;
//! - `POST /_mock/reset` → `{"reset":true}`: clears rules, stats and log.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchyard_mock_upstream::{Behaviour, MockUpstream};
//! let mock = MockUpstream::start(([127, 0, 0, 1], 0).into()).await?;
//! let failing = Behaviour { status: Some(503), ..Behaviour::default() };
//! let base_url = format!("{}/_b/{}", mock.url(), failing.to_path_segment());
//! # let _ = base_url;
//! mock.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod behaviour;
mod control;
mod http1;
mod ids;
mod routes;
mod rules;
mod server;
mod stats;
mod stream;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use behaviour::{Behaviour, Fault};
pub use rules::{RuleInfo, RuleSpec};
pub use stats::{LoggedRequest, NO_KEY, StatsSnapshot};

/// Options for [`MockUpstream::start_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MockConfig {
    /// Sent as `x-mock-name` on every answer, to tell two mocks apart.
    pub name: Option<String>,
    /// How many requests `GET /_mock/requests` can return (default 256).
    pub request_log_capacity: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            name: None,
            request_log_capacity: 256,
        }
    }
}

impl MockConfig {
    /// Set the name reported in `x-mock-name`.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Set the request log capacity.
    #[must_use]
    pub fn with_request_log_capacity(mut self, capacity: usize) -> Self {
        self.request_log_capacity = capacity;
        self
    }
}

/// A running mock upstream. Dropping it stops the server and closes every
/// connection.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<server::State>,
    /// `None` once `shutdown` has taken it.
    task: Option<JoinHandle<()>>,
}

impl MockUpstream {
    /// Start a server on `addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(addr: SocketAddr) -> std::io::Result<MockUpstream> {
        Self::start_with(addr, MockConfig::default()).await
    }

    /// Start a server with options.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start_with(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let name_header = match &config.name {
            // Header values cannot hold line breaks; drop them rather than
            // let a name inject headers.
            Some(n) => format!("x-mock-name: {}\r\n", n.replace(['\r', '\n'], "")).into_bytes(),
            None => Vec::new(),
        };
        let state = Arc::new(server::State {
            stats: Arc::default(),
            log: stats::RequestLog::new(config.request_log_capacity),
            rules: rules::Rules::default(),
            name_header,
        });
        let task = tokio::spawn(server::accept_loop(listener, Arc::clone(&state)));
        Ok(MockUpstream {
            addr,
            state,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, with a wildcard bind address replaced by loopback.
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// Current counters (same as `GET /_mock/stats`).
    pub fn stats(&self) -> StatsSnapshot {
        self.state.stats.snapshot()
    }

    /// The last `limit` requests, oldest first (same as
    /// `GET /_mock/requests`).
    pub fn requests(&self, limit: usize) -> Vec<LoggedRequest> {
        self.state.log.last(limit)
    }

    /// Add a rule; returns its id.
    pub fn add_rule(&self, rule: RuleSpec) -> u64 {
        self.state.rules.add(rule)
    }

    /// Remove a rule; `false` if there was none with this id.
    pub fn remove_rule(&self, id: u64) -> bool {
        self.state.rules.remove(id)
    }

    /// Clear rules, stats and the request log.
    pub fn reset(&self) {
        self.state.rules.clear();
        self.state.stats.reset();
        self.state.log.clear();
    }

    /// Stop accepting, close every connection and wait for the server task
    /// to finish.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
