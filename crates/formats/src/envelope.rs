//! Errors in each client dialect's own envelope and status conventions, as HTTP bodies and as
//! in-band stream events after a stream was committed.
//!
//! - OpenAI (chat and Responses): `{"error":{"message","type","param","code"}}`.
//! - Anthropic: `{"type":"error","error":{"type","message"}}`, the type derived from the status.
//! - Gemini: `{"error":{"code","message","status"}}`, the status a google.rpc code name.
//!
//! The gateway decides status, OpenAI `type` and `code` once; each dialect renders them.

use crate::dialect::Dialect;
use crate::sse;
use bytes::Bytes;
use serde_json::{Value, json};

/// One error the gateway answers with.
#[derive(Debug, Clone, Copy)]
pub struct GatewayError<'a> {
    /// HTTP status.
    pub status: u16,
    /// OpenAI `error.type` (`invalid_request_error`, `rate_limit_error`…).
    pub error_type: &'a str,
    /// Stable machine-readable code (`model_not_found`, `quota_exceeded`…).
    pub code: &'a str,
    /// Human message (never a secret).
    pub message: &'a str,
    /// The field at fault, if any (OpenAI `param`).
    pub param: Option<&'a str>,
}

/// The error body for a client of `dialect`.
#[must_use]
pub fn error_body(dialect: Dialect, error: &GatewayError<'_>) -> Value {
    match dialect {
        Dialect::Chat | Dialect::Responses => json!({
            "error": {
                "message": error.message,
                "type": error.error_type,
                "param": error.param,
                "code": error.code,
            }
        }),
        Dialect::Messages => json!({
            "type": "error",
            "error": {"type": anthropic_type(error.status), "message": error.message},
        }),
        Dialect::Gemini => json!({
            "error": {
                "code": error.status,
                "message": error.message,
                "status": google_status(error.status),
            }
        }),
    }
}

/// The in-band event that ends a committed stream with an error, in `dialect`'s way: an
/// `error` event for Anthropic and Responses, a `data:` error object for OpenAI chat and Gemini
/// (their SDKs raise on it).
#[must_use]
pub fn stream_error_event(dialect: Dialect, error: &GatewayError<'_>) -> Bytes {
    match dialect {
        Dialect::Chat | Dialect::Gemini => {
            sse::encode(None, &error_body(dialect, error).to_string())
        }
        Dialect::Messages => sse::encode(Some("error"), &error_body(dialect, error).to_string()),
        Dialect::Responses => sse::encode(
            Some("error"),
            &json!({
                "type": "error",
                "code": error.code,
                "message": error.message,
                "param": error.param,
                "sequence_number": 0,
            })
            .to_string(),
        ),
    }
}

/// Anthropic's `error.type` for an HTTP status.
fn anthropic_type(status: u16) -> &'static str {
    match status {
        400 | 408 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The google.rpc status name Gemini reports for an HTTP status.
fn google_status(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        402 => "FAILED_PRECONDITION",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 | 529 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;

    const LIMITED: GatewayError<'static> = GatewayError {
        status: 429,
        error_type: "rate_limit_error",
        code: "rate_limited",
        message: "every candidate is cooling down",
        param: None,
    };

    #[test]
    fn each_dialect_has_its_envelope() {
        assert_eq!(
            error_body(Dialect::Chat, &LIMITED),
            json!({"error": {"message": "every candidate is cooling down", "type": "rate_limit_error", "param": null, "code": "rate_limited"}})
        );
        assert_eq!(
            error_body(Dialect::Messages, &LIMITED),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "every candidate is cooling down"}})
        );
        assert_eq!(
            error_body(Dialect::Gemini, &LIMITED),
            json!({"error": {"code": 429, "message": "every candidate is cooling down", "status": "RESOURCE_EXHAUSTED"}})
        );
        let not_found = GatewayError {
            status: 404,
            ..LIMITED
        };
        assert_eq!(
            error_body(Dialect::Messages, &not_found)["error"]["type"],
            "not_found_error"
        );
        assert_eq!(
            error_body(Dialect::Gemini, &not_found)["error"]["status"],
            "NOT_FOUND"
        );
    }

    #[test]
    fn stream_errors_are_events_each_sdk_raises_on() {
        let parse = |bytes: Bytes| {
            let mut events = SseParser::new().push(&bytes);
            assert_eq!(events.len(), 1);
            let event = events.remove(0);
            let data: Value = serde_json::from_str(&event.data).expect("json");
            (event.event, data)
        };
        let (name, data) = parse(stream_error_event(Dialect::Chat, &LIMITED));
        assert_eq!(name, None);
        assert_eq!(data["error"]["code"], "rate_limited");
        let (name, data) = parse(stream_error_event(Dialect::Messages, &LIMITED));
        assert_eq!(name.as_deref(), Some("error"));
        assert_eq!(data["error"]["type"], "rate_limit_error");
        let (name, data) = parse(stream_error_event(Dialect::Responses, &LIMITED));
        assert_eq!(name.as_deref(), Some("error"));
        assert_eq!(data["type"], "error");
        assert_eq!(data["message"], "every candidate is cooling down");
        let (name, data) = parse(stream_error_event(Dialect::Gemini, &LIMITED));
        assert_eq!(name, None);
        assert_eq!(data["error"]["status"], "RESOURCE_EXHAUSTED");
    }

    #[test]
    fn each_dialect_reads_its_own_stream_error_back_as_an_error() {
        let broken = GatewayError {
            status: 502,
            message: "line one\nline two",
            ..LIMITED
        };
        for dialect in Dialect::ALL {
            let bytes = stream_error_event(dialect, &broken);
            // One event: the newline in the message is escaped by JSON, not a new `data:` line.
            let text = std::str::from_utf8(&bytes).expect("UTF-8");
            assert_eq!(text.matches("data: ").count(), 1, "{dialect}: {text}");
            let events = SseParser::new().push(&bytes);
            assert_eq!(events.len(), 1, "{dialect}");
            match crate::convert::classify_stream_event(dialect, &events[0]) {
                crate::StreamEvent::Error(body) => {
                    assert_eq!(body.message, "line one\nline two", "{dialect}");
                }
                other => panic!("{dialect}: expected an error, got {other:?}"),
            }
        }
    }
}
