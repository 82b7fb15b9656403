//! Error-body parsing for every provider shape (spec §4.3): whatever an upstream or a proxy in
//! front of it returned, pull out the error type, the human message and a machine reason, so the
//! classifier in `switchyard-core` can decide without knowing who sent it.
//!
//! Invariants: never panics on any input (arbitrary bytes, invalid UTF-8, deep or odd JSON);
//! `raw` is always the first [`RAW_CHARS`] characters of the body (cut on a character boundary,
//! invalid UTF-8 replaced); `message` is never longer than [`RAW_CHARS`] characters.
//!
//! Shapes understood (the first that yields a field wins, innermost proxy layer first):
//! - `{"error":{"message","type","code","param"}}` (OpenAI and most compatible servers);
//! - `{"type":"error","error":{"type","message"}}` (Anthropic);
//! - `{"error":{"code":400,"message","status":"INVALID_ARGUMENT","details":[{"reason"}]}}`
//!   (Gemini; `status` becomes the type, an `ErrorInfo` reason beats the numeric code), also
//!   wrapped in a one-element array as Gemini's non-SSE stream endpoints send it;
//! - `{"__type","message"|"Message"}` (AWS), `{"errorMessage","errorType"}` (Lambda);
//! - `{"error":"text"}`, `{"message","reason"}`, `{"object":"error","message","type","code"}`
//!   (vLLM), `{"detail":"text"}` (FastAPI proxies), `{"code","msg"}` (many relays);
//! - a message that is itself JSON (a proxy quoting its upstream's body): the inner body's
//!   message, type and reason win over the wrapper's, because they come from the real source;
//! - anything else: the message is the body's text, trimmed, at most [`TEXT_MESSAGE_CHARS`].

use serde_json::{Map, Value};
use switchyard_core::outcome::ErrorBody;

/// How many characters of the raw body are kept in [`ErrorBody::raw`].
pub const RAW_CHARS: usize = 1000;

/// How many characters of a non-JSON body (or a JSON body without any message) become the
/// message.
pub const TEXT_MESSAGE_CHARS: usize = 500;

/// How many layers of JSON-inside-a-message are unwrapped. Real proxies add one or two; the
/// bound keeps a hostile body from making us re-parse the same bytes many times.
const MAX_NESTING: u8 = 4;

/// A UTF-8 character is at most 4 bytes, so this many bytes always hold `n` whole characters
/// (a character cut at the end of the window lies beyond the first `n`).
const fn bytes_for_chars(n: usize) -> usize {
    n * 4
}

/// Parses an error body of any known shape. Never fails: an unknown shape still yields the text.
#[must_use]
pub fn parse_error_body(raw: &[u8]) -> ErrorBody {
    match serde_json::from_slice::<Value>(raw) {
        Ok(value) => error_body_from_json(&value, raw),
        Err(_) => ErrorBody {
            error_type: None,
            message: text_message(raw),
            reason: None,
            raw: raw_prefix(raw),
        },
    }
}

/// Like [`parse_error_body`] for a body the caller has already parsed (a stream event or a 2xx
/// body found to be an error object), so the JSON is not parsed twice. `raw` is the same body's
/// bytes, used for [`ErrorBody::raw`] and as the message when the JSON carries none.
#[must_use]
pub fn error_body_from_json(value: &Value, raw: &[u8]) -> ErrorBody {
    let fields = Fields::read(value, 0);
    let message = match fields.message.as_deref().map(str::trim) {
        Some(message) if !message.is_empty() => truncate_chars(message, RAW_CHARS).to_owned(),
        _ => text_message(raw),
    };
    ErrorBody {
        error_type: fields.error_type,
        message,
        reason: fields.reason,
        raw: raw_prefix(raw),
    }
}

/// What one layer of a body says; `None` means "this layer does not say".
#[derive(Debug, Default)]
struct Fields {
    error_type: Option<String>,
    message: Option<String>,
    reason: Option<String>,
}

impl Fields {
    fn read(value: &Value, depth: u8) -> Self {
        let value = match value {
            // Gemini's non-SSE streaming endpoints answer with a JSON array of responses.
            Value::Array(items) => match items.first() {
                Some(first) => first,
                None => return Self::default(),
            },
            other => other,
        };
        let object = match value {
            Value::Object(object) => object,
            Value::String(_) => {
                let mut fields = Self::default();
                fields.take_message(value, depth);
                return fields;
            }
            _ => return Self::default(),
        };

        let mut fields = Self::default();
        let mut message: Option<&Value> = None;
        match object.get("error") {
            Some(Value::Object(error)) => {
                fields.error_type = text(error, "type")
                    .or_else(|| text(error, "__type"))
                    .or_else(|| text(error, "status"));
                fields.reason = text(error, "reason")
                    .or_else(|| details_reason(error))
                    .or_else(|| text_or_number(error, "code"));
                message = present(error, "message");
            }
            Some(text @ Value::String(_)) => message = Some(text),
            _ => {}
        }

        // Top-level fields fill what the `error` object did not say.
        fields.error_type = fields
            .error_type
            .or_else(|| text(object, "__type"))
            .or_else(|| text(object, "errorType"))
            // `"type":"error"` (Anthropic) marks the envelope; the real type is inside.
            .or_else(|| text(object, "type").filter(|t| t != "error"));
        fields.reason = fields
            .reason
            .or_else(|| text(object, "reason"))
            .or_else(|| text_or_number(object, "code"));
        let message = message
            .or_else(|| present(object, "message"))
            .or_else(|| present(object, "Message"))
            .or_else(|| present(object, "errorMessage"))
            .or_else(|| present(object, "detail"))
            .or_else(|| present(object, "msg"));
        if let Some(message) = message {
            fields.take_message(message, depth);
        }
        fields
    }

    /// Sets the message from `value`, unwrapping a JSON body quoted inside it.
    fn take_message(&mut self, value: &Value, depth: u8) {
        match value {
            Value::String(message) => {
                let trimmed = message.trim_start();
                if depth < MAX_NESTING
                    && (trimmed.starts_with('{') || trimmed.starts_with('['))
                    && let Ok(inner @ (Value::Object(_) | Value::Array(_))) =
                        serde_json::from_str::<Value>(trimmed)
                {
                    self.absorb(Self::read(&inner, depth + 1), Some(message));
                    return;
                }
                self.message = Some(message.clone());
            }
            Value::Object(_) | Value::Array(_) if depth < MAX_NESTING => {
                self.absorb(Self::read(value, depth + 1), None);
            }
            Value::Null => {}
            other => self.message = Some(other.to_string()),
        }
    }

    /// Takes an inner (quoted) layer: its fields win, ours fill the gaps.
    fn absorb(&mut self, inner: Self, original: Option<&String>) {
        self.message = inner.message.or_else(|| original.cloned());
        self.error_type = inner.error_type.or(self.error_type.take());
        self.reason = inner.reason.or(self.reason.take());
    }
}

/// A present, non-null field.
fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

/// A non-empty string field.
fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A string or numeric field (error codes come both ways: `"rate_limit_exceeded"`, `429`).
fn text_or_number(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key) {
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => text(object, key),
    }
}

/// Gemini puts the machine-readable reason (`API_KEY_INVALID`, `RATE_LIMIT_EXCEEDED`) in an
/// `ErrorInfo` entry of `details`; it says far more than the numeric `code`.
fn details_reason(error: &Map<String, Value>) -> Option<String> {
    error
        .get("details")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find_map(|detail| text(detail, "reason"))
}

/// The first [`RAW_CHARS`] characters of the body, invalid UTF-8 replaced.
fn raw_prefix(raw: &[u8]) -> String {
    let window = &raw[..raw.len().min(bytes_for_chars(RAW_CHARS))];
    truncate_chars(&String::from_utf8_lossy(window), RAW_CHARS).to_owned()
}

/// The body as a message: leading whitespace skipped, at most [`TEXT_MESSAGE_CHARS`]
/// characters, trimmed.
fn text_message(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(raw.len());
    let rest = &raw[start..];
    let window = &rest[..rest.len().min(bytes_for_chars(TEXT_MESSAGE_CHARS))];
    let decoded = String::from_utf8_lossy(window);
    truncate_chars(decoded.trim(), TEXT_MESSAGE_CHARS)
        .trim_end()
        .to_owned()
}

/// The first `max` characters of `text`.
fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parsed(raw: &str) -> (Option<String>, String, Option<String>) {
        let body = parse_error_body(raw.as_bytes());
        assert_eq!(body.raw, raw.chars().take(RAW_CHARS).collect::<String>());
        (body.error_type, body.message, body.reason)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn openai() {
        let raw = r#"{
  "error": {
    "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens. Please reduce the length of the messages.",
    "type": "invalid_request_error",
    "param": "messages",
    "code": "context_length_exceeded"
  }
}"#;
        let (t, m, r) = parsed(raw);
        assert_eq!(t, some("invalid_request_error"));
        assert!(m.starts_with("This model's maximum context length is 128000 tokens."));
        assert_eq!(r, some("context_length_exceeded"));
    }

    #[test]
    fn openai_with_null_code() {
        let raw = r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29000, Requested 1500.","type":"tokens","param":null,"code":null}}"#;
        let (t, m, r) = parsed(raw);
        assert_eq!(t, some("tokens"));
        assert!(m.starts_with("Rate limit reached"));
        assert_eq!(r, None);
    }

    #[test]
    fn anthropic() {
        let raw = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
        assert_eq!(
            parsed(raw),
            (some("overloaded_error"), "Overloaded".into(), None)
        );
    }

    #[test]
    fn gemini_status_becomes_type_and_error_info_reason_wins() {
        let raw = r#"{
  "error": {
    "code": 400,
    "message": "API key not valid. Please pass a valid API key.",
    "status": "INVALID_ARGUMENT",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"}
      }
    ]
  }
}"#;
        assert_eq!(
            parsed(raw),
            (
                some("INVALID_ARGUMENT"),
                "API key not valid. Please pass a valid API key.".into(),
                some("API_KEY_INVALID")
            )
        );
    }

    #[test]
    fn gemini_without_details_uses_numeric_code() {
        let raw = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#;
        let (t, _, r) = parsed(raw);
        assert_eq!((t, r), (some("RESOURCE_EXHAUSTED"), some("429")));
    }

    #[test]
    fn gemini_array_wrapped() {
        let raw = r#"[{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}]"#;
        assert_eq!(
            parsed(raw),
            (
                some("UNAVAILABLE"),
                "The model is overloaded. Please try again later.".into(),
                some("503")
            )
        );
    }

    #[test]
    fn aws() {
        let raw = r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"messages.1.content: Input should be a valid list"}"#;
        assert_eq!(
            parsed(raw),
            (
                some("com.amazon.coral.validate#ValidationException"),
                "messages.1.content: Input should be a valid list".into(),
                None
            )
        );
        let (t, m, _) = parsed(r#"{"__type":"ThrottlingException","Message":"Too many requests"}"#);
        assert_eq!(
            (t, m),
            (some("ThrottlingException"), "Too many requests".into())
        );
    }

    #[test]
    fn error_as_plain_text() {
        assert_eq!(
            parsed(r#"{"error":"Invalid API key provided"}"#),
            (None, "Invalid API key provided".into(), None)
        );
    }

    #[test]
    fn lambda_error_message() {
        assert_eq!(
            parsed(
                r#"{"errorMessage":"Task timed out after 30.03 seconds","errorType":"Sandbox.Timedout"}"#
            ),
            (
                some("Sandbox.Timedout"),
                "Task timed out after 30.03 seconds".into(),
                None
            )
        );
    }

    #[test]
    fn message_and_reason() {
        assert_eq!(
            parsed(r#"{"message":"prompt is too long","reason":"CONTEXT_LENGTH_EXCEEDED"}"#),
            (
                None,
                "prompt is too long".into(),
                some("CONTEXT_LENGTH_EXCEEDED")
            )
        );
    }

    #[test]
    fn top_level_reason_and_code_are_fallback_reasons() {
        let (_, m, r) =
            parsed(r#"{"error":{"message":"quota exceeded"},"reason":"INSUFFICIENT_QUOTA"}"#);
        assert_eq!(
            (m.as_str(), r),
            ("quota exceeded", some("INSUFFICIENT_QUOTA"))
        );
        let (_, _, r) = parsed(r#"{"error":{"message":"x"},"code":"upstream_busy"}"#);
        assert_eq!(r, some("upstream_busy"));
        // The error object's own reason beats the top-level one.
        let (_, _, r) = parsed(r#"{"error":{"message":"x","code":"inner"},"code":"outer"}"#);
        assert_eq!(r, some("inner"));
    }

    #[test]
    fn vllm_fastapi_and_relay_shapes() {
        assert_eq!(
            parsed(
                r#"{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}"#
            ),
            (
                some("BadRequestError"),
                "This model's maximum context length is 4096 tokens.".into(),
                some("400")
            )
        );
        assert_eq!(parsed(r#"{"detail":"Not Found"}"#).1, "Not Found");
        assert_eq!(
            parsed(r#"{"code":1113,"msg":"Insufficient balance"}"#),
            (None, "Insufficient balance".into(), some("1113"))
        );
    }

    #[test]
    fn proxy_quoting_an_aws_body_in_message() {
        let raw = r#"{"error":{"message":"{\"__type\":\"ValidationException\",\"message\":\"Input is too long for requested model.\",\"reason\":\"INPUT_TOO_LONG\"}","type":"upstream_error","code":"bad_response_status_code"}}"#;
        assert_eq!(
            parsed(raw),
            (
                some("ValidationException"),
                "Input is too long for requested model.".into(),
                some("INPUT_TOO_LONG")
            )
        );
    }

    #[test]
    fn proxy_quoting_an_openai_body_keeps_wrapper_fields_it_lacks() {
        let raw = r#"{"error":{"message":"{\"error\":{\"message\":\"Incorrect API key provided: sk-abc***\"}}","type":"upstream_error","code":"401"}}"#;
        assert_eq!(
            parsed(raw),
            (
                some("upstream_error"),
                "Incorrect API key provided: sk-abc***".into(),
                some("401")
            )
        );
        let (_, m, _) = parsed(r#"{"error":{"message":"{\"message\":\"inner text\"}"}}"#);
        assert_eq!(m, "inner text");
    }

    #[test]
    fn message_that_merely_looks_like_json_is_kept() {
        let (_, m, _) = parsed(r#"{"error":{"message":"{not json at all","type":"x"}}"#);
        assert_eq!(m, "{not json at all");
    }

    #[test]
    fn json_without_any_message_falls_back_to_the_text() {
        let raw = r#"{"error":{"code":"E42"}}"#;
        assert_eq!(parsed(raw), (None, raw.into(), some("E42")));
    }

    #[test]
    fn non_json_is_trimmed_and_limited_to_500_chars() {
        let (t, m, r) = parsed(
            "  \n upstream connect error or disconnect/reset before headers. reset reason: overflow \n",
        );
        assert_eq!((t, r), (None, None));
        assert_eq!(
            m,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow"
        );

        let long: String = "\u{e9}".repeat(1500);
        let body = parse_error_body(long.as_bytes());
        assert_eq!(body.message.chars().count(), TEXT_MESSAGE_CHARS);
        assert_eq!(body.raw.chars().count(), RAW_CHARS);
        assert!(body.raw.chars().all(|c| c == '\u{e9}'));
    }

    #[test]
    fn html_page_is_text() {
        let raw = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
        let body = parse_error_body(raw.as_bytes());
        assert!(body.message.starts_with("<html>"));
        assert!(body.message.ends_with("</html>"));
        assert_eq!(body.error_type, None);
    }

    #[test]
    fn raw_is_cut_on_a_char_boundary_of_the_original() {
        let mut raw = r#"{"error":{"message":"x"},"pad":""#.to_owned();
        raw.push_str(&"\u{1F600}".repeat(2000));
        raw.push_str("\"}");
        let body = parse_error_body(raw.as_bytes());
        assert_eq!(body.message, "x");
        assert_eq!(body.raw, raw.chars().take(RAW_CHARS).collect::<String>());
    }

    #[test]
    fn long_json_message_is_capped() {
        let raw = format!(r#"{{"error":{{"message":"{}"}}}}"#, "a".repeat(5000));
        assert_eq!(parse_error_body(raw.as_bytes()).message.len(), RAW_CHARS);
    }

    #[test]
    fn empty_body() {
        assert_eq!(parse_error_body(b""), ErrorBody::default());
    }

    #[test]
    fn deep_nesting_is_bounded() {
        // Each layer quotes the previous one; beyond MAX_NESTING the string is kept as is.
        let mut body = r#"{"message":"core"}"#.to_owned();
        for _ in 0..10 {
            body = serde_json::json!({ "error": { "message": body } }).to_string();
        }
        let parsed = parse_error_body(body.as_bytes());
        assert!(parsed.message.starts_with('{'), "{}", parsed.message);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let body = parse_error_body(&bytes);
            prop_assert!(body.raw.chars().count() <= RAW_CHARS);
            prop_assert!(body.message.chars().count() <= RAW_CHARS);
        }

        #[test]
        fn never_panics_on_json_like_text(text in r#"[\[\]{}":,a-z0-9 \\\u{e9}]{0,200}"#) {
            let _ = parse_error_body(text.as_bytes());
            let wrapped = serde_json::json!({ "error": { "message": text } }).to_string();
            let _ = parse_error_body(wrapped.as_bytes());
        }

        #[test]
        fn openai_shape_round_trips(
            message in "[^\\s{\\[][^\\n]{0,80}",
            kind in "[a-z_]{1,20}",
            code in "[a-z_]{1,20}",
        ) {
            let raw = serde_json::json!({ "error": { "message": message, "type": kind, "code": code, "param": null } }).to_string();
            let body = parse_error_body(raw.as_bytes());
            prop_assert_eq!(body.message, message.trim());
            prop_assert_eq!(body.error_type, Some(kind));
            prop_assert_eq!(body.reason, Some(code));
        }
    }
}
