//! What every dialect shares: the parsed client request, request errors, and what one stream
//! event means to the gateway. The [`Dialect`] of an [`ApiFormat`] picks the module that speaks
//! it; the "CLI" formats carry their parent's payloads and share its dialect.

use crate::body::is_error_object;
use crate::error_body::{error_body_from_json, parse_error_body};
use crate::request_body::RequestBody;
use crate::sse::SseEvent;
use crate::usage::Usage;
use serde_json::Value;
use std::fmt;
use switchyard_core::ApiFormat;
use switchyard_core::outcome::ErrorBody;

/// The four payload dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dialect {
    /// OpenAI Chat Completions.
    Chat,
    /// OpenAI Responses.
    Responses,
    /// Anthropic Messages.
    Messages,
    /// Google Gemini `generateContent`.
    Gemini,
}

impl Dialect {
    /// Every dialect, in a stable order.
    pub const ALL: [Dialect; 4] = [
        Dialect::Chat,
        Dialect::Responses,
        Dialect::Messages,
        Dialect::Gemini,
    ];

    /// The dialect a format's payloads are written in.
    #[must_use]
    pub fn of(format: ApiFormat) -> Self {
        match format {
            ApiFormat::OpenAi => Dialect::Chat,
            ApiFormat::OpenAiCli => Dialect::Responses,
            ApiFormat::Claude | ApiFormat::ClaudeCli => Dialect::Messages,
            ApiFormat::Gemini | ApiFormat::GeminiCli => Dialect::Gemini,
        }
    }

    /// A short name for messages and records.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Chat => "OpenAI chat",
            Dialect::Responses => "OpenAI Responses",
            Dialect::Messages => "Anthropic messages",
            Dialect::Gemini => "Gemini",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated client request, in its own dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRequest {
    /// The dialect of `body`.
    pub dialect: Dialect,
    /// The model the client asked for (validated non-empty; Gemini: from the path).
    pub model: String,
    /// A streamed answer was requested (Gemini: from the path).
    pub stream: bool,
    /// OpenAI chat only: the client asked for the usage chunk
    /// (`stream_options.include_usage: true`), so the relay must let it through.
    pub include_usage: bool,
    /// The whole body as received, unknown fields included.
    pub body: RequestBody,
}

/// Why a request was rejected, naming the offending field as a path (`messages[2].role`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The field path; empty when the body as a whole is wrong (not JSON, not an object).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl RequestError {
    /// An error about `field` (empty: the whole body).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RequestError {
    /// `field: message`, or just the message when the error is about the whole body.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for RequestError {}

/// What one upstream stream event means to the gateway, whatever the dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A regular event of the answer.
    Chunk {
        /// Normalised usage, if the event reports some.
        usage: Option<Usage>,
        /// The answer is complete (a finish/stop reason arrived); the stream may still carry
        /// usage and its terminator.
        finished: bool,
        /// The event carries output (text, tool call, thinking…).
        content: bool,
        /// OpenAI chat: `choices` is empty and usage is present — the usage chunk the gateway
        /// forced on, hidden from clients that did not ask for it. Always false elsewhere.
        usage_only: bool,
    },
    /// The dialect's end-of-stream signal (`[DONE]`, `message_stop`, `response.completed`).
    Done {
        /// Usage carried by the terminal event itself (Responses), if any.
        usage: Option<Usage>,
    },
    /// An in-band error.
    Error(ErrorBody),
    /// Data that is not JSON, or JSON that is not an event of this dialect.
    Malformed,
}

/// Reads a token count: a non-negative integer (some compatible servers send `12.0`).
#[must_use]
pub fn token_count(value: Option<&Value>) -> Option<u64> {
    let value = value?;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            // Truncation is intended: a fractional token count has no meaning.
            .map(|f| f as u64)
    })
}

/// The JSON object an untyped stream event carries (OpenAI chat, Gemini), or what the event is
/// instead: an `event: error` event, or data that is an error object (an array whose first
/// element is one included), is [`StreamEvent::Error`]; data that is not JSON, or JSON that is
/// not an object, is [`StreamEvent::Malformed`]. `data` is the event's trimmed data.
pub(crate) fn untyped_event_object(ev: &SseEvent, data: &str) -> Result<Value, StreamEvent> {
    if ev.event.as_deref() == Some("error") {
        return Err(StreamEvent::Error(parse_error_body(data.as_bytes())));
    }
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        return Err(StreamEvent::Malformed);
    };
    if is_error_object(&value) {
        return Err(StreamEvent::Error(error_body_from_json(
            &value,
            data.as_bytes(),
        )));
    }
    if !value.is_object() {
        return Err(StreamEvent::Malformed);
    }
    Ok(value)
}
