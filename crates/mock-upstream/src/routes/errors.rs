//! Error envelopes in each provider's own shape, with realistic default
//! types and messages per status, overridable from a [`Behaviour`].

use serde_json::{Value, json};

use super::{Dialect, Reply};
use crate::behaviour::Behaviour;

/// An error to render in a route's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
    pub error_type: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            error_type: None,
            code: None,
            param: None,
        }
    }

    /// The error a behaviour asks for, at `status`.
    pub(crate) fn from_behaviour(b: &Behaviour, status: u16, dialect: Dialect) -> Self {
        ApiError {
            status,
            message: b
                .message
                .clone()
                .unwrap_or_else(|| default_message(dialect, status).to_owned()),
            error_type: b.error_type.clone(),
            code: b.error_code.clone(),
            param: b.error_param.clone(),
        }
    }

    /// The error a stream fault injects: the behaviour's error status when
    /// it has one, else 500.
    pub(crate) fn for_stream(b: &Behaviour, dialect: Dialect) -> Self {
        let status = b.status.filter(|s| *s >= 400).unwrap_or(500);
        Self::from_behaviour(b, status, dialect)
    }

    /// The envelope as a JSON value.
    pub(crate) fn envelope(&self, dialect: Dialect) -> Value {
        match dialect {
            Dialect::OpenAi => {
                let (ty, code) = openai_defaults(self.status);
                json!({"error": {
                    "message": self.message,
                    "type": self.error_type.as_deref().unwrap_or(ty),
                    "param": self.param,
                    "code": self.code.as_deref().or(code),
                }})
            }
            Dialect::Anthropic => json!({
                "type": "error",
                "error": {
                    "type": self.error_type.as_deref().unwrap_or(anthropic_type(self.status)),
                    "message": self.message,
                },
                "request_id": crate::ids::id("req_011C", 20),
            }),
            Dialect::Gemini => json!({"error": {
                "code": self.status,
                "message": self.message,
                "status": self.error_type.as_deref().unwrap_or(gemini_status(self.status)),
            }}),
        }
    }

    /// The OpenAI `type` this error carries (used by the Responses stream
    /// `error` event, whose fields are flat).
    pub(crate) fn openai_type(&self) -> &str {
        self.error_type
            .as_deref()
            .unwrap_or(openai_defaults(self.status).0)
    }

    /// The OpenAI `code`, explicit or default.
    pub(crate) fn openai_code(&self) -> Option<&str> {
        self.code.as_deref().or(openai_defaults(self.status).1)
    }

    /// A complete JSON reply at this error's status.
    pub(crate) fn reply(&self, dialect: Dialect) -> Reply {
        Reply::json(self.status, &self.envelope(dialect))
    }
}

fn openai_defaults(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => (
            "invalid_request_error",
            Some("unsupported_country_region_territory"),
        ),
        404 => ("invalid_request_error", None),
        429 => ("requests", Some("rate_limit_exceeded")),
        s if s >= 500 => ("server_error", None),
        _ => ("invalid_request_error", None),
    }
}

fn anthropic_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

fn gemini_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

fn default_message(dialect: Dialect, status: u16) -> &'static str {
    match (dialect, status) {
        (Dialect::OpenAi, 401) => "Incorrect API key provided.",
        (Dialect::OpenAi, 404) => "The model does not exist or you do not have access to it.",
        (Dialect::OpenAi, 429) => "Rate limit reached for requests. Please try again later.",
        (Dialect::OpenAi, 503) => "The engine is currently overloaded, please try again later.",
        (Dialect::OpenAi, s) if s >= 500 => {
            "The server had an error while processing your request. Sorry about that!"
        }
        (Dialect::Anthropic, 401) => "invalid x-api-key",
        (Dialect::Anthropic, 404) => "model: not found",
        (Dialect::Anthropic, 429) => {
            "This request would exceed the rate limit for your organization. Please try again later."
        }
        (Dialect::Anthropic, 529) => "Overloaded",
        (Dialect::Anthropic, s) if s >= 500 => "Internal server error",
        (Dialect::Gemini, 401) => "API key not valid. Please pass a valid API key.",
        (Dialect::Gemini, 404) => "models/unknown is not found for API version v1beta.",
        (Dialect::Gemini, 429) => "Resource has been exhausted (e.g. check quota).",
        (Dialect::Gemini, 503) => "The model is overloaded. Please try again later.",
        (Dialect::Gemini, s) if s >= 500 => "An internal error has occurred.",
        _ => "Invalid request.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_follow_each_provider() {
        let e = ApiError::new(429, "slow down");
        assert_eq!(
            e.envelope(Dialect::OpenAi),
            json!({"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
        );
        let a = e.envelope(Dialect::Anthropic);
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "rate_limit_error");
        assert_eq!(
            e.envelope(Dialect::Gemini),
            json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}})
        );
    }
}
