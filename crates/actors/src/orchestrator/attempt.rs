//! One upstream attempt: send, wait for the head within the header timeout, then either read
//! the whole body (non-streamed) or read until the first stream event (streamed) — the last
//! moment the gateway may still fail over. The result is a normalised `UpstreamOutcome` for the
//! pure classifier, plus what is needed to relay a success.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::borrow::Cow;
use std::time::{Duration, Instant};
use switchyard_core::catalog::{Endpoint, ProviderKey};
use switchyard_core::outcome::UpstreamOutcome;
use switchyard_core::ratelimit;
use switchyard_core::secret::redact;
use switchyard_formats::body::{
    BodyKind, inspect_json_body, inspect_relayed_body, looks_like_html,
};
use switchyard_formats::convert;
use switchyard_formats::dialect::{Dialect, StreamEvent};
use switchyard_formats::error_body::parse_error_body;
use switchyard_formats::sse::{SseEvent, SseParser};
use switchyard_formats::usage::Usage;
use switchyard_upstream::{BodyError, Response, SendFailure, UpstreamClients, build_request, send};

/// Largest error body read from an upstream (the rest is not needed to classify it).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The upstream byte stream after the head.
pub type ByteStream = BoxStream<'static, Result<Bytes, BodyError>>;

/// What a successful attempt hands to the settling code.
pub enum Success {
    /// A whole JSON body.
    Json {
        /// The body as received.
        body: Bytes,
        /// Usage found in it.
        usage: Option<Usage>,
        /// The upstream's response id when it answered in the Responses dialect (a client's
        /// next turn names it as `previous_response_id`).
        response_id: Option<String>,
    },
    /// A stream committed at its first event.
    Stream {
        /// The rest of the upstream stream.
        rest: ByteStream,
        /// The parser, holding any partial event.
        parser: SseParser,
        /// Events already read (the first one included), to relay first.
        events: Vec<SseEvent>,
    },
}

impl std::fmt::Debug for Success {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Success::Json { body, .. } => write!(f, "Json({} bytes)", body.len()),
            Success::Stream { events, .. } => write!(f, "Stream({} events read)", events.len()),
        }
    }
}

/// The dialect the upstream answers in and the one the client expects.
#[derive(Debug, Clone, Copy)]
pub struct Dialects {
    /// The endpoint's.
    pub upstream: Dialect,
    /// The client's.
    pub client: Dialect,
}

/// One attempt's result.
#[derive(Debug)]
pub struct Attempt {
    /// The normalised outcome.
    pub outcome: UpstreamOutcome,
    /// Present for `UpstreamOutcome::Success`.
    pub success: Option<Success>,
    /// Upstream status, when a head arrived.
    pub status: Option<u16>,
    /// Human detail for records (never contains a credential).
    pub detail: Option<String>,
}

impl Attempt {
    /// The client went away before the attempt finished.
    pub fn client_gone() -> Self {
        Self::failed(
            UpstreamOutcome::ClientGone,
            None,
            "the client went away before the answer",
        )
    }

    fn failed(outcome: UpstreamOutcome, status: Option<u16>, detail: impl Into<String>) -> Self {
        Self {
            outcome,
            success: None,
            status,
            detail: Some(detail.into()),
        }
    }
}

/// Runs one attempt. `deadline` bounds everything here together with the endpoint timeouts.
/// Upstream text that echoes the provider key (some error messages quote it) has it redacted
/// before it reaches records, logs or the client.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one request, each used once; a struct would only repackage them"
)]
pub async fn run(
    clients: &UpstreamClients,
    endpoint: &Endpoint,
    key: &ProviderKey,
    upstream_model: &str,
    stream: bool,
    dialects: Dialects,
    body: Bytes,
    client_headers: &[(String, String)],
    deadline: Instant,
) -> Attempt {
    let mut attempt = call(
        clients,
        endpoint,
        key,
        upstream_model,
        stream,
        dialects,
        body,
        client_headers,
        deadline,
    )
    .await;
    let secret = key.secret.expose();
    let scrub = |text: &mut String| {
        if let Cow::Owned(clean) = redact(text, secret) {
            *text = clean;
        }
    };
    if let Some(detail) = &mut attempt.detail {
        scrub(detail);
    }
    if let UpstreamOutcome::Http { body, .. } | UpstreamOutcome::ErrorInBody { body } =
        &mut attempt.outcome
    {
        scrub(&mut body.message);
        scrub(&mut body.raw);
    }
    attempt
}

#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one request, each used once; a struct would only repackage them"
)]
async fn call(
    clients: &UpstreamClients,
    endpoint: &Endpoint,
    key: &ProviderKey,
    upstream_model: &str,
    stream: bool,
    dialects: Dialects,
    body: Bytes,
    client_headers: &[(String, String)],
    deadline: Instant,
) -> Attempt {
    let left = deadline.saturating_duration_since(Instant::now());
    let request = match build_request(endpoint, key, upstream_model, stream, body, client_headers) {
        Ok(request) => request,
        Err(e) => return Attempt::failed(UpstreamOutcome::ConnectFailed, None, e.to_string()),
    };
    let client = clients.client_for(endpoint);
    let header_timeout = Duration::from_secs(u64::from(endpoint.header_timeout_secs)).min(left);
    let response = match send(&client, request, header_timeout).await {
        Ok(response) => response,
        Err(SendFailure::HeaderTimeout(t)) => {
            return Attempt::failed(
                UpstreamOutcome::HeaderTimeout,
                None,
                format!("no response head within {} ms", t.as_millis()),
            );
        }
        Err(e) => return Attempt::failed(UpstreamOutcome::ConnectFailed, None, e.to_string()),
    };
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return error_status(response, status, deadline).await;
    }
    let body_timeout = Duration::from_secs(u64::from(endpoint.timeout_secs));
    if stream {
        let first_byte = Duration::from_secs(u64::from(endpoint.first_byte_timeout_secs));
        first_event(
            response,
            status,
            dialects.upstream,
            first_byte.min(deadline.saturating_duration_since(Instant::now())),
        )
        .await
    } else {
        whole_body(
            response,
            status,
            dialects,
            body_timeout.min(deadline.saturating_duration_since(Instant::now())),
        )
        .await
    }
}

async fn error_status(response: Response, status: u16, deadline: Instant) -> Attempt {
    let now = chrono::Utc::now();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let retry_after = pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| ratelimit::parse_retry_after(v, now));
    let rate_limit = ratelimit::parse_rate_limit_headers(&pairs, now);
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .min(Duration::from_secs(10));
    let raw = read_limited(response, MAX_ERROR_BODY, wait)
        .await
        .unwrap_or_default();
    let body = parse_error_body(&raw);
    let detail = format!("upstream returned {status}: {}", body.message);
    Attempt {
        outcome: UpstreamOutcome::Http {
            status,
            body,
            retry_after,
            rate_limit,
        },
        success: None,
        status: Some(status),
        detail: Some(detail),
    }
}

async fn read_limited(response: Response, limit: usize, wait: Duration) -> Option<Vec<u8>> {
    let mut stream = response.bytes_stream();
    let mut out = Vec::new();
    let read = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.ok()?;
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() >= limit {
                break;
            }
        }
        Some(())
    };
    tokio::time::timeout(wait, read).await.ok().flatten()?;
    Some(out)
}

async fn whole_body(
    response: Response,
    status: u16,
    dialects: Dialects,
    timeout: Duration,
) -> Attempt {
    let bytes = match tokio::time::timeout(timeout, response.bytes()).await {
        Err(_) => {
            return Attempt::failed(
                UpstreamOutcome::HeaderTimeout,
                Some(status),
                "the body did not arrive in time",
            );
        }
        Ok(Err(e)) => {
            return Attempt::failed(
                UpstreamOutcome::ConnectFailed,
                Some(status),
                format!("the body was cut: {e}"),
            );
        }
        Ok(Ok(bytes)) => bytes,
    };
    // Relayed as it came, the answer is only read for its usage and id; converted, whole.
    let kind = if dialects.upstream == dialects.client {
        inspect_relayed_body(&bytes)
    } else {
        inspect_json_body(&bytes)
    };
    match kind {
        BodyKind::Json(value) => {
            let usage = convert::usage_from_response(dialects.upstream, &value);
            let response_id = (dialects.upstream == Dialect::Responses)
                .then(|| {
                    value
                        .get("id")
                        .and_then(|id| id.as_str())
                        .map(str::to_owned)
                })
                .flatten();
            let body = if dialects.upstream == dialects.client {
                bytes
            } else {
                // An answer the client's format cannot carry is this upstream's failure: the
                // next candidate may answer in a form that converts.
                match convert::convert_response(
                    dialects.upstream,
                    dialects.client,
                    &value,
                    chrono::Utc::now().timestamp(),
                ) {
                    Ok(converted) => converted,
                    Err(unsupported) => {
                        return Attempt::failed(
                            UpstreamOutcome::MalformedBody,
                            Some(status),
                            format!("the answer {unsupported}"),
                        );
                    }
                }
            };
            Attempt {
                outcome: UpstreamOutcome::Success,
                success: Some(Success::Json {
                    usage,
                    body,
                    response_id,
                }),
                status: Some(status),
                detail: None,
            }
        }
        BodyKind::ErrorObject(body) => {
            let detail = format!("error inside a {status} body: {}", body.message);
            Attempt::failed(UpstreamOutcome::ErrorInBody { body }, Some(status), detail)
        }
        BodyKind::Html => Attempt::failed(
            UpstreamOutcome::HtmlBody,
            Some(status),
            "an HTML page instead of JSON (wrong base URL?)",
        ),
        BodyKind::Malformed => Attempt::failed(
            UpstreamOutcome::MalformedBody,
            Some(status),
            "the body is not valid JSON",
        ),
    }
}

/// Reads until the first valid event. Every byte read so far is parsed together, so an error
/// in the very first chunk is seen (fix of the reference's §11.1 #12).
async fn first_event(
    response: Response,
    status: u16,
    upstream: Dialect,
    timeout: Duration,
) -> Attempt {
    let mut rest: ByteStream = response.bytes_stream().boxed();
    let mut parser = SseParser::new();
    let mut events: Vec<SseEvent> = Vec::new();
    let mut seen_bytes: Vec<u8> = Vec::new();
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let next = match tokio::time::timeout_at(until, rest.next()).await {
            Err(_) => {
                return Attempt::failed(
                    UpstreamOutcome::FirstByteTimeout,
                    Some(status),
                    format!("no stream event within {} ms", timeout.as_millis()),
                );
            }
            Ok(next) => next,
        };
        let chunk = match next {
            None => {
                let outcome = if looks_like_html(&seen_bytes) {
                    UpstreamOutcome::HtmlBody
                } else {
                    UpstreamOutcome::MalformedBody
                };
                return Attempt::failed(
                    outcome,
                    Some(status),
                    "the stream ended before its first event",
                );
            }
            Some(Err(e)) => {
                return Attempt::failed(
                    UpstreamOutcome::ConnectFailed,
                    Some(status),
                    format!("the stream was cut before its first event: {e}"),
                );
            }
            Some(Ok(chunk)) => chunk,
        };
        if seen_bytes.len() < 512 {
            seen_bytes.extend_from_slice(&chunk[..chunk.len().min(512)]);
            if looks_like_html(&seen_bytes) {
                return Attempt::failed(
                    UpstreamOutcome::HtmlBody,
                    Some(status),
                    "an HTML page instead of a stream (wrong base URL?)",
                );
            }
        }
        let mut batch = parser.push(&chunk).into_iter();
        let Some(event) = batch.next() else {
            continue;
        };
        // The first event decides; the rest of the chunk is relayed after it.
        match convert::classify_stream_event(upstream, &event) {
            StreamEvent::Chunk { .. } => {
                events.push(event);
                events.extend(batch);
                return Attempt {
                    outcome: UpstreamOutcome::Success,
                    success: Some(Success::Stream {
                        rest,
                        parser,
                        events,
                    }),
                    status: Some(status),
                    detail: None,
                };
            }
            StreamEvent::Error(body) => {
                let detail = format!("error event before the first chunk: {}", body.message);
                return Attempt::failed(
                    UpstreamOutcome::ErrorInBody { body },
                    Some(status),
                    detail,
                );
            }
            StreamEvent::Malformed => {
                return Attempt::failed(
                    UpstreamOutcome::MalformedBody,
                    Some(status),
                    "the first stream event is not valid JSON",
                );
            }
            StreamEvent::Done { .. } => {
                return Attempt::failed(
                    UpstreamOutcome::MalformedBody,
                    Some(status),
                    "the stream ended before its first chunk",
                );
            }
        }
    }
}
