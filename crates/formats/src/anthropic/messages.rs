//! The Anthropic Messages front door (`POST /v1/messages`): request validation, usage extraction
//! and stream-event classification. The body sent upstream and error output are shared by every
//! dialect (`crate::convert`, `crate::envelope`).
//!
//! Invariants:
//! - The client's body is kept whole and forwarded untouched except for `model` (the upstream's
//!   name for the model). Unlike OpenAI chat nothing has to be forced on for accounting:
//!   Anthropic streams always report usage (`message_start`, then `message_delta`).
//! - Validation is deliberately shallow: only what the gateway relies on (model, stream flag) or
//!   what would make every upstream fail (no messages, no `max_tokens`, which Anthropic requires)
//!   is checked. Everything else is the upstream's business, so new parameters pass through
//!   without a gateway release.
//! - [`Usage`] coming out of here is normalised, which for Anthropic needs no arithmetic: its
//!   `input_tokens` already excludes cache reads and writes, and `output_tokens` already includes
//!   thinking. Cache writes are read from the per-TTL breakdown when it says something, else from
//!   the flat count (they agree on Anthropic itself; relays fill one or the other).
//! - Stream events are recognised by the data's `type` (what the SDK's models discriminate on),
//!   falling back to the `event:` name; unknown types are ordinary chunks, so new event kinds
//!   do not break a stream.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::body::is_error_object;
use crate::dialect::{ClientRequest, Dialect, token_count};
pub use crate::dialect::{RequestError, StreamEvent};
use crate::error_body::{error_body_from_json, parse_error_body};
use crate::request_body::RequestBody;
use crate::sse::SseEvent;
use crate::usage::Usage;
use crate::validate::{messages_with_roles, optional_body_bool, required_string};

/// A validated Messages request.
pub type MessagesRequest = ClientRequest;

/// Parses and validates a Messages request body.
///
/// `max_tokens` may be 0: Anthropic documents it as the way to warm the prompt cache without
/// generating anything.
///
/// # Errors
/// A [`RequestError`] naming the first field that is wrong; for a body that is not JSON the
/// field is empty and the message is the parser's (with line and column).
pub fn parse_request(raw: impl Into<Bytes>) -> Result<MessagesRequest, RequestError> {
    let body = RequestBody::parse(raw.into())?;
    let model = required_string(&body, "model")?;
    messages_with_roles(&body)?;
    match body.raw("max_tokens") {
        None | Some("null") => return Err(RequestError::new("max_tokens", "is required")),
        Some(text) if serde_json::from_str::<Value>(text).is_ok_and(|n| n.is_u64()) => {}
        Some(_) => {
            return Err(RequestError::new(
                "max_tokens",
                "must be a non-negative integer",
            ));
        }
    }
    // The SDKs never send a null `stream`, but compatible clients do; it means "absent".
    let stream = optional_body_bool(&body, "stream", "stream")?.unwrap_or(false);
    Ok(MessagesRequest {
        dialect: Dialect::Messages,
        model,
        stream,
        include_usage: false,
        body,
    })
}

/// Extracts normalised usage from a Messages response (its `usage` object). Also fits the
/// `message_delta` stream event (usage at the top level) and, given `event["message"]`, the
/// `message_start` event. `None` when there is no usage object or it holds no token count.
#[must_use]
pub fn usage_from_response(body: &Value) -> Option<Usage> {
    usage_from_usage_object(body.get("usage")?)
}

/// Normalised usage from an Anthropic `usage` object itself (see [`usage_from_response`]).
/// `None` when it is not an object or reports none of the four token counts.
///
/// - `input_tokens`, `output_tokens`, `cache_read_input_tokens` are taken as they are: the
///   counts are already additive (input excludes the cache, output includes thinking).
/// - Cache writes: the sum of `cache_creation.ephemeral_5m_input_tokens` and
///   `ephemeral_1h_input_tokens` when that breakdown is non-zero; else the flat fields some
///   relays use (`claude_cache_creation_5_m_tokens` + `claude_cache_creation_1_h_tokens`); else
///   `cache_creation_input_tokens`. A zero breakdown next to a non-zero flat count (seen from
///   compatible servers that fill the breakdown with zeros) must not erase the count.
/// - `output_tokens_details.thinking_tokens` becomes `reasoning_tokens` (informational).
#[must_use]
pub fn usage_from_usage_object(usage: &Value) -> Option<Usage> {
    let usage = usage.as_object()?;
    let input = token_count(usage.get("input_tokens"));
    let output = token_count(usage.get("output_tokens"));
    let cache_read = token_count(usage.get("cache_read_input_tokens"));
    let cache_creation = cache_creation_tokens(usage);
    if input.is_none() && output.is_none() && cache_read.is_none() && cache_creation.is_none() {
        return None;
    }
    let reasoning = token_count(
        usage
            .get("output_tokens_details")
            .and_then(|d| d.get("thinking_tokens")),
    );
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
        cache_read_tokens: cache_read.unwrap_or(0),
        cache_creation_tokens: cache_creation.unwrap_or(0),
        reasoning_tokens: reasoning.unwrap_or(0),
    })
}

/// Cache writes, from the most detailed source that reports a non-zero count (see
/// [`usage_from_usage_object`]); `None` when no source reports anything at all.
fn cache_creation_tokens(usage: &Map<String, Value>) -> Option<u64> {
    let sum =
        |five: Option<&Value>, hour: Option<&Value>| match (token_count(five), token_count(hour)) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        };
    let nested = usage.get("cache_creation").and_then(|c| {
        sum(
            c.get("ephemeral_5m_input_tokens"),
            c.get("ephemeral_1h_input_tokens"),
        )
    });
    let relay_flat = sum(
        usage.get("claude_cache_creation_5_m_tokens"),
        usage.get("claude_cache_creation_1_h_tokens"),
    );
    let flat = token_count(usage.get("cache_creation_input_tokens"));
    let sources = [nested, relay_flat, flat];
    sources
        .iter()
        .flatten()
        .copied()
        .find(|n| *n != 0)
        .or_else(|| sources.iter().flatten().copied().next())
}

/// Classifies one SSE event of a Messages stream.
///
/// `message_start` and `message_delta` carry usage (merge them with [`Usage::merge_stream`]:
/// the second refines the first); `message_delta` with a `stop_reason` finishes the answer;
/// `message_stop` ends the stream; `content_block_*` events are output; `ping` and event types
/// this version does not know are empty chunks.
#[must_use]
pub fn classify_stream_event(ev: &SseEvent) -> StreamEvent {
    let data = ev.data.trim();
    if ev.event.as_deref() == Some("error") {
        return StreamEvent::Error(parse_error_body(data.as_bytes()));
    }
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        return StreamEvent::Malformed;
    };
    if !value.is_object() {
        return StreamEvent::Malformed;
    }
    if is_error_object(&value) {
        return StreamEvent::Error(error_body_from_json(&value, data.as_bytes()));
    }
    let Some(kind) = value
        .get("type")
        .and_then(Value::as_str)
        .or(ev.event.as_deref())
    else {
        return StreamEvent::Malformed;
    };
    match kind {
        "message_start" => chunk(
            value.get("message").and_then(usage_from_response),
            false,
            false,
        ),
        "content_block_start" | "content_block_delta" | "content_block_stop" => {
            chunk(None, false, true)
        }
        "message_delta" => {
            let finished = value
                .get("delta")
                .and_then(|d| d.get("stop_reason"))
                .is_some_and(|reason| match reason {
                    Value::Null => false,
                    Value::String(reason) => !reason.is_empty(),
                    _ => true,
                });
            chunk(usage_from_response(&value), finished, false)
        }
        "message_stop" => StreamEvent::Done { usage: None },
        // `ping` and anything newer than this code: nothing the gateway needs.
        _ => chunk(None, false, false),
    }
}

fn chunk(usage: Option<Usage>, finished: bool, content: bool) -> StreamEvent {
    StreamEvent::Chunk {
        usage,
        finished,
        content,
        usage_only: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;
    use crate::test_support::{data_event, err, rejection};
    use serde_json::json;

    fn request_error(raw: &str) -> (String, String) {
        rejection(parse_request(raw.to_owned()))
    }

    const VALID: &str = r#"{
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}
        ],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "thinking": {"type": "enabled", "budget_tokens": 512},
        "x_vendor_flag": {"deep": [1, 2, 3]}
    }"#;

    #[test]
    fn valid_request_keeps_the_whole_body() {
        let req = parse_request(VALID.as_bytes()).expect("valid");
        assert_eq!(req.dialect, Dialect::Messages);
        assert_eq!(req.model, "claude-sonnet-4-5");
        assert!(!req.stream);
        assert!(!req.include_usage);
        assert_eq!(
            req.body.to_map().expect("a tree")["x_vendor_flag"],
            json!({"deep": [1, 2, 3]})
        );
        // Shallow: a budget Anthropic would refuse (< 1024) is the upstream's to judge.
        assert_eq!(
            req.body.to_map().expect("a tree")["thinking"]["budget_tokens"],
            json!(512)
        );
        assert_eq!(req.body.len(), 7);
    }

    #[test]
    fn stream_flag() {
        let base = r#""model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]"#;
        let parse = |extra: &str| parse_request(format!("{{{base}{extra}}}"));
        assert!(parse(r#","stream":true"#).expect("valid").stream);
        assert!(!parse(r#","stream":false"#).expect("valid").stream);
        assert!(!parse(r#","stream":null"#).expect("null is absent").stream);
        assert!(!parse("").expect("absent").stream);
        // Cache warming: Anthropic accepts a zero budget.
        let warm = parse_request(r#"{"model":"m","max_tokens":0,"messages":[{"role":"user"}]}"#);
        assert!(warm.is_ok());
    }

    #[test]
    fn each_failing_field() {
        let cases = [
            ("", err("", "EOF while parsing a value at line 1 column 0")),
            (
                "{\"model\": \"m\",\n \"messages\": [}",
                err("", "expected value at line 2 column 15"),
            ),
            ("[1]", err("", "the request body must be a JSON object")),
            (
                r#"{"max_tokens":1,"messages":[{"role":"user"}]}"#,
                err("model", "is required"),
            ),
            (
                r#"{"model":null,"max_tokens":1,"messages":[{"role":"user"}]}"#,
                err("model", "is required"),
            ),
            (
                r#"{"model":" ","max_tokens":1,"messages":[{"role":"user"}]}"#,
                err("model", "must not be empty"),
            ),
            (
                r#"{"model":["m"],"max_tokens":1,"messages":[{"role":"user"}]}"#,
                err("model", "must be a string"),
            ),
            (
                r#"{"model":"m","max_tokens":1}"#,
                err("messages", "is required"),
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":"hi"}"#,
                err("messages", "must be an array"),
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":[]}"#,
                err("messages", "must not be empty"),
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":[{"role":"user"},null]}"#,
                err("messages[1]", "must be an object"),
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":[{"role":"user"},{"content":"x"}]}"#,
                err("messages[1].role", "is required"),
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":[{"role":{"name":"user"}}]}"#,
                err("messages[0].role", "must be a string"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}]}"#,
                err("max_tokens", "is required"),
            ),
            (
                r#"{"model":"m","max_tokens":null,"messages":[{"role":"user"}]}"#,
                err("max_tokens", "is required"),
            ),
            (
                r#"{"model":"m","max_tokens":-5,"messages":[{"role":"user"}]}"#,
                err("max_tokens", "must be a non-negative integer"),
            ),
            (
                r#"{"model":"m","max_tokens":1.5,"messages":[{"role":"user"}]}"#,
                err("max_tokens", "must be a non-negative integer"),
            ),
            (
                r#"{"model":"m","max_tokens":"1024","messages":[{"role":"user"}]}"#,
                err("max_tokens", "must be a non-negative integer"),
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":[{"role":"user"}],"stream":"yes"}"#,
                err("stream", "must be a boolean"),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(request_error(raw), expected, "{raw}");
        }
    }

    #[test]
    fn usage_with_nested_cache_creation_and_cache_read() {
        let response = json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": "Hi"}],
            "model": "claude-sonnet-4-5-20250929",
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 12,
                "cache_creation_input_tokens": 2051,
                "cache_read_input_tokens": 30_412,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 51,
                    "ephemeral_1h_input_tokens": 2000
                },
                "output_tokens": 407,
                "output_tokens_details": {"thinking_tokens": 350},
                "service_tier": "standard"
            }
        });
        assert_eq!(
            usage_from_response(&response),
            Some(Usage {
                input_tokens: 12,
                output_tokens: 407,
                cache_read_tokens: 30_412,
                cache_creation_tokens: 2051,
                reasoning_tokens: 350,
            })
        );
    }

    #[test]
    fn usage_with_flat_cache_creation_only() {
        let usage = json!({"usage": {"input_tokens": 3, "cache_creation_input_tokens": 1800,
            "cache_read_input_tokens": 0, "output_tokens": 9}});
        assert_eq!(
            usage_from_response(&usage),
            Some(Usage {
                input_tokens: 3,
                output_tokens: 9,
                cache_creation_tokens: 1800,
                ..Usage::default()
            })
        );
        // A breakdown of zeros next to a real flat count: the count wins.
        let zeros = json!({"input_tokens": 3, "cache_creation_input_tokens": 1800,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}});
        assert_eq!(
            usage_from_usage_object(&zeros).map(|u| u.cache_creation_tokens),
            Some(1800)
        );
        // A relay's flat per-TTL fields.
        let relay = json!({"input_tokens": 1, "output_tokens": 1,
            "claude_cache_creation_5_m_tokens": 10, "claude_cache_creation_1_h_tokens": 5});
        assert_eq!(
            usage_from_usage_object(&relay).map(|u| u.cache_creation_tokens),
            Some(15)
        );
        // Only one TTL reported in the breakdown.
        let one = json!({"cache_creation": {"ephemeral_1h_input_tokens": 64}});
        assert_eq!(
            usage_from_usage_object(&one),
            Some(Usage {
                cache_creation_tokens: 64,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn usage_variants() {
        // message_delta reports output only; float counts from compatible servers are read.
        assert_eq!(
            usage_from_response(
                &json!({"type": "message_delta", "usage": {"output_tokens": 15.0}})
            ),
            Some(Usage {
                output_tokens: 15,
                ..Usage::default()
            })
        );
        let zeros = json!({"input_tokens": 0, "output_tokens": 0});
        assert_eq!(usage_from_usage_object(&zeros), Some(Usage::default()));
        for none in [
            json!({}),
            json!({"usage": null}),
            json!({"usage": {}}),
            json!({"usage": {"server_tool_use": {"web_search_requests": 1}}}),
            json!({"usage": [1, 2]}),
            json!({"usage": {"input_tokens": -1}}),
        ] {
            assert_eq!(usage_from_response(&none), None, "{none}");
        }
    }

    fn named(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: Some(event.to_owned()),
            data: data.to_owned(),
            id: None,
        }
    }

    fn chunk_of(usage: Option<Usage>, finished: bool, content: bool) -> StreamEvent {
        chunk(usage, finished, content)
    }

    /// A stream as Anthropic sends it (thinking, text and a tool call), byte for byte.
    const RECORDED: &str = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_01Hx","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":2,"service_tier":"standard"}}}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        "\n\n",
        "event: ping\n",
        r#"data: {"type": "ping"}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants weather."}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAh"}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":0}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking."}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":1}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1","name":"get_weather","input":{}}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"Paris\"}"}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":2}"#,
        "\n\n",
        "event: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"output_tokens":89}}"#,
        "\n\n",
        "event: message_stop\n",
        r#"data: {"type":"message_stop"}"#,
        "\n\n",
    );

    #[test]
    fn classify_a_recorded_stream_and_merge_its_usage() {
        let mut parser = SseParser::default();
        let events = parser.push(RECORDED.as_bytes());
        let classes: Vec<StreamEvent> = events.iter().map(classify_stream_event).collect();
        let start_usage = Usage {
            input_tokens: 472,
            output_tokens: 2,
            cache_read_tokens: 2048,
            ..Usage::default()
        };
        let delta_usage = Usage {
            output_tokens: 89,
            ..start_usage
        };
        let content = chunk_of(None, false, true);
        assert_eq!(
            classes,
            vec![
                chunk_of(Some(start_usage), false, false),
                content.clone(),
                chunk_of(None, false, false),
                content.clone(),
                content.clone(),
                content.clone(),
                content.clone(),
                content.clone(),
                content.clone(),
                content.clone(),
                content.clone(),
                content,
                chunk_of(Some(delta_usage), true, false),
                StreamEvent::Done { usage: None },
            ]
        );
        let mut total = Usage::default();
        for class in &classes {
            if let StreamEvent::Chunk {
                usage: Some(usage), ..
            } = class
            {
                total.merge_stream(usage);
            }
        }
        assert_eq!(total, delta_usage);
    }

    #[test]
    fn message_delta_with_output_only_keeps_input_from_message_start() {
        let start = classify_stream_event(&named(
            "message_start",
            r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":25,"output_tokens":1}}}"#,
        ));
        let delta = classify_stream_event(&named(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
        ));
        let mut total = Usage::default();
        for class in [start, delta] {
            let StreamEvent::Chunk {
                usage: Some(usage), ..
            } = class
            else {
                panic!("usage expected, got {class:?}");
            };
            total.merge_stream(&usage);
        }
        assert_eq!(
            total,
            Usage {
                input_tokens: 25,
                output_tokens: 15,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn classify_without_event_names_and_unknown_types() {
        // Some relays drop the `event:` lines: the data's type still decides.
        assert_eq!(
            classify_stream_event(&data_event(
                r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":3}}"#
            )),
            chunk_of(
                Some(Usage {
                    output_tokens: 3,
                    ..Usage::default()
                }),
                true,
                false
            )
        );
        assert_eq!(
            classify_stream_event(&data_event(r#"{"type":"message_stop"}"#)),
            StreamEvent::Done { usage: None }
        );
        // And data without a type falls back to the event name.
        assert_eq!(
            classify_stream_event(&named("message_stop", "{}")),
            StreamEvent::Done { usage: None }
        );
        // A stop_reason still null is not a finish; a message_delta without usage has none.
        assert_eq!(
            classify_stream_event(&named(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":null}}"#
            )),
            chunk_of(None, false, false)
        );
        // Forward compatible: unknown event types are empty chunks.
        assert_eq!(
            classify_stream_event(&named(
                "message_annotation",
                r#"{"type":"message_annotation","x":1}"#
            )),
            chunk_of(None, false, false)
        );
    }

    #[test]
    fn classify_errors_and_malformed() {
        let overloaded =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        for ev in [named("error", overloaded), data_event(overloaded)] {
            match classify_stream_event(&ev) {
                StreamEvent::Error(body) => {
                    assert_eq!(body.error_type.as_deref(), Some("overloaded_error"));
                    assert_eq!(body.message, "Overloaded");
                    assert_eq!(body.raw, overloaded);
                }
                other => panic!("expected Error, got {other:?}"),
            }
        }
        match classify_stream_event(&named("error", "upstream timed out")) {
            StreamEvent::Error(body) => assert_eq!(body.message, "upstream timed out"),
            other => panic!("expected Error, got {other:?}"),
        }
        for bad in [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_de"#,
            "",
            "[DONE]",
            "42",
            r#"["message_stop"]"#,
            r#"{"index":0}"#,
        ] {
            assert_eq!(
                classify_stream_event(&data_event(bad)),
                StreamEvent::Malformed,
                "{bad}"
            );
        }
    }
}
