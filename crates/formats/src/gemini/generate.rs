//! The Google Gemini front door (`models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`): path parsing, request validation, usage extraction,
//! stream-event classification (error output: `crate::envelope`).
//!
//! Invariants:
//! - The model and the streaming flag come from the URL path (`models/{model}:{action}`), never
//!   from the body: that is where Gemini's REST API takes them. [`parse_path`] reads them,
//!   [`parse_request`] receives them.
//! - The client's body is kept whole: Gemini's upstream body is the client's body as is (the
//!   model goes in the upstream URL), so new Gemini parameters pass without a gateway release.
//! - Validation is deliberately shallow: only what would make every upstream fail (no
//!   `contents`, a content that is not an object or has no `parts` array, a role other than
//!   `user`/`model`) is checked here; everything else is the upstream's business.
//! - [`Usage`] coming out of here is normalised: Gemini's `promptTokenCount` includes
//!   `cachedContentTokenCount`, which is moved to `cache_read_tokens`; `thoughtsTokenCount` is
//!   reported beside `candidatesTokenCount`, so both are added into `output_tokens`.
//! - A Gemini stream has no terminator event: the end of the answer is a candidate's
//!   `finishReason`, so [`classify_stream_event`] never returns [`StreamEvent::Done`].

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::borrow::Cow;

use crate::dialect::{ClientRequest, Dialect, token_count, untyped_event_object};
pub use crate::dialect::{RequestError, StreamEvent};
use crate::request_body::RequestBody;
use crate::sse::SseEvent;
use crate::usage::Usage;
use crate::validate::{Kind, kind, required_array};

/// A validated `generateContent` request.
pub type GenerateRequest = ClientRequest;

/// The action that streams (`:streamGenerateContent`).
const STREAM_ACTION: &str = "streamGenerateContent";
/// The action that answers in one body (`:generateContent`).
const GENERATE_ACTION: &str = "generateContent";

/// Splits the last path segment of a Gemini call, `gemini-2.5-pro:streamGenerateContent` (a
/// leading `models/` is stripped), into the model and whether the answer is streamed.
///
/// `None` for any other action (`countTokens`, `embedContent`, …: the gateway does not relay
/// them as generations) and for an empty model.
#[must_use]
pub fn parse_path(segment: &str) -> Option<(String, bool)> {
    let segment = segment.strip_prefix('/').unwrap_or(segment);
    let segment = segment.strip_prefix("models/").unwrap_or(segment);
    // The action follows the last colon; a model name never contains one, but a tuned model's
    // path might, so split at the last.
    let (model, action) = segment.rsplit_once(':')?;
    let stream = match action {
        STREAM_ACTION => true,
        GENERATE_ACTION => false,
        _ => return None,
    };
    if model.trim().is_empty() {
        return None;
    }
    Some((model.to_owned(), stream))
}

/// Parses and validates a `generateContent` request body; `model` and `stream` come from the
/// URL path (see [`parse_path`]).
///
/// # Errors
/// A [`RequestError`] naming the first field that is wrong (`model` for an empty model from the
/// path); for a body that is not JSON the field is empty and the message is the parser's.
pub fn parse_request(
    raw: impl Into<Bytes>,
    model: &str,
    stream: bool,
) -> Result<GenerateRequest, RequestError> {
    if model.trim().is_empty() {
        return Err(RequestError::new("model", "must not be empty"));
    }
    let body = RequestBody::parse(raw.into())?;
    for (i, content) in required_array(&body, "contents")?.iter().enumerate() {
        validate_content(content.get(), i)?;
    }

    Ok(GenerateRequest {
        dialect: Dialect::Gemini,
        model: model.to_owned(),
        stream,
        include_usage: false,
        body,
    })
}

/// One element of `contents`: an object with a `parts` array and an optional role that Gemini
/// accepts (`user` or `model`; absent means `user`).
fn validate_content(content: &str, i: usize) -> Result<(), RequestError> {
    #[derive(Deserialize)]
    struct ContentView<'a> {
        #[serde(default, borrow)]
        role: Option<&'a RawValue>,
        #[serde(default, borrow)]
        parts: Option<&'a RawValue>,
    }
    if kind(content) != Kind::Object {
        return Err(RequestError::new(
            format!("contents[{i}]"),
            "must be an object",
        ));
    }
    match serde_json::from_str::<ContentView<'_>>(content) {
        Ok(view) => check_content(
            view.role.map(RawValue::get),
            view.parts.map(RawValue::get),
            i,
        ),
        // A content naming a field twice: the last one counts, as in a map.
        Err(_) => {
            let content: Map<String, Value> = serde_json::from_str(content).unwrap_or_default();
            let text = |key: &str| content.get(key).map(Value::to_string);
            check_content(text("role").as_deref(), text("parts").as_deref(), i)
        }
    }
}

/// The checks of [`validate_content`] on the JSON texts of a content's `role` and `parts`.
fn check_content(role: Option<&str>, parts: Option<&str>, i: usize) -> Result<(), RequestError> {
    match role.map(|role| (kind(role), role)) {
        None | Some((Kind::Null, _)) => {}
        Some((Kind::String, role))
            if serde_json::from_str::<Cow<'_, str>>(role)
                .is_ok_and(|role| role == "user" || role == "model") => {}
        Some((Kind::String, _)) => {
            return Err(RequestError::new(
                format!("contents[{i}].role"),
                "must be \"user\" or \"model\"",
            ));
        }
        Some(_) => {
            return Err(RequestError::new(
                format!("contents[{i}].role"),
                "must be a string",
            ));
        }
    }
    match parts.map(kind) {
        Some(Kind::Array) => Ok(()),
        None | Some(Kind::Null) => Err(RequestError::new(
            format!("contents[{i}].parts"),
            "is required",
        )),
        Some(_) => Err(RequestError::new(
            format!("contents[{i}].parts"),
            "must be an array",
        )),
    }
}

/// Extracts normalised usage from a Gemini response or stream event (its `usageMetadata`).
/// `None` when there is no `usageMetadata` or it holds no token count.
///
/// - `promptTokenCount` INCLUDES `cachedContentTokenCount`, so
///   `input_tokens = prompt - cached` (saturating) and `cache_read_tokens = cached`.
/// - `toolUsePromptTokenCount` (the results of Gemini's built-in tools, fed back to the model)
///   is NOT in `promptTokenCount` — Gemini's `totalTokenCount` adds it separately — and is
///   billed as input, so it is added to `input_tokens`.
/// - `output_tokens = candidatesTokenCount + thoughtsTokenCount`: Gemini reports thinking
///   beside the answer, not inside it; `reasoning_tokens = thoughtsTokenCount`.
/// - Gemini has no cache-write count (explicit caches are created by a separate call).
#[must_use]
pub fn usage_from_response(body: &Value) -> Option<Usage> {
    let meta = body.get("usageMetadata")?.as_object()?;
    let count = |key: &str| token_count(meta.get(key));
    let prompt = count("promptTokenCount");
    let candidates = count("candidatesTokenCount");
    let thoughts = count("thoughtsTokenCount");
    let tool_use = count("toolUsePromptTokenCount");
    if prompt.is_none() && candidates.is_none() && thoughts.is_none() && tool_use.is_none() {
        return None;
    }
    let cached = count("cachedContentTokenCount").unwrap_or(0);
    let thoughts = thoughts.unwrap_or(0);
    Some(Usage {
        // A server reporting more cached than prompt tokens is wrong; never underflow for it.
        input_tokens: prompt
            .unwrap_or(0)
            .saturating_sub(cached)
            .saturating_add(tool_use.unwrap_or(0)),
        output_tokens: candidates.unwrap_or(0).saturating_add(thoughts),
        cache_read_tokens: cached,
        cache_creation_tokens: 0,
        reasoning_tokens: thoughts,
    })
}

/// Classifies one SSE event of a Gemini stream (`alt=sse`: every event is a whole
/// `GenerateContentResponse` in its `data`, with no `event:` name).
///
/// - An error object (`{"error":{"code","message","status"}}`) is [`StreamEvent::Error`].
/// - Data that is not a JSON object is [`StreamEvent::Malformed`].
/// - Otherwise a [`StreamEvent::Chunk`]: `finished` when a candidate carries a `finishReason`
///   (or the prompt was blocked, `promptFeedback.blockReason`, so no candidate will come);
///   `content` when a candidate part carries anything; `usage` from `usageMetadata`, which
///   Gemini repeats and refines on every event.
///
/// Never [`StreamEvent::Done`]: Gemini has no terminator event.
#[must_use]
pub fn classify_stream_event(ev: &SseEvent) -> StreamEvent {
    let data = ev.data.trim();
    let value = match untyped_event_object(ev, data) {
        Ok(value) => value,
        Err(event) => return event,
    };
    let candidates = value
        .get("candidates")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let blocked = value
        .get("promptFeedback")
        .and_then(|feedback| feedback.get("blockReason"))
        .is_some_and(is_set_reason);
    let finished = blocked
        || candidates
            .iter()
            .any(|candidate| candidate.get("finishReason").is_some_and(is_set_reason));
    let content = candidates.iter().any(|candidate| {
        candidate
            .get("content")
            .and_then(|content| content.get("parts"))
            .and_then(Value::as_array)
            .is_some_and(|parts| parts.iter().any(part_carries_something))
    });
    StreamEvent::Chunk {
        usage: usage_from_response(&value),
        finished,
        content,
        usage_only: false,
    }
}

/// A finish or block reason that says something: not null, not empty, not the proto default.
fn is_set_reason(reason: &Value) -> bool {
    match reason {
        Value::Null => false,
        Value::String(reason) => {
            !reason.is_empty()
                && reason != "FINISH_REASON_UNSPECIFIED"
                && reason != "BLOCK_REASON_UNSPECIFIED"
        }
        _ => true,
    }
}

/// A part with any field that says something. Any field counts (`text`, `functionCall`,
/// `thoughtSignature`, `inlineData`, …), so new kinds of parts are recognised without a change
/// here; Gemini's closing `{"text": ""}` does not.
fn part_carries_something(part: &Value) -> bool {
    part.as_object().is_some_and(|fields| {
        fields.values().any(|value| match value {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(items) => !items.is_empty(),
            Value::Object(fields) => !fields.is_empty(),
            Value::Bool(_) | Value::Number(_) => true,
        })
    })
}

/// The `usageMetadata` object that reports `usage` to a Gemini client: the inverse of
/// [`usage_from_response`]. `promptTokenCount` counts every input token (cache reads and writes
/// included), `candidatesTokenCount` the output without reasoning, `thoughtsTokenCount` the
/// reasoning; zero cache and thought counts are left out, as Gemini does.
#[must_use]
pub fn usage_metadata(usage: &Usage) -> Map<String, Value> {
    let prompt = usage.total_input_tokens();
    let candidates = usage.output_tokens.saturating_sub(usage.reasoning_tokens);
    let mut meta = Map::new();
    meta.insert("promptTokenCount".into(), json!(prompt));
    meta.insert("candidatesTokenCount".into(), json!(candidates));
    if usage.reasoning_tokens > 0 {
        meta.insert("thoughtsTokenCount".into(), json!(usage.reasoning_tokens));
    }
    if usage.cache_read_tokens > 0 {
        meta.insert(
            "cachedContentTokenCount".into(),
            json!(usage.cache_read_tokens),
        );
    }
    meta.insert(
        "totalTokenCount".into(),
        json!(prompt.saturating_add(usage.output_tokens)),
    );
    meta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;
    use crate::test_support::{data_event, err, rejection};

    fn request_error(raw: &str, model: &str) -> (String, String) {
        rejection(parse_request(raw.to_owned(), model, false))
    }

    const VALID: &str = r#"{
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "What is the weather in Paris?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}}]},
            {"parts": [{"text": "And tomorrow?"}]}
        ],
        "generationConfig": {"temperature": 0.2, "thinkingConfig": {"thinkingBudget": 1024}},
        "x_vendor_flag": {"deep": [1, 2, 3]}
    }"#;

    #[test]
    fn valid_request_keeps_the_whole_body() {
        let req = parse_request(VALID.as_bytes(), "gemini-2.5-flash", true).expect("valid");
        assert_eq!(req.dialect, Dialect::Gemini);
        assert_eq!(req.model, "gemini-2.5-flash");
        assert!(req.stream);
        assert!(!req.include_usage);
        assert_eq!(
            req.body.to_map().expect("a tree")["x_vendor_flag"],
            json!({"deep": [1, 2, 3]})
        );
        assert_eq!(
            req.body.to_map().expect("a tree")["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 1024})
        );
        assert_eq!(req.body.len(), 4);

        let req = parse_request(r#"{"contents":[{"parts":[]}]}"#, "gemini-2.0-flash", false)
            .expect("no role means user; an empty parts array is the upstream's business");
        assert!(!req.stream);
    }

    #[test]
    fn each_failing_field() {
        let m = "gemini-2.5-pro";
        let cases = [
            (
                r#"{"contents":[{"parts":[]}]}"#,
                "",
                err("model", "must not be empty"),
            ),
            (
                r#"{"contents":[{"parts":[]}]}"#,
                " ",
                err("model", "must not be empty"),
            ),
            (
                "",
                m,
                err("", "EOF while parsing a value at line 1 column 0"),
            ),
            (
                "{\"contents\": [}",
                m,
                err("", "expected value at line 1 column 15"),
            ),
            ("[1]", m, err("", "the request body must be a JSON object")),
            ("{}", m, err("contents", "is required")),
            (r#"{"contents":null}"#, m, err("contents", "is required")),
            (
                r#"{"contents":{"parts":[]}}"#,
                m,
                err("contents", "must be an array"),
            ),
            (
                r#"{"contents":[]}"#,
                m,
                err("contents", "must not be empty"),
            ),
            (
                r#"{"contents":[{"parts":[]},"hi"]}"#,
                m,
                err("contents[1]", "must be an object"),
            ),
            (
                r#"{"contents":[{"role":"user","parts":[]},{"role":"model"}]}"#,
                m,
                err("contents[1].parts", "is required"),
            ),
            (
                r#"{"contents":[{"role":"user","parts":{"text":"x"}}]}"#,
                m,
                err("contents[0].parts", "must be an array"),
            ),
            (
                r#"{"contents":[{"role":"assistant","parts":[]}]}"#,
                m,
                err("contents[0].role", "must be \"user\" or \"model\""),
            ),
            (
                r#"{"contents":[{"role":1,"parts":[]}]}"#,
                m,
                err("contents[0].role", "must be a string"),
            ),
        ];
        for (raw, model, expected) in cases {
            assert_eq!(request_error(raw, model), expected, "{raw}");
        }
    }

    #[test]
    fn path_segments() {
        let some = |model: &str, stream: bool| Some((model.to_owned(), stream));
        assert_eq!(
            parse_path("gemini-2.5-pro:streamGenerateContent"),
            some("gemini-2.5-pro", true)
        );
        assert_eq!(
            parse_path("gemini-2.5-flash:generateContent"),
            some("gemini-2.5-flash", false)
        );
        assert_eq!(
            parse_path("models/gemini-2.0-flash-001:generateContent"),
            some("gemini-2.0-flash-001", false)
        );
        assert_eq!(
            parse_path("/models/gemini-2.5-flash-lite:streamGenerateContent"),
            some("gemini-2.5-flash-lite", true)
        );
        for none in [
            "gemini-2.5-pro:countTokens",
            "gemini-2.5-pro:embedContent",
            "gemini-2.5-pro:StreamGenerateContent",
            "gemini-2.5-pro",
            ":generateContent",
            "models/:streamGenerateContent",
            "",
        ] {
            assert_eq!(parse_path(none), None, "{none}");
        }
    }

    #[test]
    fn usage_with_cache_and_thoughts() {
        // gemini-2.5-pro, a request served partly from an implicit cache, with thinking.
        let response = json!({
            "candidates": [],
            "usageMetadata": {
                "promptTokenCount": 2006,
                "candidatesTokenCount": 108,
                "totalTokenCount": 2306,
                "cachedContentTokenCount": 1920,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2006}],
                "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 1920}],
                "thoughtsTokenCount": 192
            },
            "modelVersion": "gemini-2.5-pro",
            "responseId": "mQ9qaO-eDJ2vz7IP0sLj2Ak"
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
        // No thinking, no cache: gemini-2.0-flash.
        assert_eq!(
            usage_from_response(&json!({"usageMetadata": {
                "promptTokenCount": 9, "candidatesTokenCount": 12, "totalTokenCount": 21
            }})),
            Some(Usage {
                input_tokens: 9,
                output_tokens: 12,
                ..Usage::default()
            })
        );
        // A first stream event: only the prompt is known yet.
        assert_eq!(
            usage_from_response(&json!({"usageMetadata": {
                "promptTokenCount": 64, "totalTokenCount": 64
            }})),
            Some(Usage {
                input_tokens: 64,
                ..Usage::default()
            })
        );
        // Built-in tool results are input billed beside the prompt.
        let tools = json!({"usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 5,
            "toolUsePromptTokenCount": 400, "totalTokenCount": 505}});
        let usage = usage_from_response(&tools).expect("usage");
        assert_eq!((usage.input_tokens, usage.output_tokens), (500, 5));
        // Thinking cut by MAX_TOKENS: no candidates count at all.
        let thinking_only = json!({"usageMetadata": {"promptTokenCount": 10,
            "thoughtsTokenCount": 1000, "totalTokenCount": 1010}});
        let usage = usage_from_response(&thinking_only).expect("usage");
        assert_eq!((usage.output_tokens, usage.reasoning_tokens), (1000, 1000));
        // Float counts and a cached count larger than the prompt do not break anything.
        let odd = json!({"usageMetadata": {"promptTokenCount": 10.0, "candidatesTokenCount": 2,
            "cachedContentTokenCount": 50}});
        let usage = usage_from_response(&odd).expect("usage");
        assert_eq!((usage.input_tokens, usage.cache_read_tokens), (0, 50));

        for none in [
            json!({}),
            json!({"usageMetadata": null}),
            json!({"usageMetadata": {}}),
            json!({"usageMetadata": {"totalTokenCount": 3}}),
            json!({"usageMetadata": {"cachedContentTokenCount": 3}}),
            json!({"usageMetadata": "lots"}),
        ] {
            assert_eq!(usage_from_response(&none), None, "{none}");
        }
    }

    #[test]
    fn usage_metadata_is_the_inverse_of_extraction() {
        let usage = Usage {
            input_tokens: 86,
            output_tokens: 300,
            cache_read_tokens: 1920,
            cache_creation_tokens: 0,
            reasoning_tokens: 192,
        };
        let meta = usage_metadata(&usage);
        assert_eq!(
            Value::Object(meta.clone()),
            json!({
                "promptTokenCount": 2006,
                "candidatesTokenCount": 108,
                "thoughtsTokenCount": 192,
                "cachedContentTokenCount": 1920,
                "totalTokenCount": 2306
            })
        );
        let body = json!({ "usageMetadata": meta });
        assert_eq!(usage_from_response(&body), Some(usage));

        // Zero thoughts and cache are left out; a cache write is billed as prompt.
        let plain = Usage {
            input_tokens: 5,
            output_tokens: 7,
            cache_creation_tokens: 3,
            ..Usage::default()
        };
        assert_eq!(
            Value::Object(usage_metadata(&plain)),
            json!({"promptTokenCount": 8, "candidatesTokenCount": 7, "totalTokenCount": 15})
        );
    }

    fn chunk(usage: Option<Usage>, finished: bool, content: bool) -> StreamEvent {
        StreamEvent::Chunk {
            usage,
            finished,
            content,
            usage_only: false,
        }
    }

    /// A `gemini-2.5-flash` stream (`alt=sse`, `includeThoughts: true`), as recorded: CRLF line
    /// ends, thought summary first, then the answer, then an empty closing part with the finish
    /// reason and the final usage.
    const RECORDED: &str = concat!(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"**Answering a greeting**\\n\\nThe user says hello.\",\"thought\": true}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 7,\"totalTokenCount\": 7,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 7}]},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"2p5qaNmOF4-qz7IPo9mS8Ak\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello! How can I\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 7,\"candidatesTokenCount\": 5,\"totalTokenCount\": 45,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 7}],\"thoughtsTokenCount\": 33},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"2p5qaNmOF4-qz7IPo9mS8Ak\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" help you today?\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 7,\"candidatesTokenCount\": 9,\"totalTokenCount\": 49,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 7}],\"thoughtsTokenCount\": 33},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"2p5qaNmOF4-qz7IPo9mS8Ak\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 7,\"candidatesTokenCount\": 9,\"totalTokenCount\": 49,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 7}],\"thoughtsTokenCount\": 33},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"2p5qaNmOF4-qz7IPo9mS8Ak\"}\r\n\r\n",
    );

    #[test]
    fn classify_a_recorded_stream() {
        let mut parser = SseParser::default();
        let events = parser.push(RECORDED.as_bytes());
        assert_eq!(parser.finish(), None);
        let classified: Vec<_> = events.iter().map(classify_stream_event).collect();
        let usage = |output: u64| {
            Some(Usage {
                input_tokens: 7,
                output_tokens: output,
                reasoning_tokens: if output == 0 { 0 } else { 33 },
                ..Usage::default()
            })
        };
        assert_eq!(
            classified,
            vec![
                chunk(usage(0), false, true),
                chunk(usage(38), false, true),
                chunk(usage(42), false, true),
                // The closing event: finished, its empty text part carries nothing.
                chunk(usage(42), true, false),
            ]
        );
    }

    #[test]
    fn classify_tool_calls_signatures_and_blocks() {
        let call = r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"CiQBVKhc7g=="}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":64,"candidatesTokenCount":15,"totalTokenCount":155,"thoughtsTokenCount":76},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#;
        assert_eq!(
            classify_stream_event(&data_event(call)),
            chunk(
                Some(Usage {
                    input_tokens: 64,
                    output_tokens: 91,
                    reasoning_tokens: 76,
                    ..Usage::default()
                }),
                true,
                true
            )
        );
        // A signature alone in the closing part is still content (it must reach the client).
        let signature = r#"{"candidates":[{"content":{"parts":[{"text":"","thoughtSignature":"Ei0KKw=="}],"role":"model"},"finishReason":"MAX_TOKENS","index":0}]}"#;
        assert_eq!(
            classify_stream_event(&data_event(signature)),
            chunk(None, true, true)
        );
        // The prompt itself was blocked: no candidate will come.
        let blocked = r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":12,"totalTokenCount":12},"modelVersion":"gemini-2.5-flash","responseId":"r2"}"#;
        assert_eq!(
            classify_stream_event(&data_event(blocked)),
            chunk(
                Some(Usage {
                    input_tokens: 12,
                    ..Usage::default()
                }),
                true,
                false
            )
        );
        // Proto defaults and empty values say nothing.
        let unspecified = r#"{"candidates":[{"content":{"role":"model"},"finishReason":"FINISH_REASON_UNSPECIFIED"}],"promptFeedback":{"blockReason":"BLOCK_REASON_UNSPECIFIED"}}"#;
        assert_eq!(
            classify_stream_event(&data_event(unspecified)),
            chunk(None, false, false)
        );
        let empty =
            r#"{"candidates":[{"content":{"parts":[{},{"text":null}]},"finishReason":""}]}"#;
        assert_eq!(
            classify_stream_event(&data_event(empty)),
            chunk(None, false, false)
        );
    }

    #[test]
    fn classify_errors_and_malformed_and_never_done() {
        let error = r#"{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}"#;
        match classify_stream_event(&data_event(error)) {
            StreamEvent::Error(body) => {
                assert_eq!(body.error_type.as_deref(), Some("UNAVAILABLE"));
                assert_eq!(
                    body.message,
                    "The model is overloaded. Please try again later."
                );
                assert_eq!(body.reason.as_deref(), Some("503"));
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
            r#"{"candidates":[{"content":{"parts":[{"text":"Hel"#,
            "",
            "[DONE]",
            "42",
            r#""text""#,
            r#"[{"candidates":[]}]"#,
        ] {
            assert_eq!(
                classify_stream_event(&data_event(bad)),
                StreamEvent::Malformed,
                "{bad}"
            );
        }
    }
}
