//! Behaviour injection: the [`Behaviour`] type, its [`Fault`]s, and the two
//! textual forms a behaviour travels in (JSON, or the compact
//! `status=503,retry_after=2` form used in `/_b/<spec>/` path prefixes).
//!
//! Which behaviour a request gets (rules, header, path prefix) is decided in
//! `server.rs`; this module only knows how to parse and print one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What one request should suffer. Every field is optional; an empty
/// behaviour means "answer normally". See the crate documentation for the
/// meaning of each field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Delay before the response head is written (also before a fault).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Delay between the response head and the first body byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_byte_ms: Option<u64>,
    /// Answer with this HTTP status and the route's error envelope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Error message for `status`, `error_in_200` and `stream_error_event`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Error type: OpenAI `error.type`, Anthropic `error.type`, Gemini
    /// `error.status`. Also accepted as `type`.
    #[serde(alias = "type", skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// OpenAI `error.code` (e.g. `context_length_exceeded`). Also accepted
    /// as `code`. Anthropic and Gemini envelopes have no string code.
    #[serde(alias = "code", skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// OpenAI `error.param` (e.g. `temperature` for an unsupported parameter).
    #[serde(alias = "param", skip_serializing_if = "Option::is_none")]
    pub error_param: Option<String>,
    /// `Retry-After` header, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Send `Retry-After` as an HTTP date (now + `retry_after`) instead of
    /// a number of seconds.
    #[serde(skip_serializing_if = "is_false")]
    pub retry_after_date: bool,
    /// Rate-limit header: request limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit_limit: Option<u64>,
    /// Rate-limit header: requests remaining.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit_remaining: Option<u64>,
    /// Rate-limit header: seconds until the limit resets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit_reset: Option<u64>,
    /// A transport or stream fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// For stream faults: how many events are sent before the fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_events: Option<u64>,
    /// Delay between stream events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_interval_ms: Option<u64>,
    /// Prompt tokens reported as read from the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_tokens: Option<u64>,
    /// Prompt tokens reported as written to the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_tokens: Option<u64>,
    /// Reasoning ("thinking") tokens reported in the usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Replace the reply text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_text: Option<String>,
    /// Only meaningful in a rule: apply to the next N matching requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A transport-level or stream-level fault. Serialized in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Close with a TCP RST (`SO_LINGER` 0) before any byte.
    Reset,
    /// Close cleanly (FIN) before any byte.
    Close,
    /// Never answer; keep the socket open until the client goes away.
    Hang,
    /// A `text/html` page (status 200 unless `status` is set).
    Html,
    /// Status 200 whose JSON body is the route's error envelope. (Renamed
    /// because serde's snake_case would spell it `error_in200`.)
    #[serde(rename = "error_in_200")]
    ErrorIn200,
    /// Send `after_events` events, then close without the end of the body.
    StreamCut,
    /// Send `after_events` events, then send nothing more, forever.
    StreamStall,
    /// Send `after_events` events, then one garbage non-JSON event, then go on.
    StreamMalformed,
    /// A complete stream without its final end marker.
    StreamNoDone,
    /// An error event in the route's dialect at position `after_events`,
    /// then the body ends.
    StreamErrorEvent,
}

impl Behaviour {
    /// The behaviour that changes nothing (usable in `const` context).
    pub const NONE: Behaviour = Behaviour {
        latency_ms: None,
        first_byte_ms: None,
        status: None,
        message: None,
        error_type: None,
        error_code: None,
        error_param: None,
        retry_after: None,
        retry_after_date: false,
        ratelimit_limit: None,
        ratelimit_remaining: None,
        ratelimit_reset: None,
        fault: None,
        after_events: None,
        event_interval_ms: None,
        cache_read_tokens: None,
        cache_creation_tokens: None,
        reasoning_tokens: None,
        output_text: None,
        times: None,
    };

    /// Parse a behaviour from JSON (`{"status":503}`, possibly
    /// percent-encoded) or from the compact form `status=503,retry_after=2`
    /// whose keys and values may each be percent-encoded.
    ///
    /// # Errors
    /// A readable message when the text is neither form or names an
    /// unknown field.
    pub fn parse(spec: &str) -> Result<Behaviour, String> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Ok(Behaviour::default());
        }
        let decoded = percent_decode(spec)?;
        if decoded.trim_start().starts_with('{') {
            return serde_json::from_str(&decoded).map_err(|e| e.to_string());
        }
        // Compact form: split on the raw separators first so that `%2C` and
        // `%3D` can appear inside values (e.g. a message with a comma).
        let mut map = Map::new();
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = match part.split_once('=') {
                Some((k, v)) => (percent_decode(k.trim())?, Some(percent_decode(v)?)),
                None => (percent_decode(part.trim())?, None),
            };
            let value = match v {
                // A bare flag such as `retry_after_date` means `true`.
                None => Value::Bool(true),
                Some(v) if STRING_FIELDS.contains(&k.as_str()) => Value::String(v),
                Some(v) => match serde_json::from_str::<Value>(&v) {
                    Ok(n @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => n,
                    _ => Value::String(v),
                },
            };
            map.insert(k, value);
        }
        serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())
    }

    /// This behaviour as JSON, for the `x-mock-behaviour` request header.
    pub fn to_header_value(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// This behaviour as a percent-encoded JSON path segment, for
    /// `http://host/_b/<segment>/v1/...`.
    pub fn to_path_segment(&self) -> String {
        percent_encode(&self.to_header_value())
    }

    /// Whether a stream fault is set.
    pub(crate) fn stream_fault(&self) -> Option<Fault> {
        self.fault.filter(|f| {
            matches!(
                f,
                Fault::StreamCut
                    | Fault::StreamStall
                    | Fault::StreamMalformed
                    | Fault::StreamNoDone
                    | Fault::StreamErrorEvent
            )
        })
    }
}

/// Fields whose compact-form values stay strings even when they look like
/// numbers (`output_text=42`).
const STRING_FIELDS: &[&str] = &[
    "message",
    "error_type",
    "type",
    "error_code",
    "code",
    "error_param",
    "param",
    "output_text",
    "fault",
];

/// Decode `%XX` escapes. `+` is left alone: this decodes path segments and
/// header values, not form bodies.
pub(crate) fn percent_decode(s: &str) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-decoded text is not UTF-8".to_owned())
}

/// Encode every byte outside the RFC 3986 unreserved set.
pub(crate) fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_form_parses_numbers_strings_and_flags() {
        let b = Behaviour::parse("status=500,retry_after=2,retry_after_date,message=Too%20busy%2C%20sorry,output_text=42").unwrap();
        assert_eq!(b.status, Some(500));
        assert_eq!(b.retry_after, Some(2));
        assert!(b.retry_after_date);
        assert_eq!(b.message.as_deref(), Some("Too busy, sorry"));
        assert_eq!(b.output_text.as_deref(), Some("42"));
    }

    #[test]
    fn json_and_encoded_json_parse() {
        let b = Behaviour {
            fault: Some(Fault::StreamCut),
            after_events: Some(3),
            message: Some("a/b c,d".into()),
            ..Behaviour::default()
        };
        assert_eq!(Behaviour::parse(&b.to_header_value()).unwrap(), b);
        assert_eq!(Behaviour::parse(&b.to_path_segment()).unwrap(), b);
        assert!(!b.to_path_segment().contains('/'));
    }

    #[test]
    fn every_fault_name_parses() {
        for name in [
            "reset",
            "close",
            "hang",
            "html",
            "error_in_200",
            "stream_cut",
            "stream_stall",
            "stream_malformed",
            "stream_no_done",
            "stream_error_event",
        ] {
            let b = Behaviour::parse(&format!("fault={name}")).unwrap();
            let back = serde_json::to_value(b.fault.unwrap()).unwrap();
            assert_eq!(back, name);
        }
    }

    #[test]
    fn aliases_and_unknown_fields() {
        let b =
            Behaviour::parse("status=400,type=invalid_request_error,code=context_length_exceeded")
                .unwrap();
        assert_eq!(b.error_type.as_deref(), Some("invalid_request_error"));
        assert_eq!(b.error_code.as_deref(), Some("context_length_exceeded"));
        assert!(Behaviour::parse("statuss=500").is_err());
        assert!(Behaviour::parse("fault=explode").is_err());
        assert!(Behaviour::parse("status=%zz").is_err());
    }
}
