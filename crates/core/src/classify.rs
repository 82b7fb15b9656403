//! The outcome classifier: one pure table from an [`UpstreamOutcome`] to what the orchestrator
//! does next, what the key's health learns from it and whether cache affinity survives it.
//!
//! Invariants:
//! - The same table serves streamed and non-streamed answers (fix of spec §11.1 #2): both paths
//!   normalise into an [`UpstreamOutcome`] first.
//! - A 429 is never a health failure (fix of §11.1 #11): it drives a cool-down, not the breaker.
//! - A body is a *client error* (stop, hand the upstream status to the client) only when it names
//!   the request as the problem. Provider-key problems (`invalid_api_key`, Gemini's
//!   `API_KEY_INVALID`, Anthropic's "credit balance is too low") are checked first and always fail
//!   over, and compatibility problems ("unsupported parameter", …) win over client-error patterns,
//!   because another provider may accept the same request.
//!
//! This module matches strings on purpose and is the only place that does: everything after it
//! decides from [`Classification`] fields.

use crate::outcome::{ErrorBody, UpstreamOutcome};

/// What the orchestrator does after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The attempt succeeded: relay it; nothing else to try.
    Done,
    /// A transient upstream fault: the same key may be retried (with back-off) if it has retries
    /// left, then the next candidate.
    RetrySame,
    /// Go to the next candidate at once; retrying this key would give the same answer.
    NextCandidate,
    /// The key is rate limited: put it in a cool-down and go to the next candidate.
    RateLimited,
    /// The request itself is at fault: stop and give the client the upstream's answer.
    Stop,
    /// The client went away: stop without an answer.
    Abort,
}

/// What the key's circuit breaker learns from an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthEffect {
    /// Counts as a success in the breaker window.
    Success,
    /// Counts as a failure in the breaker window.
    Failure,
    /// Says nothing about the key's health (a half-open probe slot is simply given back).
    Neutral,
}

/// A low-cardinality label of an outcome, for candidate records and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// A usable answer.
    Success,
    /// No connection (refused, reset, DNS, TLS) before a response head.
    Connect,
    /// No response head in time.
    HeaderTimeout,
    /// A stream head but no first event in time.
    FirstByteTimeout,
    /// A 5xx (including 529).
    ServerError,
    /// A 429.
    RateLimited,
    /// A key problem: 401, 402, 403, or a body naming the key (invalid key, billing, quota).
    Auth,
    /// The request is at fault; the client gets the upstream status.
    ClientError,
    /// This provider or model does not support something the request uses.
    Unsupported,
    /// A 404 (model or path unknown to this provider).
    NotFound,
    /// A 2xx whose body is an error object.
    ErrorInBody,
    /// An HTML page instead of JSON or SSE.
    Html,
    /// A 2xx body that does not parse.
    Malformed,
    /// The client went away.
    ClientGone,
    /// Any other 4xx (408, 409, 410, an unmatched 400, …).
    #[serde(rename = "other_4xx")]
    Other4xx,
    /// A status outside 400–599 where an error was expected (a redirect, a 1xx, a 6xx).
    UnexpectedStatus,
}

impl OutcomeKind {
    /// Every kind, so that metrics can pre-register one series per label.
    pub const ALL: [OutcomeKind; 16] = [
        OutcomeKind::Success,
        OutcomeKind::Connect,
        OutcomeKind::HeaderTimeout,
        OutcomeKind::FirstByteTimeout,
        OutcomeKind::ServerError,
        OutcomeKind::RateLimited,
        OutcomeKind::Auth,
        OutcomeKind::ClientError,
        OutcomeKind::Unsupported,
        OutcomeKind::NotFound,
        OutcomeKind::ErrorInBody,
        OutcomeKind::Html,
        OutcomeKind::Malformed,
        OutcomeKind::ClientGone,
        OutcomeKind::Other4xx,
        OutcomeKind::UnexpectedStatus,
    ];

    /// The label as written to records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Success => "success",
            OutcomeKind::Connect => "connect",
            OutcomeKind::HeaderTimeout => "header_timeout",
            OutcomeKind::FirstByteTimeout => "first_byte_timeout",
            OutcomeKind::ServerError => "server_error",
            OutcomeKind::RateLimited => "rate_limited",
            OutcomeKind::Auth => "auth",
            OutcomeKind::ClientError => "client_error",
            OutcomeKind::Unsupported => "unsupported",
            OutcomeKind::NotFound => "not_found",
            OutcomeKind::ErrorInBody => "error_in_body",
            OutcomeKind::Html => "html",
            OutcomeKind::Malformed => "malformed",
            OutcomeKind::ClientGone => "client_gone",
            OutcomeKind::Other4xx => "other_4xx",
            OutcomeKind::UnexpectedStatus => "unexpected_status",
        }
    }
}

impl std::fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The classifier's answer for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// What to do next.
    pub verdict: Verdict,
    /// What the key's health learns.
    pub health: HealthEffect,
    /// Whether the client's cache-affinity entry for this key must be dropped.
    pub invalidate_affinity: bool,
    /// Low-cardinality label for records and metrics.
    pub kind: OutcomeKind,
    /// For [`Verdict::Stop`]: the status to give the client (the upstream's, or 400 for an error
    /// inside a 2xx body). `None` for every other verdict.
    pub client_status: Option<u16>,
}

/// Substrings (matched case-insensitively in the message and the raw body) that mean the
/// *provider key* is the problem: wrong, expired, out of credit or blocked. They are checked before
/// every other pattern so that such a body is never taken for a client error (several providers
/// answer these with 400 and an `invalid_request_error` / `INVALID_ARGUMENT` type): another key or
/// provider can serve the request, so the gateway must fail over.
pub const PROVIDER_KEY_PATTERNS: &[&str] = &[
    "invalid_api_key",
    "api_key_invalid",
    "api key not valid",
    "api key expired",
    "api_key_expired",
    "incorrect api key",
    "invalid api key",
    "invalid x-api-key",
    "authentication_error",
    "permission_denied",
    "insufficient_quota",
    "billing_not_active",
    "credit balance is too low",
    "account is not active",
    "organization has been disabled",
];

/// Compatibility patterns (spec §4.3 step 3), matched case-insensitively in the message and the
/// raw body. The request is fine but this provider or model cannot serve it, so the next
/// candidate may. They win over [`CLIENT_ERROR_MESSAGE_PATTERNS`] and the client-error types,
/// because such bodies often also carry `invalid_request_error`.
pub const COMPATIBILITY_PATTERNS: &[&str] = &[
    "unsupported parameter",
    "unsupported model",
    "unsupported feature",
    "not supported with this model",
    "model does not support",
    "parameter is not supported",
    "feature is not supported",
    "not available for this model",
];

/// Error types (spec §4.3 step 4; `error.type`, `__type` or Gemini `status`) that, contained
/// case-insensitively, mark the request as invalid.
pub const CLIENT_ERROR_TYPES: &[&str] = &[
    "invalid_request_error",
    "invalid_argument",
    "failed_precondition",
    "validationexception",
    "validation_error",
    "bad_request",
];

/// Reasons or codes (spec §4.3 step 4; compared upper-cased) that mark the request as invalid.
pub const CLIENT_ERROR_REASONS: &[&str] = &[
    "CONTENT_LENGTH_EXCEEDS_THRESHOLD",
    "CONTEXT_LENGTH_EXCEEDED",
    "MAX_TOKENS_EXCEEDED",
    "INVALID_CONTENT",
    "CONTENT_POLICY_VIOLATION",
];

/// Phrases (spec §4.3 step 4; matched case-insensitively in the message and the raw body) that
/// mark the request as invalid: too long, a bad image or file, a policy refusal, a broken tool
/// exchange. Every provider would refuse it the same way.
pub const CLIENT_ERROR_MESSAGE_PATTERNS: &[&str] = &[
    "could not process image",
    "image too large",
    "invalid image",
    "unsupported image",
    "content_policy_violation",
    "context_length_exceeded",
    "content_length_limit",
    "content_length_exceeds",
    "invalid_prompt",
    "content too long",
    "input is too long",
    "message is too long",
    "prompt is too long",
    "image exceeds",
    "pdf too large",
    "file too large",
    "tool_use_id",
    "validationexception",
];

/// What an error body says about whose fault it is, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFault {
    /// The provider key (checked first: must always fail over).
    ProviderKey,
    /// This provider or model cannot serve the request (wins over client error).
    Compatibility,
    /// The request itself.
    Client,
    /// Nothing recognisable.
    Unknown,
}

/// Classifies one attempt's outcome. See the module documentation for the rules.
pub fn classify(outcome: &UpstreamOutcome) -> Classification {
    match outcome {
        UpstreamOutcome::Success => Classification {
            verdict: Verdict::Done,
            health: HealthEffect::Success,
            invalidate_affinity: false,
            kind: OutcomeKind::Success,
            client_status: None,
        },
        UpstreamOutcome::ConnectFailed => transient(OutcomeKind::Connect),
        UpstreamOutcome::HtmlBody => transient(OutcomeKind::Html),
        UpstreamOutcome::MalformedBody => transient(OutcomeKind::Malformed),
        // A silent route is not retried: the same key would very likely stay silent again and
        // the client has already waited a whole timeout.
        UpstreamOutcome::HeaderTimeout => {
            failover(OutcomeKind::HeaderTimeout, HealthEffect::Failure)
        }
        UpstreamOutcome::FirstByteTimeout => {
            failover(OutcomeKind::FirstByteTimeout, HealthEffect::Failure)
        }
        UpstreamOutcome::ErrorInBody { body } => match body_fault(body) {
            BodyFault::ProviderKey => failover(OutcomeKind::Auth, HealthEffect::Failure),
            BodyFault::Compatibility => failover(OutcomeKind::Unsupported, HealthEffect::Neutral),
            // The upstream said 2xx; giving that to the client with an error would be wrong.
            BodyFault::Client => stop(400),
            BodyFault::Unknown => transient(OutcomeKind::ErrorInBody),
        },
        UpstreamOutcome::Http { status, body, .. } => classify_status(*status, body),
        UpstreamOutcome::ClientGone => Classification {
            verdict: Verdict::Abort,
            health: HealthEffect::Neutral,
            invalidate_affinity: false,
            kind: OutcomeKind::ClientGone,
            client_status: None,
        },
    }
}

/// The HTTP-status rows of the table.
fn classify_status(status: u16, body: &ErrorBody) -> Classification {
    match status {
        429 => Classification {
            verdict: Verdict::RateLimited,
            health: HealthEffect::Neutral,
            invalidate_affinity: true,
            kind: OutcomeKind::RateLimited,
            client_status: None,
        },
        401..=403 => failover(OutcomeKind::Auth, HealthEffect::Failure),
        // The route (model name, path) does not exist here; that is configuration, not health.
        404 => failover(OutcomeKind::NotFound, HealthEffect::Neutral),
        400 | 413 | 422 => match body_fault(body) {
            BodyFault::ProviderKey => failover(OutcomeKind::Auth, HealthEffect::Failure),
            BodyFault::Compatibility => failover(OutcomeKind::Unsupported, HealthEffect::Neutral),
            BodyFault::Client => stop(status),
            // Unrecognised: another provider may accept it, and a bad request says nothing
            // about this key's health.
            BodyFault::Unknown => failover(OutcomeKind::Other4xx, HealthEffect::Neutral),
        },
        400..=499 => failover(OutcomeKind::Other4xx, HealthEffect::Failure),
        500..=599 => transient(OutcomeKind::ServerError),
        // Not an error status at all (a redirect, a 1xx, a 6xx): retrying the same key gives the
        // same answer, and the key is misbehaving.
        _ => failover(OutcomeKind::UnexpectedStatus, HealthEffect::Failure),
    }
}

/// A transient upstream fault: retry the same key if allowed.
fn transient(kind: OutcomeKind) -> Classification {
    Classification {
        verdict: Verdict::RetrySame,
        health: HealthEffect::Failure,
        invalidate_affinity: true,
        kind,
        client_status: None,
    }
}

/// Go to the next candidate at once.
fn failover(kind: OutcomeKind, health: HealthEffect) -> Classification {
    Classification {
        verdict: Verdict::NextCandidate,
        health,
        invalidate_affinity: true,
        kind,
        client_status: None,
    }
}

/// The request is at fault: stop. The key did nothing wrong, so health and affinity stay.
fn stop(status: u16) -> Classification {
    Classification {
        verdict: Verdict::Stop,
        health: HealthEffect::Neutral,
        invalidate_affinity: false,
        kind: OutcomeKind::ClientError,
        client_status: Some(status),
    }
}

/// Runs the body checks in their precedence order: provider key, compatibility, client error.
fn body_fault(body: &ErrorBody) -> BodyFault {
    // One lower-cased haystack of everything a phrase may hide in. Type and reason are included
    // so that a code such as `invalid_api_key` is seen even when the message is bland.
    let text = format!(
        "{}\n{}\n{}\n{}",
        body.message,
        body.raw,
        body.error_type.as_deref().unwrap_or_default(),
        body.reason.as_deref().unwrap_or_default()
    )
    .to_lowercase();
    let contains_any = |patterns: &[&str]| patterns.iter().any(|p| text.contains(p));
    if contains_any(PROVIDER_KEY_PATTERNS) {
        return BodyFault::ProviderKey;
    }
    if contains_any(COMPATIBILITY_PATTERNS) {
        return BodyFault::Compatibility;
    }
    let type_matches = body.error_type.as_deref().is_some_and(|t| {
        let t = t.to_lowercase();
        CLIENT_ERROR_TYPES.iter().any(|p| t.contains(p))
    });
    let reason_matches = body.reason.as_deref().is_some_and(|r| {
        let r = r.to_uppercase();
        CLIENT_ERROR_REASONS.iter().any(|p| r.contains(p))
    });
    if type_matches || reason_matches || contains_any(CLIENT_ERROR_MESSAGE_PATTERNS) {
        return BodyFault::Client;
    }
    BodyFault::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::RateLimitHeaders;
    use std::time::Duration;

    fn body(error_type: Option<&str>, message: &str, reason: Option<&str>, raw: &str) -> ErrorBody {
        ErrorBody {
            error_type: error_type.map(str::to_owned),
            message: message.to_owned(),
            reason: reason.map(str::to_owned),
            raw: raw.to_owned(),
        }
    }

    fn http(status: u16, body: ErrorBody) -> UpstreamOutcome {
        UpstreamOutcome::Http {
            status,
            body,
            retry_after: None,
            rate_limit: RateLimitHeaders::default(),
        }
    }

    fn expect(
        c: Classification,
        verdict: Verdict,
        health: HealthEffect,
        invalidate: bool,
        kind: OutcomeKind,
    ) {
        assert_eq!(c.verdict, verdict, "verdict of {c:?}");
        assert_eq!(c.health, health, "health of {c:?}");
        assert_eq!(c.invalidate_affinity, invalidate, "affinity of {c:?}");
        assert_eq!(c.kind, kind, "kind of {c:?}");
    }

    // ---- Realistic upstream bodies, as the parser would fill them in. ----

    fn openai_context_length() -> ErrorBody {
        body(
            Some("invalid_request_error"),
            "This model's maximum context length is 8192 tokens. However, your messages resulted in 9100 tokens. Please reduce the length of the messages.",
            Some("context_length_exceeded"),
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9100 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        )
    }

    fn openai_unsupported_parameter() -> ErrorBody {
        body(
            Some("invalid_request_error"),
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
            Some("unsupported_parameter"),
            r#"{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}"#,
        )
    }

    fn openai_invalid_key() -> ErrorBody {
        body(
            Some("invalid_request_error"),
            "Incorrect API key provided: sk-abc***. You can find your API key at https://platform.openai.com/account/api-keys.",
            Some("invalid_api_key"),
            r#"{"error":{"message":"Incorrect API key provided: sk-abc***. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        )
    }

    fn openai_model_not_found() -> ErrorBody {
        body(
            Some("invalid_request_error"),
            "The model `gpt-9` does not exist or you do not have access to it.",
            Some("model_not_found"),
            r#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
        )
    }

    fn openai_rate_limit() -> ErrorBody {
        body(
            Some("requests"),
            "Rate limit reached for gpt-4o in organization org-x on requests per min (RPM): Limit 500, Used 500, Requested 1.",
            Some("rate_limit_exceeded"),
            r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on requests per min (RPM): Limit 500, Used 500, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        )
    }

    fn anthropic_prompt_too_long() -> ErrorBody {
        body(
            Some("invalid_request_error"),
            "prompt is too long: 215000 tokens > 200000 maximum",
            None,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 215000 tokens > 200000 maximum"}}"#,
        )
    }

    fn anthropic_tool_use_id() -> ErrorBody {
        body(
            Some("invalid_request_error"),
            "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
            None,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."}}"#,
        )
    }

    fn anthropic_credit_too_low() -> ErrorBody {
        body(
            Some("invalid_request_error"),
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
            None,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#,
        )
    }

    fn anthropic_auth() -> ErrorBody {
        body(
            Some("authentication_error"),
            "invalid x-api-key",
            None,
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        )
    }

    fn anthropic_overloaded() -> ErrorBody {
        body(
            Some("overloaded_error"),
            "Overloaded",
            None,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
    }

    fn anthropic_model_no_thinking() -> ErrorBody {
        body(
            Some("invalid_request_error"),
            "This model does not support extended thinking; model does not support `thinking`.",
            None,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"This model does not support extended thinking; model does not support `thinking`."}}"#,
        )
    }

    fn gemini_invalid_argument() -> ErrorBody {
        body(
            Some("INVALID_ARGUMENT"),
            "Request contains an invalid argument.",
            None,
            r#"{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT"}}"#,
        )
    }

    fn gemini_invalid_key() -> ErrorBody {
        body(
            Some("INVALID_ARGUMENT"),
            "API key not valid. Please pass a valid API key.",
            Some("API_KEY_INVALID"),
            r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#,
        )
    }

    fn gemini_permission_denied() -> ErrorBody {
        body(
            Some("PERMISSION_DENIED"),
            "Permission denied: Consumer 'api_key:AIza' has been suspended.",
            None,
            r#"{"error":{"code":403,"message":"Permission denied: Consumer 'api_key:AIza' has been suspended.","status":"PERMISSION_DENIED"}}"#,
        )
    }

    fn bedrock_validation() -> ErrorBody {
        body(
            Some("ValidationException"),
            "Input is too long for requested model.",
            None,
            r#"{"__type":"ValidationException","message":"Input is too long for requested model."}"#,
        )
    }

    fn gemini_safety_reason() -> ErrorBody {
        body(
            None,
            "The request was blocked.",
            Some("content_policy_violation"),
            r#"{"error":{"message":"The request was blocked.","reason":"content_policy_violation"}}"#,
        )
    }

    fn plain_text(text: &str) -> ErrorBody {
        body(None, text, None, text)
    }

    // ---- One test per table row. ----

    #[test]
    fn success_is_done_and_keeps_affinity() {
        let c = classify(&UpstreamOutcome::Success);
        expect(
            c,
            Verdict::Done,
            HealthEffect::Success,
            false,
            OutcomeKind::Success,
        );
        assert_eq!(c.client_status, None);
    }

    #[test]
    fn transport_and_server_faults_retry_the_same_key() {
        let cases = [
            (UpstreamOutcome::ConnectFailed, OutcomeKind::Connect),
            (
                http(500, plain_text("Internal Server Error")),
                OutcomeKind::ServerError,
            ),
            (
                http(502, plain_text("Bad Gateway")),
                OutcomeKind::ServerError,
            ),
            (
                http(503, plain_text("Service Unavailable")),
                OutcomeKind::ServerError,
            ),
            (
                http(504, plain_text("Gateway Timeout")),
                OutcomeKind::ServerError,
            ),
            (http(529, anthropic_overloaded()), OutcomeKind::ServerError),
            (
                http(507, plain_text("Insufficient Storage")),
                OutcomeKind::ServerError,
            ),
            // A 5xx body with a client-error phrase is still the server's fault.
            (
                http(500, anthropic_prompt_too_long()),
                OutcomeKind::ServerError,
            ),
            (UpstreamOutcome::HtmlBody, OutcomeKind::Html),
            (UpstreamOutcome::MalformedBody, OutcomeKind::Malformed),
            (
                UpstreamOutcome::ErrorInBody {
                    body: anthropic_overloaded(),
                },
                OutcomeKind::ErrorInBody,
            ),
        ];
        for (outcome, kind) in cases {
            let c = classify(&outcome);
            expect(c, Verdict::RetrySame, HealthEffect::Failure, true, kind);
            assert_eq!(c.client_status, None);
        }
    }

    #[test]
    fn error_in_a_2xx_body_that_blames_the_request_stops_with_400() {
        let c = classify(&UpstreamOutcome::ErrorInBody {
            body: openai_context_length(),
        });
        expect(
            c,
            Verdict::Stop,
            HealthEffect::Neutral,
            false,
            OutcomeKind::ClientError,
        );
        assert_eq!(c.client_status, Some(400));
    }

    #[test]
    fn error_in_a_2xx_body_naming_the_key_or_an_unsupported_feature_fails_over() {
        let key = classify(&UpstreamOutcome::ErrorInBody {
            body: openai_invalid_key(),
        });
        expect(
            key,
            Verdict::NextCandidate,
            HealthEffect::Failure,
            true,
            OutcomeKind::Auth,
        );
        let compat = classify(&UpstreamOutcome::ErrorInBody {
            body: openai_unsupported_parameter(),
        });
        expect(
            compat,
            Verdict::NextCandidate,
            HealthEffect::Neutral,
            true,
            OutcomeKind::Unsupported,
        );
    }

    #[test]
    fn silent_routes_and_408_go_to_the_next_candidate() {
        expect(
            classify(&UpstreamOutcome::HeaderTimeout),
            Verdict::NextCandidate,
            HealthEffect::Failure,
            true,
            OutcomeKind::HeaderTimeout,
        );
        expect(
            classify(&UpstreamOutcome::FirstByteTimeout),
            Verdict::NextCandidate,
            HealthEffect::Failure,
            true,
            OutcomeKind::FirstByteTimeout,
        );
        expect(
            classify(&http(408, plain_text("Request Timeout"))),
            Verdict::NextCandidate,
            HealthEffect::Failure,
            true,
            OutcomeKind::Other4xx,
        );
    }

    #[test]
    fn rate_limit_is_not_a_health_failure() {
        let outcome = UpstreamOutcome::Http {
            status: 429,
            body: openai_rate_limit(),
            retry_after: Some(Duration::from_secs(20)),
            rate_limit: RateLimitHeaders {
                limit: Some(500),
                remaining: Some(0),
                reset: Some(Duration::from_secs(20)),
            },
        };
        let c = classify(&outcome);
        expect(
            c,
            Verdict::RateLimited,
            HealthEffect::Neutral,
            true,
            OutcomeKind::RateLimited,
        );
        // Even a 429 whose body mentions a client-error phrase stays a rate limit.
        let c = classify(&http(429, anthropic_prompt_too_long()));
        assert_eq!(c.verdict, Verdict::RateLimited);
    }

    #[test]
    fn auth_statuses_fail_over_and_count_as_failures() {
        for (status, b) in [
            (401, openai_invalid_key()),
            (401, anthropic_auth()),
            (402, plain_text("Payment Required")),
            (403, gemini_permission_denied()),
        ] {
            expect(
                classify(&http(status, b)),
                Verdict::NextCandidate,
                HealthEffect::Failure,
                true,
                OutcomeKind::Auth,
            );
        }
    }

    #[test]
    fn client_errors_stop_with_the_upstream_status() {
        let cases = [
            (400, openai_context_length()),
            (400, anthropic_prompt_too_long()),
            (400, anthropic_tool_use_id()),
            (400, gemini_invalid_argument()),
            (400, bedrock_validation()),
            (400, gemini_safety_reason()),
            (
                413,
                plain_text("Request too large: image exceeds 5 MB maximum"),
            ),
            (
                422,
                body(
                    Some("validation_error"),
                    "messages: field required",
                    None,
                    "",
                ),
            ),
            (400, body(None, "bad", Some("MAX_TOKENS_EXCEEDED"), "")),
            (400, body(Some("Bad_Request"), "nope", None, "")),
        ];
        for (status, b) in cases {
            let c = classify(&http(status, b.clone()));
            expect(
                c,
                Verdict::Stop,
                HealthEffect::Neutral,
                false,
                OutcomeKind::ClientError,
            );
            assert_eq!(c.client_status, Some(status), "for {b:?}");
        }
    }

    #[test]
    fn compatibility_patterns_win_over_client_error_patterns() {
        for (status, b) in [
            (400, openai_unsupported_parameter()),
            (400, anthropic_model_no_thinking()),
            (
                422,
                body(
                    Some("invalid_request_error"),
                    "Parameter is not supported: prompt is too long for tools",
                    None,
                    "",
                ),
            ),
            (
                400,
                plain_text("The feature is not supported by this deployment: response_format"),
            ),
        ] {
            expect(
                classify(&http(status, b)),
                Verdict::NextCandidate,
                HealthEffect::Neutral,
                true,
                OutcomeKind::Unsupported,
            );
        }
    }

    #[test]
    fn not_found_fails_over_without_a_health_effect() {
        expect(
            classify(&http(404, openai_model_not_found())),
            Verdict::NextCandidate,
            HealthEffect::Neutral,
            true,
            OutcomeKind::NotFound,
        );
    }

    #[test]
    fn unmatched_400_413_422_fail_over_without_a_health_effect() {
        for status in [400, 413, 422] {
            expect(
                classify(&http(status, plain_text("something odd happened"))),
                Verdict::NextCandidate,
                HealthEffect::Neutral,
                true,
                OutcomeKind::Other4xx,
            );
        }
    }

    #[test]
    fn provider_key_problems_are_never_client_errors() {
        // These carry `invalid_request_error` / `INVALID_ARGUMENT`, which alone would stop.
        for (status, b) in [
            (400, openai_invalid_key()),
            (400, gemini_invalid_key()),
            (400, anthropic_credit_too_low()),
            (
                400,
                body(
                    Some("insufficient_quota"),
                    "You exceeded your current quota.",
                    None,
                    "",
                ),
            ),
        ] {
            let c = classify(&http(status, b.clone()));
            assert_ne!(c.verdict, Verdict::Stop, "{b:?}");
            expect(
                c,
                Verdict::NextCandidate,
                HealthEffect::Failure,
                true,
                OutcomeKind::Auth,
            );
        }
    }

    #[test]
    fn other_4xx_fail_over_and_count_as_failures() {
        for status in [405, 409, 410, 418, 451] {
            expect(
                classify(&http(status, plain_text("Conflict"))),
                Verdict::NextCandidate,
                HealthEffect::Failure,
                true,
                OutcomeKind::Other4xx,
            );
        }
    }

    #[test]
    fn statuses_outside_4xx_5xx_fail_over() {
        for status in [101, 200, 302, 600] {
            expect(
                classify(&http(status, plain_text(""))),
                Verdict::NextCandidate,
                HealthEffect::Failure,
                true,
                OutcomeKind::UnexpectedStatus,
            );
        }
    }

    #[test]
    fn client_gone_aborts_and_keeps_affinity() {
        expect(
            classify(&UpstreamOutcome::ClientGone),
            Verdict::Abort,
            HealthEffect::Neutral,
            false,
            OutcomeKind::ClientGone,
        );
    }

    #[test]
    fn labels_are_unique_snake_case() {
        let labels: std::collections::HashSet<_> =
            OutcomeKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels.len(), OutcomeKind::ALL.len());
        assert!(labels.contains("other_4xx"));
        for k in OutcomeKind::ALL {
            assert_eq!(
                serde_json::to_value(k).expect("serialises"),
                serde_json::Value::String(k.as_str().to_owned())
            );
        }
    }

    #[test]
    fn only_stop_carries_a_client_status() {
        let outcomes = [
            UpstreamOutcome::Success,
            UpstreamOutcome::ConnectFailed,
            UpstreamOutcome::HeaderTimeout,
            http(400, openai_context_length()),
            http(400, openai_unsupported_parameter()),
            http(429, openai_rate_limit()),
            http(503, plain_text("")),
            UpstreamOutcome::ClientGone,
        ];
        for o in outcomes {
            let c = classify(&o);
            assert_eq!(
                c.verdict == Verdict::Stop,
                c.client_status.is_some(),
                "{o:?}"
            );
        }
    }
}
