//! The OpenAI Chat Completions front door: request validation, the body sent upstream, usage
//! extraction and stream-event classification (error output: `crate::envelope`).
//!
//! Invariants:
//! - The client's body is kept whole and forwarded untouched except for the two fields the
//!   gateway owns: `model` (the upstream's name for the model) and, for streams,
//!   `stream_options.include_usage = true` (accounting needs the usage chunk even when the client
//!   did not ask for it; the relay decides whether the client sees it).
//! - Validation is deliberately shallow: only what the gateway itself relies on (model, stream
//!   flags) or what would make every upstream fail (no messages) is checked here. Everything else
//!   is the upstream's business, so new OpenAI parameters pass through without a gateway release.
//! - [`Usage`] coming out of here is normalised: OpenAI's `prompt_tokens` includes cached
//!   tokens, which are moved to `cache_read_tokens`.

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::dialect::{ClientRequest, Dialect, token_count, untyped_event_object};
pub use crate::dialect::{RequestError, StreamEvent};
use crate::request_body::RequestBody;
use crate::shape::{JsonStr, Shape};
use crate::sse::SseEvent;
use crate::usage::Usage;
use crate::validate::{messages_with_roles, optional_body_bool, optional_bool, required_string};

/// A validated Chat Completions request.
pub type ChatRequest = ClientRequest;

/// Parses and validates a Chat Completions request body.
///
/// # Errors
/// A [`RequestError`] naming the first field that is wrong; for a body that is not JSON the
/// field is empty and the message is the parser's (with line and column).
pub fn parse_request(raw: impl Into<Bytes>) -> Result<ChatRequest, RequestError> {
    let body = RequestBody::parse(raw.into())?;
    let model = required_string(&body, "model")?;

    messages_with_roles(&body)?;

    // OpenAI documents these as "boolean or null" / "object or null": null means absent.
    let stream = optional_body_bool(&body, "stream", "stream")?.unwrap_or(false);
    let include_usage = match stream_options(&body)? {
        None => false,
        Some(options) => optional_bool(&options, "include_usage", "stream_options.include_usage")?
            .unwrap_or(false),
    };

    Ok(ChatRequest {
        dialect: Dialect::Chat,
        model,
        stream,
        include_usage,
        body,
    })
}

/// The client's `stream_options`: `None` when absent or `null`.
fn stream_options(body: &RequestBody) -> Result<Option<Map<String, Value>>, RequestError> {
    match body.raw("stream_options") {
        None | Some("null") => Ok(None),
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|_| RequestError::new("stream_options", "must be an object")),
    }
}

/// The body to send upstream: the client's body with `model` replaced by `upstream_model` and,
/// for streams, `stream_options.include_usage` forced to `true` (other stream options kept).
///
/// Written from the received bytes into one buffer: every other member is copied as it came,
/// whatever its size, with no tree built.
#[must_use]
pub fn upstream_body(req: &ChatRequest, upstream_model: &str) -> Bytes {
    let body = &req.body;
    let model = json_text(&upstream_model);
    let force_usage = req.stream;
    // A stream_options that is not an object was refused when the request was parsed.
    let options = force_usage.then(|| {
        let client = stream_options(body).ok().flatten();
        json_text(&StreamOptions(client.as_ref()))
    });
    let missing_model = (!body.contains_key("model")).then_some(("model", model.as_slice()));
    let missing_options = options
        .as_deref()
        .filter(|_| !body.contains_key("stream_options"))
        .map(|options| ("stream_options", options));
    body.rewrite(
        |name| match name {
            "model" => Some(model.as_slice()),
            "stream_options" => options.as_deref(),
            _ => None,
        },
        missing_model.into_iter().chain(missing_options),
    )
}

#[expect(
    clippy::expect_used,
    reason = "serialising a string or a map of serde_json values into a Vec cannot fail"
)]
fn json_text<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON values always serialise")
}

/// The client's `stream_options` (if any) with `include_usage: true`.
struct StreamOptions<'a>(Option<&'a Map<String, Value>>);

impl Serialize for StreamOptions<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let others = self
            .0
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.as_str() != "include_usage");
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in others {
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry("include_usage", &true)?;
        map.end()
    }
}

/// Extracts normalised usage from a Chat Completions response or stream chunk (its `usage`
/// object). `None` when there is no usage object or it holds neither token count.
///
/// `prompt_tokens` includes `prompt_tokens_details.cached_tokens`, so
/// `input_tokens = prompt_tokens - cached` and `cache_read_tokens = cached`; DeepSeek's
/// `prompt_cache_hit_tokens` is read when `cached_tokens` is absent. `output_tokens` is
/// `completion_tokens`, which already includes `completion_tokens_details.reasoning_tokens`.
#[must_use]
pub fn usage_from_response(body: &Value) -> Option<Usage> {
    usage_from_object(body.get("usage")?)
}

/// [`usage_from_response`] of the `usage` object itself.
fn usage_from_object(usage: &Value) -> Option<Usage> {
    let usage = usage.as_object()?;
    let prompt = token_count(usage.get("prompt_tokens"));
    let completion = token_count(usage.get("completion_tokens"));
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    let prompt = prompt.unwrap_or(0);
    let cached = token_count(
        usage
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens")),
    )
    .or_else(|| token_count(usage.get("prompt_cache_hit_tokens")))
    .unwrap_or(0);
    let reasoning = token_count(
        usage
            .get("completion_tokens_details")
            .and_then(|d| d.get("reasoning_tokens")),
    )
    .unwrap_or(0);
    Some(Usage {
        // A server reporting more cached than prompt tokens is wrong; never underflow for it.
        input_tokens: prompt.saturating_sub(cached),
        output_tokens: completion.unwrap_or(0),
        cache_read_tokens: cached,
        cache_creation_tokens: 0,
        reasoning_tokens: reasoning,
    })
}

/// Classifies one SSE event of a Chat Completions stream.
#[must_use]
pub fn classify_stream_event(ev: &SseEvent) -> StreamEvent {
    let data = ev.data.trim();
    if data == "[DONE]" {
        return StreamEvent::Done { usage: None };
    }
    if ev.event.as_deref() != Some("error")
        && let Some(event) = classify_plain_chunk(data)
    {
        return event;
    }
    classify_chunk_value(ev, data)
}

/// What classification reads of a chunk, without building its JSON tree: a chunk is mostly
/// envelope around a few tokens, and a `Value` of each cost more than relaying it.
#[derive(serde::Deserialize)]
struct ChunkView<'a> {
    #[serde(default)]
    choices: Option<Choices>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Shape>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    object: Option<JsonStr<'a>>,
}

#[derive(serde::Deserialize)]
struct ChoiceView {
    #[serde(default)]
    finish_reason: Option<Shape>,
    #[serde(default)]
    delta: Option<Shape>,
}

/// The usual chunk classified through [`ChunkView`]; `None` for anything else (not an object,
/// a field of an unexpected type, anything that may be an error), which
/// [`classify_chunk_value`] decides. Both agree wherever this answers (tested).
fn classify_plain_chunk(data: &str) -> Option<StreamEvent> {
    // A derived struct also reads a JSON array, field by field: only objects may take this way.
    if !data.starts_with('{') {
        return None;
    }
    let view: ChunkView<'_> = serde_json::from_str(data).ok()?;
    if crate::body::may_be_error(
        view.error,
        view.kind.as_ref().map(JsonStr::as_str),
        view.object.as_ref().map(JsonStr::as_str),
    ) {
        return None;
    }
    let choices = view.choices.unwrap_or_default();
    let usage = view.usage.as_ref().and_then(usage_from_object);
    Some(StreamEvent::Chunk {
        usage_only: choices.count == 0 && usage.is_some(),
        usage,
        finished: choices.finished,
        content: choices.content,
    })
}

/// What classification needs of `choices`, read choice by choice without keeping them (a
/// vector of them was an allocation per chunk).
#[derive(Default)]
struct Choices {
    count: usize,
    /// A choice has a finish reason.
    finished: bool,
    /// A choice's delta says something.
    content: bool,
}

impl<'de> serde::Deserialize<'de> for Choices {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChoicesVisitor;

        impl<'de> serde::de::Visitor<'de> for ChoicesVisitor {
            type Value = Choices;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of choices")
            }

            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<Choices, S::Error> {
                let mut choices = Choices::default();
                while let Some(choice) = seq.next_element::<ChoiceView>()? {
                    choices.count += 1;
                    choices.finished |= match choice.finish_reason {
                        None | Some(Shape::Null) => false,
                        // Some compatible servers send "" on every chunk.
                        Some(Shape::Text { empty }) => !empty,
                        Some(_) => true,
                    };
                    choices.content |=
                        matches!(choice.delta, Some(Shape::Object { any_says: true, .. }));
                }
                Ok(choices)
            }
        }

        deserializer.deserialize_seq(ChoicesVisitor)
    }
}

/// Any chunk classified through its JSON tree.
fn classify_chunk_value(ev: &SseEvent, data: &str) -> StreamEvent {
    let value = match untyped_event_object(ev, data) {
        Ok(value) => value,
        Err(event) => return event,
    };
    let choices = value
        .get("choices")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let finished = choices
        .iter()
        .any(|choice| match choice.get("finish_reason") {
            None | Some(Value::Null) => false,
            // Some compatible servers send "" on every chunk.
            Some(Value::String(reason)) => !reason.is_empty(),
            Some(_) => true,
        });
    let content = choices.iter().any(|choice| {
        choice
            .get("delta")
            .and_then(Value::as_object)
            .is_some_and(|delta| delta.values().any(carries_something))
    });
    let usage = usage_from_response(&value);
    StreamEvent::Chunk {
        usage_only: choices.is_empty() && usage.is_some(),
        usage,
        finished,
        content,
    }
}

/// A delta field that says something. Any field counts, not just `content`, so new kinds of
/// output (`reasoning_content`, `audio`, …) are recognised without a change here.
fn carries_something(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// The stream terminator, `data: [DONE]` and the blank line.
#[must_use]
pub fn done_event() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;
    use crate::test_support::{data_event, err, rejection};
    use serde_json::json;

    #[test]
    fn chunks_read_without_a_json_tree_classify_as_through_one() {
        let usual = [
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi \"there\""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":""},"finish_reason":""}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":null,"tool_calls":[]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":"text"}]}"#,
            r#"{"choices":[{"finish_reason":{"why":"odd"}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}}"#,
            r#"{"choices":null,"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":[],"usage":null}"#,
            r#"{"choices":[],"usage":{"total_tokens":5}}"#,
            r#"{"error":null,"choices":[{"delta":{"content":"x"}}]}"#,
            r#"{}"#,
        ];
        for data in usual {
            let fast = classify_plain_chunk(data).unwrap_or_else(|| panic!("no fast path: {data}"));
            assert_eq!(
                fast,
                classify_chunk_value(&data_event(data), data),
                "{data}"
            );
        }
        // Errors, odd types and non-objects are left to the JSON tree.
        for data in [
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            r#"{"error":false,"choices":[]}"#,
            r#"{"type":"error","message":"x"}"#,
            r#"{"object":"error","message":"x"}"#,
            r#"{"choices":"none"}"#,
            r#"{"choices":[1]}"#,
            r#"{"type":7}"#,
            "[1]",
            "[]",
            "[null,null]",
            "not json",
        ] {
            assert_eq!(classify_plain_chunk(data), None, "{data}");
        }
    }

    fn request_error(raw: &str) -> (String, String) {
        rejection(parse_request(raw.to_owned()))
    }

    const VALID: &str = r#"{
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
        ],
        "temperature": 0.2,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "x_vendor_flag": {"deep": [1, 2, 3]}
    }"#;

    #[test]
    fn valid_request_keeps_the_whole_body() {
        let req = parse_request(VALID.as_bytes()).expect("valid");
        assert_eq!(req.model, "gpt-4o-mini");
        assert!(!req.stream);
        assert!(!req.include_usage);
        assert_eq!(
            req.body.to_map().expect("a tree")["x_vendor_flag"],
            json!({"deep": [1, 2, 3]})
        );
        assert_eq!(
            req.body.to_map().expect("a tree")["temperature"],
            json!(0.2)
        );
        assert_eq!(req.body.len(), 5);
    }

    #[test]
    fn stream_flags() {
        let req = parse_request(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .expect("valid");
        assert!(req.stream && req.include_usage);
        let req = parse_request(
            r#"{"model":"m","messages":[{"role":"user"}],"stream":null,"stream_options":null}"#,
        )
        .expect("nulls mean absent");
        assert!(!req.stream && !req.include_usage);
        let req = parse_request(
            r#"{"model":"m","messages":[{"role":"user"}],"stream":true,"stream_options":{}}"#,
        )
        .expect("valid");
        assert!(req.stream && !req.include_usage);
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
                r#"{"messages":[{"role":"user"}]}"#,
                err("model", "is required"),
            ),
            (
                r#"{"model":null,"messages":[{"role":"user"}]}"#,
                err("model", "is required"),
            ),
            (
                r#"{"model":"  ","messages":[{"role":"user"}]}"#,
                err("model", "must not be empty"),
            ),
            (
                r#"{"model":4,"messages":[{"role":"user"}]}"#,
                err("model", "must be a string"),
            ),
            (r#"{"model":"m"}"#, err("messages", "is required")),
            (
                r#"{"model":"m","messages":{}}"#,
                err("messages", "must be an array"),
            ),
            (
                r#"{"model":"m","messages":[]}"#,
                err("messages", "must not be empty"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"},"hi"]}"#,
                err("messages[1]", "must be an object"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"},{"role":"user"},{"content":"x"}]}"#,
                err("messages[2].role", "is required"),
            ),
            (
                r#"{"model":"m","messages":[{"role":7}]}"#,
                err("messages[0].role", "must be a string"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"stream":"true"}"#,
                err("stream", "must be a boolean"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"stream_options":true}"#,
                err("stream_options", "must be an object"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"stream_options":{"include_usage":1}}"#,
                err("stream_options.include_usage", "must be a boolean"),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(request_error(raw), expected, "{raw}");
        }
    }

    #[test]
    fn request_error_display() {
        assert_eq!(
            RequestError::new("messages[0].role", "is required").to_string(),
            "messages[0].role: is required"
        );
        assert_eq!(
            RequestError::new("", "expected value at line 1 column 1").to_string(),
            "expected value at line 1 column 1"
        );
    }

    fn upstream(raw: &str, model: &str) -> Value {
        let req = parse_request(raw.to_owned()).expect("valid");
        serde_json::from_slice(&upstream_body(&req, model)).expect("upstream body is JSON")
    }

    #[test]
    fn deeply_nested_bodies_are_answered_not_crashed_on() {
        // Nesting far beyond any parser's recursion limit, where the gateway reads (messages)
        // and where it does not (a vendor field, forwarded as it came).
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let raw = format!(r#"{{"model":"m","messages":{}}}"#, deep(200_000));
        assert_eq!(
            request_error(&raw),
            ("messages[0]".to_owned(), "must be an object".to_owned())
        );
        let raw = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"x":{}}}"#,
            deep(200_000)
        );
        let req = parse_request(raw.clone()).expect("valid");
        assert_eq!(upstream_body(&req, "m").len(), raw.len());
    }

    #[test]
    fn upstream_body_is_the_clients_bytes_but_for_the_model() {
        // Numbers beyond f64's precision, a trailing zero, escapes and the client's member
        // order all reach the upstream exactly as sent.
        let raw = r#"{"temperature":0.70,"model":"alias","seed":12345678901234567890123,"messages":[{"role":"user","content":"caf\u00e9 \"x\"\n"}],"x_vendor":{"z":1,"a":[true,null]}}"#;
        let req = parse_request(raw).expect("valid");
        let sent = upstream_body(&req, "gpt-4o-mini-2024-07-18");
        assert_eq!(
            std::str::from_utf8(&sent).expect("UTF-8"),
            raw.replace(r#""model":"alias""#, r#""model":"gpt-4o-mini-2024-07-18""#)
        );
        // A stream gets its usage chunk forced on, and nothing else changes.
        let streamed = r#"{"model":"a","stream":true,"messages":[{"role":"user","content":"x"}]}"#;
        let sent = upstream_body(&parse_request(streamed).expect("valid"), "b");
        assert_eq!(
            std::str::from_utf8(&sent).expect("UTF-8"),
            r#"{"model":"b","stream":true,"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn upstream_body_replaces_model_and_keeps_everything_else() {
        let sent = upstream(VALID, "gpt-4o-mini-2024-07-18");
        let mut expected: Value = serde_json::from_str(VALID).expect("valid");
        expected["model"] = json!("gpt-4o-mini-2024-07-18");
        assert_eq!(sent, expected, "non-stream: only the model changes");
        assert!(sent.get("stream_options").is_none());
    }

    #[test]
    fn upstream_body_forces_include_usage_on_streams() {
        let sent = upstream(
            r#"{"model":"alias","messages":[{"role":"user","content":"x"}],"stream":true,"n":2}"#,
            "real-model",
        );
        assert_eq!(
            sent,
            json!({
                "model": "real-model",
                "messages": [{"role": "user", "content": "x"}],
                "stream": true,
                "n": 2,
                "stream_options": {"include_usage": true}
            })
        );

        // The client said no: still forced on upstream (the relay hides the chunk), other
        // stream options are kept.
        let sent = upstream(
            r#"{"model":"a","messages":[{"role":"user"}],"stream":true,"stream_options":{"include_usage":false,"continuous_usage_stats":true}}"#,
            "b",
        );
        assert_eq!(
            sent["stream_options"],
            json!({"include_usage": true, "continuous_usage_stats": true})
        );

        let sent = upstream(
            r#"{"model":"a","messages":[{"role":"user"}],"stream":true,"stream_options":null}"#,
            "b",
        );
        assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn upstream_body_adds_model_to_a_hand_built_request() {
        let req = ChatRequest {
            dialect: Dialect::Chat,
            model: "a".into(),
            stream: false,
            include_usage: false,
            body: RequestBody::empty(),
        };
        let sent: Value = serde_json::from_slice(&upstream_body(&req, "b")).expect("JSON");
        assert_eq!(sent, json!({"model": "b"}));
    }

    #[test]
    fn usage_subtracts_cached_tokens_from_input() {
        let response = json!({
            "id": "chatcmpl-BpVx3",
            "object": "chat.completion",
            "choices": [],
            "usage": {
                "prompt_tokens": 2006,
                "completion_tokens": 300,
                "total_tokens": 2306,
                "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 192,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0
                }
            }
        });
        assert_eq!(
            usage_from_response(&response),
            Some(Usage {
                input_tokens: 86,
                output_tokens: 300,
                cache_read_tokens: 1920,
                cache_creation_tokens: 0,
                reasoning_tokens: 192,
            })
        );
    }

    #[test]
    fn usage_variants() {
        assert_eq!(
            usage_from_response(
                &json!({"usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}})
            ),
            Some(Usage {
                input_tokens: 9,
                output_tokens: 12,
                ..Usage::default()
            })
        );
        // DeepSeek reports its cache hits beside the prompt count.
        let deepseek = json!({"usage": {"prompt_tokens": 100, "completion_tokens": 5,
            "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36}});
        let usage = usage_from_response(&deepseek).expect("usage");
        assert_eq!((usage.input_tokens, usage.cache_read_tokens), (36, 64));
        // Float counts and a cached count larger than the prompt do not break anything.
        let odd = json!({"usage": {"prompt_tokens": 10.0, "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 50}}});
        let usage = usage_from_response(&odd).expect("usage");
        assert_eq!((usage.input_tokens, usage.cache_read_tokens), (0, 50));

        for none in [
            json!({}),
            json!({"usage": null}),
            json!({"usage": {}}),
            json!({"usage": {"total_tokens": 3}}),
            json!({"usage": "lots"}),
        ] {
            assert_eq!(usage_from_response(&none), None, "{none}");
        }
    }

    fn chunk(usage: Option<Usage>, finished: bool, content: bool, usage_only: bool) -> StreamEvent {
        StreamEvent::Chunk {
            usage,
            finished,
            content,
            usage_only,
        }
    }

    #[test]
    fn classify_chunks() {
        let role = r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#;
        assert_eq!(
            classify_stream_event(&data_event(role)),
            chunk(None, false, true, false)
        );
        let empty_delta =
            r#"{"choices":[{"index":0,"delta":{"content":"","refusal":null},"finish_reason":""}]}"#;
        assert_eq!(
            classify_stream_event(&data_event(empty_delta)),
            chunk(None, false, false, false)
        );
        let tool = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]},"finish_reason":null}]}"#;
        assert_eq!(
            classify_stream_event(&data_event(tool)),
            chunk(None, false, true, false)
        );
        let reasoning = r#"{"choices":[{"index":0,"delta":{"reasoning_content":"Let me think"},"finish_reason":null}]}"#;
        assert_eq!(
            classify_stream_event(&data_event(reasoning)),
            chunk(None, false, true, false)
        );
        let finish = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#;
        assert_eq!(
            classify_stream_event(&data_event(finish)),
            chunk(None, true, false, false)
        );
        // Azure's first chunk: prompt filter results, no choices, no usage.
        let azure = r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#;
        assert_eq!(
            classify_stream_event(&data_event(azure)),
            chunk(None, false, false, false)
        );
    }

    #[test]
    fn classify_usage_on_a_content_chunk_is_not_usage_only() {
        let with_usage = r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let usage = Usage {
            input_tokens: 3,
            output_tokens: 1,
            ..Usage::default()
        };
        assert_eq!(
            classify_stream_event(&data_event(with_usage)),
            chunk(Some(usage), true, true, false)
        );
    }

    #[test]
    fn classify_done_error_and_malformed() {
        assert_eq!(
            classify_stream_event(&data_event("[DONE]")),
            StreamEvent::Done { usage: None }
        );
        assert_eq!(
            classify_stream_event(&data_event(" [DONE] ")),
            StreamEvent::Done { usage: None }
        );
        let error = r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#;
        match classify_stream_event(&data_event(error)) {
            StreamEvent::Error(body) => {
                assert_eq!(body.error_type.as_deref(), Some("server_error"));
                assert!(body.message.starts_with("The server had an error"));
                assert_eq!(body.raw, error);
            }
            other => panic!("expected Error, got {other:?}"),
        }
        let named = SseEvent {
            event: Some("error".into()),
            data: "upstream timed out".into(),
            id: None,
        };
        match classify_stream_event(&named) {
            StreamEvent::Error(body) => assert_eq!(body.message, "upstream timed out"),
            other => panic!("expected Error, got {other:?}"),
        }
        for bad in [
            r#"{"choices":[{"delta":{"content":"Hel"#,
            "",
            "42",
            r#""text""#,
        ] {
            assert_eq!(
                classify_stream_event(&data_event(bad)),
                StreamEvent::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_terminator_is_data_done_and_classified_as_the_end() {
        assert_eq!(&done_event()[..], b"data: [DONE]\n\n");
        assert_eq!(
            classify_stream_event(&SseParser::default().push(&done_event())[0]),
            StreamEvent::Done { usage: None }
        );
    }
}
