//! Relaying a committed stream to the client while a tap extracts usage and watches for the
//! completion signal. The stream owns the slot lease and the request's finaliser: whatever way
//! it ends — completed, upstream cut or stall, malformed chunk, client gone — the lease is
//! released and exactly one final record is written.

use super::attempt::ByteStream;
use super::record::Finaliser;
use crate::slots::Lease;
use bytes::Bytes;
use futures_util::Stream;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use switchyard_core::SecretString;
use switchyard_core::secret::redact;
use switchyard_formats::convert::{self, StreamConverter};
use switchyard_formats::dialect::{Dialect, StreamEvent};
use switchyard_formats::envelope::{GatewayError, stream_error_event};
use switchyard_formats::sse::{SseEvent, SseParser, encode};
use switchyard_formats::usage::Usage;

/// How a relayed stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The completion signal arrived.
    Completed,
    /// The upstream failed after commit (cut, stall, malformed chunk, error event).
    Failed(String),
}

/// How a stream is relayed.
pub struct RelayOptions {
    /// The client asked for the usage chunk (the gateway always asks upstream for it).
    pub include_usage: bool,
    /// Longest silence from the upstream before the stream is ended with an error.
    pub idle: Duration,
    /// The dialect the upstream streams in.
    pub upstream: Dialect,
    /// The dialect the client reads.
    pub client: Dialect,
    /// Told the response id when a Responses stream announces it (`response.created`).
    pub chain: Option<super::ResponseChain>,
}

impl std::fmt::Debug for RelayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayOptions")
            .field("include_usage", &self.include_usage)
            .field("idle", &self.idle)
            .field("upstream", &self.upstream)
            .field("client", &self.client)
            .field("chain", &self.chain.is_some())
            .finish()
    }
}

/// The body of a streamed response.
pub struct RelayStream {
    rest: ByteStream,
    parser: SseParser,
    out: VecDeque<Bytes>,
    usage: Usage,
    finished: bool,
    ended: bool,
    include_usage: bool,
    idle: Duration,
    upstream: Dialect,
    client: Dialect,
    /// Present when the upstream's dialect is not the client's.
    converter: Option<StreamConverter>,
    /// Waiting for the stream's response id.
    chain: Option<super::ResponseChain>,
    idle_timer: Pin<Box<tokio::time::Sleep>>,
    finaliser: Option<Finaliser>,
    /// The provider key: an upstream error event that quotes it is redacted before relaying.
    secret: SecretString,
    _lease: Lease,
}

impl std::fmt::Debug for RelayStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayStream")
            .field("upstream", &self.upstream)
            .field("client", &self.client)
            .field("finished", &self.finished)
            .field("ended", &self.ended)
            .finish()
    }
}

impl RelayStream {
    /// Starts relaying: `events` were read before the commit and go out first.
    pub fn new(
        rest: ByteStream,
        parser: SseParser,
        events: Vec<SseEvent>,
        options: RelayOptions,
        finaliser: Finaliser,
        lease: Lease,
        secret: SecretString,
    ) -> Self {
        let RelayOptions {
            include_usage,
            idle,
            upstream,
            client,
            chain,
        } = options;
        let converter = (upstream != client).then(|| {
            StreamConverter::new(
                upstream,
                client,
                include_usage,
                chrono::Utc::now().timestamp(),
            )
        });
        let mut relay = Self {
            rest,
            parser,
            out: VecDeque::new(),
            usage: Usage::default(),
            finished: false,
            ended: false,
            include_usage,
            idle,
            upstream,
            client,
            converter,
            chain,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            finaliser: Some(finaliser),
            secret,
            _lease: lease,
        };
        for event in events {
            relay.take(event);
        }
        relay
    }

    /// Handles one upstream event: relay it (converted, or as it came; the forced usage chunk
    /// hidden), note usage and completion, end on the terminator, an error or garbage.
    fn take(&mut self, event: SseEvent) {
        if self.ended {
            return;
        }
        match convert::classify_stream_event(self.upstream, &event) {
            StreamEvent::Chunk {
                usage,
                finished,
                usage_only,
                ..
            } => {
                if let Some(usage) = usage {
                    self.usage.merge_stream(&usage);
                }
                self.finished |= finished;
                if self.chain.is_some() {
                    self.announce_response_id(&event);
                }
                if let Some(converter) = &mut self.converter {
                    self.out.extend(converter.push(&event));
                } else if !usage_only || self.include_usage {
                    self.out
                        .push_back(encode(event.event.as_deref(), &event.data));
                }
            }
            StreamEvent::Done { usage } => {
                if let Some(usage) = usage {
                    self.usage.merge_stream(&usage);
                }
                if let Some(converter) = &mut self.converter {
                    self.out.extend(converter.push(&event));
                    self.out.extend(converter.finish());
                } else {
                    self.out
                        .push_back(encode(event.event.as_deref(), &event.data));
                }
                self.end(StreamEnd::Completed);
            }
            StreamEvent::Error(body) => {
                let message = redact(&body.message, self.secret.expose()).into_owned();
                if self.converter.is_some() {
                    self.out
                        .push_back(self.error_event(&message, "upstream_error"));
                } else {
                    let data = redact(&event.data, self.secret.expose());
                    self.out.push_back(encode(event.event.as_deref(), &data));
                }
                self.end(StreamEnd::Failed(format!(
                    "upstream error event: {message}"
                )));
            }
            StreamEvent::Malformed => {
                self.fail("the upstream sent a malformed chunk");
            }
        }
    }

    /// Hands the id of a Responses stream's `response.created` event to the chain.
    fn announce_response_id(&mut self, event: &SseEvent) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&event.data) else {
            return;
        };
        if value.get("type").and_then(|t| t.as_str()) != Some("response.created") {
            return;
        }
        if let (Some(id), Some(chain)) = (
            value.pointer("/response/id").and_then(|id| id.as_str()),
            self.chain.take(),
        ) {
            chain(id);
        }
    }

    /// An in-band error event in the client's dialect.
    fn error_event(&self, message: &str, code: &str) -> Bytes {
        stream_error_event(
            self.client,
            &GatewayError {
                status: 502,
                error_type: "upstream_error",
                code,
                message,
                param: None,
            },
        )
    }

    /// Ends with an in-band error event: never a silent truncated success.
    fn fail(&mut self, why: &str) {
        let event = self.error_event(
            &format!("{why}; the response is incomplete"),
            "stream_interrupted",
        );
        self.out.push_back(event);
        self.end(StreamEnd::Failed(why.to_owned()));
    }

    fn end(&mut self, end: StreamEnd) {
        self.ended = true;
        if let Some(finaliser) = self.finaliser.take() {
            finaliser.stream_ended(end, self.usage);
        }
    }

    /// The upstream closed: complete if the answer was complete (adding `[DONE]` if missing).
    fn upstream_closed(&mut self) {
        if let Some(event) = self.parser.finish() {
            self.take(event);
        }
        if self.ended {
            return;
        }
        if self.finished {
            // Complete without its terminator (Gemini has none): close it properly.
            match &mut self.converter {
                Some(converter) => self.out.extend(converter.finish()),
                None => self.out.extend(convert::terminator(self.client)),
            }
            self.end(StreamEnd::Completed);
        } else {
            self.fail("the upstream closed the stream before it was complete");
        }
    }
}

impl Stream for RelayStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(bytes) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(bytes)));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match this.rest.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let idle = this.idle;
                    this.idle_timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + idle);
                    for event in this.parser.push(&chunk) {
                        this.take(event);
                    }
                }
                Poll::Ready(Some(Err(_))) => this.fail("the upstream connection broke mid-stream"),
                Poll::Ready(None) => this.upstream_closed(),
                Poll::Pending => {
                    if this.idle_timer.as_mut().poll(cx).is_ready() {
                        this.fail("the upstream stalled");
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Drop for RelayStream {
    fn drop(&mut self) {
        // Dropped before its end: the client went away (the lease goes with `_lease`).
        if let Some(finaliser) = self.finaliser.take() {
            finaliser.client_gone(self.usage);
        }
    }
}
